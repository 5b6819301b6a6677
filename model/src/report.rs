//! The JSON files the binaries write at exit, as types both sides share.
//!
//! * [`RunReport`] (with one [`SinkReport`] per sink): the producer's
//!   `--report` file and the value its `run` returns;
//! * [`ReaderSummary`] (with [`Percentiles`] and [`GroupLagSummary`]): the
//!   `--summary-json` file of the `worker` and the `consumer`, and what their
//!   `run` returns.
//!
//! The writers serialize these types and the chaos suite deserializes the
//! same ones, so a renamed or retyped field is a compile error on both sides
//! instead of a key that silently reads as zero. Every field, its meaning
//! and its unit is in `docs/reports.md`, whose examples
//! (`schemas/examples/reports/`) the tests below parse and write back byte
//! for byte. Unknown keys are ignored when reading, so a file written by a
//! newer binary that only added fields still reads.

use crate::telemetry::LatencyStats;
use crate::tick::Via;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One producer sink, by the name the report, the logs and the metrics use.
///
/// An enum rather than a string so that a reader of the report (the chaos
/// reconciliation asks for one sink's `unconfirmed`) cannot ask for a sink
/// that does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sink {
    /// The RabbitMQ topic exchange (publisher confirms).
    Rabbitmq,
    /// The Kafka topic (delivery reports).
    Kafka,
    /// The JSON Lines files of `--out-dir`.
    Jsonl,
}

impl Sink {
    /// Lower-case name, as in the report.
    pub fn as_str(self) -> &'static str {
        match self {
            Sink::Rabbitmq => "rabbitmq",
            Sink::Kafka => "kafka",
            Sink::Jsonl => "jsonl",
        }
    }
}

/// What one producer run did: written by `producer --report PATH` as one
/// pretty JSON object at exit, and returned by the producer's `run`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// Producer id: scopes `seq` in every message of the run, and names the
    /// run in the messages' `producer` field.
    pub producer: String,
    /// Exchange the run read (`binance`, `coinbase`, `kraken`).
    pub exchange: String,
    /// How the trades were read (`ws` or `poll`): the streaming and polling
    /// runs of a demo are compared by it.
    pub via: Via,
    /// Seconds from start to exit, setup and drain included.
    pub seconds: f64,
    /// Seconds from the first tick handed to the sinks until every sink had
    /// confirmed everything: the denominator of throughput figures, without
    /// connection and topic setup.
    pub active_seconds: f64,
    /// WebSocket frames (or REST bodies) read.
    pub frames: u64,
    /// Trades parsed from those frames.
    pub trades_in: u64,
    /// Ticks emitted to the sinks (after dedup).
    pub ticks: u64,
    /// Gap notices emitted.
    pub gaps: u64,
    /// Trades those notices report missing (where the range is known).
    pub gap_trades: u64,
    /// Exact duplicate trades dropped (same trade id within the window).
    pub duplicates: u64,
    /// Trades a poll returned that an earlier poll had already returned.
    pub poll_overlap: u64,
    /// Trades older than the last seen id but outside the dedup window.
    pub out_of_order: u64,
    /// Frames rejected by the parser, any reason.
    pub malformed: u64,
    /// Feed reconnections after the first connection.
    pub reconnects: u64,
    /// One entry per configured sink, in `--sink` order.
    pub sinks: Vec<SinkReport>,
    /// Sum of `unconfirmed` over `sinks`: zero after a clean drain, so one
    /// field says whether every message reached its broker.
    pub unconfirmed: u64,
}

impl RunReport {
    /// The entry of one sink, if the run had it.
    pub fn sink(&self, sink: Sink) -> Option<&SinkReport> {
        self.sinks.iter().find(|s| s.sink == sink)
    }
}

