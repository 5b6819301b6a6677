//! Crash safety with the real binaries, killed with SIGKILL (no chance to
//! clean up): a worker's unacked messages are redelivered to its sibling,
//! and a Kafka consumer restarted in the same group resumes from the last
//! commit, missing nothing and repeating only the uncommitted window.

mod common;

use common::*;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tickbridge_consumer::output::JsonLine;

fn spawn(bin: &str, args: &[String], log: &Path) -> Child {
    Command::new(bin)
        .args(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"))
}

/// Waits for a child to exit by itself (it has `--exit-when-idle`).
async fn wait_exit(mut child: Child, within: Duration, log: &Path) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(
                status.success(),
                "exited with {status}; log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            return;
        }
        if tokio::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "did not exit within {within:?}; log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn s(x: impl ToString) -> String {
    x.to_string()
}

/// Two workers; one is SIGKILLed mid-run. The other handles the rest,
/// including everything the dead one had prefetched but not acked, flagged
/// as redelivered; the union is every tick.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_sigkill_loses_nothing() {
    init_logs();
    let rabbit = Rabbit::new().await;
    let msgs = messages("p-kill", 30_000);
    rabbit.publish(&msgs).await;
    let dir = tempfile::tempdir().unwrap();
    let args = |n: &str| -> Vec<String> {
        vec![
            s("--amqp-url"),
            rabbit.cfg.url.clone(),
            s("--amqp-prefix"),
            rabbit.cfg.prefix.clone(),
            s("--prefetch"),
            s(200),
            s("--jsonl"),
            s(dir.path().join(format!("{n}.jsonl")).display()),
            s("--summary-json"),
            s(dir.path().join(format!("{n}.json")).display()),
            s("--exit-when-idle"),
            s("3s"),
            s("--name"),
            s(n),
        ]
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
    victim.kill().unwrap(); // SIGKILL
    victim.wait().unwrap();
    wait_exit(survivor, Duration::from_secs(45), &survivor_log).await;

    let v = lines(&vpath);
    let sv = lines(&dir.path().join("survivor.jsonl"));
    assert!(v.len() < 30_000, "killed mid-run");
    let union: HashSet<&str> = v
        .iter()
        .chain(&sv)
        .map(|l| l.message.as_ref().id())
        .collect();
    assert_eq!(union.len(), 30_000, "nothing lost");
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
    init_logs();
    let k = kafka_topic(3).await;
    let msgs = messages("p-kkill", 30_000);
    kafka_publish(&k, &msgs).await;
    let dir = tempfile::tempdir().unwrap();
    let group = rand_name("g-kill");
    let args = |n: &str| -> Vec<String> {
        vec![
            s("--kafka-brokers"),
            k.brokers.clone(),
            s("--kafka-topic"),
            k.topic.clone(),
            s("--group"),
            group.clone(),
            s("--commit-interval"),
            s("200ms"),
            s("--session-timeout"),
            s("6s"),
            s("--jsonl"),
            s(dir.path().join(format!("{n}.jsonl")).display()),
            s("--exit-when-idle"),
            s("6s"),
            s("--name"),
            s(n),
        ]
    };
    let (l1, l2) = (dir.path().join("first.log"), dir.path().join("second.log"));
    let mut first = spawn(env!("CARGO_BIN_EXE_consumer"), &args("first"), &l1);
    let p1 = dir.path().join("first.jsonl");
    wait_until(
        "the first consumer to handle 8,000",
        Duration::from_secs(30),
        || lines(&p1).len() >= 8_000,
    )
    .await;
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let second = spawn(env!("CARGO_BIN_EXE_consumer"), &args("second"), &l2);
    wait_exit(second, Duration::from_secs(50), &l2).await;

    let a = lines(&p1);
    let b = lines(&dir.path().join("second.jsonl"));
    assert!(a.len() < 30_000, "killed mid-run");
    let union: HashSet<&str> = a
        .iter()
        .chain(&b)
        .map(|l| l.message.as_ref().id())
        .collect();
    assert_eq!(union.len(), 30_000, "nothing missed");
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
    init_logs();
    let k = kafka_topic(3).await;
    let msgs = messages("p-term", 30_000);
    kafka_publish(&k, &msgs).await;
    let dir = tempfile::tempdir().unwrap();
    let group = rand_name("g-term");
    let args = |n: &str| -> Vec<String> {
        vec![
            s("--kafka-brokers"),
            k.brokers.clone(),
            s("--kafka-topic"),
            k.topic.clone(),
            s("--group"),
            group.clone(),
            // Long enough that only the shutdown commit can explain zero duplicates.
            s("--commit-interval"),
            s("1h"),
            s("--jsonl"),
            s(dir.path().join(format!("{n}.jsonl")).display()),
            s("--exit-when-idle"),
            s("6s"),
            s("--name"),
            s(n),
        ]
    };
    let (l1, l2) = (dir.path().join("first.log"), dir.path().join("second.log"));
    let first = spawn(env!("CARGO_BIN_EXE_consumer"), &args("first"), &l1);
    let p1 = dir.path().join("first.jsonl");
    wait_until(
        "the first consumer to handle 5,000",
        Duration::from_secs(30),
        || lines(&p1).len() >= 5_000,
    )
    .await;
    let term = Command::new("kill")
        .args(["-TERM", &first.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    wait_exit(first, Duration::from_secs(20), &l1).await;
    let second = spawn(env!("CARGO_BIN_EXE_consumer"), &args("second"), &l2);
    wait_exit(second, Duration::from_secs(50), &l2).await;
    let (a, b) = (lines(&p1), lines(&dir.path().join("second.jsonl")));
    assert!(a.len() < 30_000, "stopped mid-run");
    assert_eq!(
        a.len() + b.len(),
        30_000,
        "no duplicates after a graceful stop ({} + {})",
        a.len(),
        b.len()
    );
    let union: HashSet<&str> = a
        .iter()
        .chain(&b)
        .map(|l| l.message.as_ref().id())
        .collect();
    assert_eq!(union.len(), 30_000);
}

/// The broker drops the worker's connection (as on a RabbitMQ restart): the
/// `worker` binary reconnects with backoff and finishes the queue; the
/// messages it held unacked come back redelivered, nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_reconnects_after_the_broker_closes_its_connection() {
    init_logs();
    let rabbit = Rabbit::new().await;
    let msgs = messages("p-reconnect", 20_000);
    rabbit.publish(&msgs).await;
    let dir = tempfile::tempdir().unwrap();
    let name = rand_name("tb-reconnect");
    let path = dir.path().join("w.jsonl");
    let log = dir.path().join("w.log");
    let args = vec![
        s("--amqp-url"),
        rabbit.cfg.url.clone(),
        s("--amqp-prefix"),
        rabbit.cfg.prefix.clone(),
        s("--jsonl"),
        s(path.display()),
        s("--exit-when-idle"),
        s("3s"),
        // Slow enough to still be running when the management API lists it.
        s("--prefetch"),
        s(1),
        s("--name"),
        name.clone(),
    ];
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
    let union: HashSet<&str> = l.iter().map(|x| x.message.as_ref().id()).collect();
    assert_eq!(union.len(), 20_000, "nothing lost across the reconnect");
    for (id, n) in id_counts(&l) {
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
