//! Consumer groups seen from the brokers (`tickbridge_broker::kafka::groups`)
//! against real Kafka: exact lag per partition from committed offsets and
//! watermarks, lag 0 once a reader drained and committed, DescribeGroups'
//! members and their partitions as the coordinator assigned them, and the
//! clear errors for an unknown group, a missing topic and a broker that
//! died. Each test uses its own topic and group.

mod common;

use common::*;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tickbridge_broker::kafka::groups::{self, GroupLag, LagProbe};
use tickbridge_broker::kafka::KafkaConfig;
use tickbridge_broker::Error;
use tickbridge_consumer::consumer::{self, ConsumerConfig};
use tickbridge_model::Shutdown;
use tickbridge_testkit::KafkaNode;

const T: Duration = Duration::from_secs(10);

/// Symbols spread over more keys than [`SYMBOLS`], so every partition of a
/// 3-partition topic gets some (the key hash is fixed, so this holds in
/// every run; `topic_with_a_lagging_group` checks it).
const WIDE: [&str; 12] = [
    "BTC-USD", "ETH-USD", "SOL-USD", "XRP-USD", "ADA-USD", "DOGE-USD", "S00-USD", "S01-USD",
    "S02-USD", "S03-USD", "S04-USD", "S05-USD",
];

fn wide_messages(producer: &str, n: usize) -> Vec<tickbridge_model::Message> {
    tickbridge_testkit::loadgen::synthetic_ticks(producer, &WIDE, n)
        .into_iter()
        .map(tickbridge_model::Message::Tick)
        .collect()
}

/// High watermark of each partition after a publish into an empty topic:
/// one past the last offset written there (0 for a partition never written).
fn high_watermarks(positions: &[(i32, i64)], partitions: i32) -> BTreeMap<i32, i64> {
    let mut hw: BTreeMap<i32, i64> = (0..partitions).map(|p| (p, 0)).collect();
    for (p, o) in positions {
        let e = hw.get_mut(p).unwrap();
        *e = (*e).max(o + 1);
    }
    hw
}

/// Commits `offsets` for `group` without joining it (a consumer that never
/// subscribes, as an operator's tool would).
fn commit_offsets(k: &KafkaConfig, group: &str, offsets: &[(i32, i64)]) {
    let mut c = k.client_config();
    c.set("group.id", group).set("enable.auto.commit", "false");
    let c: BaseConsumer = k.finish(c).create().unwrap();
    let mut tpl = TopicPartitionList::new();
    for (p, o) in offsets {
        tpl.add_partition_offset(&k.topic, *p, Offset::Offset(*o))
            .unwrap();
    }
    c.commit(&tpl, CommitMode::Sync)
        .expect("offsets committed for a group with no members");
}

/// Publishes `n` ticks into a fresh 3-partition topic and commits, for a
/// fresh group, half of partition 0, nothing on partition 1 and all but 5
/// of partition 2. Returns the topic, the group and the expected lag.
async fn topic_with_a_lagging_group(n: usize) -> (KafkaConfig, String, BTreeMap<i32, i64>) {
    let k = kafka_topic(3).await;
    let positions = kafka_publish(&k, &wide_messages("p-lag", n)).await;
    let hw = high_watermarks(&positions, 3);
    assert!(
        hw.values().all(|h| *h > 10),
        "every partition written: {hw:?}"
    );
    let g = rand_name("g-lag");
    let committed = [(0, hw[&0] / 2), (2, (hw[&2] - 5).max(0))];
    commit_offsets(&k, &g, &committed);
    let want = BTreeMap::from([
        (0, hw[&0] - hw[&0] / 2),
        // Never committed: counts from the log start, offset 0.
        (1, hw[&1]),
        (2, hw[&2] - (hw[&2] - 5).max(0)),
    ]);
    (k, g, want)
}

fn check_exact(lag: &GroupLag, want: &BTreeMap<i32, i64>) {
    assert_eq!(lag.by_partition(), *want, "{lag:#?}");
    assert_eq!(lag.total, want.values().sum::<i64>());
    for p in &lag.partitions {
        assert_eq!(p.log_start, 0);
        assert_eq!(p.high_watermark - p.committed.unwrap_or(0), p.lag);
    }
    assert_eq!(lag.partitions[1].committed, None, "p1 never committed");
}

