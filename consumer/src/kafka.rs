//! Kafka consumer-group reader with at-least-once offsets and replay.
//!
//! The pattern is rust-rdkafka's at-least-once one: `enable.auto.offset.store`
//! is off, and an offset is *stored* only after the handler wrote the
//! message; stored offsets are *committed* every `--commit-interval`, when
//! partitions are revoked in a rebalance (before another member takes them
//! over) and at shutdown. A crash therefore re-reads at most what was handled
//! since the last commit, and never skips anything.
//!
//! Replay is applied in the rebalance callback: the first time this process
//! is assigned a partition, the assignment carries the replay offset instead
//! of the committed one. Later assignments of the same partition (after
//! another rebalance) resume from the committed offset, which by then is
//! this process's own progress. `--no-commit` skips the group protocol
//! entirely and assigns every partition directly.
//!
//! A topic deleted while it is read stops the reader with
//! [`Error::TopicDeleted`] once the brokers' metadata confirms it is gone
//! (the receive error is counted first).
//!
//! Beside the reader, a [`LagSampler`] measures the group's committed lag
//! from the brokers on the stats interval, and once more after the final
//! commit.

use crate::consumer::{Assignment, ConsumerConfig, OffsetReset};
use crate::events::DecodeFailed;
use crate::handler::{FailConfig, HandleError, Handler};
use crate::lag::LagSampler;
use crate::output::Meta;
use crate::replay::StartAt;
use crate::stats::Summary;
use crate::worker::Idle;
use crate::{Error, Result};
use chrono::Utc;
use futures::FutureExt;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message as _};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use rdkafka::ClientContext;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tickbridge_broker::events::{KafkaReceiveError, Scope};
use tickbridge_broker::kafka::commit_stored;
use tickbridge_broker::kafka::KafkaConfig;
use tickbridge_model::telemetry::InternalEvent;
use tickbridge_model::{schema, Shutdown};

/// The `role` label of the Kafka reader's metrics.
pub(crate) const ROLE: &str = "kafka";
/// How long a reader that got `UNKNOWN_TOPIC_OR_PART` for its topic waits
/// for the metadata answer that tells whether the topic was deleted.
const TOPIC_RECHECK: Duration = Duration::from_secs(5);

/// Client context: applies replay offsets on assignment, commits on revoke,
/// and keeps the per-partition lag librdkafka reports in its statistics.
struct Ctx {
    topic: String,
    /// Replay offsets not yet applied, by partition.
    replay: Mutex<HashMap<i32, Offset>>,
    commit: bool,
    lag: Arc<Mutex<BTreeMap<i32, i64>>>,
    /// Partitions owned, shared with whoever holds the config's clone.
    assignment: Assignment,
}

impl ClientContext for Ctx {
    fn stats(&self, s: Statistics) {
        let Some(t) = s.topics.get(&self.topic) else {
            return;
        };
        let mut lag_map = self.lag.lock().unwrap_or_else(|e| e.into_inner());
        lag_map.clear();
        for (p, part) in &t.partitions {
            // hi - app_offset is what this reader has yet to read; librdkafka's
            // consumer_lag is against the *committed* offset and is -1 for a
            // --no-commit reader.
            let lag = if part.hi_offset >= 0 && part.app_offset >= 0 {
                (part.hi_offset - part.app_offset).max(0)
            } else {
                part.consumer_lag
            };
            if *p >= 0 && lag >= 0 {
                lag_map.insert(*p, lag);
            }
        }
    }
}

