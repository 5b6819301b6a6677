//! Producer configuration: one struct, every field a documented flag with an
//! environment fallback.

use clap::{Parser, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tickbridge_broker::amqp::AmqpConfig;
use tickbridge_broker::kafka::KafkaConfig;
use tickbridge_model::telemetry::LogFormat;
use tickbridge_model::{Source, Via};

/// Where normalized messages go. Any combination may be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum)]
pub enum SinkKind {
    /// RabbitMQ topic exchange, publisher confirms, persistent messages.
    Rabbitmq,
    /// Kafka topic, idempotent producer, key = symbol.
    Kafka,
    /// JSON Lines files, one per day, in `--out-dir`.
    Jsonl,
}

impl SinkKind {
    /// Name used in logs, metrics and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            SinkKind::Rabbitmq => "rabbitmq",
            SinkKind::Kafka => "kafka",
            SinkKind::Jsonl => "jsonl",
        }
    }
}

impl From<SinkKind> for tickbridge_model::report::Sink {
    fn from(k: SinkKind) -> Self {
        use tickbridge_model::report::Sink;
        match k {
            SinkKind::Rabbitmq => Sink::Rabbitmq,
            SinkKind::Kafka => Sink::Kafka,
            SinkKind::Jsonl => Sink::Jsonl,
        }
    }
}

/// How the trade feed is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ViaArg {
    /// WebSocket stream.
    Ws,
    /// REST polling at `--poll-interval`.
    Poll,
}

impl From<ViaArg> for Via {
    fn from(v: ViaArg) -> Self {
        match v {
            ViaArg::Ws => Via::Ws,
            ViaArg::Poll => Via::Poll,
        }
    }
}

/// What to do when a sink's buffer is full because the sink is slow or down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OverflowPolicy {
    /// Stop reading the feed until the sink catches up (nothing is dropped;
    /// the exchange may eventually disconnect us, which is reported as a gap).
    Block,
    /// Drop the oldest buffered ticks, count them, and publish a gap notice.
    DropOldest,
}

