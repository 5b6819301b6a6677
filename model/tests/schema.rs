//! The schema files are the contract: examples validate or are rejected for
//! their documented reason, and what the Rust types serialize validates and
//! round-trips exactly.

use chrono::{TimeZone, Utc};
use rand::{rngs::StdRng, Rng, SeedableRng};
use rust_decimal::Decimal;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use tickbridge_model::schema::{decode, validate};
use tickbridge_model::tick::{GapNotice, GapReason, Message, MessageRef, Side, Source, Tick, Via};

fn examples(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../schemas/examples")
        .join(kind);
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    v.sort();
    v
}

#[test]
fn valid_examples_validate_and_decode() {
    let files = examples("valid");
    assert!(files.len() >= 4, "expected valid examples, found {files:?}");
    for f in files {
        let text = std::fs::read(&f).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&text).unwrap();
        if let Err(e) = validate(&value) {
            panic!("{} should validate: {e}", f.display());
        }
        let msg = decode(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        // Re-serializing gives back the same JSON value: nothing is lost.
        let again: serde_json::Value = serde_json::from_slice(&msg.as_ref().to_json()).unwrap();
        assert_eq!(again, value, "{} does not round-trip", f.display());
    }
}

#[test]
fn invalid_examples_are_rejected_each_with_a_reason() {
    let reasons = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/examples/invalid/REASONS.md"),
    )
    .unwrap();
    let files = examples("invalid");
    assert!(files.len() >= 5);
    for f in files {
        let name = f.file_name().unwrap().to_str().unwrap();
        assert!(
            reasons.contains(&format!("| {name} |")),
            "{name} has no reason in REASONS.md"
        );
        let text = std::fs::read(&f).unwrap();
        match decode(&text) {
            Ok(m) => panic!("{name} should be rejected, decoded as {m:?}"),
            Err(e) => eprintln!("{name}: rejected: {e}"),
        }
    }
}

fn random_decimal(rng: &mut StdRng) -> Decimal {
    let scale = rng.random_range(0..=18u32);
    let int_digits = rng.random_range(1..=9u32);
    let int_part: u64 = rng.random_range(0..10u64.pow(int_digits));
    let frac: u64 = if scale == 0 {
        0
    } else {
        rng.random_range(0..10u64.pow(scale.min(18)))
    };
    let s = if scale == 0 {
        format!("{}", int_part.max(1))
    } else {
        format!("{int_part}.{frac:0width$}", width = scale as usize)
    };
    let d = Decimal::from_str(&s).unwrap();
    if d.is_zero() {
        Decimal::from_str("0.00000001").unwrap()
    } else {
        d
    }
}

fn tick(
    source: Source,
    symbol: &str,
    trade_id: u64,
    price: Decimal,
    qty: Decimal,
    seq: u64,
) -> Tick {
    let ts = Utc
        .timestamp_micros(1_763_920_800_123_456 + trade_id as i64)
        .unwrap();
    Tick {
        id: Tick::make_id(source, symbol, trade_id),
        source,
        symbol: symbol.into(),
        raw_symbol: symbol.replace('-', "").into(),
        trade_id,
        price,
        qty,
        side: if trade_id.is_multiple_of(2) {
            Side::Buy
        } else {
            Side::Sell
        },
        exchange_ts: ts,
        received_ts: ts + chrono::Duration::microseconds(1500),
        producer: "bench-host-1".into(),
        seq,
        via: if seq.is_multiple_of(3) {
            Via::Poll
        } else {
            Via::Ws
        },
    }
}

#[test]
fn generated_ticks_validate_and_round_trip_exactly() {
    let mut rng = StdRng::seed_from_u64(7);
    let extremes = [
        "0.00000001",
        "123456789.123456789",
        "0.000000000000000001",
        "99999999999999999999",
        "1",
    ];
    let mut n = 0;
    for i in 0..5_000u64 {
        let source = Source::ALL[(i % 3) as usize];
        let price = if (i as usize) < extremes.len() {
            Decimal::from_str(extremes[i as usize]).unwrap()
        } else {
            random_decimal(&mut rng)
        };
        let qty = random_decimal(&mut rng);
        let t = tick(source, "BTC-USDT", i * 7919, price, qty, i + 1);
        let body = MessageRef::Tick(&t).to_json();
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        validate(&value).unwrap_or_else(|e| panic!("{}: {e}", String::from_utf8_lossy(&body)));
        // Exact round trip: the same struct, and the same price text.
        let back = decode(&body).unwrap();
        assert_eq!(back, Message::Tick(t.clone()));
        assert_eq!(value["price"].as_str().unwrap(), price.to_string());
        n += 1;
    }
    assert_eq!(n, 5_000);
    let body = MessageRef::Tick(&tick(
        Source::Kraken,
        "ETH-USD",
        1,
        Decimal::from_str("123456789.123456789").unwrap(),
        Decimal::from_str("0.00000001").unwrap(),
        1,
    ))
    .to_json();
    let text = String::from_utf8(body).unwrap();
    assert!(text.contains(r#""price":"123456789.123456789""#), "{text}");
    assert!(text.contains(r#""qty":"0.00000001""#), "{text}");
}

#[test]
fn gap_notices_validate_and_round_trip() {
    for (reason, range) in [
        (GapReason::TradeIdJump, Some((101, 105))),
        (GapReason::Reconnect, None),
        (GapReason::BufferOverflow, Some((7, 7))),
        (GapReason::PublishFailed, Some((1, 1000))),
        (GapReason::SequenceJump, None),
    ] {
        let g = GapNotice {
            id: GapNotice::make_id("p1", "BTC-USD", 9),
            source: Source::Coinbase,
            symbol: "BTC-USD".into(),
            reason,
            missing_from: range.map(|r| r.0),
            missing_to: range.map(|r| r.1),
            missing_count: range.map(|r| r.1 - r.0 + 1),
            detected_ts: Utc::now(),
            producer: "p1".into(),
            seq: 9,
            via: Via::Ws,
        };
        let body = MessageRef::Gap(&g).to_json();
        let back = decode(&body).unwrap_or_else(|e| panic!("{reason:?}: {e}"));
        let Message::Gap(back) = back else {
            panic!("not a gap")
        };
        assert_eq!(back.reason, reason);
        assert_eq!(back.missing_count, g.missing_count);
        assert_eq!(
            tickbridge_model::tick::ts_micros::format(&back.detected_ts),
            tickbridge_model::tick::ts_micros::format(&g.detected_ts)
        );
    }
}