/// Final numbers of one producer sink, counted in messages (ticks and gap
/// notices alike).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkReport {
    /// Which sink.
    pub sink: Sink,
    /// Messages handed to the broker client (re-publishes not counted).
    pub published: u64,
    /// Messages confirmed: RabbitMQ ack, Kafka delivery report, JSON Lines
    /// write.
    pub confirmed: u64,
    /// Re-publishes after a nack, return, error or reconnect.
    pub retries: u64,
    /// Given up after every retry; each is covered by a `publish_failed`
    /// gap notice.
    pub failed: u64,
    /// Evicted from a full buffer under `--overflow drop-oldest`; covered by
    /// a `buffer_overflow` gap notice.
    pub dropped: u64,
    /// Still unconfirmed when the run ended (drain timeout, hard stop).
    /// Zero after a clean drain.
    pub unconfirmed: u64,
    /// Connections made to the broker, the first included.
    pub connects: u64,
}

/// Latency percentiles of one reader, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Samples (ticks; gap notices carry no trade time).
    pub count: u64,
    /// Median, ms.
    pub p50_ms: f64,
    /// 90th percentile, ms.
    pub p90_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Maximum, ms.
    pub max_ms: f64,
}

impl From<&LatencyStats> for Percentiles {
    fn from(l: &LatencyStats) -> Self {
        Self {
            count: l.len(),
            p50_ms: l.percentile_ms(50.0),
            p90_ms: l.percentile_ms(90.0),
            p99_ms: l.percentile_ms(99.0),
            max_ms: if l.is_empty() { 0.0 } else { l.max_ms() },
        }
    }
}

/// Final statistics of one reader: written by `worker`/`consumer
/// --summary-json PATH` as one pretty JSON object at exit, and returned by
/// their `run`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReaderSummary {
    /// Instance name (`--name`).
    pub name: String,
    /// `worker`, `kafka` or `stream`: which reader wrote it.
    pub role: String,
    /// Wall-clock seconds from start to exit.
    pub elapsed_secs: f64,
    /// Deliveries received, including those that failed or were dead-lettered.
    pub received: u64,
    /// Messages handled successfully (written out, then acked or stored).
    pub handled: u64,
    /// Handled per second over the whole run (idle time included).
    pub rate_per_sec: f64,
    /// When the first message was handled (RFC 3339, µs).
    pub first_handled_at: Option<String>,
    /// When the last message was handled (RFC 3339, µs).
    pub last_handled_at: Option<String>,
    /// Handled per second between the first and the last handled message:
    /// the throughput while there was work, without startup or idle time.
    pub active_rate_per_sec: f64,
    /// Ticks among `handled`.
    pub ticks: u64,
    /// Gap notices among `handled`.
    pub gap_notices: u64,
    /// Sum of `missing_count` over gap notices that carried one.
    pub gap_notice_missing: u64,
    /// Receive time here minus the tick's `received_ts`: producer → broker →
    /// reader.
    pub latency_from_received: Percentiles,
    /// Receive time here minus the tick's `exchange_ts`: adds the exchange
    /// and the internet.
    pub latency_from_exchange: Percentiles,
    /// Handled messages whose id this instance had handled before.
    pub duplicates: u64,
    /// Jumps in a producer's per-symbol sequence.
    pub seq_gaps: u64,
    /// Sequence numbers skipped by those jumps.
    pub seq_missing: u64,
    /// Messages whose sequence was not above the last one seen (reordering or
    /// duplicates).
    pub seq_regressions: u64,
    /// Jumps in an exchange's per-symbol trade ids.
    pub trade_id_gaps: u64,
    /// Trade ids skipped by those jumps.
    pub trade_id_missing: u64,
    /// Deliveries the broker flagged as redelivered.
    pub redeliveries: u64,
    /// Handler failures (real or injected with `--fail-rate`).
    pub failures: u64,
    /// Failed messages re-published for another attempt (worker only).
    pub retries: u64,
    /// Messages sent to the DLQ (worker only), by reason kind.
    pub dead_lettered: BTreeMap<String, u64>,
    /// Bodies that did not decode, by `DecodeError::kind`.
    pub decode_errors: BTreeMap<String, u64>,
    /// Price alerts raised.
    pub alerts: u64,
    /// Handled messages per symbol.
    pub per_symbol: BTreeMap<String, u64>,
    /// Last known Kafka lag per partition, in records (this reader's own
    /// view: high watermark minus its position).
    pub lag: BTreeMap<i32, i64>,
    /// Last known queue depth in messages (work queue or stream), RabbitMQ
    /// readers only.
    pub queue_depth: Option<u64>,
    /// The Kafka group's lag as the brokers report it (committed offsets
    /// against the high watermarks), sampled on the stats interval and once
    /// more after the final commit. `None` for readers outside a group
    /// (`--no-commit`, the stream).
    pub group_lag: Option<GroupLagSummary>,
}

