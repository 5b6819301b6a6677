//! `consumer`: broadcast with replay, from Kafka (default) or the RabbitMQ
//! stream queue.
//!
//! Both sources are logs: reading does not remove anything, every reader
//! (every Kafka group, every stream consumer) sees every message, and
//! [`ReplayFrom`] says where in the log to start. This module holds the flags
//! and dispatches to [`crate::kafka`] or [`crate::stream`].

use crate::config::CommonArgs;
use crate::replay::ReplayFrom;
use crate::stats::Summary;
use crate::supervise::Reader;
use crate::Result;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tickbridge_broker::amqp::AmqpConfig;
use tickbridge_broker::kafka::KafkaConfig;
use tickbridge_model::Shutdown;
use tokio::sync::watch;

/// Which log to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum From {
    /// A Kafka topic, through a consumer group.
    Kafka,
    /// The RabbitMQ stream queue (`<prefix>.stream`), over AMQP 0-9-1.
    RabbitmqStream,
}

/// Where a Kafka group with no committed offset starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OffsetReset {
    /// The oldest retained message: a new group sees the history.
    Earliest,
    /// Only messages written after it joins.
    Latest,
}

/// Flags of the `consumer` binary.
#[derive(Debug, Clone, clap::Args)]
pub struct ConsumerConfig {
    /// Which log to read.
    #[arg(long = "from", env = "CONSUMER_FROM", value_enum, default_value_t = From::Kafka)]
    pub from: From,
    /// Kafka connection and topic.
    #[command(flatten)]
    pub kafka: KafkaConfig,
    /// RabbitMQ connection and resource names (for `--from rabbitmq-stream`).
    #[command(flatten)]
    pub amqp: AmqpConfig,
    /// Kafka consumer group. Every group receives every tick; the members of
    /// one group split the partitions between them, and the group's
    /// committed offsets are where it resumes after a restart.
    #[arg(long, env = "CONSUMER_GROUP", default_value = "tickbridge-consumer")]
    pub group: String,
    /// Start somewhere else than where the group left off: `0` or any offset
    /// (every partition), `p:offset[,p:offset]`, `earliest`, `latest`, an
    /// RFC 3339 timestamp, or a duration ago such as `15m`. Applies the first
    /// time this process is assigned each partition; with commits enabled the
    /// group's committed offsets then follow what this process reads.
    #[arg(long, env = "CONSUMER_REPLAY_FROM")]
    pub replay_from: Option<ReplayFrom>,
    /// Read-only: never store or commit offsets, and do not join the group
    /// (all partitions are assigned directly), so a replay cannot move or
    /// disturb the group's position. Without `--replay-from` it starts at
    /// the group's committed offsets.
    #[arg(long, env = "CONSUMER_NO_COMMIT")]
    pub no_commit: bool,
    /// How often stored offsets are committed. Also the bound on what a
    /// crash makes the group read twice.
    #[arg(long, env = "CONSUMER_COMMIT_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub commit_interval: Duration,
    /// Where a group without a committed offset starts.
    #[arg(long, env = "CONSUMER_OFFSET_RESET", value_enum, default_value_t = OffsetReset::Earliest)]
    pub offset_reset: OffsetReset,
    /// Kafka session timeout: how long the group waits for a silent member
    /// (say, one killed with SIGKILL) before giving its partitions to others.
    #[arg(long, env = "CONSUMER_SESSION_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub session_timeout: Duration,
    /// Longest a Kafka broker may hold a fetch open while no data arrives
    /// (`fetch.wait.max.ms`). It does not delay ticks: with `fetch.min.bytes`
    /// at 1, Kafka answers a waiting fetch as soon as a record is appended.
    /// What it sets is how often an idle reader asks again: measured on
    /// Kafka 4.1, three idle readers at 5 ms cost the broker 10-17% of a
    /// core and themselves 1% each; at Kafka's default of 500 ms, 2% and
    /// 0.1% (docs/benchmarks/latency.md).
    #[arg(long, env = "CONSUMER_FETCH_WAIT", default_value = "500ms", value_parser = humantime::parse_duration)]
    pub fetch_wait: Duration,
    /// How long to wait for the topic to appear before failing.
    #[arg(long, env = "CONSUMER_TOPIC_WAIT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub topic_wait: Duration,
    /// Stream consumer prefetch (`basic.qos`), required by RabbitMQ streams.
    #[arg(long, env = "CONSUMER_PREFETCH", default_value_t = 1000)]
    pub prefetch: u16,
    /// Output, stats and lifecycle.
    #[command(flatten)]
    pub common: CommonArgs,
    /// The Kafka partitions this consumer owns, kept current through every
    /// rebalance. Not a flag: a program that embeds the consumer (or a test)
    /// keeps a clone and watches partitions move between group members.
    #[arg(skip)]
    pub assignment: Assignment,
}

