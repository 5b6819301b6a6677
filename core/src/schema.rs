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
pub fn decode(body: &[u8]) -> Result<Message, DecodeError> {
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
    }
}
