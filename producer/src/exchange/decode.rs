//! Decoding helpers every adapter shares: size limits, exact decimals,
//! timestamps and the normalized <-> exchange symbol table.
//!
//! Keeping these in one place means the three adapters agree on what counts
//! as malformed versus invalid, and on how much of a bad input ends up in an
//! error message (a little: errors are logged, and a 1 MiB garbage frame must
//! not become a 1 MiB log line).

use super::ParseError;
use chrono::{DateTime, Utc};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::sync::Arc;

/// Largest text frame an adapter will look at. Real trade frames are a few
/// hundred bytes; anything this large is garbage or an attack, and refusing
/// it before parsing bounds the work done per frame.
pub const MAX_FRAME_BYTES: usize = 1 << 20;

/// Largest REST body an adapter will look at. A full page of 1000 trades is
/// about 200 KiB on every exchange.
pub const MAX_REST_BYTES: usize = 8 << 20;

/// How many bytes of an offending input an error message quotes.
const EXCERPT: usize = 80;

/// A short, char-boundary-safe excerpt of `s` for error messages.
pub(crate) fn excerpt(s: &str) -> String {
    if s.len() <= EXCERPT {
        return s.to_string();
    }
    let mut end = EXCERPT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Rejects oversized frames before any parsing.
pub(crate) fn check_frame(text: &str) -> Result<(), ParseError> {
    if text.len() > MAX_FRAME_BYTES {
        return Err(ParseError::Malformed(format!(
            "frame of {} bytes exceeds the {MAX_FRAME_BYTES}-byte limit",
            text.len()
        )));
    }
    Ok(())
}

/// Size and UTF-8 checks for a REST body; returns it as text.
pub(crate) fn rest_text(body: &[u8]) -> Result<&str, ParseError> {
    if body.len() > MAX_REST_BYTES {
        return Err(ParseError::Malformed(format!(
            "body of {} bytes exceeds the {MAX_REST_BYTES}-byte limit",
            body.len()
        )));
    }
    std::str::from_utf8(body).map_err(|e| ParseError::Malformed(format!("body is not UTF-8: {e}")))
}

/// The first non-whitespace byte of a JSON text, to tell an array of trades
/// from an error object without parsing twice.
pub(crate) fn first_byte(text: &str) -> Option<u8> {
    text.bytes().find(|b| !b.is_ascii_whitespace())
}

/// Deserializes JSON; any serde error (syntax, wrong type, missing field,
/// nesting deeper than serde_json's recursion limit) is `Malformed`.
pub(crate) fn json<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, ParseError> {
    serde_json::from_str(text).map_err(|e| ParseError::Malformed(e.to_string()))
}

/// Parses a decimal the exchange sent as a JSON string (`"0.00100000"`),
/// keeping its scale. Anything but plain `[-]digits[.digits]` text, a value
/// that does not fit a `Decimal` exactly, or a value `<= 0` is `InvalidValue`.
pub(crate) fn positive_decimal(field: &str, text: &str) -> Result<Decimal, ParseError> {
    if let Some(value) = short_decimal(text) {
        return positive(field, text, value);
    }
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (digits, None),
    };
    let plain = !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()));
    if !plain {
        return Err(ParseError::InvalidValue(format!(
            "{field} {:?} is not a decimal number",
            excerpt(text)
        )));
    }
    let value = Decimal::from_str_exact(text).map_err(|e| {
        ParseError::InvalidValue(format!(
            "{field} {:?} does not fit a decimal: {e}",
            excerpt(text)
        ))
    })?;
    positive(field, text, value)
}

