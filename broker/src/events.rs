//! The telemetry events every broker reader shares: a message dead-lettered
//! or redelivered, a session lost and rebuilt, a Kafka commit or receive
//! that failed. The worker, the Kafka consumer, the stream reader and both
//! bridge directions emit the same structs, so the log line, the counter and
//! its labels are defined once.
//!
//! Following Vector's `internal_events`, each `emit()` writes one structured
//! log line and bumps one labelled counter, named
//! `tickbridge_<component>_<event>_total` after its [`Scope`]: the
//! `tickbridge_bridge_*` series carry `direction`, the `tickbridge_consumer_*`
//! series carry `role`. An optional `tally` is the caller's own atomic
//! (the bridge's per-direction stats), bumped in the same call so a printed
//! stats line and `/metrics` never disagree.

use metrics::counter;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;
use tickbridge_model::telemetry::InternalEvent;

/// Who emits an event: names the counter family and its label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// One direction of the bridge, `rabbitmq_to_kafka` or
    /// `kafka_to_rabbitmq` (label `direction`).
    Bridge(&'static str),
    /// A reader, `worker`, `kafka` or `stream` (label `role`).
    Consumer(&'static str),
}

/// The shared events, for [`Scope::metric`].
#[derive(Debug, Clone, Copy)]
enum Kind {
    DeadLettered,
    Redeliveries,
    Reconnects,
    CommitErrors,
    KafkaReceiveErrors,
}

impl Scope {
    /// The counter's name for one event of this scope. Static strings, so
    /// emitting allocates nothing.
    fn metric(self, kind: Kind) -> &'static str {
        macro_rules! names {
            ($($kind:ident => $suffix:literal),* $(,)?) => {
                match (self, kind) {
                    $(
                        (Scope::Bridge(_), Kind::$kind) => concat!("tickbridge_bridge_", $suffix),
                        (Scope::Consumer(_), Kind::$kind) => concat!("tickbridge_consumer_", $suffix),
                    )*
                }
            };
        }
        names! {
            DeadLettered => "dead_lettered_total",
            Redeliveries => "redeliveries_total",
            Reconnects => "reconnects_total",
            CommitErrors => "commit_errors_total",
            KafkaReceiveErrors => "kafka_receive_errors_total",
        }
    }

    /// The label every series of this scope carries.
    fn label(self) -> (&'static str, &'static str) {
        match self {
            Scope::Bridge(direction) => ("direction", direction),
            Scope::Consumer(role) => ("role", role),
        }
    }

    fn count(self, kind: Kind, tally: Option<&AtomicU64>) {
        let (key, value) = self.label();
        counter!(self.metric(kind), key => value).increment(1);
        if let Some(t) = tally {
            t.fetch_add(1, Relaxed);
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Bridge(direction) => write!(f, "bridge {direction}"),
            Scope::Consumer(role) => f.write_str(role),
        }
    }
}

/// A message was parked on a dead-letter destination, with its reason in
/// the `tb-error` header.
pub struct DeadLettered<'a> {
    /// Who parked it.
    pub scope: Scope,
    /// The caller's own count, if it keeps one.
    pub tally: Option<&'a AtomicU64>,
    /// Message id, or the delivery position for an unparsable body.
    pub id: &'a str,
    /// Short label, the counter's `reason`: `decode`, `handler_failed`,
    /// `not_json`, `kafka_rejected`, `unroutable`, ...
    pub kind: &'static str,
    /// Full reason, as carried in `tb-error`.
    pub reason: &'a str,
}

impl InternalEvent for DeadLettered<'_> {
    fn emit(self) {
        tracing::warn!(
            scope = %self.scope,
            id = self.id,
            kind = self.kind,
            reason = self.reason,
            "dead-lettered"
        );
        let (key, value) = self.scope.label();
        counter!(self.scope.metric(Kind::DeadLettered), key => value, "reason" => self.kind)
            .increment(1);
        if let Some(t) = self.tally {
            t.fetch_add(1, Relaxed);
        }
    }
}

