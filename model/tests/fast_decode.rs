//! The readers' fast tick decoder (`schema::fast_tick`) held to the JSON
//! Schema: for generated valid ticks and for bodies with one field broken,
//! removed, duplicated, escaped or added, `schema::decode` (fast path first)
//! returns exactly what `schema::decode_full` (JSON value, compiled JSON
//! Schema, deserialize) returns, and the fast path takes every valid tick.

use proptest::prelude::*;
use tickbridge_model::schema::{decode, decode_full, fast_tick};

/// One valid tick as (key, raw JSON value) pairs, in the producer's order.
fn valid_fields() -> impl Strategy<Value = Vec<(String, String)>> {
    let sym = "[A-Z0-9]{1,6}-[A-Z0-9]{1,5}";
    let decimal = prop_oneof![
        "[1-9][0-9]{0,7}(\\.[0-9]{1,10})?",
        "0\\.[0-9]{0,6}[1-9][0-9]{0,3}",
    ];
    let ts = (
        1971u32..2100,
        1u32..=12,
        1u32..=28,
        0u32..24,
        0u32..60,
        0u32..60,
        prop_oneof!["[0-9]{6}", "[0-9]{7}", "[0-9]{8}", "[0-9]{9}"],
    )
        .prop_map(|(y, mo, d, h, mi, s, f)| {
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{f}Z")
        });
    (
        prop::sample::select(vec!["binance", "coinbase", "kraken"]),
        sym,
        any::<u64>(),
        decimal.clone(),
        decimal,
        prop::sample::select(vec!["buy", "sell"]),
        ts.clone(),
        ts,
        "[A-Za-z0-9._-]{1,20}",
        1u64..u64::MAX,
        prop::sample::select(vec!["ws", "poll"]),
    )
        .prop_map(
            |(src, sym, trade_id, price, qty, side, ets, rts, producer, seq, via)| {
                let q = |s: &str| format!("\"{s}\"");
                vec![
                    ("schema".into(), q("tick.v1")),
                    ("id".into(), q(&format!("{src}:{sym}:{trade_id}"))),
                    ("source".into(), q(src)),
                    ("symbol".into(), q(&sym)),
                    ("raw_symbol".into(), q(&sym.replace('-', ""))),
                    ("trade_id".into(), trade_id.to_string()),
                    ("price".into(), q(&price)),
                    ("qty".into(), q(&qty)),
                    ("side".into(), q(side)),
                    ("exchange_ts".into(), q(&ets)),
                    ("received_ts".into(), q(&rts)),
                    ("producer".into(), q(&producer)),
                    ("seq".into(), seq.to_string()),
                    ("via".into(), q(via)),
                ]
            },
        )
}

fn body(fields: &[(String, String)]) -> Vec<u8> {
    let inner: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    format!("{{{}}}", inner.join(",")).into_bytes()
}

