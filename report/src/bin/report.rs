//! `report`: draws the streaming-vs-polling SVG of a run. All logic is in
//! `tickbridge_report`.

use clap::Parser;
use tickbridge_model::cli::help_template;
use tickbridge_report::ReportConfig;

/// Reads the producer's JSON Lines (`stream_ws_*.jsonl`, `poll_*.jsonl`) and
/// writes one SVG comparing WebSocket and polling: latency distribution and
/// ticks received over time.
#[derive(Parser)]
#[command(
    name = "report",
    version,
    help_template = help_template(
        "after producer `--via ws` and `--via poll` runs with `--sink jsonl --out-dir out/example`",
        "report --dir out/example",
    )
)]
pub(crate) struct Cli {
    #[command(flatten)]
    config: ReportConfig,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match tickbridge_report::run(&cli.config) {
        Ok(r) => {
            for s in [&r.ws, &r.poll] {
                println!(
                    "{:<10} ticks {:>7}  exchange→received p50 {:>9.2} ms  p99 {:>9.2} ms  gap notices {}",
                    s.transport.label(),
                    s.len(),
                    s.percentile(50.0).unwrap_or(0.0),
                    s.percentile(99.0).unwrap_or(0.0),
                    s.gap_notices
                );
            }
            if r.malformed > 0 {
                eprintln!(
                    "report: skipped {} malformed line(s); first: {}",
                    r.malformed,
                    r.first_malformed.as_deref().unwrap_or("?")
                );
            }
            println!("chart: {}", r.svg.display());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("report: error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
