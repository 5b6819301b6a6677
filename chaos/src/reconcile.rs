//! The exact reconciliation, by tick id, of what the simulator sent, what
//! the producer emitted and confirmed, and what every destination got.
//!
//! Rules (each violation is an unexplained difference and fails the run):
//!
//! 1. **Simulator → producer.** Every trade id the simulator sent that no
//!    producer run emitted lies inside the range of some gap notice (a
//!    `trade_id_jump` for the ids the simulator skipped on purpose, a
//!    `reconnect` for what a drop, a stall or a producer restart cost).
//!    Ids after the last producer's last trade are the end of the
//!    observation window, counted apart. Every range the simulator skipped
//!    on purpose is covered by a notice. The producer emits nothing the
//!    simulator did not send.
//! 2. **Producer → each destination.** Every message a producer run emitted
//!    (ticks and gap notices) arrives, unless the sink reported it lost: a
//!    `publish_failed`/`buffer_overflow` notice in that stream covering its
//!    trade id, or the run's `unconfirmed` count for that sink. Nothing
//!    arrives that no producer emitted.
//! 3. **Duplicates** are counted per destination and must stay within the
//!    bound the faults of the run allow (see [`DupBounds`]).
//! 4. **Poison**: each injected queue message is in the DLQ exactly as
//!    parked by the reader of that queue, with a `tb-error` of the right
//!    kind; nothing else is in the DLQ; the replay counts each injected
//!    Kafka record as a decode error of the right kind, and so does the
//!    group unless a member that may have counted it was killed afterwards.

use crate::faults::FaultKind;
use crate::inject::{DeadLetter, Injected};
use crate::records::{Msg, Received, ReportFile};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write;
use std::time::Duration;
use tickbridge_feed_sim::SimReport;
use tickbridge_model::report::{RunReport, Sink};

/// One fault as it happened.
#[derive(Debug, Clone)]
pub struct FaultRecord {
    /// What.
    pub kind: FaultKind,
    /// Seconds since the pipeline started.
    pub offset_secs: f64,
    /// When it began.
    pub at: DateTime<Utc>,
    /// When the pipeline was whole again (broker back, process restarted).
    pub done: DateTime<Utc>,
    /// Instance killed, when one was.
    pub victim: Option<String>,
    /// Free text for the table.
    pub detail: String,
}

/// One producer run: its messages and its `--report`.
#[derive(Debug, Clone)]
pub struct ProducerRun {
    /// 1, 2, … in start order.
    pub index: usize,
    /// Every message of its JSON Lines sink.
    pub msgs: Vec<Msg>,
    /// Lines of that sink that did not parse.
    pub bad_lines: u64,
    /// The `--report` file, as the producer's own [`RunReport`] type.
    pub report: ReportFile<RunReport>,
    /// Exit code, if it exited by itself after SIGTERM.
    pub exit_code: Option<i32>,
}

impl ProducerRun {
    /// `unconfirmed` of one sink in the report (0 without a report: its
    /// absence is a failure of its own).
    pub fn unconfirmed(&self, sink: Sink) -> u64 {
        self.report
            .parsed()
            .and_then(|r| r.sink(sink))
            .map_or(0, |s| s.unconfirmed)
    }

    /// One number of the report (0 without a report).
    fn field(&self, f: impl Fn(&RunReport) -> u64) -> u64 {
        self.report.parsed().map_or(0, f)
    }
}

/// The knobs the duplicate bounds are made of (the flags the scenario gave
/// the processes).
#[derive(Debug, Clone, Copy)]
pub struct DupBounds {
    /// Worker `--prefetch`: unacked deliveries one worker can hold.
    pub worker_prefetch: u64,
    /// Number of workers.
    pub workers: u64,
    /// Bridge `--prefetch`: unacked deliveries the bridge can hold.
    pub bridge_prefetch: u64,
    /// Producer `--confirm-window`: unconfirmed RabbitMQ publishes it
    /// re-publishes after a reconnect.
    pub confirm_window: u64,
    /// Producer `--kafka-in-flight`: unreported Kafka messages it may
    /// produce again after a delivery failure.
    pub kafka_in_flight: u64,
    /// Consumer `--commit-interval`.
    pub commit_interval: Duration,
}

/// Everything the scenario gathered.
pub struct Evidence<'a> {
    /// Seed of the run.
    pub seed: u64,
    /// The simulator's final report.
    pub sim: &'a SimReport,
    /// Producer runs.
    pub producers: &'a [ProducerRun],
    /// Faults as they happened.
    pub faults: &'a [FaultRecord],
    /// Worker outputs (RabbitMQ work queue).
    pub workers: &'a Received,
    /// Kafka group outputs.
    pub group: &'a Received,
    /// `consumer --replay-from 0` of the topic.
    pub replay: &'a Received,
    /// `consumer --replay-from 0` of the bridge's destination topic.
    pub bridged: &'a Received,
    /// Injected queue messages.
    pub injected_queue: &'a [Injected],
    /// Injected Kafka records.
    pub injected_topic: &'a [Injected],
    /// When the Kafka records were injected.
    pub injected_topic_at: Option<DateTime<Utc>>,
    /// Everything in the DLQ at the end.
    pub dlq: &'a [DeadLetter],
    /// Decode errors the replay reported, by kind.
    pub replay_decode_errors: BTreeMap<String, u64>,
    /// Decode errors the group members that exited cleanly reported.
    pub group_decode_errors: BTreeMap<String, u64>,
    /// Reader summaries the decode errors above come from that were missing
    /// or did not parse as a `ReaderSummary`, one line each: each is a
    /// failure, since the counts they should have given are unknown.
    pub summary_errors: Vec<String>,
    /// Reader processes that did not exit cleanly at the end (name, why).
    pub unclean_exits: Vec<(String, String)>,
    /// Things worth knowing that are not differences (a reader that exited
    /// non-zero after SIGTERM while waiting to reconnect).
    pub notes: Vec<String>,
    /// The group as its coordinator described it once every reader had
    /// caught up (one line), and what was wrong with it: the live members,
    /// and every partition assigned to exactly one of them.
    pub coordinator: (String, Vec<String>),
    /// Bound parameters.
    pub bounds: DupBounds,
    /// Seconds the scenario lasted.
    pub seconds: f64,
}

/// The verdict and the printable table.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Seed of the run.
    pub seed: u64,
    /// Whether every difference was explained.
    pub ok: bool,
    /// The reconciliation table.
    pub table: String,
    /// Each unexplained difference, one line each.
    pub failures: Vec<String>,
}

