//! Helpers of the bridge's integration tests: broker addresses from the
//! environment, random names, publishing test ticks with exactly the
//! metadata of `tickbridge_broker::headers`, reading a queue or a topic back
//! with every body checked against the schema, and running the bridge
//! in-process.
//!
//! Every helper panics with a "run scripts/stack.sh up" hint when a broker
//! is missing: these tests fail loudly, they never skip.
#![allow(dead_code)]

use futures::stream::{FuturesOrdered, StreamExt};
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection};
use rdkafka::consumer::Consumer;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tickbridge_bridge::stats::DirSummary;
use tickbridge_bridge::{BridgeConfig, K2rArgs, R2kArgs, Shared, Stats, Summary};
use tickbridge_broker::amqp::{AmqpConfig, Topology};
use tickbridge_broker::headers;
use tickbridge_broker::kafka::KafkaConfig;
use tickbridge_model::{Message, Shutdown};

#[allow(unused_imports)]
pub use tickbridge_testkit::readback::{
    drain_queue, drain_queue_ids, read_topic, AmqpGot, KafkaGot, Step,
};
#[allow(unused_imports)]
pub use tickbridge_testkit::{
    amqp_url, kafka_brokers, kafka_publish, rand_name, ticks, wait_until, SYMBOLS,
};

/// A Kafka topic of this test's own, with `partitions`.
pub async fn kafka_topic(brokers: &str, partitions: i32) -> KafkaConfig {
    tickbridge_testkit::kafka_topic(brokers, "tb-bridge-test", partitions).await
}

pub fn init_logs() {
    tickbridge_model::telemetry::init_test_tracing();
}

/// The opening of most bridge tests: logs on, and a pipeline and a topic
/// with `partitions` of the test's own on the shared stack.
pub async fn pipeline_and_topic(partitions: i32) -> (Rabbit, KafkaConfig) {
    init_logs();
    let rabbit = Rabbit::new(&amqp_url()).await;
    let kafka = kafka_topic(&kafka_brokers(), partitions).await;
    (rabbit, kafka)
}

/// A private RabbitMQ pipeline declared from `stack/definitions.json` under
/// a random prefix; [`Rabbit::cleanup`] deletes it.
pub struct Rabbit {
    pub cfg: AmqpConfig,
    pub conn: Connection,
    pub ch: Channel,
}

impl Rabbit {
    pub async fn new(url: &str) -> Self {
        Self::with_prefix(url, &rand_name("tb-bridge-test")).await
    }

    /// Connects to (and declares, idempotently) the pipeline `prefix`.
    pub async fn with_prefix(url: &str, prefix: &str) -> Self {
        let cfg = AmqpConfig::local(url, prefix);
        let (conn, ch) = tickbridge_testkit::declared_pipeline(&cfg, "bridge-test").await;
        Self { cfg, conn, ch }
    }

