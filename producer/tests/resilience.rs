//! The producer under broker failure and shutdown: a RabbitMQ restart in the
//! middle of a run (on the test's own node), and SIGTERM during a busy run of
//! the real binary.

mod common;

use clap::Parser;
use common::*;
use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tickbridge_feed_sim::SimConfig;
use tickbridge_model::{GapReason, Message, Shutdown, Source};
use tickbridge_producer::config::ProducerConfig;
use tickbridge_testkit::RabbitNode;

/// RabbitMQ restarted mid-run: every tick that was confirmed is in the queue
/// afterwards, the producer reconnects by itself, and the unconfirmed ones
/// are re-published (or reported in a gap notice). Nothing vanishes.
///
/// The run has no fixed length: `rabbitmqctl stop` can take seconds to act on
/// a busy machine, so the producer streams until the node is back and then
/// some, and is stopped by its shutdown signal.
///
/// Long (~130 lines) on purpose: one scenario in time order (run, restart,
/// drain, reconcile), its assertions next to the step they check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_restart_mid_run_loses_nothing() {
    tickbridge_model::telemetry::init_test_tracing();
    let node = tokio::task::spawn_blocking(RabbitNode::start)
        .await
        .unwrap()
        .expect(
            "the test's own RabbitMQ node starts (scripts/stack.sh up installs rabbitmq-server)",
        );
    // At most 80 s of feed; the test stops the producer long before.
    let sim = SimConfig {
        rate: 1500.0,
        max_count: Some(120_000),
        symbols: vec!["BTC-USDT".into(), "ETH-USDT".into(), "SOL-USDT".into()],
        ..SimConfig::default()
    };
    let (_, sim) = tickbridge_feed_sim::spawn(sim).await.unwrap();
    let prefix = rand_name("tb-restart");
    let (url, amqp) = (sim.ws_base_for(Source::Binance), node.url());
    let cfg = ProducerConfig::try_parse_from(
        [
            &["producer"][..],
            &feed("binance", "BTC-USDT,ETH-USDT,SOL-USDT", &url),
            &rabbitmq_sink("rabbitmq", &amqp, &prefix),
            &["--max-seconds", "120"],
            &RIDE_OUT_RESTARTS,
            &["--stats-interval", "1s"],
        ]
        .concat(),
    )
    .unwrap();
    let shutdown = Shutdown::new();
    let run = tokio::spawn(tickbridge_producer::run(cfg, shutdown.clone()));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let node = tokio::task::spawn_blocking(move || {
        node.restart().expect("node restarts");
        node
    })
    .await
    .unwrap();
    // Longer than the producer's largest reconnect delay (1 s), so it is
    // publishing to the new node when it is told to stop.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !run.is_finished(),
        "the producer ran until the node was back"
    );
    shutdown.trigger();
    let report = run.await.unwrap().expect("producer survives the restart");
    sim.stop().await.unwrap();
    let rmq = &report.sinks[0];
    assert_eq!(report.unconfirmed, 0, "{report:?}");
    assert!(
        rmq.connects >= 2,
        "the producer reconnected by itself: {rmq:?}"
    );

    let queued = drain_queue(
        &node.url(),
        &format!("{prefix}.work"),
        Duration::from_secs(5),
    )
    .await;
    let mut ids = HashSet::new();
    let mut lost_reported = HashSet::new();
    for (m, _) in &queued {
        match m {
            Message::Tick(t) => {
                ids.insert(t.id.clone());
            }
            Message::Gap(g) if g.reason == GapReason::PublishFailed => {
                lost_reported.insert(format!("binance:{}:{}", g.symbol, g.missing_from.unwrap()));
            }
            Message::Gap(_) => {}
        }
    }
    // The feed sends trade ids 1, 2, ... per symbol without faults, so what
    // the producer read is a prefix per symbol: the highest id that arrived
    // (or was reported lost) bounds it, and the prefixes add up to the ticks
    // the producer says it read. A lost tail would show as a shortfall.
    let mut missing = 0;
    let mut read = 0;
    for sym in ["BTC-USDT", "ETH-USDT", "SOL-USDT"] {
        let prefix = format!("binance:{sym}:");
        let last = ids
            .iter()
            .chain(&lost_reported)
            .filter_map(|k| k.strip_prefix(&prefix)?.parse::<u64>().ok())
            .max()
            .unwrap_or(0);
        read += last;
        for id in 1..=last {
            let key = format!("{prefix}{id}");
            if !ids.contains(&key) && !lost_reported.contains(&key) {
                missing += 1;
            }
        }
    }
    let dups = queued.len() - ids.len();
    eprintln!(
        "restart: {} messages in queue, {} unique ticks, {dups} duplicates from re-publishing, {} reported lost, report {rmq:?}",
        queued.len(),
        ids.len(),
        lost_reported.len()
    );
    assert_eq!(missing, 0, "ticks vanished silently across the restart");
    assert_eq!(
        read, report.ticks,
        "the queue holds every tick read: {report:?}"
    );
    assert!(rmq.confirmed >= report.ticks, "{rmq:?}");
    assert!(
        report.ticks > 10_000,
        "the feed kept flowing across the restart: {report:?}"
    );
}

/// SIGTERM during a busy run: the binary exits within a few seconds, reports
/// zero unconfirmed, and the brokers hold exactly what it says it confirmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_busy_run_drains_everything() {
    let sim = SimConfig {
        rate: 0.0,
        ..SimConfig::default()
    };
    let (_, sim) = tickbridge_feed_sim::spawn(sim).await.unwrap();
    let prefix = rand_name("tb-term");
    let topic = rand_name("tb-term");
    let url = sim.ws_base_for(Source::Binance);
    let (amqp, brokers) = (amqp_url(), kafka_brokers());
    let mut child = Command::new(env!("CARGO_BIN_EXE_producer"))
        .args(feed("binance", "BTC-USDT,ETH-USDT,SOL-USDT", &url))
        .args(rabbitmq_sink("rabbitmq,kafka", &amqp, &prefix))
        .args(kafka_sink(&brokers, &topic))
        .args(["--stats-interval", "1s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("producer binary runs");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "producer is still running before SIGTERM"
    );
    let sent = Instant::now();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let took = sent.elapsed();
    sim.stop().await.unwrap();
    assert!(out.status.success(), "exit status {:?}", out.status);
    assert!(
        took < Duration::from_secs(20),
        "took {took:?} to drain and exit"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("report line")).expect("JSON report");
    eprintln!("SIGTERM → exit in {took:?}; report {report}");
    assert_eq!(report["unconfirmed"], 0);
    let confirmed = |sink: &str| {
        report["sinks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["sink"] == sink)
            .unwrap()["confirmed"]
            .as_u64()
            .unwrap() as usize
    };
    let (rc, kc) = (confirmed("rabbitmq"), confirmed("kafka"));
    assert!(
        rc > 1000 && kc > 1000,
        "it was busy: rabbitmq {rc}, kafka {kc}"
    );
    let queued = drain_queue(
        &amqp_url(),
        &format!("{prefix}.work"),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(
        queued.len(),
        rc,
        "RabbitMQ holds exactly what was confirmed"
    );
    let records = read_topic(&kafka_brokers(), &topic, kc + 1, Duration::from_secs(6)).await;
    assert_eq!(records.len(), kc, "Kafka holds exactly what was confirmed");
}
