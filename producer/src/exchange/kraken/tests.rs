//! Table-driven tests of the Kraken v2 adapter, on payloads quoted from the
//! Kraken WebSocket v2 and REST docs.

use super::*;
use crate::exchange::test_util::{run_rest, run_ws, trade, RestCase, TestCase};
use crate::exchange::FrameKind;

fn kraken() -> Kraken {
    Kraken::new(&["MATIC-USD".to_string(), "BTC-USD".to_string()]).unwrap()
}

const DOC_SNAPSHOT: &str = r#"{"channel":"trade","type":"snapshot","data":[{"symbol":"MATIC/USD","side":"buy","price":0.5147,"qty":6423.46326,"ord_type":"limit","trade_id":4665846,"timestamp":"2023-09-25T07:48:36.925533Z"},{"symbol":"MATIC/USD","side":"buy","price":0.5147,"qty":1136.19677815,"ord_type":"limit","trade_id":4665847,"timestamp":"2023-09-25T07:49:36.925603Z"}]}"#;

const DOC_UPDATE: &str = r#"{"channel":"trade","type":"update","data":[{"symbol":"MATIC/USD","side":"sell","price":0.5117,"qty":40.0,"ord_type":"market","trade_id":4665906,"timestamp":"2023-09-25T07:49:37.708706Z"}]}"#;

