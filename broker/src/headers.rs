//! How a message's identity travels in broker metadata, identically on
//! RabbitMQ and Kafka (see `schemas/README.md`).
//!
//! AMQP: `message_id` = tick id, `type` = schema name, `content_type`,
//! `timestamp`, `app_id`, persistent delivery, plus the `tb-*` headers.
//! Kafka: key = symbol, and the same `tb-*` headers plus `content-type`.

use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::BasicProperties;
use rdkafka::message::{Header, OwnedHeaders};
pub use tickbridge_model::headers::*;
use tickbridge_model::MessageRef;

/// AMQP properties for a message: persistent, with id, type and headers.
pub fn amqp_properties(msg: MessageRef<'_>, app_id: &str) -> BasicProperties {
    let mut h = FieldTable::default();
    h.insert(ShortString::from(SOURCE), lstr(msg.source().as_str()));
    h.insert(ShortString::from(SYMBOL), lstr(msg.symbol()));
    h.insert(ShortString::from(PRODUCER), lstr(msg.producer()));
    h.insert(
        ShortString::from(SEQ),
        AMQPValue::LongLongInt(msg.seq() as i64),
    );
    BasicProperties::default()
        .with_message_id(msg.id().into())
        .with_type(msg.schema().into())
        .with_content_type(CONTENT_TYPE_JSON.into())
        .with_delivery_mode(2)
        .with_timestamp(msg.timestamp().timestamp() as u64)
        .with_app_id(app_id.into())
        .with_headers(h)
}

/// Kafka headers for a message.
pub fn kafka_headers(msg: MessageRef<'_>) -> OwnedHeaders {
    // librdkafka copies every header value, so the digits can live on the
    // stack (no formatter and no allocation per message).
    let mut digits = itoa::Buffer::new();
    let seq = digits.format(msg.seq());
    let headers = [
        (ID, msg.id()),
        (TYPE, msg.schema()),
        ("content-type", CONTENT_TYPE_JSON),
        (SOURCE, msg.source().as_str()),
        (SYMBOL, msg.symbol()),
        (PRODUCER, msg.producer()),
        (SEQ, seq),
    ];
    headers.into_iter().fold(
        OwnedHeaders::new_with_capacity(headers.len()),
        |h, (key, value)| {
            h.insert(Header {
                key,
                value: Some(value),
            })
        },
    )
}

/// Text of a scalar AMQP header value, whatever type the publisher chose
/// (a string, a number, a boolean); `None` for tables, arrays and void.
pub fn value_text(v: &AMQPValue) -> Option<String> {
    Some(match v {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        AMQPValue::ShortString(s) => s.to_string(),
        AMQPValue::Boolean(b) => b.to_string(),
        AMQPValue::ShortShortInt(n) => n.to_string(),
        AMQPValue::ShortShortUInt(n) => n.to_string(),
        AMQPValue::ShortInt(n) => n.to_string(),
        AMQPValue::ShortUInt(n) => n.to_string(),
        AMQPValue::LongInt(n) => n.to_string(),
        AMQPValue::LongUInt(n) => n.to_string(),
        AMQPValue::LongLongInt(n) => n.to_string(),
        AMQPValue::Float(f) => f.to_string(),
        AMQPValue::Double(f) => f.to_string(),
        AMQPValue::Timestamp(t) => t.to_string(),
        _ => return None,
    })
}

/// A header of an AMQP message as text.
pub fn amqp_header(props: &BasicProperties, key: &str) -> Option<String> {
    value_text(props.headers().as_ref()?.inner().get(key)?)
}

/// An integer header (a retry count) whatever integer type, or decimal
/// text, the publisher chose; `None` when absent or out of range.
pub fn amqp_header_u32(props: &BasicProperties, key: &str) -> Option<u32> {
    // Read integers as integers: the worker asks this of every delivery, and
    // formatting a number only to parse it back would allocate per message.
    let n: i64 = match props.headers().as_ref()?.inner().get(key)? {
        AMQPValue::ShortShortInt(n) => (*n).into(),
        AMQPValue::ShortShortUInt(n) => (*n).into(),
        AMQPValue::ShortInt(n) => (*n).into(),
        AMQPValue::ShortUInt(n) => (*n).into(),
        AMQPValue::LongInt(n) => (*n).into(),
        AMQPValue::LongUInt(n) => (*n).into(),
        AMQPValue::LongLongInt(n) => *n,
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes())
            .ok()?
            .trim()
            .parse()
            .ok()?,
        _ => return None,
    };
    u32::try_from(n).ok()
}

fn lstr(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A retry count reads the same whatever integer type, or decimal text,
    /// the publisher used; anything else, or out of range, is `None`.
    #[test]
    fn retry_counts_of_every_integer_type() {
        let props = |v: AMQPValue| {
            let mut h = FieldTable::default();
            h.insert(ShortString::from(RETRIES), v);
            BasicProperties::default().with_headers(h)
        };
        let cases = [
            (AMQPValue::ShortShortUInt(3), Some(3)),
            (AMQPValue::LongInt(7), Some(7)),
            (AMQPValue::LongLongInt(9), Some(9)),
            (AMQPValue::LongString(" 12 ".into()), Some(12)),
            (AMQPValue::LongLongInt(-1), None),
            (AMQPValue::LongLongInt(1 << 40), None),
            (AMQPValue::Boolean(true), None),
        ];
        for (i, (v, want)) in cases.into_iter().enumerate() {
            assert_eq!(amqp_header_u32(&props(v), RETRIES), want, "TC{i}");
        }
        assert_eq!(amqp_header_u32(&BasicProperties::default(), RETRIES), None);
    }
}
