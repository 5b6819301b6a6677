//! Reading what the processes wrote: the producer's JSON Lines sink (one
//! bare message per line), the readers' `--jsonl` files (one
//! `{handled_at, by, message}` object per line), and the report and summary
//! files written at exit ([`ReportFile`], parsed as the model crate's types
//! of `tickbridge_model::report`, documented in `docs/reports.md`).
//!
//! Files are read incrementally ([`Tail`]) so the scenario can poll them
//! every second while readers catch up without re-parsing what it already
//! read. Only the fields the reconciliation needs are parsed.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// A JSON file a process writes at exit (the producer's `--report`, a
/// reader's `--summary-json`), read as the type its writer serialized.
///
/// Missing and unparsable are kept apart: a process killed on purpose
/// writes nothing, but a file that is there and does not parse means the
/// writer and this reader disagree, which must fail the run rather than
/// read as zeros.
#[derive(Debug, Clone, PartialEq)]
pub enum ReportFile<T> {
    /// There is no file.
    Missing,
    /// The file could not be read or does not parse as `T`: why, with its
    /// path.
    Invalid(String),
    /// The file, parsed.
    Read(T),
}

impl<T: DeserializeOwned> ReportFile<T> {
    /// Reads and parses `path`.
    pub fn read(path: &Path) -> Self {
        match std::fs::read_to_string(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::Missing,
            Err(e) => Self::Invalid(format!("{}: {e}", path.display())),
            Ok(text) => match serde_json::from_str(&text) {
                Ok(v) => Self::Read(v),
                Err(e) => Self::Invalid(format!("{}: {e}", path.display())),
            },
        }
    }
}

/// No file until one is read.
impl<T> Default for ReportFile<T> {
    fn default() -> Self {
        Self::Missing
    }
}

impl<T> ReportFile<T> {
    /// The parsed file, if there is one and it parsed.
    pub fn parsed(&self) -> Option<&T> {
        match self {
            Self::Read(v) => Some(v),
            Self::Missing | Self::Invalid(_) => None,
        }
    }
}

/// The fields of a `tick.v1` or `gap.v1` message the reconciliation uses.
#[derive(Debug, Clone, Deserialize)]
pub struct Msg {
    /// `tick.v1` or `gap.v1`.
    pub schema: String,
    /// Message id: `source:symbol:trade_id` for a tick,
    /// `gap:producer:symbol:seq` for a gap notice.
    pub id: String,
    /// Normalized symbol.
    pub symbol: String,
    /// Trade id (ticks).
    #[serde(default)]
    pub trade_id: Option<u64>,
    /// Gap reason (gap notices).
    #[serde(default)]
    pub reason: Option<String>,
    /// First missing trade id (gap notices).
    #[serde(default)]
    pub missing_from: Option<u64>,
    /// Last missing trade id (gap notices).
    #[serde(default)]
    pub missing_to: Option<u64>,
    /// Producer instance.
    pub producer: String,
}

impl Msg {
    /// Whether this is a gap notice.
    pub fn is_gap(&self) -> bool {
        self.schema == "gap.v1"
    }
}

/// One line of a reader's `--jsonl` output.
#[derive(Debug, Clone, Deserialize)]
pub struct ReaderLine {
    /// When it was handled (written before the ack or offset store).
    pub handled_at: DateTime<Utc>,
    /// Instance name.
    pub by: String,
    /// The message.
    pub message: Msg,
}

/// Incremental reader of one JSON Lines file.
#[derive(Debug)]
pub struct Tail {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
    /// Lines that did not parse (a torn last line of a killed writer is
    /// re-read once complete, so this counts real garbage only).
    pub bad_lines: u64,
}