    /// Connects again after a node restart, retrying while the node's
    /// queues are still recovering (`NOT_FOUND - home node ... is down`).
    pub async fn reconnect(url: &str, prefix: &str, timeout: Duration) -> Self {
        let cfg = AmqpConfig::local(url, prefix);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Ok(conn) = cfg.connect("bridge-test").await {
                if let Ok(ch) = conn.create_channel().await {
                    if cfg.topology().declare(&ch).await.is_ok() {
                        let ch = conn.create_channel().await.unwrap();
                        return Self { cfg, conn, ch };
                    }
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "RabbitMQ at {url} did not recover within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    pub fn topo(&self) -> Topology {
        self.cfg.topology()
    }

    /// Declares an extra queue bound to the pipeline's exchange with `#`,
    /// to observe everything published there.
    pub async fn observer(&self) -> String {
        let q = format!("{}.observe", self.cfg.prefix);
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        tickbridge_testkit::declare_queue(&self.ch, &q, durable).await;
        self.ch
            .queue_bind(
                q.as_str().into(),
                self.topo().exchange.as_str().into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        q
    }

    /// Publishes to the exchange as the producer does (routing key
    /// `source.symbol`, `mandatory`), awaiting every confirm.
    pub async fn publish(&self, msgs: &[Message]) {
        let bodies: Vec<(String, Vec<u8>, BasicProperties)> = msgs
            .iter()
            .map(|m| {
                let r = m.as_ref();
                (
                    Topology::routing_key(r.source().as_str(), r.symbol()),
                    r.to_json(),
                    headers::amqp_properties(r, "bridge-test"),
                )
            })
            .collect();
        self.publish_raw(&bodies).await;
    }

    /// Publishes arbitrary bodies (poison) to the exchange with confirms.
    pub async fn publish_raw(&self, msgs: &[(String, Vec<u8>, BasicProperties)]) {
        let ch = self.conn.create_channel().await.unwrap();
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        let ex = self.topo().exchange;
        let mut pending = FuturesOrdered::new();
        for (rk, body, props) in msgs {
            let c = ch
                .basic_publish(
                    ex.as_str().into(),
                    rk.as_str().into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..Default::default()
                    },
                    body,
                    props.clone(),
                )
                .await
                .expect("publish");
            pending.push_back(c);
            if pending.len() >= 2000 {
                let c = pending.next().await.unwrap().expect("confirm");
                assert!(
                    c.is_ack() && c.take_message().is_none(),
                    "publish refused or returned"
                );
            }
        }
        while let Some(c) = pending.next().await {
            let c = c.expect("confirm");
            assert!(
                c.is_ack() && c.take_message().is_none(),
                "publish refused or returned"
            );
        }
        let _ = ch.close(200, "done".into()).await;
    }

    /// Messages ready in a queue.
    pub async fn depth(&self, queue: &str) -> u32 {
        tickbridge_testkit::queue_depth(&self.conn, queue).await
    }

    /// The `tb-error` reason of every message in the dead-letter queue, in
    /// order (taken with `basic.get`, left unacked).
    pub async fn dlq_reasons(&self) -> Vec<String> {
        let mut out = Vec::new();
        let q = self.topo().dlq;
        while let Some(m) = self
            .ch
            .basic_get(q.as_str().into(), Default::default())
            .await
            .unwrap()
        {
            out.push(
                headers::amqp_header(&m.delivery.properties, headers::ERROR).unwrap_or_default(),
            );
        }
        out
    }

    pub async fn cleanup(self) {
        let _ = self
            .ch
            .queue_delete(
                format!("{}.observe", self.cfg.prefix).as_str().into(),
                Default::default(),
            )
            .await;
        let _ = self.cfg.topology().delete(&self.ch).await;
        let _ = self.conn.close(200, "bye".into()).await;
    }
}

/// The offsets `group` has committed on `kafka.topic`, summed over
/// `partitions` partitions (a partition without a commit counts 0). Read
/// with OffsetFetch, without joining the group.
pub async fn committed_sum(kafka: &KafkaConfig, group: &str, partitions: i32) -> i64 {
    let (kafka, group) = (kafka.clone(), group.to_string());
    tokio::task::spawn_blocking(move || {
        let c: rdkafka::consumer::BaseConsumer = kafka
            .client_config()
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .create()
            .expect("Kafka client");
        let mut tpl = rdkafka::TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition(&kafka.topic, p);
        }
        let got = c
            .committed_offsets(tpl, Duration::from_secs(10))
            .expect("OffsetFetch");
        got.elements()
            .iter()
            .map(|e| match e.offset() {
                rdkafka::Offset::Offset(o) => o,
                _ => 0,
            })
            .sum()
    })
    .await
    .unwrap()
}

/// Id → times seen.
pub fn id_counts<'a>(ids: impl IntoIterator<Item = &'a str>) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for id in ids {
        *m.entry(id.to_string()).or_default() += 1;
    }
    m
}

/// Asserts that, per symbol, sequence numbers never go backwards except
/// by re-sending (a duplicate may repeat an earlier one, but the first
/// occurrences are in order).
pub fn assert_per_symbol_order<'a>(msgs: impl IntoIterator<Item = &'a Message>) {
    let mut last: BTreeMap<String, u64> = BTreeMap::new();
    let mut firsts: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut seen = std::collections::HashSet::new();
    for m in msgs {
        let r = m.as_ref();
        if seen.insert(r.id().to_string()) {
            firsts
                .entry(format!("{}/{}", r.producer(), r.symbol()))
                .or_default()
                .push(r.seq());
        }
        last.insert(r.symbol().to_string(), r.seq());
    }
    for (sym, seqs) in firsts {
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "{sym}: first occurrences out of order"
        );
    }
}

/// What a run without failures delivers: all `n` ticks, each id once, and
/// per-symbol order.
pub fn assert_all_once_in_order<'a>(
    got: impl ExactSizeIterator<Item = &'a Message> + Clone,
    n: usize,
) {
    assert_eq!(got.len(), n, "every tick arrived");
    let counts = id_counts(got.clone().map(|m| m.as_ref().id()));
    assert_eq!(counts.len(), n, "each id exactly once");
    assert_per_symbol_order(got);
}

