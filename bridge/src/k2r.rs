//! `bridge kafka-to-rabbitmq`: consume a topic in a group, publish to an
//! exchange, store an offset only after RabbitMQ confirmed it.
//!
//! * The consumer runs with `enable.auto.offset.store=false` and
//!   `enable.auto.commit=false` (rust-rdkafka's at-least-once pattern).
//! * Every record is validated, then published `mandatory` and persistent on
//!   a confirm channel, with up to `--confirm-window` confirms outstanding.
//! * Confirms complete out of order across partitions; [`OffsetTracker`]
//!   stores, per partition, only the highest offset below which everything
//!   is confirmed. Stored offsets are committed every `--commit-interval`,
//!   before a rebalance revokes partitions, and at shutdown.
//! * A return (unroutable) is published to `--unroutable-exchange` (default:
//!   the dead-letter exchange) with the reason in `tb-error`; poison records
//!   go to the dead-letter exchange. Either way the offset is stored only
//!   after that copy is confirmed.
//! * A nack re-publishes (up to `--publish-retries`); a broken channel ends
//!   the session: offsets confirmed so far are committed, and the next
//!   session re-reads from there (duplicates, never loss).
//! * Records carrying our own `tb-origin` (they came from RabbitMQ through a
//!   bridge) are skipped, their offsets stored: no ping-pong.
//! * Every receive error is counted; a topic deleted while it is read (gone
//!   from the metadata after an `UNKNOWN_TOPIC_OR_PART`) ends the run with
//!   [`Error::TopicDeleted`].

use crate::config::{K2rArgs, KeyFrom, OffsetReset, Shared};
use crate::events::{self, Bridged, Consumed, Duplicate, Retried, SkippedOwn, K2R};
use crate::mapping::{
    amqp_properties_from_kafka, dead_letter_properties, kafka_header, raw_properties_from_kafka,
};
use crate::rabbit::{bounded, confirm_channel, park};
use crate::stats::DirStats;
use crate::tracker::OffsetTracker;
use crate::{Error, Result};
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Channel, Confirmation};
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::message::{Message as _, OwnedMessage};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tickbridge_broker::amqp::close_connection;
use tickbridge_broker::amqp::Topology;
use tickbridge_broker::dedup::DedupWindow;
use tickbridge_broker::events::{DeadLettered, KafkaReceiveError, Scope};
use tickbridge_broker::headers;
use tickbridge_broker::kafka::commit_stored;
use tickbridge_model::telemetry::InternalEvent;
use tickbridge_model::{schema, Shutdown};

/// How long the bridge waits, after an `UNKNOWN_TOPIC_OR_PART`, for the
/// metadata answer that tells whether its topic was deleted.
const TOPIC_RECHECK: Duration = Duration::from_secs(5);

/// Client context: keeps the lag from librdkafka's statistics and commits
/// stored offsets before partitions are revoked.
pub struct Ctx {
    topic: String,
    stats: Arc<crate::stats::Stats>,
}

impl ClientContext for Ctx {
    fn stats(&self, s: Statistics) {
        let Some(t) = s.topics.get(&self.topic) else {
            return;
        };
        // High watermark minus our position: what this member has yet to read.
        let lag: i64 = t
            .partitions
            .iter()
            .filter(|(p, part)| **p >= 0 && part.hi_offset >= 0 && part.app_offset >= 0)
            .map(|(_, part)| (part.hi_offset - part.app_offset).max(0))
            .sum();
        self.stats.k2r.lag.store(lag, Relaxed);
    }
}

