//! Simulator configuration: one struct that is both the `feed-sim` command
//! line (clap derive, every flag with an env fallback) and what tests build
//! by hand.

use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything that shapes a simulator run.
///
/// Fault flags are all off by default, so a plain run is a clean feed; each
/// `*_every` counts trade frames sent on one connection (the N-th, 2N-th, …
/// trade frame triggers the fault right after it is sent).
#[derive(Debug, Clone, Args)]
pub struct SimConfig {
    /// Address to listen on (port 0 picks a free port; the bound address is
    /// printed as the first line of stdout).
    #[arg(long, env = "SIM_LISTEN", default_value = "127.0.0.1:9000")]
    pub listen: SocketAddr,

    /// Normalized symbols every exchange serves (`BASE-QUOTE`). Each exchange
    /// spells them its own way: Binance `btcusdt`, Coinbase `BTC-USDT`,
    /// Kraken `BTC/USDT`; `*-USDT` pairs are served as-is on all three.
    #[arg(
        long,
        env = "SIM_SYMBOLS",
        value_delimiter = ',',
        default_value = "BTC-USDT,ETH-USDT,SOL-USDT"
    )]
    pub symbols: Vec<String>,

    /// Seed of the market model: the same seed gives byte-identical trades.
    #[arg(long, env = "SIM_SEED", default_value_t = 42)]
    pub seed: u64,

    /// Trades per second per symbol. With R > 0 trade N happens at
    /// t0 + N/R and every connection is paced to that clock; 0 sends as fast
    /// as each socket accepts (TCP backpressure).
    #[arg(long, env = "SIM_RATE", default_value_t = 10.0)]
    pub rate: f64,

    /// Last trade id of every market; after it connections stay open and
    /// idle (pings and heartbeats continue).
    #[arg(long, env = "SIM_MAX_COUNT")]
    pub max_count: Option<u64>,

    /// Stop the whole server after this long (e.g. `30s`); runs until a
    /// signal when unset.
    #[arg(long, env = "SIM_DURATION", value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,

    /// Interval of Binance's WebSocket Ping frames.
    #[arg(long, env = "SIM_PING_INTERVAL", value_parser = humantime::parse_duration, default_value = "20s")]
    pub ping_interval: Duration,

    /// Interval of Coinbase `heartbeat` messages and of Kraken `heartbeat`
    /// messages on an otherwise idle connection.
    #[arg(long, env = "SIM_HEARTBEAT_INTERVAL", value_parser = humantime::parse_duration, default_value = "1s")]
    pub heartbeat_interval: Duration,

    /// Close the socket (no close frame) after every N-th trade frame.
    #[arg(long, env = "SIM_CLOSE_EVERY")]
    pub close_every: Option<u64>,

    /// After every N-th trade frame, skip `--gap-size` trade ids of that
    /// symbol on this connection: they exist (REST serves them) but are never
    /// sent here.
    #[arg(long, env = "SIM_GAP_EVERY")]
    pub gap_every: Option<u64>,

    /// How many trade ids one gap skips.
    #[arg(long, env = "SIM_GAP_SIZE", default_value_t = 1)]
    pub gap_size: u64,

    /// After every N-th trade frame, send that frame again.
    #[arg(long, env = "SIM_DUP_EVERY")]
    pub dup_every: Option<u64>,

    /// After every N-th trade frame, send a broken text frame (the first half
    /// of that frame: truncated JSON).
    #[arg(long, env = "SIM_MALFORMED_EVERY")]
    pub malformed_every: Option<u64>,

    /// After every N-th trade frame, send nothing at all (not even pings or
    /// heartbeats) for `--stall-for`; paced trades that fall due meanwhile go
    /// out in a burst afterwards.
    #[arg(long, env = "SIM_STALL_EVERY")]
    pub stall_every: Option<u64>,

    /// Length of one stall.
    #[arg(long, env = "SIM_STALL_FOR", value_parser = humantime::parse_duration, default_value = "5s")]
    pub stall_for: Duration,

    /// Write one JSON line per trade frame sent (connection, exchange,
    /// symbol, trade id, kind) to this file, for exact comparisons.
    #[arg(long, env = "SIM_SENT_LOG")]
    pub sent_log: Option<PathBuf>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9000)),
            symbols: vec!["BTC-USDT".into(), "ETH-USDT".into(), "SOL-USDT".into()],
            seed: 42,
            rate: 10.0,
            max_count: None,
            duration: None,
            ping_interval: Duration::from_secs(20),
            heartbeat_interval: Duration::from_secs(1),
            close_every: None,
            gap_every: None,
            gap_size: 1,
            dup_every: None,
            malformed_every: None,
            stall_every: None,
            stall_for: Duration::from_secs(5),
            sent_log: None,
        }
    }
}

impl SimConfig {
    /// Checks what clap cannot: a usable rate, normalized symbols, and no
    /// `*_every` of zero (which would mean "every 0th frame").
    pub fn validate(&self) -> Result<(), crate::SimError> {
        let bad = |m: String| Err(crate::SimError::Config(m));
        if !(self.rate >= 0.0 && self.rate.is_finite()) {
            return bad(format!(
                "--rate must be a finite number >= 0, got {}",
                self.rate
            ));
        }
        if self.symbols.is_empty() {
            return bad("--symbols is empty".into());
        }
        for s in &self.symbols {
            if !tickbridge_model::tick::is_normalized_symbol(s) {
                return bad(format!("symbol {s:?} is not normalized BASE-QUOTE"));
            }
        }
        for (name, v) in [
            ("--close-every", self.close_every),
            ("--gap-every", self.gap_every),
            ("--dup-every", self.dup_every),
            ("--malformed-every", self.malformed_every),
            ("--stall-every", self.stall_every),
        ] {
            if v == Some(0) {
                return bad(format!("{name} must be at least 1"));
            }
        }
        if self.gap_every.is_some() && self.gap_size == 0 {
            return bad("--gap-size must be at least 1".into());
        }
        if self.ping_interval.is_zero() || self.heartbeat_interval.is_zero() {
            return bad("--ping-interval and --heartbeat-interval must be > 0".into());
        }
        Ok(())
    }
}
