//! Everything the bridge logs *and* counts, one struct per event.
//!
//! Following Vector's `internal_events`, each `emit()` writes one structured
//! log line, bumps one labelled Prometheus counter (`tickbridge_bridge_*`,
//! label `direction` = `rabbitmq_to_kafka` or `kafka_to_rabbitmq`) and the
//! matching [`DirStats`] atomic, so the stats line and `/metrics` agree.
//! Per-message events log at `trace`/`debug`; what an operator must act on
//! logs at `warn`.

use crate::stats::DirStats;
use metrics::{counter, gauge};
use std::sync::atomic::Ordering::Relaxed;
use tickbridge_model::telemetry::InternalEvent;

/// Metric label of the RabbitMQ → Kafka direction.
pub const R2K: &str = "rabbitmq_to_kafka";
/// Metric label of the Kafka → RabbitMQ direction.
pub const K2R: &str = "kafka_to_rabbitmq";

/// Messages read from the source broker.
pub struct Consumed<'a> {
    /// Direction label.
    pub direction: &'static str,
    /// Counters.
    pub stats: &'a DirStats,
}
impl InternalEvent for Consumed<'_> {
    fn emit(self) {
        self.stats.consumed.fetch_add(1, Relaxed);
        counter!("tickbridge_bridge_consumed_total", "direction" => self.direction).increment(1);
    }
}

/// The destination confirmed `count` messages and their source side was
/// acked (or their offsets stored).
pub struct Bridged<'a> {
    /// Direction label.
    pub direction: &'static str,
    /// Counters.
    pub stats: &'a DirStats,
    /// How many.
    pub count: u64,
}
impl InternalEvent for Bridged<'_> {
    fn emit(self) {
        tracing::trace!(direction = self.direction, count = self.count, "bridged");
        self.stats.bridged.fetch_add(self.count, Relaxed);
        counter!("tickbridge_bridge_bridged_total", "direction" => self.direction)
            .increment(self.count);
    }
}

/// A message carrying this bridge's own origin marker was acknowledged
/// without being bridged back.
pub struct SkippedOwn<'a> {
    /// Direction label.
    pub direction: &'static str,
    /// Counters.
    pub stats: &'a DirStats,
    /// Message id.
    pub id: &'a str,
}
impl InternalEvent for SkippedOwn<'_> {
    fn emit(self) {
        tracing::trace!(
            direction = self.direction,
            id = self.id,
            "skipped own bridged message"
        );
        self.stats.skipped_own.fetch_add(1, Relaxed);
        counter!("tickbridge_bridge_skipped_own_total", "direction" => self.direction).increment(1);
    }
}

/// A message whose id this process had bridged before arrived again.
pub struct Duplicate<'a> {
    /// Direction label.
    pub direction: &'static str,
    /// Counters.
    pub stats: &'a DirStats,
    /// Message id.
    pub id: &'a str,
}
impl InternalEvent for Duplicate<'_> {
    fn emit(self) {
        tracing::debug!(
            direction = self.direction,
            id = self.id,
            "duplicate (bridged again: at least once)"
        );
        self.stats.duplicates.fetch_add(1, Relaxed);
        counter!("tickbridge_bridge_duplicates_total", "direction" => self.direction).increment(1);
    }
}

/// A produce or publish is attempted again.
pub struct Retried<'a> {
    /// Direction label.
    pub direction: &'static str,
    /// Counters.
    pub stats: &'a DirStats,
    /// Message id.
    pub id: &'a str,
    /// Why the last attempt failed.
    pub error: &'a str,
}
impl InternalEvent for Retried<'_> {
    fn emit(self) {
        tracing::warn!(
            direction = self.direction,
            id = self.id,
            error = self.error,
            "retrying"
        );
        self.stats.retries.fetch_add(1, Relaxed);
        counter!("tickbridge_bridge_retries_total", "direction" => self.direction).increment(1);
    }
}

/// Sets the in-flight and lag gauges from the atomics.
pub fn publish_gauges(direction: &'static str, s: &DirStats) {
    gauge!("tickbridge_bridge_in_flight", "direction" => direction)
        .set(s.in_flight.load(Relaxed) as f64);
    gauge!("tickbridge_bridge_lag", "direction" => direction).set(s.lag.load(Relaxed) as f64);
}

/// Describes every series and sets it to zero for `direction`, so
/// `/metrics` lists them from the first scrape (a counter that never moved
/// would otherwise be missing, which dashboards read as "no data").
pub fn register(direction: &'static str) {
    use metrics::{describe_counter, describe_gauge};
    describe_counter!(
        "tickbridge_bridge_consumed_total",
        "Messages read from the source broker."
    );
    describe_counter!(
        "tickbridge_bridge_bridged_total",
        "Messages the destination confirmed (then acked or offset stored)."
    );
    describe_counter!(
        "tickbridge_bridge_skipped_own_total",
        "Messages skipped because they carry this bridge's own tb-origin marker."
    );
    describe_counter!(
        "tickbridge_bridge_dead_lettered_total",
        "Messages parked on the dead-letter or unroutable exchange, by reason."
    );
    describe_counter!(
        "tickbridge_bridge_duplicates_total",
        "Messages whose id this process had already bridged."
    );
    describe_counter!(
        "tickbridge_bridge_redeliveries_total",
        "AMQP deliveries flagged redelivered."
    );
    describe_counter!(
        "tickbridge_bridge_retries_total",
        "Produce or publish attempts repeated after a failure."
    );
    describe_counter!(
        "tickbridge_bridge_reconnects_total",
        "Sessions rebuilt after a broker failure."
    );
    describe_counter!(
        "tickbridge_bridge_commit_errors_total",
        "Failed Kafka offset commits."
    );
    describe_counter!(
        "tickbridge_bridge_kafka_receive_errors_total",
        "Errors Kafka's consumer reported instead of a record."
    );
    describe_gauge!(
        "tickbridge_bridge_in_flight",
        "Messages handed to the destination, not yet confirmed."
    );
    describe_gauge!(
        "tickbridge_bridge_lag",
        "Source backlog: queue depth or summed partition lag (-1 unknown)."
    );
    for name in [
        "tickbridge_bridge_consumed_total",
        "tickbridge_bridge_bridged_total",
        "tickbridge_bridge_skipped_own_total",
        "tickbridge_bridge_duplicates_total",
        "tickbridge_bridge_redeliveries_total",
        "tickbridge_bridge_retries_total",
        "tickbridge_bridge_reconnects_total",
        "tickbridge_bridge_kafka_receive_errors_total",
    ] {
        counter!(name, "direction" => direction).increment(0);
    }
    gauge!("tickbridge_bridge_in_flight", "direction" => direction).set(0.0);
    gauge!("tickbridge_bridge_lag", "direction" => direction).set(-1.0);
}
