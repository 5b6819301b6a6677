//! `rabbitmq-to-kafka` against the real brokers: 50,000 ticks with ids,
//! headers and per-symbol order intact; poison dead-lettered with its
//! reason; clear errors for an unknown queue or topic.

mod common;

use common::*;
use std::time::{Duration, Instant};
use tickbridge_bridge::Error;
use tickbridge_broker::headers;
use tickbridge_model::Message;

/// 50,000 ticks published to the exchange arrive in the topic exactly once
/// (no failure happened, so no duplicates are allowed), with `tb-id` and
/// every header intact, key = symbol, per-symbol order kept, the queue
/// drained and every delivery acked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridges_50k_ticks_in_order_with_ids_and_headers() {
    let t0 = Instant::now();
    let (rabbit, kafka) = pipeline_and_topic(3).await;
    let n = 50_000;
    let msgs = ticks("r2k50k", n);

    let bridge = Running::start(r2k(shared(&rabbit, &kafka)));
    rabbit.publish(&msgs).await;
    let published = t0.elapsed();
    let got = read_topic(&kafka.brokers, &kafka.topic, n, Duration::from_secs(20)).await;
    let arrived = t0.elapsed();
    let stats = bridge.stats.clone();
    wait_until("every delivery acked", Duration::from_secs(20), || {
        stats.r2k.bridged.load(std::sync::atomic::Ordering::Relaxed) >= n as u64
    })
    .await;
    let summary = bridge.stop().await;
    assert_eq!(
        rabbit.depth(&rabbit.topo().work_queue).await,
        0,
        "queue drained and acked"
    );

    // Order per symbol, in the order records were read (one partition per symbol).
    assert_all_once_in_order(got.iter().map(|g| &g.msg), n);
    for g in &got {
        assert_kafka_intact(g, "rabbitmq");
    }
    // Body bytes survive: the tick decodes to what was published.
    let sent: std::collections::HashMap<&str, &Message> =
        msgs.iter().map(|m| (m.as_ref().id(), m)).collect();
    for g in &got {
        assert_eq!(&g.msg, sent[g.msg.as_ref().id()]);
    }
    assert_bridged_clean(&summary.r2k, n);
    assert_eq!(summary.r2k.dead_lettered, 0);
    eprintln!(
        "r2k 50k: published in {published:?}, all in Kafka after {arrived:?}, total {:?}",
        t0.elapsed()
    );
    rabbit.cleanup().await;
}

/// Bodies that are not valid ticks go to the dead-letter queue with the
/// reason in `tb-error`, are counted, and never reach Kafka; the valid
/// messages around them are bridged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_is_dead_lettered_with_reason() {
    let (rabbit, kafka) = pipeline_and_topic(1).await;
    let good = ticks("r2kpoison", 10);
    rabbit.publish(&good[..5]).await;
    let props = lapin::BasicProperties::default().with_message_id("poison-1".into());
    rabbit
        .publish_raw(&[
            ("x.y".into(), b"not json".to_vec(), props.clone()),
            (
                "x.y".into(),
                br#"{"schema":"tick.v1","id":"half"}"#.to_vec(),
                props.with_message_id("poison-2".into()),
            ),
        ])
        .await;
    rabbit.publish(&good[5..]).await;
    let bridge = Running::start(r2k(shared(&rabbit, &kafka)));
    let got = read_topic(&kafka.brokers, &kafka.topic, 10, Duration::from_secs(10)).await;
    let summary = bridge.stop().await;
    assert_eq!(got.len(), 10);
    assert_eq!(summary.r2k.dead_lettered, 2);
    let reasons = rabbit.dlq_reasons().await;
    assert_eq!(reasons.len(), 2, "both poison messages parked: {reasons:?}");
    assert!(reasons[0].starts_with("not_json"), "{reasons:?}");
    assert!(reasons[1].starts_with("schema_invalid"), "{reasons:?}");
    assert_eq!(rabbit.depth(&rabbit.topo().work_queue).await, 0);
    rabbit.cleanup().await;
}

