//! The deterministic market model.
//!
//! Trade N of a market (one exchange, one symbol) is a pure function of
//! `(seed, exchange, symbol, N)`: price, quantity and taker side come from a
//! hash of those four, never from a stream of random numbers, so any trade can
//! be rebuilt at any time (REST pages, duplicates, a test's expectations)
//! without replaying the ones before it.
//!
//! Only the clock is stateful. A market starts (t0) at its first subscription
//! or REST request. With a rate R > 0, trade N happens at t0 + N/R and the
//! head (the last trade that has happened) at time t is floor((t - t0) * R).
//! With R = 0 the market has no clock: the head is the highest id any
//! connection has sent, and trade N's time is t0 + N microseconds.
//!
//! Prices: a smooth walk within about ±1 % of a base price (value noise at two
//! scales plus a tick of jitter), on a tick grid of 2 to 8 decimals. No
//! extreme prices are generated.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tickbridge_model::{Side, Source};

/// One simulated trade, in integer ticks so every exchange can print it with
/// its own number of decimals without rounding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimTrade {
    /// Trade id, 1, 2, 3, … per market.
    pub id: u64,
    /// Price in units of 10^-price_scale.
    pub price_ticks: u64,
    /// Decimals of the price grid.
    pub price_scale: u32,
    /// Quantity in units of 10^-qty_scale.
    pub qty_ticks: u64,
    /// Decimals of the quantity grid.
    pub qty_scale: u32,
    /// Taker side.
    pub taker: Side,
    /// Exchange time, microseconds since the epoch.
    pub ts_micros: i64,
}

impl SimTrade {
    /// The price as an exact decimal.
    pub fn price(&self) -> rust_decimal::Decimal {
        rust_decimal::Decimal::new(self.price_ticks as i64, self.price_scale)
    }

    /// The quantity as an exact decimal.
    pub fn qty(&self) -> rust_decimal::Decimal {
        rust_decimal::Decimal::new(self.qty_ticks as i64, self.qty_scale)
    }
}

/// When a market started: a monotonic instant for pacing and the matching
/// wall-clock time for exchange timestamps.
#[derive(Debug, Clone, Copy)]
struct Start {
    instant: Instant,
    wall_micros: i64,
}

/// One (exchange, symbol) market.
#[derive(Debug)]
pub struct Market {
    /// Exchange.
    pub exchange: Source,
    /// Normalized symbol.
    pub symbol: String,
    /// The exchange's spelling (`BTCUSDT`, `BTC-USDT`, `BTC/USDT`).
    pub raw: String,
    /// Index of this market in the simulator's market list (and stats).
    pub index_global: usize,
    /// Binance stream name (`btcusdt@trade`); empty on other exchanges.
    pub stream: String,
    key: u64,
    base_ticks: u64,
    price_scale: u32,
    qty_scale: u32,
    /// Coinbase `sequence` of trade N is `seq_base + N`.
    pub seq_base: u64,
    rate: f64,
    max_count: Option<u64>,
    start: OnceLock<Start>,
    max_sent: AtomicU64,
}

/// SplitMix64 finalizer: a cheap, well-mixed 64-bit hash.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// Maps a hash to [-1, 1].
fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 52) as f64 - 1.0
}

impl Market {
    /// Builds the market of `symbol` on `exchange`. Parameters (base price,
    /// decimals) come from a `StdRng` seeded with the market's key, with
    /// familiar bases for BTC, ETH and SOL.
    pub fn new(
        seed: u64,
        exchange: Source,
        symbol: &str,
        index_global: usize,
        rate: f64,
        max_count: Option<u64>,
    ) -> Self {
        let key = mix(seed ^ mix(fnv(exchange.as_str())) ^ mix(fnv(symbol).rotate_left(17)));
        let mut rng = StdRng::seed_from_u64(key);
        let base = symbol.split('-').next().unwrap_or("");
        let (base_price, price_scale, qty_scale) = match base {
            "BTC" => (97_000.0, 2, 8),
            "ETH" => (3_500.0, 2, 6),
            "SOL" => (180.0, 3, 4),
            _ => (
                rng.random_range(1.0..1000.0),
                rng.random_range(2..=8),
                rng.random_range(2..=8),
            ),
        };
        let base_ticks = (base_price * 10f64.powi(price_scale as i32)).round() as u64;
        let (b, q) = symbol.split_once('-').unwrap_or((symbol, ""));
        let raw = match exchange {
            Source::Binance => format!("{b}{q}"),
            Source::Coinbase => format!("{b}-{q}"),
            Source::Kraken => format!("{b}/{q}"),
        };
        Market {
            exchange,
            symbol: symbol.to_string(),
            stream: if exchange == Source::Binance {
                format!("{}@trade", raw.to_ascii_lowercase())
            } else {
                String::new()
            },
            raw,
            index_global,
            key,
            base_ticks: base_ticks.max(1),
            price_scale,
            qty_scale,
            seq_base: rng.random_range(1_000_000..1_000_000_000),
            rate,
            max_count,
            start: OnceLock::new(),
            max_sent: AtomicU64::new(0),
        }
    }

    /// Starts the market clock if it has not started. Idempotent.
    pub fn start(&self) {
        self.start.get_or_init(|| Start {
            instant: Instant::now(),
            wall_micros: chrono::Utc::now().timestamp_micros(),
        });
    }

