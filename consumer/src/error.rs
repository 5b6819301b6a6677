//! The one error enum of the consumer crate.
//!
//! Errors from the shared crate are wrapped, not flattened, so the message a
//! user sees still says which broker or file was involved. [`Error::is_terminal`]
//! tells a binary whether to give up (bad flags, a queue or topic that does not
//! exist) or whether a retry could help.

use std::path::PathBuf;

/// Everything that can stop a worker or consumer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Connection, topology or decoding trouble reported by tickbridge-core.
    #[error(transparent)]
    Broker(#[from] tickbridge_broker::Error),
    /// Writing the JSON Lines output or the summary failed. Handling a message
    /// includes writing it, so this fails the message rather than acking it.
    #[error("cannot write {path}: {source}")]
    Output {
        /// File involved.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// A flag or flag combination that cannot work; the text says how to fix it.
    #[error("configuration: {0}")]
    Config(String),
    /// The queue named by the flags does not exist on the broker.
    #[error("RabbitMQ queue {queue:?} does not exist on {url} (run scripts/stack.sh up, or pass --declare-topology)")]
    UnknownQueue {
        /// Queue name.
        queue: String,
        /// Broker URL, password masked.
        url: String,
    },
    /// The topic named by the flags does not exist on the brokers.
    #[error("Kafka topic {topic:?} does not exist on {brokers} (create it, or start the producer first)")]
    UnknownTopic {
        /// Topic name.
        topic: String,
        /// Bootstrap servers.
        brokers: String,
    },
    /// The topic existed when the reader started and was deleted while it
    /// read (the broker answers `UNKNOWN_TOPIC_OR_PART` for it). Terminal:
    /// a reader cannot resume a log that no longer exists, and waiting for
    /// a topic of the same name to come back would read a different log.
    #[error("Kafka topic {topic:?} was deleted on {brokers} while this reader read it; stopping ({handled} records handled)")]
    TopicDeleted {
        /// Topic name.
        topic: String,
        /// Bootstrap servers.
        brokers: String,
        /// Records this reader handled before the deletion.
        handled: u64,
    },
    /// The handler failed on a log (Kafka, stream), where there is no retry
    /// queue: stopping keeps the offset from being committed past it.
    #[error("handler failed at {position}: {reason}")]
    Handler {
        /// Where in the log.
        position: String,
        /// Why.
        reason: String,
    },
    /// The broker cancelled our consumer (queue deleted, node shutting down).
    #[error("the broker cancelled the consumer on {0:?} (was the queue deleted?)")]
    Cancelled(String),
}

impl Error {
    /// `true` when retrying cannot help: the user has to change a flag, create
    /// a resource or fix credentials. Binaries exit non-zero on these instead
    /// of reconnecting forever.
    pub fn is_terminal(&self) -> bool {
        match self {
            Error::Config(_)
            | Error::UnknownQueue { .. }
            | Error::UnknownTopic { .. }
            | Error::TopicDeleted { .. } => true,
            Error::Output { .. } | Error::Handler { .. } => true,
            Error::Broker(e) => e.is_terminal(),
            // A cancelled consumer is retried: if the queue is really gone,
            // the next attempt fails with the terminal `UnknownQueue`.
            Error::Cancelled(_) => false,
        }
    }
}

// Client errors go through the broker crate's error, so whether one is
// terminal is decided in one place, on every path.
tickbridge_broker::wraps_broker_errors!(Error, Broker);

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
