//! Sinks: RabbitMQ, Kafka and JSON Lines. Each runs as its own task, reading
//! its own [`Buffer`](crate::buffer::Buffer), and counts a message delivered
//! only when its broker confirmed it.

use crate::buffer::Buffer;
use crate::pipeline::{sink_gap, Outgoing};
use crate::stats::{add, SinkStats};
use std::sync::Arc;
use tickbridge_model::tick::GapReason;

pub mod amqp;
pub mod jsonl;
pub mod kafka;

/// A message waiting for (re)publication, with its failed-attempt count.
#[derive(Debug, Clone)]
pub struct Pending {
    /// The message.
    pub msg: Arc<Outgoing>,
    /// Times the broker refused it (nack, return, permanent error).
    pub attempts: u32,
}

impl Pending {
    /// First attempt.
    pub fn new(msg: Arc<Outgoing>) -> Self {
        Self { msg, attempts: 0 }
    }
}

/// Turns the buffer's eviction records into gap notices, to be published
/// ahead of the next batch.
pub fn dropped_notices(buffer: &Buffer, stats: &SinkStats, sink: &'static str) -> Vec<Pending> {
    buffer
        .take_dropped()
        .into_iter()
        .filter_map(|d| {
            add(&stats.dropped, d.count);
            metrics::counter!("tickbridge_producer_dropped_total", "sink" => sink)
                .increment(d.count);
            tracing::warn!(
                sink, symbol = %d.sample.view().symbol(), count = d.count,
                first = d.first_trade_id, last = d.last_trade_id,
                "buffer full under drop-oldest: ticks evicted, publishing gap notice"
            );
            sink_gap(
                &d.sample,
                GapReason::BufferOverflow,
                d.first_trade_id,
                d.last_trade_id,
                d.count,
                d.last_seq,
            )
            .map(Pending::new)
        })
        .collect()
}

/// A message was refused after every retry: count it and build the gap
/// notice that replaces it. Gap notices themselves cannot be replaced; their
/// loss is logged as an error.
pub fn give_up(p: &Pending, stats: &SinkStats, sink: &'static str, why: &str) -> Option<Pending> {
    add(&stats.failed, 1);
    metrics::counter!("tickbridge_producer_publish_failed_total", "sink" => sink).increment(1);
    match p.msg.tick() {
        Some(t) => {
            tracing::error!(sink, id = %t.id, attempts = p.attempts, error = why, "message refused after every retry; publishing gap notice");
            sink_gap(
                &p.msg,
                GapReason::PublishFailed,
                t.trade_id,
                t.trade_id,
                1,
                t.seq,
            )
            .map(Pending::new)
        }
        None => {
            tracing::error!(sink, id = %p.msg.view().id(), error = why, "gap notice refused after every retry");
            None
        }
    }
}
