//! From raw trades to publishable messages: dedup, gap detection, sequence
//! numbers and serialization, done once per message and shared by all sinks.

use crate::exchange::RawTrade;
use crate::stats::{add, Stats};
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use tickbridge_core::tick::{GapNotice, GapReason, Message, MessageRef, Source, Tick, Via};

/// One message ready for every sink: serialized once, shared by `Arc`.
#[derive(Debug)]
pub struct Outgoing {
    /// The message.
    pub msg: Message,
    /// Its JSON body.
    pub body: Vec<u8>,
}

impl Outgoing {
    /// Serializes a message.
    pub fn new(msg: Message) -> Self {
        let body = msg.as_ref().to_json();
        Self { msg, body }
    }

    /// The tick, when this is one.
    pub fn tick(&self) -> Option<&Tick> {
        match &self.msg {
            Message::Tick(t) => Some(t),
            Message::Gap(_) => None,
        }
    }

    /// Borrowing view.
    pub fn view(&self) -> MessageRef<'_> {
        self.msg.as_ref()
    }
}

#[derive(Debug, Default)]
struct SymbolState {
    last_trade_id: Option<u64>,
    seq: u64,
    window: VecDeque<u64>,
    seen: HashSet<u64, BuildHasherDefault<IdHasher>>,
    after_reconnect: bool,
}

