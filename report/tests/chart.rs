//! The report against real JSON Lines: feed-sim in-process, one producer
//! streaming over WebSocket and one polling REST, both writing through the
//! producer's JSON Lines sink; then the report draws them.

use clap::Parser;
use std::path::Path;
use tickbridge_feed_sim::SimConfig;
use tickbridge_model::Shutdown;
use tickbridge_producer::config::ProducerConfig;
use tickbridge_report::{ReportConfig, Transport};

fn producer(args: &[&str]) -> ProducerConfig {
    let mut v = vec!["producer"];
    v.extend_from_slice(args);
    ProducerConfig::try_parse_from(v).expect("valid producer flags")
}

/// Streams and polls the same simulated market for 3 s into `dir`.
async fn make_run(dir: &Path) -> (u64, u64) {
    let sim = SimConfig {
        rate: 100.0,
        symbols: vec!["BTC-USDT".into(), "ETH-USDT".into()],
        ..SimConfig::default()
    };
    let (addr, sim) = tickbridge_feed_sim::spawn(sim).await.unwrap();
    let d = dir.to_str().unwrap();
    let ws_url = format!("ws://{addr}");
    let http = sim.http_base();
    let common = [
        "--symbols",
        "BTC-USDT,ETH-USDT",
        "--sink",
        "jsonl",
        "--out-dir",
        d,
    ];
    let mut ws_args = vec![
        "--exchange",
        "binance",
        "--url",
        &ws_url,
        "--max-seconds",
        "3",
    ];
    ws_args.extend_from_slice(&common);
    let mut poll_args = vec![
        "--exchange",
        "binance",
        "--via",
        "poll",
        "--rest-url",
        &http,
        "--poll-interval",
        "500ms",
        "--poll-limit",
        "40",
        "--max-seconds",
        "3",
    ];
    poll_args.extend_from_slice(&common);
    let (ws, poll) = tokio::join!(
        tickbridge_producer::run(producer(&ws_args), Shutdown::new()),
        tickbridge_producer::run(producer(&poll_args), Shutdown::new())
    );
    let (ws, poll) = (ws.unwrap(), poll.unwrap());
    sim.stop().await.unwrap();
    assert!(ws.ticks > 100 && poll.ticks > 10, "ws {ws:?} poll {poll:?}");
    (ws.ticks, poll.ticks)
}

fn count_ticks(dir: &Path, prefix: &str) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        if name.starts_with(prefix) && name.ends_with(".jsonl") {
            n += std::fs::read_to_string(&p)
                .unwrap()
                .lines()
                .filter(|l| l.contains("\"schema\":\"tick.v1\""))
                .count();
        }
    }
    n
}

/// The binary's flags, parsed as the binary parses them.
#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    config: ReportConfig,
}

fn config(dir: &Path) -> ReportConfig {
    Cli::try_parse_from(["report", "--dir", dir.to_str().unwrap()])
        .expect("valid report flags")
        .config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draws_both_transports_from_a_real_run() {
    let out = tempfile::tempdir().unwrap();
    let (ws_ticks, poll_ticks) = make_run(out.path()).await;

    let report = tickbridge_report::run(&config(out.path())).expect("report");
    // Every tick the producers wrote is in its series, none elsewhere.
    assert_eq!(report.ws.transport, Transport::Ws);
    assert_eq!(report.ws.len(), count_ticks(out.path(), "stream_ws_"));
    assert_eq!(report.poll.len(), count_ticks(out.path(), "poll_"));
    assert_eq!(report.ws.len() as u64, ws_ticks);
    assert_eq!(report.poll.len() as u64, poll_ticks);
    assert_eq!(report.malformed, 0);
    // A 500 ms poll of 40 trades at 100 trades/s misses trades and says so;
    // polling is slower than streaming.
    assert!(report.poll.gap_notices > 0, "{:?}", report.poll.gap_notices);
    let (ws_p50, poll_p50) = (
        report.ws.percentile(50.0).unwrap(),
        report.poll.percentile(50.0).unwrap(),
    );
    assert!(
        poll_p50 > ws_p50,
        "poll p50 {poll_p50} ms vs ws p50 {ws_p50} ms"
    );

    assert_eq!(report.svg, out.path().join("streaming-vs-polling.svg"));
    let svg = std::fs::read_to_string(&report.svg).expect("the SVG was written");
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    for label in [
        "WebSocket",
        "REST poll",
        "Latency",
        "Ticks received over time",
    ] {
        assert!(svg.contains(label), "the SVG has no {label:?}");
    }
    assert!(svg.contains(&format!("WebSocket: {} ticks", report.ws.len())));
    assert!(svg.contains(&format!("REST poll: {} ticks", report.poll.len())));
    // One line per series in each panel, in the series' colour.
    for color in ["#1F77B4", "#FF7F0E"] {
        let lines = svg
            .matches("<polyline")
            .zip(svg.split("<polyline").skip(1))
            .filter(|(_, rest)| rest.split('>').next().unwrap().contains(color))
            .count();
        assert!(lines >= 2, "{lines} polylines in {color}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_malformed_lines_and_refuses_a_missing_series() {
    let out = tempfile::tempdir().unwrap();
    make_run(out.path()).await;

    // A broken line and a tick that fails the schema are counted and
    // skipped; the chart is still drawn.
    let bad = out.path().join("poll_2099-01-01.jsonl");
    std::fs::write(
        &bad,
        "not json at all\n\n{\"schema\":\"tick.v1\",\"id\":\"x\"}\n\u{0}\u{1}\n",
    )
    .unwrap();
    let report = tickbridge_report::run(&config(out.path())).expect("report");
    assert_eq!(report.malformed, 3, "{:?}", report.first_malformed);
    let first = report.first_malformed.unwrap();
    assert!(first.contains("poll_2099-01-01.jsonl:1:"), "{first}");

    // Without any polled tick there is nothing to compare with: a clear error.
    let only_ws = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(out.path()).unwrap() {
        let p = e.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("stream_ws_")
        {
            std::fs::copy(&p, only_ws.path().join(p.file_name().unwrap())).unwrap();
        }
    }
    let err = tickbridge_report::run(&config(only_ws.path())).unwrap_err();
    assert!(err.to_string().contains("no REST poll tick"), "{err}");
    let empty = tempfile::tempdir().unwrap();
    let err = tickbridge_report::run(&config(empty.path())).unwrap_err();
    assert!(err.to_string().contains("no stream_ws_*.jsonl"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_prints_both_series_and_the_svg_path() {
    let out = tempfile::tempdir().unwrap();
    make_run(out.path()).await;
    let svg = out.path().join("sub/chart.svg");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_report"))
        .args([
            "--dir",
            out.path().to_str().unwrap(),
            "--out",
            svg.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        stdout.contains("WebSocket") && stdout.contains("REST poll"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("chart: {}", svg.display())),
        "{stdout}"
    );
    assert!(svg.exists());
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_report"))
        .args(["--dir", "/nonexistent/tickbridge-run"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("report: error: /nonexistent/tickbridge-run")
    );
}
