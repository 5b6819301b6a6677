//! Shared helpers of the integration tests: broker addresses from the
//! environment, random resource names, publishing synthetic ticks with
//! confirms (through `tickbridge_testkit::loadgen`, which uses the same
//! AMQP properties and Kafka headers as `tickbridge_broker::headers`), and
//! reading queues and JSON Lines files back.
//!
//! Every helper panics with a "run scripts/stack.sh up" hint when a broker
//! is missing: these tests fail loudly, they never skip.
#![allow(dead_code)]

use lapin::options::{BasicAckOptions, BasicGetOptions};
use lapin::{Channel, Connection};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use tickbridge_broker::amqp::AmqpConfig;
use tickbridge_broker::kafka::KafkaConfig;
use tickbridge_consumer::output::JsonLine;
use tickbridge_consumer::worker::{header_str, header_u32};
use tickbridge_model::Message;
use tickbridge_testkit::loadgen::{synthetic_ticks, AmqpPublisher};

#[allow(unused_imports)]
pub use tickbridge_testkit::{
    amqp_url, kafka_brokers, kafka_publish, rand_name, wait_until, SYMBOLS,
};

/// A Kafka topic of this test's own, with `partitions`.
pub async fn kafka_topic(partitions: i32) -> KafkaConfig {
    tickbridge_testkit::kafka_topic(&kafka_brokers(), "tb-cons-test", partitions).await
}

pub fn init_logs() {
    tickbridge_model::telemetry::init_test_tracing();
}

/// `n` valid ticks from producer `producer` over [`SYMBOLS`].
pub fn messages(producer: &str, n: usize) -> Vec<Message> {
    synthetic_ticks(producer, &SYMBOLS, n)
        .into_iter()
        .map(Message::Tick)
        .collect()
}

/// A private RabbitMQ pipeline (exchange, work queue, DLX/DLQ, stream),
/// declared from `stack/definitions.json` under a random prefix and deleted
/// on drop... by `cleanup`, since drop cannot be async.
pub struct Rabbit {
    pub cfg: AmqpConfig,
    pub conn: Connection,
    pub ch: Channel,
}

impl Rabbit {
    pub async fn new() -> Self {
        let cfg = AmqpConfig::local(&amqp_url(), &rand_name("tb-cons-test"));
        let conn = cfg.connect("consumer-test").await.unwrap_or_else(|e| {
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
        Self { cfg, conn, ch }
    }

    pub async fn publish(&self, msgs: &[Message]) {
        let mut p = AmqpPublisher::connect(&self.cfg).await.expect("publisher");
        p.publish_all(msgs).await.expect("every publish confirmed");
    }

    pub async fn publisher(&self) -> AmqpPublisher {
        AmqpPublisher::connect(&self.cfg).await.expect("publisher")
    }

    /// Messages ready in a queue.
    pub async fn depth(&self, queue: &str) -> u32 {
        let ch = self.conn.create_channel().await.unwrap();
        let q = ch
            .queue_declare(
                queue.into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                Default::default(),
            )
            .await
            .unwrap();
        q.message_count()
    }

    /// Takes every message out of a queue: `(body, tb-error, tb-retries)`.
    pub async fn drain(&self, queue: &str) -> Vec<(Vec<u8>, Option<String>, Option<u32>)> {
        let mut out = Vec::new();
        while let Some(m) = self
            .ch
            .basic_get(queue.into(), BasicGetOptions::default())
            .await
            .unwrap()
        {
            let props = &m.delivery.properties;
            out.push((
                m.delivery.data.clone(),
                header_str(props, tickbridge_broker::headers::ERROR),
                header_u32(props, tickbridge_broker::headers::RETRIES),
            ));
            m.delivery.ack(BasicAckOptions::default()).await.unwrap();
        }
        out
    }

    pub async fn cleanup(self) {
        let _ = self.cfg.topology().delete(&self.ch).await;
        let _ = self.conn.close(200, "bye".into()).await;
    }
}

/// Reads a `--jsonl` file.
pub fn lines(path: &Path) -> Vec<JsonLine> {
    JsonLine::read_all(path).unwrap_or_default()
}

/// Message id → how many times it appears.
pub fn id_counts<'a>(lines: impl IntoIterator<Item = &'a JsonLine>) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for l in lines {
        *m.entry(l.message.as_ref().id().to_string()).or_default() += 1;
    }
    m
}

/// Symbol → sequence numbers in the order they were handled.
pub fn seqs_by_symbol<'a>(
    lines: impl IntoIterator<Item = &'a JsonLine>,
) -> BTreeMap<String, Vec<u64>> {
    let mut m: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for l in lines {
        let r = l.message.as_ref();
        m.entry(r.symbol().to_string()).or_default().push(r.seq());
    }
    m
}