/// Committed offsets behind the high watermarks give exactly that lag per
/// partition; a reader of the group then drains it, commits, and the group
/// ends at lag 0, in the reader's summary and from outside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_is_exact_and_zero_after_a_reader_drains() {
    init_logs();
    let (k, g, want) = topic_with_a_lagging_group(3_000).await;
    assert!(want.values().sum::<i64>() > 1_000, "{want:?}");

    let lag = groups::group_lag(&k, &g, &k.topic, T).await.unwrap();
    check_exact(&lag, &want);
    let d = lag.description.as_ref().unwrap();
    assert_eq!((d.state.as_str(), d.members.len()), ("Empty", 0), "{d:?}");
    assert!(groups::list_groups(&k, T)
        .await
        .unwrap()
        .iter()
        .any(|x| x.group == g && x.state == "Empty"));

    let dir = tempfile::tempdir().unwrap();
    let mut c = ConsumerConfig::local_kafka(k.clone(), &g);
    c.common.jsonl = Some(dir.path().join("drain.jsonl"));
    c.common.exit_when_idle = Some(Duration::from_secs(3));
    c.common.stats_interval = Duration::from_secs(1);
    let s = tokio::time::timeout(Duration::from_secs(60), consumer::run(c, Shutdown::new()))
        .await
        .expect("the reader finished within 60 s")
        .expect("the reader ran");
    assert_eq!(s.handled as i64, want.values().sum::<i64>());
    let gl = s.group_lag.expect("a group member reports the group's lag");
    assert_eq!(gl.lag_at_end, Some(0), "{gl:#?}");
    assert_eq!(
        gl.partitions_at_end,
        BTreeMap::from([(0, 0), (1, 0), (2, 0)])
    );
    assert!(gl.samples >= 2 && gl.failed_samples == 0, "{gl:#?}");
    assert!(gl.max_lag <= want.values().sum::<i64>(), "{gl:#?}");

    let after = groups::group_lag(&k, &g, &k.topic, T).await.unwrap();
    assert_eq!(after.total, 0, "{after:#?}");
    for p in &after.partitions {
        assert_eq!(p.committed, Some(p.high_watermark), "{p:?}");
    }
}

