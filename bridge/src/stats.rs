//! Counters of one bridge direction, the stats line, and the duplicate
//! counter's bounded id window.
//!
//! The atomics here are what the stats line, [`Summary`] and tests read; the
//! same numbers go to Prometheus through [`crate::events`], which bumps both
//! in one `emit()` so the log, the summary and `/metrics` never disagree.

use serde::Serialize;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

/// Live counters of one direction.
#[derive(Debug, Default)]
pub struct DirStats {
    /// Messages read from the source broker (deliveries or records).
    pub consumed: AtomicU64,
    /// Messages the destination confirmed (Kafka delivery report, AMQP
    /// publisher confirm) and that were then acked or had their offset stored.
    pub bridged: AtomicU64,
    /// Messages skipped because they carry this bridge's own origin marker
    /// (bridged the other way already): the ping-pong guard.
    pub skipped_own: AtomicU64,
    /// Messages parked on the dead-letter exchange with a reason.
    pub dead_lettered: AtomicU64,
    /// Messages whose id was already bridged by this process (redeliveries
    /// after a reconnect, re-reads after a rebalance).
    pub duplicates: AtomicU64,
    /// AMQP deliveries flagged `redelivered` by the broker.
    pub redelivered: AtomicU64,
    /// Produce or publish attempts repeated after a failure.
    pub retries: AtomicU64,
    /// Sessions rebuilt after a broker failure.
    pub reconnects: AtomicU64,
    /// Messages handed to the destination and not yet confirmed.
    pub in_flight: AtomicU64,
    /// Source backlog: queue depth, or summed partition lag; -1 when unknown.
    pub lag: AtomicI64,
}

impl DirStats {
    /// A fresh set with lag unknown.
    pub fn new() -> Self {
        let s = Self::default();
        s.lag.store(-1, Relaxed);
        s
    }

    /// Copy of the counters.
    pub fn snapshot(&self) -> DirSummary {
        DirSummary {
            consumed: self.consumed.load(Relaxed),
            bridged: self.bridged.load(Relaxed),
            skipped_own: self.skipped_own.load(Relaxed),
            dead_lettered: self.dead_lettered.load(Relaxed),
            duplicates: self.duplicates.load(Relaxed),
            redelivered: self.redelivered.load(Relaxed),
            retries: self.retries.load(Relaxed),
            reconnects: self.reconnects.load(Relaxed),
            in_flight: self.in_flight.load(Relaxed),
            lag: self.lag.load(Relaxed),
        }
    }
}

/// Counters of both directions, shared by every task of one `run`.
#[derive(Debug)]
pub struct Stats {
    /// RabbitMQ → Kafka.
    pub r2k: DirStats,
    /// Kafka → RabbitMQ.
    pub k2r: DirStats,
    started: Instant,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            r2k: DirStats::new(),
            k2r: DirStats::new(),
            started: Instant::now(),
        }
    }
}

impl Stats {
    /// Snapshot of both directions.
    pub fn summary(&self) -> Summary {
        Summary {
            r2k: self.r2k.snapshot(),
            k2r: self.k2r.snapshot(),
            elapsed_secs: self.started.elapsed().as_secs_f64(),
        }
    }
}

/// Plain copy of one direction's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[allow(missing_docs)]
pub struct DirSummary {
    pub consumed: u64,
    pub bridged: u64,
    pub skipped_own: u64,
    pub dead_lettered: u64,
    pub duplicates: u64,
    pub redelivered: u64,
    pub retries: u64,
    pub reconnects: u64,
    pub in_flight: u64,
    pub lag: i64,
}

/// What `run` returns: the final counters.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// RabbitMQ → Kafka.
    pub r2k: DirSummary,
    /// Kafka → RabbitMQ.
    pub k2r: DirSummary,
    /// Seconds since the bridge started.
    pub elapsed_secs: f64,
}

/// Logs one stats line for a direction, with the rate since the last line.
pub struct StatsLine {
    direction: &'static str,
    last: DirSummary,
    at: Instant,
}

impl StatsLine {
    /// Starts measuring rates now.
    pub fn new(direction: &'static str) -> Self {
        Self {
            direction,
            last: DirSummary::default(),
            at: Instant::now(),
        }
    }

    /// Logs the line and remembers the counters for the next rate.
    pub fn log(&mut self, s: &DirStats) {
        let now = s.snapshot();
        let secs = self.at.elapsed().as_secs_f64().max(1e-3);
        let rate = (now.bridged - self.last.bridged.min(now.bridged)) as f64 / secs;
        tracing::info!(
            direction = self.direction,
            bridged = now.bridged,
            rate = format!("{rate:.0}/s"),
            in_flight = now.in_flight,
            lag = now.lag,
            skipped_own = now.skipped_own,
            dead_lettered = now.dead_lettered,
            duplicates = now.duplicates,
            redelivered = now.redelivered,
            retries = now.retries,
            reconnects = now.reconnects,
            "stats"
        );
        self.last = now;
        self.at = Instant::now();
    }
}
