//! `consumer`: broadcast with replay from Kafka or the RabbitMQ stream. All
//! logic is in `tickbridge_consumer::consumer`.

use clap::Parser;
use tickbridge_consumer::consumer::{self, ConsumerConfig};
use tickbridge_consumer::supervise::supervise;
use tickbridge_model::cli::help_template;
use tickbridge_model::Shutdown;

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
    let cli = Cli::parse();
    tickbridge_model::telemetry::init_tracing(cli.config.common.log_format);
    let shutdown = Shutdown::on_signals();
    let config = cli.config;
    let result = async {
        consumer::preflight(&config).await?;
        supervise(config.role(), &shutdown, || {
            consumer::run(config.clone(), shutdown.clone())
        })
        .await
    };
    tickbridge_model::cli::exit("consumer", result.await)
}
