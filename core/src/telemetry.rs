//! Logs, metrics and the small statistics helpers every binary prints.
//!
//! * [`init_tracing`] sets up `tracing` with text or JSON output.
//! * [`install_metrics`] installs the Prometheus recorder and, when given an
//!   address, serves `/metrics` on it.
//! * [`InternalEvent`] is the pattern for anything worth both a log line and a
//!   counter: one struct, one `emit()`, so the two never drift apart.
//! * [`mask_url`] hides credentials before a URL reaches a log.

use crate::error::{Error, Result};
use clap::ValueEnum;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::net::SocketAddr;
use std::sync::Mutex;

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable, one line per event.
    #[default]
    Text,
    /// One JSON object per event, for log shippers.
    Json,
}

/// Installs the global `tracing` subscriber. `RUST_LOG` overrides the default
/// `info` filter. Safe to call more than once (later calls are no-ops), so
/// tests can call it freely.
pub fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: escape codes in a log file or a pipe
    // break every grep for `field=value`.
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// The subscriber for tests: like [`init_tracing`] with text output, but
/// written through libtest's capture, so a passing test prints nothing and a
/// failing one prints its own logs next to its panic. Threads a test spawns
/// (a tokio runtime's workers) inherit the capture; output from threads
/// libtest does not know of (librdkafka's) still reaches stderr.
pub fn init_test_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_test_writer()
        .try_init();
}

/// Installs the Prometheus recorder once per process and, if `addr` is set,
/// serves `/metrics` there. Returns a handle that renders the same text, for
/// tests and end-of-run summaries.
///
/// Concurrent callers (several consumers started at once in one process) are
/// serialised: the first installs, every later one gets the same handle.
pub fn install_metrics(addr: Option<SocketAddr>) -> Result<PrometheusHandle> {
    static HANDLE: Mutex<Option<PrometheusHandle>> = Mutex::new(None);
    let mut slot = HANDLE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(h) = slot.as_ref() {
        return Ok(h.clone());
    }
    let handle = match addr {
        Some(addr) => {
            let (recorder, exporter) = PrometheusBuilder::new()
                .with_http_listener(addr)
                .build()
                .map_err(|e| Error::Config(format!("metrics listener on {addr}: {e}")))?;
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder)
                .map_err(|e| Error::Config(format!("metrics recorder: {e}")))?;
            tokio::spawn(async move {
                if let Err(e) = exporter.await {
                    tracing::error!(error = ?e, %addr, "metrics endpoint stopped");
                }
            });
            tracing::info!(%addr, "serving Prometheus metrics at http://{addr}/metrics");
            handle
        }
        None => PrometheusBuilder::new()
            .install_recorder()
            .map_err(|e| Error::Config(format!("metrics recorder: {e}")))?,
    };
    *slot = Some(handle.clone());
    Ok(handle)
}

/// Something that happened inside tickbridge that deserves both a log line
/// and a metric. Implementors log with structured fields and bump a counter
/// in the same `emit`.
pub trait InternalEvent {
    /// Logs and counts the event.
    fn emit(self);
}

/// Replaces the password in a URL (`amqp://user:secret@host`) with `***`.
/// Strings that do not parse as URLs are returned with anything between `:`
/// and `@` after the scheme masked, so nothing secret slips through.
pub fn mask_url(raw: &str) -> String {
    if let Ok(mut u) = url::Url::parse(raw) {
        if u.password().is_some() {
            let _ = u.set_password(Some("***"));
        }
        return u.to_string();
    }
    match (raw.find("://"), raw.rfind('@')) {
        (Some(s), Some(at)) if at > s + 3 => {
            let creds = &raw[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &raw[..s + 3], &creds[..c], &raw[at..]),
                None => raw.to_string(),
            }
        }
        _ => raw.to_string(),
    }
}

/// Latency recorder with percentiles, in microseconds.
#[derive(Debug, Clone)]
pub struct LatencyStats {
    hist: hdrhistogram::Histogram<u64>,
}

impl Default for LatencyStats {
    fn default() -> Self {
        Self {
            // 1 µs .. 1 h, 3 significant digits.
            hist: hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .expect("static histogram bounds are valid"),
        }
    }
}

impl LatencyStats {
    /// Records one sample; negative values (clock skew) count as 0.
    pub fn record_micros(&mut self, micros: i64) {
        let v = micros.clamp(1, 3_600_000_000) as u64;
        let _ = self.hist.record(v);
    }
    /// Number of samples.
    pub fn len(&self) -> u64 {
        self.hist.len()
    }
    /// No samples yet.
    pub fn is_empty(&self) -> bool {
        self.hist.is_empty()
    }
    /// Percentile in milliseconds (`q` in 0..=100).
    pub fn percentile_ms(&self, q: f64) -> f64 {
        if self.hist.is_empty() {
            return 0.0;
        }
        self.hist.value_at_percentile(q) as f64 / 1000.0
    }
    /// Maximum in milliseconds.
    pub fn max_ms(&self) -> f64 {
        self.hist.max() as f64 / 1000.0
    }
    /// Merges another recorder into this one.
    pub fn merge(&mut self, other: &LatencyStats) {
        let _ = self.hist.add(&other.hist);
    }
    /// `p50=.. p90=.. p99=.. max=..` in ms, for stats lines.
    pub fn summary(&self) -> String {
        format!(
            "p50={:.2}ms p90={:.2}ms p99={:.2}ms max={:.2}ms",
            self.percentile_ms(50.0),
            self.percentile_ms(90.0),
            self.percentile_ms(99.0),
            self.max_ms()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_passwords() {
        let cases = [
            (
                "amqp://guest:guest@127.0.0.1:5672/%2f",
                "amqp://guest:***@127.0.0.1:5672/%2f",
            ),
            ("amqps://u:p%40ss@host/vh", "amqps://u:***@host/vh"),
            ("amqp://127.0.0.1:5672", "amqp://127.0.0.1:5672"),
            ("not a url://user:pw@x", "not a url://user:***@x"),
        ];
        for (input, want) in cases {
            let got = mask_url(input);
            assert_eq!(got, want, "{input}");
            assert!(!got.contains("guest:guest"));
        }
    }

    /// Several components starting at once in one process (a test that
    /// spawns four consumers) all get the recorder; none sees "already
    /// initialised".
    #[test]
    fn concurrent_installs_share_one_recorder() {
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let b = barrier.clone();
                std::thread::spawn(move || {
                    b.wait();
                    install_metrics(None).map(|_| ())
                })
            })
            .collect();
        for t in threads {
            t.join().expect("no panic").expect("installed or shared");
        }
    }

    #[test]
    fn percentiles() {
        let mut l = LatencyStats::default();
        for i in 1..=1000 {
            l.record_micros(i * 1000);
        }
        assert!((l.percentile_ms(50.0) - 500.0).abs() < 2.0);
        assert!((l.percentile_ms(99.0) - 990.0).abs() < 2.0);
        l.record_micros(-5);
        assert_eq!(l.len(), 1001);
    }
}
