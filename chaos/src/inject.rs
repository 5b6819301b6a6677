//! Broker-side helpers of a scenario: declaring its RabbitMQ resources,
//! injecting poison and schema-invalid messages, and reading the
//! dead-letter queue back at the end.
//!
//! Each injected message carries a `message_id` of its own
//! (`chaos-poison-…`, `chaos-invalid-…`), which the worker and the bridge
//! keep on the dead-lettered copy, and is published to one queue directly
//! through the default exchange, so the copy's routing key (the queue name)
//! says which reader parked it.

use crate::ChaosError;
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicPublishOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::BasicProperties;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::time::Duration;
use tickbridge_broker::amqp::{AmqpConfig, Topology};
use tickbridge_broker::headers;
use tickbridge_broker::kafka::KafkaConfig;

/// A body that is not JSON: every reader must classify it `not_json`.
pub const POISON_BODY: &[u8] = b"chaos poison: {\"schema\":\"tick.v1\", this is not JSON";

/// Valid JSON claiming to be a tick, but violating `tick.v1` (no price,
/// negative trade id): every reader must classify it `schema_invalid`.
pub const INVALID_BODY: &[u8] = br#"{"schema":"tick.v1","id":"binance:BTC-USDT:0","source":"binance","symbol":"BTC-USDT","trade_id":-1}"#;

/// One injected message and where it went.
#[derive(Debug, Clone)]
pub struct Injected {
    /// `message_id` (AMQP) or `tb-id` header and key (Kafka).
    pub id: String,
    /// `not_json` or `schema_invalid`: the reason kind readers must give.
    pub kind: &'static str,
    /// Queue or topic it was written to.
    pub target: String,
}

/// Declares the pipeline topology of `prefix` plus the bridge's own queue,
/// bound to the exchange like the work queue, so the bridge sees every
/// message the producer publishes.
pub async fn declare_rabbit(amqp: &AmqpConfig, bridge_queue: &str) -> Result<(), ChaosError> {
    let conn = amqp.connect("chaos-setup").await?;
    let ch = conn.create_channel().await?;
    let topo = amqp.topology();
    topo.declare(&ch).await?;
    ch.queue_declare(
        bridge_queue.into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await?;
    ch.queue_bind(
        bridge_queue.into(),
        topo.exchange.as_str().into(),
        "#".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await?;
    let _ = conn.close(200, "setup done".into()).await;
    Ok(())
}

/// Publishes a poison and an invalid message into each of `queues`, waiting
/// for the publisher confirms.
pub async fn poison_queues(
    amqp: &AmqpConfig,
    queues: &[String],
    tag: &str,
) -> Result<Vec<Injected>, ChaosError> {
    let conn = amqp.connect("chaos-poison").await?;
    let ch = tickbridge_broker::amqp::confirm_channel(&conn).await?;
    let mut out = Vec::new();
    for q in queues {
        for (kind, body) in [("not_json", POISON_BODY), ("schema_invalid", INVALID_BODY)] {
            let id = format!("chaos-{kind}-{tag}");
            let props = BasicProperties::default()
                .with_message_id(id.as_str().into())
                .with_delivery_mode(2);
            let confirm = ch
                .basic_publish(
                    "".into(),
                    q.as_str().into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..Default::default()
                    },
                    body,
                    props,
                )
                .await?
                .await?;
            if !confirm.is_ack() || confirm.take_message().is_some() {
                return Err(ChaosError::Broker(format!(
                    "RabbitMQ did not accept the injected {kind} message for {q}"
                )));
            }
            out.push(Injected {
                id,
                kind,
                target: q.clone(),
            });
        }
    }
    let _ = conn.close(200, "poison done".into()).await;
    Ok(out)
}

/// Produces a poison and an invalid record into `topic` and waits for both
/// delivery reports.
pub async fn poison_topic(
    kafka: &KafkaConfig,
    topic: &str,
    tag: &str,
) -> Result<Vec<Injected>, ChaosError> {
    let mut cfg = kafka.client_config();
    cfg.set("message.timeout.ms", "30000");
    let producer: FutureProducer = kafka.finish(cfg).create()?;
    let mut out = Vec::new();
    for (kind, body) in [("not_json", POISON_BODY), ("schema_invalid", INVALID_BODY)] {
        let id = format!("chaos-{kind}-{tag}");
        let rec_headers = rdkafka::message::OwnedHeaders::new().insert(rdkafka::message::Header {
            key: headers::ID,
            value: Some(id.as_str()),
        });
        let rec = FutureRecord::to(topic)
            .key(id.as_str())
            .payload(body)
            .headers(rec_headers);
        producer
            .send(rec, Duration::from_secs(30))
            .await
            .map_err(|(e, _)| {
                ChaosError::Broker(format!("Kafka refused the injected {kind} record: {e}"))
            })?;
        out.push(Injected {
            id,
            kind,
            target: topic.to_string(),
        });
    }
    Ok(out)
}

/// One message read back from the dead-letter queue.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// `message_id`, when it had one.
    pub id: Option<String>,
    /// Routing key of the dead-lettered copy: the queue it was read from.
    pub routing_key: String,
    /// The `tb-error` header: the reason.
    pub error: Option<String>,
}

/// Reads (and acks) everything in `queue`.
pub async fn drain_queue(amqp: &AmqpConfig, queue: &str) -> Result<Vec<DeadLetter>, ChaosError> {
    let conn = amqp.connect("chaos-dlq").await?;
    let ch = conn.create_channel().await?;
    let mut out = Vec::new();
    while let Some(m) = ch
        .basic_get(queue.into(), BasicGetOptions::default())
        .await?
    {
        let p = &m.delivery.properties;
        let error = p
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get(headers::ERROR).cloned())
            .and_then(|v| match v {
                AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into()),
                AMQPValue::ShortString(s) => Some(s.to_string()),
                _ => None,
            });
        out.push(DeadLetter {
            id: p.message_id().as_ref().map(|s| s.to_string()),
            routing_key: m.delivery.routing_key.to_string(),
            error,
        });
        m.delivery.ack(BasicAckOptions::default()).await?;
    }
    let _ = conn.close(200, "dlq read".into()).await;
    Ok(out)
}

/// Topology of a prefix (re-exported for the scenario).
pub fn topology(prefix: &str) -> Topology {
    Topology::new(prefix)
}
