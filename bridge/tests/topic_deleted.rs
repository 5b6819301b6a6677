//! `kafka-to-rabbitmq` while its topic is deleted (admin API): the bridge
//! stops with one clear line naming the topic, the receive error is counted,
//! and nothing hangs or panics. Its own test binary, because the metrics
//! recorder is global to a process.

mod common;

use common::*;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tickbridge_bridge::Error;
use tickbridge_testkit::assert_topic_deleted_line;
use tickbridge_testkit::prom::series_value;

/// Value of a series in the process's Prometheus text (0 when absent).
fn counter(text: &str, series: &str) -> f64 {
    series_value(text, series).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_to_rabbitmq_stops_with_a_clear_error_when_its_topic_is_deleted() {
    init_logs();
    let metrics = tickbridge_model::telemetry::install_metrics(None).expect("recorder");
    let series = "tickbridge_bridge_kafka_receive_errors_total{direction=\"kafka_to_rabbitmq\"}";
    let rabbit = Rabbit::new(&amqp_url()).await;
    let kafka = kafka_topic(&kafka_brokers(), 3).await;
    let n = 500;
    kafka_publish(&kafka, &ticks("deleted", n)).await;

    let bridge = Running::start(k2r(shared(&rabbit, &kafka)));
    let stats = bridge.stats.clone();
    wait_until("every record bridged", Duration::from_secs(60), || {
        stats.k2r.bridged.load(Relaxed) >= n as u64
    })
    .await;
    assert!(
        !bridge.handle.is_finished(),
        "still running before the deletion"
    );
    let before = counter(&metrics.render(), series);
    kafka
        .delete_topic(&kafka.topic)
        .await
        .expect("delete the topic");

    let err = tokio::time::timeout(Duration::from_secs(60), bridge.handle)
        .await
        .expect("the bridge stopped within 60 s of the deletion (no hang)")
        .expect("no panic")
        .expect_err("a deleted topic is an error, not a clean exit");
    assert!(
        matches!(err, Error::TopicDeleted { .. }),
        "the deletion has its own error: {err:?}"
    );
    assert!(err.is_terminal(), "not retried: {err:?}");
    assert_topic_deleted_line(&err.to_string(), &kafka.topic);
    let counted = counter(&metrics.render(), series) - before;
    assert!(counted >= 1.0, "the receive error is counted ({counted})");
    let got = drain_queue(
        &rabbit.cfg.url,
        &rabbit.topo().work_queue,
        n,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(
        got.len(),
        n,
        "every record bridged once before the deletion"
    );
    rabbit.cleanup().await;
}
