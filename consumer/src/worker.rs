//! `worker`: the RabbitMQ work queue, one-to-one, with acks, retries and a
//! dead-letter queue.
//!
//! Each delivery is decoded, handled, and only then acked. Several workers
//! on the same queue split the messages: the broker hands each message to
//! one consumer and, with `basic.qos` prefetch, never more than `--prefetch`
//! unacked messages to any of them. A worker that dies (even by SIGKILL)
//! leaves its unacked messages to be redelivered to the others, flagged
//! `redelivered`.
//!
//! **Retries** keep their count in the `tb-retries` header instead of
//! relying on `x-death` or quorum-queue delivery counts, whose behaviour
//! changed between RabbitMQ 3.x and 4.x: a failed message is re-published to
//! the work queue with `tb-retries` incremented and `tb-error` set to the last
//! failure, and the original is acked only once the broker has confirmed the
//! copy. A crash between the two therefore duplicates the message, never
//! loses it. If the copy cannot be published, the original is nacked with
//! requeue, the broker's own retry.
//!
//! **Dead letters**: after `--max-retries` retries, or at once for a body
//! that does not decode (it would fail forever), the message is published to
//! the pipeline's dead-letter exchange (`<prefix>.dlx` → `<prefix>.dlq`) with
//! the reason in `tb-error`, then acked. Publishing it ourselves, rather
//! than `basic.reject(requeue=false)`, is what lets the reason travel with it.

use crate::config::CommonArgs;
use crate::events::{AckFailed, DecodeFailed, InFlightReturned, MessageRetried};
use crate::handler::{FailConfig, HandleError, Handler};
use crate::output::Meta;
use crate::stats::{Stats, Summary};
use crate::supervise::Reader;
use crate::{Error, Result};
use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection};
use std::time::{Duration, Instant};
use tickbridge_broker::amqp::{bounded, AmqpConfig, STEP_TIMEOUT};
use tickbridge_broker::events::{DeadLettered, Scope};
use tickbridge_broker::headers;
use tickbridge_model::telemetry::InternalEvent;
use tickbridge_model::{schema, Shutdown};

/// The `role` label of the worker's metrics.
pub const ROLE: &str = "worker";

/// How long a delivery being handled when the shutdown signal fires may
/// still take before the worker stops without it.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Longest the closing handshake (cancel, hand back prefetched messages,
/// close channel and connection) may take at the end of a session.
pub(crate) const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Flags of the `worker` binary.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerConfig {
    /// RabbitMQ connection and resource names.
    #[command(flatten)]
    pub amqp: AmqpConfig,
    /// Queue to consume; defaults to the pipeline's work queue
    /// (`<prefix>.work`). Retries go back to this queue.
    #[arg(long, env = "WORKER_QUEUE")]
    pub queue: Option<String>,
    /// `basic.qos` prefetch: how many unacked messages the broker may push
    /// to this worker at once. Higher is faster; lower spreads work more
    /// evenly and limits what a crash hands back for redelivery.
    #[arg(long, env = "WORKER_PREFETCH", default_value_t = 100)]
    pub prefetch: u16,
    /// Retries of a message whose handler failed before it is dead-lettered.
    /// `0` dead-letters on the first failure.
    #[arg(long, env = "WORKER_MAX_RETRIES", default_value_t = 3)]
    pub max_retries: u32,
    /// Failures on purpose.
    #[command(flatten)]
    pub fail: FailConfig,
    /// Declare the exchange, queues and bindings of `stack/definitions.json`
    /// (renamed by the prefix) before consuming. Without it a missing queue
    /// is an error, so a typo in `--amqp-prefix` never silently creates an
    /// empty pipeline.
    #[arg(long, env = "WORKER_DECLARE_TOPOLOGY")]
    pub declare_topology: bool,
    /// Output, stats and lifecycle.
    #[command(flatten)]
    pub common: CommonArgs,
}

impl WorkerConfig {
    /// A quiet worker on a local broker (tests, benches).
    pub fn local(amqp_url: &str, prefix: &str) -> Self {
        Self {
            amqp: AmqpConfig::local(amqp_url, prefix),
            queue: None,
            prefetch: 100,
            max_retries: 3,
            fail: FailConfig::default(),
            declare_topology: false,
            common: CommonArgs::quiet(),
        }
    }
}

