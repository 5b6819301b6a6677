//! `bridge rabbitmq-to-kafka`: consume a queue, produce to a topic, ack only
//! what Kafka confirmed.
//!
//! * The queue is consumed with `basic.qos` prefetch, so at most
//!   `--prefetch` deliveries are unacked at once: that is the in-flight
//!   window, and also the bound on what a crash hands back for redelivery.
//! * Each body is bounded and validated against the schema. Poison (not a
//!   valid tick or gap notice) is published to the dead-letter exchange with
//!   the reason in `tb-error`, confirmed, and only then acked.
//! * A valid message is produced by an idempotent producer (`acks=all`) in
//!   delivery order, keyed by `--kafka-key`. When its delivery report
//!   succeeds the delivery is marked done; a permanent refusal (too large,
//!   invalid) dead-letters it with Kafka's reason; a transient failure
//!   produces it again.
//! * Acks go out with `multiple = true` up to the highest tag below which
//!   every delivery is done ([`AckTracker`]), one frame per batch of reports.
//! * A delivery carrying our own `tb-origin` (it came from Kafka through a
//!   bridge) is acked without being produced: no ping-pong.
//!
//! If the connection or channel fails, the session ends and unacked
//! deliveries return to the queue; the next session receives them flagged
//! `redelivered`, bridges them again (at least once) and counts them.

use crate::config::{KeyFrom, R2kArgs, Shared};
use crate::events::{self, Bridged, Consumed, Duplicate, Retried, SkippedOwn, R2K};
use crate::mapping::{amqp_header, dead_letter_properties, kafka_headers_from_amqp};
use crate::rabbit::{bounded, confirm_channel, park, queue_depth, STEP_TIMEOUT};
use crate::stats::DirStats;
use crate::tracker::AckTracker;
use crate::{Error, Result};
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tickbridge_broker::amqp::close_connection;
use tickbridge_broker::dedup::DedupWindow;
use tickbridge_broker::events::{DeadLettered, Redelivered, Scope};
use tickbridge_broker::headers;
use tickbridge_model::telemetry::InternalEvent;
use tickbridge_model::{schema, Shutdown};

/// Everything a session needs that outlives it.
pub struct R2k<'a> {
    /// Shared flags.
    pub shared: &'a Shared,
    /// This direction's flags.
    pub args: &'a R2kArgs,
    /// Counters.
    pub stats: &'a DirStats,
    /// Instance name.
    pub name: String,
    /// Queue consumed.
    pub queue: String,
    /// Dead-letter exchange.
    pub dlx: String,
    /// The producer, kept across AMQP reconnects.
    pub producer: FutureProducer,
    /// Duplicate counter.
    pub ids: DedupWindow,
}

/// Builds the Kafka producer: idempotent (no duplicates or reordering from
/// librdkafka's own retries), `acks=all`, a local queue larger than any
/// possible in-flight window, the passthrough applied last.
pub fn producer(shared: &Shared, args: &R2kArgs, name: &str) -> Result<FutureProducer> {
    let k = &shared.kafka;
    let mut c = k.client_config();
    c.set("client.id", name)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", &args.compression)
        .set("linger.ms", args.linger.as_millis().to_string())
        .set(
            "queue.buffering.max.messages",
            (usize::from(args.prefetch) * 4).max(100_000).to_string(),
        )
        .set(
            "message.timeout.ms",
            args.delivery_timeout.as_millis().max(1).to_string(),
        );
    Ok(k.finish(c).create()?)
}

/// One message on its way to Kafka.
struct Out {
    tag: u64,
    id: String,
    key: String,
    body: Vec<u8>,
    headers: OwnedHeaders,
    ts_ms: i64,
    routing_key: String,
    props: BasicProperties,
}

type Report = BoxFuture<'static, (Out, std::result::Result<(), KafkaError>)>;

/// Kafka errors that no retry can fix: the message itself is refused.
fn is_permanent(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::InvalidRecord
                | RDKafkaErrorCode::InvalidTimestamp
                | RDKafkaErrorCode::MessageBatchTooLarge
                | RDKafkaErrorCode::InvalidArgument
        )
    )
}

/// Kafka errors that stop the direction: retrying cannot help.
fn is_fatal(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed
                | RDKafkaErrorCode::SaslAuthenticationFailed
        )
    )
}

