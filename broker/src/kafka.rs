//! Kafka client configuration and topic administration, shared by producer,
//! consumer and bridge.
//!
//! Everything here speaks the plain Kafka protocol through librdkafka, so it
//! works against any Kafka cluster (the local stack and the compose stack
//! both run Apache Kafka).

pub mod groups;

use crate::error::{Error, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;
use std::time::{Duration, Instant};

/// Connection settings shared by every Kafka client in tickbridge.
#[derive(Debug, Clone, clap::Args)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma-separated `host:port`.
    #[arg(
        id = "kafka_brokers",
        long = "kafka-brokers",
        env = "KAFKA_BROKERS",
        default_value = "127.0.0.1:9092"
    )]
    pub brokers: String,
    /// Topic ticks and gap notices are written to and read from.
    #[arg(
        id = "kafka_topic",
        long = "kafka-topic",
        env = "KAFKA_TOPIC",
        default_value = "ticks"
    )]
    pub topic: String,
    /// Partitions used when the topic has to be created. Messages are keyed
    /// by symbol, so each symbol's order holds within its partition.
    #[arg(
        id = "kafka_partitions",
        long = "kafka-partitions",
        env = "KAFKA_PARTITIONS",
        default_value_t = 3
    )]
    pub partitions: i32,
    /// Replication factor used when the topic has to be created.
    #[arg(
        id = "kafka_replication",
        long = "kafka-replication",
        env = "KAFKA_REPLICATION",
        default_value_t = 1
    )]
    pub replication: i32,
    /// Raw librdkafka option `key=value`, applied after every tickbridge
    /// default (repeatable). Use it for TLS and SASL, e.g.
    /// `--kafka-option security.protocol=SSL --kafka-option ssl.ca.location=ca.pem`.
    #[arg(id = "kafka_option", long = "kafka-option", env = "KAFKA_OPTIONS", value_delimiter = ',', value_parser = parse_kv)]
    pub options: Vec<(String, String)>,
}

fn parse_kv(s: &str) -> std::result::Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(format!("expected key=value, got {s:?}")),
    }
}

impl KafkaConfig {
    /// Config for a local broker and topic (tests, benches).
    pub fn local(brokers: &str, topic: &str, partitions: i32) -> Self {
        Self {
            brokers: brokers.to_string(),
            topic: topic.to_string(),
            partitions,
            replication: 1,
            options: Vec::new(),
        }
    }