impl Reader for WorkerConfig {
    const BIN: &'static str = "worker";
    fn role(&self) -> &'static str {
        ROLE
    }
    fn common(&self) -> &CommonArgs {
        &self.common
    }
    /// Startup check, before the reconnect loop: RabbitMQ must accept a
    /// connection now. A wrong URL, host, port, credentials or CA exits at
    /// once with one line; once the worker has started, a lost broker is
    /// retried.
    async fn preflight(&self) -> Result<()> {
        self.amqp.preflight(&self.preflight_name()).await?;
        Ok(())
    }
    async fn run(self, shutdown: Shutdown) -> Result<Summary> {
        run(self, shutdown).await
    }
}

/// Consumes the work queue until `shutdown` fires (or, with
/// `--exit-when-idle`, until the queue has been quiet long enough), then
/// hands back unhandled in-flight messages and returns the final statistics.
pub async fn run(config: WorkerConfig, shutdown: Shutdown) -> Result<Summary> {
    tickbridge_model::telemetry::install_metrics(config.common.metrics_addr)?;
    let mut session = Session::open(&config).await?;
    let result = session.consume(&config, &shutdown).await;
    session.close().await;
    session.finish(&config, result).await
}

/// One connection's worth of consuming: the connection, the channel the
/// deliveries come on, and the [`Worker`] that handles them. [`run`] takes it
/// through [`Session::open`], [`Session::consume`], [`Session::close`] and
/// [`Session::finish`].
struct Session {
    name: String,
    conn: Connection,
    /// The consuming channel (prefetch, cancel, hand-back).
    ch: Channel,
    consumer: lapin::Consumer,
    w: Worker,
}

impl Session {
    /// Connects, declares the topology if asked, checks the queue exists
    /// and starts consuming, so a missing queue or a broker that does not
    /// answer fails before any delivery.
    async fn open(config: &WorkerConfig) -> Result<Session> {
        let name = config.common.instance_name("worker");
        let topo = config.amqp.topology();
        let queue = config
            .queue
            .clone()
            .unwrap_or_else(|| topo.work_queue.clone());
        let conn = config.amqp.connect(&name).await?;
        // Every step below waits for the broker's answer; each is bounded
        // (`STEP_TIMEOUT`) so a node that goes away mid-request fails the
        // session instead of leaving it pending.
        if config.declare_topology {
            bounded("declaring the topology", STEP_TIMEOUT, async {
                let ch = conn.create_channel().await?;
                topo.declare(&ch).await?;
                let _ = ch.close(200, "declared".into()).await;
                Ok::<_, Error>(())
            })
            .await?;
        }
        let depth = queue_depth(&conn, &queue, &config.amqp).await?;
        let (ch, consumer) =
            open_consumer(&conn, &queue, &name, config.prefetch, FieldTable::default()).await?;
        let publisher = bounded("opening the confirm channel", STEP_TIMEOUT, async {
            Ok::<_, Error>(tickbridge_broker::amqp::confirm_channel(&conn).await?)
        })
        .await?;
        tracing::info!(%name, %queue, depth, prefetch = config.prefetch, max_retries = config.max_retries, url = %config.amqp.masked_url(), "worker consuming");

        let mut w = Worker {
            handler: Handler::new(
                ROLE,
                "rabbitmq-work",
                &name,
                &config.common,
                config.fail.clone(),
            )?,
            publisher,
            queue,
            dlx: topo.dlx.clone(),
            max_retries: config.max_retries,
        };
        w.handler.stats.set_queue_depth(depth as u64);
        Ok(Session {
            name,
            conn,
            ch,
            consumer,
            w,
        })
    }