#[derive(Default)]
struct Ranges(Vec<(u64, u64)>);

impl Ranges {
    fn add(&mut self, from: u64, to: u64) {
        self.0.push((from, to));
    }
    fn finish(&mut self) {
        self.0.sort();
        let mut merged: Vec<(u64, u64)> = Vec::new();
        for &(f, t) in &self.0 {
            match merged.last_mut() {
                Some(m) if f <= m.1.saturating_add(1) => m.1 = m.1.max(t),
                _ => merged.push((f, t)),
            }
        }
        self.0 = merged;
    }
    fn contains(&self, id: u64) -> bool {
        let i = self.0.partition_point(|&(f, _)| f <= id);
        i > 0 && self.0[i - 1].1 >= id
    }
}

struct DestResult {
    name: &'static str,
    expected: usize,
    received_unique: usize,
    lost: u64,
    explained_loss: u64,
    duplicates: u64,
    bound: u64,
    gaps_expected: usize,
    gaps_received: usize,
    phantom: u64,
}

fn fmt_n(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Runs every check and renders the table.
///
/// Each rule of the module header is its own function; this only composes
/// them, in the order their failures are listed, and hands what they found
/// to [`render_table`].
pub fn reconcile(ev: &Evidence<'_>) -> Outcome {
    let idx = ProducerIndex::build(ev.producers);
    let mut fails = producer_run_failures(ev.producers, &idx);
    let sim = sim_to_producer(ev.sim, &idx);
    fails.extend(sim.failures.iter().cloned());
    let mut results = Vec::new();
    for dest in destinations(ev) {
        let (result, dest_fails) = check_destination(&dest, ev.producers, &idx);
        fails.extend(dest_fails);
        results.push(result);
    }
    let queue = queue_poison(ev.injected_queue, ev.dlq);
    fails.extend(queue.failures.iter().cloned());
    let topic = topic_poison(ev);
    fails.extend(topic.failures.iter().cloned());
    fails.extend(reader_failures(ev));
    let table = render_table(&Findings {
        ev,
        idx: &idx,
        sim: &sim,
        results: &results,
        queue: &queue,
        topic: &topic,
        fails: &fails,
    });
    Outcome {
        seed: ev.seed,
        ok: fails.is_empty(),
        table,
        failures: fails,
    }
}

/// Producer side: what was emitted, by whom, and the gap notices. Built once
/// because rules 1 and 2 and the table all look things up in it.
#[derive(Default)]
struct ProducerIndex<'a> {
    /// Every message id any run emitted (ticks and gap notices).
    emitted_ids: HashSet<&'a str>,
    /// Trade ids of the emitted ticks, by symbol, in emission order.
    emitted_trades: HashMap<&'a str, Vec<u64>>,
    /// What the producers' gap notices declared missing, by symbol (merged).
    notices: HashMap<&'a str, Ranges>,
    /// Gap notices emitted, by reason.
    notice_reasons: BTreeMap<String, u64>,
    /// Ids of the emitted gap notices.
    gap_ids: HashSet<&'a str>,
    /// Message ids emitted again after a first time.
    producer_dups: u64,
}

impl<'a> ProducerIndex<'a> {
    /// Indexes every message of every run.
    fn build(producers: &'a [ProducerRun]) -> Self {
        let mut idx = Self::default();
        for p in producers {
            for m in &p.msgs {
                if !idx.emitted_ids.insert(m.id.as_str()) {
                    idx.producer_dups += 1;
                }
                if m.is_gap() {
                    idx.gap_ids.insert(m.id.as_str());
                    *idx.notice_reasons
                        .entry(m.reason.clone().unwrap_or_default())
                        .or_default() += 1;
                    if let (Some(f), Some(t)) = (m.missing_from, m.missing_to) {
                        idx.notices.entry(m.symbol.as_str()).or_default().add(f, t);
                    }
                } else if let Some(t) = m.trade_id {
                    idx.emitted_trades
                        .entry(m.symbol.as_str())
                        .or_default()
                        .push(t);
                }
            }
        }
        for r in idx.notices.values_mut() {
            r.finish();
        }
        idx
    }
}

/// Every producer run must have left a whole sink, exited cleanly after
/// SIGTERM and written a `--report` that parses; no message id may be
/// emitted twice.
/// Without these the other rules would reconcile against bad evidence.
fn producer_run_failures(producers: &[ProducerRun], idx: &ProducerIndex<'_>) -> Vec<String> {
    let mut fails = Vec::new();
    for p in producers {
        if p.bad_lines > 0 {
            fails.push(format!(
                "producer run {}: {} unparsable lines in its JSON Lines sink",
                p.index, p.bad_lines
            ));
        }
        match p.exit_code {
            Some(0) => {}
            other => fails.push(format!(
                "producer run {} did not exit cleanly after SIGTERM (exit {other:?})",
                p.index
            )),
        }
        match &p.report {
            ReportFile::Read(_) => {}
            ReportFile::Missing => {
                fails.push(format!("producer run {} wrote no --report", p.index))
            }
            ReportFile::Invalid(why) => fails.push(format!(
                "producer run {}: its --report does not parse as a RunReport (docs/reports.md): {why}",
                p.index
            )),
        }
    }
    if idx.producer_dups > 0 {
        fails.push(format!(
            "the producers emitted {} message ids twice",
            idx.producer_dups
        ));
    }
    fails
}

/// What rule 1 counted (the table's simulator lines) and what it could not
/// explain.
#[derive(Default)]
struct SimFindings {
    /// Trade ids the simulator sent.
    sim_sent: u64,
    /// Ids it skipped on purpose.
    sim_skipped: u64,
    /// Ranges it skipped on purpose.
    skipped_ranges: u64,
    /// Sent ids no producer emitted.
    not_emitted: u64,
    /// … of which inside a gap notice.
    covered: u64,
    /// … of which outside the producers' first..last trade (the window).
    tail: u64,
    /// … of which explained by nothing.
    unexplained_sent: u64,
    /// Skipped ranges before the last trade with an id neither covered by a
    /// notice nor emitted.
    skipped_uncovered: u64,
    /// Trades emitted that the simulator never sent.
    phantom_emitted: u64,
    /// One line per kind of unexplained difference.
    failures: Vec<String>,
}

