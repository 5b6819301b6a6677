//! Validation and decoding against the JSON Schema files in `schemas/`.
//!
//! The schema files are compiled into the binary with `include_str!`, so the
//! contract a binary enforces is exactly the one in the repository it was
//! built from. Every reader of the brokers (workers, consumers, the bridge)
//! decodes through [`decode`], which bounds size, validates, then
//! deserializes: a poison message is reported with a reason, never a panic.

use crate::tick::{Message, GAP_SCHEMA, TICK_SCHEMA};
use serde_json::Value;
use std::sync::OnceLock;

mod fast;

/// Raw text of `schemas/tick.v1.json`.
pub const TICK_SCHEMA_JSON: &str = include_str!("../../schemas/tick.v1.json");
/// Raw text of `schemas/gap.v1.json`.
pub const GAP_SCHEMA_JSON: &str = include_str!("../../schemas/gap.v1.json");

/// Largest message body accepted. A tick is ~350 bytes; anything past this is
/// hostile or broken and is rejected before it is parsed.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Why a message body was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Body larger than [`MAX_MESSAGE_BYTES`].
    #[error("message is {0} bytes, over the {MAX_MESSAGE_BYTES}-byte limit")]
    TooLarge(usize),
    /// Not UTF-8 or not JSON (includes nesting deeper than serde_json's limit).
    #[error("not valid JSON: {0}")]
    NotJson(String),
    /// JSON, but `schema` names no known message kind.
    #[error("unknown message schema {0:?} (expected tick.v1 or gap.v1)")]
    UnknownSchema(String),
    /// Fails the JSON Schema; carries the first few violations.
    #[error("fails {schema}: {errors}")]
    Invalid {
        /// Schema name.
        schema: &'static str,
        /// Human-readable violations, `; `-separated.
        errors: String,
    },
}

impl DecodeError {
    /// Short label for metrics (`reason="..."`).
    pub fn kind(&self) -> &'static str {
        match self {
            DecodeError::TooLarge(_) => "too_large",
            DecodeError::NotJson(_) => "not_json",
            DecodeError::UnknownSchema(_) => "unknown_schema",
            DecodeError::Invalid { .. } => "schema_invalid",
        }
    }
}

struct Validators {
    tick: jsonschema::Validator,
    gap: jsonschema::Validator,
}

fn compile(text: &str) -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(text).expect("schema file is valid JSON");
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("schema file compiles")
}

fn validators() -> &'static Validators {
    static V: OnceLock<Validators> = OnceLock::new();
    V.get_or_init(|| Validators {
        tick: compile(TICK_SCHEMA_JSON),
        gap: compile(GAP_SCHEMA_JSON),
    })
}

/// Validates a parsed JSON value against the schema its `schema` field names.
/// Returns that schema name.
pub fn validate(value: &Value) -> Result<&'static str, DecodeError> {
    let tag = value.get("schema").and_then(Value::as_str).unwrap_or("");
    let (name, validator) = match tag {
        TICK_SCHEMA => (TICK_SCHEMA, &validators().tick),
        GAP_SCHEMA => (GAP_SCHEMA, &validators().gap),
        other => return Err(DecodeError::UnknownSchema(other.chars().take(64).collect())),
    };
    if validator.is_valid(value) {
        return Ok(name);
    }
    let errors: Vec<String> = validator
        .iter_errors(value)
        .take(3)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    Err(DecodeError::Invalid {
        schema: name,
        errors: errors.join("; "),
    })
}

/// Bounds, parses, validates and deserializes one message body.
///
/// A well-formed tick takes the typed fast path ([`fast_tick`]); anything
/// it does not take, gap notices and every invalid body among them, goes
/// through [`decode_full`]. Both give the same answer for every body (the
/// property tests in `core/tests/fast_decode.rs`), the fast one in about a
/// fifth of the time (`cargo bench -p tickbridge-consumer --bench handle_cost`).
pub fn decode(body: &[u8]) -> Result<Message, DecodeError> {
    if body.len() > MAX_MESSAGE_BYTES {
        return Err(DecodeError::TooLarge(body.len()));
    }
    if let Some(t) = fast::decode_tick(body) {
        return Ok(Message::Tick(t));
    }
    decode_full(body)
}

/// The typed fast path alone: `Some` only for a `tick.v1` body the schema
/// accepts, with the tick [`decode_full`] would build; `None` means "not
/// taken", not "invalid". For the property tests and benchmarks.
pub fn fast_tick(body: &[u8]) -> Option<crate::tick::Tick> {
    fast::decode_tick(body)
}

