//! The work queue against a real RabbitMQ: one-to-one delivery across
//! workers, retries with the count in a header, dead letters with their
//! reason, and clear errors on bad input. Each test uses its own random
//! pipeline prefix and fails loudly when the broker is missing.

mod common;

use common::*;
use std::collections::HashSet;
use std::time::Duration;
use tickbridge_consumer::worker::{self, WorkerConfig};
use tickbridge_consumer::{Error, Summary};
use tickbridge_model::{schema, Shutdown};

fn worker_config(rabbit: &Rabbit, jsonl: &std::path::Path, name: &str) -> WorkerConfig {
    let mut c = WorkerConfig::local(&rabbit.cfg.url, &rabbit.cfg.prefix);
    c.common.jsonl = Some(jsonl.to_path_buf());
    c.common.exit_when_idle = Some(Duration::from_secs(2));
    c.common.name = Some(name.to_string());
    c
}

async fn run_workers(configs: Vec<WorkerConfig>) -> Vec<Summary> {
    let handles = configs.into_iter().map(spawn_worker).collect();
    finish_all_within(handles, Duration::from_secs(55)).await
}

/// One `w<i>.jsonl` per worker of a test, in `dir`.
fn jsonl_paths(dir: &std::path::Path, workers: usize) -> Vec<std::path::PathBuf> {
    (0..workers)
        .map(|i| dir.join(format!("w{i}.jsonl")))
        .collect()
}

/// 3 workers, 30,000 ticks: the union of what they handled is exactly the
/// 30,000, and a tick appears twice only if the second copy was a redelivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_split_30000_ticks_without_overlap() {
    let (rabbit, msgs) = Rabbit::with_ticks("p-split", 30_000).await;
    let dir = tempfile::tempdir().unwrap();
    let paths = jsonl_paths(dir.path(), 3);
    let configs = paths
        .iter()
        .enumerate()
        .map(|(i, p)| worker_config(&rabbit, p, &format!("w{i}")))
        .collect();
    let summaries = run_workers(configs).await;

    let all: Vec<_> = paths.iter().flat_map(|p| lines(p)).collect();
    let counts = id_counts(&all);
    let want: HashSet<String> = msgs.iter().map(|m| m.as_ref().id().to_string()).collect();
    let got: HashSet<String> = counts.keys().cloned().collect();
    assert_eq!(got, want, "the union is exactly the published ticks");
    let redelivered: usize = all.iter().filter(|l| l.redelivered).count();
    for (id, n) in &counts {
        if *n > 1 {
            assert!(
                all.iter()
                    .any(|l| l.redelivered && l.message.as_ref().id() == id),
                "{id} handled {n} times without a redelivery"
            );
        }
    }
    assert!(
        all.len() - 30_000 <= redelivered,
        "extra handlings ({}) are all redeliveries ({redelivered})",
        all.len() - 30_000
    );
    let handled: u64 = summaries.iter().map(|s| s.handled).sum();
    assert_eq!(
        handled as usize,
        all.len(),
        "summaries agree with the files"
    );
    for s in &summaries {
        assert!(
            s.handled > 0,
            "every worker got a share: {:?}",
            summaries.iter().map(|s| s.handled).collect::<Vec<_>>()
        );
        assert_eq!(s.dead_lettered_total(), 0);
        assert!(s.latency_from_received.count > 0);
    }
    assert_eq!(rabbit.depth(&rabbit.cfg.topology().work_queue).await, 0);
    assert_eq!(rabbit.depth(&rabbit.cfg.topology().dlq).await, 0);
    rabbit.cleanup().await;
}