/// An unknown queue or topic and a broker that does not answer end `run`
/// at once with a one-line error naming the resource.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_queue_topic_and_dead_broker_are_clear_errors() {
    let (rabbit, kafka) = pipeline_and_topic(1).await;

    let mut cfg = r2k(shared(&rabbit, &kafka));
    cfg.r2k.as_mut().unwrap().queue = Some("no-such-queue-xyz".into());
    let e = tickbridge_bridge::run(cfg, tickbridge_model::Shutdown::new())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::UnknownQueue { .. }), "{e}");
    assert!(
        e.to_string().contains("no-such-queue-xyz") && !e.to_string().contains('\n'),
        "{e}"
    );

    let mut cfg = r2k(shared(&rabbit, &kafka));
    cfg.shared.kafka.topic = rand_name("no-such-topic");
    cfg.shared.topic_wait = Duration::from_secs(1);
    let e = tickbridge_bridge::run(cfg, tickbridge_model::Shutdown::new())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::UnknownTopic { .. }), "{e}");

    let mut cfg = r2k(shared(&rabbit, &kafka));
    cfg.shared.amqp.url = format!(
        "amqp://guest:secret@127.0.0.1:{}/%2f",
        tickbridge_testkit::free_port()
    );
    let t = Instant::now();
    let e = tickbridge_bridge::run(cfg, tickbridge_model::Shutdown::new())
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Unreachable {
                broker: "RabbitMQ",
                ..
            }
        ),
        "{e}"
    );
    assert!(!e.to_string().contains("secret"), "password masked: {e}");
    assert!(t.elapsed() < Duration::from_secs(15));
    rabbit.cleanup().await;
}

/// A valid tick that Kafka refuses for good (here: over the producer's
/// `message.max.bytes` because of a huge pass-through header) is not acked
/// silently: it goes to the dead-letter queue with Kafka's reason, and the
/// messages around it are bridged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_rejection_is_dead_lettered_with_reason() {
    let (rabbit, kafka) = pipeline_and_topic(1).await;
    let msgs = ticks("r2kreject", 3);
    let mut raw = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        let r = m.as_ref();
        let mut props = headers::amqp_properties(r, "bridge-test");
        if i == 1 {
            let mut t = props.headers().clone().unwrap();
            t.insert(
                "x-blob".into(),
                lapin::types::AMQPValue::LongString("z".repeat(4000).as_str().into()),
            );
            props = props.with_headers(t);
        }
        raw.push((
            tickbridge_broker::amqp::Topology::routing_key(r.source().as_str(), r.symbol()),
            r.to_json(),
            props,
        ));
    }
    rabbit.publish_raw(&raw).await;
    let mut cfg = r2k(shared(&rabbit, &kafka));
    cfg.shared
        .kafka
        .options
        .push(("message.max.bytes".into(), "2000".into()));
    let bridge = Running::start(cfg);
    let got = read_topic(&kafka.brokers, &kafka.topic, 2, Duration::from_secs(10)).await;
    let stats = bridge.stats.clone();
    wait_until(
        "the rejected tick dead-lettered",
        Duration::from_secs(10),
        || {
            stats
                .r2k
                .dead_lettered
                .load(std::sync::atomic::Ordering::Relaxed)
                == 1
        },
    )
    .await;
    let summary = bridge.stop().await;
    assert_eq!(got.len(), 2);
    assert_eq!(summary.r2k.bridged, 2);
    let m = rabbit
        .ch
        .basic_get(rabbit.topo().dlq.as_str().into(), Default::default())
        .await
        .unwrap()
        .expect("one dead letter");
    let reason =
        tickbridge_bridge::mapping::amqp_header(&m.delivery.properties, headers::ERROR).unwrap();
    assert!(
        reason.starts_with("kafka_rejected") && reason.contains("too large"),
        "{reason}"
    );
    assert_eq!(
        m.delivery
            .properties
            .message_id()
            .as_ref()
            .map(|s| s.as_str()),
        Some(msgs[1].as_ref().id())
    );
    assert_eq!(
        rabbit.depth(&rabbit.topo().work_queue).await,
        0,
        "all acked"
    );
    rabbit.cleanup().await;
}
