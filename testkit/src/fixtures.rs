//! What the integration tests of every crate need against the shared stack:
//! ticks with ids no other test uses, a Kafka topic of their own, publishing
//! to it with delivery reports, a RabbitMQ pipeline of their own and its
//! queue depths, and waiting for a condition.
//!
//! Every helper panics with a "run scripts/stack.sh up" hint when a broker
//! is missing: these tests fail loudly, they never skip.

use crate::loadgen::{synthetic_ticks_after, KafkaPublisher};
use crate::rand_name;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Channel, Connection, Queue};
use std::time::Duration;
use tickbridge_broker::amqp::AmqpConfig;
use tickbridge_broker::kafka::KafkaConfig;
use tickbridge_model::Message;

/// Symbols the tests publish, round-robin.
pub const SYMBOLS: [&str; 6] = [
    "BTC-USD", "ETH-USD", "SOL-USD", "XRP-USD", "ADA-USD", "DOGE-USD",
];

/// `n` valid ticks from `producer`, round-robin over [`SYMBOLS`], with
/// per-symbol sequence numbers 1, 2, 3, ... and trade ids after a random
/// base, so ids are unique across tests and calls.
pub fn ticks(producer: &str, n: usize) -> Vec<Message> {
    let base = rand::random_range(1_000_000_000u64..1_000_000_000_000) * 1000;
    synthetic_ticks_after(producer, &SYMBOLS, base, n)
        .into_iter()
        .map(Message::Tick)
        .collect()
}

/// A Kafka topic of its own (named `<prefix>-<random>`), with `partitions`,
/// created through the admin API.
pub async fn kafka_topic(brokers: &str, prefix: &str, partitions: i32) -> KafkaConfig {
    let topic = rand_name(prefix);
    let cfg = KafkaConfig::local(brokers, &topic, partitions);
    cfg.ping(Duration::from_secs(10)).await.unwrap_or_else(|e| {
        panic!("Kafka is required at {brokers} (run scripts/stack.sh up): {e}")
    });
    cfg.ensure_topic(&topic, partitions)
        .await
        .expect("create test topic");
    cfg
}

/// Produces to Kafka as the producer does (key = symbol, the `tb-*`
/// headers, idempotent) and returns each message's `(partition, offset)`
/// once every delivery report is in.
pub async fn kafka_publish(cfg: &KafkaConfig, msgs: &[Message]) -> Vec<(i32, i64)> {
    KafkaPublisher::new(cfg)
        .expect("Kafka producer")
        .send_all(msgs)
        .await
        .expect("every message delivered")
}

/// Waits until `f` holds, polling every 50 ms, or panics with `what` after
/// `timeout`.
pub async fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asserts what the bridge and the consumer both promise when the Kafka
/// topic they read is deleted under them: their error (as text) is one
/// line, names the topic and says it was deleted.
pub fn assert_topic_deleted_line(text: &str, topic: &str) {
    assert!(!text.contains('\n'), "one line: {text}");
    assert!(text.contains(topic), "names the topic: {text}");
    assert!(text.contains("deleted"), "says what happened: {text}");
}

/// Connects to `cfg`'s RabbitMQ as `client` and declares its pipeline (the
/// topology of `stack/definitions.json` under `cfg.prefix`), for a test
/// that owns that pipeline. Panics with the stack hint when RabbitMQ is
/// missing.
pub async fn declared_pipeline(cfg: &AmqpConfig, client: &str) -> (Connection, Channel) {
    let conn = cfg.connect(client).await.unwrap_or_else(|e| {
        panic!(
            "RabbitMQ is required at {} (run scripts/stack.sh up): {e}",
            cfg.masked_url()
        )
    });
    let ch = conn.create_channel().await.unwrap();
    cfg.topology()
        .declare(&ch)
        .await
        .expect("declare test topology");
    (conn, ch)
}

/// Declares `queue` with `options` and no arguments, panicking on a
/// refusal: the tests' own queues (durable, exclusive, or a passive check).
pub async fn declare_queue(ch: &Channel, queue: &str, options: QueueDeclareOptions) -> Queue {
    ch.queue_declare(queue.into(), options, FieldTable::default())
        .await
        .unwrap_or_else(|e| panic!("declare queue {queue}: {e}"))
}

/// Messages ready in `queue`, by a passive declare on a channel of its own
/// (a passive declare of a missing queue closes its channel).
pub async fn queue_depth(conn: &Connection, queue: &str) -> u32 {
    let ch = conn.create_channel().await.unwrap();
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let q = declare_queue(&ch, queue, passive).await;
    let _ = ch.close(200, "depth".into()).await;
    q.message_count()
}

/// Publishes `body` with `mandatory` on a confirm channel and waits for the
/// broker's confirm, which the test then checks (`is_ack()`).
pub async fn publish_confirmed(
    ch: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    props: lapin::BasicProperties,
) -> lapin::Confirmation {
    let opts = lapin::options::BasicPublishOptions {
        mandatory: true,
        ..Default::default()
    };
    ch.basic_publish(exchange.into(), routing_key.into(), opts, body, props)
        .await
        .expect("publish sent")
        .await
        .expect("publisher confirm")
}

/// Starts consuming `queue` and returns its first delivery, or panics after
/// `timeout` naming `what` was awaited.
pub async fn first_delivery(
    ch: &Channel,
    queue: &str,
    what: &str,
    timeout: Duration,
) -> lapin::message::Delivery {
    use futures::StreamExt;
    let mut consumer = ch
        .basic_consume(
            queue.into(),
            "first-delivery".into(),
            Default::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    tokio::time::timeout(timeout, consumer.next())
        .await
        .unwrap_or_else(|_| panic!("{what} within {timeout:?}"))
        .expect("consumer open")
        .expect("delivery ok")
}
