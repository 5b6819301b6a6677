//! RabbitMQ down for 60 s under load, on the test's own node: the producer
//! binary (a child process, so the RSS sampled from `/proc` is its own) keeps
//! its memory bounded by `--max-buffer`, never reports more than
//! `--max-buffer` buffered on `/metrics`, and after the restart the outcome
//! is exactly what the overflow policy promises:
//!
//! * `--overflow block`: every tick the simulator sent arrives, nothing is
//!   dropped, no gap notice is published;
//! * `--overflow drop-oldest`: drops are counted, `buffer_overflow` gap
//!   notices cover exactly the dropped ticks, nothing else is missing.
//!
//! **Memory bound.** A buffered message is one `Arc<Outgoing>`: the `Tick`
//! (a few short strings and decimals) plus its ~350-byte JSON body, about
//! 1 KiB. At most `--max-buffer` messages wait in the buffer and
//! `--confirm-window` more wait in the sink's re-publish queue, so the bound
//! is RSS(before the outage) + (max_buffer + confirm_window) × 4 KiB (4× the
//! measured size, for allocator slack), 23.4 MiB with the values below. The
//! simulator sends 1,200 ticks/s, so a queue that grew without bound during
//! the outage would hold ~70,000 messages (≥ 70 MiB) and break it.
//!
//! `TB_OUTAGE_SECS` shortens the outage (default 60) for quick local runs.

mod common;

use common::*;
use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tickbridge_feed_sim::SimConfig;
use tickbridge_model::{GapReason, Message, Source};
use tickbridge_testkit::{free_port, RabbitNode};

const MAX_BUFFER: u64 = 5_000;
const CONFIRM_WINDOW: u64 = 1_000;
const BYTES_PER_MESSAGE: u64 = 4 * 1024;
const RATE_PER_SYMBOL: f64 = 400.0;
const SYMBOLS: [&str; 3] = ["BTC-USDT", "ETH-USDT", "SOL-USDT"];
/// Load before the outage, so the baseline RSS is that of a busy producer.
const WARM: Duration = Duration::from_secs(8);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Up,
    Down,
    After,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    phase: Phase,
    rss_kib: u64,
    buffered: Option<u64>,
    dropped_total: Option<u64>,
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Value of one Prometheus series (`name{labels} value`) in an exposition.
fn metric(text: &str, series: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))?
        .rsplit(' ')
        .next()?
        .parse::<f64>()
        .ok()
        .map(|v| v as u64)
}

struct Outcome {
    report: serde_json::Value,
    samples: Vec<Sample>,
    sent: Vec<(String, u64, u64)>,
    connections: u64,
    queued: Vec<Message>,
    outage: Duration,
}

