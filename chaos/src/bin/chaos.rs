//! `chaos`: parses flags, runs one scenario on private brokers, prints the
//! reconciliation table and exits non-zero on any unexplained difference.

use clap::Parser;
use tickbridge_chaos::{run, ChaosConfig};
use tickbridge_model::cli::help_template;
use tickbridge_model::telemetry::{init_tracing, LogFormat};

/// The whole tickbridge pipeline under seeded faults, reconciled by tick id.
#[derive(Parser)]
#[command(
    name = "chaos",
    version,
    about,
    help_template = help_template(
        "a seeded run on private brokers: a worker killed, RabbitMQ restarted, every tick reconciled",
        "chaos --seed 7 --faults worker-kill,rabbit-restart",
    )
)]
pub(crate) struct Cli {
    #[command(flatten)]
    config: ChaosConfig,
    /// Log format on stderr.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    match run(cli.config).await {
        Ok(o) => {
            println!("{}", o.table);
            if o.ok {
                std::process::ExitCode::SUCCESS
            } else {
                eprintln!(
                    "chaos: unexplained differences with seed {} (replay: --seed {})",
                    o.seed, o.seed
                );
                std::process::ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("chaos: error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
