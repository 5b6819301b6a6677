//! One WebSocket connection: the send loop every exchange shares.
//!
//! A reader task forwards the client's text frames (subscribe, ping) over a
//! channel; the writer loop below owns the socket's sink and alternates
//! between (1) handling control messages, (2) feeding every trade that is due
//! (a batch at a time, flushed once, so a fast connection costs one syscall
//! per batch, not per frame), (3) keepalives, and (4) sleeping until the next
//! trade, keepalive, control message or shutdown.
//!
//! Faults are applied right after the N-th trade frame of the connection, in
//! the order dup, malformed, gap, stall, close.

use crate::exchange::{binance, coinbase, kraken};
use crate::market::Market;
use crate::stats::{Counters, IdRange};
use crate::wire::Writer;
use crate::Shared;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};
use std::sync::Arc;
use std::time::Duration;
use tickbridge_model::Shutdown;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Which wire format a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// Binance `/ws/...`: bare events.
    BinanceRaw,
    /// Binance `/stream?streams=...`: events wrapped with their stream name.
    BinanceCombined,
    /// Coinbase Exchange feed.
    Coinbase,
    /// Kraken v2.
    Kraken,
}

/// One subscribed market on one connection.
#[derive(Debug)]
pub(crate) struct Sub {
    pub market: Arc<Market>,
    /// Next trade id this connection will send.
    pub next_id: u64,
    /// Coinbase `heartbeat` channel.
    pub heartbeat: bool,
    /// Coinbase `matches` channel (always true elsewhere).
    pub trades: bool,
}

/// Something to send that is not a paced trade.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// A text reply (ack, pong, error, heartbeat).
    Text(String),
    /// Coinbase `last_match` of a market (by index in `subs`) and trade id.
    LastMatch(usize, u64),
}

type Sink = SplitSink<WebSocket, Message>;

/// What the loop does after a trade frame.
enum Flow {
    Continue,
    Close,
    Stop,
}

/// Per-connection state.
pub(crate) struct Conn {
    pub id: u64,
    pub flavor: Flavor,
    pub shared: Arc<Shared>,
    pub subs: Vec<Sub>,
    pub out: Vec<Outgoing>,
    pub w: Writer,
    frames: u64,
    rr: usize,
    local: Vec<Counters>,
    log: String,
    shutdown: Shutdown,
}

const BATCH: usize = 256;

impl Conn {
    pub(crate) fn new(id: u64, flavor: Flavor, shared: Arc<Shared>, shutdown: Shutdown) -> Self {
        let n = shared.markets.len();
        Self {
            id,
            flavor,
            shared,
            subs: Vec::new(),
            out: Vec::new(),
            w: Writer::new(),
            frames: 0,
            rr: 0,
            local: vec![Counters::default(); n],
            log: String::new(),
            shutdown,
        }
    }

    /// Subscribes to `market` unless already subscribed; returns its index in
    /// `subs`. New subscriptions start after the market's head.
    pub(crate) fn subscribe(&mut self, market: &Arc<Market>) -> usize {
        if let Some(i) = self
            .subs
            .iter()
            .position(|s| Arc::ptr_eq(&s.market, market))
        {
            return i;
        }
        market.start();
        self.local[market.index_global].started = true;
        self.subs.push(Sub {
            market: market.clone(),
            next_id: market.next_for_new_subscriber(),
            heartbeat: false,
            trades: true,
        });
        self.subs.len() - 1
    }

    /// Drops the subscription to `market`.
    pub(crate) fn unsubscribe(&mut self, market: &Arc<Market>) {
        self.subs.retain(|s| !Arc::ptr_eq(&s.market, market));
        self.rr = 0;
    }

    fn keepalive_interval(&self) -> Duration {
        match self.flavor {
            Flavor::BinanceRaw | Flavor::BinanceCombined => self.shared.config.ping_interval,
            Flavor::Coinbase | Flavor::Kraken => self.shared.config.heartbeat_interval,
        }
    }

    fn control(&mut self, text: &str) {
        match self.flavor {
            Flavor::BinanceRaw | Flavor::BinanceCombined => binance::control(self, text),
            Flavor::Coinbase => coinbase::control(self, text),
            Flavor::Kraken => kraken::control(self, text),
        }
    }

    fn active(&self, s: &Sub) -> bool {
        s.trades && !s.market.exhausted(s.next_id)
    }

