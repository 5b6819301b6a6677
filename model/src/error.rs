//! The one error type of the model crate.

use crate::schema::DecodeError;

/// Errors from decoding, local I/O and process set-up (metrics, logging).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Local I/O.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A message body was rejected.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The configuration cannot work; the message says how to fix it.
    #[error("configuration: {0}")]
    Config(String),
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
