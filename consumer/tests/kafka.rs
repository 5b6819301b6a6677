//! The Kafka consumer against a real Kafka-protocol broker: groups as
//! broadcast, members of a group splitting partitions, replay from every
//! kind of position, read-only replay, poison messages and bad flags. Each
//! test creates its own random topic and groups, and fails loudly when the
//! broker is missing.

mod common;

use common::*;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;
use tickbridge_broker::kafka::KafkaConfig;
use tickbridge_consumer::consumer::{self, ConsumerConfig};
use tickbridge_consumer::replay::ReplayFrom;
use tickbridge_consumer::{Error, Summary};
use tickbridge_model::{Message, Shutdown};

fn config(k: &KafkaConfig, group: &str, jsonl: &Path) -> ConsumerConfig {
    let mut c = kafka_reader(k, group, jsonl);
    c.common.exit_when_idle = Some(Duration::from_secs(3));
    c
}

fn with_replay(mut c: ConsumerConfig, r: &str) -> ConsumerConfig {
    c.replay_from = Some(r.parse::<ReplayFrom>().unwrap());
    c
}

/// `--no-commit`: reads without moving the group.
fn read_only(mut c: ConsumerConfig) -> ConsumerConfig {
    c.no_commit = true;
    c
}

async fn run_one(c: ConsumerConfig) -> Summary {
    finish_within(spawn_consumer(c), Duration::from_secs(55)).await
}

/// Sets, not lists: which ticks a reader got, whatever the interleaving of
/// the partitions.
fn ids(msgs: &[Message]) -> HashSet<String> {
    common::ids(msgs).into_iter().collect()
}

fn handled_ids(path: &Path) -> HashSet<String> {
    handled(path).into_iter().collect()
}

/// Two groups each receive all 30,000; two members of a third group split
/// them between them with no overlap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_broadcast_and_members_split() {
    init_logs();
    let k = kafka_topic(3).await;
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(format!("{n}.jsonl"));
    let (g1, g2, g3) = (rand_name("g1"), rand_name("g2"), rand_name("g3"));
    // The members of g3 wait out a slow group join before giving up on an
    // empty topic (the idle limit before a first message is twice this).
    let member = |n: &str| {
        let mut c = config(&k, &g3, &p(n));
        c.common.exit_when_idle = Some(Duration::from_secs(8));
        c
    };
    let (c1, c2) = (member("c1"), member("c2"));
    let (a1, a2) = (c1.assignment.clone(), c2.assignment.clone());
    let mut handles = vec![spawn_consumer(c1), spawn_consumer(c2)];
    // Both members of g3 own partitions before anything arrives, so they
    // share it: each member's own view of its assignment, not a guessed
    // join time (a join can take several seconds on a busy machine).
    tokio::time::timeout(Duration::from_secs(30), async {
        a1.wait_for(|s| !s.is_empty()).await;
        a2.wait_for(|s| !s.is_empty()).await;
    })
    .await
    .expect("both members of g3 assigned within 30 s");
    assert!(
        a1.current().is_disjoint(&a2.current()),
        "members own disjoint partitions: {:?} / {:?}",
        a1.current(),
        a2.current()
    );
    let msgs = messages("p-bcast", 30_000);
    kafka_publish(&k, &msgs).await;
    // Groups g1 and g2 start from the earliest offset, so joining after the
    // publish still shows that every group gets every tick.
    handles.push(spawn_consumer(config(&k, &g1, &p("a"))));
    handles.push(spawn_consumer(config(&k, &g2, &p("b"))));
    let sums = finish_all_within(handles, Duration::from_secs(50)).await;
    let want = ids(&msgs);
    for name in ["a", "b"] {
        let l = lines(&p(name));
        assert_eq!(
            l.len(),
            30_000,
            "group member {name} received everything exactly once"
        );
        assert_eq!(handled_ids(&p(name)), want);
    }
    let (c1, c2) = (lines(&p("c1")), lines(&p("c2")));
    assert!(
        !c1.is_empty() && !c2.is_empty(),
        "both members got partitions: {} / {}",
        c1.len(),
        c2.len()
    );
    assert_eq!(c1.len() + c2.len(), 30_000, "no overlap");
    let parts = |l: &[tickbridge_consumer::output::JsonLine]| {
        l.iter().filter_map(|x| x.partition).collect::<HashSet<_>>()
    };
    assert!(
        parts(&c1).is_disjoint(&parts(&c2)),
        "members own disjoint partitions"
    );
    let union: HashSet<String> = handled_ids(&p("c1"))
        .union(&handled_ids(&p("c2")))
        .cloned()
        .collect();
    assert_eq!(union, want);
    assert!(sums
        .iter()
        .all(|s| s.duplicates == 0 && s.seq_regressions == 0));
}