/// Hasher for the per-tick lookups: the dedup window's trade ids and the
/// symbol table. Ids are the exchange's own increasing integers and symbols
/// come from the adapter's configured table (unknown ones are rejected by
/// the parser), so neither is attacker-chosen; a multiplicative hash is
/// enough, and much cheaper per tick than SipHash.
#[derive(Debug, Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }

    fn write_u64(&mut self, n: u64) {
        // Fibonacci hashing; the high bits, which hashbrown uses for its
        // control bytes, depend on every bit of the id.
        self.0 = (self.0 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// Per-symbol continuity: the single place that decides what is a
/// duplicate, what is a gap, and which `seq` each message gets.
pub struct Continuity {
    source: Source,
    via: Via,
    producer: Arc<str>,
    dedup_window: usize,
    symbols: HashMap<Arc<str>, SymbolState, BuildHasherDefault<IdHasher>>,
}

impl Continuity {
    /// New tracker.
    pub fn new(source: Source, via: Via, producer: String, dedup_window: usize) -> Self {
        Self {
            source,
            via,
            producer: producer.into(),
            dedup_window: dedup_window.max(1),
            symbols: HashMap::default(),
        }
    }

    /// Producer id in use.
    pub fn producer(&self) -> &str {
        &self.producer
    }

    /// The feed connection dropped: the next trade of every symbol must prove
    /// continuity (id = last + 1) or a `reconnect` gap notice is published.
    pub fn on_disconnect(&mut self) {
        for s in self.symbols.values_mut() {
            s.after_reconnect = true;
        }
    }

    /// Processes one trade, pushing a gap notice (if the trade ids jumped)
    /// and the tick (unless it is a duplicate) into `out`.
    pub fn on_trade(
        &mut self,
        raw: RawTrade,
        received_ts: DateTime<Utc>,
        stats: &Stats,
        out: &mut Vec<Arc<Outgoing>>,
    ) {
        // Looked up by reference: the key is only stored on a symbol's first
        // trade.
        if !self.symbols.contains_key(&*raw.symbol) {
            self.symbols
                .insert(raw.symbol.clone(), SymbolState::default());
        }
        let Some(st) = self.symbols.get_mut(&*raw.symbol) else {
            return;
        };
        let id = raw.trade_id;
        // Every id in the window is at most `last_trade_id`, so a newer id
        // (nearly every trade) needs no lookup.
        if st.last_trade_id.is_some_and(|last| id <= last) && st.seen.contains(&id) {
            add(&stats.duplicates, 1);
            metrics::counter!("tickbridge_producer_duplicates_total").increment(1);
            return;
        }
        if let Some(last) = st.last_trade_id {
            if id > last + 1 {
                let reason = if st.after_reconnect {
                    GapReason::Reconnect
                } else {
                    GapReason::TradeIdJump
                };
                st.seq += 1;
                let gap = GapNotice {
                    id: GapNotice::make_id(&self.producer, &raw.symbol, st.seq),
                    source: self.source,
                    symbol: raw.symbol.clone(),
                    reason,
                    missing_from: Some(last + 1),
                    missing_to: Some(id - 1),
                    missing_count: Some(id - 1 - last),
                    detected_ts: Utc::now(),
                    producer: self.producer.clone(),
                    seq: st.seq,
                    via: self.via,
                };
                crate::events::GapDetected { gap: &gap }.emit_to(stats);
                out.push(Arc::new(Outgoing::new(Message::Gap(gap))));
            } else if id <= last {
                add(&stats.out_of_order, 1);
                metrics::counter!("tickbridge_producer_out_of_order_total").increment(1);
            }
        }
        st.after_reconnect = false;
        st.last_trade_id = Some(st.last_trade_id.map_or(id, |l| l.max(id)));
        st.window.push_back(id);
        st.seen.insert(id);
        if st.window.len() > self.dedup_window {
            if let Some(old) = st.window.pop_front() {
                st.seen.remove(&old);
            }
        }
        st.seq += 1;
        let tick = Tick {
            id: Tick::make_id(self.source, &raw.symbol, id),
            source: self.source,
            symbol: raw.symbol,
            raw_symbol: raw.raw_symbol,
            trade_id: id,
            price: raw.price,
            qty: raw.qty,
            side: raw.side,
            exchange_ts: raw.exchange_ts,
            received_ts,
            producer: self.producer.clone(),
            seq: st.seq,
            via: self.via,
        };
        add(&stats.ticks, 1);
        out.push(Arc::new(Outgoing::new(Message::Tick(tick))));
    }

    /// Continues from an earlier run of this producer: `symbol`'s last trade
    /// id was `last`, and the first trade of this run must continue it or a
    /// `reconnect` gap notice reports what passed while no producer ran.
    pub fn resume(&mut self, symbol: &str, last: u64) {
        let st = self.symbols.entry(Arc::from(symbol)).or_default();
        st.last_trade_id = Some(st.last_trade_id.map_or(last, |l| l.max(last)));
        st.after_reconnect = true;
    }

    /// Last trade id seen per symbol, for `--state-file`.
    pub fn last_trade_ids(&self) -> std::collections::BTreeMap<String, u64> {
        self.symbols
            .iter()
            .filter_map(|(s, st)| st.last_trade_id.map(|l| (s.to_string(), l)))
            .collect()
    }

    /// Last trade id seen for a symbol (the poller uses it to skip overlap).
    pub fn last_trade_id(&self, symbol: &str) -> Option<u64> {
        self.symbols.get(symbol).and_then(|s| s.last_trade_id)
    }
}

/// Builds the gap notice a sink publishes in place of messages it could not
/// deliver (evicted under drop-oldest, or refused after every retry). It
/// takes the `seq` of the last lost message, so the per-symbol sequence a
/// consumer checks shows one explained hole instead of a silent one.
pub fn sink_gap(
    sample: &Outgoing,
    reason: GapReason,
    first_trade_id: u64,
    last_trade_id: u64,
    count: u64,
    seq: u64,
) -> Option<Arc<Outgoing>> {
    let t = sample.tick()?;
    let gap = GapNotice {
        id: GapNotice::make_id(&t.producer, &t.symbol, seq),
        source: t.source,
        symbol: t.symbol.clone(),
        reason,
        missing_from: Some(first_trade_id),
        missing_to: Some(last_trade_id),
        missing_count: Some(count),
        detected_ts: Utc::now(),
        producer: t.producer.clone(),
        seq,
        via: t.via,
    };
    Some(Arc::new(Outgoing::new(Message::Gap(gap))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;
    use tickbridge_core::Side;

    fn raw(id: u64) -> RawTrade {
        RawTrade {
            symbol: "BTC-USDT".into(),
            raw_symbol: "BTCUSDT".into(),
            trade_id: id,
            price: Decimal::new(1, 2),
            qty: Decimal::new(5, 1),
            side: Side::Buy,
            exchange_ts: Utc::now(),
            feed_seq: None,
        }
    }

    fn run(c: &mut Continuity, ids: &[u64], stats: &Stats) -> Vec<Arc<Outgoing>> {
        let mut out = Vec::new();
        for &id in ids {
            c.on_trade(raw(id), Utc::now(), stats, &mut out);
        }
        out
    }

    #[test]
    fn dedups_and_numbers_seq() {
        let stats = Stats::default();
        let mut c = Continuity::new(Source::Binance, Via::Ws, "p".into(), 100);
        let out = run(&mut c, &[1, 2, 2, 3, 1], &stats);
        let seqs: Vec<u64> = out.iter().map(|o| o.view().seq()).collect();
        assert_eq!(seqs, vec![1, 2, 3]);
        assert_eq!(
            stats.duplicates.load(std::sync::atomic::Ordering::Relaxed),
            2
        );
    }

    #[test]
    fn trade_id_jump_is_a_gap_with_its_range() {
        let stats = Stats::default();
        let mut c = Continuity::new(Source::Binance, Via::Ws, "p".into(), 100);
        let out = run(&mut c, &[1, 2, 6, 7], &stats);
        let Message::Gap(g) = &out[2].msg else {
            panic!("expected a gap")
        };
        assert_eq!(
            (g.missing_from, g.missing_to, g.missing_count),
            (Some(3), Some(5), Some(3))
        );
        assert_eq!(g.reason, GapReason::TradeIdJump);
        assert_eq!(g.seq, 3);
        assert_eq!(out[3].view().seq(), 4);
        // The gap message validates against the schema.
        tickbridge_core::schema::decode(&out[2].body).unwrap();
    }

    #[test]
    fn resumed_state_reports_what_passed_between_runs() {
        let stats = Stats::default();
        let mut c = Continuity::new(Source::Binance, Via::Ws, "p2".into(), 100);
        c.resume("BTC-USDT", 41);
        let out = run(&mut c, &[50, 51], &stats);
        let Message::Gap(g) = &out[0].msg else {
            panic!("expected a gap")
        };
        assert_eq!(g.reason, GapReason::Reconnect);
        assert_eq!(
            (g.missing_from, g.missing_to, g.missing_count),
            (Some(42), Some(49), Some(8))
        );
        assert_eq!(out.len(), 3);
        assert_eq!(c.last_trade_ids().get("BTC-USDT"), Some(&51));
        // A run that continues exactly where the last one stopped: no notice.
        let mut c = Continuity::new(Source::Binance, Via::Ws, "p3".into(), 100);
        c.resume("BTC-USDT", 51);
        assert_eq!(run(&mut c, &[52], &stats).len(), 1);
    }

    #[test]
    fn reconnect_gap_only_when_continuity_is_not_proven() {
        let stats = Stats::default();
        let mut c = Continuity::new(Source::Coinbase, Via::Ws, "p".into(), 100);
        run(&mut c, &[1, 2], &stats);
        c.on_disconnect();
        let out = run(&mut c, &[3], &stats);
        assert_eq!(out.len(), 1, "continuity proven: no notice");
        c.on_disconnect();
        let out = run(&mut c, &[10], &stats);
        let Message::Gap(g) = &out[0].msg else {
            panic!("expected a gap")
        };
        assert_eq!(g.reason, GapReason::Reconnect);
        assert_eq!(g.missing_count, Some(6));
    }
}