impl Tail {
    /// A reader at the start of `path` (which may not exist yet).
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            offset: 0,
            partial: Vec::new(),
            bad_lines: 0,
        }
    }

    /// Parses every complete line added since the last call.
    pub fn read_new<T: DeserializeOwned>(&mut self) -> Vec<T> {
        let mut out = Vec::new();
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return out;
        };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return out;
        }
        let mut buf = Vec::new();
        if f.read_to_end(&mut buf).is_err() {
            return out;
        }
        self.offset += buf.len() as u64;
        self.partial.extend_from_slice(&buf);
        let Some(last_nl) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return out;
        };
        let complete: Vec<u8> = self.partial.drain(..=last_nl).collect();
        for line in complete.split(|&b| b == b'\n') {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<T>(line) {
                Ok(v) => out.push(v),
                Err(_) => self.bad_lines += 1,
            }
        }
        out
    }
}

/// Everything one destination (a set of reader instances) handled.
#[derive(Debug, Default)]
pub struct Received {
    tails: HashMap<PathBuf, Tail>,
    /// Every line, in file order per file.
    pub lines: Vec<ReaderLine>,
    /// Occurrences per message id.
    pub count: HashMap<String, u32>,
}

impl Received {
    /// Reads new lines of every file in `dir` whose name starts with
    /// `prefix` and ends in `.jsonl`. Returns how many lines were new.
    pub fn poll(&mut self, dir: &Path, prefix: &str) -> usize {
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if name.starts_with(prefix) && name.ends_with(".jsonl") {
                    self.tails
                        .entry(e.path())
                        .or_insert_with(|| Tail::new(e.path()));
                }
            }
        }
        let mut new = 0;
        for t in self.tails.values_mut() {
            for l in t.read_new::<ReaderLine>() {
                *self.count.entry(l.message.id.clone()).or_default() += 1;
                self.lines.push(l);
                new += 1;
            }
        }
        new
    }

    /// Lines that did not parse.
    pub fn bad_lines(&self) -> u64 {
        self.tails.values().map(|t| t.bad_lines).sum()
    }

    /// Distinct message ids.
    pub fn unique(&self) -> usize {
        self.count.len()
    }

    /// Sum over ids of (occurrences - 1).
    pub fn duplicates(&self) -> u64 {
        self.count
            .values()
            .map(|&n| u64::from(n.saturating_sub(1)))
            .sum()
    }

    /// Lines handled by instances accepted by `by` within `[from, to]`.
    pub fn handled_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        by: impl Fn(&str) -> bool,
    ) -> u64 {
        self.lines
            .iter()
            .filter(|l| l.handled_at >= from && l.handled_at <= to && by(&l.by))
            .count() as u64
    }
}

/// Reads every message of a producer's JSON Lines sink directory.
pub fn read_producer_dir(dir: &Path) -> (Vec<Msg>, u64) {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let mut msgs = Vec::new();
    let mut bad = 0;
    for f in files {
        let mut t = Tail::new(f);
        msgs.extend(t.read_new::<Msg>());
        bad += t.bad_lines;
    }
    (msgs, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_reads_only_complete_new_lines() {
        let dir = std::env::temp_dir().join(format!("chaos-tail-{}", rand::random::<u32>()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("w.jsonl");
        let line = |id: &str| {
            format!(
                r#"{{"handled_at":"2026-11-23T18:00:00.125900Z","by":"w1","via":"rabbitmq-work","message":{{"schema":"tick.v1","id":"{id}","symbol":"BTC-USDT","trade_id":1,"producer":"p"}}}}"#
            )
        };
        std::fs::write(&p, format!("{}\n{}", line("a"), &line("b")[..20])).unwrap();
        let mut r = Received::default();
        assert_eq!(r.poll(&dir, "w"), 1);
        // The torn line is completed later, and a duplicate arrives.
        let mut rest = line("b")[20..].to_string();
        rest.push('\n');
        rest.push_str(&line("a"));
        rest.push('\n');
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        std::io::Write::write_all(&mut f, rest.as_bytes()).unwrap();
        assert_eq!(r.poll(&dir, "w"), 2);
        assert_eq!((r.unique(), r.duplicates(), r.bad_lines()), (2, 1, 0));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