/// `--fail-every 100 --max-retries 2` over 30,000 ticks plus poison: every
/// tick is handled (most retries succeed) or sits in the DLQ with its
/// reason; poison goes straight to the DLQ with a decode reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_every_100_with_two_retries_ends_handled_or_dead_lettered() {
    let (rabbit, msgs) = Rabbit::with_ticks("p-fail", 30_000).await;
    // Poison: not JSON, not a known schema, schema-invalid, oversized.
    let mut p = rabbit.publisher().await;
    let poison: Vec<Vec<u8>> = vec![
        b"\xff\xfenot json".to_vec(),
        br#"{"schema":"tick.v9"}"#.to_vec(),
        br#"{"schema":"tick.v1","id":"x"}"#.to_vec(),
        vec![b'['; 70_000],
    ];
    for body in &poison {
        p.publish_raw("binance.BTC-USD", body, Default::default())
            .await
            .unwrap();
    }
    p.flush().await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let paths = jsonl_paths(dir.path(), 3);
    let configs = paths
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut c = worker_config(&rabbit, p, &format!("fw{i}"));
            c.fail.fail_every = Some(100);
            c.max_retries = 2;
            c
        })
        .collect();
    let summaries = run_workers(configs).await;

    let handled: HashSet<String> = paths
        .iter()
        .flat_map(|p| lines(p))
        .map(|l| l.message.as_ref().id().to_string())
        .collect();
    let dlq = rabbit.drain(&rabbit.cfg.topology().dlq).await;
    let mut dead_ids = HashSet::new();
    let mut decode_dead = 0;
    for (body, reason, retries) in &dlq {
        let reason = reason
            .as_deref()
            .expect("every dead letter carries tb-error");
        match schema::decode(body) {
            Ok(m) => {
                assert!(
                    reason.starts_with("handler failed after 3 attempts"),
                    "{reason}"
                );
                assert_eq!(*retries, Some(2));
                dead_ids.insert(m.as_ref().id().to_string());
            }
            Err(e) => {
                assert!(
                    reason.starts_with(e.kind()),
                    "reason {reason:?} names the decode error {}",
                    e.kind()
                );
                decode_dead += 1;
            }
        }
    }
    assert_eq!(
        decode_dead,
        poison.len(),
        "poison goes straight to the DLQ, never requeued"
    );
    for m in &msgs {
        let id = m.as_ref().id();
        assert!(
            handled.contains(id) || dead_ids.contains(id),
            "{id} neither handled nor dead-lettered"
        );
    }
    let failures: u64 = summaries.iter().map(|s| s.failures).sum();
    let retries: u64 = summaries.iter().map(|s| s.retries).sum();
    assert!(
        failures >= 290,
        "about 1 in 100 handler calls failed: {failures}"
    );
    assert_eq!(
        failures,
        retries + dead_ids.len() as u64,
        "each failure was retried or dead-lettered"
    );
    let bad: u64 = summaries
        .iter()
        .flat_map(|s| s.decode_errors.values())
        .sum();
    assert_eq!(bad as usize, poison.len(), "decode errors counted");
    assert_eq!(rabbit.depth(&rabbit.cfg.topology().work_queue).await, 0);
    rabbit.cleanup().await;
}

/// `--fail-rate 1.0 --max-retries 2`: each message is tried three times,
/// then dead-lettered with the reason and its retry count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_failing_handler_dead_letters_after_max_retries() {
    let (rabbit, _msgs) = Rabbit::with_ticks("p-dlq", 20).await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = worker_config(&rabbit, &dir.path().join("w.jsonl"), "always-fails");
    c.fail.fail_rate = Some(1.0);
    c.max_retries = 2;
    let s = run_workers(vec![c]).await.remove(0);
    assert_eq!(
        (s.handled, s.failures, s.retries, s.dead_lettered_total()),
        (0, 60, 40, 20)
    );
    let dlq = rabbit.drain(&rabbit.cfg.topology().dlq).await;
    assert_eq!(dlq.len(), 20);
    for (body, reason, retries) in dlq {
        schema::decode(&body).expect("the original body, untouched");
        assert_eq!(retries, Some(2));
        assert!(reason.unwrap().contains("injected failure (--fail-rate 1)"));
    }
    rabbit.cleanup().await;
}

/// A worker pointed at a queue that does not exist stops at once with a
/// one-line error naming the queue: no panic, no hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_queue_is_a_clear_error() {
    init_logs();
    let prefix = rand_name("tb-missing");
    let c = WorkerConfig::local(&amqp_url(), &prefix);
    let err = tokio::time::timeout(Duration::from_secs(20), worker::run(c, Shutdown::new()))
        .await
        .expect("no hang")
        .expect_err("missing queue is an error");
    assert!(matches!(err, Error::UnknownQueue { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("{prefix}.work")) && !text.contains('\n'),
        "{text}"
    );
    assert!(err.is_terminal());
}

/// Graceful shutdown: a worker stopped mid-stream hands its prefetched,
/// unhandled messages back; a second worker then handles everything left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_returns_in_flight_messages() {
    let (rabbit, _msgs) = Rabbit::with_ticks("p-stop", 3_000).await;
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("a.jsonl");
    let shutdown = Shutdown::new();
    let mut c = worker_config(&rabbit, &first, "stopper");
    c.prefetch = 500;
    c.common.exit_when_idle = None;
    let h = tokio::spawn(worker::run(c, shutdown.clone()));
    let f = first.clone();
    wait_until("first worker handled some", Duration::from_secs(30), || {
        lines(&f).len() >= 300
    })
    .await;
    shutdown.trigger();
    let a = finish_within(h, Duration::from_secs(20)).await;
    assert!(a.handled < 3_000, "stopped early");
    let second = dir.path().join("b.jsonl");
    let b = run_workers(vec![worker_config(&rabbit, &second, "finisher")])
        .await
        .remove(0);
    let all: Vec<_> = lines(&first).into_iter().chain(lines(&second)).collect();
    let counts = id_counts(&all);
    assert_eq!(counts.len(), 3_000, "nothing lost");
    assert_eq!(all.len(), 3_000, "nothing handled twice");
    assert_eq!(a.handled + b.handled, 3_000);
    rabbit.cleanup().await;
}
