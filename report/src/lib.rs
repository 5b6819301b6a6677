//! tickbridge-report: streaming vs polling, drawn.
//!
//! The producer's JSON Lines sink writes what it read off a WebSocket to
//! `stream_ws_YYYY-MM-DD.jsonl` and what it polled over REST to
//! `poll_YYYY-MM-DD.jsonl`; each tick carries the exchange's trade time and
//! the producer's receive time. This crate reads those files
//! ([`load`]) and draws one SVG ([`chart`]) with two panels:
//!
//! * the latency distribution (exchange time → received time) of each
//!   transport, as a cumulative distribution on a log axis, because a
//!   stream's milliseconds and a poll's hundreds of milliseconds differ by
//!   two orders of magnitude;
//! * tick arrival over time, cumulative: the stream is a smooth ramp, the
//!   poller a staircase with one step per poll.
//!
//! Each line is decoded and schema-checked with `tickbridge_model::schema`;
//! a line that fails is counted, reported with its file and line number,
//! and skipped, never silently dropped. The `report` binary is a thin
//! wrapper around [`run`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod chart;
pub mod error;
pub mod load;

pub use error::{Error, Result};
pub use load::{Series, Transport};

use std::path::{Path, PathBuf};

/// Flags of the `report` binary.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportConfig {
    /// A run directory (such as `out/demo-123456`): reads its
    /// `stream_ws_*.jsonl` and `poll_*.jsonl`, the files the producer's
    /// JSON Lines sink writes for `--via ws` and `--via poll`.
    #[arg(long, env = "REPORT_DIR")]
    pub dir: Option<PathBuf>,
    /// Extra JSON Lines files to read (repeatable or comma-separated). Each
    /// tick goes to the series its own `via` field names, whatever the file.
    #[arg(long = "input", env = "REPORT_INPUTS", value_delimiter = ',')]
    pub inputs: Vec<PathBuf>,
    /// Where to write the SVG. Defaults to `streaming-vs-polling.svg` in
    /// `--dir`.
    #[arg(long, env = "REPORT_OUT")]
    pub out: Option<PathBuf>,
    /// Title drawn above both panels.
    #[arg(
        long,
        env = "REPORT_TITLE",
        default_value = "Streaming vs polling: same market, same symbols"
    )]
    pub title: String,
}

/// What [`run`] read and wrote.
#[derive(Debug, Clone)]
pub struct Report {
    /// The SVG written.
    pub svg: PathBuf,
    /// The WebSocket series.
    pub ws: Series,
    /// The polling series.
    pub poll: Series,
    /// Files read, in order.
    pub files: Vec<PathBuf>,
    /// Lines that were not a valid message (skipped, counted).
    pub malformed: u64,
    /// Where the first of them is and why (`file:line: reason`).
    pub first_malformed: Option<String>,
}

/// The JSON Lines files of a run directory: `stream_ws_*.jsonl` and
/// `poll_*.jsonl`, sorted by name (one file per UTC day).
pub fn run_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(".jsonl") && (name.starts_with("stream_ws_") || name.starts_with("poll_"))
        {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Reads the inputs, draws the chart, returns what was read.
pub fn run(cfg: &ReportConfig) -> Result<Report> {
    let mut files = match &cfg.dir {
        Some(dir) => run_files(dir)?,
        None => Vec::new(),
    };
    files.extend(cfg.inputs.iter().cloned());
    if files.is_empty() {
        return Err(Error::NoInput(match &cfg.dir {
            Some(d) => format!("{} holds no stream_ws_*.jsonl or poll_*.jsonl", d.display()),
            None => "give --dir or --input".into(),
        }));
    }
    let out = match (&cfg.out, &cfg.dir) {
        (Some(out), _) => out.clone(),
        (None, Some(dir)) => dir.join("streaming-vs-polling.svg"),
        (None, None) => return Err(Error::NoInput("give --out when there is no --dir".into())),
    };
    let load::Loaded {
        ws,
        poll,
        malformed,
        first_malformed,
    } = load::load_files(&files)?;
    for s in [&ws, &poll] {
        if s.is_empty() {
            return Err(Error::EmptySeries {
                series: s.transport.label(),
                files: files.iter().map(|f| f.display().to_string()).collect(),
            });
        }
    }
    chart::draw(&out, &cfg.title, &ws, &poll)?;
    Ok(Report {
        svg: out,
        ws,
        poll,
        files,
        malformed,
        first_malformed,
    })
}