/// Rule 1: simulator → producer.
fn sim_to_producer(sim: &SimReport, idx: &ProducerIndex<'_>) -> SimFindings {
    let mut out = SimFindings::default();
    let empty = Ranges::default();
    // The first ten unexplained ids by name, the rest as empty strings (so
    // the count stays right without formatting every id).
    let mut unexplained_ids: Vec<String> = Vec::new();
    for s in &sim.symbols {
        let sym = s.symbol.as_str();
        let mut em: Vec<u64> = idx.emitted_trades.get(sym).cloned().unwrap_or_default();
        em.sort_unstable();
        let em_set: HashSet<u64> = em.iter().copied().collect();
        let last = em.last().copied().unwrap_or(0);
        let first = em.first().copied().unwrap_or(u64::MAX);
        let nr = idx.notices.get(sym).unwrap_or(&empty);
        let mut sent: HashSet<u64> = HashSet::new();
        for r in &s.sent_ranges {
            for id in r.from..=r.to {
                sent.insert(id);
                out.sim_sent += 1;
                if em_set.contains(&id) {
                    continue;
                }
                out.not_emitted += 1;
                if id > last || id < first {
                    out.tail += 1;
                } else if nr.contains(id) {
                    out.covered += 1;
                } else if unexplained_ids.len() < 10 {
                    unexplained_ids.push(format!("{sym}#{id}"));
                } else {
                    unexplained_ids.push(String::new());
                }
            }
        }
        for r in &s.skipped {
            out.skipped_ranges += 1;
            out.sim_skipped += r.len();
            if r.from > last {
                continue;
            }
            // Ids skipped on one connection but sent on the next (the
            // producer reconnected meanwhile) were not missed at all.
            if (r.from..=r.to).any(|id| !nr.contains(id) && !em_set.contains(&id)) {
                out.skipped_uncovered += 1;
            }
        }
        out.phantom_emitted += em.iter().filter(|id| !sent.contains(id)).count() as u64;
    }
    out.unexplained_sent = unexplained_ids.len() as u64;
    if out.unexplained_sent > 0 {
        let shown: Vec<&String> = unexplained_ids.iter().filter(|s| !s.is_empty()).collect();
        out.failures.push(format!(
            "{} trade ids sent by the simulator were never emitted and no gap notice covers them (first: {shown:?})",
            out.unexplained_sent
        ));
    }
    if out.skipped_uncovered > 0 {
        out.failures.push(format!(
            "{} gaps the simulator injected have no gap notice",
            out.skipped_uncovered
        ));
    }
    if out.phantom_emitted > 0 {
        out.failures.push(format!(
            "the producers emitted {} trades the simulator never sent",
            out.phantom_emitted
        ));
    }
    out
}

/// One destination to reconcile against the producers.
struct Destination<'r> {
    /// Name in the table.
    name: &'static str,
    /// What its readers handled.
    rec: &'r Received,
    /// The producer sink that feeds it (whose `unconfirmed` explains loss).
    sink: Sink,
    /// Duplicates the faults of the run allow it (rule 3).
    bound: u64,
}

/// The four destinations with their rule-3 duplicate bounds: what each
/// fault can make a destination see twice.
fn destinations<'r>(ev: &Evidence<'r>) -> [Destination<'r>; 4] {
    let count = |k: FaultKind| ev.faults.iter().filter(|f| f.kind == k).count() as u64;
    let b = ev.bounds;
    let group_rereads = group_rereads(ev);
    [
        Destination {
            name: "workers (RabbitMQ work queue)",
            rec: ev.workers,
            sink: Sink::Rabbitmq,
            bound: count(FaultKind::WorkerKill) * b.worker_prefetch
                + count(FaultKind::RabbitRestart)
                    * (b.workers * b.worker_prefetch + b.confirm_window),
        },
        Destination {
            name: "Kafka consumer group",
            rec: ev.group,
            sink: Sink::Kafka,
            bound: count(FaultKind::KafkaRestart) * b.kafka_in_flight + group_rereads,
        },
        Destination {
            name: "consumer --replay-from 0",
            rec: ev.replay,
            sink: Sink::Kafka,
            bound: count(FaultKind::KafkaRestart) * b.kafka_in_flight,
        },
        Destination {
            name: "bridge -> Kafka topic",
            rec: ev.bridged,
            sink: Sink::Rabbitmq,
            bound: count(FaultKind::BridgeKill) * b.bridge_prefetch
                + count(FaultKind::RabbitRestart) * (b.bridge_prefetch + b.confirm_window)
                + count(FaultKind::KafkaRestart) * b.bridge_prefetch,
        },
    ]
}

/// What the group may read again: everything a killed member handled in
/// the last commit interval (plus slack) before its death, and everything
/// any member handled from that long before a Kafka restart until it was
/// back.
fn group_rereads(ev: &Evidence<'_>) -> u64 {
    let window = chrono::Duration::from_std(ev.bounds.commit_interval + Duration::from_secs(2))
        .unwrap_or_else(|_| chrono::Duration::seconds(3));
    ev.faults
        .iter()
        .map(|f| match f.kind {
            FaultKind::ConsumerKill => {
                let v = f.victim.clone().unwrap_or_default();
                ev.group.handled_between(f.at - window, f.at, |by| by == v)
            }
            FaultKind::KafkaRestart => ev.group.handled_between(f.at - window, f.done, |_| true),
            _ => 0,
        })
        .sum()
}

/// Rules 2 and 3 for one destination, and its row of the table.
fn check_destination(
    dest: &Destination<'_>,
    producers: &[ProducerRun],
    idx: &ProducerIndex<'_>,
) -> (DestResult, Vec<String>) {
    let d = delivery(dest, producers, idx);
    let (dups, dup_fail) = duplicates(dest);
    let mut fails = d.failures;
    fails.extend(dup_fail);
    if dest.rec.bad_lines() > 0 {
        fails.push(format!(
            "{}: {} unparsable output lines",
            dest.name,
            dest.rec.bad_lines()
        ));
    }
    let result = DestResult {
        name: dest.name,
        expected: idx.emitted_ids.len(),
        received_unique: dest.rec.unique(),
        lost: d.lost,
        explained_loss: d.explained,
        duplicates: dups,
        bound: dest.bound,
        gaps_expected: idx.gap_ids.len(),
        gaps_received: d.gaps_received,
        phantom: d.phantom,
    };
    (result, fails)
}

/// What rule 2 found at one destination.
struct Delivery {
    /// Emitted, missing, and explained by nothing.
    lost: u64,
    /// Emitted, missing, and explained by a sink-loss notice or the run's
    /// `unconfirmed` count.
    explained: u64,
    /// Arrived, and no producer emitted it.
    phantom: u64,
    /// Emitted gap notices that arrived.
    gaps_received: usize,
    /// One line per kind of unexplained difference.
    failures: Vec<String>,
}

