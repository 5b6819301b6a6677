//! RabbitMQ stream reader over AMQP 0-9-1: broadcast and replay on RabbitMQ.
//!
//! A stream queue is an append-only log. Over AMQP 0-9-1 a reader must set
//! a prefetch (`basic.qos`) and ack deliveries (acks here only return
//! credit; nothing is removed), and chooses where to start with the
//! `x-stream-offset` consumer argument, mapped from `--replay-from` by
//! [`StartAt::stream_offset`](crate::replay::StartAt::stream_offset). Each
//! delivery carries its offset in the `x-stream-offset` header, which is
//! written to the output beside the message.
//!
//! AMQP 0-9-1 has no server-side offset tracking, so there is nothing to
//! commit: without `--replay-from` a stream reader starts at `next` (new
//! messages only). Every reader gets every message.

use crate::consumer::ConsumerConfig;
use crate::events::DecodeFailed;
use crate::handler::{FailConfig, HandleError, Handler};
use crate::output::Meta;
use crate::replay::StartAt;
use crate::stats::Summary;
use crate::worker::{open_consumer, queue_depth, refresh_depth, Idle, CLOSE_TIMEOUT};
use crate::{Error, Result};
use chrono::Utc;
use futures::StreamExt;
use lapin::options::{BasicAckOptions, BasicCancelOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use tickbridge_broker::amqp::{bounded, STEP_TIMEOUT};
use tickbridge_model::telemetry::InternalEvent;
use tickbridge_model::{schema, Shutdown};

/// The `role` label of the stream reader's metrics.
pub(crate) const ROLE: &str = "stream";

/// Runs the stream reader; see the module docs.
pub async fn run(cfg: &ConsumerConfig, shutdown: Shutdown) -> Result<Summary> {
    let name = cfg.common.instance_name("consumer");
    let queue = cfg.amqp.topology().stream_queue;
    let start = cfg
        .replay_from
        .as_ref()
        .map(|r| r.resolve(Utc::now()))
        .unwrap_or(StartAt::Latest);
    let offset_arg = start.stream_offset().map_err(Error::Config)?;
    let conn = cfg.amqp.connect(&name).await?;
    // Each step that waits for the broker is bounded, like the worker's.
    let depth = queue_depth(&conn, &queue, &cfg.amqp).await?;
    let mut args = FieldTable::default();
    args.insert(ShortString::from("x-stream-offset"), offset_arg.clone());
    let (ch, mut consumer) = open_consumer(&conn, &queue, &name, cfg.prefetch.max(1), args).await?;
    tracing::info!(%name, %queue, depth, x_stream_offset = ?offset_arg, url = %cfg.amqp.masked_url(), "consumer reading RabbitMQ stream");

    let mut handler = Handler::new(
        ROLE,
        "rabbitmq-stream",
        &name,
        &cfg.common,
        FailConfig::default(),
    )?;
    handler.stats.set_queue_depth(depth as u64);
    let mut stats_tick = tokio::time::interval(cfg.common.stats_interval);
    stats_tick.tick().await;
    let mut idle = Idle::new(cfg.common.exit_when_idle);
    let mut idle_tick = tokio::time::interval(idle.check_every());

    let result: Result<()> = loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break Ok(()),
            next = consumer.next() => match next {
                None => break Err(Error::Cancelled(queue.clone())),
                Some(Err(e)) => break Err(e.into()),
                Some(Ok(d)) => {
                    idle.activity();
                    let offset = stream_offset(&d.properties);
                    match schema::decode(&d.data) {
                        Ok(msg) => {
                            handler.stats.received(d.redelivered, msg.as_ref().id());
                            let meta = Meta { redelivered: d.redelivered, retries: 0, partition: None, offset };
                            match handler.handle(&msg, &meta) {
                                Ok(()) => {}
                                Err(HandleError::Message(reason)) => {
                                    let position = format!("@{}", offset.unwrap_or(-1));
                                    break Err(Error::Handler { position, reason });
                                }
                                Err(HandleError::Fatal(e)) => break Err(e),
                            }
                        }
                        Err(e) => {
                            let position = format!("@{}", offset.unwrap_or(-1));
                            handler.stats.received(false, &position);
                            DecodeFailed { role: ROLE, error: &e, position: &position }.emit();
                            handler.stats.decode_error(e.kind());
                        }
                    }
                    // On a stream an ack only returns credit; nothing is removed.
                    let ack = bounded("acking", STEP_TIMEOUT, async {
                        d.acker.ack(BasicAckOptions::default()).await.map_err(Error::from)
                    });
                    if let Err(e) = ack.await {
                        break Err(e);
                    }
                }
            },
            _ = stats_tick.tick() => {
                if let Err(e) = refresh_depth(&conn, &queue, &cfg.amqp, &mut handler.stats).await {
                    break Err(e);
                }
                handler.stats.log_report();
            }
            _ = idle_tick.tick() => if idle.expired() {
                tracing::info!(%name, "no messages for a while, exiting (--exit-when-idle)");
                break Ok(());
            }
        }
    };
    let closing = async {
        if conn.status().connected() {
            let _ = ch
                .basic_cancel(name.as_str().into(), BasicCancelOptions::default())
                .await;
            let _ = ch.close(200, "consumer shutting down".into()).await;
            let _ = conn.close(200, "consumer shutting down".into()).await;
        }
    };
    if tokio::time::timeout(CLOSE_TIMEOUT, closing).await.is_err() {
        tracing::warn!(%name, timeout = ?CLOSE_TIMEOUT, "RabbitMQ did not answer while the consumer closed its channel");
    }
    handler.stats.log_report();
    result.map(|()| handler.stats.summary())
}

/// The `x-stream-offset` header RabbitMQ puts on every stream delivery.
fn stream_offset(props: &lapin::BasicProperties) -> Option<i64> {
    match props.headers().as_ref()?.inner().get("x-stream-offset")? {
        AMQPValue::LongLongInt(n) => Some(*n),
        AMQPValue::LongInt(n) => Some(*n as i64),
        AMQPValue::LongUInt(n) => Some(*n as i64),
        _ => None,
    }
}
