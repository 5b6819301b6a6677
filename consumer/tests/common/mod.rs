//! Shared helpers of the integration tests: broker addresses from the
//! environment, random resource names, publishing synthetic ticks with
//! confirms (through `tickbridge_testkit::loadgen`, which uses the same
//! AMQP properties and Kafka headers as `tickbridge_broker::headers`),
//! reader configurations writing JSON Lines, awaiting in-process readers
//! with a bound, and reading queues and JSON Lines files back.
//!
//! Every helper panics with a "run scripts/stack.sh up" hint when a broker
//! is missing: these tests fail loudly, they never skip.
#![allow(dead_code)]

use lapin::options::{BasicAckOptions, BasicGetOptions};
use lapin::{Channel, Connection};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;
use tickbridge_broker::amqp::AmqpConfig;
use tickbridge_broker::kafka::KafkaConfig;
use tickbridge_consumer::config::CommonArgs;
use tickbridge_consumer::consumer::{self, ConsumerConfig};
use tickbridge_consumer::output::JsonLine;
use tickbridge_consumer::worker::{self, header_str, header_u32, WorkerConfig};
use tickbridge_consumer::Summary;
use tickbridge_model::{Message, Shutdown};
use tickbridge_testkit::loadgen::{synthetic_ticks, AmqpPublisher};
use tokio::task::JoinHandle;

#[allow(unused_imports)]
pub use tickbridge_testkit::{
    amqp_url, kafka_brokers, kafka_publish, rand_name, wait_until, SYMBOLS,
};

/// A Kafka topic of this test's own, with `partitions`.
pub async fn kafka_topic(partitions: i32) -> KafkaConfig {
    tickbridge_testkit::kafka_topic(&kafka_brokers(), "tb-cons-test", partitions).await
}

/// The opening of most Kafka tests: logs on, a topic of their own with
/// `partitions`, and `n` ticks from `producer` published to it.
pub async fn kafka_with_ticks(
    partitions: i32,
    producer: &str,
    n: usize,
) -> (KafkaConfig, Vec<Message>) {
    init_logs();
    let k = kafka_topic(partitions).await;
    let msgs = messages(producer, n);
    kafka_publish(&k, &msgs).await;
    (k, msgs)
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

/// Points a reader's output at `jsonl` and names the reader after the
/// file's stem, so each file of a test says which reader wrote it.
pub fn writes_to(common: &mut CommonArgs, jsonl: &Path) {
    common.jsonl = Some(jsonl.to_path_buf());
    common.name = Some(jsonl.file_stem().unwrap().to_string_lossy().into_owned());
}

/// A Kafka reader in `group` writing to `jsonl`, with a 6 s session
/// timeout so that a member that is gone leaves the group quickly. Each
/// test then sets its own idle limit.
pub fn kafka_reader(k: &KafkaConfig, group: &str, jsonl: &Path) -> ConsumerConfig {
    let mut c = ConsumerConfig::local_kafka(k.clone(), group);
    writes_to(&mut c.common, jsonl);
    c.session_timeout = Duration::from_secs(6);
    c
}

/// An in-process reader (`consumer::run` or `worker::run`), spawned.
pub type ReaderTask = JoinHandle<tickbridge_consumer::Result<Summary>>;

/// Starts `consumer::run` in a task of its own, never shut down from
/// outside: it stops by its idle limit or with an error.
pub fn spawn_consumer(c: ConsumerConfig) -> ReaderTask {
    tokio::spawn(consumer::run(c, Shutdown::new()))
}

/// [`spawn_consumer`] for the work-queue reader, `worker::run`.
pub fn spawn_worker(c: WorkerConfig) -> ReaderTask {
    tokio::spawn(worker::run(c, Shutdown::new()))
}

/// Awaits a spawned reader for at most `limit`: it must finish, neither
/// panic nor fail, and its summary is returned. A reader that never stops
/// fails the test instead of hanging it.
pub async fn finish_within(h: ReaderTask, limit: Duration) -> Summary {
    tokio::time::timeout(limit, h)
        .await
        .unwrap_or_else(|_| panic!("reader finished within {limit:?}"))
        .expect("reader did not panic")
        .expect("reader ran without error")
}

/// [`finish_within`] for readers started together, awaited in order (each
/// gets `limit` from the moment the previous one finished).
pub async fn finish_all_within(handles: Vec<ReaderTask>, limit: Duration) -> Vec<Summary> {
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(finish_within(h, limit).await);
    }
    out
}

/// The ids of `msgs`, in order.
pub fn ids(msgs: &[Message]) -> Vec<String> {
    msgs.iter().map(|m| m.as_ref().id().to_string()).collect()
}

/// The ids in a `--jsonl` file, in the order they were handled.
pub fn handled(path: &Path) -> Vec<String> {
    lines(path)
        .iter()
        .map(|l| l.message.as_ref().id().to_string())
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
        let (conn, ch) = tickbridge_testkit::declared_pipeline(&cfg, "consumer-test").await;
        Self { cfg, conn, ch }
    }

    /// The opening of most RabbitMQ tests: logs on, a pipeline of their
    /// own, and `n` ticks from `producer` published to it with confirms.
    pub async fn with_ticks(producer: &str, n: usize) -> (Self, Vec<Message>) {
        init_logs();
        let rabbit = Self::new().await;
        let msgs = messages(producer, n);
        rabbit.publish(&msgs).await;
        (rabbit, msgs)
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
        tickbridge_testkit::queue_depth(&self.conn, queue).await
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
