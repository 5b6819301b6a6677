//! tickbridge-consumer: reading ticks back out of the brokers, two ways.
//!
//! * [`worker`]: the RabbitMQ **work queue**, one-to-one. Each message goes to
//!   exactly one of the running workers, is acked only after the handler
//!   succeeded, retried a bounded number of times with the count carried in a
//!   header, and dead-lettered with its reason when it cannot be handled.
//! * [`consumer`]: **broadcast with replay**, from a Kafka topic through
//!   consumer groups ([`kafka`]) or from the RabbitMQ stream queue
//!   ([`stream`]). Every group sees every tick; [`replay`] moves where a
//!   reader starts. [`lag`] samples the group's lag from the brokers.
//!
//! Both share the [`handler`] (decode, fail on purpose, write, measure), the
//! [`output`] formats, the [`stats`] and [`analytics`] they print, and the
//! [`events`] they log and count (the events shared with the bridge are in
//! `tickbridge_broker::events`).
//!
//! The binaries in `src/bin/` only parse flags and call [`worker::run`] or
//! [`consumer::run`] with a [`Shutdown`](tickbridge_model::Shutdown), under
//! [`supervise::supervise`] (reconnect with backoff), so tests drive exactly
//! the code users run.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod analytics;
pub mod config;
pub mod consumer;
pub mod error;
pub mod events;
pub mod handler;
pub mod kafka;
pub mod lag;
pub mod output;
pub mod replay;
pub mod stats;
pub mod stream;
pub mod supervise;
pub mod worker;

pub use error::{Error, Result};
pub use stats::Summary;
