//! Helpers shared by the producer's integration tests: broker addresses from
//! the environment, random names, the flags that point the producer at a
//! feed and at its sinks, and readers that drain a queue or a topic and
//! decode every message against the schema (`tickbridge_testkit::readback`).
#![allow(dead_code)]

use std::time::Duration;
use tickbridge_model::Message;
use tickbridge_testkit::readback;

// Not every test binary uses all three.
#[allow(unused_imports)]
pub use tickbridge_testkit::{amqp_url, kafka_brokers, rand_name};

/// The feed the producer reads: `--exchange`, `--symbols` (comma
/// separated) and the simulator's `--url`.
pub fn feed<'a>(exchange: &'a str, symbols: &'a str, url: &'a str) -> [&'a str; 6] {
    ["--exchange", exchange, "--symbols", symbols, "--url", url]
}

/// `--sink <sinks>` with the RabbitMQ pipeline among them: the broker's
/// URL and the test's own pipeline prefix.
pub fn rabbitmq_sink<'a>(sinks: &'a str, amqp_url: &'a str, prefix: &'a str) -> [&'a str; 6] {
    [
        "--sink",
        sinks,
        "--amqp-url",
        amqp_url,
        "--amqp-prefix",
        prefix,
    ]
}

/// The Kafka sink's broker and the test's own topic.
pub fn kafka_sink<'a>(brokers: &'a str, topic: &'a str) -> [&'a str; 4] {
    ["--kafka-brokers", brokers, "--kafka-topic", topic]
}

/// For runs across a broker restart: reconnect quickly (200 ms to 1 s)
/// and wait up to 60 s at the end for what is still unconfirmed.
pub const RIDE_OUT_RESTARTS: [&str; 6] = [
    "--drain-timeout",
    "60s",
    "--reconnect-min",
    "200ms",
    "--reconnect-max",
    "1s",
];

/// Reads every message from `queue` until it has been quiet for `quiet`,
/// acking as it goes: `(message, redelivered)`. Every body must decode
/// against the schema, and its AMQP `message_id` must be its id.
pub async fn drain_queue(url: &str, queue: &str, quiet: Duration) -> Vec<(Message, bool)> {
    let got = readback::drain_queue(url, queue, usize::MAX, quiet).await;
    got.into_iter()
        .map(|g| {
            assert_eq!(
                g.message_id.as_deref(),
                Some(g.msg.as_ref().id()),
                "message_id carries the id"
            );
            (g.msg, g.redelivered)
        })
        .collect()
}

/// Reads a topic from the beginning with a fresh group until `expected`
/// messages arrived or it has been quiet for `quiet`: `(partition,
/// message)` in consumption order, each keyed by its symbol.
pub async fn read_topic(
    brokers: &str,
    topic: &str,
    expected: usize,
    quiet: Duration,
) -> Vec<(i32, Message)> {
    let got = readback::read_topic(brokers, topic, expected, quiet).await;
    got.into_iter()
        .map(|g| {
            assert_eq!(
                g.key.as_deref(),
                Some(g.msg.as_ref().symbol()),
                "key = symbol"
            );
            (g.partition, g.msg)
        })
        .collect()
}
