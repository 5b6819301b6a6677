//! Table-driven tests of the Binance adapter, on payloads quoted from the
//! Binance spot API docs.

use super::*;
use crate::exchange::test_util::{run_rest, run_ws, trade, RestCase, TestCase};
use crate::exchange::FrameKind;

fn binance() -> Binance {
    Binance::new(&["BNB-BTC".to_string(), "BTC-USDT".to_string()]).unwrap()
}

#[test]
fn ws_frames() {
    let doc_trade = r#"{"e":"trade","E":1672515782136,"s":"BNBBTC","t":12345,"p":"0.001","q":"100","T":1672515782136,"m":true,"M":true}"#;
    let bnb = |id, price, qty, side, ts| trade("BNB-BTC", "BNBBTC", id, price, qty, side, ts, None);
    let cases = vec![
        // TC0: the documented trade event, raw stream; m=true: the taker sold
        TestCase {
            input: doc_trade.into(),
            expected: Ok((FrameKind::Trades, vec![bnb(12345, "0.001", "100", Side::Sell, "2022-12-31T19:43:02.136Z")])),
        },
        // TC1: the same event inside the combined-stream wrapper
        TestCase {
            input: format!(r#"{{"stream":"bnbbtc@trade","data":{doc_trade}}}"#),
            expected: Ok((FrameKind::Trades, vec![bnb(12345, "0.001", "100", Side::Sell, "2022-12-31T19:43:02.136Z")])),
        },
        // TC2: older docs' shape with buyer/seller order ids, m=false (taker bought), scale kept
        TestCase {
            input: r#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1579481530911,"s":"BTCUSDT","t":158410082,"p":"0.01914100","q":"0.00700000","b":4110671841,"a":4110671533,"T":1579481530910,"m":false,"M":true}}"#.into(),
            expected: Ok((FrameKind::Trades, vec![trade("BTC-USDT", "BTCUSDT", 158410082, "0.01914100", "0.00700000", Side::Buy, "2020-01-20T00:52:10.910Z", None)])),
        },
        // TC3: SUBSCRIBE answered
        TestCase { input: r#"{"result":null,"id":1}"#.into(), expected: Ok((FrameKind::Subscribed, vec![])) },
        // TC4: a refused request
        TestCase { input: r#"{"error":{"code":2,"msg":"Invalid request: unknown variable"},"id":1}"#.into(), expected: Err("exchange_error") },
        // TC5: another event type on the same connection
        TestCase {
            input: r#"{"e":"aggTrade","E":1672515782136,"s":"BNBBTC","a":12345,"p":"0.001","q":"100","f":100,"l":105,"T":1672515782136,"m":true,"M":true}"#.into(),
            expected: Err("unknown_message"),
        },
        // TC6: an object of no known shape
        TestCase { input: r#"{"hello":"world"}"#.into(), expected: Err("unknown_message") },
        // TC7: a symbol we did not subscribe to
        TestCase { input: doc_trade.replace("BNBBTC", "ETHBTC"), expected: Err("unknown_symbol") },
        // TC8: zero quantity
        TestCase { input: doc_trade.replace(r#""q":"100""#, r#""q":"0.00000000""#), expected: Err("invalid_value") },
        // TC9: negative price
        TestCase { input: doc_trade.replace(r#""p":"0.001""#, r#""p":"-0.001""#), expected: Err("invalid_value") },
        // TC10: a price too large for a Decimal
        TestCase { input: doc_trade.replace(r#""p":"0.001""#, r#""p":"99999999999999999999999999999999999""#), expected: Err("invalid_value") },
        // TC11: price as a number instead of a string
        TestCase { input: doc_trade.replace(r#""p":"0.001""#, r#""p":0.001"#), expected: Err("malformed") },
        // TC12: trade id as a string
        TestCase { input: doc_trade.replace(r#""t":12345"#, r#""t":"12345""#), expected: Err("malformed") },
        // TC13: negative trade id
        TestCase { input: doc_trade.replace(r#""t":12345"#, r#""t":-1"#), expected: Err("malformed") },
        // TC14: a trade time no calendar holds
        TestCase { input: doc_trade.replace(r#""T":1672515782136"#, r#""T":9223372036854775807"#), expected: Err("invalid_value") },
        // TC15: missing field
        TestCase { input: doc_trade.replace(r#","m":true"#, ""), expected: Err("malformed") },
        // TC16: combined wrapper around garbage
        TestCase { input: r#"{"stream":"bnbbtc@trade","data":[1]}"#.into(), expected: Err("malformed") },
    ];
    run_ws(&binance(), cases);
}

#[test]
fn rest_bodies() {
    let doc = r#"[{"id":28457,"price":"4.00000100","qty":"12.00000000","quoteQty":"48.000012","time":1499865549590,"isBuyerMaker":true,"isBestMatch":true}]"#;
    let cases = vec![
        // TC0: the documented recent-trades body
        RestCase {
            symbol: "BTC-USDT",
            input: doc.into(),
            expected: Ok(vec![trade("BTC-USDT", "BTCUSDT", 28457, "4.00000100", "12.00000000", Side::Sell, "2017-07-12T13:19:09.590Z", None)]),
        },
        // TC1: out-of-order ids come back sorted
        RestCase {
            symbol: "BTC-USDT",
            input: r#"[{"id":2,"price":"1.0","qty":"1","quoteQty":"1","time":1499865549590,"isBuyerMaker":false,"isBestMatch":true},{"id":1,"price":"1.0","qty":"1","quoteQty":"1","time":1499865549590,"isBuyerMaker":false,"isBestMatch":true}]"#.into(),
            expected: Ok(vec![
                trade("BTC-USDT", "BTCUSDT", 1, "1.0", "1", Side::Buy, "2017-07-12T13:19:09.590Z", None),
                trade("BTC-USDT", "BTCUSDT", 2, "1.0", "1", Side::Buy, "2017-07-12T13:19:09.590Z", None),
            ]),
        },
        // TC2: empty list
        RestCase { symbol: "BTC-USDT", input: b"[]".to_vec(), expected: Ok(vec![]) },
        // TC3: Binance's error body
        RestCase { symbol: "BTC-USDT", input: br#"{"code":-1121,"msg":"Invalid symbol."}"#.to_vec(), expected: Err("exchange_error") },
        // TC4: a symbol this adapter was not built for
        RestCase { symbol: "ETH-USDT", input: doc.into(), expected: Err("unknown_symbol") },
        // TC5: invalid UTF-8
        RestCase { symbol: "BTC-USDT", input: vec![b'[', 0xff, 0xfe, b']'], expected: Err("malformed") },
        // TC6: zero price
        RestCase { symbol: "BTC-USDT", input: doc.replace("4.00000100", "0").into(), expected: Err("invalid_value") },
        // TC7: HTML error page
        RestCase { symbol: "BTC-USDT", input: b"<html>502 Bad Gateway</html>".to_vec(), expected: Err("malformed") },
    ];
    run_rest(&binance(), cases);
}
