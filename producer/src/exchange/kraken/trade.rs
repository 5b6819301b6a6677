//! Kraken v2 wire structs, each quoting the payload it parses.

use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::HashMap;
use tickbridge_model::Side;

/// Every v2 message is either a channel message (`channel`, `type`, `data`)
/// or a method response (`method`, `success`, `error`); one struct reads the
/// routing fields of both:
///
/// ```json
/// {"channel":"trade","type":"update","data":[...]}
/// {"channel":"heartbeat"}
/// {"method":"subscribe","result":{"channel":"trade","snapshot":true,"symbol":"MATIC/USD"},
///  "success":true,"time_in":"2023-09-25T09:04:31.742599Z","time_out":"2023-09-25T09:04:31.742648Z"}
/// {"error":"Currency pair not supported FOO/USD","method":"subscribe","success":false,
///  "symbol":"FOO/USD","time_in":"...","time_out":"..."}
/// {"method":"pong","req_id":101,"time_in":"...","time_out":"..."}
/// ```
#[derive(Debug, Deserialize)]
pub(super) struct KrakenMessage<'a> {
    #[serde(borrow, default)]
    pub channel: Option<Cow<'a, str>>,
    #[serde(rename = "type", borrow, default)]
    pub kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub data: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub method: Option<Cow<'a, str>>,
    #[serde(default)]
    pub success: Option<bool>,
    #[serde(borrow, default)]
    pub error: Option<Cow<'a, str>>,
}

/// One element of a `trade` message's `data` (Kraken docs, WebSocket v2
/// "Trades"); price and qty are JSON numbers:
///
/// ```json
/// {"symbol":"MATIC/USD","side":"buy","price":0.5147,"qty":6423.46326,
///  "ord_type":"limit","trade_id":4665846,"timestamp":"2023-09-25T07:48:36.925533Z"}
/// ```
///
/// `side` is the taker's side.
#[derive(Debug, Deserialize)]
pub(super) struct KrakenTrade<'a> {
    #[serde(borrow)]
    pub symbol: Cow<'a, str>,
    pub side: Side,
    #[serde(borrow)]
    pub price: &'a RawValue,
    #[serde(borrow)]
    pub qty: &'a RawValue,
    pub trade_id: u64,
    #[serde(borrow)]
    pub timestamp: Cow<'a, str>,
}

/// `GET /0/public/Trades` (Kraken docs, "Get Recent Trades"):
///
/// ```json
/// {"error":[],"result":{"XXBTZUSD":[["30243.40000","0.34507674",1688669597.8277369,"b","m","",61044952]],
///  "last":"1688671969993150842"}}
/// ```
#[derive(Debug, Deserialize)]
pub(super) struct KrakenRest<'a> {
    #[serde(default)]
    pub error: Vec<String>,
    #[serde(borrow, default)]
    pub result: Option<HashMap<String, &'a RawValue>>,
}

/// One REST trade: `[price, volume, time, buy/sell, market/limit, misc, trade_id]`.
/// `time` is seconds since the epoch as a JSON number, read from its text.
#[derive(Debug, Deserialize)]
pub(super) struct KrakenRestTrade<'a>(
    #[serde(borrow)] pub Cow<'a, str>,
    #[serde(borrow)] pub Cow<'a, str>,
    #[serde(borrow)] pub &'a RawValue,
    #[serde(borrow)] pub Cow<'a, str>,
    #[serde(borrow)] pub Cow<'a, str>,
    #[serde(borrow)] pub Cow<'a, str>,
    pub u64,
);
