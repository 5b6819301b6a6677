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
use crate::records::{Msg, Received};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write;
use std::time::Duration;
use tickbridge_feed_sim::SimReport;

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
    /// The `--report` JSON (absent if it never wrote one).
    pub report: Option<serde_json::Value>,
    /// Exit code, if it exited by itself after SIGTERM.
    pub exit_code: Option<i32>,
}

impl ProducerRun {
    /// `unconfirmed` of one sink in the report.
    pub fn unconfirmed(&self, sink: &str) -> u64 {
        self.report
            .as_ref()
            .and_then(|r| r.get("sinks"))
            .and_then(|s| s.as_array())
            .and_then(|a| {
                a.iter().find(|s| {
                    s.get("sink").and_then(|v| v.as_str()) == Some(sink)
                        || s.get("kind").and_then(|v| v.as_str()) == Some(sink)
                })
            })
            .and_then(|s| s.get("unconfirmed"))
            .and_then(|v| v.as_u64())
            .unwrap_or(0)
    }

    fn field(&self, k: &str) -> u64 {
        self.report
            .as_ref()
            .and_then(|r| r.get(k))
            .and_then(|v| v.as_u64())
            .unwrap_or(0)
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
pub fn reconcile(ev: &Evidence<'_>) -> Outcome {
    let mut fails: Vec<String> = Vec::new();
    let count = |k: FaultKind| ev.faults.iter().filter(|f| f.kind == k).count() as u64;

    // --- producer side: what was emitted, by whom, and the gap notices.
    let mut emitted_ids: HashSet<&str> = HashSet::new();
    let mut run_of: HashMap<&str, usize> = HashMap::new();
    let mut emitted_trades: HashMap<&str, Vec<u64>> = HashMap::new();
    let mut notices: HashMap<&str, Ranges> = HashMap::new();
    let mut notice_reasons: BTreeMap<String, u64> = BTreeMap::new();
    let mut gap_ids: HashSet<&str> = HashSet::new();
    let mut producer_dups = 0u64;
    for p in ev.producers {
        for m in &p.msgs {
            if !emitted_ids.insert(m.id.as_str()) {
                producer_dups += 1;
            }
            run_of.insert(m.id.as_str(), p.index);
            if m.is_gap() {
                gap_ids.insert(m.id.as_str());
                *notice_reasons
                    .entry(m.reason.clone().unwrap_or_default())
                    .or_default() += 1;
                if let (Some(f), Some(t)) = (m.missing_from, m.missing_to) {
                    notices.entry(m.symbol.as_str()).or_default().add(f, t);
                }
            } else if let Some(t) = m.trade_id {
                emitted_trades.entry(m.symbol.as_str()).or_default().push(t);
            }
        }
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
        if p.report.is_none() {
            fails.push(format!("producer run {} wrote no --report", p.index));
        }
    }
    if producer_dups > 0 {
        fails.push(format!(
            "the producers emitted {producer_dups} message ids twice"
        ));
    }
    for r in notices.values_mut() {
        r.finish();
    }
    let empty = Ranges::default();

    // --- rule 1: simulator → producer.
    let mut sim_sent = 0u64;
    let mut sim_skipped = 0u64;
    let mut skipped_ranges = 0u64;
    let mut not_emitted = 0u64;
    let mut covered = 0u64;
    let mut tail = 0u64;
    let mut unexplained_ids: Vec<String> = Vec::new();
    let mut skipped_uncovered = 0u64;
    let mut phantom_emitted = 0u64;
    for s in &ev.sim.symbols {
        let sym = s.symbol.as_str();
        let mut em: Vec<u64> = emitted_trades.get(sym).cloned().unwrap_or_default();
        em.sort_unstable();
        let em_set: HashSet<u64> = em.iter().copied().collect();
        let last = em.last().copied().unwrap_or(0);
        let first = em.first().copied().unwrap_or(u64::MAX);
        let nr = notices.get(sym).unwrap_or(&empty);
        let mut sent: HashSet<u64> = HashSet::new();
        for r in &s.sent_ranges {
            for id in r.from..=r.to {
                sent.insert(id);
                sim_sent += 1;
                if em_set.contains(&id) {
                    continue;
                }
                not_emitted += 1;
                if id > last || id < first {
                    tail += 1;
                } else if nr.contains(id) {
                    covered += 1;
                } else if unexplained_ids.len() < 10 {
                    unexplained_ids.push(format!("{sym}#{id}"));
                } else {
                    unexplained_ids.push(String::new());
                }
            }
        }
        for r in &s.skipped {
            skipped_ranges += 1;
            sim_skipped += r.len();
            if r.from > last {
                continue;
            }
            // Ids skipped on one connection but sent on the next (the
            // producer reconnected meanwhile) were not missed at all.
            if (r.from..=r.to).any(|id| !nr.contains(id) && !em_set.contains(&id)) {
                skipped_uncovered += 1;
            }
        }
        phantom_emitted += em.iter().filter(|id| !sent.contains(id)).count() as u64;
    }
    let unexplained_sent = unexplained_ids.len() as u64;
    if unexplained_sent > 0 {
        let shown: Vec<&String> = unexplained_ids.iter().filter(|s| !s.is_empty()).collect();
        fails.push(format!(
            "{unexplained_sent} trade ids sent by the simulator were never emitted and no gap notice covers them (first: {shown:?})"
        ));
    }
    if skipped_uncovered > 0 {
        fails.push(format!(
            "{skipped_uncovered} gaps the simulator injected have no gap notice"
        ));
    }
    if phantom_emitted > 0 {
        fails.push(format!(
            "the producers emitted {phantom_emitted} trades the simulator never sent"
        ));
    }

    // --- rule 2 and 3: each destination.
    let b = ev.bounds;
    let window = chrono::Duration::from_std(b.commit_interval + Duration::from_secs(2))
        .unwrap_or_else(|_| chrono::Duration::seconds(3));
    let group_rereads: u64 = ev
        .faults
        .iter()
        .map(|f| match f.kind {
            FaultKind::ConsumerKill => {
                let v = f.victim.clone().unwrap_or_default();
                ev.group.handled_between(f.at - window, f.at, |by| by == v)
            }
            FaultKind::KafkaRestart => ev.group.handled_between(f.at - window, f.done, |_| true),
            _ => 0,
        })
        .sum();
    let dests: [(&'static str, &Received, &str, u64); 4] = [
        (
            "workers (RabbitMQ work queue)",
            ev.workers,
            "rabbitmq",
            count(FaultKind::WorkerKill) * b.worker_prefetch
                + count(FaultKind::RabbitRestart)
                    * (b.workers * b.worker_prefetch + b.confirm_window),
        ),
        (
            "Kafka consumer group",
            ev.group,
            "kafka",
            count(FaultKind::KafkaRestart) * b.kafka_in_flight + group_rereads,
        ),
        (
            "consumer --replay-from 0",
            ev.replay,
            "kafka",
            count(FaultKind::KafkaRestart) * b.kafka_in_flight,
        ),
        (
            "bridge -> Kafka topic",
            ev.bridged,
            "rabbitmq",
            count(FaultKind::BridgeKill) * b.bridge_prefetch
                + count(FaultKind::RabbitRestart) * (b.bridge_prefetch + b.confirm_window)
                + count(FaultKind::KafkaRestart) * b.bridge_prefetch,
        ),
    ];
    let mut results = Vec::new();
    for (name, rec, sink, bound) in dests {
        // Sink-loss notices in this stream explain the ticks they cover.
        let mut sink_loss: HashMap<&str, Ranges> = HashMap::new();
        let mut sink_notice_ids: HashSet<&str> = HashSet::new();
        for l in &rec.lines {
            let m = &l.message;
            if m.is_gap()
                && matches!(
                    m.reason.as_deref(),
                    Some("publish_failed") | Some("buffer_overflow")
                )
                && !emitted_ids.contains(m.id.as_str())
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
        let mut lost_by_run: HashMap<usize, u64> = HashMap::new();
        let mut explained = 0u64;
        for p in ev.producers {
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
        let mut lost = 0u64;
        for (run, n) in &lost_by_run {
            let reported = ev
                .producers
                .iter()
                .find(|p| p.index == *run)
                .map(|p| p.unconfirmed(sink))
                .unwrap_or(0);
            let ok = (*n).min(reported);
            explained += ok;
            lost += n - ok;
        }
        let phantom = rec
            .count
            .keys()
            .filter(|id| {
                !emitted_ids.contains(id.as_str()) && !sink_notice_ids.contains(id.as_str())
            })
            .count() as u64;
        let gaps_received = gap_ids
            .iter()
            .filter(|id| rec.count.contains_key(**id))
            .count();
        let dups = rec.duplicates();
        if lost > 0 {
            fails.push(format!("{name}: {lost} confirmed messages lost"));
        }
        if phantom > 0 {
            fails.push(format!("{name}: {phantom} messages no producer emitted"));
        }
        if dups > bound {
            fails.push(format!(
                "{name}: {dups} duplicates, above the bound of {bound}"
            ));
        }
        if rec.bad_lines() > 0 {
            fails.push(format!(
                "{name}: {} unparsable output lines",
                rec.bad_lines()
            ));
        }
        results.push(DestResult {
            name,
            expected: emitted_ids.len(),
            received_unique: rec.unique(),
            lost,
            explained_loss: explained,
            duplicates: dups,
            bound,
            gaps_expected: gap_ids.len(),
            gaps_received,
            phantom,
        });
    }

    // --- rule 4: poison.
    let mut poison_lines = Vec::new();
    let mut matched: HashSet<usize> = HashSet::new();
    let mut dlq_dups = 0u64;
    for inj in ev.injected_queue {
        let hits: Vec<(usize, &DeadLetter)> = ev
            .dlq
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
        poison_lines.push(format!(
            "  {} {:<28} in {:<34} -> DLQ x{} tb-error {:?}",
            if good { "ok  " } else { "FAIL" },
            inj.id,
            inj.target,
            hits.len(),
            reason
        ));
        if !good {
            fails.push(format!(
                "injected {} into {} is not in the DLQ with a {} reason",
                inj.id, inj.target, inj.kind
            ));
        }
    }
    let others: Vec<&DeadLetter> = ev
        .dlq
        .iter()
        .enumerate()
        .filter(|(i, _)| !matched.contains(i))
        .map(|(_, d)| d)
        .collect();
    if !others.is_empty() {
        fails.push(format!(
            "{} unexpected messages in the DLQ (first: {:?})",
            others.len(),
            others.first()
        ));
    }
    let mut topic_kinds: BTreeMap<&str, u64> = BTreeMap::new();
    for i in ev.injected_topic {
        *topic_kinds.entry(i.kind).or_default() += 1;
    }
    let killed_after = ev.injected_topic_at.is_some_and(|at| {
        ev.faults
            .iter()
            .any(|f| f.kind == FaultKind::ConsumerKill && f.at > at)
    });
    let mut kafka_poison_lines = Vec::new();
    for (kind, n) in &topic_kinds {
        let replay = ev.replay_decode_errors.get(*kind).copied().unwrap_or(0);
        let group = ev.group_decode_errors.get(*kind).copied().unwrap_or(0);
        let replay_ok = replay == *n;
        let group_ok = killed_after || group >= *n;
        kafka_poison_lines.push(format!(
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
            fails.push(format!(
                "replay counted {replay} {kind} decode errors, {n} injected"
            ));
        }
        if !group_ok {
            fails.push(format!(
                "the group counted {group} {kind} decode errors, {n} injected"
            ));
        }
    }
    for (name, why) in &ev.unclean_exits {
        fails.push(format!("{name} did not exit cleanly: {why}"));
    }
    for p in &ev.coordinator.1 {
        fails.push(format!("group coordinator: {p}"));
    }

    // --- the table.
    let mut t = String::new();
    let _ = writeln!(
        t,
        "chaos reconciliation, seed {} (replay: CHAOS_SEED={} cargo run -p tickbridge-chaos --bin chaos), {:.0} s",
        ev.seed, ev.seed, ev.seconds
    );
    let _ = writeln!(t, "faults, in the order injected:");
    for f in ev.faults {
        let _ = writeln!(
            t,
            "  +{:>5.1}s {:<17} {:>5.1}s  {}",
            f.offset_secs,
            f.kind.as_str(),
            (f.done - f.at).num_milliseconds() as f64 / 1000.0,
            f.detail
        );
    }
    let reasons: Vec<String> = notice_reasons
        .iter()
        .map(|(r, n)| format!("{r} {n}"))
        .collect();
    let emitted_ticks: usize = emitted_trades.values().map(Vec::len).sum();
    let _ = writeln!(
        t,
        "simulator: sent {} trades on {} symbols; skipped {} ids in {} injected gaps",
        fmt_n(sim_sent),
        ev.sim.symbols.len(),
        fmt_n(sim_skipped),
        skipped_ranges
    );
    let unconf: u64 = ev.producers.iter().map(|p| p.field("unconfirmed")).sum();
    let dups_dropped: u64 = ev.producers.iter().map(|p| p.field("duplicates")).sum();
    let malformed: u64 = ev.producers.iter().map(|p| p.field("malformed")).sum();
    let reconnects: u64 = ev.producers.iter().map(|p| p.field("reconnects")).sum();
    let _ = writeln!(
        t,
        "producer ({} runs): emitted {} ticks + {} gap notices ({}); dropped {} duplicate frames, {} malformed; {} reconnects; unconfirmed {}",
        ev.producers.len(),
        fmt_n(emitted_ticks as u64),
        gap_ids.len(),
        reasons.join(", "),
        dups_dropped,
        malformed,
        reconnects,
        unconf
    );
    let _ = writeln!(
        t,
        "sent but not emitted: {} = {} inside gap notices + {} after the last producer stopped + {} UNEXPLAINED; injected gaps without a notice: {}",
        fmt_n(not_emitted),
        fmt_n(covered),
        fmt_n(tail),
        unexplained_sent,
        skipped_uncovered
    );
    let _ = writeln!(
        t,
        "{:<30} {:>8} {:>8} {:>5} {:>6} {:>6} {:>6} {:>9} {:>7}",
        "destination", "expected", "received", "lost", "expl.", "dups", "bound", "gaps", "phantom"
    );
    for r in &results {
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
    let _ = writeln!(
        t,
        "poison and invalid messages (DLQ, {} messages, {} duplicates):",
        ev.dlq.len(),
        dlq_dups
    );
    for l in &poison_lines {
        let _ = writeln!(t, "{l}");
    }
    let _ = writeln!(t, "poison and invalid Kafka records (decode errors):");
    for l in &kafka_poison_lines {
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
    if fails.is_empty() {
        let _ = writeln!(t, "RESULT: PASS (every difference explained)");
    } else {
        let _ = writeln!(t, "RESULT: FAIL");
        for f in &fails {
            let _ = writeln!(t, "  - {f}");
        }
    }
    Outcome {
        seed: ev.seed,
        ok: fails.is_empty(),
        table: t,
        failures: fails,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
