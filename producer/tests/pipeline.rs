//! Producer against the feed simulator and the real brokers.

mod common;

use clap::Parser;
use common::*;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;
use tickbridge_feed_sim::SimConfig;
use tickbridge_model::{Message, Shutdown, Source};
use tickbridge_producer::config::ProducerConfig;

fn producer_cfg(args: &[&str]) -> ProducerConfig {
    let mut v = vec!["producer", "--stats-interval", "2s"];
    v.extend_from_slice(args);
    ProducerConfig::try_parse_from(v).expect("valid flags")
}

/// 100,002 ticks (3 symbols × 2 exchange formats × 16,667) from the simulator
/// at full speed reach the RabbitMQ work queue and the Kafka topic exactly
/// once each, validate against the schema, and keep per-symbol order in Kafka.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_ticks_arrive_exactly_once_in_both_brokers() {
    tickbridge_model::telemetry::init_test_tracing();
    const PER_SYMBOL: u64 = 16_667;
    let sim = SimConfig {
        rate: 0.0,
        max_count: Some(PER_SYMBOL),
        symbols: vec!["BTC-USDT".into(), "ETH-USDT".into(), "SOL-USDT".into()],
        ..SimConfig::default()
    };
    let (_, sim) = tickbridge_feed_sim::spawn(sim).await.unwrap();
    let prefix = rand_name("tb-prod");
    let topic = rand_name("tb-prod");
    let (amqp, brokers) = (amqp_url(), kafka_brokers());
    let mut runs = Vec::new();
    for ex in [Source::Binance, Source::Coinbase] {
        let url = sim.ws_base_for(ex);
        let max = (3 * PER_SYMBOL).to_string();
        let cfg = producer_cfg(
            &[
                &feed(ex.as_str(), "BTC-USDT,ETH-USDT,SOL-USDT", &url)[..],
                &rabbitmq_sink("rabbitmq,kafka", &amqp, &prefix),
                &kafka_sink(&brokers, &topic),
                &[
                    "--kafka-partitions",
                    "3",
                    "--max-events",
                    &max,
                    "--max-seconds",
                    "300",
                    "--drain-timeout",
                    "120s",
                ],
            ]
            .concat(),
        );
        runs.push(tokio::spawn(tickbridge_producer::run(cfg, Shutdown::new())));
    }
    let mut total = 0;
    for r in runs {
        let report = r.await.unwrap().expect("producer run");
        assert_eq!(report.ticks, 3 * PER_SYMBOL, "{report:?}");
        assert_eq!(report.unconfirmed, 0, "{report:?}");
        assert_eq!(report.gaps, 0, "no faults, no gaps: {report:?}");
        for s in &report.sinks {
            assert_eq!(s.confirmed, 3 * PER_SYMBOL, "{s:?}");
        }
        total += report.ticks;
    }
    assert_eq!(total, 100_002);

    let expected: HashSet<String> = [Source::Binance, Source::Coinbase]
        .iter()
        .flat_map(|ex| {
            ["BTC-USDT", "ETH-USDT", "SOL-USDT"]
                .into_iter()
                .flat_map(move |s| (1..=PER_SYMBOL).map(move |id| format!("{ex}:{s}:{id}")))
        })
        .collect();

    // RabbitMQ work queue: each tick exactly once.
    let queued = drain_queue(
        &amqp_url(),
        &format!("{prefix}.work"),
        Duration::from_secs(5),
    )
    .await;
    let ids: Vec<String> = queued
        .iter()
        .map(|(m, _)| m.as_ref().id().to_string())
        .collect();
    let unique: HashSet<String> = ids.iter().cloned().collect();
    assert_eq!(ids.len(), 100_002, "queue holds every tick once");
    assert_eq!(unique, expected);

    // Kafka: each tick exactly once, per-symbol order kept.
    let records = read_topic(&kafka_brokers(), &topic, 100_002, Duration::from_secs(20)).await;
    assert_eq!(records.len(), 100_002);
    let mut last: BTreeMap<String, u64> = BTreeMap::new();
    let mut seen = HashSet::new();
    for (_, m) in &records {
        let Message::Tick(t) = m else {
            panic!("unexpected gap notice")
        };
        assert!(seen.insert(t.id.clone()), "duplicate {}", t.id);
        let key = format!("{}:{}", t.source, t.symbol);
        if let Some(prev) = last.insert(key, t.trade_id) {
            assert!(
                t.trade_id > prev,
                "order broken for {}: {} after {prev}",
                t.id,
                t.trade_id
            );
        }
    }
    assert_eq!(seen, expected);
    sim.stop().await.unwrap();
}

