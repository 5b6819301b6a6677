//! The one error type of the shared crate.

use crate::schema::DecodeError;

/// Errors from broker setup, I/O and decoding.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An AMQP operation failed (connection, channel, declare, publish).
    #[error("RabbitMQ: {0}")]
    Amqp(#[from] lapin::Error),
    /// A Kafka operation failed.
    #[error("Kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// Local I/O.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A message body was rejected.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The configuration cannot work; the message says how to fix it.
    #[error("configuration: {0}")]
    Config(String),
    /// No broker lists this Kafka consumer group.
    #[error("Kafka consumer group {group:?} is not known to {brokers} (no member has joined it and it holds no committed offsets)")]
    UnknownGroup {
        /// Group id.
        group: String,
        /// Bootstrap servers asked.
        brokers: String,
    },
    /// A broker did not answer in time.
    #[error("{what} did not answer within {secs}s")]
    Timeout {
        /// What was waited for.
        what: String,
        /// How long.
        secs: u64,
    },
    /// A broker refused a message for good (nack, unroutable return,
    /// permanent Kafka error).
    #[error("rejected by broker: {0}")]
    Rejected(String),
    /// The shutdown signal fired while waiting.
    #[error("shutting down")]
    Shutdown,
}

impl Error {
    /// `true` when retrying cannot help (bad config, bad credentials, a
    /// missing resource the user named), so a binary should exit instead of
    /// reconnecting forever.
    pub fn is_terminal(&self) -> bool {
        match self {
            Error::Config(_) | Error::Shutdown | Error::Decode(_) | Error::UnknownGroup { .. } => {
                true
            }
            Error::Amqp(e) => amqp_error_is_terminal(e),
            Error::Kafka(e) => matches!(
                e.rdkafka_error_code(),
                Some(
                    rdkafka::types::RDKafkaErrorCode::TopicAuthorizationFailed
                        | rdkafka::types::RDKafkaErrorCode::SaslAuthenticationFailed
                        | rdkafka::types::RDKafkaErrorCode::InvalidConfig
                )
            ),
            Error::Io(_) | Error::Timeout { .. } | Error::Rejected(_) => false,
        }
    }
}

/// Access refused (wrong credentials, no permission on the vhost) and a TLS
/// certificate the client does not trust never fix themselves; everything
/// else on the wire might.
fn amqp_error_is_terminal(e: &lapin::Error) -> bool {
    let text = e.to_string();
    text.contains("ACCESS_REFUSED")
        || text.contains("NOT_ALLOWED")
        || text.contains("PRECONDITION_FAILED")
        || text.contains("invalid peer certificate")
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
