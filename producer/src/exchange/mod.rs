//! Exchange adapters: everything the producer knows about one exchange's wire
//! format lives in one folder here (`binance/`, `coinbase/`, `kraken/`).
//!
//! Each adapter implements [`Exchange`]: where to connect, what to send after
//! connecting, which application pings to send, and how to turn a text frame
//! (or a REST body) into [`RawTrade`]s. The rest of the producer is written
//! against the trait only, so adding an exchange means adding a folder and one
//! arm in [`adapter`], not editing the pipeline.
//!
//! Parsers are strict about values and lenient about extra fields:
//!
//! * prices and quantities are read from the exchange's own decimal text, so
//!   `"0.00100000"` stays `0.00100000` (Kraken sends JSON numbers; their literal
//!   text is read through [`serde_json::value::RawValue`], never through `f64`);
//! * zero, negative or out-of-range values are [`ParseError::InvalidValue`],
//!   wrong JSON types are [`ParseError::Malformed`], and nothing panics, whatever
//!   the input (a proptest in `fuzz_tests.rs` holds every parser to that);
//! * frames larger than [`MAX_FRAME_BYTES`] are rejected before parsing.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use std::sync::Arc;
use tickbridge_model::{Side, Source};

pub mod binance;
pub mod coinbase;
mod decode;
pub mod kraken;

#[cfg(test)]
mod bad_input_tests;
#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod sim_tests;
#[cfg(test)]
mod test_util;

pub use binance::Binance;
pub use coinbase::Coinbase;
pub use decode::{SymbolMap, MAX_FRAME_BYTES, MAX_REST_BYTES};
pub use kraken::Kraken;

/// One trade as the exchange reported it, already normalized but not yet
/// stamped with producer, seq and via.
///
/// Adapters stop here on purpose: the producer id, the per-symbol sequence and
/// the receive time belong to the pipeline, which turns a `RawTrade` into a
/// [`tickbridge_model::Tick`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawTrade {
    /// Normalized `BASE-QUOTE`, e.g. `BTC-USDT`. Shared with the adapter's
    /// symbol table, so a trade costs no string allocation.
    pub symbol: Arc<str>,
    /// The symbol as the exchange spells it in its stream (`BTCUSDT`,
    /// `BTC-USD`, `BTC/USD`), kept for audits.
    pub raw_symbol: Arc<str>,
    /// The exchange's trade id, unique and increasing per symbol; gap
    /// detection is built on it.
    pub trade_id: u64,
    /// Exact price, with the scale the exchange sent.
    pub price: Decimal,
    /// Exact base quantity, with the scale the exchange sent.
    pub qty: Decimal,
    /// Taker (aggressor) side. Binance and Coinbase report the maker side in
    /// different ways; adapters convert, so this is always the taker.
    pub side: Side,
    /// The exchange's trade time.
    pub exchange_ts: DateTime<Utc>,
    /// Coinbase `sequence`: a second, per-product continuity check. `None`
    /// for exchanges (and REST bodies) that have none.
    pub feed_seq: Option<u64>,
}

impl RawTrade {
    /// A trade with no feed sequence, for a symbol as [`SymbolMap`] hands it
    /// out (normalized, exchange spelling). Every adapter builds its trades
    /// here, so sharing the symbol table's strings (no allocation per trade)
    /// is written once.
    pub(crate) fn new(
        (symbol, raw_symbol): (&Arc<str>, &Arc<str>),
        trade_id: u64,
        price: Decimal,
        qty: Decimal,
        side: Side,
        exchange_ts: DateTime<Utc>,
    ) -> Self {
        Self {
            symbol: Arc::clone(symbol),
            raw_symbol: Arc::clone(raw_symbol),
            trade_id,
            price,
            qty,
            side,
            exchange_ts,
            feed_seq: None,
        }
    }
}

/// What a successfully parsed frame was, so the connection loop can count
/// acks and heartbeats without knowing any exchange's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameKind {
    /// One or more trades were pushed into the output vector.
    Trades,
    /// A subscription was acknowledged.
    Subscribed,
    /// An exchange heartbeat: the connection is alive but quiet.
    Heartbeat,
    /// The answer to our application-level ping.
    Pong,
    /// A known message type we do not use (status, other channels).
    Ignored,
}

/// Why a frame or body could not be turned into trades.
///
/// Every variant is recoverable at the frame level: the connection loop counts
/// it (by [`ParseError::kind`]) and reads on. Only the caller can decide that
/// too many errors, or an [`ParseError::ExchangeError`] on subscribe, warrant a
/// reconnect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not JSON, too large, not UTF-8, or a field of the wrong JSON type.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// Valid JSON, but of a message type this adapter does not know.
    #[error("unknown message: {0}")]
    UnknownMessage(String),
    /// A trade for a symbol this adapter was not built for (or a symbol that
    /// cannot be mapped to the exchange's spelling).
    #[error("unknown symbol: {0}")]
    UnknownSymbol(String),
    /// A value of the right type but unusable: zero or negative price or
    /// quantity, a number too large for `Decimal`, a bad timestamp.
    #[error("invalid value: {0}")]
    InvalidValue(String),
    /// The exchange itself reported an error (failed subscription, bad
    /// request); the text is the exchange's message.
    #[error("exchange error: {0}")]
    ExchangeError(String),
}

