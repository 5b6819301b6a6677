//! Flags of the `bridge` binary, one struct per concern.
//!
//! [`Shared`] holds what both directions need (brokers, dead letters, origin
//! marker, telemetry); [`R2kArgs`] and [`K2rArgs`] hold what only one
//! direction reads. The subcommands of [`Direction`] flatten the ones they
//! use, so `bridge rabbitmq-to-kafka --help` lists no Kafka-consumer flags.
//! [`BridgeConfig`] is what [`crate::run`] takes: tests build it directly.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;
use tickbridge_broker::amqp::AmqpConfig;
use tickbridge_broker::headers;
use tickbridge_broker::kafka::KafkaConfig;
use tickbridge_model::telemetry::LogFormat;

/// Where the Kafka key (rabbitmq-to-kafka) or the AMQP routing key
/// (kafka-to-rabbitmq) of a bridged message comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyFrom {
    /// The other side's key: the AMQP routing key, or the Kafka record key.
    Key,
    /// A header of the incoming message (`header:tb-symbol`). A message that
    /// lacks it falls back to the default for its direction.
    Header(String),
    /// The canonical key: the symbol for Kafka, `source.symbol` for AMQP,
    /// taken from the validated body.
    Canonical,
}

impl FromStr for KeyFrom {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "key" | "routing-key" | "kafka-key" => Ok(KeyFrom::Key),
            "symbol" | "source-symbol" | "canonical" => Ok(KeyFrom::Canonical),
            _ => match s.strip_prefix("header:") {
                Some(h) if !h.is_empty() => Ok(KeyFrom::Header(h.to_string())),
                _ => Err(format!(
                    "expected `key`, `canonical` or `header:<name>`, got {s:?}"
                )),
            },
        }
    }
}

/// Flags every direction shares.
#[derive(Debug, Clone, clap::Args)]
pub struct Shared {
    /// RabbitMQ connection and pipeline prefix.
    #[command(flatten)]
    pub amqp: AmqpConfig,
    /// Kafka connection and topic.
    #[command(flatten)]
    pub kafka: KafkaConfig,
    /// Declare the RabbitMQ topology of `stack/definitions.json` (renamed by
    /// the prefix) and create the Kafka topic if missing. Without it a missing
    /// queue, exchange or topic is an error, so a typo never silently bridges
    /// into an empty, fresh resource.
    #[arg(long, env = "BRIDGE_DECLARE_TOPOLOGY")]
    pub declare_topology: bool,
    /// Exchange that poison messages (not a valid tick or gap notice) and
    /// messages Kafka refuses for good are published to, with the reason in
    /// the `tb-error` header. Defaults to the pipeline's `<prefix>.dlx`, which
    /// routes to `<prefix>.dlq`.
    #[arg(long, env = "BRIDGE_DEAD_LETTER_EXCHANGE")]
    pub dead_letter_exchange: Option<String>,
    /// Suffix of the `tb-origin` marker. Without it the marker is the side a
    /// message came from (`rabbitmq` or `kafka`); with it, `rabbitmq:<tag>`.
    /// Bridges sharing a pair of brokers use the same tag (or none); bridges
    /// chaining different clusters use different tags so each one skips only
    /// its own output.
    #[arg(long, env = "BRIDGE_ORIGIN_TAG")]
    pub origin_tag: Option<String>,
    /// How long a graceful shutdown waits for outstanding delivery reports
    /// or confirms before it gives up on them (they are then redelivered or
    /// re-read: at least once, never lost).
    #[arg(long, env = "BRIDGE_DRAIN_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,
    /// How long to wait at startup for the Kafka topic to appear.
    #[arg(long, env = "BRIDGE_TOPIC_WAIT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub topic_wait: Duration,
    /// How often the stats line is logged (a final one is always logged).
    #[arg(long, env = "BRIDGE_STATS_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub stats_interval: Duration,
    /// Serve Prometheus metrics on this address (`127.0.0.1:9102`) at `/metrics`.
    #[arg(long, env = "BRIDGE_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Ids remembered per direction to count duplicates (redeliveries and
    /// re-reads). Bounded so memory stays flat; older duplicates go uncounted.
    #[arg(long, env = "BRIDGE_DEDUP_WINDOW", default_value_t = 1_000_000)]
    pub dedup_window: usize,
    /// Instance name in logs, the AMQP connection name and the Kafka client
    /// id. Defaults to `bridge-<pid>`.
    #[arg(long, env = "BRIDGE_NAME")]
    pub name: Option<String>,
    /// Log format on stderr.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl Shared {
    /// Defaults for a local pair of brokers (tests, benches).
    pub fn local(amqp_url: &str, prefix: &str, brokers: &str, topic: &str) -> Self {
        Self {
            amqp: AmqpConfig::local(amqp_url, prefix),
            kafka: KafkaConfig::local(brokers, topic, 3),
            declare_topology: false,
            dead_letter_exchange: None,
            origin_tag: None,
            drain_timeout: Duration::from_secs(30),
            topic_wait: Duration::from_secs(10),
            stats_interval: Duration::from_secs(10),
            metrics_addr: None,
            dedup_window: 1_000_000,
            name: None,
            log_format: LogFormat::Text,
        }
    }

