//! tickbridge-dashboard: the pipeline, live, in a browser.
//!
//! The dashboard is one more reader of the pipeline. It reads the Kafka
//! topic in a consumer group of its own (broadcast: it takes nothing from
//! the other groups), scrapes the `/metrics` of the processes it is pointed
//! at, and pushes both to browsers over Server-Sent Events.
//!
//! * [`config`]: flags, with environment fallbacks;
//! * [`cursor`]: a Kafka position over every partition, the SSE event id;
//! * [`hub`]: the live reader, the shared state and the fan-out to clients;
//! * [`replay`]: a client's private Kafka read from its cursor up to the live
//!   position (SSE resume and the replay button);
//! * [`scrape`]: Prometheus text parsing and what each process's numbers mean;
//! * [`server`]: the HTTP server, `/events`, the page;
//! * [`limits`]: raising the open-file limit for many connections;
//! * [`error`]: the crate's one error enum.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod cursor;
pub mod error;
pub mod hub;
pub mod limits;
pub mod replay;
pub mod scrape;
pub mod server;

pub use config::DashboardConfig;
pub use cursor::Cursor;
pub use error::{Error, Result};
pub use server::run;
