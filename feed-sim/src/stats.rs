//! What the simulator sent, kept so a test (or the final report) can compare
//! it with what arrived downstream.
//!
//! Connections count locally and merge into [`SimStats`] once per flushed
//! batch, so the shared lock is taken a few times per socket write, not once
//! per frame. The optional sent log gets one JSON line per trade frame.

use serde::Serialize;
use std::io::Write;
use std::sync::Mutex;
use tickbridge_model::Source;

/// An inclusive range of trade ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct IdRange {
    /// First id, inclusive.
    pub from: u64,
    /// Last id, inclusive.
    pub to: u64,
}

impl IdRange {
    /// Number of ids in the range.
    pub fn len(&self) -> u64 {
        self.to - self.from + 1
    }

    /// Never true; ranges hold at least one id.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// A set of ids stored as sorted, disjoint, non-adjacent ranges; appending
/// the next id of a run is O(1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeSet(Vec<IdRange>);

impl RangeSet {
    /// Adds one id.
    pub fn insert(&mut self, id: u64) {
        self.insert_range(id, id);
    }

    /// Adds `from..=to`.
    pub fn insert_range(&mut self, from: u64, to: u64) {
        if let Some(last) = self.0.last_mut() {
            if from >= last.from && from <= last.to.saturating_add(1) {
                last.to = last.to.max(to);
                return;
            }
        }
        self.0.push(IdRange { from, to });
        self.0.sort_by_key(|r| r.from);
        let mut merged: Vec<IdRange> = Vec::with_capacity(self.0.len());
        for r in self.0.drain(..) {
            match merged.last_mut() {
                Some(m) if r.from <= m.to.saturating_add(1) => m.to = m.to.max(r.to),
                _ => merged.push(r),
            }
        }
        self.0 = merged;
    }

    /// Whether `id` is in the set.
    pub fn contains(&self, id: u64) -> bool {
        self.0.iter().any(|r| r.from <= id && id <= r.to)
    }

    /// The ranges.
    pub fn ranges(&self) -> &[IdRange] {
        &self.0
    }

    /// Number of ids.
    pub fn count(&self) -> u64 {
        self.0.iter().map(IdRange::len).sum()
    }
}

/// Counters of one (exchange, symbol), as reported.
#[derive(Debug, Clone, Serialize)]
pub struct SymbolReport {
    /// Exchange.
    pub exchange: Source,
    /// Normalized symbol.
    pub symbol: String,
    /// The exchange's spelling.
    pub raw_symbol: String,
    /// The market's head (last trade that has happened) when reported.
    pub head: u64,
    /// Trade frames sent (first sends only; duplicates and Coinbase
    /// `last_match` replays are counted apart), over all connections.
    pub trades_sent: u64,
    /// Lowest trade id sent on any connection.
    pub first_id: Option<u64>,
    /// Highest trade id sent on any connection.
    pub last_id: Option<u64>,
    /// Every id sent on at least one connection.
    pub sent_ranges: Vec<IdRange>,
    /// Ids skipped by `--gap-every` (each range on one connection).
    pub skipped: Vec<IdRange>,
    /// Trade frames sent twice by `--dup-every`.
    pub duplicates: u64,
    /// Coinbase `last_match` frames (the trade before a subscription).
    pub last_match: u64,
    /// Broken frames sent by `--malformed-every`.
    pub malformed: u64,
    /// Sockets closed by `--close-every`.
    pub closes: u64,
    /// Stalls by `--stall-every`.
    pub stalls: u64,
}

/// The simulator's account of a run: printed as JSON at exit, and readable
/// live through [`crate::SimHandle::report`].
#[derive(Debug, Clone, Serialize)]
pub struct SimReport {
    /// WebSocket connections accepted.
    pub connections: u64,
    /// REST requests served.
    pub rest_requests: u64,
    /// One entry per (exchange, symbol) that has started, sorted.
    pub symbols: Vec<SymbolReport>,
}

impl SimReport {
    /// The entry of one market, if it has started.
    pub fn get(&self, exchange: Source, symbol: &str) -> Option<&SymbolReport> {
        self.symbols
            .iter()
            .find(|s| s.exchange == exchange && s.symbol == symbol)
    }
}

/// Mutable counters of one market.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Counters {
    pub trades_sent: u64,
    pub sent: RangeSet,
    pub skipped: Vec<IdRange>,
    pub duplicates: u64,
    pub last_match: u64,
    pub malformed: u64,
    pub closes: u64,
    pub stalls: u64,
    pub started: bool,
}

