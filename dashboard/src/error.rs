//! The crate's one error type.

/// Everything that can stop the dashboard or refuse a request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag or a request parameter is wrong; the text says how.
    #[error("{0}")]
    Config(String),
    /// Kafka or the metrics set-up failed, through the broker crate, which
    /// decides whether the error is terminal.
    #[error(transparent)]
    Broker(#[from] tickbridge_broker::Error),
    /// A socket failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// Whether retrying cannot help (bad configuration), as opposed to a
    /// broker or network failure that may pass.
    pub fn is_terminal(&self) -> bool {
        match self {
            Error::Config(_) => true,
            Error::Broker(e) => e.is_terminal(),
            Error::Io(_) => false,
        }
    }
}

/// Result with the crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

// librdkafka's (and lapin's) errors go through the broker crate's error.
tickbridge_broker::wraps_broker_errors!(Error, Broker);
