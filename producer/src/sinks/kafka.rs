//! Kafka sink: idempotent producer (`enable.idempotence=true`, `acks=all`),
//! key = symbol so each symbol keeps its order within a partition, headers
//! as documented in `schemas/README.md`, every delivery report checked.
//!
//! librdkafka retries transient errors itself and reconnects on its own. A
//! message whose delivery report is an error is re-produced (a timeout does
//! not count against `--publish-retries`, since it means "broker away", the
//! case the buffer policy governs); a permanent refusal is retried, then
//! counted lost and replaced by a gap notice. `flush` runs before the
//! producer is dropped, so nothing in librdkafka's queue is lost on exit.

use super::{dropped_notices, give_up, Pending};
use crate::buffer::Buffer;
use crate::pipeline::Outgoing;
use crate::stats::{add, SinkStats};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::statistics::Statistics;
use rdkafka::ClientContext;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tickbridge_broker::headers;
use tickbridge_broker::kafka::KafkaConfig;
use tickbridge_model::Shutdown;
use tokio::sync::mpsc;

const SINK: &str = "kafka";

/// Sink settings.
#[derive(Debug, Clone)]
pub struct KafkaSinkOptions {
    /// Messages handed to librdkafka and not yet reported.
    pub window: usize,
    /// Re-produces before giving up on a permanently refused message.
    pub retries: u32,
    /// `compression.type`.
    pub compression: String,
    /// `linger.ms`.
    pub linger_ms: u32,
}

/// One delivery report: the broker's verdict and the message it concerns.
type Report = (Result<(), KafkaError>, Arc<Outgoing>);

/// librdkafka's statistics interval, for the producer id readiness check.
const STATS_INTERVAL_MS: u64 = 100;

/// How long `warm_up` waits for the producer id before streaming anyway.
const PID_WAIT: Duration = Duration::from_secs(2);

/// librdkafka context that hands each delivery report, with the message it
/// belongs to (carried through librdkafka as the per-message opaque: the
/// message's own `Arc`, so no allocation per message), back to the sink
/// task. No future per message either: the report thread of
/// [`ThreadedProducer`] calls [`ProducerContext::delivery`].
pub struct DeliveryReports {
    tx: mpsc::UnboundedSender<Report>,
    /// The idempotent producer holds a producer id (librdkafka's statistics
    /// report `idemp_state` `Assigned`): until then nothing can be sent.
    pid_assigned: AtomicBool,
}

impl ClientContext for DeliveryReports {
    fn stats(&self, s: Statistics) {
        if let Some(eos) = s.eos {
            self.pid_assigned
                .store(eos.idemp_state == "Assigned", Relaxed);
        }
    }
}

impl ProducerContext for DeliveryReports {
    type DeliveryOpaque = Arc<Outgoing>;

    fn delivery(&self, result: &DeliveryResult<'_>, msg: Arc<Outgoing>) {
        let verdict = match result {
            Ok(_) => Ok(()),
            Err((e, _)) => Err(e.clone()),
        };
        // The receiver lives as long as the sink task; after it is gone the
        // report has no one left to tell.
        let _ = self.tx.send((verdict, msg));
    }
}

/// The idempotent producer together with its stream of delivery reports.
pub struct KafkaProducer {
    producer: Arc<ThreadedProducer<DeliveryReports>>,
    reports: mpsc::UnboundedReceiver<Report>,
    /// Idempotence and statistics are on, so `warm_up` can wait for the
    /// producer id.
    pid_observable: bool,
}

/// Builds the idempotent producer. The `--kafka-option` passthrough is
/// applied last.
pub fn producer(
    cfg: &KafkaConfig,
    opts: &KafkaSinkOptions,
) -> tickbridge_broker::Result<KafkaProducer> {
    let mut c = cfg.client_config();
    c.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", &opts.compression)
        .set("linger.ms", opts.linger_ms.to_string())
        .set(
            "queue.buffering.max.messages",
            (opts.window.max(1000) * 2).to_string(),
        )
        .set("message.timeout.ms", "60000")
        // Lets `warm_up` see when the producer id is assigned. Three
        // partitions' statistics ten times a second cost next to nothing.
        .set("statistics.interval.ms", STATS_INTERVAL_MS.to_string());
    let (tx, reports) = mpsc::unbounded_channel();
    let c = cfg.finish(c);
    // A `--kafka-option` may have turned statistics (or idempotence) off, or
    // made statistics too rare to show the id within the wait.
    let pid_observable = c.get("enable.idempotence") == Some("true")
        && c.get("statistics.interval.ms")
            .and_then(|v| v.parse::<u128>().ok())
            .is_some_and(|ms| ms > 0 && ms < PID_WAIT.as_millis());
    let producer = Arc::new(c.create_with_context(DeliveryReports {
        tx,
        pid_assigned: AtomicBool::new(false),
    })?);
    Ok(KafkaProducer {
        producer,
        reports,
        pid_observable,
    })
}