impl R2k<'_> {
    /// One connection's worth of bridging. `Ok` after a graceful drain.
    pub async fn session(&mut self, shutdown: &Shutdown) -> Result<()> {
        let amqp = &self.shared.amqp;
        let conn = amqp.connect(&self.name).await?;
        let ch = conn.create_channel().await?;
        ch.basic_qos(self.args.prefetch, BasicQosOptions::default())
            .await?;
        let dl = confirm_channel(&conn).await?;
        let tag = format!("{}-r2k", self.name);
        let mut consumer = ch
            .basic_consume(
                self.queue.as_str().into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        tracing::info!(direction = R2K, queue = %self.queue, topic = %self.shared.kafka.topic, prefetch = self.args.prefetch, url = %amqp.masked_url(), "bridging RabbitMQ → Kafka");

        let mut acks = AckTracker::default();
        let mut inflight: FuturesUnordered<Report> = FuturesUnordered::new();
        let mut lag_tick =
            tokio::time::interval(self.shared.stats_interval.min(Duration::from_secs(5)));
        let mut draining = false;
        let drain_deadline = tokio::time::sleep(Duration::from_secs(86_400 * 365));
        tokio::pin!(drain_deadline);

        let result: Result<()> = loop {
            self.stats.in_flight.store(inflight.len() as u64, Relaxed);
            if draining && inflight.is_empty() {
                break Ok(());
            }
            tokio::select! {
                biased;
                _ = shutdown.cancelled(), if !draining => {
                    draining = true;
                    // Stop new deliveries; prefetched ones not yet handled
                    // go back to the queue when the channel closes.
                    let _ = tokio::time::timeout(STEP_TIMEOUT, ch.basic_cancel(tag.as_str().into(), BasicCancelOptions::default())).await;
                    drain_deadline.as_mut().reset(tokio::time::Instant::now() + self.shared.drain_timeout);
                    tracing::info!(direction = R2K, in_flight = inflight.len(), "draining: waiting for Kafka delivery reports");
                }
                _ = &mut drain_deadline, if draining => {
                    tracing::warn!(direction = R2K, in_flight = inflight.len(), "drain timeout: unconfirmed deliveries stay unacked and will be redelivered");
                    break Ok(());
                }
                Some((out, res)) = inflight.next(), if !inflight.is_empty() => {
                    if let Err(e) = bounded("delivery report", self.on_report(out, res, &dl, &mut acks, &mut inflight)).await {
                        break Err(e);
                    }
                }
                d = consumer.next(), if !draining => match d {
                    None => break Err(Error::Cancelled(format!("the broker cancelled the consumer on queue {:?}", self.queue))),
                    Some(Err(e)) => break Err(e.into()),
                    Some(Ok(d)) => {
                        if let Err(e) = bounded("delivery", self.on_delivery(d, &dl, &mut acks, &mut inflight)).await {
                            break Err(e);
                        }
                    }
                },
                _ = lag_tick.tick() => {
                    if !conn.status().connected() {
                        break Err(lost());
                    }
                    // A queue that is briefly NOT_FOUND (its node still
                    // recovering after a restart) is not fatal here: the
                    // consumer itself fails if it is really gone.
                    if let Ok(n) = bounded("queue depth", queue_depth(&conn, &self.queue, amqp)).await {
                        self.stats.lag.store(n as i64, Relaxed);
                    }
                    events::publish_gauges(R2K, self.stats);
                }
            }
            if let Some(t) = acks.take_ack() {
                if let Err(e) = bounded("ack", ack_upto(&ch, t)).await {
                    break Err(e);
                }
            }
        };
        self.stats.in_flight.store(0, Relaxed);
        close_connection(&conn, "bridge session done").await;
        result
    }

    async fn on_delivery(
        &mut self,
        d: Delivery,
        dl: &Channel,
        acks: &mut AckTracker,
        inflight: &mut FuturesUnordered<Report>,
    ) -> Result<()> {
        Consumed {
            direction: R2K,
            stats: self.stats,
        }
        .emit();
        let tag = d.delivery_tag;
        let fallback_id = || {
            d.properties
                .message_id()
                .as_ref()
                .map(|s| s.to_string())
                .unwrap_or_else(|| format!("delivery_tag={tag}"))
        };
        if d.redelivered {
            Redelivered {
                scope: Scope::Bridge(R2K),
                tally: Some(&self.stats.redelivered),
                id: &fallback_id(),
            }
            .emit();
        }
        let own = self.shared.origin_marker("kafka");
        if amqp_header(&d.properties, headers::ORIGIN).as_deref() == Some(own.as_str()) {
            SkippedOwn {
                direction: R2K,
                stats: self.stats,
                id: &fallback_id(),
            }
            .emit();
            acks.complete(tag);
            return Ok(());
        }
        let msg = match schema::decode(&d.data) {
            Ok(m) => m,
            Err(e) => {
                let id = fallback_id();
                let reason = format!("{}: {e}", e.kind());
                let props = dead_letter_properties(d.properties.clone(), &reason);
                park(dl, &self.dlx, d.routing_key.as_str(), &d.data, props, &id).await?;
                DeadLettered {
                    scope: Scope::Bridge(R2K),
                    tally: Some(&self.stats.dead_lettered),
                    id: &id,
                    kind: e.kind(),
                    reason: &reason,
                }
                .emit();
                acks.complete(tag);
                return Ok(());
            }
        };
        let m = msg.as_ref();
        if self.ids.seen(m.id()) {
            Duplicate {
                direction: R2K,
                stats: self.stats,
                id: m.id(),
            }
            .emit();
        }
        let key = match &self.args.kafka_key {
            KeyFrom::Key => d.routing_key.to_string(),
            KeyFrom::Header(h) => {
                amqp_header(&d.properties, h).unwrap_or_else(|| m.symbol().to_string())
            }
            KeyFrom::Canonical => m.symbol().to_string(),
        };
        let out = Out {
            tag,
            id: m.id().to_string(),
            key,
            headers: kafka_headers_from_amqp(
                m,
                &d.properties,
                &self.shared.origin_marker("rabbitmq"),
            ),
            ts_ms: m.timestamp().timestamp_millis(),
            routing_key: d.routing_key.to_string(),
            props: d.properties,
            body: d.data,
        };
        self.produce(out, dl, acks, inflight).await
    }

    /// Hands a message to librdkafka. A full local queue waits for reports
    /// to drain it; an immediate permanent refusal dead-letters it.
    async fn produce(
        &mut self,
        out: Out,
        dl: &Channel,
        acks: &mut AckTracker,
        inflight: &mut FuturesUnordered<Report>,
    ) -> Result<()> {
        loop {
            let record = FutureRecord::to(&self.shared.kafka.topic)
                .key(&out.key)
                .payload(&out.body)
                .headers(out.headers.clone())
                .timestamp(out.ts_ms);
            // The record borrows `out`; only the error leaves this statement.
            let sent = self.producer.send_result(record).map_err(|(e, _)| e);
            match sent {
                Ok(fut) => {
                    inflight.push(
                        async move {
                            let r = match fut.await {
                                Ok(Ok(_)) => Ok(()),
                                Ok(Err((e, _))) => Err(e),
                                Err(_) => Err(KafkaError::Canceled),
                            };
                            (out, r)
                        }
                        .boxed(),
                    );
                    return Ok(());
                }
                Err(KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)) => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(e) => return self.refused(out, e, dl, acks, inflight).await,
            }
        }
    }

    async fn on_report(
        &mut self,
        out: Out,
        res: std::result::Result<(), KafkaError>,
        dl: &Channel,
        acks: &mut AckTracker,
        inflight: &mut FuturesUnordered<Report>,
    ) -> Result<()> {
        match res {
            Ok(()) => {
                Bridged {
                    direction: R2K,
                    stats: self.stats,
                    count: 1,
                }
                .emit();
                acks.complete(out.tag);
                Ok(())
            }
            Err(e) => self.refused(out, e, dl, acks, inflight).await,
        }
    }

    async fn refused(
        &mut self,
        out: Out,
        e: KafkaError,
        dl: &Channel,
        acks: &mut AckTracker,
        inflight: &mut FuturesUnordered<Report>,
    ) -> Result<()> {
        if is_fatal(&e) {
            return Err(Error::Config(format!(
                "Kafka refuses topic {:?}: {e}",
                self.shared.kafka.topic
            )));
        }
        if is_permanent(&e) {
            let reason = format!("kafka_rejected: {e}");
            let props = dead_letter_properties(out.props.clone(), &reason);
            park(dl, &self.dlx, &out.routing_key, &out.body, props, &out.id).await?;
            DeadLettered {
                scope: Scope::Bridge(R2K),
                tally: Some(&self.stats.dead_lettered),
                id: &out.id,
                kind: "kafka_rejected",
                reason: &reason,
            }
            .emit();
            acks.complete(out.tag);
            return Ok(());
        }
        Retried {
            direction: R2K,
            stats: self.stats,
            id: &out.id,
            error: &e.to_string(),
        }
        .emit();
        Box::pin(self.produce(out, dl, acks, inflight)).await
    }

    /// Waits for everything librdkafka still holds (the producer outlives
    /// sessions, so this runs once, at the very end).
    pub async fn flush(&self) {
        let p = self.producer.clone();
        let t = self.shared.drain_timeout;
        let _ = tokio::task::spawn_blocking(move || p.flush(t)).await;
    }
}

/// The error a session ends with when its connection dropped while idle.
pub(crate) fn lost() -> Error {
    Error::Cancelled("the connection to RabbitMQ was lost".into())
}

async fn ack_upto(ch: &Channel, tag: u64) -> Result<()> {
    ch.basic_ack(tag, BasicAckOptions { multiple: true })
        .await
        .map_err(Error::from)
}