    /// The consume loop: handles deliveries one at a time, refreshes the
    /// queue depth and logs stats on the interval, and watches for idleness,
    /// until shutdown, `--exit-when-idle`, or an error that ends the session.
    async fn consume(&mut self, config: &WorkerConfig, shutdown: &Shutdown) -> Result<()> {
        let name = &self.name;
        let mut stats_tick = tokio::time::interval(config.common.stats_interval);
        stats_tick.tick().await;
        let idle = Idle::new(config.common.exit_when_idle);
        let mut idle_tick = tokio::time::interval(idle.check_every());
        let mut idle = idle;
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Ok(()),
                next = self.consumer.next() => match next {
                    None => return Err(Error::Cancelled(self.w.queue.clone())),
                    Some(Err(e)) => return Err(e.into()),
                    Some(Ok(delivery)) => {
                        idle.activity();
                        // Handling includes a confirmed publish (retry, dead
                        // letter) and the ack. A shutdown signal during it
                        // leaves the message `SHUTDOWN_GRACE` to finish; one
                        // that does not is left unacked, and the broker hands
                        // it out again once this connection closes.
                        let step = bounded("handling a delivery", STEP_TIMEOUT, self.w.process(delivery));
                        match shutdown.finish_within(SHUTDOWN_GRACE, step).await {
                            Some(Ok(())) => {}
                            Some(Err(e)) => return Err(e),
                            None => {
                                tracing::warn!(%name, grace = ?SHUTDOWN_GRACE, "a delivery was still being handled at shutdown; it stays unacked and is redelivered");
                                return Ok(());
                            }
                        }
                    }
                },
                _ = stats_tick.tick() => {
                    refresh_depth(&self.conn, &self.w.queue, &config.amqp, &mut self.w.handler.stats).await?;
                    self.w.handler.stats.log_report();
                }
                _ = idle_tick.tick() => if idle.expired() {
                    tracing::info!(%name, "queue idle, exiting (--exit-when-idle)");
                    return Ok(());
                }
            }
        }
    }

    /// Stop deliveries, then hand back what was prefetched but not handled.
    /// On a lost connection there is nothing to hand back (the broker
    /// requeues a dead connection's unacked messages itself), and every
    /// step is bounded so a broker that stopped answering cannot hold up the
    /// exit.
    async fn close(&mut self) {
        let mut returned = 0u64;
        let Session {
            name,
            conn,
            ch,
            consumer,
            ..
        } = self;
        let closing = async {
            if !conn.status().connected() {
                return;
            }
            let _ = ch
                .basic_cancel(name.as_str().into(), BasicCancelOptions::default())
                .await;
            while let Ok(Some(Ok(_))) =
                tokio::time::timeout(Duration::from_millis(100), consumer.next()).await
            {
                returned += 1;
            }
            if ch.status().connected() {
                let _ = ch
                    .basic_nack(
                        0,
                        BasicNackOptions {
                            multiple: true,
                            requeue: true,
                        },
                    )
                    .await;
            }
            let _ = ch.close(200, "worker shutting down".into()).await;
            let _ = conn.close(200, "worker shutting down".into()).await;
        };
        if tokio::time::timeout(CLOSE_TIMEOUT, closing).await.is_err() {
            tracing::warn!(%name, timeout = ?CLOSE_TIMEOUT, "RabbitMQ did not answer while the worker closed its channel; unacked messages return to the queue when the connection drops");
        }
        if returned > 0 {
            InFlightReturned {
                role: ROLE,
                count: returned,
            }
            .emit();
        }
    }

    /// The final report: the queue depth on a fresh connection (this one is
    /// closed), the last stats line and `--summary-json`; then `result`
    /// decides the outcome.
    async fn finish(mut self, config: &WorkerConfig, result: Result<()>) -> Result<Summary> {
        if let Ok(Ok(d)) = tokio::time::timeout(
            CLOSE_TIMEOUT,
            queue_depth_quiet(&config.amqp, &self.w.queue),
        )
        .await
        {
            self.w.handler.stats.set_queue_depth(d as u64);
        }
        self.w.handler.stats.log_report();
        let summary = self.w.handler.stats.summary();
        if let Some(path) = &config.common.summary_json {
            crate::stats::write_summary(&summary, path)?;
        }
        result.map(|()| summary)
    }
}

struct Worker {
    handler: Handler,
    publisher: Channel,
    queue: String,
    dlx: String,
    max_retries: u32,
}

