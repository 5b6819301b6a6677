//! The test's own RabbitMQ node restarted while `bridge both` runs: both
//! directions reconnect with backoff and, after recovery, everything
//! arrives.

mod common;

use common::*;
use std::collections::HashSet;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use tickbridge_bridge::{BridgeConfig, K2rArgs, R2kArgs};
use tickbridge_testkit::RabbitNode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_node_restart_mid_run_loses_nothing() {
    init_logs();
    let t0 = Instant::now();
    let node = tokio::task::spawn_blocking(RabbitNode::start)
        .await
        .unwrap()
        .expect("a private RabbitMQ node (rabbitmq-server installed by scripts/stack.sh up)");
    let node = std::sync::Arc::new(node);
    let url = node.url();
    let rabbit = Rabbit::new(&url).await;
    let prefix = rabbit.cfg.prefix.clone();
    let observer = rabbit.observer().await;
    let kafka = kafka_topic(&kafka_brokers(), 3).await;
    let n = 8_000;
    let from_rabbit = ticks("restartrabbit", n);
    let from_kafka = ticks("restartkafka", n);
    rabbit.publish(&from_rabbit).await;
    // Half the Kafka side now, the rest trickles in across the restart.
    kafka_publish(&kafka, &from_kafka[..n / 2]).await;
    let booted = t0.elapsed();
    let trickle = {
        let kafka = kafka.clone();
        let rest = from_kafka[n / 2..].to_vec();
        tokio::spawn(async move {
            for chunk in rest.chunks(250) {
                kafka_publish(&kafka, chunk).await;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };

    let mut shared = shared(&rabbit, &kafka);
    shared.stats_interval = Duration::from_secs(2);
    let cfg = BridgeConfig {
        shared,
        r2k: Some(R2kArgs {
            prefetch: 500,
            ..Default::default()
        }),
        k2r: Some(K2rArgs {
            group: rand_name("bridge-restart"),
            confirm_window: 500,
            commit_interval: Duration::from_millis(200),
            ..Default::default()
        }),
    };
    let bridge = Running::start(cfg);
    let stats = bridge.stats.clone();
    wait_until("both directions under way", Duration::from_secs(30), || {
        stats.r2k.bridged.load(Relaxed) >= 500 && stats.k2r.bridged.load(Relaxed) >= 500
    })
    .await;
    let before = (
        stats.r2k.bridged.load(Relaxed),
        stats.k2r.bridged.load(Relaxed),
    );
    rabbit.conn.close(200, "restarting".into()).await.ok();
    let restart_at = Instant::now();
    let n2 = node.clone();
    tokio::task::spawn_blocking(move || n2.restart())
        .await
        .unwrap()
        .expect("node restarts");
    let restart_took = restart_at.elapsed();
    assert!(
        before.0 < n as u64 || before.1 < n as u64,
        "restart happened mid-run"
    );

    let rabbit = Rabbit::reconnect(&url, &prefix, Duration::from_secs(30)).await;
    trickle.await.unwrap();
    // After the node restart the bridge reconnects with backoff (capped at
    // 10 s), so a read that gives up after a shorter
    // silence can end before the bridge is back: wait 30 s of silence.
    let (topic, seen) = tokio::join!(
        read_topic(&kafka.brokers, &kafka.topic, 4 * n, Duration::from_secs(30)),
        drain_queue(&url, &observer, 4 * n, Duration::from_secs(30)),
    );
    let summary = bridge.stop().await;

    let topic_ids: HashSet<&str> = topic.iter().map(|g| g.msg.as_ref().id()).collect();
    let seen_ids: HashSet<&str> = seen.iter().map(|g| g.msg.as_ref().id()).collect();
    for m in &from_rabbit {
        assert!(
            topic_ids.contains(m.as_ref().id()),
            "{} missing in Kafka",
            m.as_ref().id()
        );
    }
    for m in &from_kafka {
        assert!(
            seen_ids.contains(m.as_ref().id()),
            "{} missing in RabbitMQ",
            m.as_ref().id()
        );
    }
    assert!(
        summary.r2k.reconnects >= 1 && summary.k2r.reconnects >= 1,
        "{summary:?}"
    );
    eprintln!(
        "node restart: setup {booted:?}, restart {restart_took:?}, r2k dups {} k2r dups {}, reconnects {}/{}, total {:?}",
        topic.len() - topic_ids.len(),
        seen.len() - seen_ids.len(),
        summary.r2k.reconnects,
        summary.k2r.reconnects,
        t0.elapsed()
    );
    rabbit.cleanup().await;
    tokio::task::spawn_blocking(move || drop(node))
        .await
        .unwrap();
}
