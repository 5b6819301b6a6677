//! The RabbitMQ stream queue as a log, over AMQP 0-9-1: every reader gets
//! every message, and `--replay-from` maps onto `x-stream-offset` (offset,
//! first, next, timestamp, duration) starting at exactly the right message.
//! Each test uses its own random pipeline prefix.

mod common;

use common::*;
use std::path::Path;
use std::time::Duration;
use tickbridge_broker::amqp::AmqpConfig;
use tickbridge_consumer::consumer::{self, ConsumerConfig};
use tickbridge_consumer::replay::ReplayFrom;
use tickbridge_consumer::{Error, Summary};
use tickbridge_model::Shutdown;

fn config(amqp: &AmqpConfig, replay: Option<&str>, jsonl: &Path) -> ConsumerConfig {
    let mut c = ConsumerConfig::local_stream(amqp.clone());
    c.replay_from = replay.map(|r| r.parse::<ReplayFrom>().unwrap());
    writes_to(&mut c.common, jsonl);
    c.common.exit_when_idle = Some(Duration::from_secs(2));
    c
}

async fn run_all(configs: Vec<ConsumerConfig>) -> Vec<Summary> {
    let handles = configs.into_iter().map(spawn_consumer).collect();
    finish_all_within(handles, Duration::from_secs(50)).await
}

/// 30,000 ticks in two batches with a pause between: readers from `0` and
/// `earliest` each get all of them in order (broadcast); `<offset>`,
/// `<timestamp>` and `<duration>` start at exactly the right message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_broadcast_and_replay_positions() {
    init_logs();
    let rabbit = Rabbit::new().await;
    let all = messages("p-stream", 30_000);
    let (a, b) = all.split_at(15_000);
    rabbit.publish(a).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let t = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    rabbit.publish(b).await;
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(format!("{n}.jsonl"));

    // Duration first, while "now - 3s" still falls inside the pause.
    run_all(vec![config(&rabbit.cfg, Some("3s"), &p("ago"))]).await;
    assert_eq!(
        handled(&p("ago")),
        ids(b),
        "3s ago = exactly the second batch"
    );

    let sums = run_all(vec![
        config(&rabbit.cfg, Some("0"), &p("zero")),
        config(&rabbit.cfg, Some("earliest"), &p("first")),
        config(&rabbit.cfg, Some("100"), &p("off")),
        config(&rabbit.cfg, Some(&t.to_rfc3339()), &p("ts")),
    ])
    .await;
    assert_eq!(
        handled(&p("zero")),
        ids(&all),
        "offset 0: everything, in publish order"
    );
    assert_eq!(
        handled(&p("first")),
        ids(&all),
        "earliest: a second reader gets everything too"
    );
    for (symbol, seqs) in seqs_by_symbol(&lines(&p("zero"))) {
        assert_eq!(seqs, (1..=5_000).collect::<Vec<u64>>(), "{symbol} in order");
    }
    assert_eq!(
        handled(&p("off")),
        ids(&all[100..]),
        "offset 100 starts at the 101st message"
    );
    assert_eq!(lines(&p("off"))[0].offset, Some(100));
    assert_eq!(
        handled(&p("ts")),
        ids(b),
        "timestamp = exactly the second batch"
    );
    assert!(sums
        .iter()
        .all(|s| s.duplicates == 0 && s.decode_errors.is_empty()));
    rabbit.cleanup().await;
}

/// `latest` reads only what is published after the reader starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_latest_reads_only_new_messages() {
    let (rabbit, _old) = Rabbit::with_ticks("p-old", 500).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.jsonl");
    let mut c = config(&rabbit.cfg, Some("latest"), &path);
    c.common.exit_when_idle = Some(Duration::from_secs(3));
    let h = spawn_consumer(c);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let new = messages("p-new", 50);
    rabbit.publish(&new).await;
    let s = finish_within(h, Duration::from_secs(30)).await;
    assert_eq!(handled(&path), ids(&new));
    assert_eq!(s.handled, 50);
    rabbit.cleanup().await;
}

/// Stream-specific bad input: a partition other than 0, and a pipeline
/// without a stream queue, are one-line errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_bad_input_is_a_clear_error() {
    init_logs();
    let rabbit = Rabbit::new().await;
    let dir = tempfile::tempdir().unwrap();
    let err = consumer::run(
        config(&rabbit.cfg, Some("1:5"), &dir.path().join("x.jsonl")),
        Shutdown::new(),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("single partition") && err.is_terminal(),
        "{err}"
    );
    rabbit.cleanup().await;

    let missing = AmqpConfig::local(&amqp_url(), &rand_name("tb-nothing"));
    let err = tokio::time::timeout(
        Duration::from_secs(20),
        consumer::run(
            config(&missing, None, &dir.path().join("y.jsonl")),
            Shutdown::new(),
        ),
    )
    .await
    .expect("no hang")
    .unwrap_err();
    assert!(matches!(err, Error::UnknownQueue { .. }), "{err:?}");
    assert!(!err.to_string().contains('\n'));
}