/// The sink-loss notices (`publish_failed`/`buffer_overflow`) that arrived
/// at a destination without being in any producer's own sink: the ranges
/// they cover, by symbol, and their ids.
fn sink_loss_notices<'r>(
    rec: &'r Received,
    idx: &ProducerIndex<'_>,
) -> (HashMap<&'r str, Ranges>, HashSet<&'r str>) {
    let mut sink_loss: HashMap<&str, Ranges> = HashMap::new();
    let mut sink_notice_ids: HashSet<&str> = HashSet::new();
    for l in &rec.lines {
        let m = &l.message;
        if m.is_gap()
            && matches!(
                m.reason.as_deref(),
                Some("publish_failed") | Some("buffer_overflow")
            )
            && !idx.emitted_ids.contains(m.id.as_str())
        {
            sink_notice_ids.insert(m.id.as_str());
            if let (Some(f), Some(t)) = (m.missing_from, m.missing_to) {
                sink_loss.entry(m.symbol.as_str()).or_default().add(f, t);
            }
        }
    }
    for r in sink_loss.values_mut() {
        r.finish();
    }
    (sink_loss, sink_notice_ids)
}

/// Rule 2: producer → one destination.
fn delivery(
    dest: &Destination<'_>,
    producers: &[ProducerRun],
    idx: &ProducerIndex<'_>,
) -> Delivery {
    let rec = dest.rec;
    // Sink-loss notices in this stream explain the ticks they cover.
    let (sink_loss, sink_notice_ids) = sink_loss_notices(rec, idx);
    let mut lost_by_run: HashMap<usize, u64> = HashMap::new();
    let mut explained = 0u64;
    for p in producers {
        for m in &p.msgs {
            if rec.count.contains_key(&m.id) {
                continue;
            }
            let by_notice = m.trade_id.is_some_and(|t| {
                sink_loss
                    .get(m.symbol.as_str())
                    .is_some_and(|r| r.contains(t))
            });
            if by_notice {
                explained += 1;
            } else {
                *lost_by_run.entry(p.index).or_default() += 1;
            }
        }
    }
    // What is still missing is explained up to what the run itself reported
    // unconfirmed on this sink.
    let mut lost = 0u64;
    for (run, n) in &lost_by_run {
        let reported = producers
            .iter()
            .find(|p| p.index == *run)
            .map(|p| p.unconfirmed(dest.sink))
            .unwrap_or(0);
        let ok = (*n).min(reported);
        explained += ok;
        lost += n - ok;
    }
    let phantom = rec
        .count
        .keys()
        .filter(|id| {
            !idx.emitted_ids.contains(id.as_str()) && !sink_notice_ids.contains(id.as_str())
        })
        .count() as u64;
    let gaps_received = idx
        .gap_ids
        .iter()
        .filter(|id| rec.count.contains_key(**id))
        .count();
    let mut failures = Vec::new();
    if lost > 0 {
        failures.push(format!("{}: {lost} confirmed messages lost", dest.name));
    }
    if phantom > 0 {
        failures.push(format!(
            "{}: {phantom} messages no producer emitted",
            dest.name
        ));
    }
    Delivery {
        lost,
        explained,
        phantom,
        gaps_received,
        failures,
    }
}

/// Rule 3: the duplicates one destination saw, and a failure if they are
/// above its bound.
fn duplicates(dest: &Destination<'_>) -> (u64, Option<String>) {
    let dups = dest.rec.duplicates();
    let fail = (dups > dest.bound).then(|| {
        format!(
            "{}: {dups} duplicates, above the bound of {}",
            dest.name, dest.bound
        )
    });
    (dups, fail)
}

/// What rule 4 found in the DLQ.
struct QueuePoison {
    /// One table line per injected queue message.
    lines: Vec<String>,
    /// Injected messages parked more than once (extra copies).
    dlq_dups: u64,
    /// One line per unexplained difference.
    failures: Vec<String>,
}

/// Rule 4, queues: each injected message is in the DLQ as parked by the
/// reader of the queue it was put in, with a `tb-error` of its kind, and
/// nothing else is in the DLQ.
fn queue_poison(injected: &[Injected], dlq: &[DeadLetter]) -> QueuePoison {
    let mut lines = Vec::new();
    let mut failures = Vec::new();
    let mut matched: HashSet<usize> = HashSet::new();
    let mut dlq_dups = 0u64;
    for inj in injected {
        let hits: Vec<(usize, &DeadLetter)> = dlq
            .iter()
            .enumerate()
            .filter(|(_, d)| {
                d.id.as_deref() == Some(inj.id.as_str()) && d.routing_key == inj.target
            })
            .collect();
        for (i, _) in &hits {
            matched.insert(*i);
        }
        let good = hits
            .iter()
            .any(|(_, d)| d.error.as_deref().is_some_and(|e| e.starts_with(inj.kind)));
        dlq_dups += hits.len().saturating_sub(1) as u64;
        let reason = hits
            .first()
            .and_then(|(_, d)| d.error.clone())
            .unwrap_or_else(|| "-".into());
        let reason: String = reason.chars().take(70).collect();
        lines.push(format!(
            "  {} {:<28} in {:<34} -> DLQ x{} tb-error {:?}",
            if good { "ok  " } else { "FAIL" },
            inj.id,
            inj.target,
            hits.len(),
            reason
        ));
        if !good {
            failures.push(format!(
                "injected {} into {} is not in the DLQ with a {} reason",
                inj.id, inj.target, inj.kind
            ));
        }
    }
    let others: Vec<&DeadLetter> = dlq
        .iter()
        .enumerate()
        .filter(|(i, _)| !matched.contains(i))
        .map(|(_, d)| d)
        .collect();
    if !others.is_empty() {
        failures.push(format!(
            "{} unexpected messages in the DLQ (first: {:?})",
            others.len(),
            others.first()
        ));
    }
    QueuePoison {
        lines,
        dlq_dups,
        failures,
    }
}

/// What rule 4 found in the decode-error counts.
struct TopicPoison {
    /// One table line per injected kind.
    lines: Vec<String>,
    /// One line per unexplained difference.
    failures: Vec<String>,
}