    /// Instance name.
    pub fn instance_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            format!(
                "bridge-{}-{:04x}",
                std::process::id(),
                rand::random::<u16>()
            )
        })
    }

    /// The dead-letter exchange in use.
    pub fn dlx(&self) -> String {
        self.dead_letter_exchange
            .clone()
            .unwrap_or_else(|| self.amqp.topology().dlx)
    }

    /// The `tb-origin` value this bridge writes on messages that came from
    /// `side` (`rabbitmq` or `kafka`).
    pub fn origin_marker(&self, side: &str) -> String {
        match &self.origin_tag {
            Some(t) => format!("{side}:{t}"),
            None => side.to_string(),
        }
    }
}

/// Flags of the RabbitMQ → Kafka direction.
#[derive(Debug, Clone, clap::Args)]
pub struct R2kArgs {
    /// Queue to consume. Defaults to the pipeline's work queue
    /// (`<prefix>.work`); give the bridge its own queue bound to the exchange
    /// when workers should also see every tick.
    #[arg(long, env = "BRIDGE_QUEUE")]
    pub queue: Option<String>,
    /// `basic.qos` prefetch: unacked deliveries the broker hands the bridge
    /// at once. This is the in-flight window: throughput grows with it, and
    /// it bounds what a crash hands back for redelivery (the duplicates).
    #[arg(long, env = "BRIDGE_PREFETCH", default_value_t = 2000)]
    pub prefetch: u16,
    /// Where the Kafka key comes from: `header:<name>` (default
    /// `header:tb-symbol`, so each symbol keeps its order in one partition),
    /// `key` (the AMQP routing key) or `canonical` (the body's symbol).
    #[arg(long, env = "BRIDGE_KAFKA_KEY", default_value = "header:tb-symbol")]
    pub kafka_key: KeyFrom,
    /// `linger.ms` of the Kafka producer: batching for throughput.
    #[arg(long, env = "BRIDGE_KAFKA_LINGER", default_value = "5ms", value_parser = humantime::parse_duration)]
    pub linger: Duration,
    /// `compression.type` of the Kafka producer.
    #[arg(long, env = "BRIDGE_KAFKA_COMPRESSION", default_value = "lz4")]
    pub compression: String,
    /// `message.timeout.ms`: how long librdkafka keeps retrying a message
    /// (broker away) before reporting it failed; the bridge then produces it
    /// again, counted as a retry. The AMQP delivery stays unacked throughout.
    #[arg(long, env = "BRIDGE_DELIVERY_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub delivery_timeout: Duration,
}

impl Default for R2kArgs {
    fn default() -> Self {
        Self {
            queue: None,
            prefetch: 2000,
            kafka_key: KeyFrom::Header(headers::SYMBOL.into()),
            linger: Duration::from_millis(5),
            compression: "lz4".into(),
            delivery_timeout: Duration::from_secs(60),
        }
    }
}

/// Where the Kafka consumer starts when its group has no committed offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OffsetReset {
    /// From the oldest retained record: bridge the whole topic.
    Earliest,
    /// From new records only.
    Latest,
}

/// Flags of the Kafka → RabbitMQ direction.
#[derive(Debug, Clone, clap::Args)]
pub struct K2rArgs {
    /// Kafka consumer group. Several bridges in one group split the
    /// partitions; committed offsets are the group's progress.
    #[arg(long, env = "BRIDGE_GROUP", default_value = "tickbridge-bridge")]
    pub group: String,
    /// Exchange to publish to. Defaults to the pipeline's exchange (`<prefix>`).
    #[arg(long, env = "BRIDGE_EXCHANGE")]
    pub exchange: Option<String>,
    /// Where the routing key comes from: `canonical` (default,
    /// `source.symbol` as the producer publishes), `key` (the Kafka record
    /// key) or `header:<name>`.
    #[arg(long, env = "BRIDGE_ROUTING_KEY", default_value = "canonical")]
    pub routing_key: KeyFrom,
    /// Unconfirmed publishes allowed in flight. Bounds memory and, with the
    /// commit interval, what a crash re-reads (the duplicates).
    #[arg(long, env = "BRIDGE_CONFIRM_WINDOW", default_value_t = 2000)]
    pub confirm_window: usize,
    /// Exchange for unroutable messages (returned because of `mandatory`):
    /// an alternate exchange of your own, or by default the dead-letter
    /// exchange. The reason travels in `tb-error`.
    #[arg(long, env = "BRIDGE_UNROUTABLE_EXCHANGE")]
    pub unroutable_exchange: Option<String>,
    /// Where a group without committed offsets starts.
    #[arg(long, env = "BRIDGE_OFFSET_RESET", value_enum, default_value_t = OffsetReset::Earliest)]
    pub offset_reset: OffsetReset,
    /// How often stored offsets (confirmed messages only) are committed.
    /// A crash re-reads at most what was confirmed since the last commit
    /// plus the confirm window.
    #[arg(long, env = "BRIDGE_COMMIT_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub commit_interval: Duration,
    /// Consumer-group session timeout: how long the group waits for a
    /// silent member (a crashed bridge) before handing its partitions on.
    #[arg(long, env = "BRIDGE_SESSION_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub session_timeout: Duration,
    /// Times a nacked publish is retried before the session restarts from
    /// the committed offsets.
    #[arg(long, env = "BRIDGE_PUBLISH_RETRIES", default_value_t = 5)]
    pub publish_retries: u32,
}

