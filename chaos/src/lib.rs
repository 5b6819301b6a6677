//! tickbridge-chaos: the whole pipeline under seeded faults, reconciled
//! exactly by tick id.
//!
//! One scenario runs `feed-sim` (in process, behind a fault proxy), the real
//! `producer`, two `worker`s, a two-member Kafka consumer group and the
//! `bridge` as child processes, on a RabbitMQ node and an Apache Kafka broker of
//! its own ([`Brokers`]), injects every fault of [`faults::FaultKind`] once at a
//! seeded random point, then reconciles what the simulator sent, what the
//! producer emitted and confirmed, and what each destination received
//! ([`reconcile`]).
//!
//! * [`config`]: the flags;
//! * [`faults`]: the catalogue and the seeded schedule;
//! * [`proxy`]: WebSocket drops and stalls on demand;
//! * [`procs`]: child processes, killed on drop;
//! * [`inject`]: topology, poison messages, reading the DLQ;
//! * [`records`]: reading the JSON Lines every process wrote;
//! * [`reconcile`]: the rules and the table;
//! * [`scenario`]: the run itself;
//! * [`soak`]: `chaos soak`, the pipeline for millions of ticks on the
//!   same private brokers, every binary's memory sampled over time.
//!
//! Library first: the `chaos` binary parses flags and calls [`run`] (or
//! [`soak::soak`]); the integration test calls [`run_on`] with brokers it
//! shares between seeds.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod faults;
pub mod inject;
pub mod procs;
pub mod proxy;
pub mod reconcile;
pub mod records;
pub mod scenario;
pub mod soak;

pub use config::ChaosConfig;
pub use reconcile::Outcome;
pub use scenario::{run_on, Brokers};
pub use soak::{soak, SoakConfig, SoakOutcome};

/// The chaos runner's one error type: the scenario could not be carried out
/// (an unexplained difference is not an error but a failed [`Outcome`]).
#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    /// Flags that cannot run.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Brokers, binaries or the simulator could not be set up.
    #[error("setup failed: {0}")]
    Setup(String),
    /// A broker operation failed (restart, publish, produce).
    #[error("broker: {0}")]
    Broker(String),
    /// A process did not exit in time.
    #[error("process hung: {0}")]
    Hung(String),
    /// Ctrl-C or SIGTERM arrived before there was anything to report.
    #[error("interrupted {0}")]
    Interrupted(String),
    /// Files and sockets.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// Shared setup code (AMQP topology, Kafka admin).
    #[error(transparent)]
    Shared(#[from] tickbridge_broker::Error),
    /// AMQP client.
    #[error("RabbitMQ: {0}")]
    Amqp(#[from] lapin::Error),
    /// Kafka client.
    #[error("Kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
}

/// Starts private brokers, runs one scenario on them and stops them.
pub async fn run(cfg: ChaosConfig) -> Result<Outcome, ChaosError> {
    cfg.validate().map_err(ChaosError::Config)?;
    let brokers = Brokers::start().await?;
    run_on(cfg, &brokers).await
}
