//! RabbitMQ helpers both directions use: existence checks that turn
//! `NOT_FOUND` into a clear error, queue depth for the lag gauge, and the
//! confirmed publish that parks dead letters.

use crate::{Error, Result};
use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Channel, Connection};
use std::future::Future;
use tickbridge_broker::amqp::AmqpConfig;

pub use tickbridge_broker::amqp::STEP_TIMEOUT;

/// Runs one session step under [`STEP_TIMEOUT`]; past it the connection
/// counts as lost and the session is rebuilt (unacked deliveries and
/// uncommitted records come back: at least once).
pub async fn bounded<T>(what: &str, step: impl Future<Output = Result<T>>) -> Result<T> {
    tickbridge_broker::amqp::bounded(what, STEP_TIMEOUT, step).await
}

/// Messages ready in `queue`; a missing queue is [`Error::UnknownQueue`].
pub async fn queue_depth(conn: &Connection, queue: &str, amqp: &AmqpConfig) -> Result<u32> {
    tickbridge_broker::amqp::queue_depth(conn, queue)
        .await?
        .ok_or_else(|| Error::UnknownQueue {
            queue: queue.to_string(),
            url: amqp.masked_url(),
        })
}

/// Fails with [`Error::UnknownExchange`] unless `exchange` exists. The
/// default exchange (`""`) always does.
pub async fn check_exchange(conn: &Connection, exchange: &str, amqp: &AmqpConfig) -> Result<()> {
    if tickbridge_broker::amqp::exchange_exists(conn, exchange).await? {
        Ok(())
    } else {
        Err(Error::UnknownExchange {
            exchange: exchange.to_string(),
            url: amqp.masked_url(),
        })
    }
}

/// A channel in confirm mode.
pub async fn confirm_channel(conn: &Connection) -> Result<Channel> {
    Ok(tickbridge_broker::amqp::confirm_channel(conn).await?)
}

/// Publishes one dead letter with `mandatory` and waits for its confirm.
/// A return (nothing bound) or a nack is [`Error::DeadLetter`], terminal:
/// the original stays unacked (or its offset unstored) and the operator
/// has to bind a queue. A broken channel is an ordinary, retried error.
pub async fn park(
    ch: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    props: BasicProperties,
    id: &str,
) -> Result<()> {
    let opts = BasicPublishOptions {
        mandatory: true,
        ..Default::default()
    };
    let confirm = ch
        .basic_publish(exchange.into(), routing_key.into(), opts, body, props)
        .await?
        .await?;
    let acked = confirm.is_ack();
    let fail = |reason: String| {
        Err(Error::DeadLetter {
            id: id.to_string(),
            exchange: exchange.to_string(),
            reason,
        })
    };
    if let Some(ret) = confirm.take_message() {
        return fail(format!(
            "returned {} {} (bind a queue to it)",
            ret.reply_code, ret.reply_text
        ));
    }
    if !acked {
        return fail("nacked by the broker".into());
    }
    Ok(())
}