/// Two members of one group: DescribeGroups names both by client id, and
/// the partitions the coordinator gave each are the ones each member was
/// assigned, covering the topic without overlap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_group_shows_members_and_partitions_from_the_broker() {
    init_logs();
    let k = kafka_topic(3).await;
    let g = rand_name("g-describe");
    let member = |name: &str| {
        let mut c = ConsumerConfig::local_kafka(k.clone(), &g);
        c.common.name = Some(name.to_string());
        c.session_timeout = Duration::from_secs(6);
        c
    };
    let (m1, m2) = (member("member-a"), member("member-b"));
    let (a1, a2) = (m1.assignment.clone(), m2.assignment.clone());
    let shutdown = Shutdown::new();
    let h1 = tokio::spawn(consumer::run(m1, shutdown.clone()));
    let h2 = tokio::spawn(consumer::run(m2, shutdown.clone()));

    // The broker's view settles after the members' callbacks ran; wait for
    // a stable group whose assignment covers the topic and matches what
    // each member holds.
    let mut last = None;
    let settled = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            if let Ok(d) = groups::describe_group(&k, &g, T).await {
                let by_member = d.assigned(&k.topic);
                let own = BTreeMap::from([
                    ("member-a".to_string(), a1.current()),
                    ("member-b".to_string(), a2.current()),
                ]);
                let broker: BTreeMap<String, BTreeSet<i32>> = by_member
                    .iter()
                    .map(|(m, p)| (m.clone(), p.iter().copied().collect()))
                    .collect();
                let done = d.state == "Stable" && d.members.len() == 2 && broker == own;
                last = Some(d);
                if done {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
    .await;
    let d = last.expect("DescribeGroups answered");
    assert!(settled.is_ok(), "the group never settled: {d:#?}");
    assert_eq!(d.protocol_type, "consumer");
    assert!(!d.protocol.is_empty(), "an assignor was chosen: {d:?}");
    let clients: BTreeSet<&str> = d.members.iter().map(|m| m.client_id.as_str()).collect();
    assert_eq!(clients, BTreeSet::from(["member-a", "member-b"]));
    for m in &d.members {
        assert!(
            m.client_host.contains("127.0.0.1"),
            "client host {}",
            m.client_host
        );
        assert!(!m.member_id.is_empty());
    }
    let mut all: Vec<i32> = d.assigned(&k.topic).into_values().flatten().collect();
    all.sort_unstable();
    assert_eq!(all, vec![0, 1, 2], "every partition once: {d:#?}");
    assert!(d.assigned(&k.topic).values().all(|p| !p.is_empty()));

    // The lag measurement carries the same view of the group.
    let lag = groups::group_lag(&k, &g, &k.topic, T).await.unwrap();
    assert_eq!(lag.member_count(), 2);
    assert_eq!(lag.total, 0, "an empty topic has no lag");

    shutdown.trigger();
    for h in [h1, h2] {
        tokio::time::timeout(Duration::from_secs(40), h)
            .await
            .expect("members stop")
            .unwrap()
            .unwrap();
    }
}

/// A group no broker lists, and a topic that does not exist, are one-line
/// errors that say which and where.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_group_and_missing_topic_are_clear_errors() {
    init_logs();
    let k = kafka_topic(1).await;
    let g = rand_name("g-nobody");
    for e in [
        groups::describe_group(&k, &g, T).await.unwrap_err(),
        groups::group_lag(&k, &g, &k.topic, T).await.unwrap_err(),
    ] {
        assert!(matches!(e, Error::UnknownGroup { .. }), "{e:?}");
        let text = e.to_string();
        assert!(text.contains(&g) && text.contains(&k.brokers), "{text}");
        assert!(!text.contains('\n') && e.is_terminal(), "{text}");
    }
    assert!(!groups::list_groups(&k, T)
        .await
        .unwrap()
        .iter()
        .any(|x| x.group == g));

    let missing = rand_name("tb-no-such-topic");
    let probe = LagProbe::new(&k, &g, &missing, T).unwrap();
    let e = probe.sample().await.unwrap_err();
    assert!(
        matches!(e, Error::Config(_)) && e.to_string().contains(&missing),
        "{e}"
    );
}

/// A broker that dies: the probe that measured it a moment ago now fails
/// with a timeout naming the brokers (never hangs), and the one-shot calls
/// report it unreachable. A private node, so the shared broker is never
/// touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_broker_is_a_clear_error_not_a_hang() {
    init_logs();
    let mut node = KafkaNode::start().expect("private Kafka node");
    let k = KafkaConfig::local(&node.brokers(), &rand_name("tb-lag-down"), 2);
    k.ensure_topic(&k.topic, 2).await.unwrap();
    let positions = kafka_publish(&k, &wide_messages("p-down", 200)).await;
    let hw = high_watermarks(&positions, 2);
    let g = rand_name("g-down");
    assert!(hw.values().all(|h| *h > 0), "{hw:?}");
    commit_offsets(&k, &g, &[(0, 0), (1, hw[&1])]);
    let probe = LagProbe::new(&k, &g, &k.topic, Duration::from_secs(5)).unwrap();
    let lag = probe.sample().await.unwrap();
    assert_eq!(lag.by_partition(), BTreeMap::from([(0, hw[&0]), (1, 0)]));

    node.kill();
    let e = tokio::time::timeout(Duration::from_secs(60), probe.sample())
        .await
        .expect("the sample is bounded")
        .unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
    assert!(e.to_string().contains(&node.brokers()), "{e}");

    for e in [
        tokio::time::timeout(Duration::from_secs(60), groups::describe_group(&k, &g, T))
            .await
            .expect("bounded")
            .unwrap_err(),
        tokio::time::timeout(
            Duration::from_secs(60),
            groups::group_lag(&k, &g, &k.topic, T),
        )
        .await
        .expect("bounded")
        .unwrap_err(),
    ] {
        let text = e.to_string();
        assert!(
            text.contains("unreachable") && text.contains(&node.brokers()),
            "{text}"
        );
    }
}
