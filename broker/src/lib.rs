//! tickbridge-broker: RabbitMQ and Kafka, once, for every tickbridge binary.
//!
//! * [`amqp`] and [`kafka`]: connection settings, topology, confirm
//!   channels, queue depth and existence checks, and Kafka consumer groups
//!   and their lag ([`kafka::groups`]);
//! * [`headers`]: how ids and schema names are written into AMQP properties
//!   and Kafka headers (the names themselves are in `tickbridge_model`);
//! * [`error`]: the crate's one error enum, and whether an error is terminal,
//!   decided here from lapin's and rdkafka's typed errors;
//! * [`dedup`]: the bounded window of recently seen ids that readers and the
//!   bridge use to count redeliveries;
//! * [`events`]: the telemetry events every broker reader shares
//!   (dead-lettered, redelivered, reconnecting, commit failed);
//! * [`backoff`]: capped exponential backoff with jitter for reconnects.
//!
//! The data types, the schema, shutdown and telemetry set-up live in
//! `tickbridge_model`, which depends on no broker library.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod amqp;
pub mod backoff;
pub mod dedup;
pub mod error;
pub mod events;
pub mod headers;
pub mod kafka;

pub use error::{Error, Result};

/// What [`wraps_broker_errors!`] expands to refers to; not an API.
#[doc(hidden)]
pub mod __private {
    pub use lapin;
    pub use rdkafka;
    pub use tickbridge_model;
}
