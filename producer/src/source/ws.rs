//! WebSocket reader: connect, subscribe, answer pings, send application
//! pings, treat silence as death, reconnect with capped exponential backoff
//! and jitter, resubscribe, and hand every parsed trade to the pipeline.

use super::{BatchPool, Context, SourceEvent};
use crate::events::FrameRejected;
use crate::exchange::{Exchange, FrameKind};
use crate::stats::{add, Stats};
use futures::{FutureExt, SinkExt, StreamExt};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tickbridge_broker::backoff::Backoff;
use tickbridge_model::Shutdown;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};

/// Limits the WebSocket layer enforces before a frame reaches a parser:
/// a message (and a single frame) may not exceed the adapters'
/// [`MAX_FRAME_BYTES`](crate::exchange::MAX_FRAME_BYTES), so a hostile or
/// broken server cannot make the producer buffer tungstenite's default
/// 64 MiB per message. An oversized message ends the connection (tungstenite
/// cannot skip it), is counted as a `too_large` rejected frame, and the feed
/// reconnects; the continuity check reports what the reconnect missed.
pub fn ws_config() -> WebSocketConfig {
    let max = crate::exchange::MAX_FRAME_BYTES;
    WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
}

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

/// The reader's context, shared by every connection it makes: what a
/// session reads with and hands trades to, and the state that outlives one
/// connection (the reject kinds already logged once, the reconnect backoff
/// that data on a new connection resets). One struct instead of a session
/// function taking each of them as a parameter.
struct WsSession {
    adapter: Arc<dyn Exchange>,
    opts: WsOptions,
    tx: mpsc::Sender<SourceEvent>,
    pool: BatchPool,
    stats: Arc<Stats>,
    shutdown: Shutdown,
    /// Reject kinds logged at their first occurrence (counted always).
    logged_kinds: HashSet<&'static str>,
    backoff: Backoff,
}

/// Runs until shutdown, reconnecting as needed.
pub async fn run(ctx: Context, opts: WsOptions) {
    let Context {
        adapter,
        tx,
        pool,
        stats,
        shutdown,
    } = ctx;
    let mut s = WsSession {
        backoff: Backoff::new(opts.reconnect_min, opts.reconnect_max),
        logged_kinds: HashSet::new(),
        adapter,
        opts,
        tx,
        pool,
        stats,
        shutdown,
    };
    let mut sessions = 0u64;
    loop {
        if s.shutdown.is_shutdown() {
            return;
        }
        let attempt = s.backoff.attempt();
        let connect = tokio::time::timeout(
            s.opts.idle_timeout.max(Duration::from_secs(5)),
            tokio_tungstenite::connect_async_with_config(
                s.opts.url.as_str(),
                Some(ws_config()),
                false,
            ),
        );
        let conn = tokio::select! {
            _ = s.shutdown.cancelled() => return,
            r = connect => r,
        };
        let ws = match conn {
            Ok(Ok((ws, _))) => ws,
            Ok(Err(e)) => {
                s.wait_backoff(&e.to_string()).await;
                continue;
            }
            Err(_) => {
                s.wait_backoff("connect timed out").await;
                continue;
            }
        };
        if sessions > 0 {
            add(&s.stats.reconnects, 1);
            metrics::counter!("tickbridge_producer_reconnects_total").increment(1);
        }
        sessions += 1;
        tracing::info!(url = %s.opts.url, attempt, "feed connected");
        if s.tx.send(SourceEvent::Connected { attempt }).await.is_err() {
            return;
        }
        match s.run(ws).await {
            SessionEnd::Shutdown => return,
            SessionEnd::Lost(reason) => {
                tracing::warn!(url = %s.opts.url, %reason, "feed connection lost");
                if s.tx
                    .send(SourceEvent::Disconnected { reason })
                    .await
                    .is_err()
                {
                    return;
                }
                s.wait_backoff("reconnecting").await;
            }
        }
    }
}

impl WsSession {
    /// Sleeps the next backoff delay (or until shutdown), logging why.
    async fn wait_backoff(&mut self, why: &str) {
        let delay = self.backoff.next_delay();
        tracing::warn!(url = %self.opts.url, attempt = self.backoff.attempt(), delay_ms = delay.as_millis() as u64, error = %why, "feed reconnect scheduled");
        tokio::select! {
            _ = self.shutdown.cancelled() => {}
            _ = tokio::time::sleep(delay) => {}
        }
    }