    /// The subscription whose next trade is due now, if any.
    fn pick_due(&mut self, now: Instant) -> Option<usize> {
        if self.shared.config.rate > 0.0 {
            let mut best: Option<(usize, Instant)> = None;
            for (i, s) in self.subs.iter().enumerate() {
                if !self.active(s) {
                    continue;
                }
                let due = Instant::from_std(s.market.due(s.next_id));
                if due <= now && best.is_none_or(|(_, b)| due < b) {
                    best = Some((i, due));
                }
            }
            best.map(|(i, _)| i)
        } else {
            let n = self.subs.len();
            for k in 0..n {
                let i = (self.rr + k) % n;
                if self.active(&self.subs[i]) {
                    self.rr = (i + 1) % n;
                    return Some(i);
                }
            }
            None
        }
    }

    /// When the next trade falls due (paced markets), or now (full speed).
    fn next_due(&self) -> Option<Instant> {
        let active = self.subs.iter().filter(|s| self.active(s));
        if self.shared.config.rate > 0.0 {
            active
                .map(|s| Instant::from_std(s.market.due(s.next_id)))
                .min()
        } else {
            active.map(|_| Instant::now()).next()
        }
    }

    fn trade_frame(&mut self, sub: usize, id: u64, last_match: bool) -> Utf8Bytes {
        let market = self.subs[sub].market.clone();
        let t = market.trade(id);
        match self.flavor {
            Flavor::BinanceRaw => binance::trade_frame(&mut self.w, &market, &t, false),
            Flavor::BinanceCombined => binance::trade_frame(&mut self.w, &market, &t, true),
            Flavor::Coinbase => coinbase::match_frame(&mut self.w, &market, &t, last_match),
            Flavor::Kraken => kraken::trade_frame(&mut self.w, &market, &t),
        }
    }

    fn log_line(&mut self, market: &Market, id: u64, kind: &str) {
        if self.shared.stats.logging() {
            use std::fmt::Write;
            let _ = writeln!(
                self.log,
                r#"{{"conn":{},"exchange":"{}","symbol":"{}","trade_id":{id},"kind":"{kind}"}}"#,
                self.id, market.exchange, market.symbol
            );
        }
    }

    /// Publishes local counters and log lines.
    fn merge(&mut self) {
        let empty = Counters::default();
        for (i, c) in self.local.iter_mut().enumerate() {
            if *c != empty {
                self.shared.stats.merge(i, c);
            }
        }
        if !self.log.is_empty() {
            self.shared.stats.log(&self.log);
            self.log.clear();
        }
    }

    async fn send_outgoing(&mut self, sink: &mut Sink) -> Result<bool, axum::Error> {
        if self.out.is_empty() {
            return Ok(false);
        }
        for o in std::mem::take(&mut self.out) {
            match o {
                Outgoing::Text(t) => sink.feed(Message::Text(t.into())).await?,
                Outgoing::LastMatch(sub, id) => {
                    let frame = self.trade_frame(sub, id, true);
                    sink.feed(Message::Text(frame)).await?;
                    let market = self.subs[sub].market.clone();
                    let c = &mut self.local[market.index_global];
                    c.last_match += 1;
                    c.sent.insert(id);
                    self.log_line(&market, id, "last_match");
                }
            }
        }
        Ok(true)
    }

    async fn send_trade(&mut self, sub: usize, sink: &mut Sink) -> Result<Flow, axum::Error> {
        let id = self.subs[sub].next_id;
        self.subs[sub].next_id += 1;
        let market = self.subs[sub].market.clone();
        let frame = self.trade_frame(sub, id, false);
        sink.feed(Message::Text(frame.clone())).await?;
        market.mark_sent(id);
        let g = market.index_global;
        self.local[g].trades_sent += 1;
        self.local[g].sent.insert(id);
        self.log_line(&market, id, "sent");
        self.frames += 1;
        let n = self.frames;
        let cfg = &self.shared.config;
        let hit = |every: Option<u64>| every.is_some_and(|e| n.is_multiple_of(e));
        let (dup, malformed, gap, stall, close) = (
            hit(cfg.dup_every),
            hit(cfg.malformed_every),
            hit(cfg.gap_every),
            hit(cfg.stall_every),
            hit(cfg.close_every),
        );
        let (gap_size, stall_for) = (cfg.gap_size, cfg.stall_for);
        if dup {
            sink.feed(Message::Text(frame.clone())).await?;
            self.local[g].duplicates += 1;
            self.log_line(&market, id, "dup");
        }
        if malformed {
            let s = frame.as_str();
            let mut half = s.len() / 2;
            while !s.is_char_boundary(half) {
                half -= 1;
            }
            sink.feed(Message::Text(s[..half].into())).await?;
            self.local[g].malformed += 1;
        }
        if gap {
            let from = self.subs[sub].next_id;
            let to = market.cap(from + gap_size - 1);
            if from <= to {
                self.local[g].skipped.push(IdRange { from, to });
                self.subs[sub].next_id = to + 1;
            }
        }
        if stall {
            sink.flush().await?;
            self.local[g].stalls += 1;
            self.merge();
            tokio::select! {
                _ = self.shutdown.cancelled() => return Ok(Flow::Stop),
                _ = tokio::time::sleep(stall_for) => {}
            }
        }
        if close {
            sink.flush().await?;
            self.local[g].closes += 1;
            return Ok(Flow::Close);
        }
        Ok(Flow::Continue)
    }