impl ReaderSummary {
    /// Total dead-lettered, any reason.
    pub fn dead_lettered_total(&self) -> u64 {
        self.dead_lettered.values().sum()
    }

    /// Total undecodable bodies, any reason.
    pub fn decode_errors_total(&self) -> u64 {
        self.decode_errors.values().sum()
    }
}

/// What a reader's summary and stats line carry about its Kafka group's lag.
/// Lag is counted in records.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupLagSummary {
    /// Group id.
    pub group: String,
    /// Topic.
    pub topic: String,
    /// Samples that succeeded.
    pub samples: u64,
    /// Samples that failed (broker silent, topic gone); each logged.
    pub failed_samples: u64,
    /// Coordinator state at the last sample (`Stable`, `Empty`, ...;
    /// `Unknown` before the group exists on the broker).
    pub state: String,
    /// Group members at the last sample, this reader included.
    pub members: usize,
    /// Total lag at the last sample, the one taken after the final commit;
    /// `None` if no sample succeeded.
    pub lag_at_end: Option<i64>,
    /// Per-partition lag at the last sample.
    pub partitions_at_end: BTreeMap<i32, i64>,
    /// Largest total lag of any sample in the run (sampled on the stats
    /// interval, so a shorter peak between samples is not seen).
    pub max_lag: i64,
    /// Largest lag of each partition in any sample.
    pub max_partition_lag: BTreeMap<i32, i64>,
    /// Why the last failed sample failed, if any did.
    pub last_error: Option<String>,
}

impl GroupLagSummary {
    /// The part of the stats line about the group:
    /// `group_lag=42 [p0=40 p1=2 p2=0] max=50 members=2 state=Stable`.
    pub fn line(&self) -> String {
        let Some(total) = self.lag_at_end else {
            return format!(
                "group_lag=? (no sample yet, {} failed)",
                self.failed_samples
            );
        };
        let parts: Vec<String> = self
            .partitions_at_end
            .iter()
            .map(|(p, l)| format!("p{p}={l}"))
            .collect();
        format!(
            "group_lag={total} [{}] max={} members={} state={}",
            parts.join(" "),
            self.max_lag,
            self.members,
            self.state
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::DeserializeOwned;

    /// The examples `docs/reports.md` shows, as files.
    const PRODUCER_EXAMPLE: &str =
        include_str!("../../schemas/examples/reports/producer-report.json");
    const READER_EXAMPLE: &str = include_str!("../../schemas/examples/reports/reader-summary.json");
    const DOCS: &str = include_str!("../../docs/reports.md");

    /// Parses `text` as `T`, writes it back the way the binaries do
    /// (`to_string_pretty`), and checks the bytes are the same: every key of
    /// the example is a field (none ignored), every field is in the example,
    /// in the order and format the writers produce.
    fn round_trip<T: Serialize + DeserializeOwned>(text: &str) -> T {
        let parsed: T = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => panic!("example does not parse: {e}"),
        };
        let again = serde_json::to_string_pretty(&parsed).unwrap_or_default();
        assert_eq!(
            again,
            text.trim_end(),
            "example is not what the writer writes"
        );
        parsed
    }

    /// Fields whose value is a map keyed by data (partitions, symbols,
    /// reasons): their keys are not field names.
    const MAPS: [&str; 6] = [
        "dead_lettered",
        "decode_errors",
        "per_symbol",
        "lag",
        "partitions_at_end",
        "max_partition_lag",
    ];

    /// Every field name in `v`, nested ones included.
    fn keys(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    out.push(k.clone());
                    if !MAPS.contains(&k.as_str()) {
                        keys(v, out);
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| keys(v, out)),
            _ => {}
        }
    }

