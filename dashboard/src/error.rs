//! The crate's one error type.

/// Everything that can stop the dashboard or refuse a request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag or a request parameter is wrong; the text says how.
    #[error("{0}")]
    Config(String),
    /// The shared library refused (Kafka setup, metrics).
    #[error(transparent)]
    Core(#[from] tickbridge_core::Error),
    /// librdkafka failed.
    #[error("Kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
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
            Error::Core(e) => e.is_terminal(),
            Error::Kafka(_) | Error::Io(_) => false,
        }
    }
}

/// Result with the crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
