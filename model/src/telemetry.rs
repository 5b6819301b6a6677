//! Logs, metrics and the small statistics helpers every binary prints.
//!
//! * [`init_tracing`] sets up `tracing` with text or JSON output, without
//!   lapin's own log lines for conditions tickbridge reports itself
//!   ([`LapinDuplicates`]).
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
///
/// lapin's duplicates of errors tickbridge reports itself are dropped
/// ([`LapinDuplicates`]) unless `RUST_LOG` names lapin (`RUST_LOG=info,lapin=info`
/// shows every line lapin logs).
pub fn init_tracing(format: LogFormat) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::EnvFilter;
    let rust_log = std::env::var("RUST_LOG").ok();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let quiet_lapin = (!rust_log.is_some_and(|v| v.contains("lapin"))).then_some(LapinDuplicates);
    // Colours only on a terminal: escape codes in a log file or a pipe
    // break every grep for `field=value`.
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.finish().with(quiet_lapin).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .finish()
            .with(quiet_lapin)
            .try_init(),
    };
}

/// Drops lapin's own ERROR and WARN lines about conditions that tickbridge
/// reports itself, once and with context, through the error lapin returns
/// to the call that hit them:
///
/// * a channel or connection closed by the broker with `NOT_FOUND` (a queue
///   or exchange that does not exist), `ACCESS_REFUSED` (wrong user or
///   password), `NOT_ALLOWED` (a vhost that does not exist) or
///   `CONNECTION_FORCED` (the broker shutting down or restarting), and the
///   "Connection error" line repeating one of them;
/// * "Exponential backoff attempts exhausted", the end of lapin's recovery
///   after such an error;
/// * "Server returned us a message": every publisher in tickbridge sets
///   `mandatory` and handles the return;
/// * "unexpected connection close-ok received on channel 0", which lapin
///   logs three times (as itself, as an `UNEXPECTED-FRAME` hard error and as
///   a "Connection error") when a close-ok arrives for a connection the
///   broker has already closed, as after a refused login. The connection is
///   over either way, and its cause is the error tickbridge reports.
///
/// Without it, `worker --amqp-url amqp://guest:wrong@...` printed three
/// `ERROR io_loop: lapin::...` lines before its own one-line error. Any
/// other lapin warning or error (an I/O error, a `PRECONDITION_FAILED`, a
/// frame it could not parse) is kept, at its own level.
#[derive(Debug, Clone, Copy, Default)]
pub struct LapinDuplicates;

/// Reply texts of the broker (`NOT_FOUND - no queue 'x' in vhost '/'`)
/// that mean a condition tickbridge reports itself.
const LAPIN_EXPECTED_REPLIES: [&str; 4] = [
    "NOT_FOUND - ",
    "ACCESS_REFUSED - ",
    "NOT_ALLOWED - ",
    "CONNECTION_FORCED - ",
];

/// lapin's text for a close-ok on a connection that is already closed.
const LAPIN_LATE_CLOSE_OK: &str = "unexpected connection close-ok received on channel 0";