/// The broker flagged a delivery as redelivered: a previous consumer died
/// or returned it without handling it.
pub struct Redelivered<'a> {
    /// Who received it.
    pub scope: Scope,
    /// The caller's own count, if it keeps one.
    pub tally: Option<&'a AtomicU64>,
    /// Message id (or delivery position).
    pub id: &'a str,
}

impl InternalEvent for Redelivered<'_> {
    fn emit(self) {
        tracing::debug!(scope = %self.scope, id = self.id, "redelivered message");
        self.scope.count(Kind::Redeliveries, self.tally);
    }
}

/// A session failed and is rebuilt after `delay`, with backoff.
pub struct Reconnecting<'a> {
    /// Whose session.
    pub scope: Scope,
    /// The caller's own count, if it keeps one.
    pub tally: Option<&'a AtomicU64>,
    /// What failed.
    pub error: &'a dyn fmt::Display,
    /// Attempt number since the last healthy session.
    pub attempt: u32,
    /// Wait before the attempt.
    pub delay: Duration,
}

impl InternalEvent for Reconnecting<'_> {
    fn emit(self) {
        tracing::warn!(
            scope = %self.scope,
            error = %self.error,
            attempt = self.attempt,
            delay_ms = self.delay.as_millis() as u64,
            "session lost; reconnecting"
        );
        self.scope.count(Kind::Reconnects, self.tally);
    }
}

/// Committing Kafka offsets failed. Nothing is lost: the same offsets (or
/// later ones) are committed at the next interval, and at worst records are
/// read again after a restart.
pub struct CommitFailed<'a> {
    /// Whose commit.
    pub scope: Scope,
    /// Why.
    pub error: &'a dyn fmt::Display,
    /// `interval`, `revoke` or `shutdown`.
    pub when: &'static str,
}

impl InternalEvent for CommitFailed<'_> {
    fn emit(self) {
        tracing::warn!(scope = %self.scope, error = %self.error, when = self.when, "Kafka offset commit failed");
        let (key, value) = self.scope.label();
        counter!(self.scope.metric(Kind::CommitErrors), key => value, "when" => self.when)
            .increment(1);
    }
}

/// Kafka's consumer returned an error instead of a record. librdkafka
/// retries connection errors by itself; a deleted topic ends the session.
pub struct KafkaReceiveError<'a> {
    /// Whose consumer.
    pub scope: Scope,
    /// The error.
    pub error: &'a rdkafka::error::KafkaError,
}

impl InternalEvent for KafkaReceiveError<'_> {
    fn emit(self) {
        tracing::warn!(scope = %self.scope, error = %self.error, "Kafka receive error");
        self.scope.count(Kind::KafkaReceiveErrors, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each scope names its own family, with the suffix shared, so the two
    /// components' series differ only in their prefix and label.
    #[test]
    fn names_and_labels_follow_the_scope() {
        let bridge = Scope::Bridge("rabbitmq_to_kafka");
        let worker = Scope::Consumer("worker");
        assert_eq!(
            bridge.metric(Kind::Redeliveries),
            "tickbridge_bridge_redeliveries_total"
        );
        assert_eq!(
            worker.metric(Kind::CommitErrors),
            "tickbridge_consumer_commit_errors_total"
        );
        assert_eq!(bridge.label(), ("direction", "rabbitmq_to_kafka"));
        assert_eq!(worker.label(), ("role", "worker"));
        assert_eq!(bridge.to_string(), "bridge rabbitmq_to_kafka");
    }

    /// The caller's tally moves with the counter.
    #[test]
    fn tally_is_bumped_with_the_counter() {
        let tally = AtomicU64::new(0);
        for _ in 0..3 {
            Redelivered {
                scope: Scope::Consumer("stream"),
                tally: Some(&tally),
                id: "x",
            }
            .emit();
        }
        assert_eq!(tally.load(Relaxed), 3);
    }
}