#[test]
fn ws_frames() {
    let m =
        |id, price, qty, side, ts| trade("MATIC-USD", "MATIC/USD", id, price, qty, side, ts, None);
    let cases = vec![
        // TC0: the documented snapshot: two trades, numbers read exactly
        TestCase {
            input: DOC_SNAPSHOT.into(),
            expected: Ok((FrameKind::Trades, vec![
                m(4665846, "0.5147", "6423.46326", Side::Buy, "2023-09-25T07:48:36.925533Z"),
                m(4665847, "0.5147", "1136.19677815", Side::Buy, "2023-09-25T07:49:36.925603Z"),
            ])),
        },
        // TC1: the documented update; "40.0" keeps its scale
        TestCase { input: DOC_UPDATE.into(), expected: Ok((FrameKind::Trades, vec![m(4665906, "0.5117", "40.0", Side::Sell, "2023-09-25T07:49:37.708706Z")])) },
        // TC2: a price f64 cannot hold exactly
        TestCase {
            input: DOC_UPDATE.replace("0.5117", "97123.123456789012345"),
            expected: Ok((FrameKind::Trades, vec![m(4665906, "97123.123456789012345", "40.0", Side::Sell, "2023-09-25T07:49:37.708706Z")])),
        },
        // TC3: the documented subscribe ack
        TestCase { input: r#"{"method":"subscribe","result":{"channel":"trade","snapshot":true,"symbol":"MATIC/USD"},"success":true,"time_in":"2023-09-25T09:04:31.742599Z","time_out":"2023-09-25T09:04:31.742648Z"}"#.into(), expected: Ok((FrameKind::Subscribed, vec![])) },
        // TC4: a failed subscription
        TestCase { input: r#"{"error":"Currency pair not supported FOO/USD","method":"subscribe","req_id":42,"success":false,"symbol":"FOO/USD","time_in":"2023-09-25T09:04:31.742599Z","time_out":"2023-09-25T09:04:31.742648Z"}"#.into(), expected: Err("exchange_error") },
        // TC5: heartbeat
        TestCase { input: r#"{"channel":"heartbeat"}"#.into(), expected: Ok((FrameKind::Heartbeat, vec![])) },
        // TC6: pong
        TestCase { input: r#"{"method":"pong","req_id":101,"time_in":"2023-09-24T14:10:23.799685Z","time_out":"2023-09-24T14:10:23.799703Z"}"#.into(), expected: Ok((FrameKind::Pong, vec![])) },
        // TC7: the status message sent on connect
        TestCase { input: r#"{"channel":"status","data":[{"api_version":"v2","connection_id":12393906104898154338,"system":"online","version":"2.0.0"}],"type":"update"}"#.into(), expected: Ok((FrameKind::Ignored, vec![])) },
        // TC8: an unknown channel
        TestCase { input: r#"{"channel":"mystery","type":"update","data":[]}"#.into(), expected: Err("unknown_message") },
        // TC9: an unknown method
        TestCase { input: r#"{"method":"teleport","success":true}"#.into(), expected: Err("unknown_message") },
        // TC10: unsubscribed pair
        TestCase { input: DOC_UPDATE.replace("MATIC/USD", "ETH/USD"), expected: Err("unknown_symbol") },
        // TC11: price sent as a string
        TestCase { input: DOC_UPDATE.replace("0.5117", "\"0.5117\""), expected: Err("malformed") },
        // TC12: a number too large for a Decimal
        TestCase { input: DOC_UPDATE.replace("0.5117", "1e400"), expected: Err("invalid_value") },
        // TC13: zero quantity
        TestCase { input: DOC_UPDATE.replace("40.0", "0"), expected: Err("invalid_value") },
        // TC14: negative price
        TestCase { input: DOC_UPDATE.replace("0.5117", "-0.5117"), expected: Err("invalid_value") },
        // TC15: bad timestamp
        TestCase { input: DOC_UPDATE.replace("2023-09-25T07:49:37.708706Z", "2023-13-45"), expected: Err("invalid_value") },
        // TC16: trade without data
        TestCase { input: r#"{"channel":"trade","type":"update"}"#.into(), expected: Err("malformed") },
        // TC17: data of the wrong type
        TestCase { input: r#"{"channel":"trade","type":"update","data":{"a":1}}"#.into(), expected: Err("malformed") },
        // TC18: unknown trade message type
        TestCase { input: r#"{"channel":"trade","type":"delete","data":[]}"#.into(), expected: Err("unknown_message") },
        // TC19: an empty update is fine
        TestCase { input: r#"{"channel":"trade","type":"update","data":[]}"#.into(), expected: Ok((FrameKind::Trades, vec![])) },
    ];
    run_ws(&kraken(), cases);
}

#[test]
fn rest_bodies() {
    let doc = r#"{"error":[],"result":{"XXBTZUSD":[["30243.40000","0.34507674",1688669597.8277369,"b","m","",61044952],["30243.30000","0.00376960",1688669598.2804112,"s","l","",61044953],["30243.30000","0.01235716",1688669602.698379,"s","m","",61044956]],"last":"1688671969993150842"}}"#;
    let b = |id, price, qty, side, ts| trade("BTC-USD", "BTC/USD", id, price, qty, side, ts, None);
    let cases = vec![
        // TC0: the documented body
        RestCase {
            symbol: "BTC-USD",
            input: doc.into(),
            expected: Ok(vec![
                b(61044952, "30243.40000", "0.34507674", Side::Buy, "2023-07-06T18:53:17.827736900Z"),
                b(61044953, "30243.30000", "0.00376960", Side::Sell, "2023-07-06T18:53:18.280411200Z"),
                b(61044956, "30243.30000", "0.01235716", Side::Sell, "2023-07-06T18:53:22.698379Z"),
            ]),
        },
        // TC1: Kraken's error envelope
        RestCase { symbol: "BTC-USD", input: br#"{"error":["EQuery:Unknown asset pair"]}"#.to_vec(), expected: Err("exchange_error") },
        // TC2: empty result
        RestCase { symbol: "BTC-USD", input: br#"{"error":[],"result":{"last":"0"}}"#.to_vec(), expected: Ok(vec![]) },
        // TC3: unknown symbol
        RestCase { symbol: "ETH-USD", input: doc.into(), expected: Err("unknown_symbol") },
        // TC4: the old 6-field rows without trade_id
        RestCase { symbol: "BTC-USD", input: br#"{"error":[],"result":{"XXBTZUSD":[["30243.40000","0.34507674",1688669597.8277369,"b","m",""]],"last":"1"}}"#.to_vec(), expected: Err("malformed") },
        // TC5: invalid UTF-8
        RestCase { symbol: "BTC-USD", input: vec![b'{', 0x80, b'}'], expected: Err("malformed") },
        // TC6: an unknown side letter
        RestCase { symbol: "BTC-USD", input: doc.replacen("\"b\"", "\"x\"", 1).into(), expected: Err("malformed") },
        // TC7: negative volume
        RestCase { symbol: "BTC-USD", input: doc.replace("\"0.34507674\"", "\"-0.34507674\"").into(), expected: Err("invalid_value") },
    ];
    run_rest(&kraken(), cases);
}

#[test]
fn subscribe_and_ping() {
    let k = kraken();
    let v: serde_json::Value = serde_json::from_str(&k.subscribe_messages()[0]).unwrap();
    assert_eq!(v["method"], "subscribe");
    assert_eq!(v["params"]["channel"], "trade");
    assert_eq!(
        v["params"]["symbol"],
        serde_json::json!(["MATIC/USD", "BTC/USD"])
    );
    let (every, ping) = k.app_ping().unwrap();
    assert!(every > Duration::ZERO);
    assert_eq!(ping, r#"{"method":"ping"}"#);
}