    #[test]
    fn producer_example_round_trips_and_is_in_the_docs() {
        let r: RunReport = round_trip(PRODUCER_EXAMPLE);
        assert_eq!(r.via, Via::Ws);
        assert_eq!(r.sink(Sink::Kafka).map(|s| s.confirmed), Some(10_421));
        assert_eq!(
            r.unconfirmed,
            r.sinks.iter().map(|s| s.unconfirmed).sum::<u64>()
        );
        assert!(
            DOCS.contains(PRODUCER_EXAMPLE.trim_end()),
            "docs/reports.md must show the file"
        );
    }

    #[test]
    fn reader_example_round_trips_and_is_in_the_docs() {
        let s: ReaderSummary = round_trip(READER_EXAMPLE);
        assert_eq!(s.role, "kafka");
        assert_eq!(s.group_lag.as_ref().and_then(|g| g.lag_at_end), Some(0));
        assert_eq!(s.lag.get(&2), Some(&0));
        assert_eq!(s.decode_errors_total(), 1);
        assert!(
            DOCS.contains(READER_EXAMPLE.trim_end()),
            "docs/reports.md must show the file"
        );
    }

    #[test]
    fn every_field_is_documented() {
        let mut all = Vec::new();
        for text in [PRODUCER_EXAMPLE, READER_EXAMPLE] {
            let v: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
            keys(&v, &mut all);
        }
        assert!(all.len() > 50, "{all:?}");
        for k in all {
            assert!(
                DOCS.contains(&format!("`{k}`")),
                "`{k}` is not in docs/reports.md"
            );
        }
    }

    #[test]
    fn defaults_round_trip() {
        // What a reader that handled nothing writes: nulls and empty maps.
        let s = ReaderSummary::default();
        let text = serde_json::to_string(&s).unwrap_or_default();
        assert_eq!(serde_json::from_str::<ReaderSummary>(&text).ok(), Some(s));
        let g = GroupLagSummary::default();
        let text = serde_json::to_string(&g).unwrap_or_default();
        assert_eq!(serde_json::from_str::<GroupLagSummary>(&text).ok(), Some(g));
    }

    #[test]
    fn a_report_missing_a_field_or_with_an_unknown_sink_is_rejected() {
        let mut v: serde_json::Value = serde_json::from_str(PRODUCER_EXAMPLE).unwrap_or_default();
        if let Some(m) = v.as_object_mut() {
            m.remove("unconfirmed");
        }
        assert!(serde_json::from_value::<RunReport>(v).is_err());
        let bad = PRODUCER_EXAMPLE.replace("\"jsonl\"", "\"ftp\"");
        assert!(serde_json::from_str::<RunReport>(&bad).is_err());
        // Keys a newer writer added are ignored.
        let newer = PRODUCER_EXAMPLE.replacen('{', "{\n  \"added_later\": 1,", 1);
        assert!(serde_json::from_str::<RunReport>(&newer).is_ok());
    }

    #[test]
    fn group_lag_line() {
        let mut s = GroupLagSummary::default();
        assert!(s.line().starts_with("group_lag=?"), "{}", s.line());
        s.lag_at_end = Some(3);
        s.partitions_at_end = BTreeMap::from([(0, 1), (1, 2)]);
        s.max_lag = 9;
        s.members = 2;
        s.state = "Stable".into();
        assert_eq!(
            s.line(),
            "group_lag=3 [p0=1 p1=2] max=9 members=2 state=Stable"
        );
    }
}
