//! What a reader measures about the stream it handles, printed as a stats
//! line on an interval and returned (and optionally written as JSON) at exit.
//!
//! * **latency**: receive time here minus the tick's `received_ts` (the
//!   pipeline: producer → broker → us) and minus its `exchange_ts` (adds the
//!   exchange and the internet);
//! * **duplicates** by message id, within a bounded window of ids;
//! * **producer-seq gaps**: `seq` is per producer *and* symbol, starting at 1,
//!   shared by ticks and gap notices, so a jump means messages are missing
//!   here; on a work queue with several workers a jump usually means a sibling
//!   handled them, which is why the union across workers is what tests check;
//! * **trade-id gaps** per exchange and symbol;
//! * gap notices, redeliveries, retries and dead letters;
//! * Kafka lag per partition, or the RabbitMQ queue depth;
//! * the Kafka group's committed lag, members and state, as the brokers
//!   report them ([`crate::lag`]).
//!
//! The final numbers are a [`Summary`], the model crate's
//! [`ReaderSummary`](tickbridge_model::report::ReaderSummary): what
//! `--summary-json` writes (see `docs/reports.md`).

use crate::events::{DuplicateSeen, GapNoticeReceived, SeqGap, TradeIdGap};
use chrono::{DateTime, Utc};
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;
use tickbridge_broker::dedup::DedupWindow;
use tickbridge_broker::events::{Redelivered, Scope};
use tickbridge_model::report::GroupLagSummary;
use tickbridge_model::telemetry::{InternalEvent, LatencyStats};
use tickbridge_model::tick::Source;
use tickbridge_model::Message;

/// The summary's data types live in the model crate, so that what reads a
/// `--summary-json` file back (the chaos suite) parses the type written
/// here; [`Stats`] is the live accumulator that fills it.
pub use tickbridge_model::report::{Percentiles, ReaderSummary as Summary};

/// Metric handles registered once: the `metrics` macros look the series up
/// in the recorder's registry on every call, which on the per-message path
/// cost more than the statistics themselves.
#[derive(Debug)]
struct Meters {
    latency_received: metrics::Histogram,
    latency_exchange: metrics::Histogram,
}

impl Meters {
    fn new(role: &'static str) -> Self {
        Self {
            latency_received: metrics::histogram!("tickbridge_consumer_latency_seconds", "role" => role, "from" => "received_ts"),
            latency_exchange: metrics::histogram!("tickbridge_consumer_latency_seconds", "role" => role, "from" => "exchange_ts"),
        }
    }
}

/// A count per text key that is looked up by `&str` and allocates only
/// when a key is new: producers and symbols repeat in every message.
type Counts = FxHashMap<Arc<str>, u64>;

fn slot<'m>(map: &'m mut Counts, key: &str) -> &'m mut u64 {
    if !map.contains_key(key) {
        map.insert(key.into(), 0);
    }
    map.get_mut(key).expect("inserted above")
}

/// Running statistics of one reader. Owned by its single processing task,
/// so there is no locking on the per-message path.
#[derive(Debug)]
pub struct Stats {
    role: &'static str,
    name: String,
    started: Instant,
    last_report: Instant,
    handled_at_last_report: u64,
    seen: DedupWindow,
    /// Last producer seq, by producer, then symbol.
    last_seq: FxHashMap<Arc<str>, Counts>,
    /// Highest trade id seen plus one, by exchange, then symbol.
    last_trade: FxHashMap<Source, Counts>,
    /// Handled messages per symbol (the summary's `per_symbol`).
    per_symbol: Counts,
    meters: Meters,
    lat_received: LatencyStats,
    lat_exchange: LatencyStats,
    first_handled: Option<DateTime<Utc>>,
    last_handled: Option<DateTime<Utc>>,
    s: Summary,
}

/// What [`Stats::observe`] learned about one handled message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    /// Its id had been handled before.
    pub duplicate: bool,
}

