//! Both directions on the same exchange and topic: every message crosses
//! once, and nothing comes back (the `tb-origin` guard).

mod common;

use common::*;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use tickbridge_bridge::{BridgeConfig, K2rArgs, R2kArgs};

/// Ticks published to RabbitMQ (producer `fromrabbit`) and to Kafka
/// (`fromkafka`) while `bridge both` runs: the topic and an observer queue
/// bound to the exchange each end with every id exactly once, nothing more
/// arrives after a quiet period, and each direction skipped exactly what
/// the other one bridged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_directions_bridge_nothing_twice() {
    init_logs();
    let t0 = Instant::now();
    let rabbit = Rabbit::new(&amqp_url()).await;
    let observer = rabbit.observer().await;
    let kafka = kafka_topic(&kafka_brokers(), 3).await;
    let n = 3_000;
    let from_rabbit = ticks("fromrabbit", n);
    let from_kafka = ticks("fromkafka", n);

    let cfg = BridgeConfig {
        shared: shared(&rabbit, &kafka),
        r2k: Some(R2kArgs::default()),
        k2r: Some(K2rArgs {
            group: rand_name("bridge-both"),
            commit_interval: Duration::from_millis(200),
            ..Default::default()
        }),
    };
    let bridge = Running::start(cfg);
    tokio::join!(
        rabbit.publish(&from_rabbit),
        kafka_publish(&kafka, &from_kafka)
    );

    // Read one more than expected, so the read only ends after a quiet
    // period: anything bridged twice or ping-ponging would show up.
    let (topic, seen) = tokio::join!(
        read_topic(
            &kafka.brokers,
            &kafka.topic,
            2 * n + 1,
            Duration::from_secs(4)
        ),
        drain_queue(
            &rabbit.cfg.url,
            &observer,
            2 * n + 1,
            Duration::from_secs(4)
        ),
    );
    let stats = bridge.stats.clone();
    let summary = bridge.stop().await;

    for (place, ids) in [
        (
            "topic",
            topic
                .iter()
                .map(|g| g.msg.as_ref().id())
                .collect::<Vec<_>>(),
        ),
        (
            "exchange",
            seen.iter().map(|g| g.msg.as_ref().id()).collect::<Vec<_>>(),
        ),
    ] {
        let counts = id_counts(ids.iter().copied());
        assert_eq!(
            ids.len(),
            2 * n,
            "{place}: {} messages, expected {}",
            ids.len(),
            2 * n
        );
        assert_eq!(counts.len(), 2 * n, "{place}: every id exactly once");
    }
    // What crossed carries the marker of the side it came from.
    for g in topic
        .iter()
        .filter(|g| g.msg.as_ref().producer() == "fromrabbit")
    {
        assert_kafka_intact(g, "rabbitmq");
    }
    for g in seen
        .iter()
        .filter(|g| g.msg.as_ref().producer() == "fromkafka")
    {
        assert_amqp_intact(g, "kafka");
    }
    assert_eq!(summary.r2k.bridged, n as u64);
    assert_eq!(summary.k2r.bridged, n as u64);
    assert_eq!(
        summary.r2k.skipped_own, n as u64,
        "R2K skipped what K2R published"
    );
    assert_eq!(
        summary.k2r.skipped_own, n as u64,
        "K2R skipped what R2K produced"
    );
    assert_eq!(
        stats.r2k.duplicates.load(Relaxed) + stats.k2r.duplicates.load(Relaxed),
        0
    );
    eprintln!("both directions, {n} each way: {:?}", t0.elapsed());
    rabbit.cleanup().await;
}