impl LapinDuplicates {
    /// Whether `event` is one of lapin's duplicates (see the type's docs).
    pub fn is_duplicate(event: &tracing::Event<'_>) -> bool {
        let meta = event.metadata();
        let target = meta.target();
        if !(target == "lapin" || target.starts_with("lapin::"))
            || *meta.level() > tracing::Level::WARN
        {
            return false;
        }
        let mut fields = EventText::default();
        event.record(&mut fields);
        match fields.message.as_str() {
            "Server returned us a message"
            | "Exponential backoff attempts exhausted, aborting recovery" => true,
            "Channel closed" | "Connection closed" | "Connection error"
                if LAPIN_EXPECTED_REPLIES
                    .iter()
                    .any(|reply| fields.rest.contains(reply)) =>
            {
                true
            }
            "" | "Connection error" => fields.rest.contains(LAPIN_LATE_CLOSE_OK),
            _ => false,
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for LapinDuplicates {
    fn event_enabled(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        !Self::is_duplicate(event)
    }
}

/// An event's message and the text of its other fields.
#[derive(Default)]
struct EventText {
    message: String,
    rest: String,
}

impl tracing::field::Visit for EventText {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.rest, " {}={value:?}", field.name());
        }
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.rest.push(' ');
            self.rest.push_str(value);
        }
    }
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

    /// Captures the messages of the events that reach it.
    struct Capture(std::sync::Arc<Mutex<Vec<String>>>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _ctx: tracing_subscriber::layer::Context<'_, S>,
        ) {
            let mut text = EventText::default();
            event.record(&mut text);
            self.0.lock().unwrap().push(text.message);
        }
    }

    /// lapin's duplicates of expected conditions are dropped; its other
    /// warnings and errors, and anything from other targets, are kept.
    #[test]
    fn lapin_duplicates_are_dropped_and_real_errors_kept() {
        use tracing_subscriber::layer::SubscriberExt;
        let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::registry()
            .with(LapinDuplicates)
            .with(Capture(seen.clone()));
        let not_found = "Close { reply_code: 404, reply_text: ShortString(\"NOT_FOUND - no queue 'x.work' in vhost '/'\"), class_id: 50, method_id: 10 }";
        let refused = "protocol error: AMQP soft error: ACCESS-REFUSED: ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN.";
        let precondition = "Close { reply_code: 406, reply_text: ShortString(\"PRECONDITION_FAILED - unknown delivery tag 7\"), class_id: 60, method_id: 80 }";
        tracing::subscriber::with_default(subscriber, || {
            // TC0: a passive declare of a missing queue (dropped).
            tracing::error!(target: "lapin::channel", channel = 1, method = ?not_found, "Channel closed");
            // TC1: wrong password, as lapin repeats it (dropped).
            tracing::error!(target: "lapin::channels", error = %refused, "Connection error");
            // TC2: the end of recovery after it (dropped).
            tracing::error!(target: "lapin::io_loop", "Exponential backoff attempts exhausted, aborting recovery");
            // TC3: a returned message (dropped: every publisher handles returns).
            tracing::warn!(target: "lapin::returned_messages", message_ = "m", "Server returned us a message");
            // TC4: a real protocol error (kept).
            tracing::error!(target: "lapin::channel", channel = 1, method = ?precondition, "Channel closed");
            // TC5: an I/O error (kept).
            tracing::error!(target: "lapin::io_loop", error = "Connection reset by peer", "error doing IO");
            // TC6: the same text from tickbridge itself (kept).
            tracing::error!(target: "tickbridge_consumer::worker", method = ?not_found, "Channel closed");
            // TC7: lapin at info (kept: only warnings and errors are judged).
            tracing::info!(target: "lapin::channel", method = ?not_found, "Channel closed");
            // TC8-TC10: a late close-ok after a refused login, the three ways
            // lapin logs it (dropped).
            let late =
                "unexpected connection close-ok received on channel 0, was awaiting for None";
            tracing::error!(target: "lapin::channel", error = %late);
            let hard = format!("AMQP hard error: UNEXPECTED-FRAME: {late}");
            tracing::error!(target: "lapin::channel", error = %hard);
            let repeated = format!("protocol error: {hard}");
            tracing::error!(target: "lapin::channels", error = %repeated, "Connection error");
            // TC11: another unexpected frame (kept).
            let other = "unexpected basic qos-ok received on channel 1, was awaiting for None";
            tracing::error!(target: "lapin::channel", error = %other);
        });
        let seen = seen.lock().unwrap().clone();
        assert_eq!(
            seen,
            [
                "Channel closed",
                "error doing IO",
                "Channel closed",
                "Channel closed",
                ""
            ],
            "kept: TC4, TC5, TC6, TC7, TC11"
        );
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
