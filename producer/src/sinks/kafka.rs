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
use futures::stream::FuturesOrdered;
use futures::{FutureExt, StreamExt};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tickbridge_core::kafka::KafkaConfig;
use tickbridge_core::{headers, Shutdown};

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

/// Builds the idempotent producer. The `--kafka-option` passthrough is
/// applied last.
pub fn producer(
    cfg: &KafkaConfig,
    opts: &KafkaSinkOptions,
) -> tickbridge_core::Result<FutureProducer> {
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
    Ok(cfg.finish(c).create()?)
}

type DeliveryFut = futures::future::BoxFuture<'static, (Result<(), KafkaError>, Pending)>;

/// Runs until the buffer is closed and every delivery report is in, or until
/// `hard_stop`. Returns the number of messages left unconfirmed.
pub async fn run(
    topic: String,
    opts: KafkaSinkOptions,
    producer: FutureProducer,
    buffer: Arc<Buffer>,
    stats: Arc<crate::stats::Stats>,
    hard_stop: Shutdown,
) -> u64 {
    let st: &SinkStats = &stats.kafka;
    add(&st.connects, 1);
    let mut retry: VecDeque<Pending> = VecDeque::new();
    let mut inflight: FuturesOrdered<DeliveryFut> = FuturesOrdered::new();
    let mut batch = Vec::with_capacity(opts.window);
    let mut drained = false;
    let mut queue_full = false;
    let result = loop {
        st.in_flight.store(inflight.len() as u64, Relaxed);
        while !queue_full && inflight.len() < opts.window {
            let Some(p) = retry.pop_front() else { break };
            queue_full = !produce(&producer, &topic, p, &mut inflight, &mut retry, st);
        }
        if drained && inflight.is_empty() && retry.is_empty() {
            break 0;
        }
        let room = if queue_full {
            0
        } else {
            opts.window.saturating_sub(inflight.len())
        };
        tokio::select! {
            biased;
            _ = hard_stop.cancelled() => break (inflight.len() + retry.len() + buffer.len()) as u64,
            Some((res, mut p)) = inflight.next(), if !inflight.is_empty() => {
                queue_full = false;
                match res {
                    Ok(()) => add(&st.confirmed, 1),
                    Err(e) => {
                        let timeout = matches!(e.rdkafka_error_code(), Some(RDKafkaErrorCode::MessageTimedOut));
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
            // With a full local queue, wait a moment for reports to drain it.
            _ = tokio::time::sleep(Duration::from_millis(5)), if queue_full && inflight.is_empty() => {
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
    let p2 = producer.clone();
    let _ = tokio::task::spawn_blocking(move || p2.flush(Duration::from_secs(5))).await;
    st.in_flight.store(0, Relaxed);
    result
}

/// Hands one message to librdkafka. Returns `false` when its local queue is
/// full (the message goes back to the retry queue).
fn produce(
    producer: &FutureProducer,
    topic: &str,
    p: Pending,
    inflight: &mut FuturesOrdered<DeliveryFut>,
    retry: &mut VecDeque<Pending>,
    st: &SinkStats,
) -> bool {
    let msg = p.msg.view();
    let record = FutureRecord::to(topic)
        .key(msg.symbol())
        .payload(&p.msg.body)
        .headers(headers::kafka_headers(msg))
        .timestamp(msg.timestamp().timestamp_millis());
    match producer.send_result(record) {
        Ok(fut) => {
            add(&st.published, 1);
            inflight.push_back(
                async move {
                    let r = match fut.await {
                        Ok(Ok(_)) => Ok(()),
                        Ok(Err((e, _))) => Err(e),
                        Err(_) => Err(KafkaError::Canceled),
                    };
                    (r, p)
                }
                .boxed(),
            );
            true
        }
        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
            retry.push_front(p);
            false
        }
        Err((e, _)) => {
            let mut p = p;
            p.attempts += 1;
            if let Some(gap) = give_up(&p, st, SINK, &e.to_string()) {
                retry.push_front(gap);
            }
            true
        }
    }
}
