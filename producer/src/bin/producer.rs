//! `producer`: parses flags and calls [`tickbridge_producer::run`].

use clap::Parser;
use tickbridge_model::telemetry::{init_tracing, install_metrics};
use tickbridge_model::Shutdown;
use tickbridge_producer::config::ProducerConfig;

tickbridge_producer::use_jemalloc!();

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cfg = ProducerConfig::parse();
    init_tracing(cfg.log_format);
    if let Err(e) = install_metrics(cfg.metrics_addr) {
        eprintln!("producer: {e}");
        std::process::exit(2);
    }
    // The pipeline runs as a task on the runtime's workers rather than on
    // this thread: a hand-off between the feed reader, the pipeline and a
    // sink then wakes a task on a worker that is already running instead of
    // unparking a separate OS thread for every batch.
    let run = tokio::spawn(tickbridge_producer::run(cfg, Shutdown::on_signals()));
    let outcome = match run.await {
        Ok(outcome) => outcome,
        Err(e) => {
            eprintln!("producer: pipeline task failed: {e}");
            std::process::exit(1);
        }
    };
    match outcome {
        Ok(report) => {
            println!("{}", serde_json::to_string(&report)?);
            if report.unconfirmed > 0 {
                std::process::exit(3);
            }
            Ok(())
        }
        Err(e) => {
            eprintln!("producer: {e}");
            std::process::exit(if e.is_terminal() { 2 } else { 1 });
        }
    }
}
