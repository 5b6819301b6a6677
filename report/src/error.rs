//! The crate's one error enum.

use std::path::{Path, PathBuf};

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Nothing to read.
    #[error("no input: {0}")]
    NoInput(String),
    /// The inputs hold no tick of one transport, so there is nothing to
    /// compare with.
    #[error(
        "no {series} tick in {files:?}: the chart compares WebSocket and polling, both are needed"
    )]
    EmptySeries {
        /// Which series is empty.
        series: &'static str,
        /// The files read.
        files: Vec<String>,
    },
    /// The plotting library failed (writing the SVG, laying out the chart).
    #[error("drawing {path}: {message}")]
    Draw {
        /// The SVG being written.
        path: PathBuf,
        /// What plotters said.
        message: String,
    },
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
