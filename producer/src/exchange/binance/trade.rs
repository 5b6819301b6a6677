//! Binance wire structs, each quoting the payload it parses.
//!
//! Text fields are `Cow<str>` so they borrow from the frame when it has no
//! escapes (always, in practice) and still parse when it does.

use crate::exchange::ParseError;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// Every frame on a Binance market-stream connection, read once to route it:
///
/// ```json
/// {"stream":"btcusdt@trade","data":{"e":"trade", ...}}   combined stream
/// {"e":"trade","E":1672515782136, ...}                     raw stream
/// {"result":null,"id":1}                                   request answered
/// {"error":{"code":2,"msg":"Invalid request"},"id":1}      request refused
/// ```
///
/// A combined-stream event is decoded in this same pass, so a trade frame
/// is read once, not once to route it and again to parse it.
#[derive(Debug, Deserialize)]
pub(super) struct BinanceEnvelope<'a> {
    /// The event of a combined-stream frame.
    #[serde(borrow, default)]
    pub data: Option<BinanceEvent<'a>>,
    /// Event type of a raw-stream frame.
    #[serde(rename = "e", borrow, default)]
    pub event: Option<Cow<'a, str>>,
    /// Request id of an answer (number or string).
    #[serde(borrow, default)]
    pub id: Option<&'a RawValue>,
    /// A refused request.
    #[serde(default)]
    pub error: Option<BinanceError>,
}

/// A refused request, on the stream (`{"code":2,"msg":"Invalid request:
/// unknown variable"}`, under `error`) or as a REST body
/// (`{"code":-1121,"msg":"Invalid symbol."}`): one shape for both.
#[derive(Debug, Deserialize)]
pub(super) struct BinanceError {
    pub code: i64,
    pub msg: String,
}

impl From<BinanceError> for ParseError {
    fn from(err: BinanceError) -> Self {
        ParseError::ExchangeError(format!("code {}: {}", err.code, err.msg))
    }
}

/// One market-stream event. For a trade, from the spot `<symbol>@trade`
/// stream (Binance docs, "Trade Streams"):
///
/// ```json
/// {"e":"trade","E":1672515782136,"s":"BNBBTC","t":12345,"p":"0.001",
///  "q":"100","T":1672515782136,"m":true,"M":true}
/// ```
///
/// `m` is "is the buyer the market maker?": true means the taker sold.
/// Every field is optional here because other event types share the
/// connection; a `trade` missing one is malformed (checked by the adapter).
/// Wrongly typed fields are rejected by serde as they are read.
#[derive(Debug, PartialEq, Deserialize)]
pub(super) struct BinanceEvent<'a> {
    #[serde(rename = "e", borrow, default)]
    pub event: Option<Cow<'a, str>>,
    #[serde(rename = "s", borrow, default)]
    pub symbol: Option<Cow<'a, str>>,
    #[serde(rename = "t", default)]
    pub trade_id: Option<u64>,
    #[serde(rename = "p", borrow, default)]
    pub price: Option<Cow<'a, str>>,
    #[serde(rename = "q", borrow, default)]
    pub qty: Option<Cow<'a, str>>,
    /// Trade time, ms since the epoch (`E` is the event time, later).
    #[serde(rename = "T", default)]
    pub trade_time: Option<i64>,
    #[serde(rename = "m", default)]
    pub buyer_is_maker: Option<bool>,
}

/// One element of `GET /api/v3/trades` (Binance docs, "Recent trades list"):
///
/// ```json
/// [{"id":28457,"price":"4.00000100","qty":"12.00000000","quoteQty":"48.000012",
///   "time":1499865549590,"isBuyerMaker":true,"isBestMatch":true}]
/// ```
#[derive(Debug, Deserialize)]
pub(super) struct BinanceRestTrade<'a> {
    pub id: u64,
    #[serde(borrow)]
    pub price: Cow<'a, str>,
    #[serde(borrow)]
    pub qty: Cow<'a, str>,
    pub time: i64,
    #[serde(rename = "isBuyerMaker")]
    pub is_buyer_maker: bool,
}
