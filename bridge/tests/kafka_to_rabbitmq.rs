//! `kafka-to-rabbitmq` against the real brokers: 50,000 ticks with ids,
//! headers and per-symbol order intact, offsets committed only for what
//! RabbitMQ confirmed; poison and unroutable records dead-lettered with
//! their reason.

mod common;

use common::*;
use std::time::{Duration, Instant};

/// 50,000 ticks in a 3-partition topic arrive in the work queue exactly
/// once, with `message_id` = tick id, every header, the `source.symbol`
/// routing key and per-symbol order; at the end the group's committed
/// offsets cover the whole topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridges_50k_ticks_in_order_with_ids_and_headers() {
    let t0 = Instant::now();
    let (rabbit, kafka) = pipeline_and_topic(3).await;
    let n = 50_000;
    let msgs = ticks("k2r50k", n);
    kafka_publish(&kafka, &msgs).await;
    let published = t0.elapsed();

    let cfg = k2r(shared(&rabbit, &kafka));
    let group = cfg.k2r.as_ref().unwrap().group.clone();
    let bridge = Running::start(cfg);
    let got = drain_queue(
        &rabbit.cfg.url,
        &rabbit.topo().work_queue,
        n,
        Duration::from_secs(20),
    )
    .await;
    let arrived = t0.elapsed();
    let summary = bridge.stop().await;

    assert_all_once_in_order(got.iter().map(|g| &g.msg), n);
    for g in &got {
        assert_amqp_intact(g, "kafka");
    }
    assert_bridged_clean(&summary.k2r, n);
    let committed = committed_sum(&kafka, &group, 3).await;
    assert_eq!(
        committed, n as i64,
        "offsets committed for every confirmed record"
    );
    eprintln!(
        "k2r 50k: produced in {published:?}, all in RabbitMQ after {arrived:?}, total {:?}",
        t0.elapsed()
    );
    rabbit.cleanup().await;
}

/// A record that is not a valid tick goes to the dead-letter queue with
/// the reason and its Kafka position; a record whose routing key matches
/// no binding is returned (`mandatory`) and goes to the unroutable
/// exchange. Both have their offsets stored; the valid records around them
/// are bridged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_and_unroutable_records_are_dead_lettered() {
    let (rabbit, kafka) = pipeline_and_topic(1).await;
    let good = ticks("k2rpoison", 4);
    kafka_publish(&kafka, &good[..2]).await;
    {
        let mut c = kafka.client_config();
        c.set("acks", "all");
        let p: rdkafka::producer::FutureProducer = c.create().unwrap();
        let rec = rdkafka::producer::FutureRecord::to(&kafka.topic)
            .key("BTC-USD")
            .payload("{oops");
        p.send(rec, Duration::from_secs(10)).await.unwrap();
    }
    kafka_publish(&kafka, &good[2..]).await;

    // Route everything to a queue-less exchange: every valid record is returned.
    let lonely = format!("{}.lonely", rabbit.cfg.prefix);
    rabbit
        .ch
        .exchange_declare(
            lonely.as_str().into(),
            lapin::ExchangeKind::Topic,
            Default::default(),
            Default::default(),
        )
        .await
        .unwrap();
    let mut cfg = k2r(shared(&rabbit, &kafka));
    cfg.k2r.as_mut().unwrap().exchange = Some(lonely.clone());
    let bridge = Running::start(cfg);
    let stats = bridge.stats.clone();
    wait_until("5 records dead-lettered", Duration::from_secs(20), || {
        stats
            .k2r
            .dead_lettered
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 5
    })
    .await;
    let summary = bridge.stop().await;
    assert_eq!(summary.k2r.dead_lettered, 5);
    let got = rabbit.dlq_reasons().await;
    assert_eq!(got.len(), 5, "{got:?}");
    assert_eq!(
        got.iter()
            .filter(|r| r.starts_with("unroutable: 312 NO_ROUTE"))
            .count(),
        4,
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|r| r.starts_with("not_json") && r.contains("@2")),
        "{got:?}"
    );
    let _ = rabbit
        .ch
        .exchange_delete(lonely.as_str().into(), Default::default())
        .await;
    rabbit.cleanup().await;
}