impl Outcome {
    fn rabbitmq(&self, field: &str) -> u64 {
        self.report["sinks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["sink"] == "rabbitmq")
            .unwrap()[field]
            .as_u64()
            .unwrap()
    }

    fn max_buffered(&self, phase: Phase) -> u64 {
        self.samples
            .iter()
            .filter(|s| s.phase == phase)
            .filter_map(|s| s.buffered)
            .max()
            .unwrap_or(0)
    }

    /// RSS in the last seconds before the outage, and the bound derived from
    /// the buffer.
    fn rss_baseline_and_bound(&self) -> (u64, u64) {
        let up: Vec<u64> = self
            .samples
            .iter()
            .filter(|s| s.phase == Phase::Up)
            .map(|s| s.rss_kib)
            .collect();
        let base = *up[up.len().saturating_sub(8)..].iter().max().unwrap();
        (
            base,
            base + (MAX_BUFFER + CONFIRM_WINDOW) * BYTES_PER_MESSAGE / 1024,
        )
    }

    fn max_rss(&self, phase: Phase) -> u64 {
        self.samples
            .iter()
            .filter(|s| s.phase == phase)
            .map(|s| s.rss_kib)
            .max()
            .unwrap_or(0)
    }

    fn ticks_delivered(&self) -> HashSet<(String, u64)> {
        self.queued
            .iter()
            .filter_map(|m| match m {
                Message::Tick(t) => Some((t.symbol.to_string(), t.trade_id)),
                Message::Gap(_) => None,
            })
            .collect()
    }

    fn gaps(&self) -> Vec<&tickbridge_model::GapNotice> {
        self.queued
            .iter()
            .filter_map(|m| match m {
                Message::Gap(g) => Some(g),
                Message::Tick(_) => None,
            })
            .collect()
    }
}

/// Runs the producer binary against the simulator and a private node, stops
/// the node for the outage under load, starts it again and collects what
/// arrived.
///
/// Long (~170 lines) on purpose: one timed scenario, read top to bottom,
/// whose steps share the child, the node, the sampler and their clocks.
async fn outage_run(policy: &str) -> Outcome {
    let outage = Duration::from_secs(
        std::env::var("TB_OUTAGE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60),
    );
    let node = tokio::task::spawn_blocking(RabbitNode::start)
        .await
        .unwrap()
        .expect(
            "the test's own RabbitMQ node starts (scripts/stack.sh up installs rabbitmq-server)",
        );
    // The feed runs through warm-up, the outage and ~30 s more (stopping
    // and booting a node takes 10-30 s on a busy machine), so the producer
    // is under load for the whole outage.
    let per_symbol =
        (RATE_PER_SYMBOL * (WARM + outage + Duration::from_secs(30)).as_secs_f64()).round() as u64;
    let total = per_symbol * SYMBOLS.len() as u64;
    let sim = SimConfig {
        rate: RATE_PER_SYMBOL,
        max_count: Some(per_symbol),
        symbols: SYMBOLS.iter().map(|s| s.to_string()).collect(),
        ..SimConfig::default()
    };
    let (_, sim) = tickbridge_feed_sim::spawn(sim).await.unwrap();
    let prefix = rand_name(&format!("tb-down-{policy}"));
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let log = tempfile::NamedTempFile::new().unwrap();
    let (symbols, url, amqp) = (
        SYMBOLS.join(","),
        sim.ws_base_for(Source::Binance),
        node.url(),
    );
    let child = Command::new(env!("CARGO_BIN_EXE_producer"))
        .args(feed("binance", &symbols, &url))
        .args(rabbitmq_sink("rabbitmq", &amqp, &prefix))
        .args([
            "--max-buffer",
            &MAX_BUFFER.to_string(),
            "--confirm-window",
            &CONFIRM_WINDOW.to_string(),
            "--overflow",
            policy,
            "--max-events",
            &total.to_string(),
            "--max-seconds",
            &(outage.as_secs() + 120).to_string(),
        ])
        .args(RIDE_OUT_RESTARTS)
        .args(["--stats-interval", "500ms", "--metrics-addr", &metrics_addr])
        .stdout(Stdio::piped())
        .stderr(log.reopen().unwrap())
        .spawn()
        .expect("producer binary runs");
    let pid = child.id();

    // Sampler: the child's RSS from /proc and its /metrics, every 250 ms.
    let phase = std::sync::Arc::new(std::sync::Mutex::new(Phase::Up));
    let sampler = {
        let phase = phase.clone();
        let url = format!("http://{metrics_addr}/metrics");
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut out = Vec::new();
            while let Some(rss_kib) = rss_kib(pid) {
                let text = match http.get(&url).timeout(Duration::from_secs(1)).send().await {
                    Ok(r) => r.text().await.unwrap_or_default(),
                    Err(_) => String::new(),
                };
                out.push(Sample {
                    phase: *phase.lock().unwrap(),
                    rss_kib,
                    buffered: metric(&text, "tickbridge_producer_buffered{sink=\"rabbitmq\"}"),
                    dropped_total: metric(
                        &text,
                        "tickbridge_producer_dropped_total{sink=\"rabbitmq\"}",
                    ),
                });
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            out
        })
    };

    tokio::time::sleep(WARM).await;
    *phase.lock().unwrap() = Phase::Down;
    let node = tokio::task::spawn_blocking(move || {
        node.stop();
        node
    })
    .await
    .unwrap();
    // From here the port is closed: nothing answers for at least `outage`.
    let stopped_at = Instant::now();
    tokio::time::sleep(outage).await;
    let node = tokio::task::spawn_blocking(move || {
        node.restart().expect("node starts again");
        node
    })
    .await
    .unwrap();
    let outage = stopped_at.elapsed();
    *phase.lock().unwrap() = Phase::After;

    let out = tokio::time::timeout(
        Duration::from_secs(180),
        tokio::task::spawn_blocking(move || child.wait_with_output()),
    )
    .await
    .expect("the producer finishes within 3 minutes of the restart")
    .unwrap()
    .unwrap();
    let samples = sampler.await.unwrap();
    let sim_report = sim.stop().await.unwrap();
    let logs = std::fs::read_to_string(log.path()).unwrap_or_default();
    let tail: String = logs
        .lines()
        .rev()
        .take(30)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        out.status.success(),
        "producer exit status {:?}; log tail:\n{tail}",
        out.status
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("report line")).expect("JSON report");
    let sent = sim_report
        .symbols
        .iter()
        .flat_map(|s| {
            s.sent_ranges
                .iter()
                .map(|r| (s.symbol.clone(), r.from, r.to))
        })
        .collect();
    let queued = drain_queue(
        &node.url(),
        &format!("{prefix}.work"),
        Duration::from_secs(5),
    )
    .await
    .into_iter()
    .map(|(m, _)| m)
    .collect();
    Outcome {
        report,
        samples,
        sent,
        connections: sim_report.connections,
        queued,
        outage,
    }
}