/// The common case of [`positive_decimal`] in one pass: unsigned
/// `digits[.digits]` with at most 19 digits in all, which fit a `u64`
/// mantissa, so no `Decimal` arithmetic is needed. The result equals
/// `Decimal::from_str_exact` (value and scale; a property test holds it to
/// that). `None` for anything else, which takes the general path.
fn short_decimal(text: &str) -> Option<Decimal> {
    let b = text.as_bytes();
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    let mut mantissa: u64 = 0;
    let mut digits = 0usize;
    let mut point = None;
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'0'..=b'9' => {
                // At most 19 digits: below 10^19 < u64::MAX, no overflow.
                if digits == 19 {
                    return None;
                }
                mantissa = mantissa * 10 + u64::from(c - b'0');
                digits += 1;
            }
            b'.' if point.is_none() && i > 0 && i + 1 < b.len() => point = Some(i),
            _ => return None,
        }
    }
    let scale = point.map_or(0, |p| b.len() - p - 1) as u32;
    // Below 10^19, the mantissa fits the low 64 of Decimal's 96 bits; the
    // scale is at most 18 (a point needs a digit on each side).
    Some(Decimal::from_parts(
        mantissa as u32,
        (mantissa >> 32) as u32,
        0,
        false,
        scale,
    ))
}

/// Parses a decimal the exchange sent as a JSON number (Kraken), from the
/// number's literal text so no digit is lost to `f64`. A JSON value that is
/// not a number is `Malformed`; a number that is too large, too precise or
/// `<= 0` is `InvalidValue`.
pub(crate) fn positive_number(field: &str, raw: &RawValue) -> Result<Decimal, ParseError> {
    let text = raw.get().trim();
    match text.as_bytes().first() {
        Some(b'-' | b'0'..=b'9') => {}
        _ => {
            return Err(ParseError::Malformed(format!(
                "{field} must be a JSON number, got {}",
                excerpt(text)
            )))
        }
    }
    let value = if text.bytes().any(|b| b == b'e' || b == b'E') {
        Decimal::from_scientific(text)
    } else {
        Decimal::from_str_exact(text)
    }
    .map_err(|e| {
        ParseError::InvalidValue(format!(
            "{field} {} does not fit a decimal: {e}",
            excerpt(text)
        ))
    })?;
    positive(field, text, value)
}

fn positive(field: &str, text: &str, value: Decimal) -> Result<Decimal, ParseError> {
    // A sign and zero test, not a comparison (which rescales).
    if value.is_sign_negative() || value.is_zero() {
        return Err(ParseError::InvalidValue(format!(
            "{field} must be positive, got {}",
            excerpt(text)
        )));
    }
    Ok(value)
}

/// Milliseconds since the epoch (Binance `T`).
pub(crate) fn from_millis(field: &str, ms: i64) -> Result<DateTime<Utc>, ParseError> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| ParseError::InvalidValue(format!("{field} {ms} is not a valid time")))
}

/// RFC 3339 text (Coinbase `time`, Kraken `timestamp`), any precision.
pub(crate) fn from_rfc3339(field: &str, text: &str) -> Result<DateTime<Utc>, ParseError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| ParseError::InvalidValue(format!("{field} {:?}: {e}", excerpt(text))))
}

/// Seconds since the epoch as decimal text (Kraken REST `1688669597.8277369`),
/// read exactly down to the nanosecond.
pub(crate) fn from_epoch_seconds(field: &str, raw: &RawValue) -> Result<DateTime<Utc>, ParseError> {
    let text = raw.get().trim();
    let text = text.trim_matches('"');
    let bad = || ParseError::InvalidValue(format!("{field} {} is not a valid time", excerpt(text)));
    let value = if text.bytes().any(|b| b == b'e' || b == b'E') {
        Decimal::from_scientific(text)
    } else {
        Decimal::from_str_exact(text)
    }
    .map_err(|_| bad())?;
    if value.is_sign_negative() {
        return Err(bad());
    }
    let secs = value.trunc();
    let nanos = ((value - secs) * Decimal::from(1_000_000_000u32)).trunc();
    let (secs, nanos) = (
        secs.to_i64().ok_or_else(bad)?,
        nanos.to_u32().ok_or_else(bad)?,
    );
    DateTime::from_timestamp(secs, nanos).ok_or_else(bad)
}

