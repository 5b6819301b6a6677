//! `consumer`: broadcast with replay from Kafka or the RabbitMQ stream. All
//! logic is in `tickbridge_consumer::consumer`.

use clap::Parser;
use tickbridge_consumer::consumer::ConsumerConfig;
use tickbridge_consumer::supervise;
use tickbridge_model::cli::help_template;

/// Broadcast delivery with replay: every Kafka consumer group (or RabbitMQ
/// stream reader) receives every tick, and `--replay-from` re-reads history.
#[derive(Parser)]
#[command(
    name = "consumer",
    version,
    help_template = help_template(
        "re-reads the Kafka topic `ticks` from the start, moving no group; exits after 5 s of quiet",
        "consumer --replay-from earliest --no-commit --exit-when-idle 5s",
    )
)]
pub(crate) struct Cli {
    #[command(flatten)]
    config: ConsumerConfig,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    supervise::main(Cli::parse().config).await
}
