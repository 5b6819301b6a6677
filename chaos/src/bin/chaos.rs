//! `chaos`: parses flags and runs one seeded scenario on private brokers
//! (the default, or `chaos run`), printing the reconciliation table and
//! exiting non-zero on any unexplained difference; or `chaos soak`, the
//! pipeline for millions of ticks with every binary's memory sampled,
//! exiting non-zero when a binary's memory is not flat, a process fails or
//! a tick is missing.

use clap::{Parser, Subcommand};
use tickbridge_chaos::{run, soak, ChaosConfig, SoakConfig};
use tickbridge_model::cli::help_template;
use tickbridge_model::telemetry::{init_tracing, LogFormat};
use tickbridge_model::Shutdown;

/// The whole tickbridge pipeline under seeded faults, reconciled by tick id.
#[derive(Parser)]
#[command(
    name = "chaos",
    version,
    about,
    args_conflicts_with_subcommands = true,
    help_template = help_template(
        "a seeded run on private brokers: a worker killed, RabbitMQ restarted, every tick reconciled",
        "chaos --seed 7 --faults worker-kill,rabbit-restart",
    )
)]
pub(crate) struct Cli {
    /// What to run; without one, a chaos scenario with the flags below.
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    config: ChaosConfig,
    /// Log format on stderr.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
}

/// The `chaos` subcommands.
#[derive(Subcommand)]
pub(crate) enum Command {
    /// One seeded chaos scenario, reconciled by tick id (what `chaos`
    /// alone runs).
    #[command(help_template = help_template(
        "a seeded run on private brokers: a worker killed, RabbitMQ restarted, every tick reconciled",
        "chaos run --seed 7 --faults worker-kill,rabbit-restart",
    ))]
    Run(ChaosConfig),
    /// Soak: millions of ticks through the pipeline on private brokers, every binary's memory, fds and threads sampled, and a flatness verdict in SOAK.md.
    #[command(help_template = help_template(
        "a smoke run of 200,000 ticks on private brokers, samples every 2 s",
        "chaos soak --ticks 200000 --interval 2",
    ))]
    Soak(SoakConfig),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    match cli.command {
        None => run_scenario(cli.config).await,
        Some(Command::Run(config)) => run_scenario(config).await,
        Some(Command::Soak(config)) => run_soak(config).await,
    }
}

async fn run_scenario(config: ChaosConfig) -> std::process::ExitCode {
    match run(config).await {
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

async fn run_soak(config: SoakConfig) -> std::process::ExitCode {
    match soak(config, Shutdown::on_signals()).await {
        Ok(o) => {
            if let Some(dir) = &o.kept {
                println!("chaos soak: run directory kept: {}", dir.display());
            }
            if o.ok {
                std::process::ExitCode::SUCCESS
            } else {
                eprintln!("chaos soak: FAIL (see the problems above and the report)");
                std::process::ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("chaos soak: error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