impl Worker {
    /// Decode → handle → ack, or retry, or dead-letter. Returns an error
    /// only when the worker cannot go on (channel gone, output broken).
    async fn process(&mut self, d: Delivery) -> Result<()> {
        let retries = header_u32(&d.properties, headers::RETRIES).unwrap_or(0);
        let id = d
            .properties
            .message_id()
            .as_ref()
            .map(|s| s.to_string())
            .unwrap_or_else(|| format!("delivery_tag={}", d.delivery_tag));
        self.handler.stats.received(d.redelivered, &id);
        let msg = match schema::decode(&d.data) {
            Ok(m) => m,
            Err(e) => {
                DecodeFailed {
                    role: ROLE,
                    error: &e,
                    position: &id,
                }
                .emit();
                self.handler.stats.decode_error(e.kind());
                let reason = format!("{}: {e}", e.kind());
                return self.dead_letter(&d, &id, "decode", &reason, retries).await;
            }
        };
        let meta = Meta {
            redelivered: d.redelivered,
            retries,
            partition: None,
            offset: None,
        };
        match self.handler.handle(&msg, &meta) {
            Ok(()) => ack(&d).await,
            Err(HandleError::Fatal(e)) => {
                let _ = d
                    .acker
                    .nack(BasicNackOptions {
                        multiple: false,
                        requeue: true,
                    })
                    .await;
                Err(e)
            }
            Err(HandleError::Message(reason)) if retries < self.max_retries => {
                let props = with_headers(&d.properties, retries + 1, &reason);
                match self.publish(&d, "", &self.queue.clone(), props).await {
                    Ok(()) => {
                        self.handler.stats.retry();
                        MessageRetried {
                            id: &id,
                            retry: retries + 1,
                            max_retries: self.max_retries,
                        }
                        .emit();
                        ack(&d).await
                    }
                    Err(e) => {
                        AckFailed {
                            role: ROLE,
                            op: "retry-publish",
                            error: &e.to_string(),
                        }
                        .emit();
                        nack_requeue(&d).await
                    }
                }
            }
            Err(HandleError::Message(reason)) => {
                let reason = format!("handler failed after {} attempts: {reason}", retries + 1);
                self.dead_letter(&d, &id, "handler", &reason, retries).await
            }
        }
    }

    async fn dead_letter(
        &mut self,
        d: &Delivery,
        id: &str,
        kind: &'static str,
        reason: &str,
        retries: u32,
    ) -> Result<()> {
        let props = with_headers(&d.properties, retries, reason);
        let dlx = self.dlx.clone();
        match self.publish(d, &dlx, d.routing_key.as_str(), props).await {
            Ok(()) => {
                self.handler.stats.dead_lettered(kind);
                DeadLettered {
                    scope: Scope::Consumer(ROLE),
                    tally: None,
                    id,
                    kind,
                    reason,
                }
                .emit();
                ack(d).await
            }
            Err(e) => {
                AckFailed {
                    role: ROLE,
                    op: "dead-letter-publish",
                    error: &e.to_string(),
                }
                .emit();
                nack_requeue(d).await
            }
        }
    }

    /// Publishes a copy of the delivery's body and waits for the confirm;
    /// a nack or an unroutable return is an error.
    async fn publish(
        &self,
        d: &Delivery,
        exchange: &str,
        routing_key: &str,
        props: BasicProperties,
    ) -> Result<()> {
        let confirm = self
            .publisher
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                &d.data,
                props,
            )
            .await?
            .await?;
        let acked = confirm.is_ack();
        if confirm.take_message().is_some() {
            return Err(Error::Config(format!(
                "no queue bound for {exchange:?} / {routing_key:?}"
            )));
        }
        if !acked {
            return Err(Error::Config("broker nacked the publish".into()));
        }
        Ok(())
    }
}

async fn ack(d: &Delivery) -> Result<()> {
    settled("ack", d.acker.ack(BasicAckOptions::default())).await
}

async fn nack_requeue(d: &Delivery) -> Result<()> {
    let requeue = BasicNackOptions {
        multiple: false,
        requeue: true,
    };
    settled("nack", d.acker.nack(requeue)).await
}

/// Awaits an ack or nack (`op`); a failure is reported as one [`AckFailed`]
/// event before it goes up, the same way for both.
async fn settled<T>(
    op: &'static str,
    settle: impl std::future::Future<Output = lapin::Result<T>>,
) -> Result<()> {
    settle.await.map(|_| ()).map_err(|e| {
        AckFailed {
            role: ROLE,
            op,
            error: &e.to_string(),
        }
        .emit();
        e.into()
    })
}

