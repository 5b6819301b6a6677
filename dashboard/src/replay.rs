//! A client's private read of Kafka, from its cursor up to the live
//! position: what makes an SSE resume exact, and what the replay button
//! runs.
//!
//! The read assigns each partition at the client's `next` offset (no
//! group membership, nothing committed: a replay is read-only) and stops
//! each partition when it reaches the target. Offsets of a partition are
//! contiguous, so "every offset from `next` to the target, once" is what
//! the client gets. When retention has already deleted part of that range,
//! the first offset read is later than asked for; the client is told, with
//! a `notice` event, instead of silently receiving less.

use crate::cursor::Cursor;
use crate::hub::{batch_event, decode_entry, sse_event, Aggregate, View};
use crate::{Error, Result};
use bytes::Bytes;
use chrono::Utc;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::Message as _;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::time::Duration;
use tickbridge_broker::kafka::KafkaConfig;
use tickbridge_consumer::replay::{ReplayFrom, StartAt};
use tokio::sync::mpsc;

/// No message for this long while a partition is still short of its
/// target: the read gives up (the broker is gone or the range vanished).
const STALL: Duration = Duration::from_secs(15);
/// A client that does not take a replayed event for this long is cut off.
const CLIENT_STALL: Duration = Duration::from_secs(10);

/// Reads every message from `from` up to `to` and sends it to `tx` as
/// events of at most `batch_max` messages (`batch` or `summary`, by
/// `view`), whose ids advance the client's cursor. Returns the cursor
/// reached, equal to `to` on success.
pub async fn read_range(
    kafka: &KafkaConfig,
    from: &Cursor,
    to: &Cursor,
    batch_max: usize,
    view: View,
    tx: &mpsc::Sender<Bytes>,
) -> Result<Cursor> {
    let mut cur = from.clone();
    let mut todo: BTreeMap<i32, i64> = BTreeMap::new();
    let mut tpl = TopicPartitionList::new();
    for (p, target) in &to.next {
        let at = from.next.get(p).copied().unwrap_or(0);
        cur.next.entry(*p).or_insert(at);
        if at < *target {
            todo.insert(*p, *target);
            tpl.add_partition_offset(&to.topic, *p, Offset::Offset(at))?;
        }
    }
    if todo.is_empty() {
        return Ok(cur);
    }
    metrics::counter!("tickbridge_dashboard_replays_total").increment(1);
    let mut c = kafka.client_config();
    c.set("group.id", "tickbridge-dashboard-replay")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "50");
    let consumer: StreamConsumer = kafka.finish(c).create()?;
    consumer.assign(&tpl)?;
    let mut pending: Vec<String> = Vec::new();
    let mut aggregate = Aggregate::default();
    let mut first_seen: BTreeMap<i32, bool> = BTreeMap::new();
    let total: i64 = todo.iter().map(|(p, t)| t - cur.next[p]).sum();
    let mut done_count: i64 = 0;
    while !todo.is_empty() {
        let m = match tokio::time::timeout(STALL, consumer.recv()).await {
            Err(_) => {
                return Err(Error::Config(format!(
                    "replay stalled: nothing read for {STALL:?} with {todo:?} still to reach"
                )))
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "replay receive error");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Ok(Ok(m)) => m,
        };
        let (p, o) = (m.partition(), m.offset());
        let Some(target) = todo.get(&p).copied() else {
            continue;
        };
        if o >= target {
            todo.remove(&p);
            continue;
        }
        let expected = cur.next[&p];
        if o < expected {
            continue;
        }
        if o > expected && !first_seen.contains_key(&p) {
            let note = serde_json::json!({
                "partition": p, "asked": expected, "first": o,
                "why": "retention already deleted these offsets",
            });
            send(tx, sse_event(None, "notice", &note.to_string())).await?;
        }
        first_seen.insert(p, true);
        let d = decode_entry(p, o, m.payload().unwrap_or_default(), Utc::now());
        drop(m);
        cur.advance(p, o);
        aggregate.add(&d);
        pending.push(d.json);
        done_count += 1;
        if o + 1 >= target {
            todo.remove(&p);
        }
        if pending.len() >= batch_max || todo.is_empty() {
            let event = match view {
                View::Full => {
                    let extra = format!(",\"replay\":{{\"done\":{done_count},\"total\":{total}}}");
                    batch_event(&cur, &pending, &extra)
                }
                View::Summary => aggregate.take_event(&cur),
            };
            send(tx, event).await?;
            pending.clear();
        }
    }
    Ok(cur)
}

async fn send(tx: &mpsc::Sender<Bytes>, b: Bytes) -> Result<()> {
    match tx.send_timeout(b, CLIENT_STALL).await {
        Ok(()) => Ok(()),
        Err(_) => Err(Error::Config(
            "client stopped reading during its replay".into(),
        )),
    }
}

/// Turns a `from=` value (the consumer's `--replay-from` syntax) into a
/// cursor over `live`'s partitions, asking the broker for watermarks and
/// for the offsets of a time. Offsets are clamped into what is retained and
/// never beyond the live position.
pub async fn resolve(kafka: &KafkaConfig, from: &ReplayFrom, live: &Cursor) -> Result<Cursor> {
    let start = from.resolve(Utc::now());
    let kafka = kafka.clone();
    let live = live.clone();
    tokio::task::spawn_blocking(move || -> Result<Cursor> {
        let t = Duration::from_secs(10);
        let base: BaseConsumer = kafka.finish(kafka.client_config()).create()?;
        let topic = live.topic.clone();
        let mut out = Cursor::new(&topic);
        let times = match &start {
            StartAt::Timestamp(ts) => {
                let mut tpl = TopicPartitionList::new();
                for p in live.next.keys() {
                    tpl.add_partition_offset(&topic, *p, Offset::Offset(ts.timestamp_millis()))?;
                }
                Some(base.offsets_for_times(tpl, t)?)
            }
            _ => None,
        };
        for (p, hi) in &live.next {
            let (lo, _) = base.fetch_watermarks(&topic, *p, t)?;
            let n = match &start {
                StartAt::Earliest => lo,
                StartAt::Latest => *hi,
                StartAt::Offset(n) => *n,
                StartAt::Partitions(m) => m.get(p).copied().unwrap_or(*hi),
                StartAt::Timestamp(_) => times
                    .as_ref()
                    .and_then(|l| l.find_partition(&topic, *p))
                    .and_then(|e| match e.offset() {
                        Offset::Offset(n) if n >= 0 => Some(n),
                        _ => None,
                    })
                    .unwrap_or(*hi),
            };
            out.next.insert(*p, n.clamp(lo.min(*hi), *hi));
        }
        Ok(out)
    })
    .await
    .map_err(|e| Error::Config(format!("offset lookup failed: {e}")))?
}
