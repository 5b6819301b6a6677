//! Binance spot: `<symbol>@trade` streams on `/ws/<streams>` (bare events)
//! and `/stream?streams=a/b` (wrapped as `{"stream":..,"data":..}`), live
//! `SUBSCRIBE` / `UNSUBSCRIBE` / `LIST_SUBSCRIPTIONS`, WebSocket Ping frames
//! from the server, and `GET /api/v3/trades`.
//!
//! Like Binance, a stream name the simulator does not serve is accepted and
//! simply carries nothing. Prices and quantities are printed with 8 decimals,
//! as Binance does.

use super::{json_response, page};
use crate::conn::Conn;
use crate::market::{Market, SimTrade};
use crate::wire::Writer;
use crate::Shared;
use axum::extract::ws::Utf8Bytes;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use tickbridge_model::{Side, Source};

/// Binance's number of decimals for prices and quantities on the wire.
const SCALE: u32 = 8;

/// `{"e":"trade","E":1672515782136,"s":"BNBBTC","t":12345,"p":"0.00100000",
/// "q":"100.00000000","T":1672515782136,"m":true,"M":true}`, optionally
/// wrapped for a combined stream. `m` (buyer is maker) is true when the taker
/// sold. The event time `E` equals the trade time, keeping frames
/// deterministic.
pub fn trade_frame(w: &mut Writer, m: &Market, t: &SimTrade, combined: bool) -> Utf8Bytes {
    let ms = t.ts_micros.div_euclid(1000);
    if combined {
        w.s(r#"{"stream":""#).s(&m.stream).s(r#"","data":"#);
    }
    w.s(r#"{"e":"trade","E":"#)
        .i(ms)
        .s(r#","s":""#)
        .s(&m.raw)
        .s(r#"","t":"#)
        .u(t.id);
    w.s(r#","p":""#).dec(t.price_ticks, t.price_scale, SCALE);
    w.s(r#"","q":""#).dec(t.qty_ticks, t.qty_scale, SCALE);
    w.s(r#"","T":"#).i(ms).s(r#","m":"#);
    w.s(if t.taker == Side::Sell {
        "true"
    } else {
        "false"
    });
    w.s(r#","M":true}"#);
    if combined {
        w.s("}");
    }
    w.frame()
}

/// Markets named by a list of stream names (`btcusdt@trade`).
pub(crate) fn markets_for_streams<'a>(
    shared: &Shared,
    streams: impl Iterator<Item = &'a str>,
) -> Vec<std::sync::Arc<Market>> {
    streams
        .filter_map(|s| shared.find(Source::Binance, |m| m.stream == s))
        .cloned()
        .collect()
}

#[derive(Deserialize)]
struct Request {
    method: String,
    #[serde(default)]
    params: Vec<String>,
    #[serde(default)]
    id: Option<serde_json::Value>,
}

/// Live requests: `{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":1}`
/// answered `{"result":null,"id":1}`.
pub(crate) fn control(conn: &mut Conn, text: &str) {
    let reply = match serde_json::from_str::<Request>(text) {
        Err(e) => format!(
            r#"{{"error":{{"code":3,"msg":{}}},"id":null}}"#,
            json(&format!("Invalid JSON: {e}"))
        ),
        Ok(req) => {
            let id = req.id.map_or("null".to_string(), |v| v.to_string());
            match req.method.as_str() {
                "SUBSCRIBE" => {
                    for m in
                        markets_for_streams(&conn.shared, req.params.iter().map(String::as_str))
                    {
                        conn.subscribe(&m);
                    }
                    format!(r#"{{"result":null,"id":{id}}}"#)
                }
                "UNSUBSCRIBE" => {
                    for m in
                        markets_for_streams(&conn.shared, req.params.iter().map(String::as_str))
                    {
                        conn.unsubscribe(&m);
                    }
                    format!(r#"{{"result":null,"id":{id}}}"#)
                }
                "LIST_SUBSCRIPTIONS" => {
                    let names: Vec<&str> =
                        conn.subs.iter().map(|s| s.market.stream.as_str()).collect();
                    format!(r#"{{"result":{},"id":{id}}}"#, serde_json::json!(names))
                }
                other => format!(
                    r#"{{"error":{{"code":2,"msg":{}}},"id":{id}}}"#,
                    json(&format!("Invalid request: unknown method {other}"))
                ),
            }
        }
    };
    conn.out.push(crate::conn::Outgoing::Text(reply));
}

fn json(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// `GET /api/v3/trades?symbol=BTCUSDT&limit=500`: the last `limit` trades
/// (default 500, at most 1000), oldest first, as Binance lists them.
pub(crate) fn rest(shared: &Shared, symbol: Option<&str>, limit: Option<u64>) -> Response {
    let Some(m) = symbol.and_then(|s| shared.find(Source::Binance, |m| m.raw == s)) else {
        return json_response(
            StatusCode::BAD_REQUEST,
            r#"{"code":-1121,"msg":"Invalid symbol."}"#.into(),
        );
    };
    m.start();
    let mut w = Writer::new();
    w.s("[");
    for (k, id) in page(m.head(), limit.unwrap_or(500).min(1000)).enumerate() {
        let t = m.trade(id);
        if k > 0 {
            w.s(",");
        }
        let quote = (t.price() * t.qty()).normalize();
        w.s(r#"{"id":"#)
            .u(id)
            .s(r#","price":""#)
            .dec(t.price_ticks, t.price_scale, SCALE);
        w.s(r#"","qty":""#).dec(t.qty_ticks, t.qty_scale, SCALE);
        w.s(r#"","quoteQty":""#)
            .s(&quote.to_string())
            .s(r#"","time":"#)
            .i(t.ts_micros.div_euclid(1000));
        w.s(r#","isBuyerMaker":"#).s(if t.taker == Side::Sell {
            "true"
        } else {
            "false"
        });
        w.s(r#","isBestMatch":true}"#);
    }
    w.s("]");
    json_response(StatusCode::OK, w.string())
}
