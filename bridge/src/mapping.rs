//! How a message's metadata crosses between AMQP and Kafka.
//!
//! The body is forwarded byte for byte. The metadata is rebuilt from the
//! *validated body* with `tickbridge_broker::headers`, so a bridged message
//! carries exactly what `schemas/README.md` promises (`message_id` = `tb-id`
//! = the tick id, `type`, `tb-source`, `tb-symbol`, `tb-producer`,
//! `tb-seq`) even if the sender's metadata was incomplete. Any *other*
//! header is passed through as a UTF-8 string (AMQP tables and arrays, which
//! Kafka headers cannot express, are dropped), and the bridge adds
//! `tb-origin` so neither direction bridges the message back.

use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::BasicProperties;
use rdkafka::message::{BorrowedHeaders, Header, Headers, OwnedHeaders};
use tickbridge_broker::headers;
use tickbridge_model::MessageRef;

/// `app_id` of everything the bridge publishes to RabbitMQ.
pub const APP_ID: &str = "tickbridge-bridge";

/// Headers `tickbridge_broker::headers` writes (plus the origin marker); they
/// are rebuilt from the body, never copied.
const CORE: [&str; 8] = [
    headers::ID,
    headers::TYPE,
    "content-type",
    headers::SOURCE,
    headers::SYMBOL,
    headers::PRODUCER,
    headers::SEQ,
    headers::ORIGIN,
];

pub use tickbridge_broker::headers::{amqp_header, value_text as amqp_value_text};

/// A header of a Kafka record as text (last one wins, as in Kafka clients).
pub fn kafka_header(h: Option<&BorrowedHeaders>, key: &str) -> Option<String> {
    let h = h?;
    h.iter()
        .filter(|x| x.key == key)
        .last()
        .and_then(|x| x.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// Kafka headers for a message that came from RabbitMQ: the core set from
/// the body, other AMQP headers as text, and `tb-origin`.
pub fn kafka_headers_from_amqp(
    msg: MessageRef<'_>,
    props: &BasicProperties,
    origin: &str,
) -> OwnedHeaders {
    let mut out = headers::kafka_headers(msg);
    if let Some(t) = props.headers() {
        for (k, v) in t.inner() {
            if CORE.contains(&k.as_str()) {
                continue;
            }
            if let Some(text) = amqp_value_text(v) {
                out = out.insert(Header {
                    key: k.as_str(),
                    value: Some(text.as_str()),
                });
            }
        }
    }
    out.insert(Header {
        key: headers::ORIGIN,
        value: Some(origin),
    })
}

/// AMQP properties for a message that came from Kafka: the core set from
/// the body, other Kafka headers as long strings, and `tb-origin`.
pub fn amqp_properties_from_kafka(
    msg: MessageRef<'_>,
    kafka: Option<&BorrowedHeaders>,
    origin: &str,
) -> BasicProperties {
    let props = headers::amqp_properties(msg, APP_ID);
    let mut table = props.headers().clone().unwrap_or_default();
    if let Some(h) = kafka {
        for x in h.iter() {
            if CORE.contains(&x.key) {
                continue;
            }
            if let Some(v) = x.value {
                table.insert(ShortString::from(x.key), lstr(&String::from_utf8_lossy(v)));
            }
        }
    }
    table.insert(ShortString::from(headers::ORIGIN), lstr(origin));
    props.with_headers(table)
}

/// Properties of a dead letter: the original ones (or, for a Kafka record,
/// its headers) with the reason in `tb-error`.
pub fn dead_letter_properties(base: BasicProperties, reason: &str) -> BasicProperties {
    let mut table = base.headers().clone().unwrap_or_default();
    let reason: String = reason.chars().take(1000).collect();
    table.insert(ShortString::from(headers::ERROR), lstr(&reason));
    base.with_headers(table)
}

/// AMQP properties carrying every header of a Kafka record as text (for
/// dead-lettering records that do not decode, whose body cannot be trusted).
pub fn raw_properties_from_kafka(kafka: Option<&BorrowedHeaders>) -> BasicProperties {
    let mut table = FieldTable::default();
    if let Some(h) = kafka {
        for x in h.iter() {
            if let Some(v) = x.value {
                table.insert(ShortString::from(x.key), lstr(&String::from_utf8_lossy(v)));
            }
        }
    }
    let mut p = BasicProperties::default()
        .with_app_id(APP_ID.into())
        .with_delivery_mode(2)
        .with_headers(table);
    if let Some(id) = kafka_header(kafka, headers::ID) {
        p = p.with_message_id(id.as_str().into());
    }
    p
}

fn lstr(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::Headers;
    use tickbridge_model::schema::decode;

    const TICK: &str = r#"{"schema":"tick.v1","id":"binance:BTC-USDT:12345","source":"binance","symbol":"BTC-USDT","raw_symbol":"BTCUSDT","trade_id":12345,"price":"0.00100000","qty":"100.00000000","side":"sell","exchange_ts":"2026-11-23T18:00:00.123000Z","received_ts":"2026-11-23T18:00:00.125431Z","producer":"host-4242-1","seq":7,"via":"ws"}"#;

    fn owned_text(h: &OwnedHeaders, key: &str) -> Option<String> {
        h.iter()
            .filter(|x| x.key == key)
            .last()
            .and_then(|x| x.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    #[test]
    fn amqp_to_kafka_keeps_ids_and_extra_headers() {
        let msg = decode(TICK.as_bytes()).unwrap();
        let mut props = headers::amqp_properties(msg.as_ref(), "tickbridge-producer");
        let mut t = props.headers().clone().unwrap();
        t.insert("tb-retries".into(), AMQPValue::LongInt(2));
        // A forged id in the metadata loses against the body.
        t.insert(headers::ID.into(), lstr("forged"));
        t.insert(
            "x-nested".into(),
            AMQPValue::FieldTable(FieldTable::default()),
        );
        props = props.with_headers(t);
        let h = kafka_headers_from_amqp(msg.as_ref(), &props, "rabbitmq");
        let cases = [
            (headers::ID, Some("binance:BTC-USDT:12345")),
            (headers::TYPE, Some("tick.v1")),
            (headers::SYMBOL, Some("BTC-USDT")),
            (headers::SEQ, Some("7")),
            (headers::PRODUCER, Some("host-4242-1")),
            ("tb-retries", Some("2")),
            (headers::ORIGIN, Some("rabbitmq")),
            ("x-nested", None),
        ];
        for (key, want) in cases {
            assert_eq!(owned_text(&h, key).as_deref(), want, "{key}");
        }
        assert_eq!(h.iter().filter(|x| x.key == headers::ID).count(), 1);
    }

    #[test]
    fn kafka_to_amqp_sets_message_id_and_origin() {
        let msg = decode(TICK.as_bytes()).unwrap();
        let p = amqp_properties_from_kafka(msg.as_ref(), None, "kafka");
        assert_eq!(
            p.message_id().as_ref().map(|s| s.as_str()),
            Some("binance:BTC-USDT:12345")
        );
        assert_eq!(p.kind().as_ref().map(|s| s.as_str()), Some("tick.v1"));
        assert_eq!(p.app_id().as_ref().map(|s| s.as_str()), Some(APP_ID));
        assert_eq!(amqp_header(&p, headers::ORIGIN).as_deref(), Some("kafka"));
        assert_eq!(amqp_header(&p, headers::SEQ).as_deref(), Some("7"));
        let dl = dead_letter_properties(p, "why");
        assert_eq!(amqp_header(&dl, headers::ERROR).as_deref(), Some("why"));
    }
}