/// The full path: bounds, parses into a JSON value, validates it against
/// the compiled JSON Schema and deserializes it. Explains every rejection.
pub fn decode_full(body: &[u8]) -> Result<Message, DecodeError> {
    if body.len() > MAX_MESSAGE_BYTES {
        return Err(DecodeError::TooLarge(body.len()));
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| DecodeError::NotJson(e.to_string()))?;
    let schema = validate(&value)?;
    serde_json::from_value(value).map_err(|e| DecodeError::Invalid {
        schema,
        errors: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_without_panicking() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "not_json"),
            (b"\xff\xfe", "not_json"),
            (b"[1,2", "not_json"),
            (b"{}", "unknown_schema"),
            (br#"{"schema":"tick.v9"}"#, "unknown_schema"),
            (br#"{"schema":"tick.v1"}"#, "schema_invalid"),
        ];
        for (input, kind) in cases {
            assert_eq!(decode(input).unwrap_err().kind(), *kind, "{input:?}");
        }
        let deep = "[".repeat(100_000);
        assert_eq!(decode(deep.as_bytes()).unwrap_err().kind(), "too_large");
        let deep = "[".repeat(10_000);
        assert_eq!(decode(deep.as_bytes()).unwrap_err().kind(), "not_json");
        // Nesting inside an otherwise valid tick, within the size limit.
        let nested = format!(r#"{{"schema":"tick.v1","x":{}}}"#, "[".repeat(60_000));
        assert_eq!(decode(nested.as_bytes()).unwrap_err().kind(), "not_json");
    }

    /// One field of a valid tick changed at a time: huge numbers, negative
    /// quantities, wrong types, invalid UTF-8 and unknown symbols are each
    /// rejected with a kind (the `reason` label readers count them under).
    #[test]
    fn bad_fields_of_a_valid_tick() {
        let good = br#"{"schema":"tick.v1","id":"binance:BTC-USDT:12345","source":"binance","symbol":"BTC-USDT","raw_symbol":"BTCUSDT","trade_id":12345,"price":"0.00100000","qty":"100.00000000","side":"sell","exchange_ts":"2026-11-23T18:00:00.123000Z","received_ts":"2026-11-23T18:00:00.125431Z","producer":"host-4242-1","seq":1,"via":"ws"}"#;
        assert!(decode(good).is_ok());
        let good = std::str::from_utf8(good).unwrap();
        let cases: &[(&str, &str, &str, &str)] = &[
            // (what, replace, with, kind)
            (
                "huge price",
                r#""price":"0.00100000""#,
                r#""price":"123456789012345678901234567890""#,
                "schema_invalid",
            ),
            (
                "price past f64",
                r#""price":"0.00100000""#,
                r#""price":1e400"#,
                "not_json",
            ),
            (
                "price as a float",
                r#""price":"0.00100000""#,
                r#""price":0.001"#,
                "schema_invalid",
            ),
            (
                "negative qty",
                r#""qty":"100.00000000""#,
                r#""qty":"-100""#,
                "schema_invalid",
            ),
            (
                "trade id past u64",
                r#""trade_id":12345"#,
                r#""trade_id":18446744073709551616"#,
                "schema_invalid",
            ),
            (
                "trade id huge",
                r#""trade_id":12345"#,
                r#""trade_id":1e300"#,
                "schema_invalid",
            ),
            (
                "seq negative",
                r#""seq":1"#,
                r#""seq":-1"#,
                "schema_invalid",
            ),
            (
                "trade id as string",
                r#""trade_id":12345"#,
                r#""trade_id":"12345""#,
                "schema_invalid",
            ),
            (
                "unknown source",
                r#""source":"binance""#,
                r#""source":"ftx""#,
                "schema_invalid",
            ),
            (
                "symbol not normalized",
                r#""symbol":"BTC-USDT""#,
                r#""symbol":"btcusdt""#,
                "schema_invalid",
            ),
            (
                "schema as number",
                r#""schema":"tick.v1""#,
                r#""schema":1"#,
                "unknown_schema",
            ),
        ];
        for (i, (what, from, to, kind)) in cases.iter().enumerate() {
            assert!(good.contains(from), "TC{i} ({what}): bad case");
            let body = good.replacen(from, to, 1);
            match decode(body.as_bytes()) {
                Err(e) => assert_eq!(e.kind(), *kind, "TC{i} ({what}): {e}"),
                Ok(m) => panic!("TC{i} ({what}): accepted {m:?}"),
            }
        }
        // Invalid UTF-8 inside a string value.
        let mut bytes = good.as_bytes().to_vec();
        let at = good.find("host-4242").unwrap();
        bytes[at] = 0xff;
        assert_eq!(decode(&bytes).unwrap_err().kind(), "not_json");
    }
}
