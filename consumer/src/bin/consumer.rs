//! `consumer`: broadcast with replay from Kafka or the RabbitMQ stream. All
//! logic is in `tickbridge_consumer::consumer`.

use clap::Parser;
use tickbridge_consumer::consumer::{self, ConsumerConfig};
use tickbridge_core::Shutdown;

/// Broadcast delivery with replay: every Kafka consumer group (or RabbitMQ
/// stream reader) receives every tick, and `--replay-from` re-reads history.
#[derive(Parser)]
#[command(name = "consumer", version)]
struct Cli {
    #[command(flatten)]
    config: ConsumerConfig,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tickbridge_core::telemetry::init_tracing(cli.config.common.log_format);
    match consumer::run(cli.config, Shutdown::on_signals()).await {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("consumer: error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