impl KafkaProducer {
    /// Fetches `topic`'s metadata through this producer's own client, so
    /// its partition leaders are known before the first tick arrives.
    ///
    /// Without it, librdkafka learns them only when the first message for
    /// the topic is produced; measured that way, the first ticks waited 0.4
    /// to 0.9 s for their delivery reports while the feed kept arriving. A failure is only logged: librdkafka fetches the metadata
    /// itself on the first produce.
    ///
    /// Then it waits (up to [`PID_WAIT`]) for the idempotent producer's id,
    /// without which librdkafka sends nothing. librdkafka asks a broker for
    /// one when a metadata response arrives while a broker it learned of is
    /// connected, and otherwise retries on a 500 ms timer. At startup the
    /// first metadata response comes before any such connection, so every
    /// run held its first ticks for half a second (in the stats lines:
    /// 5,000 published, 0 confirmed, for 0.5 s). Asking for metadata again
    /// once the leaders' connections are up gets the id within
    /// milliseconds.
    pub async fn warm_up(&self, topic: &str, timeout: Duration) {
        let producer = Arc::clone(&self.producer);
        let topic_name = topic.to_string();
        let pid_observable = self.pid_observable;
        let fetched = tokio::task::spawn_blocking(move || {
            let client = producer.client();
            let partitions = client
                .fetch_metadata(Some(&topic_name), timeout)
                .map(|m| m.topics().first().map_or(0, |t| t.partitions().len()))?;
            if pid_observable {
                let assigned = || producer.context().pid_assigned.load(Relaxed);
                let deadline = std::time::Instant::now() + PID_WAIT;
                while !assigned() && std::time::Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                    let _ = client.fetch_metadata(Some(&topic_name), Duration::from_secs(1));
                }
                if !assigned() {
                    tracing::warn!(topic = %topic_name, waited_ms = PID_WAIT.as_millis() as u64, "idempotent producer has no producer id yet; the first ticks wait for it");
                }
            }
            Ok::<_, KafkaError>(partitions)
        })
        .await;
        match fetched {
            Ok(Ok(partitions)) => {
                tracing::debug!(
                    topic,
                    partitions,
                    "producer knows the topic's partition leaders"
                )
            }
            Ok(Err(e)) => {
                tracing::warn!(topic, error = %e, "topic metadata not fetched ahead of the first tick")
            }
            Err(e) => tracing::warn!(topic, error = %e, "topic metadata fetch did not finish"),
        }
    }
}

