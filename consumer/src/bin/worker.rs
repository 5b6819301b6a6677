//! `worker`: consumes the RabbitMQ work queue with manual acks, retries and
//! a dead-letter queue. All logic is in `tickbridge_consumer::worker`.

use clap::Parser;
use tickbridge_consumer::supervise::supervise;
use tickbridge_consumer::worker::{self, WorkerConfig};
use tickbridge_model::cli::help_template;
use tickbridge_model::Shutdown;

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
    let cli = Cli::parse();
    tickbridge_model::telemetry::init_tracing(cli.config.common.log_format);
    let shutdown = Shutdown::on_signals();
    let config = cli.config;
    let result = async {
        worker::preflight(&config).await?;
        supervise(worker::ROLE, &shutdown, || {
            worker::run(config.clone(), shutdown.clone())
        })
        .await
    };
    tickbridge_model::cli::exit("worker", result.await)
}