/// With closes, gaps, duplicates and malformed frames injected, every
/// injected gap is reported by a gap notice, duplicates are dropped,
/// malformed frames are counted, and the producer keeps running. Every
/// trade id the simulator's market produced is either delivered or covered
/// by a gap notice: no silent loss.
///
/// Long (~120 lines) on purpose: one run whose assertions, one per kind of
/// injected fault, read the same collected output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_faults_are_detected_and_survived() {
    tickbridge_model::telemetry::init_test_tracing();
    let sim = SimConfig {
        rate: 1000.0,
        max_count: Some(4000),
        symbols: vec!["BTC-USDT".into(), "ETH-USDT".into()],
        gap_every: Some(450),
        gap_size: 3,
        dup_every: Some(170),
        malformed_every: Some(390),
        close_every: Some(1900),
        ..SimConfig::default()
    };
    let (_, sim) = tickbridge_feed_sim::spawn(sim).await.unwrap();
    let out = tempfile::tempdir().unwrap();
    let prefix = rand_name("tb-faults");
    let (url, amqp) = (sim.ws_base_for(Source::Binance), amqp_url());
    let cfg = producer_cfg(
        &[
            &feed("binance", "BTC-USDT,ETH-USDT", &url)[..],
            &rabbitmq_sink("rabbitmq,jsonl", &amqp, &prefix),
            &[
                "--out-dir",
                out.path().to_str().unwrap(),
                "--max-seconds",
                "7",
                "--reconnect-min",
                "50ms",
                "--reconnect-max",
                "200ms",
            ],
        ]
        .concat(),
    );
    let report = tickbridge_producer::run(cfg, Shutdown::new())
        .await
        .expect("producer survives faults");
    let sim_report = sim.stop().await.unwrap();
    assert_eq!(report.unconfirmed, 0);
    assert!(
        report.reconnects >= 1,
        "closes forced reconnects: {report:?}"
    );

    // Everything the producer wrote, from the JSON Lines file.
    let mut ticks: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut covered: BTreeMap<String, HashSet<u64>> = BTreeMap::new();
    let mut n_lines = 0;
    for entry in std::fs::read_dir(out.path()).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in text.lines() {
            n_lines += 1;
            match tickbridge_model::schema::decode(line.as_bytes()).unwrap() {
                Message::Tick(t) => ticks
                    .entry(t.symbol.to_string())
                    .or_default()
                    .push(t.trade_id),
                Message::Gap(g) => {
                    let c = covered.entry(g.symbol.to_string()).or_default();
                    for id in g.missing_from.unwrap()..=g.missing_to.unwrap() {
                        c.insert(id);
                    }
                }
            }
        }
    }
    let mut injected_skips = 0;
    let mut sim_dups = 0;
    let mut sim_malformed = 0;
    for sym in ["BTC-USDT", "ETH-USDT"] {
        let r = sim_report
            .get(Source::Binance, sym)
            .expect("sim served the symbol");
        sim_dups += r.duplicates;
        sim_malformed += r.malformed;
        let got = ticks.get(sym).cloned().unwrap_or_default();
        let got_set: HashSet<u64> = got.iter().copied().collect();
        assert_eq!(got.len(), got_set.len(), "{sym}: a duplicate got through");
        let cov = covered.get(sym).cloned().unwrap_or_default();
        // Every injected gap is reported.
        for range in &r.skipped {
            injected_skips += 1;
            for id in range.from..=range.to {
                assert!(
                    cov.contains(&id),
                    "{sym}: injected gap id {id} has no gap notice"
                );
            }
        }
        // No silent loss: each id up to the last delivered is delivered or reported.
        let last = *got.iter().max().expect("some ticks");
        for id in 1..=last {
            assert!(
                got_set.contains(&id) || cov.contains(&id),
                "{sym}: trade {id} vanished silently"
            );
        }
    }
    assert!(
        injected_skips >= 4,
        "the simulator injected gaps: {sim_report:?}"
    );
    assert!(
        sim_dups > 0 && report.duplicates > 0,
        "duplicates injected and dropped"
    );
    assert_eq!(
        report.malformed, sim_malformed,
        "every malformed frame counted"
    );
    // RabbitMQ got the same messages as the file.
    let queued = drain_queue(
        &amqp_url(),
        &format!("{prefix}.work"),
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(queued.len(), n_lines);
}