/// Runs until the buffer is closed and every delivery report is in, or until
/// `hard_stop`. Returns the number of messages left unconfirmed.
pub async fn run(
    topic: String,
    opts: KafkaSinkOptions,
    kafka: KafkaProducer,
    buffer: Arc<Buffer>,
    stats: Arc<crate::stats::Stats>,
    hard_stop: Shutdown,
) -> u64 {
    let KafkaProducer {
        producer,
        mut reports,
        ..
    } = kafka;
    let st: &SinkStats = &stats.kafka;
    add(&st.connects, 1);
    let mut f = Flight::default();
    let mut batch = Vec::with_capacity(opts.window);
    let mut drained = false;
    let mut queue_full = false;
    let result = loop {
        st.in_flight.store(f.inflight as u64, Relaxed);
        while !queue_full && f.inflight < opts.window {
            let Some(p) = f.retry.pop_front() else { break };
            queue_full = !f.produce(&producer, &topic, p, st);
        }
        if drained && f.inflight == 0 && f.retry.is_empty() {
            break 0;
        }
        let room = if queue_full {
            0
        } else {
            opts.window.saturating_sub(f.inflight)
        };
        tokio::select! {
            biased;
            _ = hard_stop.cancelled() => break (f.inflight + f.retry.len() + buffer.len()) as u64,
            Some(first) = reports.recv(), if f.inflight > 0 => {
                queue_full = false;
                let mut next = Some(first);
                // Handle every report already waiting before going round.
                let mut confirmed = 0;
                while let Some((res, msg)) = next {
                    confirmed += u64::from(f.on_report(res, msg, &opts, st));
                    next = reports.try_recv().ok();
                }
                add(&st.confirmed, confirmed);
            }
            // With a full local queue, wait a moment for reports to drain it.
            _ = tokio::time::sleep(Duration::from_millis(5)), if queue_full && f.inflight == 0 => {
                queue_full = false;
            }
            _ = buffer.pop_batch(room, &mut batch), if room > 0 && !drained && f.retry.is_empty() => {
                for n in dropped_notices(&buffer, st, SINK) {
                    f.retry.push_back(n);
                }
                if batch.is_empty() {
                    drained = true;
                }
                for msg in batch.drain(..) {
                    if queue_full {
                        f.retry.push_back(Pending::new(msg));
                    } else {
                        queue_full = !f.produce(&producer, &topic, Pending::new(msg), st);
                    }
                }
            }
        }
    };
    st.in_flight.store(0, Relaxed);
    if f.inflight > 0 {
        // librdkafka drops whatever is still queued when the producer is
        // dropped, so what a hard stop left in flight gets a last chance.
        let _ = tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(5))).await;
    } else {
        // Every message has its report: librdkafka holds nothing of ours.
        // A flush would only wait, up to 100 ms (rust-rdkafka polls in
        // steps of that size), for events queued to the report thread such
        // as statistics, and dropping the producer joins that thread, which
        // also takes up to 100 ms; neither may hold up the run's end, so the
        // producer is released off the runtime, without waiting.
        tokio::task::spawn_blocking(move || drop(producer));
    }
    result
}

/// The sink's messages between the buffer and their delivery reports.
#[derive(Default)]
struct Flight {
    /// Handed to librdkafka, report not yet handled.
    inflight: usize,
    /// Waiting to be (re)produced, ahead of the buffer.
    retry: VecDeque<Pending>,
    /// Failed attempts of the in-flight messages that have failed before,
    /// by the message's address (unique while it is in flight). Nearly
    /// always empty: a first attempt carries no count.
    attempts: HashMap<usize, u32>,
}

impl Flight {
    /// Records a message librdkafka accepted, with its failed attempts.
    fn in_flight(&mut self, msg: &Arc<Outgoing>, attempts: u32) {
        self.inflight += 1;
        if attempts > 0 {
            self.attempts.insert(Arc::as_ptr(msg) as usize, attempts);
        }
    }

    /// Counts a delivery report, or schedules the message for another
    /// attempt (or, after every retry, its replacement gap notice). Returns
    /// whether the message was confirmed.
    fn on_report(
        &mut self,
        res: Result<(), KafkaError>,
        msg: Arc<Outgoing>,
        opts: &KafkaSinkOptions,
        st: &SinkStats,
    ) -> bool {
        self.inflight -= 1;
        let attempts = if self.attempts.is_empty() {
            0
        } else {
            self.attempts
                .remove(&(Arc::as_ptr(&msg) as usize))
                .unwrap_or(0)
        };
        let Err(e) = res else { return true };
        let mut p = Pending { msg, attempts };
        let timeout = matches!(
            e.rdkafka_error_code(),
            Some(RDKafkaErrorCode::MessageTimedOut)
        );
        if !timeout {
            p.attempts += 1;
        }
        if p.attempts > opts.retries {
            if let Some(gap) = give_up(&p, st, SINK, &e.to_string()) {
                self.retry.push_front(gap);
            }
        } else {
            tracing::warn!(sink = SINK, id = %p.msg.view().id(), attempt = p.attempts, error = %e, "delivery failed; re-producing");
            add(&st.retries, 1);
            self.retry.push_back(p);
        }
        false
    }

