//! tickbridge-core: what every tickbridge binary shares.
//!
//! * [`tick`]: the normalized [`Tick`](tick::Tick) and
//!   [`GapNotice`](tick::GapNotice) types, mirrors of `schemas/*.json`;
//! * [`schema`]: validation and bounded decoding against those files;
//! * [`headers`]: how ids and schema names travel in AMQP and Kafka metadata;
//! * [`amqp`] and [`kafka`]: connection settings and topology setup, and
//!   Kafka consumer groups and their lag ([`kafka::groups`]);
//! * [`shutdown`], [`backoff`], [`telemetry`]: lifecycle and observability;
//! * [`cli`]: the about line and example every binary's `--help` starts with;
//! * [`error`]: the crate's one error enum.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod amqp;
pub mod backoff;
pub mod cli;
pub mod dedup;
pub mod error;
pub mod headers;
pub mod kafka;
pub mod schema;
pub mod shutdown;
pub mod telemetry;
pub mod testkit;
pub mod tick;

pub use error::{Error, Result};
pub use shutdown::Shutdown;
pub use tick::{GapNotice, GapReason, Message, MessageRef, Side, Source, Tick, Via};
