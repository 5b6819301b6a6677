//! The readers' fast path for `tick.v1` bodies: one typed pass over the
//! bytes instead of JSON → `Value` → JSON Schema → `Tick`.
//!
//! It is one-sided by design. [`decode_tick`] returns `Some` only for a body
//! that the schema accepts, and then exactly the [`Tick`] the full path
//! builds; for anything else (a gap notice, an escaped string, a
//! non-canonical number, a violation, an unusual but valid timestamp) it
//! returns `None` and [`super::decode`] takes the full path, which decides
//! and explains. So the fast path can be stricter than the schema, never
//! looser. The property tests in `core/tests/fast_decode.rs` hold it to that
//! against the compiled JSON Schema on mutated bodies.
//!
//! Each check below names the schema rule it stands for.

use crate::tick::{Side, Source, Tick, Via, TICK_SCHEMA};
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;

/// The body as borrowed text: a string with an escape fails to borrow and
/// falls back. `deny_unknown_fields` is `additionalProperties: false`; a
/// missing field is a `required` violation; a duplicate key is an error here.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire<'a> {
    schema: &'a str,
    id: &'a str,
    source: &'a str,
    symbol: &'a str,
    raw_symbol: &'a str,
    /// `"type": "integer", "minimum": 0`: a u64 accepts exactly the
    /// non-negative integers written without a fraction or exponent; any
    /// other spelling falls back.
    trade_id: u64,
    price: &'a str,
    qty: &'a str,
    side: &'a str,
    exchange_ts: &'a str,
    received_ts: &'a str,
    producer: &'a str,
    seq: u64,
    via: &'a str,
}

/// Decodes a `tick.v1` body the schema accepts; `None` means "take the full
/// path", not "invalid".
pub(crate) fn decode_tick(body: &[u8]) -> Option<Tick> {
    let w: Wire<'_> = serde_json::from_slice(body).ok()?;
    // "const": "tick.v1"
    if w.schema != TICK_SCHEMA {
        return None;
    }
    let source = match w.source {
        "binance" => Source::Binance,
        "coinbase" => Source::Coinbase,
        "kraken" => Source::Kraken,
        _ => return None,
    };
    let side = match w.side {
        "buy" => Side::Buy,
        "sell" => Side::Sell,
        _ => return None,
    };
    let via = match w.via {
        "ws" => Via::Ws,
        "poll" => Via::Poll,
        _ => return None,
    };
    // "minimum": 1
    if w.seq < 1
        || !id_ok(w.id)
        || !symbol_ok(w.symbol)
        || !raw_symbol_ok(w.raw_symbol)
        || !producer_ok(w.producer)
    {
        return None;
    }
    Some(Tick {
        id: w.id.to_string(),
        source,
        symbol: w.symbol.into(),
        raw_symbol: w.raw_symbol.into(),
        trade_id: w.trade_id,
        price: positive_decimal(w.price)?,
        qty: positive_decimal(w.qty)?,
        side,
        exchange_ts: timestamp(w.exchange_ts)?,
        received_ts: timestamp(w.received_ts)?,
        producer: w.producer.into(),
        seq: w.seq,
        via,
    })
}

fn upper_alnum(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit()
}

/// `[A-Z0-9]{1,20}-[A-Z0-9]{1,20}` over all of `s`.
fn symbol_ok(s: &str) -> bool {
    let Some((base, quote)) = s.split_once('-') else {
        return false;
    };
    [base, quote]
        .iter()
        .all(|p| (1..=20).contains(&p.len()) && p.bytes().all(upper_alnum))
}