impl ParseError {
    /// Stable metric label for this error.
    pub fn kind(&self) -> &'static str {
        match self {
            ParseError::Malformed(_) => "malformed",
            ParseError::UnknownMessage(_) => "unknown_message",
            ParseError::UnknownSymbol(_) => "unknown_symbol",
            ParseError::InvalidValue(_) => "invalid_value",
            ParseError::ExchangeError(_) => "exchange_error",
        }
    }
}

/// One exchange's wire protocol, as the producer's connection loop needs it.
///
/// Implementations are plain data (their symbol table), so one adapter can be
/// shared by the WebSocket reader and the REST poller.
pub trait Exchange: Send + Sync + 'static {
    /// Which exchange this adapter speaks to.
    fn source(&self) -> Source;

    /// Full URL to connect to, built from a base (the real default or the
    /// simulator, e.g. `ws://127.0.0.1:PORT`). Binance builds
    /// `{base}/stream?streams=btcusdt@trade/ethusdt@trade`; Coinbase and
    /// Kraken use the base as is (Kraken's default already ends in `/v2`).
    fn ws_url(&self, base: &str) -> String {
        base.to_string()
    }

    /// Text frames to send after connecting (and after every reconnect).
    fn subscribe_messages(&self) -> Vec<String>;

    /// Application-level ping the client should send, and how often (Kraken
    /// `{"method":"ping"}`); `None` when the exchange pings the client with
    /// WebSocket ping frames (Binance) or needs none (Coinbase), which is the
    /// default.
    fn app_ping(&self) -> Option<(std::time::Duration, String)> {
        None
    }

    /// Parses one text frame; pushes every trade it contains into `out`.
    /// On error, `out` may hold trades of the same frame parsed before the
    /// bad one; callers that want all-or-nothing truncate it.
    fn parse_frame(&self, text: &str, out: &mut Vec<RawTrade>) -> Result<FrameKind, ParseError>;

    /// REST URL returning recent trades for one normalized symbol (for
    /// polling): the base, then [`Exchange::rest_trades_path`].
    fn rest_trades_url(&self, base: &str, symbol: &str, limit: u32) -> String {
        let path = self.rest_trades_path(self.symbol_map().raw_or_given(symbol), limit);
        format!("{}{path}", base.trim_end_matches('/'))
    }

    /// Path and query of the recent-trades endpoint for one exchange symbol
    /// (`raw`, e.g. `BTCUSDT`), at most `limit` trades.
    fn rest_trades_path(&self, raw: &str, limit: u32) -> String;

    /// Parses a REST trades response for one normalized symbol. Trades are
    /// pushed in ascending trade id order whatever order the exchange uses.
    /// An unknown symbol or a body that is not UTF-8 text (or too large) is
    /// refused here; the exchange's format is [`Exchange::parse_rest_text`].
    fn parse_rest(
        &self,
        symbol: &str,
        body: &[u8],
        out: &mut Vec<RawTrade>,
    ) -> Result<(), ParseError> {
        let (symbol, raw_symbol) = self.symbol_map().by_normalized(symbol)?;
        let text = decode::rest_text(body)?;
        let page = RestPage {
            symbol,
            raw_symbol,
            text,
        };
        self.parse_rest_text(page, out)
    }

    /// The exchange's REST trades format, for one page of one symbol.
    fn parse_rest_text(&self, page: RestPage<'_>, out: &mut Vec<RawTrade>) -> Parsed;

    /// The symbols this adapter was built for, with their exchange
    /// spellings.
    fn symbol_map(&self) -> &SymbolMap;

    /// Normalized symbols this adapter was built for.
    fn symbols(&self) -> &[Arc<str>] {
        self.symbol_map().normalized()
    }
}

/// One REST trades response, as [`Exchange::parse_rest_text`] gets it.
pub struct RestPage<'a> {
    /// The normalized symbol it was asked for.
    pub symbol: &'a Arc<str>,
    /// The exchange's spelling of it, as asked.
    pub raw_symbol: &'a Arc<str>,
    /// The body, checked to be UTF-8 and within `MAX_REST_BYTES`.
    pub text: &'a str,
}

impl RestPage<'_> {
    /// A trade of the page's symbol (REST bodies carry no feed sequence).
    pub(crate) fn trade(
        &self,
        trade_id: u64,
        price: Decimal,
        qty: Decimal,
        side: Side,
        exchange_ts: DateTime<Utc>,
    ) -> RawTrade {
        let symbol = (self.symbol, self.raw_symbol);
        RawTrade::new(symbol, trade_id, price, qty, side, exchange_ts)
    }

    /// Decodes `json` (a JSON array of the exchange's REST trades), converts
    /// each with `convert` and pushes them in ascending `id` order:
    /// [`Exchange::parse_rest`] promises that order whatever order the
    /// exchange lists them in, so the sort lives here once rather than in
    /// every adapter.
    pub(crate) fn push_sorted<'j, T: serde::Deserialize<'j>>(
        &self,
        json: &'j str,
        id: impl Fn(&T) -> u64,
        out: &mut Vec<RawTrade>,
        convert: impl FnMut(T) -> Result<RawTrade, ParseError>,
    ) -> Parsed {
        let mut trades: Vec<T> = decode::json(json)?;
        trades.sort_by_key(id);
        out.reserve(trades.len());
        for trade in trades.into_iter().map(convert) {
            out.push(trade?);
        }
        Ok(())
    }
}

