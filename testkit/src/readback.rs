//! Reading a queue or a topic back in a test, with every body checked
//! against the schema and the metadata kept for the test to check:
//! [`drain_queue`] (and [`drain_queue_ids`] for runs with restarts) acks as
//! it reads; [`read_topic`] reads from the beginning in a fresh group.

use crate::rand_name;
use futures::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Headers;
use rdkafka::Message as _;
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tickbridge_broker::amqp::AmqpConfig;
use tickbridge_broker::headers::value_text;
use tickbridge_broker::kafka::KafkaConfig;
use tickbridge_model::schema::decode;
use tickbridge_model::Message;

/// One message read back from RabbitMQ.
#[derive(Debug, Clone)]
pub struct AmqpGot {
    /// The decoded body.
    pub msg: Message,
    /// AMQP `message_id` (the tick id when published by tickbridge).
    pub message_id: Option<String>,
    /// AMQP `type` (the schema name).
    pub kind: Option<String>,
    /// The routing key it was published with.
    pub routing_key: String,
    /// Every scalar header, as text.
    pub headers: HashMap<String, String>,
    /// Whether the broker flagged it redelivered.
    pub redelivered: bool,
}

/// Reads `queue` until `expected` messages arrived or it was quiet for
/// `quiet`, acking as it goes. Every body must decode against the schema.
pub async fn drain_queue(url: &str, queue: &str, expected: usize, quiet: Duration) -> Vec<AmqpGot> {
    drain_queue_until(url, queue, quiet, |got| got.len() >= expected).await
}

/// Drains a queue until `ids` distinct message ids have arrived, then for
/// `linger` more of silence (to count trailing duplicates). While ids are
/// still missing it waits up to `patience` for the next message: a bridge
/// restarted after SIGKILL may first wait out the dead member's session and
/// a rebalance, which on a busy machine is longer than a quiet period.
pub async fn drain_queue_ids(
    url: &str,
    queue: &str,
    ids: usize,
    linger: Duration,
    patience: Duration,
) -> Vec<AmqpGot> {
    let mut seen: HashSet<String> = HashSet::new();
    let mut counted = 0;
    drain_queue_with(url, queue, |got| {
        for g in &got[counted..] {
            seen.insert(g.msg.as_ref().id().to_string());
        }
        counted = got.len();
        if seen.len() >= ids {
            Step::Wait(linger)
        } else {
            Step::Wait(patience)
        }
    })
    .await
}

/// What a drain does after each message.
pub enum Step {
    /// Wait up to this long for the next message, then stop.
    Wait(Duration),
    /// Stop now.
    Stop,
}

async fn drain_queue_until(
    url: &str,
    queue: &str,
    quiet: Duration,
    mut done: impl FnMut(&[AmqpGot]) -> bool,
) -> Vec<AmqpGot> {
    drain_queue_with(url, queue, |got| {
        if done(got) {
            Step::Stop
        } else {
            Step::Wait(quiet)
        }
    })
    .await
}

async fn drain_queue_with(
    url: &str,
    queue: &str,
    mut next: impl FnMut(&[AmqpGot]) -> Step,
) -> Vec<AmqpGot> {
    let cfg = AmqpConfig::local(url, "unused");
    let conn = cfg
        .connect("test-reader")
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
    while let Step::Wait(wait) = next(&out) {
        let Ok(Some(d)) = tokio::time::timeout(wait, consumer.next()).await else {
            break;
        };
        let d = d.expect("delivery");
        let msg =
            decode(&d.data).unwrap_or_else(|e| panic!("message in {queue} fails the schema: {e}"));
        let headers = d
            .properties
            .headers()
            .as_ref()
            .map(|t| {
                t.inner()
                    .iter()
                    .filter_map(|(k, v)| value_text(v).map(|v| (k.to_string(), v)))
                    .collect()
            })
            .unwrap_or_default();
        out.push(AmqpGot {
            msg,
            message_id: d.properties.message_id().as_ref().map(|s| s.to_string()),
            kind: d.properties.kind().as_ref().map(|s| s.to_string()),
            routing_key: d.routing_key.to_string(),
            headers,
            redelivered: d.redelivered,
        });
        d.ack(BasicAckOptions::default()).await.unwrap();
    }
    let _ = conn.close(200, "done".into()).await;
    out
}

/// One record read back from Kafka.
#[derive(Debug, Clone)]
pub struct KafkaGot {
    /// Partition it was read from.
    pub partition: i32,
    /// Record key (the symbol when produced by tickbridge).
    pub key: Option<String>,
    /// The decoded value.
    pub msg: Message,
    /// Every header, as text.
    pub headers: HashMap<String, String>,
}

/// Reads `topic` from the beginning in a fresh group until `expected`
/// records arrived or it was quiet for `quiet`.
pub async fn read_topic(
    brokers: &str,
    topic: &str,
    expected: usize,
    quiet: Duration,
) -> Vec<KafkaGot> {
    let k = KafkaConfig::local(brokers, topic, 1);
    let consumer: StreamConsumer = {
        let mut c = k.client_config();
        c.set("group.id", rand_name("test-reader"))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "10");
        k.finish(c).create().unwrap()
    };
    consumer.subscribe(&[topic]).unwrap();
    let mut out = Vec::with_capacity(expected);
    while out.len() < expected {
        match tokio::time::timeout(quiet, consumer.recv()).await {
            Ok(Ok(m)) => {
                let msg = decode(m.payload().unwrap_or_default())
                    .unwrap_or_else(|e| panic!("record in topic fails the schema: {e}"));
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .filter_map(|x| {
                                x.value.map(|v| {
                                    (x.key.to_string(), String::from_utf8_lossy(v).into_owned())
                                })
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(KafkaGot {
                    partition: m.partition(),
                    key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    msg,
                    headers,
                });
            }
            Ok(Err(e)) => panic!("Kafka read failed: {e}"),
            Err(_) => break,
        }
    }
    out
}