impl ConsumerContext for Ctx {
    fn pre_rebalance(&self, c: &BaseConsumer<Self>, r: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = r {
            let lost = c.assignment_lost();
            tracing::info!(direction = K2R, partitions = ?partitions(tpl), lost, "partitions revoked");
            if !lost {
                commit_stored(c, CommitMode::Sync, Scope::Bridge(K2R), "revoke");
            }
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, r: &Rebalance<'_>) {
        match r {
            Rebalance::Assign(tpl) => {
                tracing::info!(direction = K2R, partitions = ?partitions(tpl), "partitions assigned")
            }
            Rebalance::Error(e) => tracing::warn!(direction = K2R, error = %e, "rebalance failed"),
            Rebalance::Revoke(_) => {}
        }
    }
}

/// Partition numbers of a rebalance, for its log line.
fn partitions(tpl: &rdkafka::TopicPartitionList) -> Vec<i32> {
    tpl.elements().iter().map(|e| e.partition()).collect()
}

/// Everything a session needs that outlives it.
pub struct K2r<'a> {
    /// Shared flags.
    pub shared: &'a Shared,
    /// This direction's flags.
    pub args: &'a K2rArgs,
    /// All counters (the context writes the lag).
    pub all: Arc<crate::stats::Stats>,
    /// Instance name.
    pub name: String,
    /// Exchange published to.
    pub exchange: String,
    /// Dead-letter exchange (poison records).
    pub dlx: String,
    /// Where returns go.
    pub unroutable: String,
    /// Duplicate counter.
    pub ids: DedupWindow,
}

/// One record on its way to RabbitMQ.
struct Out {
    partition: i32,
    offset: i64,
    id: String,
    routing_key: String,
    body: Vec<u8>,
    props: BasicProperties,
    attempts: u32,
}

type Confirm = BoxFuture<'static, (Out, std::result::Result<Confirmation, lapin::Error>)>;