    fn keepalive(&mut self, idle_since: Instant) -> Option<Message> {
        match self.flavor {
            Flavor::BinanceRaw | Flavor::BinanceCombined => {
                Some(Message::Ping(bytes::Bytes::from_static(b"feed-sim")))
            }
            Flavor::Coinbase => {
                for i in 0..self.subs.len() {
                    if self.subs[i].heartbeat {
                        let text = coinbase::heartbeat(&mut self.w, &self.subs[i].market);
                        self.out.push(Outgoing::Text(text));
                    }
                }
                None
            }
            Flavor::Kraken => {
                let quiet = idle_since.elapsed() >= self.keepalive_interval();
                (quiet && !self.subs.is_empty())
                    .then(|| Message::Text(Utf8Bytes::from_static(r#"{"channel":"heartbeat"}"#)))
            }
        }
    }

    /// Runs the connection until the client leaves, a close fault fires, or
    /// the server shuts down.
    pub(crate) async fn run(mut self, socket: WebSocket, initial: Vec<Arc<Market>>) {
        let (mut sink, mut stream) = socket.split();
        let (ctrl_tx, mut ctrl_rx) = mpsc::channel::<Utf8Bytes>(64);
        let reader = tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                let sent = match msg {
                    Message::Text(t) => ctrl_tx.send(t).await.is_ok(),
                    Message::Close(_) => false,
                    _ => true,
                };
                if !sent {
                    break;
                }
            }
        });
        if self.flavor == Flavor::Kraken {
            self.out.push(Outgoing::Text(kraken::status(self.id)));
        }
        for m in &initial {
            self.subscribe(m);
        }
        let _ = self.drive(&mut sink, &mut ctrl_rx).await;
        self.merge();
        reader.abort();
    }

    async fn drive(
        &mut self,
        sink: &mut Sink,
        ctrl_rx: &mut mpsc::Receiver<Utf8Bytes>,
    ) -> Result<(), axum::Error> {
        let interval = self.keepalive_interval();
        let mut next_keepalive = Instant::now() + interval;
        let mut last_send = Instant::now();
        loop {
            if self.shutdown.is_shutdown() {
                return Ok(());
            }
            loop {
                match ctrl_rx.try_recv() {
                    Ok(t) => self.control(t.as_str()),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => return Ok(()),
                }
            }
            let mut fed = self.send_outgoing(sink).await?;
            let now = Instant::now();
            let mut batch = 0;
            while batch < BATCH {
                let Some(sub) = self.pick_due(now) else { break };
                fed = true;
                batch += 1;
                match self.send_trade(sub, sink).await? {
                    Flow::Continue => {}
                    Flow::Close => {
                        self.merge();
                        return Ok(());
                    }
                    Flow::Stop => return Ok(()),
                }
            }
            if Instant::now() >= next_keepalive {
                next_keepalive = Instant::now() + interval;
                if let Some(msg) = self.keepalive(last_send) {
                    sink.feed(msg).await?;
                    fed = true;
                }
                fed |= self.send_outgoing(sink).await?;
            }
            if fed {
                sink.flush().await?;
                self.merge();
                last_send = Instant::now();
            }
            if batch == BATCH {
                continue;
            }
            let wake = self
                .next_due()
                .map_or(next_keepalive, |d| d.min(next_keepalive));
            tokio::select! {
                _ = self.shutdown.cancelled() => return Ok(()),
                m = ctrl_rx.recv() => match m {
                    Some(t) => self.control(t.as_str()),
                    None => return Ok(()),
                },
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }
}
