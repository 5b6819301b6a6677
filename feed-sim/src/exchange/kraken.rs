//! Kraken spot WebSocket v2 at `/v2`: the `trade` channel, `ping`/`pong`,
//! `heartbeat` on idle connections, the `status` message on connect, and
//! `GET /0/public/Trades`.
//!
//! Price and qty are JSON numbers, printed with the market's full decimal
//! text (trailing zeros included), so only a parser that reads the literal
//! gets them exactly. The simulator sends one trade per `update` message and
//! no `snapshot` (the subscription's `snapshot` flag is accepted and
//! ignored). The REST body is keyed by the v2 pair name (`BTC/USDT`).

use super::{json_response, page};
use crate::conn::{Conn, Outgoing};
use crate::market::{Market, SimTrade};
use crate::wire::Writer;
use crate::Shared;
use axum::extract::ws::Utf8Bytes;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use tickbridge_model::{Side, Source};

fn side(t: &SimTrade) -> &'static str {
    match t.taker {
        Side::Buy => "buy",
        Side::Sell => "sell",
    }
}

fn ord_type(t: &SimTrade) -> &'static str {
    if t.qty_ticks.is_multiple_of(3) {
        "limit"
    } else {
        "market"
    }
}

/// `{"channel":"trade","type":"update","data":[{"symbol":"MATIC/USD",
/// "side":"sell","price":0.5117,"qty":40.0,"ord_type":"market",
/// "trade_id":4665906,"timestamp":"2023-09-25T07:49:37.708706Z"}]}`
pub fn trade_frame(w: &mut Writer, m: &Market, t: &SimTrade) -> Utf8Bytes {
    w.s(r#"{"channel":"trade","type":"update","data":[{"symbol":""#)
        .s(&m.raw);
    w.s(r#"","side":""#).s(side(t)).s(r#"","price":"#).dec(
        t.price_ticks,
        t.price_scale,
        t.price_scale,
    );
    w.s(r#","qty":"#).dec(t.qty_ticks, t.qty_scale, t.qty_scale);
    w.s(r#","ord_type":""#)
        .s(ord_type(t))
        .s(r#"","trade_id":"#)
        .u(t.id);
    w.s(r#","timestamp":""#).rfc3339(t.ts_micros).s(r#""}]}"#);
    w.frame()
}

/// The `status` message Kraken sends on connect.
pub(crate) fn status(conn_id: u64) -> String {
    format!(
        r#"{{"channel":"status","data":[{{"api_version":"v2","connection_id":{conn_id},"system":"online","version":"2.0.0"}}],"type":"update"}}"#
    )
}

#[derive(Deserialize)]
struct Params {
    #[serde(default)]
    channel: String,
    #[serde(default)]
    symbol: Vec<String>,
}

#[derive(Deserialize)]
struct Request {
    method: String,
    #[serde(default)]
    params: Option<Params>,
    #[serde(default)]
    req_id: Option<u64>,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Handles `subscribe`, `unsubscribe` and `ping`.
pub(crate) fn control(conn: &mut Conn, text: &str) {
    let time_in = now();
    let req: Request = match serde_json::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            let reply = serde_json::json!({"error": format!("Malformed request: {e}"), "success": false, "time_in": time_in, "time_out": now()});
            return conn.out.push(Outgoing::Text(reply.to_string()));
        }
    };
    let with_req_id = |mut v: serde_json::Value| {
        if let Some(id) = req.req_id {
            v["req_id"] = id.into();
        }
        Outgoing::Text(v.to_string())
    };
    match req.method.as_str() {
        "ping" => {
            let reply =
                serde_json::json!({"method": "pong", "time_in": time_in, "time_out": now()});
            conn.out.push(with_req_id(reply));
        }
        method @ ("subscribe" | "unsubscribe") => {
            let params = req.params.unwrap_or(Params {
                channel: String::new(),
                symbol: Vec::new(),
            });
            if params.channel != "trade" {
                let reply = serde_json::json!({"error": format!("Channel {:?} is not supported", params.channel), "method": method, "success": false, "time_in": time_in, "time_out": now()});
                return conn.out.push(with_req_id(reply));
            }
            for sym in &params.symbol {
                let Some(m) = conn.shared.find(Source::Kraken, |m| &m.raw == sym).cloned() else {
                    let reply = serde_json::json!({"error": format!("Currency pair not supported {sym}"), "method": method, "success": false, "symbol": sym, "time_in": time_in, "time_out": now()});
                    conn.out.push(with_req_id(reply));
                    continue;
                };
                let mut result = serde_json::json!({"channel": "trade", "symbol": sym});
                if method == "subscribe" {
                    conn.subscribe(&m);
                    result["snapshot"] = false.into();
                } else {
                    conn.unsubscribe(&m);
                }
                let reply = serde_json::json!({"method": method, "result": result, "success": true, "time_in": time_in, "time_out": now()});
                conn.out.push(with_req_id(reply));
            }
        }
        other => {
            let reply = serde_json::json!({"error": format!("Method {other:?} is not supported"), "method": other, "success": false, "time_in": time_in, "time_out": now()});
            conn.out.push(with_req_id(reply));
        }
    }
}

/// `GET /0/public/Trades?pair=BTC/USDT&count=N`: the last `count` trades
/// (default 1000), oldest first, each
/// `[price, volume, time, "b"|"s", "m"|"l", misc, trade_id]`. An unknown pair
/// is `{"error":["EQuery:Unknown asset pair"]}`, with status 200 as Kraken does.
pub(crate) fn rest(shared: &Shared, pair: Option<&str>, count: Option<u64>) -> Response {
    let found = pair.and_then(|p| {
        shared.find(Source::Kraken, |m| {
            m.raw == p || m.raw.replace('/', "") == p
        })
    });
    let Some(m) = found else {
        return json_response(
            StatusCode::OK,
            r#"{"error":["EQuery:Unknown asset pair"]}"#.into(),
        );
    };
    m.start();
    let mut w = Writer::new();
    w.s(r#"{"error":[],"result":{""#).s(&m.raw).s(r#"":["#);
    let mut last = 0i64;
    for (k, id) in page(m.head(), count.unwrap_or(1000).min(1000)).enumerate() {
        let t = m.trade(id);
        if k > 0 {
            w.s(",");
        }
        w.s(r#"[""#)
            .dec(t.price_ticks, t.price_scale, t.price_scale);
        w.s(r#"",""#)
            .dec(t.qty_ticks, t.qty_scale, t.qty_scale)
            .s(r#"","#)
            .epoch_secs(t.ts_micros);
        w.s(if t.taker == Side::Buy {
            r#","b",""#
        } else {
            r#","s",""#
        });
        w.s(if ord_type(&t) == "limit" { "l" } else { "m" })
            .s(r#"","","#)
            .u(id)
            .s("]");
        last = t.ts_micros;
    }
    w.s(r#"],"last":""#)
        .i(last.saturating_mul(1000))
        .s(r#""}}"#);
    json_response(StatusCode::OK, w.string())
}
