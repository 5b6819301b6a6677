//! RabbitMQ sink: persistent, mandatory publishes to the `ticks` topic
//! exchange with publisher confirms, many in flight.
//!
//! * Confirms are awaited in a window of `--confirm-window` messages, not one
//!   at a time.
//! * A nack or a return (unroutable) is a failure: re-published up to
//!   `--publish-retries` times, then counted lost and replaced by a gap notice.
//! * A connection or channel error keeps every unconfirmed message; after
//!   reconnecting (capped backoff) they are re-published first. Consumers
//!   dedup by `message_id`, so this is at-least-once, never silent loss.

use super::{dropped_notices, give_up, Pending};
use crate::buffer::Buffer;
use crate::stats::{add, SinkStats};
use futures::stream::FuturesOrdered;
use futures::{FutureExt, StreamExt};
use lapin::options::BasicPublishOptions;
use lapin::Confirmation;
use lapin::{Channel, Connection};
use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tickbridge_broker::amqp::{bounded, AmqpConfig, Topology, STEP_TIMEOUT};
use tickbridge_broker::backoff::Backoff;
use tickbridge_broker::headers;
use tickbridge_model::Shutdown;

const SINK: &str = "rabbitmq";

/// Sink settings.
#[derive(Debug, Clone)]
pub struct AmqpSinkOptions {
    /// Unconfirmed messages allowed in flight.
    pub window: usize,
    /// Re-publishes before giving up on a refused message.
    pub retries: u32,
    /// Reconnect backoff.
    pub reconnect_min: Duration,
    /// Reconnect backoff cap.
    pub reconnect_max: Duration,
}

/// A live connection with a confirm-mode channel and the topology declared.
pub struct AmqpSession {
    conn: Connection,
    channel: Channel,
}

/// Connects, enables confirms and declares the topology. Used at startup
/// (where failure is fatal, so bad URLs fail fast) and on every reconnect.
pub async fn open(cfg: &AmqpConfig, topo: &Topology) -> tickbridge_broker::Result<AmqpSession> {
    let conn = cfg.connect("tickbridge-producer").await?;
    let channel = bounded("opening a confirm channel", STEP_TIMEOUT, async {
        let channel = tickbridge_broker::amqp::confirm_channel(&conn).await?;
        topo.declare(&channel).await?;
        Ok::<_, tickbridge_broker::Error>(channel)
    })
    .await?;
    Ok(AmqpSession { conn, channel })
}

/// A publish's confirm, bounded by `STEP_TIMEOUT`: a confirm that never
/// comes (the connection died without lapin noticing) counts as a broken
/// channel, and the message is published again.
type ConfirmFut =
    futures::future::BoxFuture<'static, (Result<Confirmation, tickbridge_broker::Error>, Pending)>;

