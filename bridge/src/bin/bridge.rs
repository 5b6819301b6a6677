//! `bridge`: RabbitMQ ⇄ Kafka. All logic is in `tickbridge_bridge::run`;
//! this file parses flags, installs logging and the signal handler, and
//! turns an error into one line on stderr and a non-zero exit.

use clap::Parser;
use tickbridge_bridge::{BridgeConfig, Direction};
use tickbridge_model::cli::help_template;
use tickbridge_model::Shutdown;

/// Bridges ticks between RabbitMQ and Kafka, at least once, with ids and
/// headers intact. SIGTERM or Ctrl-C drains in-flight messages and exits.
#[derive(Parser)]
#[command(
    name = "bridge",
    version,
    help_template = help_template(
        "copies the RabbitMQ queue `ticks.work` into the Kafka topic `ticks-bridged` until Ctrl-C",
        "bridge rabbitmq-to-kafka --declare-topology --kafka-topic ticks-bridged",
    )
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    direction: Direction,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let config = BridgeConfig::from(cli.direction);
    // lapin's duplicates of errors the bridge reports itself (a missing
    // queue, refused credentials, returned messages) are dropped there;
    // `RUST_LOG=...,lapin=info` brings them back.
    tickbridge_model::telemetry::init_tracing(config.shared.log_format);
    let shutdown = Shutdown::on_signals();
    tickbridge_model::cli::exit("bridge", tickbridge_bridge::run(config, shutdown).await)
}
