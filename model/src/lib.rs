//! tickbridge-model: the broker-free half of tickbridge.
//!
//! * [`tick`]: the normalized [`Tick`](tick::Tick) and
//!   [`GapNotice`](tick::GapNotice) types, mirrors of `schemas/*.json`;
//! * [`schema`]: validation and bounded decoding against those files, with
//!   the readers' fast path ([`schema::fast_tick`]);
//! * [`headers`]: the names under which ids and schema names travel in
//!   AMQP and Kafka metadata;
//! * [`report`]: the producer's `--report` and the readers'
//!   `--summary-json` files, written and read back through the same types
//!   (documented in `docs/reports.md`);
//! * [`shutdown`], [`telemetry`], [`cli`]: the process plumbing every
//!   binary shares (one shutdown signal, logs and metrics, `--help`).
//! * [`error`]: the crate's one error enum.
//!
//! It depends on no broker library: the feed simulator and the report tool
//! build from it alone, and `tickbridge-broker` adds RabbitMQ and Kafka on
//! top of it.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cli;
pub mod error;
pub mod headers;
pub mod report;
pub mod schema;
pub mod shutdown;
pub mod telemetry;
pub mod tick;

pub use error::{Error, Result};
pub use shutdown::Shutdown;
pub use tick::{GapNotice, GapReason, Message, MessageRef, Side, Source, Tick, Via};
