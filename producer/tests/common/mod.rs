//! Helpers shared by the producer's integration tests: broker addresses from
//! the environment, random names, and readers that drain a queue or a topic
//! and decode every message against the schema.
#![allow(dead_code)]

use futures::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::Message as _;
use std::time::Duration;
use tickbridge_broker::amqp::AmqpConfig;
use tickbridge_broker::kafka::KafkaConfig;
use tickbridge_model::schema::decode;
use tickbridge_model::Message;

// Not every test binary uses all three.
#[allow(unused_imports)]
pub use tickbridge_testkit::{amqp_url, kafka_brokers, rand_name};

/// Reads every message from `queue` until it has been quiet for `quiet`,
/// acking as it goes. Every body must decode against the schema.
pub async fn drain_queue(url: &str, queue: &str, quiet: Duration) -> Vec<(Message, bool)> {
    let cfg = AmqpConfig::local(url, "unused");
    let conn = cfg
        .connect("producer-test-reader")
        .await
        .expect("RabbitMQ reachable");
    let ch = conn.create_channel().await.unwrap();
    ch.basic_qos(2000, BasicQosOptions::default())
        .await
        .unwrap();
    let mut consumer = ch
        .basic_consume(
            queue.into(),
            "reader".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut out = Vec::new();
    while let Ok(Some(d)) = tokio::time::timeout(quiet, consumer.next()).await {
        let d = d.expect("delivery");
        let msg =
            decode(&d.data).unwrap_or_else(|e| panic!("message in queue fails the schema: {e}"));
        let mid = d.properties.message_id().as_ref().map(|s| s.to_string());
        assert_eq!(
            mid.as_deref(),
            Some(msg.as_ref().id()),
            "message_id carries the id"
        );
        out.push((msg, d.redelivered));
        d.ack(BasicAckOptions::default()).await.unwrap();
    }
    let _ = conn.close(200, "done".into()).await;
    out
}

/// Reads a topic from the beginning with a fresh group until `expected`
/// messages arrived or it has been quiet for `quiet`. Returns (partition,
/// message) in consumption order.
pub async fn read_topic(
    brokers: &str,
    topic: &str,
    expected: usize,
    quiet: Duration,
) -> Vec<(i32, Message)> {
    let k = KafkaConfig::local(brokers, topic, 1);
    let consumer: StreamConsumer = {
        let mut c = k.client_config();
        c.set("group.id", rand_name("producer-test"))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false");
        k.finish(c).create().unwrap()
    };
    consumer.subscribe(&[topic]).unwrap();
    let mut out = Vec::with_capacity(expected);
    while out.len() < expected {
        match tokio::time::timeout(quiet, consumer.recv()).await {
            Ok(Ok(m)) => {
                let msg = decode(m.payload().unwrap_or_default())
                    .unwrap_or_else(|e| panic!("record in topic fails the schema: {e}"));
                assert_eq!(
                    m.key(),
                    Some(msg.as_ref().symbol().as_bytes()),
                    "key = symbol"
                );
                out.push((m.partition(), msg));
            }
            Ok(Err(e)) => panic!("Kafka read failed: {e}"),
            Err(_) => break,
        }
    }
    out
}