/// The normalized <-> exchange symbol table of one adapter.
///
/// Lookups are linear: an adapter serves a handful of symbols, and comparing
/// a few short strings beats hashing them. The strings are shared: every
/// trade of a symbol points at these instead of allocating its own copies.
#[derive(Debug, Clone)]
pub struct SymbolMap {
    normalized: Vec<Arc<str>>,
    raw: Vec<Arc<str>>,
}

impl SymbolMap {
    /// Builds the table; `to_raw(base, quote)` spells a pair the exchange's
    /// way. Rejects an empty list and symbols that are not `BASE-QUOTE`.
    pub(crate) fn new(
        symbols: &[String],
        to_raw: impl Fn(&str, &str) -> String,
    ) -> Result<Self, ParseError> {
        if symbols.is_empty() {
            return Err(ParseError::UnknownSymbol("no symbols configured".into()));
        }
        let mut map = SymbolMap {
            normalized: Vec::new(),
            raw: Vec::new(),
        };
        for s in symbols {
            if !tickbridge_model::tick::is_normalized_symbol(s) {
                return Err(ParseError::UnknownSymbol(format!(
                    "{s:?} is not a normalized BASE-QUOTE symbol"
                )));
            }
            if map.normalized.iter().any(|n| **n == **s) {
                continue;
            }
            let (base, quote) = s.split_once('-').unwrap_or((s, ""));
            map.raw.push(to_raw(base, quote).into());
            map.normalized.push(s.as_str().into());
        }
        Ok(map)
    }

    /// Normalized symbols, in configuration order.
    pub(crate) fn normalized(&self) -> &[Arc<str>] {
        &self.normalized
    }

    /// Exchange spellings, in the same order.
    pub(crate) fn raw(&self) -> &[Arc<str>] {
        &self.raw
    }

    /// `(normalized, raw)` for an exchange spelling, or `UnknownSymbol`.
    pub(crate) fn by_raw(&self, raw: &str) -> Result<(&Arc<str>, &Arc<str>), ParseError> {
        self.raw
            .iter()
            .position(|r| **r == *raw)
            .map(|i| (&self.normalized[i], &self.raw[i]))
            .ok_or_else(|| ParseError::UnknownSymbol(excerpt(raw)))
    }

    /// The exchange spelling of a normalized symbol; an unknown symbol is
    /// passed through as given (the exchange then answers for it).
    pub(crate) fn raw_or_given<'a>(&'a self, symbol: &'a str) -> &'a str {
        self.by_normalized(symbol)
            .map(|(_, r)| &**r)
            .unwrap_or(symbol)
    }

