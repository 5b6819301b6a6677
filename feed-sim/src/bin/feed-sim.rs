//! `feed-sim`: parses flags and runs the simulator until Ctrl-C, SIGTERM or
//! `--duration`. The first stdout line is `feed-sim listening on ADDR`; the
//! last is the JSON report of what was sent.

use clap::Parser;
use tickbridge_feed_sim::{run, SimConfig};
use tickbridge_model::cli::help_template;
use tickbridge_model::telemetry::{init_tracing, LogFormat};
use tickbridge_model::Shutdown;

/// Offline exchange feed simulator (Binance, Coinbase, Kraken).
#[derive(Parser)]
#[command(
    name = "feed-sim",
    version,
    about,
    help_template = help_template(
        "Binance, Coinbase and Kraken trades on 127.0.0.1:9000 for two minutes",
        "feed-sim --listen 127.0.0.1:9000 --rate 20 --duration 120s",
    )
)]
pub(crate) struct Cli {
    #[command(flatten)]
    sim: SimConfig,
    /// Log format on stderr.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    cli.sim.validate()?;
    let listener = tokio::net::TcpListener::bind(cli.sim.listen).await?;
    println!("feed-sim listening on {}", listener.local_addr()?);
    let report = run(listener, cli.sim, Shutdown::on_signals()).await?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
