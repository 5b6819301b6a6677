//! The one error enum of the bridge crate.
//!
//! [`Error::is_terminal`] is what the reconnect loop asks: a terminal error
//! (a bad flag, a queue or topic that does not exist, a dead-letter exchange
//! that routes nowhere) ends `run` with its one-line message, anything else
//! (a lost connection, a broker restart) is retried with backoff.

/// Everything that can stop a bridge direction.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Connection, topology or decoding trouble reported by tickbridge-core.
    #[error(transparent)]
    Broker(#[from] tickbridge_broker::Error),
    /// A flag or flag combination that cannot work; the text says how to fix it.
    #[error("configuration: {0}")]
    Config(String),
    /// The queue named by the flags does not exist.
    #[error("RabbitMQ queue {queue:?} does not exist on {url} (check --queue / --amqp-prefix, or pass --declare-topology)")]
    UnknownQueue {
        /// Queue name.
        queue: String,
        /// Broker URL, password masked.
        url: String,
    },
    /// The exchange named by the flags does not exist.
    #[error("RabbitMQ exchange {exchange:?} does not exist on {url} (check --exchange / --amqp-prefix, or pass --declare-topology)")]
    UnknownExchange {
        /// Exchange name.
        exchange: String,
        /// Broker URL, password masked.
        url: String,
    },
    /// The topic named by the flags does not exist.
    #[error(
        "Kafka topic {topic:?} does not exist on {brokers} (create it, or pass --declare-topology)"
    )]
    UnknownTopic {
        /// Topic name.
        topic: String,
        /// Bootstrap servers.
        brokers: String,
    },
    /// The topic existed when the session started and was deleted while the
    /// bridge read it. Terminal: the log it was reading no longer exists.
    #[error("Kafka topic {topic:?} was deleted on {brokers} while the bridge read it; stopping")]
    TopicDeleted {
        /// Topic name.
        topic: String,
        /// Bootstrap servers.
        brokers: String,
    },
    /// A broker could not be reached at startup. After the first successful
    /// session the same condition is retried instead.
    #[error("{broker} at {address} is unreachable: {reason}")]
    Unreachable {
        /// `RabbitMQ` or `Kafka`.
        broker: &'static str,
        /// URL (masked) or bootstrap servers.
        address: String,
        /// Underlying error text.
        reason: String,
    },
    /// A dead letter could not be parked (the dead-letter exchange is missing,
    /// routes nowhere, or nacked it). The original is left unacked or its
    /// offset unstored, so nothing is lost, but the bridge cannot go on.
    #[error("cannot dead-letter {id} to exchange {exchange:?}: {reason}")]
    DeadLetter {
        /// Message id or position.
        id: String,
        /// Dead-letter or unroutable exchange.
        exchange: String,
        /// Why.
        reason: String,
    },
    /// The broker cancelled our AMQP consumer (queue deleted, node
    /// stopping), or the connection dropped while the session was idle.
    #[error("RabbitMQ session ended: {0}")]
    Cancelled(String),
    /// A publish was nacked by RabbitMQ more often than `--publish-retries`.
    #[error("RabbitMQ refused {id} {attempts} times: {reason}")]
    Refused {
        /// Message id.
        id: String,
        /// Attempts made.
        attempts: u32,
        /// Last reason.
        reason: String,
    },
}

impl Error {
    /// `true` when retrying cannot help and `run` should return.
    pub fn is_terminal(&self) -> bool {
        match self {
            Error::Config(_)
            | Error::UnknownQueue { .. }
            | Error::UnknownExchange { .. }
            | Error::UnknownTopic { .. }
            | Error::TopicDeleted { .. }
            | Error::Unreachable { .. }
            | Error::DeadLetter { .. } => true,
            Error::Broker(e) => e.is_terminal(),
            Error::Cancelled(_) | Error::Refused { .. } => false,
        }
    }
}

// Client errors go through the broker crate's error, so whether one is
// terminal is decided in one place, on every path.
tickbridge_broker::wraps_broker_errors!(Error, Broker);

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