/// After a group has read and committed everything, `--replay-from 0`
/// reads all 30,000 again in per-symbol order, `--no-commit` does so without
/// moving the group, and the group afterwards has nothing left to read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_from_zero_rereads_everything_in_order() {
    let (k, msgs) = kafka_with_ticks(3, "p-replay", 30_000).await;
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(format!("{n}.jsonl"));
    let g = rand_name("g-replay");
    let first = run_one(config(&k, &g, &p("first"))).await;
    assert_eq!(first.handled, 30_000);

    let replay = run_one(with_replay(config(&k, &g, &p("replay")), "0")).await;
    assert_eq!(
        replay.handled, 30_000,
        "replay from 0 ignores the committed offsets"
    );
    let l = lines(&p("replay"));
    assert_eq!(handled_ids(&p("replay")), ids(&msgs));
    for (symbol, seqs) in seqs_by_symbol(&l) {
        assert_eq!(
            seqs,
            (1..=5_000).collect::<Vec<u64>>(),
            "{symbol} in producer order"
        );
    }

    let ro = read_only(with_replay(config(&k, &g, &p("readonly")), "0"));
    assert_eq!(run_one(ro).await.handled, 30_000, "read-only replay");

    let mut after = config(&k, &g, &p("after"));
    after.common.exit_when_idle = Some(Duration::from_secs(2));
    assert_eq!(
        run_one(after).await.handled,
        0,
        "the group is still at the end"
    );
}

