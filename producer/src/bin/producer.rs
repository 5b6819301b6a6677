//! `producer`: parses flags and calls [`tickbridge_producer::run`].

use clap::Parser;
use tickbridge_core::telemetry::{init_tracing, install_metrics};
use tickbridge_core::Shutdown;
use tickbridge_producer::config::ProducerConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cfg = ProducerConfig::parse();
    init_tracing(cfg.log_format);
    if let Err(e) = install_metrics(cfg.metrics_addr) {
        eprintln!("producer: {e}");
        std::process::exit(2);
    }
    match tickbridge_producer::run(cfg, Shutdown::on_signals()).await {
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
