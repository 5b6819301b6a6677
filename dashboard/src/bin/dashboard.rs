//! `dashboard`: parses flags, raises the open-file limit, serves the page
//! until Ctrl-C or SIGTERM, and writes `--summary-json`.

use anyhow::Context;
use clap::Parser;
use tickbridge_dashboard::{limits, run, DashboardConfig};
use tickbridge_model::cli::help_template;
use tickbridge_model::telemetry::init_tracing;
use tickbridge_model::Shutdown;

/// Live view of the pipeline in the browser: reads Kafka as one more
/// consumer group, scrapes the other processes' /metrics, and pushes both
/// to pages over Server-Sent Events whose ids are Kafka positions.
#[derive(Parser)]
#[command(
    name = "dashboard",
    version,
    help_template = help_template(
        "the page on http://127.0.0.1:8088/ for the producer's `ticks` topic, from its start",
        "dashboard --kafka-topic ticks --start earliest",
    )
)]
pub(crate) struct Cli {
    #[command(flatten)]
    cfg: DashboardConfig,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(cli.cfg.log_format);
    cli.cfg.validate()?;
    // Each client is a socket; leave room for Kafka's and the scrapes'.
    limits::raise_nofile(cli.cfg.max_clients as u64 + 1024);
    let listener = tokio::net::TcpListener::bind(cli.cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cli.cfg.listen))?;
    // The first stdout line is the URL, for scripts.
    println!("dashboard on http://{}/", listener.local_addr()?);
    let summary = cli.cfg.summary_json.clone();
    let state = run(cli.cfg, listener, Shutdown::on_signals()).await?;
    if let Some(path) = summary {
        std::fs::write(&path, serde_json::to_vec_pretty(&state)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}