impl Stats {
    /// Fresh statistics; `dedup_window` bounds the ids remembered.
    pub fn new(role: &'static str, name: &str, dedup_window: usize) -> Self {
        let now = Instant::now();
        Self {
            role,
            name: name.to_string(),
            started: now,
            last_report: now,
            handled_at_last_report: 0,
            seen: DedupWindow::new(dedup_window),
            last_seq: FxHashMap::default(),
            last_trade: FxHashMap::default(),
            per_symbol: Counts::default(),
            meters: Meters::new(role),
            lat_received: LatencyStats::default(),
            lat_exchange: LatencyStats::default(),
            first_handled: None,
            last_handled: None,
            s: Summary {
                name: name.to_string(),
                role: role.to_string(),
                ..Summary::default()
            },
        }
    }

    /// Counts a delivery as received, before anything is known about it.
    pub fn received(&mut self, redelivered: bool, id: &str) {
        self.s.received += 1;
        if redelivered {
            self.s.redeliveries += 1;
            Redelivered {
                scope: Scope::Consumer(self.role),
                tally: None,
                id,
            }
            .emit();
        }
    }

    /// Records a successfully handled message, received here at `now`.
    pub fn observe(&mut self, msg: &Message, now: DateTime<Utc>) -> Observation {
        self.s.handled += 1;
        self.first_handled.get_or_insert(now);
        self.last_handled = Some(now);
        let m = msg.as_ref();
        *slot(&mut self.per_symbol, m.symbol()) += 1;
        let duplicate = self.seen.seen(m.id());
        if duplicate {
            self.s.duplicates += 1;
            DuplicateSeen {
                role: self.role,
                id: m.id(),
            }
            .emit();
        }
        let (producer, symbol, seq) = (m.producer(), m.symbol(), m.seq());
        if !self.last_seq.contains_key(producer) {
            self.last_seq.insert(producer.into(), Counts::default());
        }
        let by_symbol = self.last_seq.get_mut(producer).expect("inserted above");
        let last_seq = slot(by_symbol, symbol);
        match *last_seq {
            0 => {
                // The first message seen need not be seq 1: a reader that
                // joined late or replays from an offset has no gap.
            }
            last if seq > last + 1 => {
                self.s.seq_gaps += 1;
                self.s.seq_missing += seq - last - 1;
                SeqGap {
                    role: self.role,
                    producer,
                    symbol,
                    expected: last + 1,
                    got: seq,
                }
                .emit();
            }
            last if seq <= last => self.s.seq_regressions += 1,
            _ => {}
        }
        *last_seq = (*last_seq).max(seq);
        match msg {
            Message::Tick(t) => {
                self.s.ticks += 1;
                let from_received = now - t.received_ts;
                let from_exchange = now - t.exchange_ts;
                self.lat_received.record_micros(micros(from_received));
                self.lat_exchange.record_micros(micros(from_exchange));
                self.meters
                    .latency_received
                    .record(from_received.as_seconds_f64());
                self.meters
                    .latency_exchange
                    .record(from_exchange.as_seconds_f64());
                // Holds the highest trade id seen plus one; 0 is "none yet".
                let next = slot(self.last_trade.entry(t.source).or_default(), &t.symbol);
                if *next > 0 && t.trade_id > *next {
                    self.s.trade_id_gaps += 1;
                    self.s.trade_id_missing += t.trade_id - *next;
                    TradeIdGap {
                        role: self.role,
                        stream: &format!("{}:{}", t.source, t.symbol),
                        expected: *next,
                        got: t.trade_id,
                    }
                    .emit();
                }
                *next = (*next).max(t.trade_id.saturating_add(1));
            }
            Message::Gap(g) => {
                self.s.gap_notices += 1;
                self.s.gap_notice_missing += g.missing_count.unwrap_or(0);
                GapNoticeReceived {
                    role: self.role,
                    notice: g,
                }
                .emit();
            }
        }
        Observation { duplicate }
    }