impl Counters {
    pub(crate) fn merge(&mut self, other: &mut Counters) {
        self.trades_sent += other.trades_sent;
        for r in other.sent.ranges() {
            self.sent.insert_range(r.from, r.to);
        }
        self.skipped.append(&mut other.skipped);
        self.duplicates += other.duplicates;
        self.last_match += other.last_match;
        self.malformed += other.malformed;
        self.closes += other.closes;
        self.stalls += other.stalls;
        self.started |= other.started;
        *other = Counters::default();
    }
}

/// Live statistics of a running simulator, indexed like the market list.
#[derive(Debug)]
pub struct SimStats {
    pub(crate) markets: Vec<Mutex<Counters>>,
    pub(crate) connections: std::sync::atomic::AtomicU64,
    pub(crate) rest_requests: std::sync::atomic::AtomicU64,
    sent_log: Option<Mutex<std::io::BufWriter<std::fs::File>>>,
}

impl SimStats {
    pub(crate) fn new(markets: usize, sent_log: Option<std::fs::File>) -> Self {
        Self {
            markets: (0..markets)
                .map(|_| Mutex::new(Counters::default()))
                .collect(),
            connections: Default::default(),
            rest_requests: Default::default(),
            sent_log: sent_log.map(|f| Mutex::new(std::io::BufWriter::with_capacity(1 << 16, f))),
        }
    }

    /// Whether trade frames must be logged.
    pub(crate) fn logging(&self) -> bool {
        self.sent_log.is_some()
    }

    /// Merges a connection's local counters for market `index`.
    pub(crate) fn merge(&self, index: usize, local: &mut Counters) {
        if let Some(m) = self.markets.get(index) {
            if let Ok(mut c) = m.lock() {
                c.merge(local);
            }
        }
    }

    /// Appends pre-formatted JSON lines to the sent log.
    pub(crate) fn log(&self, lines: &str) {
        if let Some(log) = &self.sent_log {
            if let Ok(mut w) = log.lock() {
                let _ = w.write_all(lines.as_bytes());
            }
        }
    }

    /// Flushes the sent log.
    pub(crate) fn flush_log(&self) {
        if let Some(log) = &self.sent_log {
            if let Ok(mut w) = log.lock() {
                let _ = w.flush();
            }
        }
    }

    /// A report of everything counted so far.
    pub(crate) fn report(&self, markets: &[std::sync::Arc<crate::market::Market>]) -> SimReport {
        use std::sync::atomic::Ordering;
        let mut symbols = Vec::new();
        for (m, c) in markets.iter().zip(&self.markets) {
            let c = match c.lock() {
                Ok(c) => c.clone(),
                Err(p) => p.into_inner().clone(),
            };
            if !c.started {
                continue;
            }
            let ranges = c.sent.ranges();
            symbols.push(SymbolReport {
                exchange: m.exchange,
                symbol: m.symbol.clone(),
                raw_symbol: m.raw.clone(),
                head: m.head(),
                trades_sent: c.trades_sent,
                first_id: ranges.first().map(|r| r.from),
                last_id: ranges.last().map(|r| r.to),
                sent_ranges: ranges.to_vec(),
                skipped: c.skipped.clone(),
                duplicates: c.duplicates,
                last_match: c.last_match,
                malformed: c.malformed,
                closes: c.closes,
                stalls: c.stalls,
            });
        }
        symbols.sort_by(|a, b| (a.exchange, &a.symbol).cmp(&(b.exchange, &b.symbol)));
        SimReport {
            connections: self.connections.load(Ordering::Relaxed),
            rest_requests: self.rest_requests.load(Ordering::Relaxed),
            symbols,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_set_merges() {
        let mut s = RangeSet::default();
        for id in [1, 2, 3, 7, 8, 5, 4, 20] {
            s.insert(id);
        }
        assert_eq!(
            s.ranges(),
            &[
                IdRange { from: 1, to: 5 },
                IdRange { from: 7, to: 8 },
                IdRange { from: 20, to: 20 }
            ]
        );
        s.insert_range(6, 19);
        assert_eq!(s.ranges(), &[IdRange { from: 1, to: 20 }]);
        assert_eq!(s.count(), 20);
        assert!(s.contains(13) && !s.contains(21));
    }
}
