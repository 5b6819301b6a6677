//! A Kafka topic deleted (admin API) while the consumer reads it: the
//! reader stops with one clear line naming the topic, the receive error is
//! counted, and nothing hangs or panics. Once as a group member (subscribe)
//! and once as a read-only replay (`--no-commit`, an explicit assignment).
//! Its own test binary, because the metrics recorder is global to a process.

mod common;

use common::*;
use std::path::Path;
use std::time::Duration;
use tickbridge_broker::kafka::KafkaConfig;
use tickbridge_consumer::consumer::ConsumerConfig;
use tickbridge_consumer::replay::ReplayFrom;
use tickbridge_consumer::Error;
use tickbridge_testkit::assert_topic_deleted_line;
use tickbridge_testkit::prom::series_value;

/// Value of a counter in the process's Prometheus text (0 when absent:
/// a counter appears with its first increment).
fn counter(text: &str, series: &str) -> f64 {
    series_value(text, series).unwrap_or(0.0)
}

fn config(k: &KafkaConfig, group: &str, jsonl: &Path) -> ConsumerConfig {
    let mut c = kafka_reader(k, group, jsonl);
    // No --exit-when-idle: a reader that ignored the deletion would wait
    // for records forever, and the timeout below would catch it.
    c.common.exit_when_idle = None;
    c.topic_wait = Duration::from_secs(5);
    c
}

/// Reads every record of a fresh topic, deletes the topic, and returns the
/// reader's error and the receive-error counter's increase.
async fn delete_under(
    mut c: ConsumerConfig,
    k: &KafkaConfig,
    jsonl: &Path,
    n: usize,
) -> (Error, f64) {
    let metrics = tickbridge_model::telemetry::install_metrics(None).expect("recorder");
    let series = "tickbridge_consumer_kafka_receive_errors_total";
    let before = counter(&metrics.render(), series);
    c.common.jsonl = Some(jsonl.to_path_buf());
    let h = spawn_consumer(c);
    wait_until(
        "the reader handled every record",
        Duration::from_secs(60),
        || lines(jsonl).len() >= n,
    )
    .await;
    assert!(
        !h.is_finished(),
        "the reader is still running before the deletion"
    );
    k.delete_topic(&k.topic).await.expect("delete the topic");
    let err = tokio::time::timeout(Duration::from_secs(60), h)
        .await
        .expect("the reader stopped within 60 s of the deletion (no hang)")
        .expect("no panic")
        .expect_err("a deleted topic is an error, not a clean exit");
    let after = counter(&metrics.render(), series);
    (err, after - before)
}

fn assert_clear(err: &Error, topic: &str) {
    assert!(
        matches!(err, Error::TopicDeleted { .. }),
        "the deletion has its own error: {err:?}"
    );
    assert!(err.is_terminal(), "not retried: {err:?}");
    assert_topic_deleted_line(&err.to_string(), topic);
}

/// Both cases: `n` ticks (from producer `p-<tag>`) on a fresh topic of
/// `partitions`, read into `<file>.jsonl` by a member of group `g-<tag>`
/// that `setup` turns into the case's kind of reader; then the topic is
/// deleted under it. The reader stops with the clear error, the receive
/// error is counted, and every record was handled once before.
async fn stops_clearly_when_deleted(
    partitions: i32,
    n: usize,
    tag: &str,
    file: &str,
    setup: impl FnOnce(&mut ConsumerConfig),
) {
    let (k, _msgs) = kafka_with_ticks(partitions, &format!("p-{tag}"), n).await;
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join(format!("{file}.jsonl"));
    let mut c = config(&k, &rand_name(&format!("g-{tag}")), &jsonl);
    setup(&mut c);
    let (err, counted) = delete_under(c, &k, &jsonl, n).await;
    assert_clear(&err, &k.topic);
    assert!(counted >= 1.0, "the receive error is counted ({counted})");
    assert_eq!(
        lines(&jsonl).len(),
        n,
        "every record handled once before the deletion"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_member_stops_with_a_clear_error_when_its_topic_is_deleted() {
    stops_clearly_when_deleted(3, 300, "deleted", "member", |_| {}).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_replay_stops_with_a_clear_error_when_its_topic_is_deleted() {
    stops_clearly_when_deleted(2, 200, "deleted-ro", "replay", |c| {
        c.no_commit = true;
        c.replay_from = Some("0".parse::<ReplayFrom>().unwrap());
    })
    .await;
}
