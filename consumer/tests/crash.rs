//! Crash safety with the real binaries, killed with SIGKILL (no chance to
//! clean up): a worker's unacked messages are redelivered to its sibling,
//! and a Kafka consumer restarted in the same group resumes from the last
//! commit, missing nothing and repeating only the uncommitted window.

mod common;

use common::*;
use std::collections::{BTreeMap, HashSet};
use std::fmt::Display;
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;
use tickbridge_broker::amqp::AmqpConfig;
use tickbridge_consumer::output::JsonLine;
use tickbridge_testkit::proc::{exit_within, sigkill, sigterm, spawn_logged};

fn spawn(bin: &str, args: &[String], log: &Path) -> Child {
    spawn_logged(Command::new(bin).args(args), log)
}

/// Waits for a child to exit by itself (it has `--exit-when-idle`), with
/// success; one that does not is killed and its log quoted.
async fn wait_exit(mut child: Child, within: Duration, log: &Path) {
    let log_text = || std::fs::read_to_string(log).unwrap_or_default();
    match exit_within(&mut child, within).await {
        Some(status) => assert!(
            status.success(),
            "exited with {status}; log:\n{}",
            log_text()
        ),
        None => {
            let _ = child.kill();
            panic!("did not exit within {within:?}; log:\n{}", log_text());
        }
    }
}

/// `--flag value` pairs, in order, as the binaries' argument vector.
fn flags(pairs: &[(&str, &dyn Display)]) -> Vec<String> {
    pairs
        .iter()
        .flat_map(|(flag, value)| [flag.to_string(), value.to_string()])
        .collect()
}

/// The worker's way to a test pipeline.
fn worker_args(cfg: &AmqpConfig) -> Vec<String> {
    flags(&[("--amqp-url", &cfg.url), ("--amqp-prefix", &cfg.prefix)])
}

/// What each run writes and how it is told apart: `<dir>/<name>.jsonl`,
/// its idle limit (after which it exits by itself) and its name.
fn run_args(dir: &Path, name: &str, idle: &str) -> Vec<String> {
    flags(&[
        ("--jsonl", &dir.join(format!("{name}.jsonl")).display()),
        ("--exit-when-idle", &idle),
        ("--name", &name),
    ])
}

/// How the first run of [`kafka_consumer_twice`] ends.
enum Stop {
    /// SIGKILL: no commit on the way out.
    Kill,
    /// SIGTERM: a graceful stop, awaited (20 s at most).
    Term,
}

/// The Kafka consumer binary run twice in one fresh group over 30,000
/// ticks from `producer` on a 3-partition topic: the first run until it
/// has handled `at` ticks, then stopped by `stop`; the second until idle
/// (50 s at most). `case` are the flags of the test (commit interval and
/// the like). Returns the lines each run wrote.
async fn kafka_consumer_twice(
    producer: &str,
    group: &str,
    case: &[String],
    at: usize,
    stop: Stop,
) -> (Vec<JsonLine>, Vec<JsonLine>) {
    let (k, _msgs) = kafka_with_ticks(3, producer, 30_000).await;
    let dir = tempfile::tempdir().unwrap();
    let group = rand_name(group);
    let args = |n: &str| -> Vec<String> {
        [
            flags(&[
                ("--kafka-brokers", &k.brokers),
                ("--kafka-topic", &k.topic),
                ("--group", &group),
            ]),
            case.to_vec(),
            run_args(dir.path(), n, "6s"),
        ]
        .concat()
    };
    let (l1, l2) = (dir.path().join("first.log"), dir.path().join("second.log"));
    let mut first = spawn(env!("CARGO_BIN_EXE_consumer"), &args("first"), &l1);
    let p1 = dir.path().join("first.jsonl");
    wait_until(
        &format!("the first consumer to handle {at}"),
        Duration::from_secs(30),
        || lines(&p1).len() >= at,
    )
    .await;
    match stop {
        Stop::Kill => sigkill(&mut first),
        Stop::Term => {
            assert!(sigterm(&first));
            wait_exit(first, Duration::from_secs(20), &l1).await;
        }
    }
    let second = spawn(env!("CARGO_BIN_EXE_consumer"), &args("second"), &l2);
    wait_exit(second, Duration::from_secs(50), &l2).await;
    (lines(&p1), lines(&dir.path().join("second.jsonl")))
}

