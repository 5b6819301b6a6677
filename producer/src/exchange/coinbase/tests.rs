//! Table-driven tests of the Coinbase adapter, on payloads quoted from the
//! Coinbase Exchange WebSocket and REST docs.

use super::*;
use crate::exchange::test_util::{run_rest, run_ws, trade, RestCase, TestCase};
use crate::exchange::FrameKind;

fn coinbase() -> Coinbase {
    Coinbase::new(&["BTC-USD".to_string(), "ETH-USD".to_string()]).unwrap()
}

const DOC_MATCH: &str = r#"{"type":"match","trade_id":10,"sequence":50,"maker_order_id":"ac928c66-ca53-498f-9c13-a110027a60e8","taker_order_id":"132fb6ae-456b-4654-b4e0-d681ac05cea1","time":"2014-11-07T08:19:27.028459Z","product_id":"BTC-USD","size":"5.23512","price":"400.23","side":"sell"}"#;

#[test]
fn ws_frames() {
    // The maker sold, so the taker bought.
    let doc = trade(
        "BTC-USD",
        "BTC-USD",
        10,
        "400.23",
        "5.23512",
        Side::Buy,
        "2014-11-07T08:19:27.028459Z",
        Some(50),
    );
    let cases = vec![
        // TC0: the documented match
        TestCase { input: DOC_MATCH.into(), expected: Ok((FrameKind::Trades, vec![doc.clone()])) },
        // TC1: last_match has the same shape
        TestCase { input: DOC_MATCH.replace(r#""type":"match""#, r#""type":"last_match""#), expected: Ok((FrameKind::Trades, vec![doc])) },
        // TC2: maker bought: the taker sold; scale of "0.10000000" kept
        TestCase {
            input: DOC_MATCH.replace(r#""side":"sell""#, r#""side":"buy""#).replace(r#""size":"5.23512""#, r#""size":"0.10000000""#),
            expected: Ok((FrameKind::Trades, vec![trade("BTC-USD", "BTC-USD", 10, "400.23", "0.10000000", Side::Sell, "2014-11-07T08:19:27.028459Z", Some(50))])),
        },
        // TC3: the subscriptions reply (string channel form)
        TestCase { input: r#"{"type":"subscriptions","channels":[{"name":"matches","product_ids":["BTC-USD","ETH-USD"]},{"name":"heartbeat","product_ids":["BTC-USD","ETH-USD"]}]}"#.into(), expected: Ok((FrameKind::Subscribed, vec![])) },
        // TC4: the documented heartbeat
        TestCase { input: r#"{"type":"heartbeat","sequence":90,"last_trade_id":20,"product_id":"BTC-USD","time":"2014-11-07T08:19:28.464459Z"}"#.into(), expected: Ok((FrameKind::Heartbeat, vec![])) },
        // TC5: the documented error
        TestCase { input: r#"{"type":"error","message":"Failed to subscribe","reason":"BTC-FOO is not a valid product"}"#.into(), expected: Err("exchange_error") },
        // TC6: a documented type of another channel is ignored
        TestCase { input: r#"{"type":"ticker","sequence":37475248783,"product_id":"ETH-USD","price":"1285.22"}"#.into(), expected: Ok((FrameKind::Ignored, vec![])) },
        // TC7: an undocumented type
        TestCase { input: r#"{"type":"surprise"}"#.into(), expected: Err("unknown_message") },
        // TC8: no type at all
        TestCase { input: r#"{"trade_id":10}"#.into(), expected: Err("unknown_message") },
        // TC9: a product we did not subscribe to
        TestCase { input: DOC_MATCH.replace("BTC-USD", "SOL-USD"), expected: Err("unknown_symbol") },
        // TC10: negative size
        TestCase { input: DOC_MATCH.replace(r#""size":"5.23512""#, r#""size":"-5.23512""#), expected: Err("invalid_value") },
        // TC11: a bad time
        TestCase { input: DOC_MATCH.replace("2014-11-07T08:19:27.028459Z", "yesterday"), expected: Err("invalid_value") },
        // TC12: sequence as a string
        TestCase { input: DOC_MATCH.replace(r#""sequence":50"#, r#""sequence":"50""#), expected: Err("malformed") },
        // TC13: an unknown side
        TestCase { input: DOC_MATCH.replace(r#""side":"sell""#, r#""side":"up""#), expected: Err("malformed") },
        // TC14: a huge price
        TestCase { input: DOC_MATCH.replace(r#""price":"400.23""#, &format!(r#""price":"{}""#, "9".repeat(400))), expected: Err("invalid_value") },
        // TC15: type of the wrong JSON type
        TestCase { input: r#"{"type":5}"#.into(), expected: Err("malformed") },
    ];
    run_ws(&coinbase(), cases);
}

#[test]
fn rest_bodies() {
    let doc = r#"[{"time":"2020-03-20T00:36:59.860Z","trade_id":86327327,"price":"6225.32000000","size":"0.06469797","side":"sell"}]"#;
    let cases = vec![
        // TC0: the documented body; maker sold, taker bought
        RestCase {
            symbol: "BTC-USD",
            input: doc.into(),
            expected: Ok(vec![trade("BTC-USD", "BTC-USD", 86327327, "6225.32000000", "0.06469797", Side::Buy, "2020-03-20T00:36:59.860Z", None)]),
        },
        // TC1: newest-first order comes back ascending
        RestCase {
            symbol: "ETH-USD",
            input: br#"[{"time":"2020-03-20T00:37:00.000001Z","trade_id":8,"price":"1.5","size":"2","side":"buy"},{"time":"2020-03-20T00:36:59Z","trade_id":7,"price":"1.5","size":"2","side":"buy"}]"#.to_vec(),
            expected: Ok(vec![
                trade("ETH-USD", "ETH-USD", 7, "1.5", "2", Side::Sell, "2020-03-20T00:36:59Z", None),
                trade("ETH-USD", "ETH-USD", 8, "1.5", "2", Side::Sell, "2020-03-20T00:37:00.000001Z", None),
            ]),
        },
        // TC2: Coinbase's error body
        RestCase { symbol: "BTC-USD", input: br#"{"message":"NotFound"}"#.to_vec(), expected: Err("exchange_error") },
        // TC3: unknown symbol
        RestCase { symbol: "DOGE-USD", input: doc.into(), expected: Err("unknown_symbol") },
        // TC4: invalid UTF-8
        RestCase { symbol: "BTC-USD", input: vec![0xc3, 0x28], expected: Err("malformed") },
        // TC5: wrong type for trade_id
        RestCase { symbol: "BTC-USD", input: doc.replace("86327327", "\"x\"").into(), expected: Err("malformed") },
    ];
    run_rest(&coinbase(), cases);
}

#[test]
fn subscribe_message_shape() {
    let msgs = coinbase().subscribe_messages();
    assert_eq!(msgs.len(), 1);
    let v: serde_json::Value = serde_json::from_str(&msgs[0]).unwrap();
    assert_eq!(v["type"], "subscribe");
    assert_eq!(v["product_ids"], serde_json::json!(["BTC-USD", "ETH-USD"]));
    assert_eq!(v["channels"], serde_json::json!(["matches", "heartbeat"]));
}