    /// One connection, from subscribing to its end: reads frames (with the
    /// idle timeout), sends the adapter's application pings, and hands each
    /// batch of trades to the pipeline.
    async fn run<S>(&mut self, ws: tokio_tungstenite::WebSocketStream<S>) -> SessionEnd
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let (mut sink, mut stream) = ws.split();
        for m in self.adapter.subscribe_messages() {
            if let Err(e) = sink.send(WsMessage::text(m)).await {
                return SessionEnd::Lost(format!("subscribe failed: {e}"));
            }
        }
        let ping = self.adapter.app_ping();
        let mut ping_tick =
            tokio::time::interval(ping.as_ref().map_or(Duration::from_secs(3600), |p| p.0));
        ping_tick.tick().await;
        let mut got_data = false;
        let mut trades = self.pool.take();
        loop {
            let next = tokio::select! {
                _ = self.shutdown.cancelled() => {
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
                r = tokio::time::timeout(self.opts.idle_timeout, stream.next()) => r,
            };
            let frame = match next {
                Err(_) => {
                    return SessionEnd::Lost(format!(
                        "no data for {:?} (idle timeout)",
                        self.opts.idle_timeout
                    ))
                }
                Ok(None) => return SessionEnd::Lost("connection closed".into()),
                Ok(Some(Err(e))) => return self.lost(e),
                Ok(Some(Ok(f))) => f,
            };
            let received_ts = chrono::Utc::now();
            let end = self
                .take_buffered(frame, &mut sink, &mut stream, &mut trades)
                .await;
            if !trades.is_empty() {
                if !got_data {
                    got_data = true;
                    self.backoff.reset();
                }
                add(&self.stats.trades_in, trades.len() as u64);
                let batch = std::mem::replace(&mut trades, self.pool.take());
                if self
                    .tx
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

    /// Handles `frame` and then every frame that is already buffered (up to
    /// [`BATCH_FRAMES`]), parsing trades into `trades`. `Some` when one of
    /// them ended the session; the trades read before it are still handed
    /// over by the caller.
    async fn take_buffered<K, St>(
        &mut self,
        mut frame: WsMessage,
        sink: &mut K,
        stream: &mut St,
        trades: &mut Vec<crate::exchange::RawTrade>,
    ) -> Option<SessionEnd>
    where
        K: futures::Sink<WsMessage> + Unpin,
        K::Error: std::fmt::Display,
        St: futures::Stream<Item = Result<WsMessage, WsError>> + Unpin,
    {
        // Take every frame that is already buffered (up to a batch), so a
        // busy feed costs one channel hand-off per batch, not per frame.
        let mut taken = 0;
        loop {
            taken += 1;
            if let Err(e) = self.handle_frame(frame, sink, trades).await {
                return Some(e);
            }
            if taken == BATCH_FRAMES {
                return None;
            }
            frame = match stream.next().now_or_never() {
                Some(Some(Ok(f))) => f,
                Some(Some(Err(e))) => return Some(self.lost(e)),
                Some(None) => return Some(SessionEnd::Lost("connection closed".into())),
                None => return None,
            };
        }
    }

    /// A read error ends the session; the ones caused by what the server sent
    /// (a message over the size limit, a text message that is not UTF-8) are
    /// also counted as rejected frames, so bad input is never just a reconnect.
    fn lost(&mut self, e: WsError) -> SessionEnd {
        let kind = match &e {
            WsError::Capacity(_) => Some("too_large"),
            WsError::Utf8(_) => Some("invalid_utf8"),
            _ => None,
        };
        if let Some(kind) = kind {
            add(&self.stats.frames, 1);
            FrameRejected {
                kind,
                error: &e,
                first_of_kind: self.logged_kinds.insert(kind),
            }
            .emit_to(&self.stats);
        }
        SessionEnd::Lost(e.to_string())
    }

    /// Handles one frame: parses text into `trades`, answers pings, counts
    /// rejects. An `Err` ends the session.
    async fn handle_frame<K>(
        &mut self,
        frame: WsMessage,
        sink: &mut K,
        trades: &mut Vec<crate::exchange::RawTrade>,
    ) -> Result<(), SessionEnd>
    where
        K: futures::Sink<WsMessage> + Unpin,
        K::Error: std::fmt::Display,
    {
        let stats = &*self.stats;
        match frame {
            WsMessage::Text(text) => {
                add(&stats.frames, 1);
                let before = trades.len();
                match self.adapter.parse_frame(text.as_str(), trades) {
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
                            first_of_kind: self.logged_kinds.insert(kind),
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
                    first_of_kind: self.logged_kinds.insert("binary_frame"),
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
}

/// Frames taken per hand-off to the pipeline when they are already buffered.
const BATCH_FRAMES: usize = 256;

#[cfg(test)]
mod tests {
    //! The reader against a real WebSocket server on port 0 that sends what a
    //! broken or hostile exchange might: every bad frame is counted under its
    //! kind (in the run stats and in `tickbridge_producer_malformed_total`),
    //! an oversized or non-UTF-8 message costs one reconnect, not memory or
    //! a panic, and good trades around them still arrive.

    use super::*;
    use crate::exchange::{adapter, MAX_FRAME_BYTES};
    use crate::stats::get;
    use tickbridge_model::Source;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;

    fn trade(id: u64, symbol: &str, qty: &str) -> String {
        format!(
            r#"{{"stream":"x@trade","data":{{"e":"trade","E":1672515782136,"s":"{symbol}","t":{id},"p":"0.001","q":"{qty}","T":1672515782136,"m":true,"M":true}}}}"#
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bad_frames_are_counted_by_kind_and_bounded() {
        let metrics = tickbridge_model::telemetry::install_metrics(None).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            for conn in 0.. {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    continue;
                };
                match conn {
                    0 => {
                        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
                        for f in [
                            trade(1, "BTCUSDT", "1"),
                            trade(2, "DOGEUSDT", "1"), // not subscribed
                            trade(3, "BTCUSDT", "-1"), // negative quantity
                            deep,                      // 200 kB of nesting
                        ] {
                            ws.send(WsMessage::text(f)).await.unwrap();
                        }
                        // 16 MiB: under tungstenite's default limits, over ours.
                        let _ = ws.send(WsMessage::binary(vec![b' '; 16 << 20])).await;
                    }
                    1 => {
                        let bad = Frame::message(
                            vec![b'{', 0xff, 0xfe, b'}'],
                            OpCode::Data(Data::Text),
                            true,
                        );
                        let _ = ws.send(WsMessage::Frame(bad)).await;
                    }
                    _ => {
                        let _ = ws.send(WsMessage::text(trade(4, "BTCUSDT", "1"))).await;
                    }
                }
                // Hold the connection until the client goes.
                while let Some(Ok(_)) = ws.next().await {}
            }
        });

        let ex: Arc<dyn Exchange> =
            Arc::from(adapter(Source::Binance, &["BTC-USDT".to_string()]).unwrap());
        let (tx, mut rx) = mpsc::channel(16);
        let stats = Arc::new(Stats::default());
        let stop = Shutdown::new();
        let opts = WsOptions {
            url: format!("ws://{addr}"),
            idle_timeout: Duration::from_secs(20),
            reconnect_min: Duration::from_millis(10),
            reconnect_max: Duration::from_millis(50),
        };
        let ctx = Context {
            adapter: ex,
            tx,
            pool: BatchPool::default(),
            stats: stats.clone(),
            shutdown: stop.clone(),
        };
        let task = tokio::spawn(run(ctx, opts));
        let mut ids = Vec::new();
        while ids.len() < 2 {
            match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
                Ok(Some(SourceEvent::Trades { trades, .. })) => {
                    ids.extend(trades.iter().map(|t| t.trade_id))
                }
                Ok(Some(_)) => {}
                other => panic!("reader stopped or stalled: {other:?}, ids {ids:?}"),
            }
        }
        stop.trigger();
        task.await.unwrap();
        assert_eq!(ids, [1, 4], "good trades around the bad ones arrive");
        // unknown_symbol, invalid_value, malformed (nesting), too_large, invalid_utf8
        assert_eq!(get(&stats.malformed), 5);
        assert_eq!(
            get(&stats.reconnects),
            2,
            "one per connection-ending bad message"
        );
        let text = metrics.render();
        for kind in [
            "unknown_symbol",
            "invalid_value",
            "malformed",
            "too_large",
            "invalid_utf8",
        ] {
            let series = format!("tickbridge_producer_malformed_total{{kind=\"{kind}\"}}");
            assert!(text.contains(&series), "{series} missing from:\n{text}");
        }
        const { assert!(MAX_FRAME_BYTES < 16 << 20) };
    }
}