    /// Base client config: bootstrap servers plus defaults every client wants.
    /// Callers set their own keys, then call [`KafkaConfig::finish`].
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("socket.keepalive.enable", "true")
            .set("log_level", "4");
        c
    }

    /// Applies the `--kafka-option` passthrough last, so the user always wins.
    pub fn finish(&self, mut c: ClientConfig) -> ClientConfig {
        for (k, v) in &self.options {
            c.set(k, v);
        }
        c
    }

    /// Creates the topic with `partitions` if it does not exist, then waits
    /// until its metadata is visible. Topic auto-creation is never relied
    /// on: real clusters often disable it.
    pub async fn ensure_topic(&self, topic: &str, partitions: i32) -> Result<i32> {
        let admin: AdminClient<DefaultClientContext> =
            self.finish(self.client_config()).create()?;
        let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(self.replication));
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let results = admin.create_topics([&new], &opts).await?;
        for r in results {
            match r {
                Ok(_) => tracing::info!(topic, partitions, "created Kafka topic"),
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((t, code)) => {
                    return Err(Error::Config(format!("cannot create topic {t}: {code}")))
                }
            }
        }
        self.wait_for_topic(topic, Duration::from_secs(30)).await
    }

    /// Waits until `topic` shows in metadata with at least one partition and
    /// returns its partition count. A clear error if it never does.
    pub async fn wait_for_topic(&self, topic: &str, timeout: Duration) -> Result<i32> {
        let consumer: BaseConsumer = self.finish(self.client_config()).create()?;
        let deadline = Instant::now() + timeout;
        let topic_owned = topic.to_string();
        loop {
            let c = &consumer;
            let t = topic_owned.clone();
            let found = tokio::task::block_in_place(|| {
                c.fetch_metadata(Some(&t), Duration::from_secs(5))
                    .ok()
                    .and_then(|m| {
                        m.topics()
                            .iter()
                            .find(|mt| mt.name() == t && mt.error().is_none())
                            .map(|mt| mt.partitions().len() as i32)
                    })
            });
            match found {
                Some(n) if n > 0 => return Ok(n),
                _ if Instant::now() >= deadline => {
                    return Err(Error::Config(format!(
                        "Kafka topic {topic:?} not found on {} (create it, or let the producer create it)",
                        self.brokers
                    )))
                }
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// One metadata request for `topic`: `Ok(Some(partitions))` when the
    /// brokers list it, `Ok(None)` when a broker answered without it, `Err`
    /// when none answered within `timeout`. Readers use it to tell a deleted
    /// topic (`Ok(None)`) from a broker that is away for a moment.
    pub async fn topic_partitions(&self, topic: &str, timeout: Duration) -> Result<Option<i32>> {
        let consumer: BaseConsumer = self.finish(self.client_config()).create()?;
        let md = tokio::task::block_in_place(|| consumer.fetch_metadata(Some(topic), timeout))?;
        Ok(md
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
            .map(|t| t.partitions().len() as i32))
    }

    /// Checks that the brokers answer a metadata request within `timeout`.
    ///
    /// librdkafka retries a refused or unresolvable bootstrap server forever
    /// and a metadata request only times out, so first every bootstrap
    /// address is resolved and connected to directly (bounded by
    /// `timeout`): a typo in the host, a refused port or a malformed list
    /// fails at once with the reason, and the metadata request then checks
    /// that something speaking Kafka (with the `--kafka-option` TLS/SASL
    /// settings) answers.
    pub async fn ping(&self, timeout: Duration) -> Result<()> {
        let addrs = parse_brokers(&self.brokers)?;
        let mut failures = Vec::new();
        for (host, port) in &addrs {
            match tcp_check(host, *port, timeout).await {
                Ok(()) => {
                    failures.clear();
                    break;
                }
                Err(why) => failures.push(format!("{host}:{port}: {why}")),
            }
        }
        if !failures.is_empty() {
            return Err(Error::Config(format!(
                "Kafka at {} is unreachable ({}); check --kafka-brokers and that the broker is running",
                self.brokers,
                failures.join("; ")
            )));
        }
        let consumer: BaseConsumer = self.finish(self.client_config()).create()?;
        tokio::task::block_in_place(|| consumer.fetch_metadata(None, timeout))
            .map(|_| ())
            .map_err(|e| {
                Error::Config(format!(
                    "Kafka at {} did not answer a metadata request within {:?}: {e} (is it a Kafka broker? do --kafka-option security settings match it?)",
                    self.brokers, timeout
                ))
            })
    }

    /// Deletes `topic` (admin API). A topic that does not exist is not an
    /// error. A reader of a deleted topic stops with a clear error
    /// (`consumer/tests/topic_deleted.rs`).
    pub async fn delete_topic(&self, topic: &str) -> Result<()> {
        let admin: AdminClient<DefaultClientContext> =
            self.finish(self.client_config()).create()?;
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        for r in admin.delete_topics(&[topic], &opts).await? {
            match r {
                Ok(_) => tracing::info!(topic, "deleted Kafka topic"),
                Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
                Err((t, code)) => {
                    return Err(Error::Config(format!("cannot delete topic {t}: {code}")))
                }
            }
        }
        Ok(())
    }
}

/// Splits a bootstrap list into `(host, port)` pairs. Accepts librdkafka's
/// forms, `host:port`, `[v6]:port` and `PROTOCOL://host:port` with a Kafka
/// security protocol; anything else (an `http://` URL, a missing port) is a
/// configuration error that says what to write.
pub fn parse_brokers(list: &str) -> Result<Vec<(String, u16)>> {
    let bad = |entry: &str, why: &str| {
        Error::Config(format!(
            "bad --kafka-brokers entry {entry:?}: {why} (expected host:port, comma-separated)"
        ))
    };
    let mut out = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let rest = match entry.split_once("://") {
            Some((scheme, rest)) => {
                let known = ["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"];
                if !known.contains(&scheme.to_ascii_lowercase().as_str()) {
                    return Err(bad(
                        entry,
                        &format!("scheme {scheme:?} is not a Kafka security protocol"),
                    ));
                }
                rest
            }
            None => entry,
        };
        let (host, port) = rest.rsplit_once(':').ok_or_else(|| bad(entry, "no port"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.contains('/') {
            return Err(bad(entry, "no host"));
        }
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| bad(entry, "the port is not a number from 1 to 65535"))?;
        out.push((host.to_string(), port));
    }
    if out.is_empty() {
        return Err(bad(list, "empty"));
    }
    Ok(out)
}

/// Resolves and connects to one address within `timeout`.
async fn tcp_check(host: &str, port: u16, timeout: Duration) -> std::result::Result<(), String> {
    let attempt = async {
        let addrs: Vec<_> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| format!("cannot resolve host: {e}"))?
            .collect();
        let mut last = String::from("no address");
        for a in addrs {
            match tokio::net::TcpStream::connect(a).await {
                Ok(_) => return Ok(()),
                Err(e) => last = e.to_string(),
            }
        }
        Err(last)
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

/// Commits the offsets stored so far. "Nothing to commit" is not an
/// error; a real failure is counted ([`CommitFailed`]) and left to the next
/// commit, which covers the same offsets or later ones.
///
/// [`CommitFailed`]: crate::events::CommitFailed
pub fn commit_stored<C, X>(
    consumer: &C,
    mode: rdkafka::consumer::CommitMode,
    scope: crate::events::Scope,
    when: &'static str,
) where
    C: Consumer<X>,
    X: rdkafka::consumer::ConsumerContext,
{
    use tickbridge_model::telemetry::InternalEvent;
    match consumer.commit_consumer_state(mode) {
        Ok(()) | Err(rdkafka::error::KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => crate::events::CommitFailed {
            scope,
            error: &e,
            when,
        }
        .emit(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passthrough_applies_last() {
        let mut k = KafkaConfig::local("a:1", "t", 1);
        k.options = vec![("bootstrap.servers".into(), "b:2".into())];
        let c = k.finish(k.client_config());
        assert_eq!(c.get("bootstrap.servers"), Some("b:2"));
        assert!(parse_kv("nokey").is_err());
        assert_eq!(parse_kv("a=b=c").unwrap(), ("a".into(), "b=c".into()));
    }

    #[test]
    fn broker_lists() {
        struct TestCase {
            input: &'static str,
            expected: Result<Vec<(&'static str, u16)>, &'static str>,
        }
        let cases = [
            // TC0: plain list
            TestCase {
                input: "a:9092, b:9093",
                expected: Ok(vec![("a", 9092), ("b", 9093)]),
            },
            // TC1: librdkafka's protocol prefix
            TestCase {
                input: "SASL_SSL://kafka.example.com:9094",
                expected: Ok(vec![("kafka.example.com", 9094)]),
            },
            // TC2: IPv6
            TestCase {
                input: "[::1]:9092",
                expected: Ok(vec![("::1", 9092)]),
            },
            // TC3: a URL scheme librdkafka does not know
            TestCase {
                input: "http://a:9092",
                expected: Err("scheme"),
            },
            // TC4: no port
            TestCase {
                input: "localhost",
                expected: Err("no port"),
            },
            // TC5: port out of range
            TestCase {
                input: "a:99999",
                expected: Err("port"),
            },
            // TC6: empty
            TestCase {
                input: " , ",
                expected: Err("empty"),
            },
        ];
        for (i, tc) in cases.iter().enumerate() {
            match (parse_brokers(tc.input), &tc.expected) {
                (Ok(got), Ok(want)) => {
                    let want: Vec<(String, u16)> =
                        want.iter().map(|(h, p)| (h.to_string(), *p)).collect();
                    assert_eq!(got, want, "TC{i}");
                }
                (Err(e), Err(word)) => assert!(e.to_string().contains(word), "TC{i}: {e}"),
                (got, _) => panic!("TC{i}: {got:?}"),
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ping_fails_fast_on_refused_and_unresolvable() {
        let reserved = tickbridge_testkit::closed_port();
        let closed = reserved.port;
        for brokers in [
            format!("127.0.0.1:{closed}"),
            "no-such-host.invalid:9092".to_string(),
        ] {
            let k = KafkaConfig::local(&brokers, "t", 1);
            let t = Instant::now();
            let e = k.ping(Duration::from_secs(10)).await.unwrap_err();
            assert!(t.elapsed() < Duration::from_secs(8), "{brokers}: {e}");
            assert!(
                e.is_terminal() && e.to_string().contains("unreachable"),
                "{e}"
            );
        }
    }
}