/// Polling gets the same trades with `via: poll`; a poll too slow for the
/// trade rate shows up as trade-id gaps, while a fast enough one has none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_dedups_overlap_and_reports_what_it_misses() {
    let sim = SimConfig {
        rate: 200.0,
        symbols: vec!["BTC-USDT".into()],
        ..SimConfig::default()
    };
    let (_, sim) = tickbridge_feed_sim::spawn(sim).await.unwrap();
    let http = sim.http_base();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_str().unwrap();
    // Two pollers of the same feed, differing only in how often and how much.
    let poller = |interval: &str, limit: &str| {
        producer_cfg(&[
            "--exchange",
            "binance",
            "--symbols",
            "BTC-USDT",
            "--via",
            "poll",
            "--rest-url",
            &http,
            "--poll-interval",
            interval,
            "--poll-limit",
            limit,
            "--sink",
            "jsonl",
            "--out-dir",
            dir,
            "--max-seconds",
            "3",
        ])
    };
    let (fast, slow) = (poller("100ms", "500"), poller("500ms", "20"));
    let (fast, slow) = tokio::join!(
        tickbridge_producer::run(fast, Shutdown::new()),
        tickbridge_producer::run(slow, Shutdown::new())
    );
    let (fast, slow) = (fast.unwrap(), slow.unwrap());
    assert_eq!(fast.via, tickbridge_model::Via::Poll);
    assert!(fast.ticks > 200, "{fast:?}");
    assert_eq!(fast.gaps, 0, "a fast poll misses nothing: {fast:?}");
    assert!(
        fast.poll_overlap > 0,
        "overlapping polls were deduped: {fast:?}"
    );
    assert!(
        slow.gaps > 0 && slow.gap_trades > 0,
        "a slow poll reports what it missed: {slow:?}"
    );
    sim.stop().await.unwrap();
}

/// A producer stopped and started again with `--state-file`: the trades the
/// simulator sent while no producer ran are reported by a `reconnect` gap
/// notice of the second run, from the first run's last trade id + 1 to the
/// id before the second run's first trade. Without the file they would be
/// missing with no notice at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_state_file_reports_the_trades_missed_between_runs() {
    tickbridge_model::telemetry::init_test_tracing();
    let sim = SimConfig {
        rate: 200.0,
        symbols: vec!["BTC-USDT".into(), "ETH-USDT".into()],
        ..SimConfig::default()
    };
    let (_, sim) = tickbridge_feed_sim::spawn(sim).await.unwrap();
    let url = sim.ws_base_for(Source::Binance);
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("producer.state");
    let state_s = state.to_str().unwrap();
    let read_run = |dir: &std::path::Path| -> Vec<Message> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            for line in std::fs::read_to_string(e.path()).unwrap().lines() {
                out.push(serde_json::from_str::<Message>(line).unwrap());
            }
        }
        out
    };
    let mut runs = Vec::new();
    for n in 0..2 {
        let dir = tmp.path().join(format!("run{n}"));
        let cfg = producer_cfg(
            &[
                &feed("binance", "BTC-USDT,ETH-USDT", &url)[..],
                &[
                    "--sink",
                    "jsonl",
                    "--out-dir",
                    dir.to_str().unwrap(),
                    "--state-file",
                    state_s,
                    "--max-events",
                    "200",
                ],
            ]
            .concat(),
        );
        let report = tickbridge_producer::run(cfg, Shutdown::new())
            .await
            .unwrap();
        assert_eq!(report.unconfirmed, 0, "{report:?}");
        runs.push(read_run(&dir));
        // The market moves on while no producer runs.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    sim.stop().await.unwrap();
    for symbol in ["BTC-USDT", "ETH-USDT"] {
        let ticks = |msgs: &[Message]| -> Vec<u64> {
            msgs.iter()
                .filter_map(|m| match m {
                    Message::Tick(t) if *t.symbol == *symbol => Some(t.trade_id),
                    _ => None,
                })
                .collect()
        };
        let last_of_first = *ticks(&runs[0]).iter().max().unwrap();
        let first_of_second = *ticks(&runs[1]).iter().min().unwrap();
        assert!(
            first_of_second > last_of_first + 1,
            "the market moved on between the runs"
        );
        let notice = runs[1]
            .iter()
            .find_map(|m| match m {
                Message::Gap(g) if *g.symbol == *symbol => Some(g.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{symbol}: the second run reports the trades it missed"));
        assert_eq!(notice.reason, tickbridge_model::GapReason::Reconnect);
        assert_eq!(notice.missing_from, Some(last_of_first + 1), "{notice:?}");
        assert_eq!(notice.missing_to, Some(first_of_second - 1), "{notice:?}");
    }
}