    fn started(&self) -> Start {
        self.start();
        *self.start.get().expect("initialized above")
    }

    /// Microseconds from t0 to trade `id`.
    fn offset_micros(&self, id: u64) -> u64 {
        if self.rate > 0.0 {
            (id as f64 * 1e6 / self.rate) as u64
        } else {
            id
        }
    }

    /// When trade `id` is due to be sent (paced markets only).
    pub fn due(&self, id: u64) -> Instant {
        self.started().instant + Duration::from_micros(self.offset_micros(id))
    }

    /// The last trade id that exists now, capped by `--max-count`.
    pub fn head(&self) -> u64 {
        self.cap(self.uncapped_head())
    }

    fn uncapped_head(&self) -> u64 {
        if self.rate > 0.0 {
            let elapsed = self.started().instant.elapsed().as_micros() as u64;
            let mut n = (elapsed as f64 * self.rate / 1e6) as u64;
            while self.offset_micros(n + 1) <= elapsed {
                n += 1;
            }
            while n > 0 && self.offset_micros(n) > elapsed {
                n -= 1;
            }
            n
        } else {
            self.max_sent.load(Ordering::Relaxed)
        }
    }

    /// Caps an id at `--max-count`.
    pub fn cap(&self, id: u64) -> u64 {
        self.max_count.map_or(id, |m| id.min(m))
    }

    /// Whether `id` is past the end of the market.
    pub fn exhausted(&self, id: u64) -> bool {
        self.max_count.is_some_and(|m| id > m)
    }

    /// The first id a new subscription receives: the one after the head (at
    /// R = 0, after the highest id any connection has sent).
    pub fn next_for_new_subscriber(&self) -> u64 {
        self.uncapped_head() + 1
    }

    /// Records that some connection sent `id` (drives the R = 0 head).
    pub fn mark_sent(&self, id: u64) {
        self.max_sent.fetch_max(id, Ordering::Relaxed);
    }

    /// Trade `id`: the pure function of (seed, exchange, symbol, id), with
    /// the time from the market clock.
    pub fn trade(&self, id: u64) -> SimTrade {
        let h = mix(self.key ^ id.wrapping_mul(0xD6E8_FEB8_6659_FD93));
        let noise = 0.7 * self.smooth(id, 512, 1) + 0.3 * self.smooth(id, 32, 2);
        let drift = (self.base_ticks as f64 * 0.01 * noise) as i64;
        let jitter = (h % 5) as i64 - 2;
        let price_ticks = (self.base_ticks as i64 + drift + jitter).max(1) as u64;
        let qty_max = 2 * 10u64.pow(self.qty_scale);
        let qty_ticks = 1 + mix(h) % qty_max;
        let taker = if h >> 63 == 0 { Side::Buy } else { Side::Sell };
        let start = self.started();
        SimTrade {
            id,
            price_ticks,
            price_scale: self.price_scale,
            qty_ticks,
            qty_scale: self.qty_scale,
            taker,
            ts_micros: start.wall_micros + self.offset_micros(id) as i64,
        }
    }

    /// Value noise in [-1, 1] with knots every `period` ids, smoothstepped.
    fn smooth(&self, id: u64, period: u64, layer: u64) -> f64 {
        let k = id / period;
        let f = (id % period) as f64 / period as f64;
        let knot = |k: u64| unit(mix(self.key ^ mix(k.wrapping_add(layer << 56))));
        let t = f * f * (3.0 - 2.0 * f);
        knot(k) * (1.0 - t) + knot(k + 1) * t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trades_are_pure_functions() {
        let a = Market::new(7, Source::Binance, "BTC-USDT", 0, 10.0, None);
        let b = Market::new(7, Source::Binance, "BTC-USDT", 0, 10.0, None);
        let c = Market::new(8, Source::Binance, "BTC-USDT", 0, 10.0, None);
        for id in 1..200 {
            let (x, y, z) = (a.trade(id), b.trade(id), c.trade(id));
            assert_eq!(
                (x.price_ticks, x.qty_ticks, x.taker),
                (y.price_ticks, y.qty_ticks, y.taker)
            );
            assert!(x.price_ticks > 0 && x.qty_ticks > 0);
            let _ = z;
        }
        let diff = (1..200)
            .filter(|&i| a.trade(i).price_ticks != c.trade(i).price_ticks)
            .count();
        assert!(diff > 100, "another seed gives another market");
    }

    #[test]
    fn prices_stay_near_base() {
        let m = Market::new(1, Source::Kraken, "BTC-USDT", 0, 0.0, None);
        for id in (1..100_000).step_by(97) {
            let p = m.trade(id).price().to_string().parse::<f64>().unwrap();
            assert!((95_000.0..99_000.0).contains(&p), "{p}");
        }
        assert_eq!(m.raw, "BTC/USDT");
    }

    #[test]
    fn head_follows_the_clock() {
        let m = Market::new(1, Source::Coinbase, "ETH-USDT", 0, 1000.0, Some(50));
        assert_eq!(m.next_for_new_subscriber(), 1);
        std::thread::sleep(Duration::from_millis(20));
        let h = m.head();
        assert!((15..=50).contains(&h), "{h}");
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(m.head(), 50, "capped by max_count");
        assert!(m.exhausted(51));
    }
}