/// Two workers; one is SIGKILLed mid-run. The other handles the rest,
/// including everything the dead one had prefetched but not acked, flagged
/// as redelivered; the union is every tick.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_sigkill_loses_nothing() {
    let (rabbit, _msgs) = Rabbit::with_ticks("p-kill", 30_000).await;
    let dir = tempfile::tempdir().unwrap();
    let args = |n: &str| -> Vec<String> {
        [
            worker_args(&rabbit.cfg),
            flags(&[
                ("--prefetch", &200),
                (
                    "--summary-json",
                    &dir.path().join(format!("{n}.json")).display(),
                ),
            ]),
            run_args(dir.path(), n, "3s"),
        ]
        .concat()
    };
    let (victim_log, survivor_log) = (
        dir.path().join("victim.log"),
        dir.path().join("survivor.log"),
    );
    let mut victim = spawn(env!("CARGO_BIN_EXE_worker"), &args("victim"), &victim_log);
    let survivor = spawn(
        env!("CARGO_BIN_EXE_worker"),
        &args("survivor"),
        &survivor_log,
    );
    let vpath = dir.path().join("victim.jsonl");
    wait_until(
        "the victim to handle 3,000",
        Duration::from_secs(30),
        || lines(&vpath).len() >= 3_000,
    )
    .await;
    sigkill(&mut victim);
    wait_exit(survivor, Duration::from_secs(45), &survivor_log).await;

    let v = lines(&vpath);
    let sv = lines(&dir.path().join("survivor.jsonl"));
    assert!(v.len() < 30_000, "killed mid-run");
    assert_eq!(id_counts(v.iter().chain(&sv)).len(), 30_000, "nothing lost");
    let victim_ids: HashSet<&str> = v.iter().map(|l| l.message.as_ref().id()).collect();
    let redelivered: Vec<&JsonLine> = sv.iter().filter(|l| l.redelivered).collect();
    assert!(
        !redelivered.is_empty(),
        "the victim's unacked messages came back redelivered"
    );
    assert!(
        redelivered.len() <= 200,
        "at most one prefetch window is redelivered: {}",
        redelivered.len()
    );
    for l in sv
        .iter()
        .filter(|l| victim_ids.contains(l.message.as_ref().id()))
    {
        assert!(
            l.redelivered,
            "{} handled twice without a redelivery",
            l.message.as_ref().id()
        );
    }
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("survivor.json")).unwrap()).unwrap();
    assert_eq!(
        summary["redeliveries"].as_u64().unwrap() as usize,
        redelivered.len(),
        "redeliveries counted"
    );
    assert_eq!(rabbit.depth(&rabbit.cfg.topology().work_queue).await, 0);
    rabbit.cleanup().await;
}

/// A Kafka consumer SIGKILLed mid-run and restarted in the same group
/// misses nothing; what it reads twice is exactly the tail it had handled
/// but not yet committed, bounded by the commit interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_consumer_sigkill_and_restart_misses_nothing() {
    let case = flags(&[
        ("--commit-interval", &"200ms"),
        ("--session-timeout", &"6s"),
    ]);
    let (a, b) = kafka_consumer_twice("p-kkill", "g-kill", &case, 8_000, Stop::Kill).await;
    assert!(a.len() < 30_000, "killed mid-run");
    assert_eq!(
        id_counts(a.iter().chain(&b)).len(),
        30_000,
        "nothing missed"
    );
    let dups = a.len() + b.len() - 30_000;

    // Per partition: the restart begins at the committed offset, at or before
    // where the first run stopped, and reads on without a hole.
    let by_part = |ls: &[JsonLine]| {
        let mut m: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
        for l in ls {
            m.entry(l.partition.unwrap())
                .or_default()
                .push(l.offset.unwrap());
        }
        m
    };
    let (pa, pb) = (by_part(&a), by_part(&b));
    let last_handled = a.iter().map(|l| l.handled_at.clone()).max().unwrap();
    let last = chrono::DateTime::parse_from_rfc3339(&last_handled).unwrap();
    let mut counted = 0;
    for (p, offs_b) in &pb {
        let first_b = offs_b[0];
        let offs_a = pa.get(p).cloned().unwrap_or_default();
        let end_a = offs_a.last().map_or(0, |o| o + 1);
        assert!(
            first_b <= end_a,
            "p{p}: restart at {first_b} skips past {end_a}"
        );
        assert!(
            offs_b.windows(2).all(|w| w[1] == w[0] + 1),
            "p{p}: contiguous after restart"
        );
        for l in a
            .iter()
            .filter(|l| l.partition == Some(*p) && l.offset.unwrap() >= first_b)
        {
            counted += 1;
            let at = chrono::DateTime::parse_from_rfc3339(&l.handled_at).unwrap();
            assert!(last - at <= chrono::Duration::milliseconds(1_200), "duplicate p{p}@{} was handled {} ms before the kill, outside the uncommitted window", l.offset.unwrap(), (last - at).num_milliseconds());
        }
    }
    assert_eq!(counted, dups, "every duplicate is an uncommitted re-read");
    eprintln!(
        "kafka crash: first run handled {}, second {}, duplicates {dups}",
        a.len(),
        b.len()
    );
}

