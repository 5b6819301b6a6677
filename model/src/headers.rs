//! The names under which a message's identity travels in broker metadata,
//! identically on RabbitMQ and Kafka (see `schemas/README.md`). How they are
//! written into AMQP properties and Kafka headers is in
//! `tickbridge_broker::headers`; readers that only compare names need no
//! broker library.

/// Idempotency key (also AMQP `message_id`).
pub const ID: &str = "tb-id";
/// Schema name, `tick.v1` or `gap.v1` (also AMQP `type`).
pub const TYPE: &str = "tb-type";
/// Exchange.
pub const SOURCE: &str = "tb-source";
/// Normalized symbol (also the Kafka key).
pub const SYMBOL: &str = "tb-symbol";
/// Producer instance id.
pub const PRODUCER: &str = "tb-producer";
/// Per producer and symbol sequence, decimal text.
pub const SEQ: &str = "tb-seq";
/// Set by the bridge on what it forwards: the broker the message came from.
/// A bridge skips messages that carry its own marker, so nothing ping-pongs.
pub const ORIGIN: &str = "tb-origin";
/// Set on dead-lettered messages: why they were dead-lettered.
pub const ERROR: &str = "tb-error";
/// Retry count carried by re-published work-queue messages.
pub const RETRIES: &str = "tb-retries";
/// MIME type of every body.
pub const CONTENT_TYPE_JSON: &str = "application/json";
