//! Property tests: no input makes any parser panic.
//!
//! Arbitrary text, arbitrary JSON, arbitrary bytes for REST bodies, and real
//! frames with random mutations (the inputs most likely to reach deep into a
//! parser). The only property is "returns", whichever `Result` it returns.

use super::{adapter, Exchange, RawTrade};
use proptest::prelude::*;
use tickbridge_model::Source;

fn adapters() -> Vec<Box<dyn Exchange>> {
    let symbols = vec![
        "BTC-USDT".to_string(),
        "BTC-USD".to_string(),
        "MATIC-USD".to_string(),
    ];
    Source::ALL
        .iter()
        .map(|s| adapter(*s, &symbols).unwrap())
        .collect()
}

/// Real frames of every exchange, as mutation seeds.
const SEEDS: &[&str] = &[
    r#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1672515782136,"s":"BTCUSDT","t":12345,"p":"0.001","q":"100","T":1672515782136,"m":true,"M":true}}"#,
    r#"{"result":null,"id":1}"#,
    r#"{"type":"match","trade_id":10,"sequence":50,"maker_order_id":"ac928c66-ca53-498f-9c13-a110027a60e8","taker_order_id":"132fb6ae-456b-4654-b4e0-d681ac05cea1","time":"2014-11-07T08:19:27.028459Z","product_id":"BTC-USD","size":"5.23512","price":"400.23","side":"sell"}"#,
    r#"{"channel":"trade","type":"update","data":[{"symbol":"MATIC/USD","side":"sell","price":0.5117,"qty":40.0,"ord_type":"market","trade_id":4665906,"timestamp":"2023-09-25T07:49:37.708706Z"}]}"#,
    r#"{"error":[],"result":{"XXBTZUSD":[["30243.40000","0.34507674",1688669597.8277369,"b","m","",61044952]],"last":"1688671969993150842"}}"#,
    r#"[{"id":28457,"price":"4.00000100","qty":"12.00000000","quoteQty":"48.000012","time":1499865549590,"isBuyerMaker":true,"isBestMatch":true}]"#,
    r#"[{"time":"2020-03-20T00:36:59.860Z","trade_id":86327327,"price":"6225.32000000","size":"0.06469797","side":"sell"}]"#,
];

fn arb_json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[a-zA-Z0-9./:_-]{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("trade"),
            Just("match"),
            Just("last_match"),
            Just("heartbeat"),
            Just("subscribe"),
            Just("pong"),
            Just("snapshot"),
            Just("update"),
            Just("BTCUSDT"),
            Just("BTC-USD"),
            Just("MATIC/USD"),
            Just("-1"),
            Just("0"),
            Just("1e999"),
            Just("2014-11-07T08:19:27Z"),
        ]
        .prop_map(|s| Value::String(s.into())),
    ];
    let keys = prop_oneof![
        Just("e"),
        Just("s"),
        Just("t"),
        Just("p"),
        Just("q"),
        Just("T"),
        Just("m"),
        Just("data"),
        Just("stream"),
        Just("id"),
        Just("error"),
        Just("type"),
        Just("trade_id"),
        Just("sequence"),
        Just("price"),
        Just("size"),
        Just("side"),
        Just("time"),
        Just("product_id"),
        Just("channel"),
        Just("symbol"),
        Just("qty"),
        Just("timestamp"),
        Just("method"),
        Just("success"),
        Just("result"),
    ];
    leaf.prop_recursive(6, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(keys.clone().prop_map(String::from), inner, 0..10)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A seed frame with one byte range replaced by arbitrary text.
fn mutated() -> impl Strategy<Value = String> {
    (
        0..SEEDS.len(),
        any::<prop::sample::Index>(),
        0usize..8,
        ".{0,8}",
    )
        .prop_map(|(i, at, len, ins)| {
            let seed = SEEDS[i];
            let mut start = at.index(seed.len());
            while !seed.is_char_boundary(start) {
                start -= 1;
            }
            let mut end = (start + len).min(seed.len());
            while !seed.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}{}{}", &seed[..start], ins, &seed[end..])
        })
}

fn feed_all(text: &str) {
    let mut out: Vec<RawTrade> = Vec::new();
    for ex in adapters() {
        let _ = ex.parse_frame(text, &mut out);
        for sym in ex.symbols().to_vec() {
            let _ = ex.parse_rest(&sym, text.as_bytes(), &mut out);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_strings_never_panic(s in "\\PC{0,256}") {
        feed_all(&s);
    }

    #[test]
    fn arbitrary_json_never_panics(v in arb_json()) {
        feed_all(&v.to_string());
        // Also as the data of a combined stream and a Kraken trade message.
        feed_all(&format!(r#"{{"stream":"btcusdt@trade","data":{v}}}"#));
        feed_all(&format!(r#"{{"channel":"trade","type":"update","data":[{v}]}}"#));
    }

    #[test]
    fn mutated_real_frames_never_panic(s in mutated()) {
        feed_all(&s);
    }

    #[test]
    fn arbitrary_bytes_never_panic_rest(b in prop::collection::vec(any::<u8>(), 0..512)) {
        let mut out = Vec::new();
        for ex in adapters() {
            for sym in ex.symbols().to_vec() {
                let _ = ex.parse_rest(&sym, &b, &mut out);
            }
        }
    }
}