/// Offsets, per-partition offsets, a timestamp and a duration each start at
/// exactly the right message of the produced sequence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_from_offset_timestamp_and_duration() {
    init_logs();
    let k = kafka_topic(3).await;
    let all = messages("p-pos", 1_200);
    let (a, b) = all.split_at(600);
    // A 3 s pause on each side of `t`: a replay from `t` (give or take the
    // time a reader takes to start on a loaded machine) starts at batch b.
    let pos_a = kafka_publish(&k, a).await;
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let t = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let pos_b = kafka_publish(&k, b).await;
    let positions: Vec<(i32, i64)> = pos_a.into_iter().chain(pos_b).collect();
    let expect = |f: &dyn Fn(i32, i64) -> bool| -> HashSet<String> {
        all.iter()
            .zip(&positions)
            .filter(|(_, (p, o))| f(*p, *o))
            .map(|(m, _)| m.as_ref().id().to_string())
            .collect()
    };
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(format!("{n}.jsonl"));

    // A duration that points at `t` now: however long publishing batch b
    // took, "now - ago" falls in the pause between the batches.
    let ago = format!("{}ms", (chrono::Utc::now() - t).num_milliseconds());
    run_one(read_only(with_replay(
        config(&k, &rand_name("g-ago"), &p("ago")),
        &ago,
    )))
    .await;
    assert_eq!(
        handled_ids(&p("ago")),
        ids(b),
        "{ago} ago (= t) = the second batch"
    );

    run_one(read_only(with_replay(
        config(&k, &rand_name("g-ts"), &p("ts")),
        &t.to_rfc3339(),
    )))
    .await;
    assert_eq!(
        handled_ids(&p("ts")),
        ids(b),
        "timestamp = the second batch"
    );

    run_one(read_only(with_replay(
        config(&k, &rand_name("g-off"), &p("off")),
        "100",
    )))
    .await;
    assert_eq!(handled_ids(&p("off")), expect(&|_, o| o >= 100));
    for l in lines(&p("off")) {
        assert!(l.offset.unwrap() >= 100);
    }

    // Per partition, through the group protocol: p0 from 250, p2 from 10,
    // p1 from the (absent) committed offset, i.e. earliest.
    run_one(with_replay(
        config(&k, &rand_name("g-parts"), &p("parts")),
        "0:250,2:10",
    ))
    .await;
    assert_eq!(
        handled_ids(&p("parts")),
        expect(&|p, o| match p {
            0 => o >= 250,
            2 => o >= 10,
            _ => true,
        })
    );
    let firsts: BTreeMap<i32, i64> = lines(&p("parts")).iter().fold(BTreeMap::new(), |mut m, l| {
        let e = m.entry(l.partition.unwrap()).or_insert(i64::MAX);
        *e = (*e).min(l.offset.unwrap());
        m
    });
    let mut want_firsts = BTreeMap::new();
    for (p, o) in &positions {
        let from = match p {
            0 => 250,
            2 => 10,
            _ => 0,
        };
        if *o >= from {
            let e = want_firsts.entry(*p).or_insert(i64::MAX);
            *e = (*e).min(*o);
        }
    }
    assert_eq!(
        firsts, want_firsts,
        "each partition starts exactly at its replay offset"
    );

    // `latest`: only what is published after the reader started.
    let h = spawn_consumer(read_only(with_replay(
        config(&k, &rand_name("g-latest"), &p("latest")),
        "latest",
    )));
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let late = messages("p-pos-late", 50);
    kafka_publish(&k, &late).await;
    finish_within(h, Duration::from_secs(30)).await;
    assert_eq!(
        handled_ids(&p("latest")),
        ids(&late),
        "latest = only new messages"
    );

    // `earliest` rewinds a group that has already committed to the end.
    let g = rand_name("g-earliest");
    assert_eq!(run_one(config(&k, &g, &p("e1"))).await.handled, 1_250);
    let again = run_one(with_replay(config(&k, &g, &p("e2")), "earliest")).await;
    assert_eq!(
        again.handled, 1_250,
        "earliest = everything retained, again"
    );
}

/// Poison on a log is counted and skipped, never retried forever, and its
/// offset is committed like any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_is_counted_and_skipped() {
    init_logs();
    let k = kafka_topic(1).await;
    let pubr = tickbridge_testkit::loadgen::KafkaPublisher::new(&k).unwrap();
    let msgs = messages("p-poison", 10);
    pubr.send_all(&msgs[..5]).await.unwrap();
    for body in [
        &b"not json"[..],
        br#"{"schema":"gap.v7"}"#,
        br#"{"schema":"tick.v1","price":1}"#,
    ] {
        pubr.send_raw("BTC-USD", body).await.unwrap();
    }
    pubr.send_all(&msgs[5..]).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let g = rand_name("g-poison");
    let mut c = config(&k, &g, &dir.path().join("a.jsonl"));
    c.common.stats_interval = Duration::from_secs(1);
    let s = run_one(c).await;
    assert_eq!(s.handled, 10);
    assert_eq!(
        s.lag.get(&0),
        Some(&0),
        "lag per partition is reported: {:?}",
        s.lag
    );
    assert_eq!(s.decode_errors.values().sum::<u64>(), 3);
    assert_eq!(s.decode_errors.get("not_json"), Some(&1));
    let mut again = config(&k, &g, &dir.path().join("b.jsonl"));
    again.common.exit_when_idle = Some(Duration::from_secs(2));
    assert_eq!(
        run_one(again).await.received,
        0,
        "poison offsets were committed too"
    );
}