/// `^(binance|coinbase|kraken):SYMBOL:[0-9]{1,20}$`, `"maxLength": 64`.
fn id_ok(s: &str) -> bool {
    if s.len() > 64 {
        return false;
    }
    let mut parts = s.splitn(3, ':');
    let (Some(src), Some(sym), Some(n)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    matches!(src, "binance" | "coinbase" | "kraken")
        && symbol_ok(sym)
        && (1..=20).contains(&n.len())
        && n.bytes().all(|b| b.is_ascii_digit())
}

/// `"minLength": 1, "maxLength": 32`, counted in characters as JSON Schema
/// does; only ASCII is taken here (other text falls back).
fn raw_symbol_ok(s: &str) -> bool {
    (1..=32).contains(&s.len()) && s.is_ascii()
}

/// `^[A-Za-z0-9._-]{1,64}$`
fn producer_ok(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// `positive_decimal`: `^(0|[1-9][0-9]{0,19})(\.[0-9]{1,18})?$` and not
/// `^0(\.0+)?$`, then parsed by the same function the full path's serde
/// attribute (`rust_decimal::serde::str`) uses.
fn positive_decimal(s: &str) -> Option<Decimal> {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    let int_ok = int == "0"
        || (int.len() <= 20
            && int.starts_with(|c: char| c != '0')
            && !int.is_empty()
            && digits(int));
    let frac_ok = frac.is_none_or(|f| (1..=18).contains(&f.len()) && digits(f));
    let zero = int == "0" && frac.is_none_or(|f| f.bytes().all(|b| b == b'0'));
    if !int_ok || !frac_ok || zero {
        return None;
    }
    use serde::de::value::{Error, StrDeserializer};
    rust_decimal::serde::str::deserialize(StrDeserializer::<Error>::new(s)).ok()
}

/// `timestamp`: `^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6,9}Z$`
/// and `"format": "date-time"`. Only calendar-valid dates from year 1 and
/// times without a leap second are taken; the rest falls back.
fn timestamp(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    if !(27..=30).contains(&b.len()) || b[b.len() - 1] != b'Z' {
        return None;
    }
    for (at, c) in crate::tick::ts_micros::SEPARATORS {
        if b[at] != c {
            return None;
        }
    }
    let num = |from: usize, to: usize| -> Option<u32> {
        b[from..to].iter().try_fold(0u32, |acc, &d| {
            d.is_ascii_digit().then(|| acc * 10 + u32::from(d - b'0'))
        })
    };
    let frac_digits = b.len() - 21;
    let frac = num(20, b.len() - 1)?;
    let nanos = frac * 10u32.pow(9 - frac_digits as u32);
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if year == 0 || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(year as i32, month, day)?;
    Some(
        date.and_hms_nano_opt(hour, minute, second, nanos)?
            .and_utc(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_follow_their_patterns() {
        assert!(
            symbol_ok("BTC-USDT")
                && !symbol_ok("btc-usdt")
                && !symbol_ok("BTC-")
                && !symbol_ok("A-B-C")
        );
        assert!(id_ok("kraken:BTC-USD:0") && !id_ok("kraken:BTC-USD:") && !id_ok("ftx:BTC-USD:1"));
        assert!(!id_ok("kraken:BTC-USD:1:2"));
        assert!(producer_ok("host-1.a_b") && !producer_ok("a b") && !producer_ok(""));
        for ok in [
            "1",
            "0.1",
            "10.000",
            "0.000000000000000001",
            "99999999999999999999",
        ] {
            assert!(positive_decimal(ok).is_some(), "{ok}");
        }
        for bad in [
            "0",
            "0.0",
            "00.1",
            "01",
            "1.",
            ".1",
            "-1",
            "1e3",
            "",
            "0.0000000000000000001",
        ] {
            assert!(positive_decimal(bad).is_none(), "{bad}");
        }
        assert!(timestamp("2026-11-23T18:00:00.123000Z").is_some());
        assert!(timestamp("2026-11-23T18:00:00.123456789Z").is_some());
        for bad in [
            "2026-02-30T18:00:00.123000Z",
            "2026-11-23T24:00:00.123000Z",
            "2026-11-23T18:00:60.123000Z",
            "2026-11-23T18:00:00.12300Z",
            "2026-11-23T18:00:00.1230000000Z",
            "2026-11-23 18:00:00.123000Z",
            "0000-01-01T00:00:00.000000Z",
        ] {
            assert!(timestamp(bad).is_none(), "{bad}");
        }
    }
}