impl ConsumerContext for Ctx {
    fn rebalance(&self, c: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let cooperative = matches!(
            c.rebalance_protocol(),
            rdkafka::consumer::RebalanceProtocol::Cooperative
        );
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let mut replay = self.replay.lock().unwrap_or_else(|e| e.into_inner());
                let parts: Vec<(String, i32)> = tpl
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_string(), e.partition()))
                    .collect();
                for (topic, p) in &parts {
                    if let Some(off) = replay.remove(p) {
                        tracing::info!(partition = p, offset = ?off, "replaying partition");
                        let _ = tpl.set_partition_offset(topic, *p, off);
                    }
                }
                let ids: Vec<i32> = parts.iter().map(|x| x.1).collect();
                tracing::info!(partitions = ?ids, "partitions assigned");
                let r = if cooperative {
                    c.incremental_assign(tpl)
                } else {
                    c.assign(tpl)
                };
                match r {
                    Ok(()) => self.assignment.add(&ids),
                    Err(e) => tracing::error!(error = %e, "assign failed"),
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                if self.commit && !c.assignment_lost() {
                    commit_stored(c, CommitMode::Sync, Scope::Consumer(ROLE), "revoke");
                }
                let parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                tracing::info!(partitions = ?parts, "partitions revoked");
                let r = if cooperative {
                    c.incremental_unassign(tpl)
                } else {
                    c.unassign()
                };
                self.assignment.remove(&parts);
                if let Err(e) = r {
                    tracing::error!(error = %e, "unassign failed");
                }
            }
            other => {
                tracing::error!(error = ?other, "rebalance error");
                let _ = c.unassign();
                self.assignment.clear();
            }
        }
    }
}

/// Runs the Kafka reader; see the module docs.
pub async fn run(cfg: &ConsumerConfig, shutdown: Shutdown) -> Result<Summary> {
    let mut reader = Reader::open(cfg, &shutdown).await?;
    let result = reader.read(&shutdown).await;
    reader.finish(result).await
}

/// A Kafka reader from the moment its consumer is subscribed (or assigned):
/// what the read loop and the final commit share. [`run`] takes it through
/// [`Reader::open`], [`Reader::read`] and [`Reader::finish`].
struct Reader<'a> {
    cfg: &'a ConsumerConfig,
    name: String,
    consumer: StreamConsumer<Ctx>,
    handler: Handler,
    /// Per-partition lag from librdkafka's statistics (see [`Ctx`]).
    lag: Arc<Mutex<BTreeMap<i32, i64>>>,
    group_lag: Option<LagSampler>,
    commit_enabled: bool,
    /// Highest offset handled per partition: anything at or below it is a
    /// re-read.
    max_offset: HashMap<i32, i64>,
}

/// The consumer's librdkafka settings: the brokers' from [`KafkaConfig`],
/// plus the group, manual offset store (see the module docs) and timings.
fn client_config(cfg: &ConsumerConfig, name: &str) -> rdkafka::ClientConfig {
    let mut c = cfg.kafka.client_config();
    c.set("group.id", &cfg.group)
        .set("client.id", name)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set(
            "auto.offset.reset",
            match cfg.offset_reset {
                OffsetReset::Earliest => "earliest",
                OffsetReset::Latest => "latest",
            },
        )
        .set(
            "session.timeout.ms",
            cfg.session_timeout.as_millis().to_string(),
        )
        .set(
            "heartbeat.interval.ms",
            (cfg.session_timeout.as_millis() / 5).max(100).to_string(),
        )
        .set(
            "fetch.wait.max.ms",
            cfg.fetch_wait.as_millis().max(1).to_string(),
        )
        .set(
            "statistics.interval.ms",
            cfg.common
                .stats_interval
                .as_millis()
                .clamp(1000, 60_000)
                .to_string(),
        );
    c
}

