//! Per-symbol rolling mean price and VWAP over an event-time window, with
//! edge-triggered threshold alerts.
//!
//! The window is measured in `exchange_ts`, not wall time, so replaying a
//! topic yields the same numbers the live run saw. Prices are kept exact in
//! the ticks; the rolling figures here are derived statistics, so `f64` is
//! precise enough and keeps the per-tick update O(1) amortised.
//!
//! The window is also capped in trades per symbol (`--window-max-trades`):
//! event time says nothing about how many trades fit in it. The simulator at
//! full speed stamps trades 1 µs apart, so a 60 s window would hold 60
//! million of them and a reader's memory grew with every tick; a burst on a
//! real exchange does the same on a smaller scale.

use crate::events::PriceAlert;
use chrono::{DateTime, Utc};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use std::collections::{HashMap, VecDeque};
use std::time::Duration;
use tickbridge_model::telemetry::InternalEvent;
use tickbridge_model::Tick;

#[derive(Debug, Default)]
struct Window {
    trades: VecDeque<(DateTime<Utc>, f64, f64)>,
    sum_price: f64,
    sum_pq: f64,
    sum_q: f64,
    newest: Option<DateTime<Utc>>,
    above: bool,
    below: bool,
}

/// Rolling figures of one symbol after a trade.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rolling {
    /// Trades in the window.
    pub trades: usize,
    /// Mean trade price.
    pub mean: f64,
    /// Volume-weighted average price (the mean when the volume is zero).
    pub vwap: f64,
}

/// Rolling analytics for every symbol seen.
#[derive(Debug)]
pub struct Analytics {
    window: chrono::Duration,
    above: Option<Decimal>,
    below: Option<Decimal>,
    max_trades: usize,
    symbols: HashMap<String, Window>,
}

/// Trades kept per symbol unless [`Analytics::with_max_trades`] says
/// otherwise.
pub const DEFAULT_MAX_TRADES: usize = 100_000;

impl Analytics {
    /// Window length and optional alert thresholds.
    pub fn new(window: Duration, above: Option<Decimal>, below: Option<Decimal>) -> Self {
        Self {
            window: chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX),
            above,
            below,
            max_trades: DEFAULT_MAX_TRADES,
            symbols: HashMap::new(),
        }
    }

    /// Caps the window at `n` trades per symbol (at least 1), whatever their
    /// timestamps: the bound on this reader's memory.
    pub fn with_max_trades(mut self, n: usize) -> Self {
        self.max_trades = n.max(1);
        self
    }

    /// Adds a trade; returns the symbol's rolling figures and how many
    /// alerts it raised (each already logged and counted).
    pub fn update(&mut self, t: &Tick) -> (Rolling, u32) {
        let price = t.price.to_f64().unwrap_or(0.0);
        let qty = t.qty.to_f64().unwrap_or(0.0);
        let w = self.symbols.entry(t.symbol.to_string()).or_default();
        w.trades.push_back((t.exchange_ts, price, qty));
        w.sum_price += price;
        w.sum_pq += price * qty;
        w.sum_q += qty;
        let newest = w.newest.map_or(t.exchange_ts, |n| n.max(t.exchange_ts));
        w.newest = Some(newest);
        while let Some(&(ts, p, q)) = w.trades.front() {
            let too_many = w.trades.len() > self.max_trades;
            if !too_many && (newest - ts <= self.window || w.trades.len() == 1) {
                break;
            }
            w.trades.pop_front();
            w.sum_price -= p;
            w.sum_pq -= p * q;
            w.sum_q -= q;
        }
        let n = w.trades.len();
        let mean = w.sum_price / n as f64;
        let vwap = if w.sum_q > 0.0 {
            w.sum_pq / w.sum_q
        } else {
            mean
        };
        let rolling = Rolling {
            trades: n,
            mean,
            vwap,
        };
        // An alert fires when the price crosses a threshold, not on every
        // tick beyond it.
        let mut alerts = 0;
        let mut check = |direction: &'static str, threshold: &Option<Decimal>, was: &mut bool| {
            let Some(th) = threshold else { return };
            let beyond = if direction == "above" {
                t.price > *th
            } else {
                t.price < *th
            };
            if beyond && !*was {
                PriceAlert {
                    symbol: &t.symbol,
                    direction,
                    price: &t.price,
                    threshold: th,
                    mean,
                    vwap,
                }
                .emit();
                alerts += 1;
            }
            *was = beyond;
        };
        check("above", &self.above, &mut w.above);
        check("below", &self.below, &mut w.below);
        (rolling, alerts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;
    use tickbridge_testkit::loadgen::synthetic_ticks;

    #[test]
    fn rolling_mean_vwap_and_edge_triggered_alerts() {
        let mut ticks = synthetic_ticks("p", &["BTC-USD"], 5);
        let base = ticks[0].exchange_ts;
        // price, qty, seconds after the first trade
        let rows = [
            ("100", "1", 0),
            ("200", "3", 1),
            ("300", "1", 2),
            ("90", "1", 3),
            ("310", "1", 13),
        ];
        for (t, (p, q, s)) in ticks.iter_mut().zip(rows) {
            t.price = Decimal::from_str(p).unwrap();
            t.qty = Decimal::from_str(q).unwrap();
            t.exchange_ts = base + chrono::Duration::seconds(s);
        }
        let mut a = Analytics::new(
            Duration::from_secs(10),
            Decimal::from_str("250").ok(),
            Decimal::from_str("95").ok(),
        );
        let (r, n) = a.update(&ticks[0]);
        assert_eq!((r.trades, r.mean, r.vwap, n), (1, 100.0, 100.0, 0));
        let (r, n) = a.update(&ticks[1]);
        assert_eq!((r.mean, r.vwap, n), (150.0, 175.0, 0));
        let (_, n) = a.update(&ticks[2]);
        assert_eq!(n, 1, "crossed above 250");
        let (_, n) = a.update(&ticks[3]);
        assert_eq!(n, 1, "crossed below 95");
        // 13 s: the trades at 0..=2 s leave the 10 s window; 310 crosses above again.
        let (r, n) = a.update(&ticks[4]);
        assert_eq!((r.trades, n), (2, 1));
        assert_eq!(r.mean, 200.0);
    }

    #[test]
    fn window_is_capped_in_trades_when_timestamps_are_dense() {
        // The simulator at full speed: trades 1 µs apart, all inside 60 s.
        let mut ticks = synthetic_ticks("p", &["BTC-USD"], 5_000);
        let base = ticks[0].exchange_ts;
        for (i, t) in ticks.iter_mut().enumerate() {
            t.price = Decimal::from(i as u64 + 1);
            t.qty = Decimal::ONE;
            t.exchange_ts = base + chrono::Duration::microseconds(i as i64);
        }
        let mut a = Analytics::new(Duration::from_secs(60), None, None).with_max_trades(1_000);
        let mut last = None;
        for t in &ticks {
            last = Some(a.update(t).0);
        }
        let r = last.unwrap();
        // The last 1,000 prices are 4,001..=5,000.
        assert_eq!(r.trades, 1_000);
        assert_eq!(r.mean, 4_500.5);
        assert_eq!(r.vwap, 4_500.5);
        let w = &a.symbols["BTC-USD"];
        assert!(w.trades.capacity() < 4_096, "memory stays bounded");
    }
}
