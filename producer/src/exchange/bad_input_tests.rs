//! Hostile and broken input, the same table for every exchange: each kind
//! of bad frame gets its own [`ParseError`] kind (the label it is counted
//! under), and none panics or grows memory beyond the frame limit.
//!
//! Every case starts from a real frame of the exchange (which must parse) and
//! changes one thing, so a rejection is known to be caused by that one thing.

use super::{adapter, Exchange, MAX_FRAME_BYTES, MAX_REST_BYTES};
use tickbridge_model::Source;

/// A real trade frame per exchange, and the fields the cases replace.
struct Template {
    source: Source,
    symbols: &'static [&'static str],
    frame: &'static str,
    /// `(what, replace, with)`: one variation per bad-input category.
    cases: &'static [(&'static str, &'static str, &'static str, &'static str)],
}

const TEMPLATES: &[Template] = &[
    Template {
        source: Source::Binance,
        symbols: &["BTC-USDT"],
        frame: r#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1672515782136,"s":"BTCUSDT","t":12345,"p":"0.001","q":"100","T":1672515782136,"m":true,"M":true}}"#,
        cases: &[
            // (category, replace, with, expected kind)
            (
                "huge price",
                r#""p":"0.001""#,
                r#""p":"123456789012345678901234567890123456789""#,
                "invalid_value",
            ),
            ("negative qty", r#""q":"100""#, r#""q":"-100""#, "invalid_value"),
            ("zero price", r#""p":"0.001""#, r#""p":"0.000""#, "invalid_value"),
            ("unknown symbol", r#""s":"BTCUSDT""#, r#""s":"DOGEUSDT""#, "unknown_symbol"),
            ("id as string", r#""t":12345"#, r#""t":"12345""#, "malformed"),
            ("price as number", r#""p":"0.001""#, r#""p":0.001"#, "malformed"),
            ("negative id", r#""t":12345"#, r#""t":-1"#, "malformed"),
            ("id past u64", r#""t":12345"#, r#""t":18446744073709551616"#, "malformed"),
            ("time past chrono", r#""T":1672515782136"#, r#""T":9223372036854775807"#, "invalid_value"),
        ],
    },
    Template {
        source: Source::Coinbase,
        symbols: &["BTC-USD"],
        frame: r#"{"type":"match","trade_id":10,"sequence":50,"maker_order_id":"ac928c66-ca53-498f-9c13-a110027a60e8","taker_order_id":"132fb6ae-456b-4654-b4e0-d681ac05cea1","time":"2014-11-07T08:19:27.028459Z","product_id":"BTC-USD","size":"5.23512","price":"400.23","side":"sell"}"#,
        cases: &[
            (
                "huge price",
                r#""price":"400.23""#,
                r#""price":"1e400""#,
                "invalid_value",
            ),
            ("negative qty", r#""size":"5.23512""#, r#""size":"-5.23512""#, "invalid_value"),
            ("unknown symbol", r#""product_id":"BTC-USD""#, r#""product_id":"DOGE-USD""#, "unknown_symbol"),
            ("id as string", r#""trade_id":10"#, r#""trade_id":"10""#, "malformed"),
            ("side unknown", r#""side":"sell""#, r#""side":"up""#, "malformed"),
            ("bad time", r#""time":"2014-11-07T08:19:27.028459Z""#, r#""time":"yesterday""#, "invalid_value"),
        ],
    },
    Template {
        source: Source::Kraken,
        symbols: &["MATIC-USD"],
        frame: r#"{"channel":"trade","type":"update","data":[{"symbol":"MATIC/USD","side":"sell","price":0.5117,"qty":40.0,"ord_type":"market","trade_id":4665906,"timestamp":"2023-09-25T07:49:37.708706Z"}]}"#,
        cases: &[
            ("huge price", r#""price":0.5117"#, r#""price":1e400"#, "invalid_value"),
            (
                "price with 400 digits",
                r#""price":0.5117"#,
                // 400 digits: serde_json reads it fine as a RawValue; Decimal refuses it.
                "\"price\":1000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
                "invalid_value",
            ),
            ("negative qty", r#""qty":40.0"#, r#""qty":-40.0"#, "invalid_value"),
            ("unknown symbol", r#""symbol":"MATIC/USD""#, r#""symbol":"DOGE/USD""#, "unknown_symbol"),
            ("price as string", r#""price":0.5117"#, r#""price":"0.5117""#, "malformed"),
            ("data not a list", r#""data":["#, r#""data":{"x":["#, "malformed"),
        ],
    },
];

fn build(t: &Template) -> Box<dyn Exchange> {
    let symbols: Vec<String> = t.symbols.iter().map(|s| s.to_string()).collect();
    adapter(t.source, &symbols).unwrap()
}

#[test]
fn one_bad_field_gives_one_error_kind() {
    for t in TEMPLATES {
        let ex = build(t);
        let mut out = Vec::new();
        ex.parse_frame(t.frame, &mut out)
            .unwrap_or_else(|e| panic!("{:?}: the template must parse: {e}", t.source));
        assert_eq!(out.len(), 1, "{:?}", t.source);
        for (i, (what, from, to, kind)) in t.cases.iter().enumerate() {
            assert!(
                t.frame.contains(from),
                "{:?} TC{i} ({what}): bad template",
                t.source
            );
            let frame = t.frame.replacen(from, to, 1);
            let mut out = Vec::new();
            let got = ex.parse_frame(&frame, &mut out);
            match got {
                Err(e) => {
                    assert_eq!(e.kind(), *kind, "{:?} TC{i} ({what}): {e}", t.source);
                    // The message quotes a bounded excerpt, never the frame.
                    assert!(e.to_string().len() < 400, "{:?} TC{i}: {e}", t.source);
                }
                Ok(k) => panic!("{:?} TC{i} ({what}): accepted as {k:?}: {out:?}", t.source),
            }
        }
    }
}

#[test]
fn deep_nesting_is_malformed_not_a_stack_overflow() {
    // serde_json stops at 128 levels; 100,000 would overflow the stack of a
    // naive recursive parser. Both the whole frame and a nested field are
    // tried, for every exchange, within the 1 MiB frame limit.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_obj = format!("{}1{}", r#"{"a":"#.repeat(50_000), "}".repeat(50_000));
    for t in TEMPLATES {
        let ex = build(t);
        for frame in [
            deep.clone(),
            deep_obj.clone(),
            format!(r#"{{"stream":"btcusdt@trade","data":{deep}}}"#),
            format!(r#"{{"channel":"trade","type":"update","data":[{deep}]}}"#),
            format!(r#"{{"type":"match","trade_id":{deep}}}"#),
        ] {
            assert!(frame.len() <= MAX_FRAME_BYTES);
            let mut out = Vec::new();
            let e = ex.parse_frame(&frame, &mut out).unwrap_err();
            assert!(
                matches!(e.kind(), "malformed" | "unknown_message"),
                "{:?}: {e}",
                t.source
            );
            assert!(out.is_empty());
            // REST bodies go through the same limit.
            let e = ex
                .parse_rest(&ex.symbols()[0], frame.as_bytes(), &mut out)
                .unwrap_err();
            assert_eq!(e.kind(), "malformed", "{:?}: {e}", t.source);
        }
    }
}

#[test]
fn oversized_input_is_refused_before_parsing() {
    // A valid frame padded past the limit with whitespace: still rejected,
    // by size, with the size in the message.
    for t in TEMPLATES {
        let ex = build(t);
        let mut frame = t.frame.to_string();
        frame.push_str(&" ".repeat(MAX_FRAME_BYTES));
        let mut out = Vec::new();
        let e = ex.parse_frame(&frame, &mut out).unwrap_err();
        assert_eq!(e.kind(), "malformed", "{:?}", t.source);
        assert!(e.to_string().contains("limit"), "{e}");
        let body = vec![b' '; MAX_REST_BYTES + 1];
        let e = ex
            .parse_rest(&ex.symbols()[0], &body, &mut out)
            .unwrap_err();
        assert!(e.to_string().contains("limit"), "{e}");
        assert!(out.is_empty());
    }
}

#[test]
fn invalid_utf8_rest_bodies_are_malformed() {
    // WebSocket text frames are UTF-8 by protocol (the socket layer rejects
    // them, see `source::ws`); REST bodies are bytes and checked here.
    for t in TEMPLATES {
        let ex = build(t);
        for body in [
            &b"\xff\xfe\xfd"[..],
            b"[{\"id\":1,\"price\":\"\xc3\x28\"}]",
            b"{\"error\":[],\"result\":{\"\xed\xa0\x80\":[]}}",
        ] {
            let mut out = Vec::new();
            let e = ex.parse_rest(&ex.symbols()[0], body, &mut out).unwrap_err();
            assert_eq!(e.kind(), "malformed", "{:?}: {e}", t.source);
        }
    }
}
