//! `worker`: consumes the RabbitMQ work queue with manual acks, retries and
//! a dead-letter queue. All logic is in `tickbridge_consumer::worker`.

use clap::Parser;
use tickbridge_consumer::supervise;
use tickbridge_consumer::worker::WorkerConfig;
use tickbridge_model::cli::help_template;

/// One-to-one delivery from the RabbitMQ work queue: every tick is handled
/// by exactly one worker, acked after it was handled, retried, and
/// dead-lettered with its reason when it cannot be.
#[derive(Parser)]
#[command(
    name = "worker",
    version,
    help_template = help_template(
        "handles what the producer queued in `ticks.work`; exits after 5 s without a tick",
        "worker --exit-when-idle 5s",
    )
)]
pub(crate) struct Cli {
    #[command(flatten)]
    config: WorkerConfig,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    supervise::main(Cli::parse().config).await
}
