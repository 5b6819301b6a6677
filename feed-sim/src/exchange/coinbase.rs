//! Coinbase Exchange: the feed at `/` with the `matches` and `heartbeat`
//! channels, and `GET /products/{id}/trades`.
//!
//! Subscribing accepts both documented forms,
//! `{"type":"subscribe","product_ids":[..],"channels":["matches"]}` and
//! `"channels":[{"name":"matches","product_ids":[..]}]`, answers with the
//! `subscriptions` message, then (like Coinbase) sends a `last_match` with the
//! market's previous trade, if any, before the live `match`es. A `match`'s
//! `side` is the MAKER's side. `sequence` is the product's feed sequence:
//! `seq_base + trade_id`, shared by every connection, so a skipped trade shows
//! as a jump in both `trade_id` and `sequence`. Other channels and unknown
//! products are refused with Coinbase's `error` message.

use super::{json_response, page};
use crate::conn::{Conn, Outgoing, Sub};
use crate::market::{Market, SimTrade};
use crate::wire::Writer;
use crate::Shared;
use axum::extract::ws::Utf8Bytes;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use std::sync::Arc;
use tickbridge_model::{Side, Source};

fn maker_side(t: &SimTrade) -> &'static str {
    match t.taker {
        Side::Buy => "sell",
        Side::Sell => "buy",
    }
}

/// A deterministic UUID-shaped order id.
fn order_id(w: &mut Writer, seed: u64) {
    let a = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (seed >> 29);
    let b = a.rotate_left(23).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let s = format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    );
    w.s(&s);
}

