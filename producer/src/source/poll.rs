//! REST poller: the batch counterpart of the WebSocket stream. Every
//! `--poll-interval` it fetches the latest trades of each symbol, skips the
//! ones an earlier poll already returned (counted as overlap), and hands the
//! rest to the same pipeline, stamped `via: poll`. Trades that happened
//! between two polls beyond `--poll-limit` show up as trade-id gaps: the
//! price of polling, made visible.

use super::{Context, SourceEvent};
use crate::events::FrameRejected;
use crate::exchange::MAX_REST_BYTES;
use crate::stats::add;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tickbridge_broker::backoff::Backoff;

/// Poller settings.
#[derive(Debug, Clone)]
pub struct PollOptions {
    /// REST base URL.
    pub base: String,
    /// Time between polls.
    pub interval: Duration,
    /// Trades requested per poll.
    pub limit: u32,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Backoff bounds after failed requests.
    pub reconnect_min: Duration,
    /// Backoff cap.
    pub reconnect_max: Duration,
}

/// Runs until shutdown.
pub async fn run(ctx: Context, opts: PollOptions) {
    let Context {
        adapter,
        tx,
        pool,
        stats,
        shutdown,
    } = ctx;
    let client = match reqwest::Client::builder().timeout(opts.timeout).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build HTTP client");
            return;
        }
    };
    let mut last: HashMap<Arc<str>, u64> = HashMap::new();
    let mut logged: HashSet<&'static str> = HashSet::new();
    let mut backoff = Backoff::new(opts.reconnect_min, opts.reconnect_max);
    let mut failing = false;
    let mut tick = tokio::time::interval(opts.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let _ = tx.send(SourceEvent::Connected { attempt: 0 }).await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        for symbol in adapter.symbols().to_vec() {
            let url = adapter.rest_trades_url(&opts.base, &symbol, opts.limit);
            let resp = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = client.get(&url).send() => r,
            };
            let body = match resp.and_then(|r| r.error_for_status()) {
                Ok(r) => match read_limited(r, MAX_REST_BYTES).await {
                    Ok(Ok(b)) => b,
                    Ok(Err(seen)) => {
                        add(&stats.frames, 1);
                        let e = format!(
                            "body of at least {seen} bytes exceeds the {MAX_REST_BYTES}-byte limit"
                        );
                        FrameRejected {
                            kind: "too_large",
                            error: &e,
                            first_of_kind: logged.insert("too_large"),
                        }
                        .emit_to(&stats);
                        continue;
                    }
                    Err(e) => {
                        failing = true;
                        let delay = backoff.next_delay();
                        tracing::warn!(%url, attempt = backoff.attempt(), error = %e, "poll body failed");
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                },
                Err(e) => {
                    if !failing {
                        let _ = tx
                            .send(SourceEvent::Disconnected {
                                reason: e.to_string(),
                            })
                            .await;
                    }
                    failing = true;
                    let delay = backoff.next_delay();
                    tracing::warn!(%url, attempt = backoff.attempt(), error = %e, "poll failed");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    continue;
                }
            };
            if failing {
                failing = false;
                backoff.reset();
                add(&stats.reconnects, 1);
                let _ = tx.send(SourceEvent::Connected { attempt: 1 }).await;
            }
            let received_ts = chrono::Utc::now();
            add(&stats.frames, 1);
            let mut trades = pool.take();
            if let Err(e) = adapter.parse_rest(&symbol, &body, &mut trades) {
                let kind = e.kind();
                FrameRejected {
                    kind,
                    error: &e,
                    first_of_kind: logged.insert(kind),
                }
                .emit_to(&stats);
                continue;
            }
            trades.sort_by_key(|t| t.trade_id);
            let before = trades.len();
            let floor = last.get(&symbol).copied();
            trades.retain(|t| floor.is_none_or(|f| t.trade_id > f));
            add(&stats.poll_overlap, (before - trades.len()) as u64);
            if let Some(t) = trades.last() {
                last.insert(symbol.clone(), t.trade_id);
            }
            if trades.is_empty() {
                continue;
            }
            add(&stats.trades_in, trades.len() as u64);
            if tx
                .send(SourceEvent::Trades {
                    trades,
                    received_ts,
                })
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

/// Reads a response body, but never more than `max` bytes: a server that
/// announces or streams more is cut off after `max` (`Ok(Err(bytes seen))`),
/// so a hostile endpoint cannot make the poller buffer an unbounded body.
async fn read_limited(
    mut resp: reqwest::Response,
    max: usize,
) -> Result<Result<bytes::Bytes, usize>, reqwest::Error> {
    if let Some(len) = resp.content_length() {
        if len > max as u64 {
            return Ok(Err(usize::try_from(len).unwrap_or(usize::MAX)));
        }
    }
    let mut buf = bytes::BytesMut::new();
    while let Some(chunk) = resp.chunk().await? {
        if buf.len() + chunk.len() > max {
            return Ok(Err(buf.len() + chunk.len()));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Ok(buf.freeze()))
}
