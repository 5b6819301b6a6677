//! Kraken spot WebSocket v2: the `trade` channel, and
//! `GET /0/public/Trades` for polling.
//!
//! Kraken v2 sends price and qty as JSON *numbers*. Reading them through
//! `f64` would round (`0.1 + 0.2` territory), so the wire structs hold them as
//! [`serde_json::value::RawValue`] and the decimal is built from the number's
//! literal text. (serde_json's `arbitrary_precision` feature would do the same
//! but changes number handling for the whole workspace, so it stays off.)
//!
//! Kraken expects the client to ping (`{"method":"ping"}`) and sends a
//! `heartbeat` channel message about once a second while subscribed.

mod trade;

use super::decode::{self, SymbolMap};
use super::{Exchange, FrameKind, ParseError, Parsed, RawTrade, RestPage};
use std::time::Duration;
use tickbridge_model::{Side, Source};
use trade::{KrakenMessage, KrakenRest, KrakenRestTrade, KrakenTrade};

/// How often the producer pings Kraken. Kraken closes idle connections after
/// about a minute; pinging well inside that also measures round trips.
pub const PING_INTERVAL: Duration = Duration::from_secs(20);

/// Channels of the public v2 feed that carry nothing for us.
const IGNORED_CHANNELS: &[&str] = &["status", "book", "ticker", "ohlc", "instrument", "level3"];

/// Kraken spot (WebSocket v2) adapter.
#[derive(Debug, Clone)]
pub struct Kraken {
    symbols: SymbolMap,
}

impl Kraken {
    /// Adapter for normalized `symbols`; v2 spells pairs `BTC/USD` (not the
    /// v1 / REST `XBT` names).
    pub fn new(symbols: &[String]) -> Result<Self, ParseError> {
        Ok(Self {
            symbols: SymbolMap::new(symbols, |b, q| format!("{b}/{q}"))?,
        })
    }

    fn push_trade(&self, t: KrakenTrade<'_>, out: &mut Vec<RawTrade>) -> Result<(), ParseError> {
        out.push(RawTrade::new(
            self.symbols.by_raw(&t.symbol)?,
            t.trade_id,
            decode::positive_number("price", t.price)?,
            decode::positive_number("qty", t.qty)?,
            t.side,
            decode::from_rfc3339("timestamp", &t.timestamp)?,
        ));
        Ok(())
    }
}

impl Exchange for Kraken {
    fn source(&self) -> Source {
        Source::Kraken
    }

    /// One subscribe for every pair. `snapshot: false`: the 50-trade snapshot
    /// would replay trades already published before a reconnect; the
    /// pipeline's gap detection, not a replay, accounts for missed trades.
    fn subscribe_messages(&self) -> Vec<String> {
        let msg = serde_json::json!({
            "method": "subscribe",
            "params": {"channel": "trade", "symbol": self.symbols.raw(), "snapshot": false},
        });
        vec![msg.to_string()]
    }

    fn app_ping(&self) -> Option<(Duration, String)> {
        Some((PING_INTERVAL, r#"{"method":"ping"}"#.to_string()))
    }

    fn parse_frame(&self, text: &str, out: &mut Vec<RawTrade>) -> Result<FrameKind, ParseError> {
        decode::check_frame(text)?;
        let msg: KrakenMessage = decode::json(text)?;
        if let Some(channel) = msg.channel.as_deref() {
            return match channel {
                "trade" => {
                    match msg.kind.as_deref() {
                        Some("snapshot" | "update") => {}
                        _ => return Err(ParseError::UnknownMessage(decode::excerpt(text))),
                    }
                    let data = msg.data.ok_or_else(|| {
                        ParseError::Malformed("trade message without data".into())
                    })?;
                    let trades: Vec<KrakenTrade> = decode::json(data.get())?;
                    out.reserve(trades.len());
                    for t in trades {
                        self.push_trade(t, out)?;
                    }
                    Ok(FrameKind::Trades)
                }
                "heartbeat" => Ok(FrameKind::Heartbeat),
                c if IGNORED_CHANNELS.contains(&c) => Ok(FrameKind::Ignored),
                _ => Err(ParseError::UnknownMessage(decode::excerpt(text))),
            };
        }
        match msg.method.as_deref() {
            Some("subscribe") if msg.success == Some(true) => Ok(FrameKind::Subscribed),
            Some("pong") => Ok(FrameKind::Pong),
            Some("unsubscribe") if msg.success == Some(true) => Ok(FrameKind::Ignored),
            _ if msg.success == Some(false) || msg.error.is_some() => {
                Err(ParseError::ExchangeError(
                    msg.error
                        .map(|e| e.into_owned())
                        .unwrap_or_else(|| decode::excerpt(text)),
                ))
            }
            _ => Err(ParseError::UnknownMessage(decode::excerpt(text))),
        }
    }

    fn rest_trades_path(&self, raw: &str, limit: u32) -> String {
        format!("/0/public/Trades?pair={raw}&count={limit}")
    }

    /// Kraken keys the result by its own pair name (`XXBTZUSD` for a request
    /// by `XBTUSD`), so the adapter takes the one array in `result` and
    /// reports the v2 spelling as `raw_symbol`.
    fn parse_rest_text(&self, page: RestPage<'_>, out: &mut Vec<RawTrade>) -> Parsed {
        let rest: KrakenRest = decode::json(page.text)?;
        if !rest.error.is_empty() {
            return Err(ParseError::ExchangeError(rest.error.join("; ")));
        }
        let result = rest
            .result
            .ok_or_else(|| ParseError::Malformed("response without result".into()))?;
        let Some((_, list)) = result.iter().find(|(k, _)| k.as_str() != "last") else {
            return Ok(());
        };
        let id = |t: &KrakenRestTrade| t.6;
        page.push_sorted(list.get(), id, out, |trade| {
            let KrakenRestTrade(price, volume, time, side, _ord_type, _misc, trade_id) = trade;
            let side = match side.as_ref() {
                "b" => Side::Buy,
                "s" => Side::Sell,
                other => {
                    return Err(ParseError::Malformed(format!(
                        "side {:?}",
                        decode::excerpt(other)
                    )))
                }
            };
            Ok(page.trade(
                trade_id,
                decode::positive_decimal("price", &price)?,
                decode::positive_decimal("volume", &volume)?,
                side,
                decode::from_epoch_seconds("time", time)?,
            ))
        })
    }

    fn symbol_map(&self) -> &SymbolMap {
        &self.symbols
    }
}

#[cfg(test)]
mod tests;
