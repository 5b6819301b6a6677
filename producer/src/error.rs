//! The producer's error type.

use crate::exchange::ParseError;

/// Everything that can stop a producer run.
#[derive(Debug, thiserror::Error)]
pub enum ProducerError {
    /// Bad flags; the message says which and how to fix it.
    #[error("configuration: {0}")]
    Config(String),
    /// Broker setup or a shared-crate operation failed.
    #[error(transparent)]
    Broker(#[from] tickbridge_broker::Error),
    /// The exchange adapter rejected the configuration (e.g. an unknown symbol).
    #[error("exchange: {0}")]
    Exchange(#[from] ParseError),
    /// Local I/O (JSON Lines sink).
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A task panicked or was aborted.
    #[error("internal: {0}")]
    Internal(String),
}

impl ProducerError {
    /// `true` when retrying cannot help.
    pub fn is_terminal(&self) -> bool {
        match self {
            ProducerError::Broker(e) => e.is_terminal(),
            _ => true,
        }
    }
}
