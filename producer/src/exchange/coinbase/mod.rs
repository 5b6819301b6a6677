//! Coinbase Exchange: the `matches` channel (plus `heartbeat`) of the public
//! WebSocket feed, and `GET /products/{id}/trades` for polling.
//!
//! Two Coinbase details matter for correctness:
//!
//! * the `side` of a `match` (and of a REST trade) is the MAKER order's side,
//!   so the taker side is the opposite;
//! * every `match` carries the product's `sequence`, a second continuity check
//!   beside `trade_id`, which the adapter passes on as [`RawTrade::feed_seq`].
//!
//! Coinbase asks clients to ignore message types they do not know, so the
//! feed's other documented types are [`FrameKind::Ignored`]; only a `type`
//! that is in no documented channel is `UnknownMessage`.

mod trade;

use super::decode::{self, SymbolMap};
use super::{Exchange, FrameKind, ParseError, Parsed, RawTrade, RestPage};
use tickbridge_model::{Side, Source};
use trade::{CoinbaseError, CoinbaseMatch, CoinbaseRestTrade, CoinbaseType, MakerSide};

/// Coinbase Exchange adapter.
#[derive(Debug, Clone)]
pub struct Coinbase {
    symbols: SymbolMap,
}

/// Message types of the public feed's channels that carry no trades for us.
const IGNORED_TYPES: &[&str] = &[
    "ticker",
    "ticker_batch",
    "snapshot",
    "l2update",
    "status",
    "received",
    "open",
    "done",
    "change",
    "activate",
    "auction",
    "rfq_match",
];

impl Coinbase {
    /// Adapter for normalized `symbols`; Coinbase product ids are already
    /// `BASE-QUOTE` (`BTC-USD`).
    pub fn new(symbols: &[String]) -> Result<Self, ParseError> {
        Ok(Self {
            symbols: SymbolMap::new(symbols, |b, q| format!("{b}-{q}"))?,
        })
    }
}

fn taker_side(maker: MakerSide) -> Side {
    match maker {
        MakerSide::Buy => Side::Sell,
        MakerSide::Sell => Side::Buy,
    }
}

impl Exchange for Coinbase {
    fn source(&self) -> Source {
        Source::Coinbase
    }

    /// One subscribe for every product: `matches` for the trades, `heartbeat`
    /// so a quiet product is told apart from a dead connection.
    fn subscribe_messages(&self) -> Vec<String> {
        let msg = serde_json::json!({
            "type": "subscribe",
            "product_ids": self.symbols.raw(),
            "channels": ["matches", "heartbeat"],
        });
        vec![msg.to_string()]
    }

    fn parse_frame(&self, text: &str, out: &mut Vec<RawTrade>) -> Result<FrameKind, ParseError> {
        decode::check_frame(text)?;
        let probe: CoinbaseType = decode::json(text)?;
        let Some(kind) = probe.kind else {
            return Err(ParseError::UnknownMessage(decode::excerpt(text)));
        };
        match kind.as_ref() {
            "match" | "last_match" => {
                let m: CoinbaseMatch = decode::json(text)?;
                let trade = RawTrade::new(
                    self.symbols.by_raw(&m.product_id)?,
                    m.trade_id,
                    decode::positive_decimal("price", &m.price)?,
                    decode::positive_decimal("size", &m.size)?,
                    taker_side(m.side),
                    decode::from_rfc3339("time", &m.time)?,
                );
                out.push(RawTrade {
                    feed_seq: Some(m.sequence),
                    ..trade
                });
                Ok(FrameKind::Trades)
            }
            "subscriptions" => Ok(FrameKind::Subscribed),
            "heartbeat" => Ok(FrameKind::Heartbeat),
            "error" => {
                let e: CoinbaseError = decode::json(text)?;
                Err(ParseError::ExchangeError(match e.reason {
                    Some(reason) => format!("{}: {reason}", e.message),
                    None => e.message,
                }))
            }
            other if IGNORED_TYPES.contains(&other) => Ok(FrameKind::Ignored),
            _ => Err(ParseError::UnknownMessage(decode::excerpt(text))),
        }
    }

    fn rest_trades_path(&self, raw: &str, limit: u32) -> String {
        format!("/products/{raw}/trades?limit={limit}")
    }

    fn parse_rest_text(&self, page: RestPage<'_>, out: &mut Vec<RawTrade>) -> Parsed {
        if decode::first_byte(page.text) == Some(b'{') {
            let e: CoinbaseError = decode::json(page.text)?;
            return Err(ParseError::ExchangeError(e.message));
        }
        // Coinbase lists newest first; `push_sorted` puts ids in ascending order.
        page.push_sorted(
            page.text,
            |t: &CoinbaseRestTrade| t.trade_id,
            out,
            |t| {
                Ok(page.trade(
                    t.trade_id,
                    decode::positive_decimal("price", &t.price)?,
                    decode::positive_decimal("size", &t.size)?,
                    taker_side(t.side),
                    decode::from_rfc3339("time", &t.time)?,
                ))
            },
        )
    }

    fn symbol_map(&self) -> &SymbolMap {
        &self.symbols
    }
}

#[cfg(test)]
mod tests;