impl<'a> Reader<'a> {
    /// Startup: checks the brokers and the topic, resolves replay offsets,
    /// creates the consumer and joins the group (or, with `--no-commit`,
    /// assigns every partition), so a wrong broker, topic or replay start
    /// fails before anything is read.
    async fn open(cfg: &'a ConsumerConfig, shutdown: &Shutdown) -> Result<Reader<'a>> {
        let name = cfg.common.instance_name("consumer");
        let k = &cfg.kafka;
        // An unreachable broker is its own error, not "no such topic".
        k.ping(cfg.topic_wait).await?;
        let partitions = k
            .wait_for_topic(&k.topic, cfg.topic_wait)
            .await
            .map_err(|_| Error::UnknownTopic {
                topic: k.topic.clone(),
                brokers: k.brokers.clone(),
            })?;
        let now = Utc::now();
        let start = cfg.replay_from.as_ref().map(|r| r.resolve(now));
        let replay = match &start {
            Some(s) => resolve_offsets(k, s, partitions).await?,
            None => HashMap::new(),
        };
        let commit_enabled = !cfg.no_commit;
        let lag = Arc::new(Mutex::new(BTreeMap::new()));
        let ctx = Ctx {
            topic: k.topic.clone(),
            replay: Mutex::new(replay.clone()),
            commit: commit_enabled,
            lag: lag.clone(),
            assignment: cfg.assignment.clone(),
        };
        let consumer: StreamConsumer<Ctx> = k
            .finish(client_config(cfg, &name))
            .create_with_context(ctx)?;
        if commit_enabled {
            consumer.subscribe(&[&k.topic])?;
        } else {
            let mut tpl = TopicPartitionList::new();
            for p in 0..partitions {
                tpl.add_partition_offset(
                    &k.topic,
                    p,
                    replay.get(&p).copied().unwrap_or(Offset::Stored),
                )?;
            }
            consumer.assign(&tpl)?;
            cfg.assignment.add(&(0..partitions).collect::<Vec<_>>());
        }
        tracing::info!(%name, topic = %k.topic, group = %cfg.group, partitions, replay_from = ?cfg.replay_from.as_ref().map(|r| r.to_string()), commit = commit_enabled, brokers = %k.brokers, "consumer reading Kafka");

        let handler = Handler::new(ROLE, "kafka", &name, &cfg.common, FailConfig::default())?;
        // The group's lag from the brokers, off the message path; a read-only
        // reader is not in the group, so its lag is not this reader's.
        let group_lag = if commit_enabled {
            Some(LagSampler::start(
                k,
                &cfg.group,
                cfg.common.stats_interval,
                shutdown,
            )?)
        } else {
            None
        };
        Ok(Reader {
            cfg,
            name,
            consumer,
            handler,
            lag,
            group_lag,
            commit_enabled,
            max_offset: HashMap::new(),
        })
    }

    /// The read loop: records, interval commits, the stats line and the idle
    /// check, until shutdown, `--exit-when-idle`, or an error that ends the
    /// reader.
    async fn read(&mut self, shutdown: &Shutdown) -> Result<()> {
        let cfg = self.cfg;
        let mut stats_tick = tokio::time::interval(cfg.common.stats_interval);
        stats_tick.tick().await;
        let mut commit_tick = tokio::time::interval(cfg.commit_interval);
        let mut idle = Idle::new(cfg.common.exit_when_idle);
        let mut idle_tick = tokio::time::interval(idle.check_every());
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Ok(()),
                // The timers come before the records: with `biased`, a reader
                // that always has a record ready (a backlog) would otherwise
                // never commit, report or notice idleness until it caught up.
                _ = commit_tick.tick(), if self.commit_enabled => commit_stored(&self.consumer, CommitMode::Async, Scope::Consumer(ROLE), "interval"),
                _ = stats_tick.tick() => self.log_stats(),
                _ = idle_tick.tick() => if idle.expired() {
                    tracing::info!(name = %self.name, "no messages for a while, exiting (--exit-when-idle)");
                    return Ok(());
                },
                m = self.consumer.recv() => {
                    if m.is_ok() {
                        idle.activity();
                    }
                    received(&self.consumer, &mut self.handler, m, &mut self.max_offset, self.commit_enabled, &cfg.kafka).await?;
                    self.take_fetched().await?;
                    // librdkafka's queue is not a tokio resource: while a
                    // backlog keeps `recv` ready this task would never yield,
                    // and the timers above would never fire (no commits until
                    // the backlog drained). Counting each batch against
                    // tokio's budget makes it yield now and then.
                    tokio::task::consume_budget().await;
                }
            }
        }
    }

    /// Records librdkafka has already fetched are handled here,
    /// up to BATCH of them, without going back through the
    /// `select!`: its shutdown, timers and idle check are polled
    /// once per batch instead of once per record.
    async fn take_fetched(&mut self) -> Result<()> {
        for _ in 0..BATCH {
            let Some(m) = self.consumer.recv().now_or_never() else {
                break;
            };
            received(
                &self.consumer,
                &mut self.handler,
                m,
                &mut self.max_offset,
                self.commit_enabled,
                &self.cfg.kafka,
            )
            .await?;
        }
        Ok(())
    }

    /// The stats interval's report, with the lag librdkafka and the group
    /// sampler last measured.
    fn log_stats(&mut self) {
        self.handler
            .stats
            .set_lag(self.lag.lock().unwrap_or_else(|e| e.into_inner()).clone());
        if let Some(g) = &self.group_lag {
            self.handler.stats.set_group_lag(g.current());
        }
        self.handler.stats.log_report();
    }

    /// Whatever ended the loop: commits what was handled, takes the final
    /// lag, reports, and closes the consumer; then `result` decides the
    /// outcome.
    async fn finish(self, result: Result<()>) -> Result<Summary> {
        let Reader {
            cfg,
            consumer,
            mut handler,
            lag,
            group_lag,
            commit_enabled,
            ..
        } = self;
        if commit_enabled {
            commit_stored(
                &consumer,
                CommitMode::Sync,
                Scope::Consumer(ROLE),
                "shutdown",
            );
        }
        // After the final commit, so a drained group ends at lag 0.
        if let Some(g) = group_lag {
            handler.stats.set_group_lag(g.finish().await);
        }
        handler
            .stats
            .set_lag(lag.lock().unwrap_or_else(|e| e.into_inner()).clone());
        handler.stats.log_report();
        drop(consumer);
        // Closed: whatever the last rebalance left, this process owns nothing.
        cfg.assignment.clear();
        result.map(|()| handler.stats.summary())
    }
}