/// Rule 4, topic: the replay counts each injected Kafka record as a decode
/// error of its kind, and so does the group unless a member that may have
/// counted it was killed after the injection.
fn topic_poison(ev: &Evidence<'_>) -> TopicPoison {
    let mut lines = Vec::new();
    let mut failures = Vec::new();
    let mut topic_kinds: BTreeMap<&str, u64> = BTreeMap::new();
    for i in ev.injected_topic {
        *topic_kinds.entry(i.kind).or_default() += 1;
    }
    let killed_after = ev.injected_topic_at.is_some_and(|at| {
        ev.faults
            .iter()
            .any(|f| f.kind == FaultKind::ConsumerKill && f.at > at)
    });
    for (kind, n) in &topic_kinds {
        let replay = ev.replay_decode_errors.get(*kind).copied().unwrap_or(0);
        let group = ev.group_decode_errors.get(*kind).copied().unwrap_or(0);
        let replay_ok = replay == *n;
        let group_ok = killed_after || group >= *n;
        lines.push(format!(
            "  {} {kind:<15} injected {n}: replay counted {replay}, group counted {group}{}",
            if replay_ok && group_ok {
                "ok  "
            } else {
                "FAIL"
            },
            if killed_after {
                " (a member was killed after the injection; its count died with it)"
            } else {
                ""
            }
        ));
        if !replay_ok {
            failures.push(format!(
                "replay counted {replay} {kind} decode errors, {n} injected"
            ));
        }
        if !group_ok {
            failures.push(format!(
                "the group counted {group} {kind} decode errors, {n} injected"
            ));
        }
    }
    TopicPoison { lines, failures }
}

/// Readers that did not exit cleanly or left a summary that cannot be read,
/// and what was wrong with the group as its coordinator described it: each
/// is a failure of the run.
fn reader_failures(ev: &Evidence<'_>) -> Vec<String> {
    let mut fails = Vec::new();
    for (name, why) in &ev.unclean_exits {
        fails.push(format!("{name} did not exit cleanly: {why}"));
    }
    for why in &ev.summary_errors {
        fails.push(format!("reader summary unusable: {why}"));
    }
    for p in &ev.coordinator.1 {
        fails.push(format!("group coordinator: {p}"));
    }
    fails
}

/// Everything the rules found, as the table needs it.
struct Findings<'f, 'a> {
    ev: &'f Evidence<'a>,
    idx: &'f ProducerIndex<'a>,
    sim: &'f SimFindings,
    results: &'f [DestResult],
    queue: &'f QueuePoison,
    topic: &'f TopicPoison,
    fails: &'f [String],
}

/// The reconciliation table: the run and its faults, the counts at each
/// stage, each destination's row, the poison checks, and the verdict.
fn render_table(f: &Findings<'_, '_>) -> String {
    let mut t = String::new();
    render_run(&mut t, f);
    render_destinations(&mut t, f.results);
    render_poison_and_verdict(&mut t, f);
    t
}

/// The table's head: the seed (to replay it), the faults as injected, and
/// what the simulator sent and the producers emitted.
fn render_run(t: &mut String, f: &Findings<'_, '_>) {
    let (ev, idx, sim) = (f.ev, f.idx, f.sim);
    let _ = writeln!(
        t,
        "chaos reconciliation, seed {} (replay: CHAOS_SEED={} cargo run -p tickbridge-chaos --bin chaos), {:.0} s",
        ev.seed, ev.seed, ev.seconds
    );
    let _ = writeln!(t, "faults, in the order injected:");
    for fault in ev.faults {
        let _ = writeln!(
            t,
            "  +{:>5.1}s {:<17} {:>5.1}s  {}",
            fault.offset_secs,
            fault.kind.as_str(),
            (fault.done - fault.at).num_milliseconds() as f64 / 1000.0,
            fault.detail
        );
    }
    let reasons: Vec<String> = idx
        .notice_reasons
        .iter()
        .map(|(r, n)| format!("{r} {n}"))
        .collect();
    let emitted_ticks: usize = idx.emitted_trades.values().map(Vec::len).sum();
    let _ = writeln!(
        t,
        "simulator: sent {} trades on {} symbols; skipped {} ids in {} injected gaps",
        fmt_n(sim.sim_sent),
        ev.sim.symbols.len(),
        fmt_n(sim.sim_skipped),
        sim.skipped_ranges
    );
    let unconf: u64 = ev
        .producers
        .iter()
        .map(|p| p.field(|r| r.unconfirmed))
        .sum();
    let dups_dropped: u64 = ev.producers.iter().map(|p| p.field(|r| r.duplicates)).sum();
    let malformed: u64 = ev.producers.iter().map(|p| p.field(|r| r.malformed)).sum();
    let reconnects: u64 = ev.producers.iter().map(|p| p.field(|r| r.reconnects)).sum();
    let _ = writeln!(
        t,
        "producer ({} runs): emitted {} ticks + {} gap notices ({}); dropped {} duplicate frames, {} malformed; {} reconnects; unconfirmed {}",
        ev.producers.len(),
        fmt_n(emitted_ticks as u64),
        idx.gap_ids.len(),
        reasons.join(", "),
        dups_dropped,
        malformed,
        reconnects,
        unconf
    );
    let _ = writeln!(
        t,
        "sent but not emitted: {} = {} inside gap notices + {} after the last producer stopped + {} UNEXPLAINED; injected gaps without a notice: {}",
        fmt_n(sim.not_emitted),
        fmt_n(sim.covered),
        fmt_n(sim.tail),
        sim.unexplained_sent,
        sim.skipped_uncovered
    );
}

/// One row per destination.
fn render_destinations(t: &mut String, results: &[DestResult]) {
    let _ = writeln!(
        t,
        "{:<30} {:>8} {:>8} {:>5} {:>6} {:>6} {:>6} {:>9} {:>7}",
        "destination", "expected", "received", "lost", "expl.", "dups", "bound", "gaps", "phantom"
    );
    for r in results {
        let _ = writeln!(
            t,
            "{:<30} {:>8} {:>8} {:>5} {:>6} {:>6} {:>6} {:>9} {:>7}",
            r.name,
            r.expected,
            r.received_unique,
            r.lost,
            r.explained_loss,
            r.duplicates,
            r.bound,
            format!("{}/{}", r.gaps_received, r.gaps_expected),
            r.phantom
        );
    }
}

