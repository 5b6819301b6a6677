//! Counters of one producer run: the stats line, the final report and the
//! Prometheus metrics all read from here.

use crate::config::SinkKind;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use tickbridge_model::report::SinkReport;

/// A counter on a cache line of its own.
///
/// The feed reader, the pipeline and each sink run on different worker
/// threads and each bumps its own counter for every frame, tick or report.
/// Counters that shared a cache line made those threads take the line from
/// one another on every bump (false sharing); padded, each thread keeps its
/// line, and only the stats line's reads every few seconds cross over.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Padded(AtomicU64);

impl Deref for Padded {
    type Target = AtomicU64;

    fn deref(&self) -> &AtomicU64 {
        &self.0
    }
}

/// Per-sink counters, on cache lines of their own (see [`Padded`]).
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct SinkStats {
    /// Messages handed to the broker client.
    pub published: AtomicU64,
    /// Messages the broker confirmed (RabbitMQ ack, Kafka delivery report,
    /// JSONL write).
    pub confirmed: AtomicU64,
    /// Re-publishes after a nack, return, error or reconnect.
    pub retries: AtomicU64,
    /// Given up after every retry; each is covered by a gap notice.
    pub failed: AtomicU64,
    /// Evicted from a full buffer under drop-oldest; covered by a gap notice.
    pub dropped: AtomicU64,
    /// Published but not yet confirmed, right now.
    pub in_flight: AtomicU64,
    /// Connections (re)established to the broker.
    pub connects: AtomicU64,
}

/// Run-wide counters.
#[derive(Debug, Default)]
pub struct Stats {
    /// Frames read from the socket or REST bodies parsed (bumped by the
    /// feed reader for every frame).
    pub frames: Padded,
    /// Trades parsed from the exchange.
    pub trades_in: AtomicU64,
    /// Ticks emitted to the sinks (bumped by the pipeline for every tick).
    pub ticks: Padded,
    /// Gap notices emitted.
    pub gaps: AtomicU64,
    /// Trade ids the gap notices report missing (where known).
    pub gap_trades: AtomicU64,
    /// Exact duplicates dropped (same trade id within the window).
    pub duplicates: AtomicU64,
    /// Polling overlap: trades a poll returned that an earlier poll had.
    pub poll_overlap: AtomicU64,
    /// Trades older than the last seen id but outside the dedup window.
    pub out_of_order: AtomicU64,
    /// Frames that failed to parse, by any reason.
    pub malformed: AtomicU64,
    /// Feed (re)connections after the first.
    pub reconnects: AtomicU64,
    /// Per sink, in `SinkKind` order.
    pub rabbitmq: SinkStats,
    /// Kafka sink.
    pub kafka: SinkStats,
    /// JSON Lines sink.
    pub jsonl: SinkStats,
}

impl Stats {
    /// Counters of one sink.
    pub fn sink(&self, s: SinkKind) -> &SinkStats {
        match s {
            SinkKind::Rabbitmq => &self.rabbitmq,
            SinkKind::Kafka => &self.kafka,
            SinkKind::Jsonl => &self.jsonl,
        }
    }
}

impl SinkStats {
    /// Snapshot for the report (`unconfirmed` comes from the sink task).
    pub fn report(&self, sink: SinkKind, unconfirmed: u64) -> SinkReport {
        SinkReport {
            sink: sink.into(),
            published: self.published.load(Relaxed),
            confirmed: self.confirmed.load(Relaxed),
            retries: self.retries.load(Relaxed),
            failed: self.failed.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            unconfirmed,
            connects: self.connects.load(Relaxed),
        }
    }
}

/// Bumps a counter and the matching Prometheus counter.
pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Relaxed);
}

/// Reads a counter.
pub fn get(counter: &AtomicU64) -> u64 {
    counter.load(Relaxed)
}
