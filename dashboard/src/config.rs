//! Command-line flags of the dashboard, each with an environment fallback.

use std::net::SocketAddr;
use std::time::Duration;
use tickbridge_broker::kafka::KafkaConfig;
use tickbridge_model::telemetry::LogFormat;

/// Where the dashboard's own consumer group starts when it has no
/// committed offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Start {
    /// The oldest retained message: the totals on the page then count the
    /// whole topic, as the other readers' summaries do.
    Earliest,
    /// Only messages written after the dashboard starts.
    Latest,
}

/// One process to scrape: a name for the page and its `/metrics` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapeTarget {
    /// Label on the page (`worker-1`, `group-archive`).
    pub name: String,
    /// Full URL of its Prometheus text endpoint.
    pub url: String,
}

impl std::str::FromStr for ScrapeTarget {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, url) = s
            .split_once('=')
            .ok_or_else(|| format!("expected name=url, got {s:?}"))?;
        let name = name.trim();
        if name.is_empty() || name.len() > 64 {
            return Err(format!(
                "scrape name must be 1 to 64 characters, got {name:?}"
            ));
        }
        let url = url.trim();
        let parsed = url::Url::parse(url).map_err(|e| format!("bad scrape URL {url:?}: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!("scrape URL {url:?} must be http:// or https://"));
        }
        Ok(ScrapeTarget {
            name: name.to_string(),
            url: url.to_string(),
        })
    }
}

/// Flags of the `dashboard` binary.
#[derive(Debug, Clone, clap::Args)]
pub struct DashboardConfig {
    /// Address the page and `/events` are served on. Loopback by default:
    /// the dashboard has no authentication.
    #[arg(long, env = "DASHBOARD_LISTEN", default_value = "127.0.0.1:8088")]
    pub listen: SocketAddr,
    /// Kafka connection and topic.
    #[command(flatten)]
    pub kafka: KafkaConfig,
    /// The dashboard's own consumer group. A group of its own means it
    /// receives every message (broadcast) and takes nothing from the others.
    #[arg(long, env = "DASHBOARD_GROUP", default_value = "tickbridge-dashboard")]
    pub group: String,
    /// Where the group starts when it has no committed offset.
    #[arg(long, env = "DASHBOARD_START", value_enum, default_value_t = Start::Latest)]
    pub start: Start,
    /// How long to wait for the topic to appear (the producer creates it).
    #[arg(long, env = "DASHBOARD_TOPIC_WAIT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub topic_wait: Duration,
    /// A process to scrape, `name=http://host:port/metrics` (repeatable).
    #[arg(long = "scrape", env = "DASHBOARD_SCRAPE", value_delimiter = ',')]
    pub scrape: Vec<ScrapeTarget>,
    /// How often the scrape targets are read and a status event is pushed.
    #[arg(long, env = "DASHBOARD_SCRAPE_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub scrape_interval: Duration,
    /// Messages read from Kafka are pushed in one event per this interval,
    /// so ten thousand clients cost one write each per interval, not one
    /// per message.
    #[arg(long, env = "DASHBOARD_BATCH_INTERVAL", default_value = "50ms", value_parser = humantime::parse_duration)]
    pub batch_interval: Duration,
    /// Most messages in one event; a fuller interval is split.
    #[arg(long, env = "DASHBOARD_BATCH_MAX", default_value_t = 500)]
    pub batch_max: usize,
    /// Clients served at once; the next one gets 503 with `Retry-After`.
    #[arg(long, env = "DASHBOARD_MAX_CLIENTS", default_value_t = 10_000)]
    pub max_clients: usize,
    /// Events queued for one client. A client that stops reading fills it
    /// and is disconnected: it never slows the others and never makes the
    /// dashboard hold more than this many events for it.
    #[arg(long, env = "DASHBOARD_CLIENT_BUFFER", default_value_t = 64)]
    pub client_buffer: usize,
    /// Recent events kept to resume a client without reading Kafka again.
    #[arg(long, env = "DASHBOARD_RECENT", default_value_t = 256)]
    pub recent: usize,
    /// Seconds a refused client is told to wait (`Retry-After`).
    #[arg(long, env = "DASHBOARD_RETRY_AFTER", default_value_t = 2)]
    pub retry_after: u32,
    /// Serve the dashboard's own Prometheus metrics on this address.
    #[arg(long, env = "DASHBOARD_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// At exit, write the totals the page showed as one JSON object here.
    #[arg(long, env = "DASHBOARD_SUMMARY_JSON")]
    pub summary_json: Option<std::path::PathBuf>,
    /// Log format on stderr.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl DashboardConfig {
    /// Settings for tests and benchmarks: a local broker and topic, a
    /// private group, port 0.
    pub fn local(brokers: &str, topic: &str, group: &str) -> Self {
        Self {
            listen: "127.0.0.1:0".parse().expect("static address"),
            kafka: KafkaConfig::local(brokers, topic, 3),
            group: group.to_string(),
            start: Start::Earliest,
            topic_wait: Duration::from_secs(30),
            scrape: Vec::new(),
            scrape_interval: Duration::from_secs(1),
            batch_interval: Duration::from_millis(50),
            batch_max: 500,
            max_clients: 10_000,
            client_buffer: 64,
            recent: 256,
            retry_after: 2,
            metrics_addr: None,
            summary_json: None,
            log_format: LogFormat::Text,
        }
    }

    /// Rejects values that cannot work, with the reason.
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |s: String| Err(crate::Error::Config(s));
        if self.client_buffer < 2 {
            return bad("--client-buffer must be at least 2".into());
        }
        if self.max_clients == 0 {
            return bad("--max-clients must be at least 1".into());
        }
        if self.batch_max == 0 {
            return bad("--batch-max must be at least 1".into());
        }
        if self.batch_interval < Duration::from_millis(1)
            || self.batch_interval > Duration::from_secs(10)
        {
            return bad("--batch-interval must be between 1ms and 10s".into());
        }
        if self.scrape_interval < Duration::from_millis(100) {
            return bad("--scrape-interval must be at least 100ms".into());
        }
        let mut names = std::collections::HashSet::new();
        for t in &self.scrape {
            if !names.insert(&t.name) {
                return bad(format!("--scrape name {:?} given twice", t.name));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrape_targets() {
        struct TestCase {
            input: &'static str,
            expected: Result<(&'static str, &'static str), &'static str>,
        }
        let cases = [
            // TC0: name and URL
            TestCase {
                input: "worker-1=http://127.0.0.1:9101/metrics",
                expected: Ok(("worker-1", "http://127.0.0.1:9101/metrics")),
            },
            // TC1: no name
            TestCase {
                input: "http://127.0.0.1:9101/metrics",
                expected: Err("expected name=url"),
            },
            // TC2: not HTTP
            TestCase {
                input: "w=ftp://x/metrics",
                expected: Err("http://"),
            },
            // TC3: empty name
            TestCase {
                input: "=http://x/metrics",
                expected: Err("1 to 64"),
            },
        ];
        for (i, tc) in cases.iter().enumerate() {
            match (tc.input.parse::<ScrapeTarget>(), &tc.expected) {
                (Ok(t), Ok((n, u))) => {
                    assert_eq!((t.name.as_str(), t.url.as_str()), (*n, *u), "TC{i}")
                }
                (Err(e), Err(w)) => assert!(e.contains(w), "TC{i}: {e}"),
                (got, _) => panic!("TC{i}: {got:?}"),
            }
        }
    }
}