/// `{"type":"match","trade_id":10,"sequence":50,"maker_order_id":"..",
/// "taker_order_id":"..","time":"2014-11-07T08:19:27.028459Z",
/// "product_id":"BTC-USD","size":"5.23512","price":"400.23","side":"sell"}`
pub fn match_frame(w: &mut Writer, m: &Market, t: &SimTrade, last_match: bool) -> Utf8Bytes {
    w.s(if last_match {
        r#"{"type":"last_match","trade_id":"#
    } else {
        r#"{"type":"match","trade_id":"#
    });
    w.u(t.id)
        .s(r#","sequence":"#)
        .u(m.seq_base + t.id)
        .s(r#","maker_order_id":""#);
    order_id(w, t.id ^ m.seq_base);
    w.s(r#"","taker_order_id":""#);
    order_id(w, !t.id ^ m.seq_base);
    w.s(r#"","time":""#)
        .rfc3339(t.ts_micros)
        .s(r#"","product_id":""#)
        .s(&m.raw);
    w.s(r#"","size":""#)
        .dec(t.qty_ticks, t.qty_scale, t.qty_scale);
    w.s(r#"","price":""#)
        .dec(t.price_ticks, t.price_scale, t.price_scale);
    w.s(r#"","side":""#).s(maker_side(t)).s(r#""}"#);
    w.frame()
}

/// `{"type":"heartbeat","sequence":90,"last_trade_id":20,"product_id":"BTC-USD","time":".."}`
pub(crate) fn heartbeat(w: &mut Writer, m: &Market) -> String {
    let head = m.head();
    w.s(r#"{"type":"heartbeat","sequence":"#)
        .u(m.seq_base + head)
        .s(r#","last_trade_id":"#)
        .u(head);
    w.s(r#","product_id":""#).s(&m.raw).s(r#"","time":""#);
    w.rfc3339(chrono::Utc::now().timestamp_micros()).s(r#""}"#);
    w.string()
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Channel {
    Name(String),
    Object {
        name: String,
        #[serde(default)]
        product_ids: Vec<String>,
    },
}

#[derive(Deserialize)]
struct Request {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    product_ids: Vec<String>,
    #[serde(default)]
    channels: Vec<Channel>,
}

fn error(message: &str, reason: &str) -> Outgoing {
    Outgoing::Text(
        serde_json::json!({"type": "error", "message": message, "reason": reason}).to_string(),
    )
}

/// Handles `subscribe` / `unsubscribe`.
pub(crate) fn control(conn: &mut Conn, text: &str) {
    let req: Request = match serde_json::from_str(text) {
        Ok(r) => r,
        Err(e) => return conn.out.push(error("Malformed JSON", &e.to_string())),
    };
    let subscribe = match req.kind.as_str() {
        "subscribe" => true,
        "unsubscribe" => false,
        other => {
            return conn.out.push(error(
                "Failed to subscribe",
                &format!("{other} is not a valid message type"),
            ))
        }
    };
    // Resolve everything first: Coinbase refuses the whole request if any
    // product or channel is invalid.
    let mut wanted: Vec<(bool, Arc<Market>)> = Vec::new(); // (is_heartbeat, market)
    for ch in &req.channels {
        let (name, ids) = match ch {
            Channel::Name(n) => (n.as_str(), &req.product_ids),
            Channel::Object { name, product_ids } if !product_ids.is_empty() => {
                (name.as_str(), product_ids)
            }
            Channel::Object { name, .. } => (name.as_str(), &req.product_ids),
        };
        let heartbeat = match name {
            "matches" => false,
            "heartbeat" => true,
            other => {
                return conn.out.push(error(
                    "Failed to subscribe",
                    &format!("{other} is not a valid channel"),
                ))
            }
        };
        for id in ids {
            match conn.shared.find(Source::Coinbase, |m| &m.raw == id) {
                Some(m) => wanted.push((heartbeat, m.clone())),
                None => {
                    return conn.out.push(error(
                        "Failed to subscribe",
                        &format!("{id} is not a valid product"),
                    ))
                }
            }
        }
    }
    if wanted.is_empty() {
        return conn.out.push(error(
            "Failed to subscribe",
            "No channels or product ids provided",
        ));
    }
    for (heartbeat, m) in wanted {
        let existing = conn.subs.iter().position(|s| Arc::ptr_eq(&s.market, &m));
        if subscribe {
            let is_new = existing.is_none();
            let i = conn.subscribe(&m);
            let s = &mut conn.subs[i];
            if is_new {
                s.trades = false;
            }
            if heartbeat {
                s.heartbeat = true;
            } else if !s.trades {
                // (Re)starting trades: after the head, preceded by the
                // market's previous trade as `last_match`.
                s.trades = true;
                s.next_id = s.market.next_for_new_subscriber();
                if s.next_id > 1 {
                    let id = s.next_id - 1;
                    conn.out.push(Outgoing::LastMatch(i, id));
                }
            }
        } else if let Some(i) = existing {
            let s = &mut conn.subs[i];
            if heartbeat {
                s.heartbeat = false;
            } else {
                s.trades = false;
            }
            if !s.heartbeat && !s.trades {
                conn.unsubscribe(&m);
            }
        }
    }
    // The subscriptions reply lists the products of each channel; the
    // last_match frames queued above follow it.
    let mut channels = Vec::new();
    let wanted: [(&str, ChannelOf); 2] =
        [("matches", |s| s.trades), ("heartbeat", |s| s.heartbeat)];
    for (name, on) in wanted {
        let ids: Vec<&str> = conn
            .subs
            .iter()
            .filter(|s| on(s))
            .map(|s| s.market.raw.as_str())
            .collect();
        if !ids.is_empty() {
            channels.push(serde_json::json!({"name": name, "product_ids": ids}));
        }
    }
    let reply = serde_json::json!({"type": "subscriptions", "channels": channels}).to_string();
    let at = conn
        .out
        .iter()
        .position(|o| matches!(o, Outgoing::LastMatch(..)))
        .unwrap_or(conn.out.len());
    conn.out.insert(at, Outgoing::Text(reply));
}

/// Whether a subscription is on one Coinbase channel, so the subscriptions
/// reply is built by one loop over the channels.
type ChannelOf = fn(&Sub) -> bool;

/// `GET /products/{id}/trades?limit=N`: the last `limit` trades (default and
/// maximum 1000), newest first, as Coinbase lists them.
pub(crate) fn rest(shared: &Shared, product: &str, limit: Option<u64>) -> Response {
    let Some(m) = shared.find(Source::Coinbase, |m| m.raw == product) else {
        return json_response(StatusCode::NOT_FOUND, r#"{"message":"NotFound"}"#.into());
    };
    m.start();
    let mut w = Writer::new();
    w.s("[");
    for (k, id) in page(m.head(), limit.unwrap_or(1000).min(1000))
        .rev()
        .enumerate()
    {
        let t = m.trade(id);
        if k > 0 {
            w.s(",");
        }
        w.s(r#"{"time":""#)
            .rfc3339(t.ts_micros)
            .s(r#"","trade_id":"#)
            .u(id);
        w.s(r#","price":""#)
            .dec(t.price_ticks, t.price_scale, t.price_scale);
        w.s(r#"","size":""#)
            .dec(t.qty_ticks, t.qty_scale, t.qty_scale);
        w.s(r#"","side":""#).s(maker_side(&t)).s(r#""}"#);
    }
    w.s("]");
    json_response(StatusCode::OK, w.string())
}