/// The delivery's properties with `tb-retries` and `tb-error` set.
fn with_headers(props: &BasicProperties, retries: u32, reason: &str) -> BasicProperties {
    let mut h = props.headers().clone().unwrap_or_default();
    h.insert(
        ShortString::from(headers::RETRIES),
        AMQPValue::LongLongInt(retries as i64),
    );
    let reason: String = reason.chars().take(1000).collect();
    h.insert(
        ShortString::from(headers::ERROR),
        AMQPValue::LongString(LongString::from(reason.as_str())),
    );
    props.clone().with_headers(h)
}

pub use tickbridge_broker::headers::{amqp_header as header_str, amqp_header_u32 as header_u32};

/// Opens a channel with `basic.qos` prefetch and starts consuming `queue`
/// on it, under [`STEP_TIMEOUT`].
pub(crate) async fn open_consumer(
    conn: &Connection,
    queue: &str,
    name: &str,
    prefetch: u16,
    args: FieldTable,
) -> Result<(Channel, lapin::Consumer)> {
    bounded("opening the consumer", STEP_TIMEOUT, async {
        let ch = conn.create_channel().await?;
        ch.basic_qos(prefetch, BasicQosOptions::default()).await?;
        let consumer = ch
            .basic_consume(
                queue.into(),
                name.into(),
                BasicConsumeOptions::default(),
                args,
            )
            .await?;
        Ok((ch, consumer))
    })
    .await
}

/// Messages ready in `queue`, by a passive declare on a throwaway channel
/// (a missing queue closes the channel it was asked on), under
/// [`STEP_TIMEOUT`]. A missing queue is [`Error::UnknownQueue`].
pub(crate) async fn queue_depth(conn: &Connection, queue: &str, amqp: &AmqpConfig) -> Result<u32> {
    bounded("reading the queue depth", STEP_TIMEOUT, async {
        tickbridge_broker::amqp::queue_depth(conn, queue)
            .await?
            .ok_or_else(|| Error::UnknownQueue {
                queue: queue.to_string(),
                url: amqp.masked_url(),
            })
    })
    .await
}

/// The stats tick's depth probe: sets the gauge when the broker answers.
/// A probe that times out means the connection is stuck, and its error
/// ends the session; any other failure is left for the consumer stream to
/// report.
pub(crate) async fn refresh_depth(
    conn: &Connection,
    queue: &str,
    amqp: &AmqpConfig,
    stats: &mut Stats,
) -> Result<()> {
    match queue_depth(conn, queue, amqp).await {
        Ok(d) => stats.set_queue_depth(d as u64),
        Err(e @ Error::Broker(tickbridge_broker::Error::Timeout { .. })) => return Err(e),
        Err(_) => {}
    }
    Ok(())
}

async fn queue_depth_quiet(amqp: &AmqpConfig, queue: &str) -> Result<u32> {
    let conn = amqp.connect("tickbridge-depth").await?;
    let d = queue_depth(&conn, queue, amqp).await;
    let _ = conn.close(200, "depth".into()).await;
    d
}

/// `--exit-when-idle` bookkeeping.
pub(crate) struct Idle {
    after: Option<Duration>,
    started: Instant,
    last: Option<Instant>,
}

impl Idle {
    pub(crate) fn new(after: Option<Duration>) -> Self {
        Self {
            after,
            started: Instant::now(),
            last: None,
        }
    }
    /// How often the caller should ask [`Idle::expired`].
    pub(crate) fn check_every(&self) -> Duration {
        self.after.map_or(Duration::from_secs(3600), |d| {
            (d / 4).clamp(Duration::from_millis(20), Duration::from_millis(500))
        })
    }
    pub(crate) fn activity(&mut self) {
        self.last = Some(Instant::now());
    }
    pub(crate) fn expired(&self) -> bool {
        match (self.after, self.last) {
            (None, _) => false,
            (Some(d), Some(last)) => last.elapsed() >= d,
            (Some(d), None) => self.started.elapsed() >= d * 2,
        }
    }
}