/// The poison checks, the group, the notes, and the verdict with every
/// failure.
fn render_poison_and_verdict(t: &mut String, f: &Findings<'_, '_>) {
    let ev = f.ev;
    let _ = writeln!(
        t,
        "poison and invalid messages (DLQ, {} messages, {} duplicates):",
        ev.dlq.len(),
        f.queue.dlq_dups
    );
    for l in &f.queue.lines {
        let _ = writeln!(t, "{l}");
    }
    let _ = writeln!(t, "poison and invalid Kafka records (decode errors):");
    for l in &f.topic.lines {
        let _ = writeln!(t, "{l}");
    }
    let _ = writeln!(
        t,
        "group, as its coordinator describes it: {}",
        ev.coordinator.0
    );
    for n in &ev.notes {
        let _ = writeln!(t, "note: {n}");
    }
    if f.fails.is_empty() {
        let _ = writeln!(t, "RESULT: PASS (every difference explained)");
    } else {
        let _ = writeln!(t, "RESULT: FAIL");
        for fail in f.fails {
            let _ = writeln!(t, "  - {fail}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::ReaderLine;
    use tickbridge_feed_sim::{IdRange, SymbolReport};

    const SYM: &str = "BTC-USDT";

    fn tick(id: u64) -> Msg {
        Msg {
            schema: "tick.v1".into(),
            id: format!("binance:{SYM}:{id}"),
            symbol: SYM.into(),
            trade_id: Some(id),
            reason: None,
            missing_from: None,
            missing_to: None,
            producer: "p".into(),
        }
    }

    fn gap(seq: u64, reason: &str, from: u64, to: u64) -> Msg {
        Msg {
            schema: "gap.v1".into(),
            id: format!("gap:p:{SYM}:{seq}"),
            symbol: SYM.into(),
            trade_id: None,
            reason: Some(reason.into()),
            missing_from: Some(from),
            missing_to: Some(to),
            producer: "p".into(),
        }
    }

    /// A report with one RabbitMQ sink that left `unconfirmed`.
    fn report(unconfirmed: u64) -> RunReport {
        RunReport {
            producer: "p".into(),
            exchange: "binance".into(),
            via: tickbridge_model::Via::Ws,
            seconds: 1.0,
            active_seconds: 1.0,
            frames: 0,
            trades_in: 0,
            ticks: 0,
            gaps: 0,
            gap_trades: 0,
            duplicates: 0,
            poll_overlap: 0,
            out_of_order: 0,
            malformed: 0,
            reconnects: 0,
            sinks: vec![tickbridge_model::report::SinkReport {
                sink: Sink::Rabbitmq,
                published: 0,
                confirmed: 0,
                retries: 0,
                failed: 0,
                dropped: 0,
                unconfirmed,
                connects: 1,
            }],
            unconfirmed,
        }
    }

    /// A run that exited cleanly with `unconfirmed` on its RabbitMQ sink.
    fn run(index: usize, msgs: Vec<Msg>, unconfirmed: u64) -> ProducerRun {
        ProducerRun {
            index,
            msgs,
            bad_lines: 0,
            report: ReportFile::Read(report(unconfirmed)),
            exit_code: Some(0),
        }
    }

    fn received(msgs: &[Msg]) -> Received {
        let mut r = Received::default();
        for m in msgs {
            *r.count.entry(m.id.clone()).or_default() += 1;
            r.lines.push(ReaderLine {
                handled_at: Utc::now(),
                by: "w1".into(),
                message: m.clone(),
            });
        }
        r
    }

    fn range(from: u64, to: u64) -> IdRange {
        IdRange { from, to }
    }

    fn sim(sent: Vec<IdRange>, skipped: Vec<IdRange>) -> SimReport {
        SimReport {
            connections: 1,
            rest_requests: 0,
            symbols: vec![SymbolReport {
                // Spelled through serde so the test names no type of the
                // core crate.
                exchange: serde_json::from_value(serde_json::json!("binance")).unwrap(),
                symbol: SYM.into(),
                raw_symbol: "BTCUSDT".into(),
                head: 0,
                trades_sent: 0,
                first_id: None,
                last_id: None,
                sent_ranges: sent,
                skipped,
                duplicates: 0,
                last_match: 0,
                malformed: 0,
                closes: 0,
                stalls: 0,
            }],
        }
    }

    fn fault(kind: FaultKind, at: DateTime<Utc>) -> FaultRecord {
        FaultRecord {
            kind,
            offset_secs: 1.0,
            at,
            done: at,
            victim: None,
            detail: String::new(),
        }
    }

    /// Evidence with every destination reading `rec`, nothing injected and
    /// every bound knob zero.
    fn evidence<'a>(
        sim: &'a SimReport,
        producers: &'a [ProducerRun],
        faults: &'a [FaultRecord],
        rec: &'a Received,
    ) -> Evidence<'a> {
        Evidence {
            seed: 7,
            sim,
            producers,
            faults,
            workers: rec,
            group: rec,
            replay: rec,
            bridged: rec,
            injected_queue: &[],
            injected_topic: &[],
            injected_topic_at: None,
            dlq: &[],
            replay_decode_errors: BTreeMap::new(),
            group_decode_errors: BTreeMap::new(),
            summary_errors: Vec::new(),
            unclean_exits: Vec::new(),
            notes: Vec::new(),
            coordinator: ("2 members".into(), Vec::new()),
            bounds: DupBounds {
                worker_prefetch: 0,
                workers: 0,
                bridge_prefetch: 0,
                confirm_window: 0,
                kafka_in_flight: 0,
                commit_interval: Duration::from_secs(1),
            },
            seconds: 1.0,
        }
    }

    fn dest(rec: &Received, bound: u64) -> Destination<'_> {
        Destination {
            name: "d",
            rec,
            sink: Sink::Rabbitmq,
            bound,
        }
    }

    #[test]
    fn ranges_merge_and_contain() {
        let mut r = Ranges::default();
        r.add(10, 12);
        r.add(1, 3);
        r.add(4, 5);
        r.add(20, 20);
        r.finish();
        assert_eq!(r.0, vec![(1, 5), (10, 12), (20, 20)]);
        assert!(r.contains(1) && r.contains(5) && r.contains(11) && r.contains(20));
        assert!(!r.contains(0) && !r.contains(6) && !r.contains(13) && !r.contains(21));
    }

    #[test]
    fn thousands() {
        assert_eq!(fmt_n(0), "0");
        assert_eq!(fmt_n(1234), "1,234");
        assert_eq!(fmt_n(1234567), "1,234,567");
    }

    #[test]
    fn index_collects_ticks_notices_and_duplicate_ids() {
        let runs = [
            run(1, vec![tick(1), gap(1, "reconnect", 2, 3)], 0),
            run(2, vec![tick(1), tick(4), gap(2, "reconnect", 4, 6)], 0),
        ];
        let idx = ProducerIndex::build(&runs);
        assert_eq!(idx.emitted_ids.len(), 4);
        assert_eq!(idx.producer_dups, 1);
        assert_eq!(idx.emitted_trades[SYM], vec![1, 1, 4]);
        assert_eq!(idx.gap_ids.len(), 2);
        assert_eq!(idx.notice_reasons["reconnect"], 2);
        assert_eq!(idx.notices[SYM].0, vec![(2, 6)]);
    }

    #[test]
    fn producer_runs_must_be_clean_and_emit_each_id_once() {
        let clean = [run(1, vec![tick(1)], 0), run(2, vec![tick(2)], 0)];
        assert!(producer_run_failures(&clean, &ProducerIndex::build(&clean)).is_empty());
        let mut bad = [run(1, vec![tick(1)], 0), run(2, vec![tick(1)], 0)];
        bad[0].bad_lines = 2;
        bad[0].exit_code = None;
        bad[1].report = ReportFile::Missing;
        let fails = producer_run_failures(&bad, &ProducerIndex::build(&bad));
        assert_eq!(fails.len(), 4, "{fails:?}");
        assert!(fails[0].contains("2 unparsable lines"));
        assert!(fails[1].contains("did not exit cleanly"));
        assert!(fails[2].contains("run 2 wrote no --report"));
        assert!(fails[3].contains("1 message ids twice"));
        bad[1].report = ReportFile::Invalid("producer-2.report.json: missing field `sinks`".into());
        let fails = producer_run_failures(&bad, &ProducerIndex::build(&bad));
        assert!(
            fails[2].contains("run 2: its --report does not parse as a RunReport")
                && fails[2].contains("missing field `sinks`"),
            "{fails:?}"
        );
    }

    #[test]
    fn sim_to_producer_explains_every_missing_id() {
        // Sent 1-4 and 7-10, skipped 5-6 on purpose; the producer missed 3
        // (a reconnect notice covers it) and stopped after 8.
        let report = sim(vec![range(1, 4), range(7, 10)], vec![range(5, 6)]);
        let msgs = vec![
            tick(1),
            tick(2),
            gap(1, "reconnect", 3, 3),
            tick(4),
            gap(2, "trade_id_jump", 5, 6),
            tick(7),
            tick(8),
        ];
        let runs = [run(1, msgs.clone(), 0)];
        let s = sim_to_producer(&report, &ProducerIndex::build(&runs));
        assert!(s.failures.is_empty(), "{:?}", s.failures);
        assert_eq!(
            (s.sim_sent, s.sim_skipped, s.skipped_ranges),
            (8, 2, 1),
            "sent, skipped, ranges"
        );
        assert_eq!((s.not_emitted, s.covered, s.tail), (3, 1, 2));

        // Without the notices, 3 is unexplained and the jump uncovered.
        let bare: Vec<Msg> = msgs.into_iter().filter(|m| !m.is_gap()).collect();
        let runs = [run(1, bare.clone(), 0)];
        let s = sim_to_producer(&report, &ProducerIndex::build(&runs));
        assert_eq!((s.unexplained_sent, s.skipped_uncovered), (1, 1));
        assert_eq!(s.failures.len(), 2, "{:?}", s.failures);
        assert!(s.failures[0].contains("BTC-USDT#3"));

        // A trade the simulator never sent.
        let mut phantom = bare;
        phantom.push(tick(6));
        phantom.push(gap(1, "reconnect", 3, 3));
        phantom.push(gap(2, "trade_id_jump", 5, 6));
        let runs = [run(1, phantom, 0)];
        let s = sim_to_producer(&report, &ProducerIndex::build(&runs));
        assert_eq!(s.phantom_emitted, 1);
        assert_eq!(s.failures.len(), 1, "{:?}", s.failures);
        assert!(s.failures[0].contains("never sent"));
    }

    #[test]
    fn delivery_explains_loss_by_notice_or_unconfirmed_only() {
        let emitted = vec![tick(1), tick(2), tick(3), tick(4)];
        // 3 is covered by a publish_failed notice the sink wrote into the
        // stream; 4 is missing; "x" was never emitted.
        let mut stray = tick(99);
        stray.id = "x".into();
        let rec = received(&[tick(1), tick(2), gap(9, "publish_failed", 3, 3), stray]);

        let runs = [run(1, emitted.clone(), 1)];
        let d = delivery(&dest(&rec, 0), &runs, &ProducerIndex::build(&runs));
        assert_eq!((d.lost, d.explained, d.phantom), (0, 2, 1));
        assert_eq!(d.failures.len(), 1, "{:?}", d.failures);
        assert!(d.failures[0].contains("1 messages no producer emitted"));

        let runs = [run(1, emitted, 0)];
        let d = delivery(&dest(&rec, 0), &runs, &ProducerIndex::build(&runs));
        assert_eq!((d.lost, d.explained), (1, 1));
        assert!(d.failures[0].contains("1 confirmed messages lost"));
    }

    #[test]
    fn delivery_counts_the_gap_notices_that_arrived() {
        let runs = [run(
            1,
            vec![gap(1, "reconnect", 1, 1), gap(2, "reconnect", 2, 2)],
            0,
        )];
        let rec = received(&[gap(1, "reconnect", 1, 1)]);
        let d = delivery(&dest(&rec, 0), &runs, &ProducerIndex::build(&runs));
        assert_eq!(d.gaps_received, 1);
        assert_eq!(d.lost, 1);
    }

    #[test]
    fn duplicates_must_stay_within_the_bound() {
        let rec = received(&[tick(1), tick(1), tick(2), tick(2), tick(2)]);
        assert_eq!(duplicates(&dest(&rec, 3)), (3, None));
        let (n, fail) = duplicates(&dest(&rec, 2));
        assert_eq!(n, 3);
        assert!(fail.is_some_and(|f| f.contains("above the bound of 2")));
    }

    #[test]
    fn duplicate_bounds_follow_the_faults() {
        let now = Utc::now();
        let faults = [
            fault(FaultKind::WorkerKill, now),
            fault(FaultKind::RabbitRestart, now),
            fault(FaultKind::KafkaRestart, now),
            fault(FaultKind::BridgeKill, now),
        ];
        let report = sim(Vec::new(), Vec::new());
        let rec = Received::default();
        let mut ev = evidence(&report, &[], &faults, &rec);
        ev.bounds = DupBounds {
            worker_prefetch: 10,
            workers: 2,
            bridge_prefetch: 5,
            confirm_window: 7,
            kafka_in_flight: 3,
            commit_interval: Duration::from_secs(1),
        };
        let bounds: Vec<u64> = destinations(&ev).iter().map(|d| d.bound).collect();
        // workers: kill 10 + restart (2*10+7); group and replay: in-flight
        // 3 (no rereads: nothing was handled); bridge: kill 5 + restart
        // (5+7) + Kafka restart 5.
        assert_eq!(bounds, vec![37, 3, 3, 22]);
    }

    #[test]
    fn group_rereads_count_what_a_killed_member_handled_before_dying() {
        let now = Utc::now();
        let mut rec = received(&[tick(1), tick(2)]);
        rec.lines[1].by = "w2".into();
        let mut kill = fault(FaultKind::ConsumerKill, now + chrono::Duration::seconds(1));
        kill.victim = Some("w1".into());
        let faults = [kill];
        let report = sim(Vec::new(), Vec::new());
        let ev = evidence(&report, &[], &faults, &rec);
        assert_eq!(group_rereads(&ev), 1);
    }

    #[test]
    fn queue_poison_must_be_parked_once_with_its_reason() {
        let inj = [Injected {
            id: "poison-1".into(),
            kind: "not_json",
            target: "work".into(),
        }];
        let letter = |id: &str, error: &str| DeadLetter {
            id: Some(id.into()),
            routing_key: "work".into(),
            error: Some(error.into()),
        };
        let q = queue_poison(&inj, &[letter("poison-1", "not_json: expected value")]);
        assert!(q.failures.is_empty(), "{:?}", q.failures);
        assert_eq!(q.dlq_dups, 0);
        assert!(q.lines[0].contains("ok  "));

        let q = queue_poison(
            &inj,
            &[
                letter("poison-1", "schema_invalid: missing id"),
                letter("poison-1", "schema_invalid: missing id"),
                letter("other", "not_json"),
            ],
        );
        assert_eq!(q.dlq_dups, 1);
        assert_eq!(q.failures.len(), 2, "{:?}", q.failures);
        assert!(q.failures[0].contains("not in the DLQ with a not_json reason"));
        assert!(q.failures[1].contains("1 unexpected messages in the DLQ"));
    }

    #[test]
    fn topic_poison_must_be_counted_by_replay_and_group() {
        let now = Utc::now();
        let inj = [Injected {
            id: "k1".into(),
            kind: "not_json",
            target: "ticks".into(),
        }];
        let report = sim(Vec::new(), Vec::new());
        let rec = Received::default();
        let counted = BTreeMap::from([("not_json".to_string(), 1)]);
        let mut ev = evidence(&report, &[], &[], &rec);
        ev.injected_topic = &inj;
        ev.injected_topic_at = Some(now);
        ev.replay_decode_errors = counted.clone();
        ev.group_decode_errors = counted;
        assert!(topic_poison(&ev).failures.is_empty());

        ev.group_decode_errors.clear();
        let p = topic_poison(&ev);
        assert_eq!(p.failures.len(), 1, "{:?}", p.failures);
        assert!(p.failures[0].starts_with("the group counted 0"));

        // A member killed after the injection took its count with it.
        let kill = [fault(
            FaultKind::ConsumerKill,
            now + chrono::Duration::seconds(1),
        )];
        ev.faults = &kill;
        assert!(topic_poison(&ev).failures.is_empty());

        ev.replay_decode_errors.clear();
        let p = topic_poison(&ev);
        assert_eq!(p.failures.len(), 1, "{:?}", p.failures);
        assert!(p.failures[0].starts_with("replay counted 0"));
    }

    #[test]
    fn unclean_readers_and_a_bad_group_fail_the_run() {
        let report = sim(Vec::new(), Vec::new());
        let rec = Received::default();
        let mut ev = evidence(&report, &[], &[], &rec);
        assert!(reader_failures(&ev).is_empty());
        ev.unclean_exits = vec![("w1".into(), "exit 1".into())];
        ev.summary_errors = vec!["replay.summary.json is missing".into()];
        ev.coordinator.1 = vec!["partition 3 unassigned".into()];
        assert_eq!(
            reader_failures(&ev),
            vec![
                "w1 did not exit cleanly: exit 1".to_string(),
                "reader summary unusable: replay.summary.json is missing".to_string(),
                "group coordinator: partition 3 unassigned".to_string()
            ]
        );
    }

    #[test]
    fn report_files_are_read_as_the_model_types() {
        let path = std::env::temp_dir().join(format!("tb-chaos-{}-r.json", std::process::id()));
        let _ = std::fs::remove_file(&path);
        assert_eq!(ReportFile::<RunReport>::read(&path), ReportFile::Missing);
        let text = serde_json::to_string_pretty(&report(3)).expect("serializes");
        std::fs::write(&path, &text).expect("temp file");
        let read = ReportFile::<RunReport>::read(&path);
        assert_eq!(read, ReportFile::Read(report(3)));
        let run = ProducerRun {
            report: read,
            ..run(1, Vec::new(), 0)
        };
        assert_eq!(
            (
                run.unconfirmed(Sink::Rabbitmq),
                run.unconfirmed(Sink::Kafka)
            ),
            (3, 0)
        );
        // A report by key of another shape is not read as zeros.
        std::fs::write(
            &path,
            r#"{"sinks": [{"kind": "rabbitmq", "unconfirmed": 3}]}"#,
        )
        .expect("temp file");
        let read = ReportFile::<RunReport>::read(&path);
        let _ = std::fs::remove_file(&path);
        match read {
            ReportFile::Invalid(why) => assert!(why.contains("r.json"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reconcile_composes_the_rules_and_renders_the_verdict() {
        let report = sim(vec![range(1, 3)], Vec::new());
        let runs = [run(1, vec![tick(1), tick(2), tick(3)], 0)];
        let rec = received(&[tick(1), tick(2), tick(3)]);
        let ev = evidence(&report, &runs, &[], &rec);
        let out = reconcile(&ev);
        assert!(out.ok, "{}", out.table);
        assert!(out.table.contains("seed 7"));
        assert!(out.table.contains("simulator: sent 3 trades on 1 symbols"));
        assert!(out.table.contains("RESULT: PASS"));

        // One tick lost everywhere: one failure per destination.
        let rec = received(&[tick(1), tick(2)]);
        let ev = evidence(&report, &runs, &[], &rec);
        let out = reconcile(&ev);
        assert!(!out.ok);
        assert_eq!(out.failures.len(), 4, "{:?}", out.failures);
        assert!(out.table.contains("RESULT: FAIL"));
        assert!(out
            .table
            .contains("  - workers (RabbitMQ work queue): 1 confirmed"));
    }
}
