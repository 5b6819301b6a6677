//! Bounded buffer between the pipeline and one sink.
//!
//! Each sink has its own buffer so a slow or dead broker cannot stall the
//! others beyond the buffer size, and memory stays bounded however long a
//! broker is away. When it is full, [`OverflowPolicy::Block`] makes the
//! pipeline wait (backpressure reaches the socket), and
//! [`OverflowPolicy::DropOldest`] evicts the oldest tick and remembers what
//! it evicted, so the sink can publish a gap notice for exactly that range.

use crate::config::OverflowPolicy;
use crate::pipeline::Outgoing;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// Ticks evicted for one symbol since the sink last looked.
#[derive(Debug, Clone)]
pub struct Dropped {
    /// First evicted trade id.
    pub first_trade_id: u64,
    /// Last evicted trade id.
    pub last_trade_id: u64,
    /// How many ticks.
    pub count: u64,
    /// `seq` of the last evicted message; the gap notice takes its place.
    pub last_seq: u64,
    /// One evicted message, to copy source/producer/via from.
    pub sample: Arc<Outgoing>,
}

struct State {
    queue: VecDeque<Arc<Outgoing>>,
    closed: bool,
    dropped: BTreeMap<Arc<str>, Dropped>,
}

/// Single-producer, single-consumer bounded queue with an overflow policy.
pub struct Buffer {
    state: Mutex<State>,
    not_empty: Notify,
    not_full: Notify,
    capacity: usize,
    policy: OverflowPolicy,
}

impl Buffer {
    /// New buffer holding at most `capacity` messages.
    pub fn new(capacity: usize, policy: OverflowPolicy) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                queue: VecDeque::with_capacity(capacity.min(65_536)),
                closed: false,
                dropped: BTreeMap::new(),
            }),
            not_empty: Notify::new(),
            not_full: Notify::new(),
            capacity,
            policy,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means another thread panicked mid-push; the
        // queue itself is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a message. Under `Block` waits for room; under `DropOldest`
    /// evicts. Returns the number of evicted messages (0 or 1).
    pub async fn push(&self, msg: Arc<Outgoing>) -> u64 {
        loop {
            {
                let mut st = self.lock();
                if st.queue.len() < self.capacity {
                    st.queue.push_back(msg);
                    drop(st);
                    self.not_empty.notify_one();
                    return 0;
                }
                if self.policy == OverflowPolicy::DropOldest {
                    let mut evicted = 0;
                    // Gap notices are never evicted: they are the record of loss.
                    if let Some(pos) = st.queue.iter().position(|m| m.tick().is_some()) {
                        if let Some(old) = st.queue.remove(pos) {
                            record_drop(&mut st.dropped, old);
                            evicted = 1;
                        }
                    }
                    st.queue.push_back(msg);
                    drop(st);
                    self.not_empty.notify_one();
                    return evicted;
                }
            }
            self.not_full.notified().await;
        }
    }

    /// Adds `msgs[from..]` without waiting, as many as fit (all of them
    /// under `DropOldest`, evicting as needed), with one lock and one wake-up
    /// for the whole batch. Returns the index of the first message not added.
    pub fn push_available(&self, msgs: &[Arc<Outgoing>], from: usize) -> usize {
        let mut i = from;
        {
            let mut st = self.lock();
            while i < msgs.len() {
                if st.queue.len() >= self.capacity {
                    if self.policy == OverflowPolicy::Block {
                        break;
                    }
                    if let Some(pos) = st.queue.iter().position(|m| m.tick().is_some()) {
                        if let Some(old) = st.queue.remove(pos) {
                            record_drop(&mut st.dropped, old);
                        }
                    }
                }
                st.queue.push_back(msgs[i].clone());
                i += 1;
            }
        }
        if i > from {
            self.not_empty.notify_one();
        }
        i
    }

    /// Takes up to `max` messages, waiting while the buffer is empty.
    /// Returns an empty vector once the buffer is closed and drained.
    pub async fn pop_batch(&self, max: usize, out: &mut Vec<Arc<Outgoing>>) {
        loop {
            {
                let mut st = self.lock();
                if !st.queue.is_empty() {
                    let n = max.min(st.queue.len());
                    out.extend(st.queue.drain(..n));
                    drop(st);
                    self.not_full.notify_one();
                    return;
                }
                if st.closed {
                    return;
                }
            }
            self.not_empty.notified().await;
        }
    }

    /// Takes the eviction records accumulated since the last call.
    pub fn take_dropped(&self) -> Vec<Dropped> {
        let mut st = self.lock();
        std::mem::take(&mut st.dropped).into_values().collect()
    }

    /// No more pushes will come; the consumer drains and stops.
    pub fn close(&self) {
        self.lock().closed = true;
        self.not_empty.notify_one();
    }

    /// Messages waiting.
    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    /// Nothing waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn record_drop(dropped: &mut BTreeMap<Arc<str>, Dropped>, old: Arc<Outgoing>) {
    let Some(t) = old.tick() else { return };
    let (trade_id, seq) = (t.trade_id, t.seq);
    dropped
        .entry(t.symbol.clone())
        .and_modify(|d| {
            d.first_trade_id = d.first_trade_id.min(trade_id);
            d.last_trade_id = d.last_trade_id.max(trade_id);
            d.count += 1;
            d.last_seq = d.last_seq.max(seq);
        })
        .or_insert_with(|| Dropped {
            first_trade_id: trade_id,
            last_trade_id: trade_id,
            count: 1,
            last_seq: seq,
            sample: old.clone(),
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Outgoing;
    use chrono::Utc;
    use rust_decimal::Decimal;
    use tickbridge_model::{Message, Side, Source, Tick, Via};

    fn tick(id: u64) -> Arc<Outgoing> {
        Arc::new(Outgoing::new(Message::Tick(Tick {
            id: Tick::make_id(Source::Binance, "BTC-USDT", id),
            source: Source::Binance,
            symbol: "BTC-USDT".into(),
            raw_symbol: "BTCUSDT".into(),
            trade_id: id,
            price: Decimal::new(1, 0),
            qty: Decimal::new(1, 0),
            side: Side::Buy,
            exchange_ts: Utc::now(),
            received_ts: Utc::now(),
            producer: "p".into(),
            seq: id,
            via: Via::Ws,
        })))
    }

    #[tokio::test]
    async fn block_stops_at_capacity_and_drop_oldest_records_evictions() {
        let msgs: Vec<_> = (1..=5).map(tick).collect();
        let b = Buffer::new(3, OverflowPolicy::Block);
        assert_eq!(b.push_available(&msgs, 0), 3);
        let mut out = Vec::new();
        b.pop_batch(2, &mut out).await;
        assert_eq!(b.push_available(&msgs, 3), 5);
        assert!(b.take_dropped().is_empty());

        let d = Buffer::new(3, OverflowPolicy::DropOldest);
        assert_eq!(d.push_available(&msgs, 0), 5);
        assert_eq!(d.len(), 3);
        let dropped = d.take_dropped();
        assert_eq!(dropped.len(), 1);
        assert_eq!(
            (
                dropped[0].first_trade_id,
                dropped[0].last_trade_id,
                dropped[0].count
            ),
            (1, 2, 2)
        );
        assert_eq!(dropped[0].last_seq, 2);
    }
}