/// A topic that does not exist is a one-line error, not a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_topic_is_a_clear_error() {
    init_logs();
    let k = KafkaConfig::local(&kafka_brokers(), &rand_name("tb-no-such-topic"), 1);
    let mut c = ConsumerConfig::local_kafka(k, "g");
    c.topic_wait = Duration::from_secs(2);
    let err = tokio::time::timeout(Duration::from_secs(20), consumer::run(c, Shutdown::new()))
        .await
        .expect("no hang")
        .expect_err("missing topic");
    assert!(matches!(err, Error::UnknownTopic { .. }), "{err:?}");
    assert!(!err.to_string().contains('\n') && err.is_terminal());
}

/// The binary rejects bad flags with one clear line and exit code 2.
#[test]
fn bad_flags_are_rejected_by_the_binaries() {
    let cases: [(&str, &[&str], &str); 4] = [
        (
            env!("CARGO_BIN_EXE_consumer"),
            &["--replay-from", "banana"],
            "invalid --replay-from \"banana\"",
        ),
        (
            env!("CARGO_BIN_EXE_consumer"),
            &["--from", "carrier-pigeon"],
            "carrier-pigeon",
        ),
        (
            env!("CARGO_BIN_EXE_worker"),
            &["--fail-rate", "2"],
            "probability",
        ),
        (
            env!("CARGO_BIN_EXE_worker"),
            &["--prefetch", "lots"],
            "lots",
        ),
    ];
    for (bin, args, want) in cases {
        let out = std::process::Command::new(bin).args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        let first = err.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("error:") && first.contains(want),
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked"));
    }
}

/// A member joining mid-stream takes partitions away from a busy member:
/// the busy member commits on revoke, so nothing is read twice even with a
/// commit interval far longer than the test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalance_commits_on_revoke() {
    init_logs();
    let k = kafka_topic(3).await;
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(format!("{n}.jsonl"));
    let g = rand_name("g-revoke");
    let mut c1 = config(&k, &g, &p("m1"));
    c1.commit_interval = Duration::from_secs(3600);
    c1.common.exit_when_idle = Some(Duration::from_secs(6));
    let h1 = spawn_consumer(c1);
    tokio::time::sleep(Duration::from_secs(3)).await;
    // A steady stream, so m1 is busy when m2 joins.
    let k2 = k.clone();
    let publisher = tokio::spawn(async move {
        let msgs = messages("p-revoke", 12_000);
        for chunk in msgs.chunks(500) {
            kafka_publish(&k2, chunk).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        msgs
    });
    wait_until("m1 to be busy", Duration::from_secs(20), || {
        lines(&p("m1")).len() >= 1_000
    })
    .await;
    let mut c2 = config(&k, &g, &p("m2"));
    c2.commit_interval = Duration::from_secs(3600);
    c2.common.exit_when_idle = Some(Duration::from_secs(6));
    let h2 = spawn_consumer(c2);
    let msgs = publisher.await.unwrap();
    finish_all_within(vec![h1, h2], Duration::from_secs(40)).await;
    let (m1, m2) = (lines(&p("m1")), lines(&p("m2")));
    assert!(!m2.is_empty(), "m2 got partitions");
    assert_eq!(
        m1.len() + m2.len(),
        12_000,
        "no re-reads across the rebalance ({} + {})",
        m1.len(),
        m2.len()
    );
    assert_eq!(id_counts(m1.iter().chain(&m2)).len(), ids(&msgs).len());
}

/// `--no-commit` without `--replay-from` starts at the group's committed
/// offsets and leaves them where they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_commit_peeks_from_the_committed_offsets() {
    let (k, _old) = kafka_with_ticks(3, "p-peek-old", 600).await;
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(format!("{n}.jsonl"));
    let g = rand_name("g-peek");
    assert_eq!(run_one(config(&k, &g, &p("first"))).await.handled, 600);
    let new = messages("p-peek-new", 300);
    kafka_publish(&k, &new).await;
    run_one(read_only(config(&k, &g, &p("peek")))).await;
    assert_eq!(
        handled_ids(&p("peek")),
        ids(&new),
        "the peek starts where the group is"
    );
    run_one(config(&k, &g, &p("after"))).await;
    assert_eq!(
        handled_ids(&p("after")),
        ids(&new),
        "and the group has not moved"
    );
}