/// Runs until the buffer is closed and everything is confirmed, or until
/// `hard_stop`. Returns the number of messages left unconfirmed.
pub async fn run(
    cfg: AmqpConfig,
    opts: AmqpSinkOptions,
    first: AmqpSession,
    buffer: Arc<Buffer>,
    stats: Arc<crate::stats::Stats>,
    hard_stop: Shutdown,
) -> u64 {
    let st: &SinkStats = &stats.rabbitmq;
    let topo = cfg.topology();
    let mut session = Some(first);
    add(&st.connects, 1);
    let mut backoff = Backoff::new(opts.reconnect_min, opts.reconnect_max);
    let mut retry: VecDeque<Pending> = VecDeque::new();
    let mut inflight: FuturesOrdered<ConfirmFut> = FuturesOrdered::new();
    let mut batch = Vec::with_capacity(opts.window);
    let mut drained = false;
    let unconfirmed = |inflight: usize, retry: usize| (inflight + retry + buffer.len()) as u64;

    loop {
        st.in_flight.store(inflight.len() as u64, Relaxed);
        if session.is_none() && inflight.is_empty() {
            let delay = backoff.next_delay();
            tracing::warn!(sink = SINK, url = %cfg.masked_url(), attempt = backoff.attempt(), delay_ms = delay.as_millis() as u64, pending = retry.len(), "reconnecting to RabbitMQ");
            tokio::select! {
                _ = hard_stop.cancelled() => return unconfirmed(0, retry.len()),
                _ = tokio::time::sleep(delay) => {}
            }
            match open(&cfg, &topo).await {
                Ok(s) => {
                    tracing::info!(
                        sink = SINK,
                        attempt = backoff.attempt(),
                        republish = retry.len(),
                        "RabbitMQ reconnected; re-publishing unconfirmed messages"
                    );
                    backoff.reset();
                    add(&st.connects, 1);
                    session = Some(s);
                }
                Err(e) => {
                    tracing::warn!(sink = SINK, error = %e, "RabbitMQ connect failed");
                    continue;
                }
            }
        }
        // Re-publish what a nack, return or broken channel left behind.
        while session.is_some() && inflight.len() < opts.window {
            let Some(p) = retry.pop_front() else { break };
            publish(&mut session, &topo, p, &mut inflight, &mut retry, st).await;
        }
        if drained && inflight.is_empty() && retry.is_empty() {
            if let Some(s) = session.take() {
                let _ = tokio::time::timeout(
                    Duration::from_secs(5),
                    s.conn.close(200, "producer done".into()),
                )
                .await;
            }
            return 0;
        }
        let room = opts.window.saturating_sub(inflight.len());
        tokio::select! {
            biased;
            _ = hard_stop.cancelled() => return unconfirmed(inflight.len(), retry.len()),
            Some((res, mut p)) = inflight.next(), if !inflight.is_empty() => {
                match res {
                    Ok(Confirmation::Ack(None)) => {
                        add(&st.confirmed, 1);
                    }
                    Ok(Confirmation::Ack(Some(ret))) | Ok(Confirmation::Nack(Some(ret))) => {
                        p.attempts += 1;
                        let why = format!("returned: {} {}", ret.reply_code, ret.reply_text);
                        refused(p, &why, opts.retries, &mut retry, st);
                    }
                    Ok(Confirmation::Nack(None)) | Ok(Confirmation::NotRequested) => {
                        p.attempts += 1;
                        refused(p, "nacked by broker", opts.retries, &mut retry, st);
                    }
                    Err(e) => {
                        // The channel or connection broke: the broker may or
                        // may not have the message, so publish it again.
                        if session.is_some() {
                            tracing::warn!(sink = SINK, error = %e, "RabbitMQ channel lost; unconfirmed messages will be re-published");
                        }
                        session = None;
                        add(&st.retries, 1);
                        retry.push_back(p);
                    }
                }
            }
            _ = buffer.pop_batch(room, &mut batch), if session.is_some() && room > 0 && !drained && retry.is_empty() => {
                for n in dropped_notices(&buffer, st, SINK) {
                    retry.push_back(n);
                }
                if batch.is_empty() {
                    drained = true;
                }
                for msg in batch.drain(..) {
                    publish(&mut session, &topo, Pending::new(msg), &mut inflight, &mut retry, st).await;
                }
            }
        }
    }
}

fn refused(p: Pending, why: &str, retries: u32, retry: &mut VecDeque<Pending>, st: &SinkStats) {
    if p.attempts > retries {
        if let Some(gap) = give_up(&p, st, SINK, why) {
            retry.push_front(gap);
        }
    } else {
        tracing::warn!(sink = SINK, id = %p.msg.view().id(), attempt = p.attempts, error = why, "publish refused; retrying");
        add(&st.retries, 1);
        retry.push_back(p);
    }
}

async fn publish(
    session: &mut Option<AmqpSession>,
    topo: &Topology,
    p: Pending,
    inflight: &mut FuturesOrdered<ConfirmFut>,
    retry: &mut VecDeque<Pending>,
    st: &SinkStats,
) {
    let Some(s) = session.as_ref() else {
        retry.push_back(p);
        return;
    };
    let view = p.msg.view();
    let props = headers::amqp_properties(view, "tickbridge-producer");
    let routing_key = Topology::routing_key(view.source().as_str(), view.symbol());
    let send = s.channel.basic_publish(
        topo.exchange.as_str().into(),
        routing_key.into(),
        BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        },
        &p.msg.body,
        props,
    );
    let res = bounded("publishing", STEP_TIMEOUT, async {
        send.await.map_err(tickbridge_broker::Error::from)
    })
    .await;
    match res {
        Ok(confirm) => {
            add(&st.published, 1);
            let confirmed = bounded("waiting for a publisher confirm", STEP_TIMEOUT, async {
                confirm.await.map_err(tickbridge_broker::Error::from)
            });
            inflight.push_back(async move { (confirmed.await, p) }.boxed());
        }
        Err(e) => {
            tracing::warn!(sink = SINK, error = %e, "publish failed; will reconnect and re-publish");
            *session = None;
            add(&st.retries, 1);
            retry.push_back(p);
        }
    }
}
