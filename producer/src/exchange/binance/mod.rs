//! Binance spot: the `<symbol>@trade` stream over the combined-stream
//! endpoint, and `GET /api/v3/trades` for polling.
//!
//! Streams are named in the URL (`/stream?streams=btcusdt@trade/...`), so no
//! subscribe frame is needed, and every frame arrives wrapped as
//! `{"stream":"btcusdt@trade","data":{...}}`. Raw `/ws/<stream>` frames (the
//! bare event) are accepted too. Binance keeps the connection alive with
//! WebSocket ping frames, which the WebSocket client answers; there is no
//! application ping.

mod fast;
mod trade;

use super::decode::{self, SymbolMap};
use super::{Exchange, FrameKind, ParseError, Parsed, RawTrade, RestPage};
use tickbridge_model::{Side, Source};
use trade::{BinanceEnvelope, BinanceError, BinanceEvent, BinanceRestTrade};

/// Binance spot adapter.
#[derive(Debug, Clone)]
pub struct Binance {
    symbols: SymbolMap,
}

impl Binance {
    /// Adapter for normalized `symbols` (`BTC-USDT` is `BTCUSDT` on Binance).
    pub fn new(symbols: &[String]) -> Result<Self, ParseError> {
        Ok(Self {
            symbols: SymbolMap::new(symbols, |b, q| format!("{b}{q}"))?,
        })
    }

    /// Turns one decoded event (`e` = `trade`), bare or unwrapped from a
    /// combined-stream frame, into a trade. `text` is the frame, quoted in
    /// errors.
    fn parse_event(
        &self,
        ev: BinanceEvent<'_>,
        text: &str,
        out: &mut Vec<RawTrade>,
    ) -> Result<FrameKind, ParseError> {
        if ev.event.as_deref() != Some("trade") {
            return Err(ParseError::UnknownMessage(decode::excerpt(text)));
        }
        let missing = |field: &str| ParseError::Malformed(format!("trade event without `{field}`"));
        let symbol = ev.symbol.ok_or_else(|| missing("s"))?;
        let trade_id = ev.trade_id.ok_or_else(|| missing("t"))?;
        let price = ev.price.ok_or_else(|| missing("p"))?;
        let qty = ev.qty.ok_or_else(|| missing("q"))?;
        let trade_time = ev.trade_time.ok_or_else(|| missing("T"))?;
        let buyer_is_maker = ev.buyer_is_maker.ok_or_else(|| missing("m"))?;
        out.push(RawTrade::new(
            self.symbols.by_raw(&symbol)?,
            trade_id,
            decode::positive_decimal("price", &price)?,
            decode::positive_decimal("qty", &qty)?,
            taker_side(buyer_is_maker),
            decode::from_millis("trade time", trade_time)?,
        ));
        Ok(FrameKind::Trades)
    }
}

/// `m` / `isBuyerMaker` is true when the buyer's order was resting in the
/// book: the aggressor was the seller.
fn taker_side(buyer_is_maker: bool) -> Side {
    if buyer_is_maker {
        Side::Sell
    } else {
        Side::Buy
    }
}

impl Exchange for Binance {
    fn source(&self) -> Source {
        Source::Binance
    }

    fn ws_url(&self, base: &str) -> String {
        let streams: Vec<String> = self
            .symbols
            .raw()
            .iter()
            .map(|r| format!("{}@trade", r.to_ascii_lowercase()))
            .collect();
        format!(
            "{}/stream?streams={}",
            base.trim_end_matches('/'),
            streams.join("/")
        )
    }

    /// None: the streams are named in the URL.
    fn subscribe_messages(&self) -> Vec<String> {
        Vec::new()
    }

    fn parse_frame(&self, text: &str, out: &mut Vec<RawTrade>) -> Result<FrameKind, ParseError> {
        decode::check_frame(text)?;
        // Plain trade frames in one pass; everything else through serde.
        if let Some(event) = fast::trade_event(text) {
            return self.parse_event(event, text, out);
        }
        let env: BinanceEnvelope = decode::json(text)?;
        if let Some(err) = env.error {
            return Err(err.into());
        }
        if let Some(event) = env.data {
            return self.parse_event(event, text, out);
        }
        if env.event.is_some() {
            // A raw-stream frame: the event is the frame itself.
            let event: BinanceEvent = decode::json(text)?;
            return self.parse_event(event, text, out);
        }
        if env.id.is_some() {
            // `{"result":null,"id":1}`: the answer to SUBSCRIBE (or to any
            // other request we might send).
            return Ok(FrameKind::Subscribed);
        }
        Err(ParseError::UnknownMessage(decode::excerpt(text)))
    }

    fn rest_trades_path(&self, raw: &str, limit: u32) -> String {
        format!("/api/v3/trades?symbol={raw}&limit={limit}")
    }

    fn parse_rest_text(&self, page: RestPage<'_>, out: &mut Vec<RawTrade>) -> Parsed {
        if decode::first_byte(page.text) == Some(b'{') {
            let err: BinanceError = decode::json(page.text)?;
            return Err(err.into());
        }
        page.push_sorted(
            page.text,
            |t: &BinanceRestTrade| t.id,
            out,
            |t| {
                Ok(page.trade(
                    t.id,
                    decode::positive_decimal("price", &t.price)?,
                    decode::positive_decimal("qty", &t.qty)?,
                    taker_side(t.is_buyer_maker),
                    decode::from_millis("time", t.time)?,
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