impl K2r<'_> {
    fn stats(&self) -> &DirStats {
        &self.all.k2r
    }

    fn consumer(&self) -> Result<StreamConsumer<Ctx>> {
        let k = &self.shared.kafka;
        let a = self.args;
        let mut c = k.client_config();
        c.set("group.id", &a.group)
            .set("client.id", &self.name)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set(
                "auto.offset.reset",
                match a.offset_reset {
                    OffsetReset::Earliest => "earliest",
                    OffsetReset::Latest => "latest",
                },
            )
            .set(
                "session.timeout.ms",
                a.session_timeout.as_millis().to_string(),
            )
            .set(
                "heartbeat.interval.ms",
                (a.session_timeout.as_millis() / 5).max(100).to_string(),
            )
            .set("fetch.wait.max.ms", "10")
            .set(
                "statistics.interval.ms",
                self.shared
                    .stats_interval
                    .as_millis()
                    .clamp(1000, 60_000)
                    .to_string(),
            );
        let ctx = Ctx {
            topic: k.topic.clone(),
            stats: self.all.clone(),
        };
        let consumer: StreamConsumer<Ctx> = k.finish(c).create_with_context(ctx)?;
        consumer.subscribe(&[&k.topic])?;
        Ok(consumer)
    }

    /// One connection's worth of bridging. `Ok` after a graceful drain.
    pub async fn session(&mut self, shutdown: &Shutdown) -> Result<()> {
        let conn = self.shared.amqp.connect(&self.name).await?;
        let ch = confirm_channel(&conn).await?;
        let dl = confirm_channel(&conn).await?;
        let consumer = self.consumer()?;
        let topic = self.shared.kafka.topic.clone();
        tracing::info!(direction = K2R, topic = %topic, group = %self.args.group, exchange = %self.exchange, window = self.args.confirm_window, url = %self.shared.amqp.masked_url(), "bridging Kafka → RabbitMQ");

        let mut tracker = OffsetTracker::default();
        let mut inflight: FuturesUnordered<Confirm> = FuturesUnordered::new();
        let mut commit_tick = tokio::time::interval(self.args.commit_interval);
        let mut gauge_tick = tokio::time::interval(Duration::from_secs(1));
        let mut draining = false;
        let drain_deadline = tokio::time::sleep(Duration::from_secs(86_400 * 365));
        tokio::pin!(drain_deadline);
        let window = self.args.confirm_window;

        let result: Result<()> = loop {
            self.stats().in_flight.store(inflight.len() as u64, Relaxed);
            if draining && inflight.is_empty() {
                break Ok(());
            }
            tokio::select! {
                biased;
                _ = shutdown.cancelled(), if !draining => {
                    draining = true;
                    drain_deadline.as_mut().reset(tokio::time::Instant::now() + self.shared.drain_timeout);
                    tracing::info!(direction = K2R, in_flight = inflight.len(), "draining: waiting for RabbitMQ confirms");
                }
                _ = &mut drain_deadline, if draining => {
                    tracing::warn!(direction = K2R, in_flight = inflight.len(), "drain timeout: unconfirmed records stay uncommitted and will be re-read");
                    break Ok(());
                }
                // The timers come before confirms and records: with
                // `biased`, a backlog that always has one ready would
                // otherwise hold off every commit until it drained.
                _ = commit_tick.tick() => commit_stored(&consumer, CommitMode::Async, Scope::Bridge(K2R), "interval"),
                _ = gauge_tick.tick() => {
                    // An idle session would otherwise notice a dead
                    // connection only at its next publish.
                    if !conn.status().connected() {
                        break Err(crate::r2k::lost());
                    }
                    events::publish_gauges(K2R, self.stats());
                }
                Some((out, res)) = inflight.next(), if !inflight.is_empty() => {
                    if let Err(e) = bounded("confirm", self.on_confirm(out, res, &ch, &dl, &mut tracker, &mut inflight)).await {
                        break Err(e);
                    }
                }
                m = consumer.recv(), if !draining && inflight.len() < window => match m {
                    Ok(m) => {
                        let m = m.detach();
                        if let Err(e) = bounded("publish", self.on_record(m, &ch, &dl, &mut tracker, &mut inflight)).await {
                            break Err(e);
                        }
                        // librdkafka's queue is not a tokio resource: with a
                        // backlog `recv` is always ready, and without a
                        // yield now and then the commit timer would wait
                        // for the backlog to drain.
                        tokio::task::consume_budget().await;
                    }
                    Err(e) => {
                        KafkaReceiveError {
                            scope: Scope::Bridge(K2R),
                            error: &e,
                        }.emit();
                        let code = e.rdkafka_error_code();
                        // The topic was there when the run started: a
                        // metadata answer without it means deleted; still
                        // listed, or no answer (a broker restart), means the
                        // error was transient.
                        if matches!(code, Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic))
                            && matches!(self.shared.kafka.topic_partitions(&topic, TOPIC_RECHECK).await, Ok(None))
                        {
                            break Err(Error::TopicDeleted { topic: topic.clone(), brokers: self.shared.kafka.brokers.clone() });
                        }
                        if matches!(code, Some(RDKafkaErrorCode::TopicAuthorizationFailed | RDKafkaErrorCode::GroupAuthorizationFailed)) {
                            break Err(Error::Config(format!("Kafka refuses topic {topic:?} or group {:?}: {e}", self.args.group)));
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
            for (p, o) in tracker.advance() {
                // The legacy store API stores `o + 1`: "next to read".
                if let Err(e) = consumer.store_offset(&topic, p, o) {
                    // The partition was revoked meanwhile; its new owner
                    // re-reads from the last commit.
                    tracing::debug!(direction = K2R, partition = p, offset = o, error = %e, "offset not stored");
                }
            }
        };
        commit_stored(&consumer, CommitMode::Sync, Scope::Bridge(K2R), "shutdown");
        self.stats().in_flight.store(0, Relaxed);
        drop(consumer);
        close_connection(&conn, "bridge session done").await;
        result
    }

    async fn on_record(
        &mut self,
        m: OwnedMessage,
        ch: &Channel,
        dl: &Channel,
        tracker: &mut OffsetTracker,
        inflight: &mut FuturesUnordered<Confirm>,
    ) -> Result<()> {
        Consumed {
            direction: K2R,
            stats: self.stats(),
        }
        .emit();
        let (p, off) = (m.partition(), m.offset());
        tracker.track(p, off);
        let hdrs = m.headers().map(|h| h.as_borrowed());
        let position = format!("p{p}@{off}");
        let own = self.shared.origin_marker("rabbitmq");
        if kafka_header(hdrs, headers::ORIGIN).as_deref() == Some(own.as_str()) {
            let id = kafka_header(hdrs, headers::ID).unwrap_or(position);
            SkippedOwn {
                direction: K2R,
                stats: self.stats(),
                id: &id,
            }
            .emit();
            tracker.confirm(p, off);
            return Ok(());
        }
        let body = m.payload().unwrap_or_default();
        let msg = match schema::decode(body) {
            Ok(msg) => msg,
            Err(e) => {
                let id = kafka_header(hdrs, headers::ID).unwrap_or_else(|| position.clone());
                let reason = format!(
                    "{}: {e} (Kafka {topic} {position})",
                    e.kind(),
                    topic = self.shared.kafka.topic
                );
                let props = dead_letter_properties(raw_properties_from_kafka(hdrs), &reason);
                let rk = m
                    .key()
                    .map(|k| String::from_utf8_lossy(k).into_owned())
                    .unwrap_or_default();
                park(dl, &self.dlx, &rk, body, props, &id).await?;
                DeadLettered {
                    scope: Scope::Bridge(K2R),
                    tally: Some(&self.stats().dead_lettered),
                    id: &id,
                    kind: e.kind(),
                    reason: &reason,
                }
                .emit();
                tracker.confirm(p, off);
                return Ok(());
            }
        };
        let r = msg.as_ref();
        if self.ids.seen(r.id()) {
            Duplicate {
                direction: K2R,
                stats: self.stats(),
                id: r.id(),
            }
            .emit();
        }
        let canonical = || Topology::routing_key(r.source().as_str(), r.symbol());
        let routing_key = match &self.args.routing_key {
            KeyFrom::Key => m
                .key()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .unwrap_or_else(canonical),
            KeyFrom::Header(h) => kafka_header(hdrs, h).unwrap_or_else(canonical),
            KeyFrom::Canonical => canonical(),
        };
        let props = amqp_properties_from_kafka(r, hdrs, &self.shared.origin_marker("kafka"));
        let out = Out {
            partition: p,
            offset: off,
            id: r.id().to_string(),
            routing_key,
            body: body.to_vec(),
            props,
            attempts: 0,
        };
        self.publish(out, ch, inflight).await
    }

    async fn publish(
        &self,
        out: Out,
        ch: &Channel,
        inflight: &mut FuturesUnordered<Confirm>,
    ) -> Result<()> {
        let confirm = ch
            .basic_publish(
                self.exchange.as_str().into(),
                out.routing_key.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                &out.body,
                out.props.clone(),
            )
            .await?;
        inflight.push(async move { (out, confirm.await) }.boxed());
        Ok(())
    }

    async fn on_confirm(
        &mut self,
        mut out: Out,
        res: std::result::Result<Confirmation, lapin::Error>,
        ch: &Channel,
        dl: &Channel,
        tracker: &mut OffsetTracker,
        inflight: &mut FuturesUnordered<Confirm>,
    ) -> Result<()> {
        match res? {
            Confirmation::Ack(None) => {
                Bridged {
                    direction: K2R,
                    stats: self.stats(),
                    count: 1,
                }
                .emit();
                tracker.confirm(out.partition, out.offset);
            }
            Confirmation::Ack(Some(ret)) | Confirmation::Nack(Some(ret)) => {
                let reason = format!(
                    "unroutable: {} {} (exchange {:?}, routing key {:?})",
                    ret.reply_code, ret.reply_text, self.exchange, out.routing_key
                );
                let props = dead_letter_properties(out.props.clone(), &reason);
                park(
                    dl,
                    &self.unroutable,
                    &out.routing_key,
                    &out.body,
                    props,
                    &out.id,
                )
                .await?;
                DeadLettered {
                    scope: Scope::Bridge(K2R),
                    tally: Some(&self.stats().dead_lettered),
                    id: &out.id,
                    kind: "unroutable",
                    reason: &reason,
                }
                .emit();
                tracker.confirm(out.partition, out.offset);
            }
            Confirmation::Nack(None) | Confirmation::NotRequested => {
                out.attempts += 1;
                if out.attempts > self.args.publish_retries {
                    return Err(Error::Refused {
                        id: out.id,
                        attempts: out.attempts,
                        reason: "nacked by the broker".into(),
                    });
                }
                Retried {
                    direction: K2R,
                    stats: self.stats(),
                    id: &out.id,
                    error: "nacked by the broker",
                }
                .emit();
                self.publish(out, ch, inflight).await?;
            }
        }
        Ok(())
    }
}