    /// Counts a body that did not decode.
    pub fn decode_error(&mut self, kind: &str) {
        *self.s.decode_errors.entry(kind.to_string()).or_default() += 1;
    }
    /// Counts a handler failure.
    pub fn failure(&mut self) {
        self.s.failures += 1;
    }
    /// Counts a retry.
    pub fn retry(&mut self) {
        self.s.retries += 1;
    }
    /// Counts a dead letter.
    pub fn dead_lettered(&mut self, kind: &str) {
        *self.s.dead_lettered.entry(kind.to_string()).or_default() += 1;
    }
    /// Counts a price alert.
    pub fn alert(&mut self) {
        self.s.alerts += 1;
    }
    /// Replaces the last known Kafka lag.
    pub fn set_lag(&mut self, lag: BTreeMap<i32, i64>) {
        for (p, l) in &lag {
            metrics::gauge!("tickbridge_consumer_kafka_lag", "partition" => p.to_string())
                .set(*l as f64);
        }
        self.s.lag = lag;
    }
    /// Replaces what is known about the group's lag.
    pub fn set_group_lag(&mut self, lag: GroupLagSummary) {
        self.s.group_lag = Some(lag);
    }
    /// Replaces the last known queue depth.
    pub fn set_queue_depth(&mut self, depth: u64) {
        metrics::gauge!("tickbridge_consumer_queue_depth", "role" => self.role).set(depth as f64);
        self.s.queue_depth = Some(depth);
    }
    /// Messages handled so far.
    pub fn handled(&self) -> u64 {
        self.s.handled
    }

    /// One stats line: totals, the rate since the previous line, latency,
    /// integrity counters and lag or depth. Resets the interval rate.
    pub fn report_line(&mut self) -> String {
        let now = Instant::now();
        let secs = now.duration_since(self.last_report).as_secs_f64().max(1e-9);
        let rate = (self.s.handled - self.handled_at_last_report) as f64 / secs;
        self.last_report = now;
        self.handled_at_last_report = self.s.handled;
        let mut line = format!(
            "handled={} rate={rate:.0}/s latency(received_ts) {} latency(exchange_ts) {} dups={} seq_gaps={} (missing {}) trade_id_gaps={} gap_notices={} redelivered={}",
            self.s.handled,
            self.lat_received.summary(),
            self.lat_exchange.summary(),
            self.s.duplicates,
            self.s.seq_gaps,
            self.s.seq_missing,
            self.s.trade_id_gaps,
            self.s.gap_notices,
            self.s.redeliveries,
        );
        if self.role == "worker" {
            let dlq: u64 = self.s.dead_lettered.values().sum();
            line.push_str(&format!(
                " failures={} retries={} dlq={dlq}",
                self.s.failures, self.s.retries
            ));
        }
        let bad: u64 = self.s.decode_errors.values().sum();
        if bad > 0 {
            line.push_str(&format!(" bad={bad}"));
        }
        if let Some(d) = self.s.queue_depth {
            line.push_str(&format!(" depth={d}"));
        }
        if !self.s.lag.is_empty() {
            let lag: Vec<String> = self
                .s
                .lag
                .iter()
                .map(|(p, l)| format!("p{p}={l}"))
                .collect();
            line.push_str(&format!(" lag[{}]", lag.join(" ")));
        }
        if let Some(g) = &self.s.group_lag {
            line.push(' ');
            line.push_str(&g.line());
        }
        line
    }

    /// Logs the stats line.
    pub fn log_report(&mut self) {
        let line = self.report_line();
        tracing::info!(name = %self.name, "stats: {line}");
    }

