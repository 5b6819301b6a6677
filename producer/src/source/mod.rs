//! Feed readers: a WebSocket streamer and a REST poller. Both turn the
//! exchange's data into [`SourceEvent`]s on a bounded channel, so a slow
//! pipeline slows the reader instead of growing memory.

use crate::exchange::RawTrade;
use chrono::{DateTime, Utc};

pub mod poll;
pub mod ws;

/// What a reader tells the pipeline.
#[derive(Debug)]
pub enum SourceEvent {
    /// Trades from one frame or one poll response.
    Trades {
        /// Parsed trades, in the order the exchange sent them.
        trades: Vec<RawTrade>,
        /// When the frame was read.
        received_ts: DateTime<Utc>,
    },
    /// A connection was established and subscribed.
    Connected {
        /// Reconnect attempt number (0 for the first connection).
        attempt: u32,
    },
    /// The connection was lost; continuity must be re-proven.
    Disconnected {
        /// Why.
        reason: String,
    },
}