    /// `(normalized, raw)` for a normalized symbol, or `UnknownSymbol`.
    pub(crate) fn by_normalized(&self, symbol: &str) -> Result<(&Arc<str>, &Arc<str>), ParseError> {
        self.normalized
            .iter()
            .position(|n| **n == *symbol)
            .map(|i| (&self.normalized[i], &self.raw[i]))
            .ok_or_else(|| ParseError::UnknownSymbol(excerpt(symbol)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The one-pass path returns exactly what `from_str_exact` does:
        /// the same value and the same scale, so the body's text is the
        /// same too; anything it declines still goes the general way.
        #[test]
        fn short_decimal_agrees_with_rust_decimal(
            text in "-?[0-9]{0,12}(\\.[0-9]{0,12})?|[0-9.]{0,22}|[0-9]{1,8}[.,e+-][0-9]{0,6}",
        ) {
            if let Some(fast) = short_decimal(&text) {
                let exact = Decimal::from_str_exact(&text);
                prop_assert_eq!(Ok(fast), exact.clone(), "{:?}", text);
                let exact = exact.unwrap();
                prop_assert_eq!(fast.scale(), exact.scale());
                prop_assert_eq!(fast.to_string(), exact.to_string());
            }
            // Either way the public function still rules on it.
            let _ = positive_decimal("price", &text);
        }
    }

    #[test]
    fn short_decimal_takes_plain_exchange_decimals_only() {
        for (text, expected) in [
            ("0.00100000", Some("0.00100000")),
            ("65123.45678000", Some("65123.45678000")),
            ("007", Some("7")),
            ("9999999999999999999", Some("9999999999999999999")),
            ("0.000000000000000001", Some("0.000000000000000001")),
            // 20 digits, a sign, a lone point, exponents, empty: declined.
            ("99999999999999999999", None),
            ("-1.5", None),
            ("1.", None),
            (".5", None),
            ("1.2.3", None),
            ("1e5", None),
            ("", None),
        ] {
            assert_eq!(
                short_decimal(text).map(|d| d.to_string()).as_deref(),
                expected,
                "{text:?}"
            );
        }
    }

    /// Runs one positive-value parser over `(input, Ok(decimal text) | Err(error
    /// kind))` rows: the decimal-text and JSON-number parsers are held to the
    /// same contract, so they share the check.
    fn check_positive(
        parse: impl Fn(&str) -> Result<Decimal, ParseError>,
        cases: &[(&str, Result<&str, &str>)],
    ) {
        for (i, (input, expected)) in cases.iter().enumerate() {
            let got = parse(input).map(|d| d.to_string());
            match (&got, expected) {
                (Ok(g), Ok(e)) => assert_eq!(g, e, "TC{i}"),
                (Err(g), Err(e)) => assert_eq!(g.kind(), *e, "TC{i}"),
                _ => panic!("TC{i}: got {got:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn decimals() {
        check_positive(
            |text| positive_decimal("price", text),
            &[
                // TC0: scale is kept
                ("0.00100000", Ok("0.00100000")),
                // TC1: integer
                ("100", Ok("100")),
                // TC2: zero
                ("0.00000000", Err("invalid_value")),
                // TC3: negative
                ("-1.5", Err("invalid_value")),
                // TC4: more digits than a Decimal holds
                ("123456789012345678901234567890123", Err("invalid_value")),
                // TC5: too many fractional digits would be rounded: refuse
                ("0.00000000000000000000000000000001", Err("invalid_value")),
                // TC6: not a number
                ("abc", Err("invalid_value")),
                // TC7: rust_decimal accepts underscores; exchanges never send them
                ("1_000", Err("invalid_value")),
                // TC8: empty
                ("", Err("invalid_value")),
                // TC9: dangling dot
                ("1.", Err("invalid_value")),
            ],
        );
    }

    #[test]
    fn numbers() {
        check_positive(
            |text| positive_number("price", &RawValue::from_string(text.to_string()).unwrap()),
            &[
                // TC0: Kraken's documented price
                ("0.5147", Ok("0.5147")),
                // TC1: trailing zeros are kept
                ("97000.10", Ok("97000.10")),
                // TC2: exponent form
                ("1e-8", Ok("0.00000001")),
                // TC3: huge
                ("1e400", Err("invalid_value")),
                // TC4: negative
                ("-0.5", Err("invalid_value")),
                // TC5: a string where a number belongs
                ("\"0.5\"", Err("malformed")),
                // TC6: null
                ("null", Err("malformed")),
            ],
        );
    }

    #[test]
    fn epoch_seconds() {
        let raw = RawValue::from_string("1688669597.8277369".into()).unwrap();
        let t = from_epoch_seconds("time", &raw).unwrap();
        assert_eq!(t.timestamp(), 1688669597);
        assert_eq!(t.timestamp_subsec_nanos(), 827_736_900);
        for bad in ["-1", "1e300", "\"x\""] {
            let raw = RawValue::from_string(bad.into()).unwrap();
            assert_eq!(
                from_epoch_seconds("time", &raw).unwrap_err().kind(),
                "invalid_value",
                "{bad}"
            );
        }
    }

    #[test]
    fn excerpt_is_char_safe() {
        let s = "é".repeat(100);
        assert!(excerpt(&s).len() <= EXCERPT + '…'.len_utf8());
    }
}
