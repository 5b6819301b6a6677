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
use crate::stats::{add, SinkStats};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tickbridge_core::kafka::KafkaConfig;
use tickbridge_core::{headers, Shutdown};
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
type Report = (Result<(), KafkaError>, Box<Pending>);

/// librdkafka context that hands each delivery report, with the message it
/// belongs to (carried through librdkafka as the per-message opaque), back
/// to the sink task. One allocation per message, no future per message: the
/// report thread of [`ThreadedProducer`] calls [`ProducerContext::delivery`].
pub struct DeliveryReports {
    tx: mpsc::UnboundedSender<Report>,
}

impl ClientContext for DeliveryReports {}

impl ProducerContext for DeliveryReports {
    type DeliveryOpaque = Box<Pending>;

    fn delivery(&self, result: &DeliveryResult<'_>, pending: Box<Pending>) {
        let verdict = match result {
            Ok(_) => Ok(()),
            Err((e, _)) => Err(e.clone()),
        };
        // The receiver lives as long as the sink task; after it is gone the
        // report has no one left to tell.
        let _ = self.tx.send((verdict, pending));
    }
}

/// The idempotent producer together with its stream of delivery reports.
pub struct KafkaProducer {
    producer: Arc<ThreadedProducer<DeliveryReports>>,
    reports: mpsc::UnboundedReceiver<Report>,
}

/// Builds the idempotent producer. The `--kafka-option` passthrough is
/// applied last.
pub fn producer(
    cfg: &KafkaConfig,
    opts: &KafkaSinkOptions,
) -> tickbridge_core::Result<KafkaProducer> {
    let mut c = cfg.client_config();
    c.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", &opts.compression)
        .set("linger.ms", opts.linger_ms.to_string())
        .set(
            "queue.buffering.max.messages",
            (opts.window.max(1000) * 2).to_string(),
        )
        .set("message.timeout.ms", "60000");
    let (tx, reports) = mpsc::unbounded_channel();
    let producer = Arc::new(cfg.finish(c).create_with_context(DeliveryReports { tx })?);
    Ok(KafkaProducer { producer, reports })
}

impl KafkaProducer {
    /// Fetches `topic`'s metadata through this producer's own client, so
    /// its partition leaders are known before the first tick arrives.
    ///
    /// Without it, librdkafka learns them only when the first message for
    /// the topic is produced; measured against tansu, the first ticks then
    /// waited 0.4 to 0.9 s for their delivery reports while the feed kept
    /// arriving. A failure is only logged: librdkafka fetches the metadata
    /// itself on the first produce.
    pub async fn warm_up(&self, topic: &str, timeout: Duration) {
        let producer = Arc::clone(&self.producer);
        let topic_name = topic.to_string();
        let fetched = tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(Some(&topic_name), timeout)
                .map(|m| m.topics().first().map_or(0, |t| t.partitions().len()))
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
    } = kafka;
    let st: &SinkStats = &stats.kafka;
    add(&st.connects, 1);
    let mut retry: VecDeque<Pending> = VecDeque::new();
    // Handed to librdkafka, report not yet handled.
    let mut inflight: usize = 0;
    let mut batch = Vec::with_capacity(opts.window);
    let mut drained = false;
    let mut queue_full = false;
    let result = loop {
        st.in_flight.store(inflight as u64, Relaxed);
        while !queue_full && inflight < opts.window {
            let Some(p) = retry.pop_front() else { break };
            queue_full = !produce(&producer, &topic, p, &mut inflight, &mut retry, st);
        }
        if drained && inflight == 0 && retry.is_empty() {
            break 0;
        }
        let room = if queue_full {
            0
        } else {
            opts.window.saturating_sub(inflight)
        };
        tokio::select! {
            biased;
            _ = hard_stop.cancelled() => break (inflight + retry.len() + buffer.len()) as u64,
            Some(first) = reports.recv(), if inflight > 0 => {
                queue_full = false;
                let mut next = Some(first);
                // Handle every report already waiting before going round.
                while let Some((res, p)) = next {
                    inflight -= 1;
                    on_report(res, *p, &opts, st, &mut retry);
                    next = reports.try_recv().ok();
                }
            }
            // With a full local queue, wait a moment for reports to drain it.
            _ = tokio::time::sleep(Duration::from_millis(5)), if queue_full && inflight == 0 => {
                queue_full = false;
            }
            _ = buffer.pop_batch(room, &mut batch), if room > 0 && !drained && retry.is_empty() => {
                for n in dropped_notices(&buffer, st, SINK) {
                    retry.push_back(n);
                }
                if batch.is_empty() {
                    drained = true;
                }
                for msg in batch.drain(..) {
                    if queue_full {
                        retry.push_back(Pending::new(msg));
                    } else {
                        queue_full = !produce(&producer, &topic, Pending::new(msg), &mut inflight, &mut retry, st);
                    }
                }
            }
        }
    };
    // librdkafka drops whatever is still queued when the producer is dropped.
    let _ = tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(5))).await;
    st.in_flight.store(0, Relaxed);
    result
}

/// Counts a delivery report, or schedules the message for another attempt
/// (or, after every retry, its replacement gap notice).
fn on_report(
    res: Result<(), KafkaError>,
    mut p: Pending,
    opts: &KafkaSinkOptions,
    st: &SinkStats,
    retry: &mut VecDeque<Pending>,
) {
    match res {
        Ok(()) => add(&st.confirmed, 1),
        Err(e) => {
            let timeout = matches!(
                e.rdkafka_error_code(),
                Some(RDKafkaErrorCode::MessageTimedOut)
            );
            if !timeout {
                p.attempts += 1;
            }
            if p.attempts > opts.retries {
                if let Some(gap) = give_up(&p, st, SINK, &e.to_string()) {
                    retry.push_front(gap);
                }
            } else {
                tracing::warn!(sink = SINK, id = %p.msg.view().id(), attempt = p.attempts, error = %e, "delivery failed; re-producing");
                add(&st.retries, 1);
                retry.push_back(p);
            }
        }
    }
}

/// Hands one message to librdkafka. Returns `false` when its local queue is
/// full (the message goes back to the retry queue).
fn produce(
    producer: &ThreadedProducer<DeliveryReports>,
    topic: &str,
    p: Pending,
    inflight: &mut usize,
    retry: &mut VecDeque<Pending>,
    st: &SinkStats,
) -> bool {
    let p = Box::new(p);
    // The record borrows the message's body and key; librdkafka copies them,
    // while the `Arc` travels with the opaque until the report comes back.
    let msg = Arc::clone(&p.msg);
    let view = msg.view();
    let record = BaseRecord::with_opaque_to(topic, p)
        .key(view.symbol())
        .payload(&msg.body)
        .headers(headers::kafka_headers(view))
        .timestamp(view.timestamp().timestamp_millis());
    match producer.send(record) {
        Ok(()) => {
            add(&st.published, 1);
            *inflight += 1;
            true
        }
        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), record)) => {
            retry.push_front(*record.delivery_opaque);
            false
        }
        Err((e, record)) => {
            let mut p = *record.delivery_opaque;
            p.attempts += 1;
            if let Some(gap) = give_up(&p, st, SINK, &e.to_string()) {
                retry.push_front(gap);
            }
            true
        }
    }
}
