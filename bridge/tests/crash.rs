//! The real `bridge` binary SIGKILLed mid-run and restarted: every message
//! arrives at least once, and the duplicates (counted by id at the
//! destination) stay within the in-flight window. The restarted bridge is
//! stopped with SIGTERM and must exit 0.

mod common;

use common::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};
use tickbridge_broker::kafka::KafkaConfig;
use tickbridge_testkit::proc::{exit_within, sigkill, sigterm, spawn_logged};

fn spawn(args: &[String], log: &Path) -> Child {
    spawn_logged(
        Command::new(env!("CARGO_BIN_EXE_bridge"))
            .args(args)
            .env("RUST_LOG", "info,lapin=error"),
        log,
    )
}

/// A crash test's own log directory, pipeline and 3-partition topic.
async fn setup() -> (PathBuf, Rabbit, KafkaConfig) {
    let (rabbit, kafka) = pipeline_and_topic(3).await;
    let dir = std::env::temp_dir().join(rand_name("bridge-crash"));
    std::fs::create_dir_all(&dir).unwrap();
    (dir, rabbit, kafka)
}

/// Polls the queue's depth every 20 ms until `done` holds: the first
/// bridge has made the progress a test kills it at (30 s at most).
async fn wait_for_depth(rabbit: &Rabbit, queue: &str, dir: &Path, done: impl Fn(usize) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done(rabbit.depth(queue).await as usize) {
        assert!(
            Instant::now() < deadline,
            "bridge made no progress in 30 s{}",
            diagnosis(dir)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// SIGTERM to the restarted bridge, which must drain and exit 0 within
/// 30 s; then `ids` (what arrived) counted: each distinct id, and the
/// duplicates.
async fn stop_and_count<'a>(
    mut child: Child,
    dir: &Path,
    ids: impl ExactSizeIterator<Item = &'a str>,
) -> (HashMap<String, usize>, usize) {
    sigterm(&child);
    let Some(status) = exit_within(&mut child, Duration::from_secs(30)).await else {
        let _ = child.kill();
        panic!(
            "bridge did not exit within 30 s of SIGTERM{}",
            diagnosis(dir)
        );
    };
    assert!(
        status.success(),
        "graceful exit after SIGTERM: {status}{}",
        diagnosis(dir)
    );
    let total = ids.len();
    let counts = id_counts(ids);
    let dups = total - counts.len();
    (counts, dups)
}

/// Last value of `key=` on the last stats line of `direction` in a log.
fn last_stat(log: &Path, direction: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(log).ok()?;
    let line = text
        .lines()
        .rev()
        .find(|l| l.contains(" stats ") && l.contains(direction))?;
    let plain = strip_ansi(line);
    let at = plain.find(&format!(" {key}="))? + key.len() + 2;
    plain[at..]
        .split_whitespace()
        .next()?
        .trim_matches('"')
        .parse()
        .ok()
}

/// What a failure message needs from the bridges' logs: every warning,
/// error and partition assignment, and each log's last stats lines.
fn diagnosis(dir: &Path) -> String {
    let mut out = String::new();
    for name in ["first.log", "second.log"] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(strip_ansi).collect();
        out.push_str(&format!("\n--- {name} ({} lines) ---\n", lines.len()));
        let notable = lines
            .iter()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR ") || l.contains("partitions "));
        for l in notable.take(40) {
            out.push_str(l);
            out.push('\n');
        }
        for l in lines.iter().filter(|l| l.contains(" stats ")).rev().take(2) {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut esc = false;
    for c in s.chars() {
        match (esc, c) {
            (false, '\u{1b}') => esc = true,
            (true, 'm') => esc = false,
            (true, _) => {}
            (false, c) => out.push(c),
        }
    }
    out
}

fn base_args(direction: &str, rabbit: &Rabbit, brokers: &str, topic: &str) -> Vec<String> {
    [direction]
        .into_iter()
        .chain(broker_args(rabbit, brokers))
        .chain(["--kafka-topic", topic, "--stats-interval", "1s"])
        .map(str::to_string)
        .collect()
}

/// rabbitmq-to-kafka: killed after part of the queue was bridged. Deliveries
/// it had not acked come back `redelivered` to the restarted bridge and are
/// produced again: all 30,000 ids reach the topic, duplicates ≤ prefetch,
/// and the restarted bridge counts the redeliveries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_to_kafka_survives_sigkill() {
    let t0 = Instant::now();
    let (dir, rabbit, kafka) = setup().await;
    let n = 30_000;
    let prefetch = 500u64;
    rabbit.publish(&ticks("crashr2k", n)).await;
    let queue = rabbit.topo().work_queue;

    let mut args = base_args("rabbitmq-to-kafka", &rabbit, &kafka.brokers, &kafka.topic);
    args.extend(["--prefetch".into(), prefetch.to_string()]);
    let mut first = spawn(&args, &dir.join("first.log"));
    wait_for_depth(&rabbit, &queue, &dir, |depth| depth <= n * 2 / 3).await;
    sigkill(&mut first);
    let left = rabbit.depth(&queue).await;
    assert!(left > 0, "killed mid-run, not after the end");

    let second = spawn(&args, &dir.join("second.log"));
    let got = read_topic(
        &kafka.brokers,
        &kafka.topic,
        n + prefetch as usize + 1,
        Duration::from_secs(5),
    )
    .await;
    let (counts, dups) =
        stop_and_count(second, &dir, got.iter().map(|g| g.msg.as_ref().id())).await;
    assert_eq!(
        counts.len(),
        n,
        "every id arrived at least once ({left} left in the queue at the kill){}",
        diagnosis(&dir)
    );
    assert!(
        dups as u64 <= prefetch,
        "{dups} duplicates > prefetch {prefetch}{}",
        diagnosis(&dir)
    );
    assert_per_symbol_order(got.iter().map(|g| &g.msg));
    let redelivered = last_stat(&dir.join("second.log"), "rabbitmq_to_kafka", "redelivered")
        .expect("final stats line");
    assert!(redelivered <= prefetch, "redelivered {redelivered}");
    assert!(
        redelivered as usize >= dups,
        "every duplicate was a counted redelivery ({redelivered} < {dups})"
    );
    assert_eq!(rabbit.depth(&queue).await, 0);
    eprintln!(
        "r2k SIGKILL: {dups} duplicates (prefetch {prefetch}), {redelivered} redelivered, {:?}",
        t0.elapsed()
    );
    rabbit.cleanup().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// kafka-to-rabbitmq: killed mid-topic. The group's committed offsets never
/// run ahead of what the queue holds (commits follow confirms), the
/// restarted bridge resumes from them: all 30,000 ids reach the queue, and
/// the duplicates are the records between the commits and the queue, plus at
/// most a confirm window per rebalance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_to_rabbitmq_survives_sigkill() {
    let t0 = Instant::now();
    let (dir, rabbit, kafka) = setup().await;
    let n = 30_000;
    let window = 500usize;
    let sent = ticks("crashk2r", n);
    kafka_publish(&kafka, &sent).await;
    let queue = rabbit.topo().work_queue;

    let group = rand_name("crash-group");
    let mut args = base_args("kafka-to-rabbitmq", &rabbit, &kafka.brokers, &kafka.topic);
    args.extend(
        [
            "--group",
            &group,
            "--confirm-window",
            &window.to_string(),
            "--commit-interval",
            "100ms",
            "--session-timeout",
            "6s",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let mut first = spawn(&args, &dir.join("first.log"));
    wait_for_depth(&rabbit, &queue, &dir, |depth| depth >= n / 3).await;
    sigkill(&mut first);
    // Publishes RabbitMQ had received but not yet enqueued land shortly.
    let mut at_kill = rabbit.depth(&queue).await as usize;
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = rabbit.depth(&queue).await as usize;
        if now == at_kill {
            break;
        }
        at_kill = now;
    }
    assert!(at_kill < n, "killed mid-run, not after the end");
    // The first bridge commits only offsets RabbitMQ confirmed, so the
    // group's commits never run ahead of the queue; what lies between them
    // is what the restarted bridge publishes again.
    let committed = committed_sum(&kafka, &group, 3).await as usize;
    assert!(
        committed <= at_kill,
        "committed offsets ({committed}) ahead of the {at_kill} messages in the queue{}",
        diagnosis(&dir)
    );

    let second = spawn(&args, &dir.join("second.log"));
    // Re-published: the uncommitted tail, plus at most one confirm window
    // per rebalance the restarted bridge goes through (the dead member
    // leaves the group when its session times out).
    let bound = (at_kill - committed) + 2 * window;
    let got = drain_queue_ids(
        &rabbit.cfg.url,
        &queue,
        n,
        Duration::from_secs(3),
        Duration::from_secs(60),
    )
    .await;
    let (counts, dups) =
        stop_and_count(second, &dir, got.iter().map(|g| g.msg.as_ref().id())).await;
    let missing: Vec<(&str, u64)> = sent
        .iter()
        .filter(|m| !counts.contains_key(m.as_ref().id()))
        .map(|m| (m.as_ref().symbol(), m.as_ref().seq()))
        .collect();
    assert_eq!(
        counts.len(),
        n,
        "every id arrived at least once; missing (symbol, seq), first and last: {:?} .. {:?}; {} in the queue at the kill{}",
        missing.iter().take(5).collect::<Vec<_>>(),
        missing.iter().rev().take(5).collect::<Vec<_>>(),
        at_kill,
        diagnosis(&dir)
    );
    // Each partition's queued records are a prefix of it, and the restarted
    // bridge publishes again from the commit: everything between the two
    // comes twice. Fewer would mean it resumed past its commits.
    assert!(
        dups >= at_kill - committed,
        "{dups} duplicates < {at_kill} in the queue at the kill - {committed} committed: the restarted bridge did not resume from the commits{}",
        diagnosis(&dir)
    );
    assert!(
        dups <= bound,
        "{dups} duplicates > {bound}: {at_kill} in the queue at the kill, {committed} committed, window {window}{}",
        diagnosis(&dir)
    );
    assert_per_symbol_order(got.iter().map(|g| &g.msg));
    eprintln!(
        "k2r SIGKILL: {dups} duplicates (bound {bound}: {at_kill} in the queue at the kill, {committed} committed), {:?}",
        t0.elapsed()
    );
    rabbit.cleanup().await;
    let _ = std::fs::remove_dir_all(&dir);
}
