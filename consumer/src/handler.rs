//! The work done on each message, identical in both binaries: optionally
//! fail on purpose, write the message out, then measure it.
//!
//! "Handled" means exactly "written to the output". Readers ack (worker) or
//! store the offset (consumer) only after [`Handler::handle`] returned `Ok`,
//! so a crash between the two repeats a message but never loses one.

use crate::analytics::Analytics;
use crate::config::CommonArgs;
use crate::events::{HandlerFailed, MessageHandled};
use crate::output::{Meta, Output};
use crate::stats::Stats;
use crate::Error;
use chrono::Utc;
use tickbridge_model::telemetry::InternalEvent;
use tickbridge_model::tick::{GAP_SCHEMA, TICK_SCHEMA};
use tickbridge_model::Message;

/// Failures on purpose, so retries and the DLQ can be watched in the
/// management UI and tested.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FailConfig {
    /// Make every Nth handler call fail (counted per worker, retries
    /// included). A retried message usually succeeds on its next attempt.
    #[arg(long, env = "WORKER_FAIL_EVERY", value_parser = clap::value_parser!(u64).range(1..))]
    pub fail_every: Option<u64>,
    /// Make each handler call fail with this probability (0.0 to 1.0).
    /// `1.0` sends every message to the DLQ after its retries.
    #[arg(long, env = "WORKER_FAIL_RATE", value_parser = parse_probability)]
    pub fail_rate: Option<f64>,
}

fn parse_probability(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!(
            "expected a probability between 0.0 and 1.0, got {s:?}"
        )),
    }
}

/// Why handling failed.
#[derive(Debug)]
pub enum HandleError {
    /// This message failed; it may be retried. Carries the reason.
    Message(String),
    /// The handler itself is broken (output not writable): stop, and let
    /// the broker keep the message for a healthier reader.
    Fatal(Error),
}

/// Decoded message in, output line and statistics out.
pub struct Handler {
    role: &'static str,
    output: Output,
    /// Statistics; the reader loops add what only they know (decode
    /// errors, retries, dead letters, lag).
    pub stats: Stats,
    analytics: Analytics,
    fail: FailConfig,
    calls: u64,
    /// Handled counters for ticks and gap notices, registered once.
    handled_ticks: metrics::Counter,
    handled_gaps: metrics::Counter,
}

impl Handler {
    /// Builds the handler the flags describe.
    pub fn new(
        role: &'static str,
        via: &'static str,
        name: &str,
        common: &CommonArgs,
        fail: FailConfig,
    ) -> crate::Result<Self> {
        Ok(Self {
            role,
            output: Output::open(common.jsonl.as_deref(), common.quiet, name, via)?,
            stats: Stats::new(role, name, common.dedup_window),
            analytics: Analytics::new(common.window, common.alert_above, common.alert_below)
                .with_max_trades(common.window_max_trades),
            fail,
            calls: 0,
            handled_ticks: MessageHandled::counter(role, TICK_SCHEMA),
            handled_gaps: MessageHandled::counter(role, GAP_SCHEMA),
        })
    }

    /// Handles one decoded message.
    pub fn handle(&mut self, msg: &Message, meta: &Meta) -> Result<(), HandleError> {
        self.calls += 1;
        let id = msg.as_ref().id();
        if let Some(reason) = self.injected_failure() {
            self.stats.failure();
            HandlerFailed {
                role: self.role,
                id,
                attempt: meta.retries + 1,
                error: &reason,
            }
            .emit();
            return Err(HandleError::Message(reason));
        }
        let now = Utc::now();
        self.output
            .write(msg, meta, now)
            .map_err(HandleError::Fatal)?;
        self.stats.observe(msg, now);
        if let Message::Tick(t) = msg {
            let (_, alerts) = self.analytics.update(t);
            for _ in 0..alerts {
                self.stats.alert();
            }
        }
        let (schema, counter) = match msg {
            Message::Tick(_) => (TICK_SCHEMA, &self.handled_ticks),
            Message::Gap(_) => (GAP_SCHEMA, &self.handled_gaps),
        };
        MessageHandled {
            schema,
            id,
            counter,
        }
        .emit();
        Ok(())
    }

    fn injected_failure(&self) -> Option<String> {
        if let Some(n) = self.fail.fail_every {
            if self.calls.is_multiple_of(n) {
                return Some(format!(
                    "injected failure (--fail-every {n}, call {})",
                    self.calls
                ));
            }
        }
        if let Some(p) = self.fail.fail_rate {
            if p > 0.0 && rand::random::<f64>() < p {
                return Some(format!("injected failure (--fail-rate {p})"));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickbridge_testkit::loadgen::synthetic_ticks;

    #[test]
    fn fail_every_fails_exactly_every_nth_call() {
        let fail = FailConfig {
            fail_every: Some(3),
            fail_rate: None,
        };
        let mut h =
            Handler::new("worker", "rabbitmq-work", "t", &CommonArgs::quiet(), fail).unwrap();
        let msgs: Vec<Message> = synthetic_ticks("p", &["BTC-USD"], 9)
            .into_iter()
            .map(Message::Tick)
            .collect();
        let failed: Vec<usize> = msgs
            .iter()
            .enumerate()
            .filter(|(_, m)| h.handle(m, &Meta::default()).is_err())
            .map(|(i, _)| i)
            .collect();
        assert_eq!(failed, vec![2, 5, 8]);
        assert_eq!(h.stats.handled(), 6);
        assert!(parse_probability("1.5").is_err());
        assert!(parse_probability("0.25").is_ok());
    }
}