    /// Hands one message to librdkafka. Returns `false` when its local queue
    /// is full (the message goes back to the retry queue).
    fn produce(
        &mut self,
        producer: &ThreadedProducer<DeliveryReports>,
        topic: &str,
        p: Pending,
        st: &SinkStats,
    ) -> bool {
        let Pending { msg, attempts } = p;
        // The record borrows the message's body and key; librdkafka copies
        // them, while a second `Arc` travels as the opaque until the report
        // comes back.
        let view = msg.view();
        let record = BaseRecord::with_opaque_to(topic, Arc::clone(&msg))
            .key(view.symbol())
            .payload(&msg.body)
            .headers(headers::kafka_headers(view))
            .timestamp(view.timestamp().timestamp_millis());
        match producer.send(record) {
            Ok(()) => {
                add(&st.published, 1);
                self.in_flight(&msg, attempts);
                true
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), record)) => {
                drop(record);
                self.retry.push_front(Pending { msg, attempts });
                false
            }
            Err((e, record)) => {
                drop(record);
                let p = Pending {
                    msg,
                    attempts: attempts + 1,
                };
                if let Some(gap) = give_up(&p, st, SINK, &e.to_string()) {
                    self.retry.push_front(gap);
                }
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Continuity;
    use crate::stats::{get, Stats};
    use chrono::Utc;
    use tickbridge_model::tick::{GapReason, Message, Source, Via};

    fn tick(id: u64) -> Arc<Outgoing> {
        let stats = Stats::default();
        let mut c = Continuity::new(Source::Binance, Via::Ws, "p".into(), 10);
        let mut out = Vec::new();
        let raw = crate::exchange::RawTrade {
            symbol: "BTC-USDT".into(),
            raw_symbol: "BTCUSDT".into(),
            trade_id: id,
            price: rust_decimal::Decimal::new(1, 2),
            qty: rust_decimal::Decimal::new(5, 1),
            side: tickbridge_model::Side::Buy,
            exchange_ts: Utc::now(),
            feed_seq: None,
        };
        c.on_trade(raw, Utc::now(), &stats, &mut out);
        out.pop().unwrap()
    }

    fn opts(retries: u32) -> KafkaSinkOptions {
        KafkaSinkOptions {
            window: 10,
            retries,
            compression: "lz4".into(),
            linger_ms: 5,
        }
    }

    /// A permanently refused message is re-produced `retries` times, each
    /// attempt counted although the count travels outside librdkafka, then
    /// replaced by a `publish_failed` gap notice; a timeout does not count.
    #[test]
    fn refusals_are_counted_across_attempts_then_replaced_by_a_gap() {
        let st = SinkStats::default();
        let opts = opts(2);
        let mut f = Flight::default();
        let refused = || {
            Err(KafkaError::MessageProduction(
                RDKafkaErrorCode::MessageSizeTooLarge,
            ))
        };
        let other = tick(7);
        f.in_flight(&other, 0);
        let msg = tick(8);
        f.in_flight(&msg, 0);
        // A timeout, then two refusals: still retried.
        let timeout = Err(KafkaError::MessageProduction(
            RDKafkaErrorCode::MessageTimedOut,
        ));
        for (attempt, res) in [(0, timeout), (1, refused()), (2, refused())] {
            assert!(!f.on_report(res, Arc::clone(&msg), &opts, &st));
            let p = f.retry.pop_front().expect("scheduled again");
            assert_eq!(p.attempts, attempt);
            assert!(Arc::ptr_eq(&p.msg, &msg));
            f.in_flight(&p.msg, p.attempts);
        }
        // The third refusal is one too many.
        assert!(!f.on_report(refused(), Arc::clone(&msg), &opts, &st));
        let gap = f.retry.pop_front().expect("gap notice");
        let Message::Gap(g) = &gap.msg.msg else {
            panic!("expected a gap notice")
        };
        assert_eq!(g.reason, GapReason::PublishFailed);
        assert_eq!((g.missing_from, g.missing_to), (Some(8), Some(8)));
        // Three re-produces (the timeout is one), one message given up.
        assert_eq!((get(&st.retries), get(&st.failed)), (3, 1));
        // The other message never failed and carries no count.
        assert!(f.attempts.is_empty());
        assert!(f.on_report(Ok(()), other, &opts, &st));
        assert_eq!(f.inflight, 0);
    }
}
