//! Where handled messages go: a compact human line on stdout, one JSON line
//! per message in a file (`--jsonl`), or nowhere (`--quiet`).
//!
//! A JSON line is written with a single `write` to an unbuffered file before
//! the message is acked or its offset stored. A SIGKILL therefore never loses
//! a line for a message the broker considers done, and the files of several
//! workers can be unioned to prove that nothing was handled twice:
//!
//! ```json
//! {"handled_at":"2026-11-23T18:00:00.125900Z","by":"worker-1","via":"rabbitmq-work",
//!  "redelivered":false,"retries":0,"partition":null,"offset":null,
//!  "message":{"schema":"tick.v1","id":"binance:BTC-USDT:12345",...}}
//! ```

use crate::{Error, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use tickbridge_model::tick::ts_micros;
use tickbridge_model::{Message, MessageRef, Source};

/// Where a message came from, written beside it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Meta {
    /// The broker flagged it as redelivered.
    pub redelivered: bool,
    /// Retries it went through (`tb-retries`), work queue only.
    pub retries: u32,
    /// Kafka partition.
    pub partition: Option<i32>,
    /// Kafka or stream offset.
    pub offset: Option<i64>,
}

#[derive(Serialize)]
struct Line<'a> {
    #[serde(with = "ts_micros")]
    handled_at: DateTime<Utc>,
    by: &'a str,
    via: &'static str,
    redelivered: bool,
    retries: u32,
    partition: Option<i32>,
    offset: Option<i64>,
    message: MessageRef<'a>,
}

/// One JSON line as read back by scripts and tests.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct JsonLine {
    /// When it was handled.
    pub handled_at: String,
    /// Instance name.
    pub by: String,
    /// `rabbitmq-work`, `kafka` or `rabbitmq-stream`.
    pub via: String,
    /// Broker's redelivered flag.
    pub redelivered: bool,
    /// Retries before it succeeded.
    pub retries: u32,
    /// Kafka partition.
    pub partition: Option<i32>,
    /// Kafka or stream offset.
    pub offset: Option<i64>,
    /// The message itself.
    pub message: Message,
}

impl JsonLine {
    /// Reads a JSON Lines file written by `--jsonl`; a torn last line (from
    /// a SIGKILL mid-write, which a single small write makes unlikely) is
    /// ignored.
    pub fn read_all(path: &Path) -> std::io::Result<Vec<JsonLine>> {
        let text = std::fs::read_to_string(path)?;
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
    }
}

enum Sink {
    Human(std::io::Stdout),
    Jsonl(File, PathBuf),
    Quiet,
}

/// The output of one reader.
pub struct Output {
    sink: Sink,
    by: String,
    via: &'static str,
    buf: Vec<u8>,
}

impl Output {
    /// Opens the output the flags ask for. `--jsonl` appends, so a restarted
    /// process adds to its previous file.
    pub fn open(jsonl: Option<&Path>, quiet: bool, by: &str, via: &'static str) -> Result<Self> {
        let sink = match jsonl {
            Some(p) => {
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|source| Error::Output {
                        path: p.to_path_buf(),
                        source,
                    })?;
                Sink::Jsonl(f, p.to_path_buf())
            }
            None if quiet => Sink::Quiet,
            None => Sink::Human(std::io::stdout()),
        };
        Ok(Self {
            sink,
            by: by.to_string(),
            via,
            buf: Vec::with_capacity(1024),
        })
    }

    /// Writes one handled message.
    pub fn write(&mut self, msg: &Message, meta: &Meta, now: DateTime<Utc>) -> Result<()> {
        self.buf.clear();
        match &mut self.sink {
            Sink::Quiet => Ok(()),
            Sink::Jsonl(f, path) => {
                let line = Line {
                    handled_at: now,
                    by: &self.by,
                    via: self.via,
                    redelivered: meta.redelivered,
                    retries: meta.retries,
                    partition: meta.partition,
                    offset: meta.offset,
                    message: msg.as_ref(),
                };
                serde_json::to_writer(&mut self.buf, &line).unwrap_or_default();
                self.buf.push(b'\n');
                f.write_all(&self.buf).map_err(|source| Error::Output {
                    path: path.clone(),
                    source,
                })
            }
            Sink::Human(out) => {
                human(&mut self.buf, msg, meta);
                out.lock()
                    .write_all(&self.buf)
                    .map_err(|source| Error::Output {
                        path: PathBuf::from("<stdout>"),
                        source,
                    })
            }
        }
    }
}

/// `18:00:00.123456 binance BTC-USDT   buy  0.5 @ 97000.5 #12345 seq=1 p0@17 R`
fn human(buf: &mut Vec<u8>, msg: &Message, meta: &Meta) {
    use std::io::Write as _;
    match msg {
        Message::Tick(t) => {
            let side = match t.side {
                tickbridge_model::Side::Buy => "buy ",
                tickbridge_model::Side::Sell => "sell",
            };
            human_head(buf, &t.exchange_ts, t.source, &t.symbol);
            let _ = write!(
                buf,
                "{side} {} @ {} #{} seq={}",
                t.qty, t.price, t.trade_id, t.seq
            );
        }
        Message::Gap(g) => {
            human_head(buf, &g.detected_ts, g.source, &g.symbol);
            let _ = write!(
                buf,
                "GAP {} missing {:?}..{:?} ({:?}) seq={}",
                g.reason.as_str(),
                g.missing_from,
                g.missing_to,
                g.missing_count,
                g.seq
            );
        }
    }
    if let (Some(p), Some(o)) = (meta.partition, meta.offset) {
        let _ = write!(buf, " p{p}@{o}");
    } else if let Some(o) = meta.offset {
        let _ = write!(buf, " @{o}");
    }
    if meta.redelivered {
        buf.extend_from_slice(b" R");
    }
    if meta.retries > 0 {
        let _ = write!(buf, " retry={}", meta.retries);
    }
    buf.push(b'\n');
}

/// The columns a tick line and a gap line start with, `time source symbol `,
/// written once so both kinds stay aligned in a mixed stream.
fn human_head(buf: &mut Vec<u8>, ts: &DateTime<Utc>, source: Source, symbol: &str) {
    let _ = write!(
        buf,
        "{} {:<8} {:<10} ",
        ts.format("%H:%M:%S%.6f"),
        source,
        symbol
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickbridge_testkit::loadgen::synthetic_ticks;

    #[test]
    fn jsonl_round_trips_and_human_is_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let tick = synthetic_ticks("p", &["ETH-USD"], 1).remove(0);
        let msg = Message::Tick(tick);
        let meta = Meta {
            redelivered: true,
            retries: 1,
            partition: Some(2),
            offset: Some(9),
        };
        let mut out = Output::open(Some(&path), false, "w1", "kafka").unwrap();
        out.write(&msg, &meta, Utc::now()).unwrap();
        out.write(&msg, &Meta::default(), Utc::now()).unwrap();
        let lines = JsonLine::read_all(&path).unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].message, msg);
        assert_eq!(
            (lines[0].partition, lines[0].offset, lines[0].redelivered),
            (Some(2), Some(9), true)
        );
        let mut buf = Vec::new();
        human(&mut buf, &msg, &meta);
        let text = String::from_utf8(buf).unwrap();
        assert_eq!(text.matches('\n').count(), 1);
        assert!(
            text.contains("ETH-USD") && text.contains("p2@9") && text.contains(" R"),
            "{text}"
        );
    }
}