/// A direction's summary after a run without failures: `n` bridged and
/// no duplicates.
pub fn assert_bridged_clean(d: &DirSummary, n: usize) {
    assert_eq!(d.bridged, n as u64);
    assert_eq!(d.duplicates, 0);
}

/// The `tb-*` headers that describe the tick, the same on either broker,
/// and the origin a crossing must stamp.
fn assert_tick_headers(h: &HashMap<String, String>, msg: &Message, origin: &str) {
    let r = msg.as_ref();
    let get = |key: &str| h.get(key).map(String::as_str);
    assert_eq!(get(headers::SYMBOL), Some(r.symbol()));
    assert_eq!(get(headers::SOURCE), Some(r.source().as_str()));
    assert_eq!(get(headers::PRODUCER), Some(r.producer()));
    assert_eq!(h.get(headers::SEQ), Some(&r.seq().to_string()));
    assert_eq!(get(headers::ORIGIN), Some(origin));
}

/// Checks the AMQP metadata of a message that crossed from Kafka.
pub fn assert_amqp_intact(g: &AmqpGot, origin: &str) {
    let r = g.msg.as_ref();
    assert_eq!(
        g.message_id.as_deref(),
        Some(r.id()),
        "message_id = tick id"
    );
    assert_eq!(g.kind.as_deref(), Some(r.schema()));
    assert_tick_headers(&g.headers, &g.msg, origin);
    assert_eq!(
        g.routing_key,
        Topology::routing_key(r.source().as_str(), r.symbol())
    );
}

/// Checks the Kafka metadata of a message that crossed from RabbitMQ.
pub fn assert_kafka_intact(g: &KafkaGot, origin: &str) {
    let r = g.msg.as_ref();
    assert_eq!(
        g.headers.get(headers::ID).map(String::as_str),
        Some(r.id()),
        "tb-id = tick id"
    );
    assert_eq!(
        g.headers.get(headers::TYPE).map(String::as_str),
        Some(r.schema())
    );
    assert_eq!(
        g.headers.get("content-type").map(String::as_str),
        Some(headers::CONTENT_TYPE_JSON)
    );
    assert_tick_headers(&g.headers, &g.msg, origin);
    assert_eq!(g.key.as_deref(), Some(r.symbol()), "key = symbol");
}

/// The flags that point the `bridge` binary at a test's pipeline and at
/// the Kafka brokers.
pub fn broker_args<'a>(rabbit: &'a Rabbit, brokers: &'a str) -> [&'a str; 6] {
    [
        "--amqp-url",
        &rabbit.cfg.url,
        "--amqp-prefix",
        &rabbit.cfg.prefix,
        "--kafka-brokers",
        brokers,
    ]
}

/// Shared flags for a test: quiet stats, short waits.
pub fn shared(rabbit: &Rabbit, kafka: &KafkaConfig) -> Shared {
    let mut s = Shared::local(
        &rabbit.cfg.url,
        &rabbit.cfg.prefix,
        &kafka.brokers,
        &kafka.topic,
    );
    s.stats_interval = Duration::from_secs(5);
    s.name = Some(rand_name("bridge"));
    s
}

pub fn r2k(shared: Shared) -> BridgeConfig {
    BridgeConfig {
        shared,
        r2k: Some(R2kArgs::default()),
        k2r: None,
    }
}

pub fn k2r(shared: Shared) -> BridgeConfig {
    let args = K2rArgs {
        group: rand_name("bridge-group"),
        commit_interval: Duration::from_millis(200),
        ..Default::default()
    };
    BridgeConfig {
        shared,
        r2k: None,
        k2r: Some(args),
    }
}

/// The bridge running in-process.
pub struct Running {
    pub shutdown: Shutdown,
    pub stats: Arc<Stats>,
    pub handle: tokio::task::JoinHandle<tickbridge_bridge::Result<Summary>>,
}

impl Running {
    pub fn start(config: BridgeConfig) -> Self {
        let shutdown = Shutdown::new();
        let stats = Arc::new(Stats::default());
        let handle = tokio::spawn(tickbridge_bridge::run_with_stats(
            config,
            shutdown.clone(),
            stats.clone(),
        ));
        Self {
            shutdown,
            stats,
            handle,
        }
    }

    /// Triggers shutdown and returns the final summary (drain included).
    pub async fn stop(self) -> Summary {
        self.shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(40), self.handle)
            .await
            .expect("bridge drains and exits")
            .expect("bridge task")
            .expect("bridge ran without error")
    }
}
