//! Flags both binaries share: where ticks go, how stats are reported, when
//! to stop, and the rolling-analytics thresholds.
//!
//! Broker-specific settings live beside the code that uses them
//! ([`crate::worker::WorkerConfig`], [`crate::consumer::ConsumerConfig`]);
//! this struct is flattened into both so the two binaries never drift apart.

use rust_decimal::Decimal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tickbridge_model::telemetry::LogFormat;

/// Output, statistics, analytics and lifecycle flags common to `worker` and
/// `consumer`.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// Write every handled message as one JSON line to this file instead of
    /// printing ticks to stdout. The line is written before the message is
    /// acked or its offset stored, so the file is exactly what was handled,
    /// and several workers' files can be compared for overlap.
    #[arg(long, env = "CONSUMER_JSONL")]
    pub jsonl: Option<PathBuf>,
    /// Do not print ticks at all (stats lines and alerts are still logged).
    /// For benchmarks and busy feeds where stdout would be the bottleneck.
    #[arg(long, short = 'q', env = "CONSUMER_QUIET")]
    pub quiet: bool,
    /// How often to log the stats line (rate, latency percentiles, gaps,
    /// duplicates, lag or queue depth). A final line is always logged at exit.
    #[arg(long, env = "CONSUMER_STATS_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub stats_interval: Duration,
    /// At exit, write the final statistics as one JSON object to this file,
    /// so a script can aggregate runs without scraping logs.
    #[arg(long, env = "CONSUMER_SUMMARY_JSON")]
    pub summary_json: Option<PathBuf>,
    /// Serve Prometheus metrics on this address (`127.0.0.1:9101`) at `/metrics`.
    #[arg(long, env = "CONSUMER_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Window of the per-symbol rolling mean and VWAP, in event time
    /// (`exchange_ts`), so a replay computes the same numbers as the live run.
    #[arg(long, env = "CONSUMER_WINDOW", default_value = "60s", value_parser = humantime::parse_duration)]
    pub window: Duration,
    /// Most trades the rolling window keeps per symbol, whatever their
    /// timestamps. Event time does not bound memory: a burst (or the
    /// simulator at full speed, 1 µs apart) fits millions of trades in 60 s.
    /// When the cap is hit the mean and VWAP cover the last this-many trades.
    #[arg(long, env = "CONSUMER_WINDOW_MAX_TRADES", default_value_t = crate::analytics::DEFAULT_MAX_TRADES)]
    pub window_max_trades: usize,
    /// Log and count an alert when a symbol's trade price crosses above this.
    /// Edge-triggered: one alert per crossing, not one per tick.
    #[arg(long, env = "CONSUMER_ALERT_ABOVE")]
    pub alert_above: Option<Decimal>,
    /// Log and count an alert when a symbol's trade price crosses below this.
    #[arg(long, env = "CONSUMER_ALERT_BELOW")]
    pub alert_below: Option<Decimal>,
    /// Exit by itself once no message has arrived for this long, after at
    /// least one did (or after twice this long if none ever did). Lets a
    /// script drain a queue or replay a topic and then read the summary.
    #[arg(long, env = "CONSUMER_EXIT_WHEN_IDLE", value_parser = humantime::parse_duration)]
    pub exit_when_idle: Option<Duration>,
    /// Name of this instance in logs, JSON lines, the AMQP consumer tag and
    /// the Kafka client id. Defaults to `<binary>-<pid>`.
    #[arg(long, env = "CONSUMER_NAME")]
    pub name: Option<String>,
    /// Log format on stderr.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Ids remembered to count duplicates. Bounded so a long run cannot grow
    /// memory without limit; a duplicate older than this many messages goes
    /// uncounted. 0 turns duplicate counting off.
    #[arg(long, env = "CONSUMER_DEDUP_WINDOW", default_value_t = 1_000_000)]
    pub dedup_window: usize,
}

impl CommonArgs {
    /// Defaults for tests and benches: quiet, no files, stats every 5 s.
    pub fn quiet() -> Self {
        Self {
            jsonl: None,
            quiet: true,
            stats_interval: Duration::from_secs(5),
            summary_json: None,
            metrics_addr: None,
            window: Duration::from_secs(60),
            window_max_trades: crate::analytics::DEFAULT_MAX_TRADES,
            alert_above: None,
            alert_below: None,
            exit_when_idle: None,
            name: None,
            log_format: LogFormat::Text,
            dedup_window: 1_000_000,
        }
    }

    /// The instance name, or `<binary>-<pid>-<random>` when none was given;
    /// the random part keeps in-process test instances apart.
    pub fn instance_name(&self, binary: &str) -> String {
        self.name.clone().unwrap_or_else(|| {
            format!(
                "{binary}-{}-{:04x}",
                std::process::id(),
                rand::random::<u16>()
            )
        })
    }
}
