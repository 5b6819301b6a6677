//! WebSocket reader: connect, subscribe, answer pings, send application
//! pings, treat silence as death, reconnect with capped exponential backoff
//! and jitter, resubscribe, and hand every parsed trade to the pipeline.

use super::SourceEvent;
use crate::events::FrameRejected;
use crate::exchange::{Exchange, FrameKind};
use crate::stats::{add, Stats};
use futures::{FutureExt, SinkExt, StreamExt};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tickbridge_core::backoff::Backoff;
use tickbridge_core::Shutdown;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// Reader settings.
#[derive(Debug, Clone)]
pub struct WsOptions {
    /// Full URL, from the adapter.
    pub url: String,
    /// Silence longer than this kills the connection.
    pub idle_timeout: Duration,
    /// Reconnect backoff bounds.
    pub reconnect_min: Duration,
    /// Reconnect backoff cap.
    pub reconnect_max: Duration,
}

/// Why a session ended.
enum SessionEnd {
    Shutdown,
    Lost(String),
}

/// Runs until shutdown, reconnecting as needed.
pub async fn run(
    adapter: Arc<dyn Exchange>,
    opts: WsOptions,
    tx: mpsc::Sender<SourceEvent>,
    stats: Arc<Stats>,
    shutdown: Shutdown,
) {
    let mut backoff = Backoff::new(opts.reconnect_min, opts.reconnect_max);
    let mut logged_kinds: HashSet<&'static str> = HashSet::new();
    let mut sessions = 0u64;
    loop {
        if shutdown.is_shutdown() {
            return;
        }
        let attempt = backoff.attempt();
        let connect = tokio::time::timeout(
            opts.idle_timeout.max(Duration::from_secs(5)),
            tokio_tungstenite::connect_async(opts.url.as_str()),
        );
        let conn = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = connect => r,
        };
        let ws = match conn {
            Ok(Ok((ws, _))) => ws,
            Ok(Err(e)) => {
                wait_backoff(&mut backoff, &opts.url, &e.to_string(), &shutdown).await;
                continue;
            }
            Err(_) => {
                wait_backoff(&mut backoff, &opts.url, "connect timed out", &shutdown).await;
                continue;
            }
        };
        if sessions > 0 {
            add(&stats.reconnects, 1);
            metrics::counter!("tickbridge_producer_reconnects_total").increment(1);
        }
        sessions += 1;
        tracing::info!(url = %opts.url, attempt, "feed connected");
        if tx.send(SourceEvent::Connected { attempt }).await.is_err() {
            return;
        }
        let end = session(
            &*adapter,
            ws,
            &opts,
            &tx,
            &stats,
            &shutdown,
            &mut logged_kinds,
            &mut backoff,
        )
        .await;
        match end {
            SessionEnd::Shutdown => return,
            SessionEnd::Lost(reason) => {
                tracing::warn!(url = %opts.url, %reason, "feed connection lost");
                if tx.send(SourceEvent::Disconnected { reason }).await.is_err() {
                    return;
                }
                wait_backoff(&mut backoff, &opts.url, "reconnecting", &shutdown).await;
            }
        }
    }
}

async fn wait_backoff(backoff: &mut Backoff, url: &str, why: &str, shutdown: &Shutdown) {
    let delay = backoff.next_delay();
    tracing::warn!(%url, attempt = backoff.attempt(), delay_ms = delay.as_millis() as u64, error = %why, "feed reconnect scheduled");
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = tokio::time::sleep(delay) => {}
    }
}

