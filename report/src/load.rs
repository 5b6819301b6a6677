//! Reading the producer's JSON Lines into one [`Series`] per transport.
//!
//! A line is one `tick.v1` or `gap.v1` message, decoded and schema-checked
//! by `tickbridge_model::schema::decode`, the same gate every reader of the
//! pipeline uses. Ticks are sorted into the series their own `via` field
//! names, so a file's name never decides what a tick is. A line that fails
//! (not JSON, not UTF-8, fails the schema, over the size limit) is counted
//! in [`Loaded::malformed`] with the first one's location, and skipped.

use crate::error::{Error, Result};
use chrono::{DateTime, Utc};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use tickbridge_model::{schema, Message, Via};

/// How ticks were obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// WebSocket stream (`via: ws`).
    Ws,
    /// REST polling (`via: poll`).
    Poll,
}

impl Transport {
    /// Name in the legend and in messages.
    pub fn label(self) -> &'static str {
        match self {
            Transport::Ws => "WebSocket",
            Transport::Poll => "REST poll",
        }
    }
}

impl From<Via> for Transport {
    fn from(v: Via) -> Self {
        match v {
            Via::Ws => Transport::Ws,
            Via::Poll => Transport::Poll,
        }
    }
}

/// The ticks of one transport.
#[derive(Debug, Clone)]
pub struct Series {
    /// Which transport.
    pub transport: Transport,
    /// Exchange time → received time of each tick, in milliseconds, in the
    /// order read. Negative when the exchange's clock runs ahead of ours.
    pub latencies_ms: Vec<f64>,
    /// Receive time of each tick, in the order read.
    pub received: Vec<DateTime<Utc>>,
    /// Gap notices of this transport (trades the producer knows it missed).
    pub gap_notices: u64,
}

impl Series {
    /// An empty series.
    pub fn new(transport: Transport) -> Self {
        Series {
            transport,
            latencies_ms: Vec::new(),
            received: Vec::new(),
            gap_notices: 0,
        }
    }

    /// Number of ticks.
    pub fn len(&self) -> usize {
        self.latencies_ms.len()
    }

    /// Whether it holds no tick.
    pub fn is_empty(&self) -> bool {
        self.latencies_ms.is_empty()
    }

    /// Latencies sorted ascending.
    pub fn sorted_latencies(&self) -> Vec<f64> {
        let mut v = self.latencies_ms.clone();
        v.sort_by(f64::total_cmp);
        v
    }

    /// Nearest-rank percentile of the latency (`p` in 0..=100).
    pub fn percentile(&self, p: f64) -> Option<f64> {
        percentile(&self.sorted_latencies(), p)
    }
}

/// Nearest-rank percentile of an ascending slice.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Both series and what could not be read.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// WebSocket ticks.
    pub ws: Series,
    /// Polled ticks.
    pub poll: Series,
    /// Lines that were not a valid message.
    pub malformed: u64,
    /// Where the first of them is and why it failed (`file:line: reason`).
    pub first_malformed: Option<String>,
}

/// Reads every file, in order.
pub fn load_files(files: &[PathBuf]) -> Result<Loaded> {
    let mut loaded = Loaded {
        ws: Series::new(Transport::Ws),
        poll: Series::new(Transport::Poll),
        malformed: 0,
        first_malformed: None,
    };
    for f in files {
        load_file(f, &mut loaded)?;
    }
    Ok(loaded)
}

fn load_file(path: &Path, into: &mut Loaded) -> Result<()> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = std::io::BufReader::new(file);
    let mut line = Vec::with_capacity(1024);
    let mut lineno = 0u64;
    loop {
        line.clear();
        // Bytes, not `lines()`: a line that is not UTF-8 is a malformed
        // message to count, not an I/O error that ends the report.
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| Error::io(path, e))?;
        if n == 0 {
            return Ok(());
        }
        lineno += 1;
        let body = line.trim_ascii();
        if body.is_empty() {
            continue;
        }
        match schema::decode(body) {
            Ok(Message::Tick(t)) => {
                let series = match Transport::from(t.via) {
                    Transport::Ws => &mut into.ws,
                    Transport::Poll => &mut into.poll,
                };
                let micros = (t.received_ts - t.exchange_ts)
                    .num_microseconds()
                    .unwrap_or(i64::MAX);
                series.latencies_ms.push(micros as f64 / 1000.0);
                series.received.push(t.received_ts);
            }
            Ok(Message::Gap(g)) => match Transport::from(g.via) {
                Transport::Ws => into.ws.gap_notices += 1,
                Transport::Poll => into.poll.gap_notices += 1,
            },
            Err(e) => {
                into.malformed += 1;
                if into.first_malformed.is_none() {
                    into.first_malformed = Some(format!("{}:{lineno}: {e}", path.display()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        struct TestCase {
            data: &'static [f64],
            p: f64,
            expected: Option<f64>,
        }
        let cases = [
            // TC0: empty
            TestCase {
                data: &[],
                p: 50.0,
                expected: None,
            },
            // TC1: one value is every percentile
            TestCase {
                data: &[7.0],
                p: 99.0,
                expected: Some(7.0),
            },
            // TC2: median of four is the second
            TestCase {
                data: &[1.0, 2.0, 3.0, 4.0],
                p: 50.0,
                expected: Some(2.0),
            },
            // TC3: p100 is the maximum, p0 the minimum
            TestCase {
                data: &[-1.5, 5.0, 9.0],
                p: 100.0,
                expected: Some(9.0),
            },
            // TC4: p0 is the minimum (a negative latency stays negative)
            TestCase {
                data: &[-1.5, 5.0, 9.0],
                p: 0.0,
                expected: Some(-1.5),
            },
        ];
        for (i, c) in cases.iter().enumerate() {
            assert_eq!(percentile(c.data, c.p), c.expected, "TC{i}");
        }
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&hundred, 99.0), Some(99.0));
        assert_eq!(percentile(&hundred, 0.0), Some(1.0));
        assert_eq!(percentile(&hundred, 100.0), Some(100.0));
    }
}
