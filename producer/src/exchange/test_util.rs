//! Shared helpers for the adapters' table-driven tests.

use super::{Exchange, FrameKind, ParseError, RawTrade};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use std::str::FromStr;
use tickbridge_model::Side;

/// Builds an expected trade from text, so test tables read like the docs.
#[allow(clippy::too_many_arguments)]
pub(crate) fn trade(
    symbol: &str,
    raw_symbol: &str,
    trade_id: u64,
    price: &str,
    qty: &str,
    side: Side,
    ts: &str,
    feed_seq: Option<u64>,
) -> RawTrade {
    RawTrade {
        symbol: symbol.into(),
        raw_symbol: raw_symbol.into(),
        trade_id,
        price: Decimal::from_str(price).unwrap(),
        qty: Decimal::from_str(qty).unwrap(),
        side,
        exchange_ts: DateTime::parse_from_rfc3339(ts)
            .unwrap()
            .with_timezone(&Utc),
        feed_seq,
    }
}

/// What a WS test case expects: a frame kind and its trades, or an error kind.
pub(crate) type Expected = Result<(FrameKind, Vec<RawTrade>), &'static str>;

/// One row of a WebSocket parser table.
pub(crate) struct TestCase {
    pub input: String,
    pub expected: Expected,
}

/// One row of a REST parser table.
pub(crate) struct RestCase {
    pub symbol: &'static str,
    pub input: Vec<u8>,
    pub expected: Result<Vec<RawTrade>, &'static str>,
}

/// Runs a WS table, then [`hostile_frames`] (numbered after the table's own
/// rows), so every adapter is held to the same hostile inputs without each
/// test appending them. Compares trades field by field, including the
/// decimal scale (`to_string`), which `Decimal`'s `==` ignores.
pub(crate) fn run_ws(ex: &dyn Exchange, mut cases: Vec<TestCase>) {
    cases.extend(hostile_frames().into_iter().map(|(input, kind)| TestCase {
        input,
        expected: Err(kind),
    }));
    for (i, tc) in cases.into_iter().enumerate() {
        let mut out = Vec::new();
        let got = ex.parse_frame(&tc.input, &mut out);
        match (got, tc.expected) {
            (Ok(kind), Ok((ekind, etrades))) => {
                assert_eq!(kind, ekind, "TC{i}");
                assert_trades(&out, &etrades, i);
            }
            (Err(e), Err("malformed_or_unknown")) => {
                assert!(
                    matches!(e.kind(), "malformed" | "unknown_message"),
                    "TC{i}: {e}"
                )
            }
            (Err(e), Err(ekind)) => assert_eq!(e.kind(), ekind, "TC{i}: {e}"),
            (got, expected) => panic!("TC{i}: got {got:?} {out:?}, expected {expected:?}"),
        }
    }
}

/// Runs a REST table.
pub(crate) fn run_rest(ex: &dyn Exchange, cases: Vec<RestCase>) {
    for (i, tc) in cases.into_iter().enumerate() {
        let mut out = Vec::new();
        let got: Result<(), ParseError> = ex.parse_rest(tc.symbol, &tc.input, &mut out);
        match (got, tc.expected) {
            (Ok(()), Ok(etrades)) => assert_trades(&out, &etrades, i),
            (Err(e), Err(ekind)) => assert_eq!(e.kind(), ekind, "TC{i}: {e}"),
            (got, expected) => panic!("TC{i}: got {got:?} {out:?}, expected {expected:?}"),
        }
    }
}

fn assert_trades(got: &[RawTrade], expected: &[RawTrade], i: usize) {
    assert_eq!(got, expected, "TC{i}");
    for (g, e) in got.iter().zip(expected) {
        assert_eq!(
            g.price.to_string(),
            e.price.to_string(),
            "TC{i}: price scale"
        );
        assert_eq!(g.qty.to_string(), e.qty.to_string(), "TC{i}: qty scale");
    }
}

/// Inputs every adapter must reject without panicking, with the error kind
/// each must produce.
pub(crate) fn hostile_frames() -> Vec<(String, &'static str)> {
    vec![
        // not JSON at all
        ("garbage{{".into(), "malformed"),
        // empty frame
        (String::new(), "malformed"),
        // JSON but not an object
        ("[1,2,3]".into(), "malformed"),
        ("42".into(), "malformed"),
        // deeper than serde_json's recursion limit
        (
            format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)),
            "malformed",
        ),
        // deep nesting under a key no parser reads is skipped without
        // recursion (no stack overflow); the frame has no known shape
        (
            format!(
                "{{\"x\":{}1{}}}",
                "{\"a\":".repeat(5_000),
                "}".repeat(5_000)
            ),
            "unknown_message",
        ),
        // deep nesting where a parser must descend is refused by the recursion limit
        (
            format!("{{\"data\":{}1{}}}", "[".repeat(5_000), "]".repeat(5_000)),
            "malformed_or_unknown",
        ),
        // larger than 1 MiB: refused before parsing
        (
            format!("{{\"pad\":\"{}\"}}", "x".repeat(super::MAX_FRAME_BYTES)),
            "malformed",
        ),
    ]
}