    /// The final summary.
    pub fn summary(&self) -> Summary {
        let mut s = self.s.clone();
        s.per_symbol = self
            .per_symbol
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        s.elapsed_secs = self.started.elapsed().as_secs_f64();
        s.rate_per_sec = if s.elapsed_secs > 0.0 {
            s.handled as f64 / s.elapsed_secs
        } else {
            0.0
        };
        if let (Some(a), Some(b)) = (self.first_handled, self.last_handled) {
            s.first_handled_at = Some(tickbridge_model::tick::ts_micros::format(&a));
            s.last_handled_at = Some(tickbridge_model::tick::ts_micros::format(&b));
            let secs = (b - a).as_seconds_f64();
            s.active_rate_per_sec = if secs > 0.0 {
                (s.handled.saturating_sub(1)) as f64 / secs
            } else {
                0.0
            };
        }
        s.latency_from_received = (&self.lat_received).into();
        s.latency_from_exchange = (&self.lat_exchange).into();
        s
    }
}

fn micros(d: chrono::TimeDelta) -> i64 {
    d.num_microseconds().unwrap_or(i64::MAX)
}

/// Writes the summary as one pretty JSON object (`--summary-json`; the
/// fields are documented in `docs/reports.md`).
pub fn write_summary(summary: &Summary, path: &std::path::Path) -> crate::Result<()> {
    let body = serde_json::to_vec_pretty(summary).unwrap_or_default();
    std::fs::write(path, body).map_err(|source| crate::Error::Output {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickbridge_testkit::loadgen::synthetic_ticks;

    #[test]
    fn counts_duplicates_and_gaps() {
        let ticks = synthetic_ticks("p1", &["BTC-USD"], 10);
        let mut s = Stats::new("kafka", "t", 100);
        let now = Utc::now();
        // TC0: 1,2,3 then skip 4,5 then 6, then 6 again (duplicate), then 3 (regression)
        for i in [0usize, 1, 2, 5, 5, 2] {
            s.observe(&Message::Tick(ticks[i].clone()), now);
        }
        let sum = s.summary();
        assert_eq!(sum.handled, 6);
        assert_eq!(sum.duplicates, 2);
        assert_eq!(sum.seq_gaps, 1);
        assert_eq!(sum.seq_missing, 2);
        assert_eq!(sum.seq_regressions, 2);
        assert_eq!(sum.trade_id_gaps, 1);
        assert_eq!(sum.trade_id_missing, 2);
        assert_eq!(sum.per_symbol["BTC-USD"], 6);
        assert_eq!(sum.latency_from_received.count, 6);
    }

    #[test]
    fn gap_notices_take_a_sequence_number_and_explain_trade_id_jumps() {
        // BTC-USD: trades 1..=10 (seq 1..=10), a gap notice (seq 11) for
        // trades 11..=15, then trades 16..=20 (seq 12..=16).
        let mut ticks = synthetic_ticks("p1", &["BTC-USD"], 20);
        for t in ticks.iter_mut().skip(10) {
            t.seq -= 4;
        }
        let mut msgs: Vec<Message> = ticks.iter().take(10).cloned().map(Message::Tick).collect();
        msgs.push(Message::Gap(tickbridge_model::GapNotice {
            id: tickbridge_model::GapNotice::make_id("p1", "BTC-USD", 11),
            source: tickbridge_model::Source::Binance,
            symbol: "BTC-USD".into(),
            reason: tickbridge_model::GapReason::TradeIdJump,
            missing_from: Some(11),
            missing_to: Some(15),
            missing_count: Some(5),
            detected_ts: Utc::now(),
            producer: "p1".into(),
            seq: 11,
            via: tickbridge_model::Via::Ws,
        }));
        msgs.extend(ticks.iter().skip(15).cloned().map(Message::Tick));
        let mut s = Stats::new("kafka", "t", 100);
        for m in &msgs {
            s.observe(m, Utc::now());
        }
        let sum = s.summary();
        assert_eq!(
            (
                sum.handled,
                sum.ticks,
                sum.gap_notices,
                sum.gap_notice_missing
            ),
            (16, 15, 1, 5)
        );
        assert_eq!(sum.seq_gaps, 0, "the notice fills seq 11");
        assert_eq!((sum.trade_id_gaps, sum.trade_id_missing), (1, 5));
        assert_eq!(sum.per_symbol["BTC-USD"], 16);
    }
}
