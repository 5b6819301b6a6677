//! From raw trades to publishable messages: dedup, gap detection, sequence
//! numbers and serialization, done once per message and shared by all sinks.

use crate::exchange::RawTrade;
use crate::stats::{add, Stats};
use chrono::{DateTime, Utc};
use rustc_hash::FxHashMap;
use std::sync::Arc;
use tickbridge_model::tick::{GapNotice, GapReason, Message, MessageRef, Source, Tick, Via};

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

#[derive(Debug)]
struct SymbolState {
    last_trade_id: Option<u64>,
    seq: u64,
    seen: SeenIds,
    after_reconnect: bool,
}

impl SymbolState {
    fn new(dedup_window: usize) -> Self {
        Self {
            last_trade_id: None,
            seq: 0,
            seen: SeenIds::new(dedup_window),
            after_reconnect: false,
        }
    }
}

/// What [`SeenIds::insert`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// Not seen before: a new trade.
    New,
    /// Already seen: an exact duplicate.
    Duplicate,
    /// Further below the newest id than the window reaches, so whether it
    /// was seen is not known; treated as a new (out-of-order) trade.
    TooOld,
}

/// The trade ids seen among the last `span` ids up to the newest one, one
/// bit per id in a ring.
///
/// Exchange trade ids increase by one per trade, so a window of ids by
/// distance from the newest is what "the last N trades" means, and it costs
/// a bit test per trade and `span / 8` bytes per symbol, instead of a hash
/// set insert and remove per trade and a hash set's memory.
#[derive(Debug)]
struct SeenIds {
    newest: Option<u64>,
    bits: Vec<u64>,
}

impl SeenIds {
    fn new(span: usize) -> Self {
        Self {
            newest: None,
            bits: vec![0; span.max(1).div_ceil(64)],
        }
    }

    /// Ids covered: `newest - span + 1 ..= newest`.
    fn span(&self) -> u64 {
        self.bits.len() as u64 * 64
    }

    fn slot(&self, id: u64) -> (usize, u64) {
        let bit = id % self.span();
        ((bit / 64) as usize, 1 << (bit % 64))
    }

    fn insert(&mut self, id: u64) -> Seen {
        match self.newest {
            Some(newest) if id <= newest => {
                if newest - id >= self.span() {
                    return Seen::TooOld;
                }
                let (w, m) = self.slot(id);
                if self.bits[w] & m != 0 {
                    return Seen::Duplicate;
                }
                self.bits[w] |= m;
            }
            Some(newest) => {
                // The ids the window moves over were never seen (yet).
                if id - newest >= self.span() {
                    self.bits.fill(0);
                } else {
                    for skipped in newest + 1..id {
                        let (w, m) = self.slot(skipped);
                        self.bits[w] &= !m;
                    }
                }
                let (w, m) = self.slot(id);
                self.bits[w] |= m;
                self.newest = Some(id);
            }
            None => {
                let (w, m) = self.slot(id);
                self.bits[w] |= m;
                self.newest = Some(id);
            }
        }
        Seen::New
    }
}

/// Per-symbol continuity: the single place that decides what is a
/// duplicate, what is a gap, and which `seq` each message gets.
pub struct Continuity {
    source: Source,
    via: Via,
    producer: Arc<str>,
    dedup_window: usize,
    /// Looked up once per trade; symbols come from the adapter's configured
    /// table (unknown ones are rejected by the parser), so they are not
    /// attacker-chosen and `rustc-hash` is safe and much cheaper than SipHash.
    symbols: FxHashMap<Arc<str>, SymbolState>,
}

impl Continuity {
    /// New tracker.
    pub fn new(source: Source, via: Via, producer: String, dedup_window: usize) -> Self {
        Self {
            source,
            via,
            producer: producer.into(),
            dedup_window: dedup_window.max(1),
            symbols: FxHashMap::default(),
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
                .insert(raw.symbol.clone(), SymbolState::new(self.dedup_window));
        }
        let Some(st) = self.symbols.get_mut(&*raw.symbol) else {
            return;
        };
        let id = raw.trade_id;
        if st.seen.insert(id) == Seen::Duplicate {
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
        let st = self
            .symbols
            .entry(Arc::from(symbol))
            .or_insert_with(|| SymbolState::new(self.dedup_window));
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
    use tickbridge_model::Side;

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
    fn seen_ids_window_by_distance_from_newest() {
        let mut s = SeenIds::new(100); // 128 ids
        assert_eq!(s.span(), 128);
        assert_eq!(s.insert(1000), Seen::New);
        assert_eq!(s.insert(1000), Seen::Duplicate);
        assert_eq!(s.insert(999), Seen::New, "out of order, not seen");
        assert_eq!(s.insert(999), Seen::Duplicate);
        assert_eq!(s.insert(1000 - 128), Seen::TooOld);
        assert_eq!(s.insert(1000 - 127), Seen::New);
        // A jump within the span forgets the ids it moves over, which map to
        // the same bits as ids one span lower.
        assert_eq!(s.insert(1000 + 127), Seen::New);
        assert_eq!(s.insert(1000), Seen::Duplicate);
        assert_eq!(s.insert(1000 + 1), Seen::New);
        assert_eq!(s.insert(999), Seen::TooOld);
        // A jump past the whole span forgets everything.
        assert_eq!(s.insert(5000), Seen::New);
        assert_eq!(s.insert(5000 - 1), Seen::New);
        assert_eq!(s.insert(5000), Seen::Duplicate);
        assert_eq!(s.insert(u64::MAX), Seen::New);
        assert_eq!(s.insert(u64::MAX), Seen::Duplicate);
        assert_eq!(s.insert(u64::MAX - 1), Seen::New);
    }

    proptest::proptest! {
        /// The ring agrees with the plain definition: a set of every id
        /// seen, where ids a span or more below the newest are unknown.
        #[test]
        fn seen_ids_agree_with_a_set(
            window in 1usize..200,
            start in 0u64..1_000,
            steps in proptest::collection::vec(-300i64..300, 1..400),
        ) {
            let mut ring = SeenIds::new(window);
            let span = ring.span();
            let mut set = std::collections::HashSet::new();
            let mut newest: Option<u64> = None;
            let mut id = start + 1_000;
            for step in steps {
                // Mostly the next id, sometimes a repeat, a jump or a step back.
                id = match step {
                    -300..=-250 => id.saturating_sub(step.unsigned_abs() - 250),
                    250..=299 => id + (step as u64 - 249) * 7,
                    -249..=-200 => id,
                    _ => id + 1,
                };
                let expected = if newest.is_some_and(|n| id <= n && n - id >= span) {
                    Seen::TooOld
                } else if set.insert(id) {
                    Seen::New
                } else {
                    Seen::Duplicate
                };
                if expected != Seen::TooOld {
                    newest = Some(newest.map_or(id, |n| n.max(id)));
                }
                proptest::prop_assert_eq!(ring.insert(id), expected, "id {}", id);
            }
        }
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
        tickbridge_model::schema::decode(&out[2].body).unwrap();
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