/// Producer flags.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "producer",
    version,
    about = "Exchange trade feeds → RabbitMQ, Kafka and JSON Lines, with nothing lost silently",
    help_template = tickbridge_model::cli::help_template(
        "with feed-sim on 127.0.0.1:9000: 10 s of ticks to the local RabbitMQ and Kafka, and to out/example",
        "producer --url ws://127.0.0.1:9000 --symbols BTC-USDT,ETH-USDT --sink rabbitmq,kafka,jsonl --out-dir out/example --max-seconds 10",
    )
)]
pub struct ProducerConfig {
    /// Exchange to read.
    #[arg(long, env = "PRODUCER_EXCHANGE", default_value = "binance")]
    pub exchange: Source,
    /// Normalized symbols (`BASE-QUOTE`), comma-separated.
    #[arg(
        long,
        env = "PRODUCER_SYMBOLS",
        value_delimiter = ',',
        default_value = "BTC-USDT,ETH-USDT"
    )]
    pub symbols: Vec<String>,
    /// WebSocket base URL. Defaults to the exchange's real public endpoint;
    /// point it at `feed-sim` (e.g. `ws://127.0.0.1:9000`) to run offline.
    #[arg(long, env = "PRODUCER_URL")]
    pub url: Option<String>,
    /// REST base URL used by `--via poll`. Defaults to the exchange's real
    /// public REST API.
    #[arg(long, env = "PRODUCER_REST_URL")]
    pub rest_url: Option<String>,
    /// Stream over WebSocket, or poll REST, so the two can be compared.
    #[arg(long, env = "PRODUCER_VIA", value_enum, default_value = "ws")]
    pub via: ViaArg,
    /// Poll interval for `--via poll`.
    #[arg(long, env = "PRODUCER_POLL_INTERVAL", value_parser = humantime::parse_duration, default_value = "1s")]
    pub poll_interval: Duration,
    /// Trades requested per poll (the exchange's `limit`).
    #[arg(long, env = "PRODUCER_POLL_LIMIT", default_value_t = 500)]
    pub poll_limit: u32,
    /// Sinks to publish to (repeatable or comma-separated).
    #[arg(
        long = "sink",
        env = "PRODUCER_SINKS",
        value_enum,
        value_delimiter = ',',
        default_value = "rabbitmq,kafka"
    )]
    pub sinks: Vec<SinkKind>,
    /// Directory of the JSON Lines sink.
    #[arg(long, env = "PRODUCER_OUT_DIR", default_value = "out")]
    pub out_dir: PathBuf,
    /// Ticks each sink may buffer while it is slow or down. Bounds memory
    /// however long a broker is away.
    #[arg(long, env = "PRODUCER_MAX_BUFFER", default_value_t = 10_000)]
    pub max_buffer: usize,
    /// What a full buffer does.
    #[arg(long, env = "PRODUCER_OVERFLOW", value_enum, default_value = "block")]
    pub overflow: OverflowPolicy,
    /// Messages published but not yet confirmed, per sink. Many in flight is
    /// what makes confirms fast; one at a time is ~100x slower.
    #[arg(long, env = "PRODUCER_CONFIRM_WINDOW", default_value_t = 1000)]
    pub confirm_window: usize,
    /// Messages handed to librdkafka and not yet reported, for the Kafka
    /// sink. Bounds the producer's memory together with `--max-buffer`
    /// (about 1.4 KiB each, counting librdkafka's copy). librdkafka's local
    /// queue is twice this. Fewer means smaller batches per partition: into
    /// an in-memory Kafka-protocol broker 500 gave ~69k ticks/s, 2,000
    /// ~180k, 5,000 ~195k at 47 MiB peak RSS, 10,000 no faster at 61 MiB.
    #[arg(long, env = "PRODUCER_KAFKA_IN_FLIGHT", default_value_t = 5_000)]
    pub kafka_in_flight: usize,
    /// Times a nacked, returned or failed message is re-published before it
    /// is counted lost and reported in a gap notice.
    #[arg(long, env = "PRODUCER_PUBLISH_RETRIES", default_value_t = 5)]
    pub publish_retries: u32,
    /// A connection silent for this long is considered dead and replaced.
    #[arg(long, env = "PRODUCER_IDLE_TIMEOUT", value_parser = humantime::parse_duration, default_value = "30s")]
    pub idle_timeout: Duration,
    /// First reconnect delay; doubles per attempt (with jitter) up to `--reconnect-max`.
    #[arg(long, env = "PRODUCER_RECONNECT_MIN", value_parser = humantime::parse_duration, default_value = "100ms")]
    pub reconnect_min: Duration,
    /// Largest reconnect delay.
    #[arg(long, env = "PRODUCER_RECONNECT_MAX", value_parser = humantime::parse_duration, default_value = "10s")]
    pub reconnect_max: Duration,
    /// Per symbol, how far below the newest trade id an exact duplicate is
    /// still recognised and dropped (one bit per id, so 10,000 ids cost
    /// 1.25 KiB per symbol). An id further below is published and counted
    /// as out of order.
    #[arg(long, env = "PRODUCER_DEDUP_WINDOW", default_value_t = 10_000)]
    pub dedup_window: usize,
    /// Stop after publishing this many ticks.
    #[arg(long, env = "WS_MAX_EVENTS")]
    pub max_events: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long, env = "WS_MAX_SECONDS")]
    pub max_seconds: Option<u64>,
    /// On shutdown, how long to wait for outstanding confirms and delivery
    /// reports before giving up and reporting them as unconfirmed.
    #[arg(long, env = "PRODUCER_DRAIN_TIMEOUT", value_parser = humantime::parse_duration, default_value = "15s")]
    pub drain_timeout: Duration,
    /// Interval of the stats line.
    #[arg(long, env = "PRODUCER_STATS_INTERVAL", value_parser = humantime::parse_duration, default_value = "5s")]
    pub stats_interval: Duration,
    /// Serve Prometheus metrics on this address (`/metrics`).
    #[arg(long, env = "PRODUCER_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Producer instance id that scopes `seq`. Default: `<exchange>-<via>-<pid>-<start time>`.
    #[arg(long, env = "PRODUCER_ID")]
    pub producer_id: Option<String>,
    /// Remember the last trade id per symbol in this file (rewritten every
    /// `--stats-interval` and at exit) and continue from it at start: the
    /// first trade of a restarted producer must follow on, or a `reconnect`
    /// gap notice reports the trades that passed while no producer ran,
    /// instead of losing them silently. After a crash the file may be up to
    /// one interval old, which widens that notice but never hides a loss.
    #[arg(long, env = "PRODUCER_STATE_FILE")]
    pub state_file: Option<PathBuf>,
    /// Write the final run report (JSON) to this file as well as stdout.
    #[arg(long, env = "PRODUCER_REPORT")]
    pub report: Option<PathBuf>,
    /// Kafka compression codec.
    #[arg(long, env = "KAFKA_COMPRESSION", default_value = "lz4")]
    pub kafka_compression: String,
    /// Kafka `linger.ms`: how long librdkafka waits to fill a batch.
    #[arg(long, env = "KAFKA_LINGER_MS", default_value_t = 5)]
    pub kafka_linger_ms: u32,
    /// RabbitMQ connection.
    #[command(flatten)]
    pub amqp: AmqpConfig,
    /// Kafka connection and topic.
    #[command(flatten)]
    pub kafka: KafkaConfig,
}