/// Records handled per pass of the read loop, beyond the one that woke it.
const BATCH: usize = 64;

/// One result of `recv`: a record is processed; a receive error is counted,
/// and ends the reader when it means the topic is gone or not ours to read.
async fn received(
    consumer: &StreamConsumer<Ctx>,
    handler: &mut Handler,
    m: std::result::Result<BorrowedMessage<'_>, KafkaError>,
    max_offset: &mut HashMap<i32, i64>,
    store: bool,
    k: &KafkaConfig,
) -> Result<()> {
    let e = match m {
        Ok(m) => return process(consumer, handler, &m, max_offset, store),
        Err(e) => e,
    };
    KafkaReceiveError {
        scope: Scope::Consumer(ROLE),
        error: &e,
    }
    .emit();
    let code = e.rdkafka_error_code();
    // The topic existed at startup: if a broker answers without it, it was
    // deleted under us; if it is still listed, or no broker answers (a
    // restart), the error was transient and librdkafka carries on.
    if matches!(
        code,
        Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic)
    ) && matches!(k.topic_partitions(&k.topic, TOPIC_RECHECK).await, Ok(None))
    {
        return Err(Error::TopicDeleted {
            topic: k.topic.clone(),
            brokers: k.brokers.clone(),
            handled: handler.stats.handled(),
        });
    }
    if matches!(
        code,
        Some(
            RDKafkaErrorCode::TopicAuthorizationFailed | RDKafkaErrorCode::GroupAuthorizationFailed
        )
    ) {
        return Err(Error::UnknownTopic {
            topic: k.topic.clone(),
            brokers: k.brokers.clone(),
        });
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok(())
}