/// Values that sit on or just past a rule of the schema, for any field.
fn tricky_value() -> impl Strategy<Value = String> {
    let fixed = vec![
        "null",
        "true",
        "[]",
        "{}",
        "0",
        "1",
        "-1",
        "1.0",
        "1e3",
        "0.5",
        "18446744073709551615",
        "18446744073709551616",
        "-0",
        "\"\"",
        "\"0\"",
        "\"0.0\"",
        "\"00.1\"",
        "\"1.\"",
        "\".5\"",
        "\"-1\"",
        "\"1e3\"",
        "\"99999999999999999999\"",
        "\"999999999999999999999\"",
        "\"0.000000000000000001\"",
        "\"0.0000000000000000001\"",
        "\"1.123456789012345678\"",
        "\"12345678901234567890.123456789012345678\"",
        "\"tick.v1\"",
        "\"gap.v1\"",
        "\"TICK.V1\"",
        "\"Binance\"",
        "\"ftx\"",
        "\"BUY\"",
        "\"WS\"",
        "\"btc-usd\"",
        "\"BTC-USD\"",
        "\"BTC-USD-X\"",
        "\"BTC\"",
        "\"-USD\"",
        "\"AAAAAAAAAAAAAAAAAAAAA-B\"",
        "\"AAAAAAAAAAAAAAAAAAAA-B\"",
        "\"binance:BTC-USD:1\"",
        "\"binance:BTC-USD:\"",
        "\"binance:BTC-USD:123456789012345678901\"",
        "\"binance:AAAAAAAAAAAAAAAAAAAA-BBBBBBBBBBBBBBBBBBBB:12345678901234567890\"",
        "\"binance:btc-usd:1\"",
        "\"kraken:BTC-USD:1:2\"",
        "\"2026-02-29T00:00:00.000000Z\"",
        "\"2028-02-29T00:00:00.000000Z\"",
        "\"2026-04-31T00:00:00.000000Z\"",
        "\"2026-13-01T00:00:00.000000Z\"",
        "\"2026-00-01T00:00:00.000000Z\"",
        "\"2026-01-00T00:00:00.000000Z\"",
        "\"2026-12-31T23:59:60.000000Z\"",
        "\"2026-12-31T24:00:00.000000Z\"",
        "\"2026-12-31T23:60:00.000000Z\"",
        "\"0000-01-01T00:00:00.000000Z\"",
        "\"2026-12-31T23:59:59.12345Z\"",
        "\"2026-12-31T23:59:59.1234567890Z\"",
        "\"2026-12-31T23:59:59.123456+00:00\"",
        "\"2026-12-31t23:59:59.123456z\"",
        "\"2026-12-31T23:59:59Z\"",
        "\"9999-12-31T23:59:59.999999999Z\"",
        "\"coinbase:AAAAAAAAAAAAAAAAAAAA-BBBBBBBBBBBBBB:12345678901234567890\"",
        "\"coinbase:AAAAAAAAAAAAAAAAAAAA-BBBBBBBBBBBBB:12345678901234567890\"",
        "\"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345\"",
        "\"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456\"",
        "\"a\"",
        "\"a b\"",
        "\"x.y_z-1\"",
        "\"\\u0041\"",
        "\"BTC\\u002dUSD\"",
        "\"\\\"\"",
        "\"é\"",
        "\"ééééééééééééééééééééééééééééééééé\"",
        "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"",
        "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"",
    ];
    prop_oneof![
        6 => prop::sample::select(fixed).prop_map(str::to_string),
        1 => "[ -~]{0,12}".prop_map(|s| serde_json::to_string(&s).unwrap()),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| f.to_string()),
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    Replace(usize, String),
    Remove(usize),
    Duplicate(usize),
    Add(String, String),
    EscapeFirstChar(usize),
    Whitespace,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (0usize..14, tricky_value()).prop_map(|(i, v)| Mutation::Replace(i, v)),
        1 => (0usize..14).prop_map(Mutation::Remove),
        1 => (0usize..14).prop_map(Mutation::Duplicate),
        1 => ("[a-z_]{1,8}", tricky_value()).prop_map(|(k, v)| Mutation::Add(k, v)),
        1 => (0usize..14).prop_map(Mutation::EscapeFirstChar),
        1 => Just(Mutation::Whitespace),
    ]
}

fn apply(mut fields: Vec<(String, String)>, m: &Mutation) -> Vec<u8> {
    match m {
        Mutation::Replace(i, v) => fields[*i].1 = v.clone(),
        Mutation::Remove(i) => {
            fields.remove(*i);
        }
        Mutation::Duplicate(i) => {
            let f = fields[*i].clone();
            fields.push(f);
        }
        Mutation::Add(k, v) => fields.push((k.clone(), v.clone())),
        Mutation::EscapeFirstChar(i) => {
            let v = &fields[*i].1;
            if let Some(rest) = v.strip_prefix('"') {
                if let Some(c) = rest.chars().next() {
                    let escaped = format!("\"\\u{:04x}{}", c as u32, &rest[c.len_utf8()..]);
                    fields[*i].1 = escaped;
                }
            }
        }
        Mutation::Whitespace => {
            let inner: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!(" \"{k}\" :\n {v} "))
                .collect();
            return format!(" {{ {} }} ", inner.join(" , ")).into_bytes();
        }
    }
    body(&fields)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 30000, .. ProptestConfig::default() })]

    #[test]
    fn valid_ticks_take_the_fast_path_and_agree(fields in valid_fields()) {
        let b = body(&fields);
        let full = decode_full(&b);
        prop_assert!(full.is_ok(), "generator made an invalid tick: {:?} {}", full, String::from_utf8_lossy(&b));
        prop_assert!(fast_tick(&b).is_some(), "fast path declined a valid tick: {}", String::from_utf8_lossy(&b));
        prop_assert_eq!(decode(&b), full);
    }

    #[test]
    fn broken_ticks_get_the_full_paths_answer(fields in valid_fields(), m in mutation()) {
        let b = apply(fields, &m);
        let full = decode_full(&b);
        if let Some(t) = fast_tick(&b) {
            prop_assert_eq!(Ok(tickbridge_model::Message::Tick(t)), full.clone(), "{:?}: {}", m, String::from_utf8_lossy(&b));
        }
        prop_assert_eq!(decode(&b), full, "{:?}: {}", m, String::from_utf8_lossy(&b));
    }
}