impl ProducerConfig {
    /// Checks what clap cannot: symbol syntax, sink list, sizes.
    pub fn validate(&self) -> Result<(), String> {
        if self.symbols.is_empty() {
            return Err("--symbols is empty: give at least one BASE-QUOTE symbol".into());
        }
        for s in &self.symbols {
            if !tickbridge_model::tick::is_normalized_symbol(s) {
                return Err(format!(
                    "--symbols: {s:?} is not BASE-QUOTE in upper case (e.g. BTC-USDT)"
                ));
            }
        }
        if self.sinks.is_empty() {
            return Err("--sink: give at least one of rabbitmq, kafka, jsonl".into());
        }
        if self.max_buffer == 0 || self.confirm_window == 0 {
            return Err("--max-buffer and --confirm-window must be at least 1".into());
        }
        if let Some(u) = &self.url {
            let parsed = url::Url::parse(u).map_err(|e| format!("--url {u:?}: {e}"))?;
            if !matches!(parsed.scheme(), "ws" | "wss") {
                return Err(format!("--url {u:?}: scheme must be ws:// or wss://"));
            }
        }
        if let Some(u) = &self.rest_url {
            let parsed = url::Url::parse(u).map_err(|e| format!("--rest-url {u:?}: {e}"))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(format!(
                    "--rest-url {u:?}: scheme must be http:// or https://"
                ));
            }
        }
        Ok(())
    }

    /// Whether a sink is enabled.
    pub fn has_sink(&self, s: SinkKind) -> bool {
        self.sinks.contains(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn flags_are_consistent() {
        ProducerConfig::command().debug_assert();
    }

    #[test]
    fn bad_flags_get_clear_errors() {
        let parse = |args: &[&str]| {
            let mut v = vec!["producer"];
            v.extend_from_slice(args);
            ProducerConfig::try_parse_from(v)
        };
        assert!(parse(&["--exchange", "ftx"]).is_err());
        assert!(parse(&["--sink", "redis"]).is_err());
        let c = parse(&["--symbols", "btcusdt"]).unwrap();
        assert!(c.validate().unwrap_err().contains("BASE-QUOTE"));
        let c = parse(&["--url", "http://x"]).unwrap();
        assert!(c.validate().unwrap_err().contains("ws://"));
        let c = parse(&["--exchange", "kraken", "--sink", "jsonl"]).unwrap();
        assert!(c.validate().is_ok());
    }
}