/// Decode → handle → store the offset. A body that does not decode is
/// counted and skipped (its offset stored), so it cannot block the partition.
fn process(
    consumer: &StreamConsumer<Ctx>,
    handler: &mut Handler,
    m: &BorrowedMessage<'_>,
    max_offset: &mut HashMap<i32, i64>,
    store: bool,
) -> Result<()> {
    let (p, off) = (m.partition(), m.offset());
    let seen = max_offset.entry(p).or_insert(-1);
    let reread = off <= *seen;
    *seen = (*seen).max(off);
    let body = m.payload().unwrap_or_default();
    match schema::decode(body) {
        Ok(msg) => {
            handler.stats.received(reread, msg.as_ref().id());
            let meta = Meta {
                redelivered: reread,
                retries: 0,
                partition: Some(p),
                offset: Some(off),
            };
            match handler.handle(&msg, &meta) {
                Ok(()) => {}
                Err(HandleError::Fatal(e)) => return Err(e),
                Err(HandleError::Message(reason)) => {
                    // No retry queue on a log, and storing any later offset
                    // would commit past this one: stop, and let the group
                    // re-read it from the last commit.
                    return Err(Error::Handler {
                        position: format!("p{p}@{off}"),
                        reason,
                    });
                }
            }
        }
        Err(e) => {
            let position = format!("p{p}@{off}");
            handler.stats.received(false, &position);
            DecodeFailed {
                role: ROLE,
                error: &e,
                position: &position,
            }
            .emit();
            handler.stats.decode_error(e.kind());
        }
    }
    if store {
        // The legacy store API adds 1 itself: this stores "next is off + 1".
        consumer.store_offset_from_message(m)?;
    }
    Ok(())
}

/// Turns a replay start into a concrete offset per partition, asking the
/// brokers for watermarks (to clamp explicit offsets into the retained
/// range, instead of letting `auto.offset.reset` silently jump) and for
/// `offsets_for_times`.
async fn resolve_offsets(
    k: &KafkaConfig,
    start: &StartAt,
    partitions: i32,
) -> Result<HashMap<i32, Offset>> {
    let k = k.clone();
    let start = start.clone();
    tokio::task::spawn_blocking(move || -> Result<HashMap<i32, Offset>> {
        let timeout = Duration::from_secs(10);
        let base: BaseConsumer = k.finish(k.client_config()).create()?;
        let topic = k.topic.as_str();
        let clamp = |p: i32, n: i64| -> Result<Offset> {
            let (lo, hi) = base.fetch_watermarks(topic, p, timeout)?;
            Ok(Offset::Offset(n.clamp(lo, hi)))
        };
        let mut out = HashMap::new();
        match &start {
            StartAt::Earliest => (0..partitions).for_each(|p| {
                out.insert(p, Offset::Beginning);
            }),
            StartAt::Latest => (0..partitions).for_each(|p| {
                out.insert(p, Offset::End);
            }),
            StartAt::Offset(n) => {
                for p in 0..partitions {
                    out.insert(p, clamp(p, *n)?);
                }
            }
            StartAt::Partitions(m) => {
                for (p, n) in m {
                    if *p < 0 || *p >= partitions {
                        return Err(Error::Config(format!(
                            "--replay-from names partition {p}, but topic {topic:?} has partitions 0..{}",
                            partitions - 1
                        )));
                    }
                    out.insert(*p, clamp(*p, *n)?);
                }
            }
            StartAt::Timestamp(t) => {
                let mut tpl = TopicPartitionList::new();
                for p in 0..partitions {
                    tpl.add_partition_offset(topic, p, Offset::Offset(t.timestamp_millis()))?;
                }
                let found = base.offsets_for_times(tpl, timeout)?;
                for e in found.elements() {
                    let off = match e.offset() {
                        Offset::Offset(n) if n >= 0 => Offset::Offset(n),
                        // No message at or after the instant: start at the end.
                        _ => Offset::End,
                    };
                    out.insert(e.partition(), off);
                }
            }
        }
        Ok(out)
    })
    .await
    .map_err(|e| Error::Config(format!("offset lookup task failed: {e}")))?
}