/// Checks common to both policies: the outage was real, RSS stayed under
/// the bound and `/metrics` never showed more than `--max-buffer` buffered.
fn check_bounds(o: &Outcome, policy: &str) {
    let (base, bound) = o.rss_baseline_and_bound();
    let down = o.max_rss(Phase::Down);
    let buffered = o.max_buffered(Phase::Down);
    let all_buffered = o.samples.iter().filter_map(|s| s.buffered).max();
    eprintln!(
        "{policy}: broker unreachable {:.1}s, producer RSS before {:.1} MiB, max while down {:.1} MiB, after {:.1} MiB (bound {:.1} MiB); max buffered while down {buffered} (limit {MAX_BUFFER}); report {}",
        o.outage.as_secs_f64(),
        base as f64 / 1024.0,
        down as f64 / 1024.0,
        o.max_rss(Phase::After) as f64 / 1024.0,
        bound as f64 / 1024.0,
        o.report
    );
    assert!(
        o.samples.iter().filter(|s| s.phase == Phase::Down).count() >= 20,
        "sampled the producer while the broker was down"
    );
    assert!(
        down <= bound,
        "{policy}: producer RSS {down} KiB while the broker was down exceeds {bound} KiB \
         (baseline {base} KiB + (max_buffer + confirm_window) x {BYTES_PER_MESSAGE} B)"
    );
    assert!(
        all_buffered.unwrap_or(0) <= MAX_BUFFER,
        "{policy}: /metrics showed {all_buffered:?} buffered, over --max-buffer {MAX_BUFFER}"
    );
    // The gauge is live during the outage (also under `block`, where the
    // pipeline waits for room): it shows the buffer full.
    assert_eq!(
        buffered, MAX_BUFFER,
        "{policy}: /metrics shows the buffer full while the broker is down"
    );
    assert_eq!(
        o.report["unconfirmed"], 0,
        "{policy}: drained after restart"
    );
    assert!(
        o.rabbitmq("connects") >= 2,
        "{policy}: the producer reconnected by itself"
    );
    assert_eq!(o.rabbitmq("failed"), 0, "{policy}: nothing refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_down_60s_under_block_delivers_every_tick() {
    let o = outage_run("block").await;
    check_bounds(&o, "block");
    assert_eq!(o.rabbitmq("dropped"), 0, "block never drops");
    assert_eq!(
        o.connections, 1,
        "the feed kept its one connection through the outage (TCP backpressure, no reconnect)"
    );
    let delivered = o.ticks_delivered();
    let mut sent = 0u64;
    let mut missing = Vec::new();
    for (sym, from, to) in &o.sent {
        for id in *from..=*to {
            sent += 1;
            if !delivered.contains(&(sym.clone(), id)) {
                missing.push((sym.clone(), id));
            }
        }
    }
    let gaps = o.gaps();
    eprintln!(
        "block: simulator sent {sent}, {} messages in the work queue, {} distinct ticks, {} gap notices, {} missing",
        o.queued.len(),
        delivered.len(),
        gaps.len(),
        missing.len()
    );
    assert_eq!(
        sent,
        o.report["ticks"].as_u64().unwrap(),
        "the producer took every tick the simulator sent"
    );
    assert!(
        missing.is_empty(),
        "ticks sent but not delivered: {} (first {:?})",
        missing.len(),
        missing.first()
    );
    assert!(gaps.is_empty(), "no gap notices under block: {gaps:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_down_60s_under_drop_oldest_reports_every_drop() {
    let o = outage_run("drop-oldest").await;
    check_bounds(&o, "drop-oldest");
    let dropped = o.rabbitmq("dropped");
    let delivered = o.ticks_delivered();
    let gaps = o.gaps();
    assert!(
        gaps.iter().all(|g| g.reason == GapReason::BufferOverflow),
        "only buffer_overflow notices: {gaps:?}"
    );
    let notices_total: u64 = gaps.iter().map(|g| g.missing_count.unwrap()).sum();
    // Every tick the simulator sent is delivered, or it is missing and a
    // notice covers it; and the notices cover exactly `dropped` missing ticks.
    let mut sent = 0u64;
    let mut covered_missing = 0u64;
    let mut unexplained = Vec::new();
    for (sym, from, to) in &o.sent {
        for id in *from..=*to {
            sent += 1;
            if delivered.contains(&(sym.clone(), id)) {
                continue;
            }
            let covered = gaps.iter().any(|g| {
                *g.symbol == **sym && g.missing_from.unwrap() <= id && id <= g.missing_to.unwrap()
            });
            if covered {
                covered_missing += 1;
            } else {
                unexplained.push((sym.clone(), id));
            }
        }
    }
    let metric_dropped = o.samples.iter().filter_map(|s| s.dropped_total).max();
    eprintln!(
        "drop-oldest: simulator sent {sent}, delivered {} distinct ticks, dropped {dropped} (report), {metric_dropped:?} (/metrics), {} gap notices covering {notices_total}, missing and covered {covered_missing}, unexplained {}",
        delivered.len(),
        gaps.len(),
        unexplained.len()
    );
    let (rate, secs) = (3.0 * RATE_PER_SYMBOL, o.outage.as_secs_f64());
    assert!(
        dropped as f64 > 0.5 * rate * secs - (MAX_BUFFER + CONFIRM_WINDOW) as f64,
        "the outage made the producer drop (dropped {dropped})"
    );
    assert!(
        unexplained.is_empty(),
        "ticks missing without a gap notice: {} (first {:?})",
        unexplained.len(),
        unexplained.first()
    );
    assert_eq!(notices_total, dropped, "gap notices total = drops");
    assert_eq!(
        covered_missing, dropped,
        "what is missing is what was dropped"
    );
    assert_eq!(
        metric_dropped,
        Some(dropped),
        "/metrics counts the drops as the report does"
    );
    assert_eq!(
        delivered.len() as u64 + dropped,
        sent,
        "delivered + dropped = sent"
    );
}
