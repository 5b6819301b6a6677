//! Feed readers: a WebSocket streamer and a REST poller. Both turn the
//! exchange's data into [`SourceEvent`]s on a bounded channel, so a slow
//! pipeline slows the reader instead of growing memory.

use crate::exchange::RawTrade;
use chrono::{DateTime, Utc};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub mod poll;
pub mod ws;

/// What both readers work with: the exchange adapter they parse with, the
/// channel and the recycled vectors they hand trades over in, the counters
/// they bump, and the shutdown signal they stop on.
pub struct Context {
    /// Parses frames and REST bodies; knows URLs and subscriptions.
    pub adapter: std::sync::Arc<dyn crate::exchange::Exchange>,
    /// To the pipeline; bounded, so a slow pipeline slows the reader.
    pub tx: tokio::sync::mpsc::Sender<SourceEvent>,
    /// Trade vectors to fill and hand over.
    pub pool: BatchPool,
    /// The run's counters (frames, reconnects, rejects, ...).
    pub stats: Arc<crate::stats::Stats>,
    /// Stops the reader.
    pub shutdown: tickbridge_model::Shutdown,
}

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

/// Trade vectors handed back by the pipeline for the reader (WebSocket or
/// poller) to fill again.
///
/// At full speed the reader hands over a batch every few hundred
/// microseconds. A fresh vector per batch is a multi-KiB allocation, and in
/// glibc each one also makes the allocator consolidate every small chunk
/// freed since the last; recycling a handful of vectors avoids both.
#[derive(Debug, Clone, Default)]
pub struct BatchPool {
    free: Arc<Mutex<Vec<Vec<RawTrade>>>>,
}

impl BatchPool {
    /// Vectors kept for reuse; more than the channel can hold in flight is
    /// never needed.
    const KEEP: usize = 32;
    /// Capacity of a new vector: a full WebSocket read batch of single-trade
    /// frames.
    pub const BATCH: usize = 256;

    /// An empty vector, recycled when one is available.
    pub fn take(&self) -> Vec<RawTrade> {
        self.lock()
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(Self::BATCH))
    }

    /// Returns a vector for reuse (emptied here).
    pub fn give(&self, mut v: Vec<RawTrade>) {
        v.clear();
        let mut free = self.lock();
        if free.len() < Self::KEEP {
            free.push(v);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Vec<RawTrade>>> {
        // The vectors hold no invariant a panicking holder could break.
        self.free.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Startup check of the feed URL: its host must resolve. A name that does
/// not resolve is a typo or a missing network, which retrying will not fix,
/// so the producer exits with one line naming the flag. A host that
/// resolves but refuses the connection is *not* checked here: exchanges
/// drop and refuse connections routinely, so the reader retries that with
/// backoff, logging every attempt.
pub async fn check_feed_host(flag: &str, raw: &str) -> Result<(), String> {
    let url = url::Url::parse(raw).map_err(|e| format!("{flag} {raw:?}: {e}"))?;
    let host = url
        .host_str()
        .ok_or_else(|| format!("{flag} {raw:?}: no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = url
        .port_or_known_default()
        .or(match url.scheme() {
            "ws" => Some(80),
            "wss" => Some(443),
            _ => None,
        })
        .ok_or_else(|| format!("{flag} {raw:?}: no port"))?;
    let lookup = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::lookup_host((host.as_str(), port)),
    )
    .await
    .map(|r| r.map(|addrs| addrs.count()));
    match lookup {
        Ok(Ok(n)) if n > 0 => Ok(()),
        Ok(Ok(_)) => Err(format!("{flag}: host {host:?} has no address")),
        Ok(Err(e)) => Err(format!(
            "{flag}: cannot resolve host {host:?}: {e} (check the URL, or the network/DNS)"
        )),
        Err(_) => Err(format!(
            "{flag}: resolving host {host:?} took over 10s (check the network/DNS)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn feed_host_must_resolve() {
        assert!(check_feed_host("--url", "ws://127.0.0.1:1").await.is_ok());
        assert!(check_feed_host("--url", "ws://localhost:9").await.is_ok());
        let e = check_feed_host("--url", "wss://no-such-host.invalid/ws")
            .await
            .unwrap_err();
        assert!(
            e.contains("cannot resolve host") && e.contains("--url"),
            "{e}"
        );
    }
}