impl Default for K2rArgs {
    fn default() -> Self {
        Self {
            group: "tickbridge-bridge".into(),
            exchange: None,
            routing_key: KeyFrom::Canonical,
            confirm_window: 2000,
            unroutable_exchange: None,
            offset_reset: OffsetReset::Earliest,
            commit_interval: Duration::from_secs(1),
            session_timeout: Duration::from_secs(10),
            publish_retries: 5,
        }
    }
}

/// The subcommands of the `bridge` binary.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Direction {
    /// Consume a RabbitMQ queue and produce every message to a Kafka topic;
    /// a delivery is acked only after Kafka confirmed it.
    RabbitmqToKafka {
        /// Brokers and telemetry.
        #[command(flatten)]
        shared: Shared,
        /// This direction's flags.
        #[command(flatten)]
        r2k: R2kArgs,
    },
    /// Consume a Kafka topic in a group and publish every record to a
    /// RabbitMQ exchange; an offset is stored only after RabbitMQ confirmed.
    KafkaToRabbitmq {
        /// Brokers and telemetry.
        #[command(flatten)]
        shared: Shared,
        /// This direction's flags.
        #[command(flatten)]
        k2r: K2rArgs,
    },
    /// Both directions in one process; each skips what the other bridged.
    Both {
        /// Brokers and telemetry.
        #[command(flatten)]
        shared: Shared,
        /// RabbitMQ → Kafka flags.
        #[command(flatten)]
        r2k: R2kArgs,
        /// Kafka → RabbitMQ flags.
        #[command(flatten)]
        k2r: K2rArgs,
    },
}

/// What [`crate::run`] runs: shared settings and the directions enabled.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    /// Brokers and telemetry.
    pub shared: Shared,
    /// RabbitMQ → Kafka, when enabled.
    pub r2k: Option<R2kArgs>,
    /// Kafka → RabbitMQ, when enabled.
    pub k2r: Option<K2rArgs>,
}

impl From<Direction> for BridgeConfig {
    fn from(d: Direction) -> Self {
        match d {
            Direction::RabbitmqToKafka { shared, r2k } => BridgeConfig {
                shared,
                r2k: Some(r2k),
                k2r: None,
            },
            Direction::KafkaToRabbitmq { shared, k2r } => BridgeConfig {
                shared,
                r2k: None,
                k2r: Some(k2r),
            },
            Direction::Both { shared, r2k, k2r } => BridgeConfig {
                shared,
                r2k: Some(r2k),
                k2r: Some(k2r),
            },
        }
    }
}

impl BridgeConfig {
    /// Checks flag combinations clap cannot, with messages that say what to write.
    pub fn validate(&self) -> crate::Result<()> {
        let err = |m: String| Err(crate::Error::Config(m));
        if self.r2k.is_none() && self.k2r.is_none() {
            return err("no direction enabled".into());
        }
        if let Some(r) = &self.r2k {
            if r.prefetch == 0 {
                return err("--prefetch must be at least 1 (0 means unlimited in AMQP and would let a crash redeliver the whole queue)".into());
            }
        }
        if let Some(k) = &self.k2r {
            if k.confirm_window == 0 {
                return err("--confirm-window must be at least 1".into());
            }
            if k.group.trim().is_empty() {
                return err("--group must not be empty".into());
            }
        }
        if self.shared.kafka.topic.trim().is_empty() {
            return err("--kafka-topic must not be empty".into());
        }
        if let Some(t) = &self.shared.origin_tag {
            if t.is_empty() || t.contains(':') {
                return err(format!(
                    "--origin-tag {t:?} must be non-empty and contain no ':'"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_sources_parse() {
        // TC0: the defaults of both directions.
        assert_eq!(
            "header:tb-symbol".parse(),
            Ok(KeyFrom::Header("tb-symbol".into()))
        );
        assert_eq!("canonical".parse(), Ok(KeyFrom::Canonical));
        // TC1: the other side's key, under each direction's name.
        assert_eq!("routing-key".parse(), Ok(KeyFrom::Key));
        assert_eq!("key".parse(), Ok(KeyFrom::Key));
        // TC2: typos are errors, not silent defaults.
        assert!("header:".parse::<KeyFrom>().is_err());
        assert!("symbl".parse::<KeyFrom>().is_err());
    }

    #[test]
    fn origin_markers() {
        let mut s = Shared::local("amqp://x", "p", "k:1", "t");
        assert_eq!(s.origin_marker("kafka"), "kafka");
        s.origin_tag = Some("eu".into());
        assert_eq!(s.origin_marker("rabbitmq"), "rabbitmq:eu");
        assert_eq!(s.dlx(), "p.dlx");
    }
}
