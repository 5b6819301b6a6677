//! Coinbase Exchange wire structs, each quoting the payload it parses.

use serde::Deserialize;
use std::borrow::Cow;

/// Every feed message has a `type`; it is read first to route the frame.
#[derive(Debug, Deserialize)]
pub(super) struct CoinbaseType<'a> {
    #[serde(rename = "type", borrow, default)]
    pub kind: Option<Cow<'a, str>>,
}

/// Side of the MAKER order, as Coinbase reports it.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum MakerSide {
    Buy,
    Sell,
}

/// A trade on the `matches` channel (Coinbase Exchange docs, "Match"); the
/// first one after subscribing is a `last_match` of the same shape:
///
/// ```json
/// {"type":"match","trade_id":10,"sequence":50,
///  "maker_order_id":"ac928c66-ca53-498f-9c13-a110027a60e8",
///  "taker_order_id":"132fb6ae-456b-4654-b4e0-d681ac05cea1",
///  "time":"2014-11-07T08:19:27.028459Z","product_id":"BTC-USD",
///  "size":"5.23512","price":"400.23","side":"sell"}
/// ```
#[derive(Debug, Deserialize)]
pub(super) struct CoinbaseMatch<'a> {
    pub trade_id: u64,
    pub sequence: u64,
    #[serde(borrow)]
    pub time: Cow<'a, str>,
    #[serde(borrow)]
    pub product_id: Cow<'a, str>,
    #[serde(borrow)]
    pub size: Cow<'a, str>,
    #[serde(borrow)]
    pub price: Cow<'a, str>,
    pub side: MakerSide,
}

/// An error message (feed) or error body (REST):
///
/// ```json
/// {"type":"error","message":"Failed to subscribe","reason":"BTC-FOO is not a valid product"}
/// {"message":"NotFound"}
/// ```
#[derive(Debug, Deserialize)]
pub(super) struct CoinbaseError {
    pub message: String,
    #[serde(default)]
    pub reason: Option<String>,
}

/// One element of `GET /products/{product_id}/trades` (Coinbase Exchange
/// docs, "Get product trades"); `side` is the maker side here too:
///
/// ```json
/// [{"time":"2020-03-20T00:36:59.860Z","trade_id":86327327,
///   "price":"6225.32000000","size":"0.06469797","side":"sell"}]
/// ```
#[derive(Debug, Deserialize)]
pub(super) struct CoinbaseRestTrade<'a> {
    #[serde(borrow)]
    pub time: Cow<'a, str>,
    pub trade_id: u64,
    #[serde(borrow)]
    pub price: Cow<'a, str>,
    #[serde(borrow)]
    pub size: Cow<'a, str>,
    pub side: MakerSide,
}
