//! Workers on the test's own RabbitMQ node, which is stopped and started
//! three times under them while they are busy (acks, retry publishes and
//! their confirms, queue-depth probes every 100 ms all in flight). After
//! each restart the workers reconnect by themselves; at the end every tick
//! has been handled, and SIGTERM stops each worker cleanly within
//! `EXIT_DEADLINE`, whatever state a restart left its client in.

mod common;

use common::*;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};
use tickbridge_broker::amqp::AmqpConfig;
use tickbridge_consumer::supervise::EXIT_DEADLINE;
use tickbridge_model::Message;
use tickbridge_testkit::loadgen::AmqpPublisher;
use tickbridge_testkit::proc::{exit_within, sigterm, spawn_logged};
use tickbridge_testkit::RabbitNode;

const WORKERS: usize = 2;
const ROUNDS: usize = 3;
const PER_ROUND: usize = 4_000;

fn spawn_worker(cfg: &AmqpConfig, dir: &Path, name: &str) -> Child {
    let args: Vec<String> = [
        "--amqp-url",
        &cfg.url,
        "--amqp-prefix",
        &cfg.prefix,
        "--prefetch",
        "50",
        // Every 40th handling fails: its retry is a confirmed publish, so
        // publishes and confirms are in flight when the node stops.
        "--fail-every",
        "40",
        "--max-retries",
        "10",
        "--stats-interval",
        "100ms",
        "--name",
        name,
        "--jsonl",
        &dir.join(format!("{name}.jsonl")).display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    spawn_logged(
        Command::new(env!("CARGO_BIN_EXE_worker"))
            .args(&args)
            .env("RUST_LOG", "info"),
        &dir.join(format!("{name}.log")),
    )
}

/// The worker processes, killed if the test ends before they exit (a
/// failed assertion must not leave them reconnecting forever).
struct Workers(Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for w in &mut self.0 {
            if let Ok(None) = w.try_wait() {
                let _ = w.kill();
                let _ = w.wait();
            }
        }
    }
}

fn jsonl_paths(dir: &Path) -> Vec<PathBuf> {
    (0..WORKERS)
        .map(|i| dir.join(format!("w{i}.jsonl")))
        .collect()
}

fn handled_ids(dir: &Path) -> HashSet<String> {
    jsonl_paths(dir)
        .iter()
        .flat_map(|p| lines(p))
        .map(|l| l.message.as_ref().id().to_string())
        .collect()
}

fn logs(dir: &Path) -> String {
    (0..WORKERS)
        .map(|i| {
            let text = std::fs::read_to_string(dir.join(format!("w{i}.log"))).unwrap_or_default();
            let tail: Vec<&str> = text
                .lines()
                .filter(|l| !l.contains(" stats: "))
                .rev()
                .take(25)
                .collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            format!(
                "\n--- w{i}.log (last 25 lines besides stats) ---\n{}",
                tail.join("\n")
            )
        })
        .collect()
}

/// Publishes round `round`'s share of `all` (distinct ids per round).
/// Per worker: sessions opened ("worker consuming" lines) and whether the
/// last session started after the last lost connection (it is consuming
/// now, not waiting to reconnect).
fn sessions(dir: &Path) -> Vec<(usize, bool)> {
    (0..WORKERS)
        .map(|i| {
            let text = std::fs::read_to_string(dir.join(format!("w{i}.log"))).unwrap_or_default();
            let opened = text.rfind("worker consuming");
            let lost = text.rfind("session lost; reconnecting");
            (text.matches("worker consuming").count(), opened > lost)
        })
        .collect()
}

async fn publish(cfg: &AmqpConfig, all: &[Message], round: usize) -> Vec<String> {
    let msgs = &all[round * PER_ROUND..(round + 1) * PER_ROUND];
    let mut p = AmqpPublisher::connect(cfg).await.expect("publisher");
    p.publish_all(msgs).await.expect("every publish confirmed");
    msgs.iter().map(|m| m.as_ref().id().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_survive_node_restarts_and_exit_on_sigterm() {
    init_logs();
    let node = tokio::task::spawn_blocking(RabbitNode::start)
        .await
        .unwrap()
        .expect("a private RabbitMQ node (rabbitmq-server installed by scripts/stack.sh up)");
    let node = std::sync::Arc::new(node);
    let cfg = AmqpConfig::local(&node.url(), &rand_name("tb-cons-restart"));
    {
        let conn = cfg.connect("restart-test").await.expect("node up");
        let ch = conn.create_channel().await.unwrap();
        cfg.topology().declare(&ch).await.expect("topology");
        let _ = conn.close(200, "declared".into()).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut workers = Workers(
        (0..WORKERS)
            .map(|i| spawn_worker(&cfg, dir.path(), &format!("w{i}")))
            .collect(),
    );

    let all = messages("p-restart", (ROUNDS + 1) * PER_ROUND);
    let mut sent: HashSet<String> = HashSet::new();
    for round in 0..ROUNDS {
        sent.extend(publish(&cfg, &all, round).await);
        // Restart while the workers are mid-round: some of this round
        // handled, the rest still queued or prefetched.
        let target = sent.len() - PER_ROUND + PER_ROUND / 4;
        wait_until(
            &format!("round {round}: a quarter handled before the restart"),
            Duration::from_secs(60),
            || handled_ids(dir.path()).len() >= target,
        )
        .await;
        let n = node.clone();
        let t = Instant::now();
        tokio::task::spawn_blocking(move || n.restart())
            .await
            .unwrap()
            .expect("node restarts");
        eprintln!("round {round}: node restarted in {:?}", t.elapsed());
    }
    sent.extend(publish(&cfg, &all, ROUNDS).await);
    assert_eq!(sent.len(), all.len());
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let got = handled_ids(dir.path());
        if sent.iter().all(|id| got.contains(id)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} ticks handled 90 s after the last restart{}",
            sent.iter().filter(|id| got.contains(*id)).count(),
            sent.len(),
            logs(dir.path())
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Both consume again after the last restart (one may still be in its
    // backoff, which grows past 10 s over three quick restarts; stopped
    // there it exits 1 with its last error, by design).
    let deadline = Instant::now() + Duration::from_secs(60);
    while !sessions(dir.path()).iter().all(|&(_, consuming)| consuming) {
        assert!(
            Instant::now() < deadline,
            "a worker did not consume again within 60 s of the last restart ((sessions, consuming) per worker: {:?}){}",
            sessions(dir.path()),
            logs(dir.path())
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // SIGTERM: each worker drains and exits cleanly, within the deadline.
    for w in &workers.0 {
        sigterm(w);
    }
    let limit = EXIT_DEADLINE + Duration::from_secs(5);
    let t = Instant::now();
    for (i, w) in workers.0.iter_mut().enumerate() {
        let Some(status) = exit_within(w, limit.saturating_sub(t.elapsed())).await else {
            let _ = w.kill();
            panic!(
                "w{i} did not exit within {limit:?} of SIGTERM{}",
                logs(dir.path())
            );
        };
        assert!(
            status.success(),
            "w{i} exited with {status} after SIGTERM{}",
            logs(dir.path())
        );
    }
    let per_worker = sessions(dir.path());
    eprintln!(
        "{} ticks over {ROUNDS} restarts, all handled; sessions per worker {:?}; both workers exited {:?} after SIGTERM",
        sent.len(),
        per_worker.iter().map(|s| s.0).collect::<Vec<_>>(),
        t.elapsed()
    );
    assert!(
        per_worker.iter().all(|&(n, _)| n >= 2),
        "each worker reconnected at least once: {per_worker:?}"
    );
}