/// What parsing a REST page returns: the trades went into `out`.
pub type Parsed = Result<(), ParseError>;

/// Builds the adapter for `source`, subscribed to `symbols` (normalized
/// `BASE-QUOTE`). Fails with [`ParseError::UnknownSymbol`] when the list is
/// empty or a symbol is not normalized, so a typo in the config stops the
/// producer at start instead of producing an empty stream.
pub fn adapter(source: Source, symbols: &[String]) -> Result<Box<dyn Exchange>, ParseError> {
    Ok(match source {
        Source::Binance => Box::new(Binance::new(symbols)?),
        Source::Coinbase => Box::new(Coinbase::new(symbols)?),
        Source::Kraken => Box::new(Kraken::new(symbols)?),
    })
}

/// The real public WebSocket endpoint of each exchange.
pub fn default_ws_url(source: Source) -> &'static str {
    match source {
        Source::Binance => "wss://stream.binance.com:9443",
        Source::Coinbase => "wss://ws-feed.exchange.coinbase.com",
        Source::Kraken => "wss://ws.kraken.com/v2",
    }
}

/// The real public REST base of each exchange.
pub fn default_rest_url(source: Source) -> &'static str {
    match source {
        Source::Binance => "https://api.binance.com",
        Source::Coinbase => "https://api.exchange.coinbase.com",
        Source::Kraken => "https://api.kraken.com",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syms(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn adapter_validates_symbols() {
        struct TestCase {
            source: Source,
            symbols: Vec<String>,
            expected_ok: bool,
        }
        let cases = vec![
            // TC0: normal list
            TestCase {
                source: Source::Binance,
                symbols: syms(&["BTC-USDT", "ETH-USDT"]),
                expected_ok: true,
            },
            // TC1: empty list is a config error
            TestCase {
                source: Source::Coinbase,
                symbols: vec![],
                expected_ok: false,
            },
            // TC2: not normalized
            TestCase {
                source: Source::Kraken,
                symbols: syms(&["btc/usd"]),
                expected_ok: false,
            },
            // TC3: exchange spelling instead of normalized
            TestCase {
                source: Source::Binance,
                symbols: syms(&["BTCUSDT"]),
                expected_ok: false,
            },
        ];
        for (i, tc) in cases.into_iter().enumerate() {
            let got = adapter(tc.source, &tc.symbols);
            assert_eq!(got.is_ok(), tc.expected_ok, "TC{i}");
            if let Err(e) = got {
                assert_eq!(e.kind(), "unknown_symbol", "TC{i}");
            }
        }
    }

    #[test]
    fn urls() {
        // (source, symbols, WebSocket base, its URL, REST URL of the first
        // symbol on the default REST base)
        let cases = [
            (
                Source::Binance,
                &["BTC-USDT", "ETH-USDT"][..],
                "ws://127.0.0.1:9000/",
                "ws://127.0.0.1:9000/stream?streams=btcusdt@trade/ethusdt@trade",
                "https://api.binance.com/api/v3/trades?symbol=BTCUSDT&limit=1000",
            ),
            (
                Source::Coinbase,
                &["BTC-USD"][..],
                default_ws_url(Source::Coinbase),
                "wss://ws-feed.exchange.coinbase.com",
                "https://api.exchange.coinbase.com/products/BTC-USD/trades?limit=1000",
            ),
            (
                Source::Kraken,
                &["BTC-USD"][..],
                default_ws_url(Source::Kraken),
                "wss://ws.kraken.com/v2",
                "https://api.kraken.com/0/public/Trades?pair=BTC/USD&count=1000",
            ),
        ];
        for (source, symbols, ws_base, ws_url, rest_url) in cases {
            let ex = adapter(source, &syms(symbols)).unwrap();
            assert_eq!(ex.ws_url(ws_base), ws_url, "{source:?}");
            let rest = ex.rest_trades_url(default_rest_url(source), symbols[0], 1000);
            assert_eq!(rest, rest_url, "{source:?}");
            // Only Kraken wants application pings.
            assert_eq!(ex.app_ping().is_some(), source == Source::Kraken);
            assert!(!ex.symbols().is_empty(), "{source:?}");
        }
    }

    #[test]
    fn error_kinds() {
        for (err, kind) in [
            (ParseError::Malformed(String::new()), "malformed"),
            (ParseError::UnknownMessage(String::new()), "unknown_message"),
            (ParseError::UnknownSymbol(String::new()), "unknown_symbol"),
            (ParseError::InvalidValue(String::new()), "invalid_value"),
            (ParseError::ExchangeError(String::new()), "exchange_error"),
        ] {
            assert_eq!(err.kind(), kind, "{err:?}");
        }
    }
}