/// The partitions a Kafka consumer currently owns. Clones share one value;
/// the rebalance callback updates it on every assign and revoke, whether the
/// group uses the eager or the cooperative protocol.
#[derive(Debug, Clone)]
pub struct Assignment(Arc<watch::Sender<BTreeSet<i32>>>);

impl Default for Assignment {
    fn default() -> Self {
        Self(Arc::new(watch::Sender::new(BTreeSet::new())))
    }
}

impl Assignment {
    /// The partitions owned right now.
    pub fn current(&self) -> BTreeSet<i32> {
        self.0.borrow().clone()
    }

    /// Waits until the owned partitions satisfy `f` (checked at once, then
    /// after every change).
    pub async fn wait_for(&self, mut f: impl FnMut(&BTreeSet<i32>) -> bool) {
        let mut rx = self.0.subscribe();
        // The sender lives in `self`, so the channel cannot close here.
        let _ = rx.wait_for(|s| f(s)).await;
    }

    pub(crate) fn add(&self, parts: &[i32]) {
        self.0.send_modify(|s| s.extend(parts.iter().copied()));
    }

    pub(crate) fn clear(&self) {
        self.0.send_modify(BTreeSet::clear);
    }

    pub(crate) fn remove(&self, parts: &[i32]) {
        self.0.send_modify(|s| {
            for p in parts {
                s.remove(p);
            }
        });
    }
}

impl ConsumerConfig {
    /// A quiet Kafka consumer on a local broker (tests, benches).
    pub fn local_kafka(kafka: KafkaConfig, group: &str) -> Self {
        Self {
            from: From::Kafka,
            kafka,
            amqp: AmqpConfig::local(
                "amqp://127.0.0.1:5672/%2f",
                tickbridge_broker::amqp::DEFAULT_PREFIX,
            ),
            group: group.to_string(),
            replay_from: None,
            no_commit: false,
            commit_interval: Duration::from_secs(1),
            offset_reset: OffsetReset::Earliest,
            session_timeout: Duration::from_secs(10),
            fetch_wait: Duration::from_millis(500),
            topic_wait: Duration::from_secs(10),
            prefetch: 1000,
            common: CommonArgs::quiet(),
            assignment: Assignment::default(),
        }
    }

    /// A quiet RabbitMQ stream consumer (tests, benches).
    pub fn local_stream(amqp: AmqpConfig) -> Self {
        let mut c = Self::local_kafka(KafkaConfig::local("127.0.0.1:9092", "ticks", 3), "unused");
        c.from = From::RabbitmqStream;
        c.amqp = amqp;
        c
    }
}

impl Reader for ConsumerConfig {
    const BIN: &'static str = "consumer";
    fn role(&self) -> &'static str {
        ConsumerConfig::role(self)
    }
    fn common(&self) -> &CommonArgs {
        &self.common
    }
    /// Startup check, before the reconnect loop: the broker this consumer
    /// reads must answer now (Kafka: every bootstrap address resolved and a
    /// metadata request answered within `--topic-wait`; RabbitMQ: one
    /// connection). A wrong URL, host, port or credentials exits at once
    /// with one line; once reading has started, a lost broker is retried.
    async fn preflight(&self) -> Result<()> {
        match self.from {
            From::Kafka => self.kafka.ping(self.topic_wait).await?,
            From::RabbitmqStream => self.amqp.preflight(&self.preflight_name()).await?,
        }
        Ok(())
    }
    async fn run(self, shutdown: Shutdown) -> Result<Summary> {
        run(self, shutdown).await
    }
}

impl ConsumerConfig {
    /// The `role` label of this reader's metrics: `kafka` or `stream`.
    pub fn role(&self) -> &'static str {
        match self.from {
            From::Kafka => crate::kafka::ROLE,
            From::RabbitmqStream => crate::stream::ROLE,
        }
    }
}

/// Reads the configured log until `shutdown` fires (or `--exit-when-idle`),
/// then commits what was handled and returns the final statistics.
pub async fn run(config: ConsumerConfig, shutdown: Shutdown) -> Result<Summary> {
    tickbridge_model::telemetry::install_metrics(config.common.metrics_addr)?;
    let summary = match config.from {
        From::Kafka => crate::kafka::run(&config, shutdown).await?,
        From::RabbitmqStream => crate::stream::run(&config, shutdown).await?,
    };
    if let Some(path) = &config.common.summary_json {
        crate::stats::write_summary(&summary, path)?;
    }
    Ok(summary)
}