#[allow(clippy::too_many_arguments)]
async fn session<S>(
    adapter: &dyn Exchange,
    ws: tokio_tungstenite::WebSocketStream<S>,
    opts: &WsOptions,
    tx: &mpsc::Sender<SourceEvent>,
    stats: &Stats,
    shutdown: &Shutdown,
    logged_kinds: &mut HashSet<&'static str>,
    backoff: &mut Backoff,
) -> SessionEnd
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut sink, mut stream) = ws.split();
    for m in adapter.subscribe_messages() {
        if let Err(e) = sink.send(WsMessage::text(m)).await {
            return SessionEnd::Lost(format!("subscribe failed: {e}"));
        }
    }
    let ping = adapter.app_ping();
    let mut ping_tick =
        tokio::time::interval(ping.as_ref().map_or(Duration::from_secs(3600), |p| p.0));
    ping_tick.tick().await;
    let mut got_data = false;
    let mut trades = Vec::new();
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => {
                let _ = sink.send(WsMessage::Close(None)).await;
                return SessionEnd::Shutdown;
            }
            _ = ping_tick.tick(), if ping.is_some() => {
                if let Some((_, msg)) = &ping {
                    if let Err(e) = sink.send(WsMessage::text(msg.clone())).await {
                        return SessionEnd::Lost(format!("ping failed: {e}"));
                    }
                }
                continue;
            }
            r = tokio::time::timeout(opts.idle_timeout, stream.next()) => r,
        };
        let mut frame = match next {
            Err(_) => {
                return SessionEnd::Lost(format!(
                    "no data for {:?} (idle timeout)",
                    opts.idle_timeout
                ))
            }
            Ok(None) => return SessionEnd::Lost("connection closed".into()),
            Ok(Some(Err(e))) => return SessionEnd::Lost(e.to_string()),
            Ok(Some(Ok(f))) => f,
        };
        let received_ts = chrono::Utc::now();
        // Take every frame that is already buffered (up to a batch), so a
        // busy feed costs one channel hand-off per batch, not per frame.
        let mut end = None;
        let mut taken = 0;
        loop {
            taken += 1;
            if let Err(e) =
                handle_frame(adapter, frame, &mut sink, &mut trades, stats, logged_kinds).await
            {
                end = Some(e);
                break;
            }
            if taken == BATCH_FRAMES {
                break;
            }
            frame = match stream.next().now_or_never() {
                Some(Some(Ok(f))) => f,
                Some(Some(Err(e))) => {
                    end = Some(SessionEnd::Lost(e.to_string()));
                    break;
                }
                Some(None) => {
                    end = Some(SessionEnd::Lost("connection closed".into()));
                    break;
                }
                None => break,
            };
        }
        if !trades.is_empty() {
            if !got_data {
                got_data = true;
                backoff.reset();
            }
            add(&stats.trades_in, trades.len() as u64);
            let batch = std::mem::replace(&mut trades, Vec::with_capacity(64));
            if tx
                .send(SourceEvent::Trades {
                    trades: batch,
                    received_ts,
                })
                .await
                .is_err()
            {
                return SessionEnd::Shutdown;
            }
        }
        if let Some(e) = end {
            return e;
        }
    }
}

/// Frames taken per hand-off to the pipeline when they are already buffered.
const BATCH_FRAMES: usize = 256;

/// Handles one frame: parses text into `trades`, answers pings, counts
/// rejects. An `Err` ends the session.
async fn handle_frame<K>(
    adapter: &dyn Exchange,
    frame: WsMessage,
    sink: &mut K,
    trades: &mut Vec<crate::exchange::RawTrade>,
    stats: &Stats,
    logged_kinds: &mut HashSet<&'static str>,
) -> Result<(), SessionEnd>
where
    K: futures::Sink<WsMessage> + Unpin,
    K::Error: std::fmt::Display,
{
    match frame {
        WsMessage::Text(text) => {
            add(&stats.frames, 1);
            let before = trades.len();
            match adapter.parse_frame(text.as_str(), trades) {
                Ok(FrameKind::Trades) => {}
                Ok(_) => {}
                Err(e) => {
                    // A rejected frame contributes no trades, even ones
                    // parsed before the bad field.
                    trades.truncate(before);
                    let kind = e.kind();
                    FrameRejected {
                        kind,
                        error: &e,
                        first_of_kind: logged_kinds.insert(kind),
                    }
                    .emit_to(stats);
                }
            }
        }
        WsMessage::Binary(_) => {
            add(&stats.frames, 1);
            FrameRejected {
                kind: "binary_frame",
                error: &"unexpected binary frame",
                first_of_kind: logged_kinds.insert("binary_frame"),
            }
            .emit_to(stats);
        }
        WsMessage::Ping(payload) => {
            if let Err(e) = sink.send(WsMessage::Pong(payload)).await {
                return Err(SessionEnd::Lost(format!("pong failed: {e}")));
            }
        }
        WsMessage::Pong(_) | WsMessage::Frame(_) => {}
        WsMessage::Close(c) => {
            return Err(SessionEnd::Lost(format!("closed by server: {c:?}")));
        }
    }
    Ok(())
}