/// SIGTERM is a graceful stop: the consumer finishes the message in hand,
/// commits synchronously and leaves; a restart in the same group reads on
/// from exactly there, with no duplicates at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_consumer_sigterm_commits_on_shutdown() {
    // Long enough that only the shutdown commit can explain zero duplicates.
    let case = flags(&[("--commit-interval", &"1h")]);
    let (a, b) = kafka_consumer_twice("p-term", "g-term", &case, 5_000, Stop::Term).await;
    assert!(a.len() < 30_000, "stopped mid-run");
    assert_eq!(
        a.len() + b.len(),
        30_000,
        "no duplicates after a graceful stop ({} + {})",
        a.len(),
        b.len()
    );
    assert_eq!(id_counts(a.iter().chain(&b)).len(), 30_000);
}

/// The broker drops the worker's connection (as on a RabbitMQ restart): the
/// `worker` binary reconnects with backoff and finishes the queue; the
/// messages it held unacked come back redelivered, nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_reconnects_after_the_broker_closes_its_connection() {
    let (rabbit, _msgs) = Rabbit::with_ticks("p-reconnect", 20_000).await;
    let dir = tempfile::tempdir().unwrap();
    let name = rand_name("tb-reconnect");
    let path = dir.path().join("w.jsonl");
    let log = dir.path().join("w.log");
    let args = [
        worker_args(&rabbit.cfg),
        flags(&[
            ("--jsonl", &path.display()),
            ("--exit-when-idle", &"3s"),
            // Slow enough to still be running when the management API lists it.
            ("--prefetch", &1),
            ("--name", &name),
        ]),
    ]
    .concat();
    let w = spawn(env!("CARGO_BIN_EXE_worker"), &args, &log);
    wait_until(
        "the worker to handle 2,000",
        Duration::from_secs(30),
        || lines(&path).len() >= 2_000,
    )
    .await;
    // Close its connection through the management API, by connection name
    // (the API lists a new connection only after its next stats tick).
    let mut victim = None;
    for _ in 0..100 {
        let out = Command::new("curl")
            .args([
                "-sf",
                "-u",
                "guest:guest",
                "http://127.0.0.1:15672/api/connections",
            ])
            .output()
            .unwrap();
        let conns: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("management API answers on 15672");
        victim = conns
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["client_properties"]["connection_name"] == name.as_str())
            .and_then(|c| c["name"].as_str().map(str::to_string));
        if victim.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let victim = victim.expect("the worker's connection is listed");
    assert!(
        lines(&path).len() < 20_000,
        "still running when its connection is closed"
    );
    let url = format!(
        "http://127.0.0.1:15672/api/connections/{}",
        victim.replace(' ', "%20").replace('>', "%3E")
    );
    assert!(Command::new("curl")
        .args(["-sf", "-u", "guest:guest", "-X", "DELETE", &url])
        .status()
        .unwrap()
        .success());
    wait_exit(w, Duration::from_secs(50), &log).await;
    let l = lines(&path);
    let counts = id_counts(&l);
    assert_eq!(counts.len(), 20_000, "nothing lost across the reconnect");
    for (id, n) in counts {
        if n > 1 {
            assert!(
                l.iter()
                    .any(|x| x.redelivered && x.message.as_ref().id() == id),
                "{id} twice without a redelivery"
            );
        }
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("reconnecting"),
        "the reconnect was logged:\n{text}"
    );
    assert_eq!(rabbit.depth(&rabbit.cfg.topology().work_queue).await, 0);
    rabbit.cleanup().await;
}
