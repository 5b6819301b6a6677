//! The live reader, the state the page shows, and the fan-out to clients.
//!
//! One task owns everything that changes: it reads the topic in the
//! dashboard's own consumer group, folds each message into [`State`],
//! collects the messages of one `--batch-interval` into one SSE event, and
//! offers that event to every client. Clients are registered with this task
//! at a [`Cursor`]; only a client whose cursor equals the live position (or
//! is the start of an event still in the recent ring) is registered, so
//! from then on the live events it is offered are exactly the ones it lacks.
//!
//! Each client has a bounded queue. Offering an event is `try_send`: a full
//! queue means the client stopped reading, and it is cut off at once (its
//! connection is closed). The reader never waits for a client, and a client
//! never costs more than `--client-buffer` events, shared `Bytes` each.

use crate::config::{DashboardConfig, Start};
use crate::cursor::{Cursor, Order};
use crate::scrape::TargetView;
use crate::Result;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message as _;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tickbridge_broker::kafka::groups::LagProbe;
use tickbridge_model::telemetry::{InternalEvent, LatencyStats};
use tickbridge_model::{schema, Message, Shutdown};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

/// Gap and dead-letter marks kept for the page's timeline.
const MARKS_KEPT: usize = 200;

/// What a client receives for the messages of one interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum View {
    /// Every message (`batch` events): what the page draws from.
    #[default]
    Full,
    /// One aggregate per interval (`summary` events): per symbol the last
    /// price and the number of ticks, plus the counts. For many viewers
    /// that need the picture, not each trade. Its ids are the same Kafka
    /// positions, so it resumes the same way.
    Summary,
}

/// One interval's messages, encoded once per view and shared by every
/// client.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Position before the event's messages.
    pub start: Cursor,
    /// Position after them (the event's id).
    pub end: Cursor,
    /// The `batch` event, `id:`/`event:`/`data:` lines.
    pub bytes: Bytes,
    /// The `summary` event of the same messages.
    pub summary: Bytes,
}

impl Frame {
    /// The encoding for `view`.
    pub fn for_view(&self, view: View) -> &Bytes {
        match view {
            View::Full => &self.bytes,
            View::Summary => &self.summary,
        }
    }
}

/// Aggregates an interval's messages for [`View::Summary`].
#[derive(Debug, Default)]
pub struct Aggregate {
    messages: u64,
    gaps: u64,
    bad: u64,
    /// Symbol → (last price, ticks).
    symbols: BTreeMap<String, (String, u64)>,
    /// Oldest producer `received_ts` in the interval, ms.
    oldest: Option<i64>,
}

impl Aggregate {
    /// Adds one decoded message.
    pub fn add(&mut self, d: &Decoded) {
        self.messages += 1;
        match &d.message {
            Some(Message::Tick(t)) => {
                let e = self.symbols.entry(t.symbol.to_string()).or_default();
                e.0 = t.price.to_string();
                e.1 += 1;
                let rt = t.received_ts.timestamp_millis();
                self.oldest = Some(self.oldest.map_or(rt, |o| o.min(rt)));
            }
            Some(Message::Gap(_)) => self.gaps += 1,
            None => self.bad += 1,
        }
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.messages == 0
    }

    /// The `summary` event with `end` as its id; empties the aggregate.
    pub fn take_event(&mut self, end: &Cursor) -> Bytes {
        let syms: serde_json::Map<String, serde_json::Value> = self
            .symbols
            .iter()
            .map(|(k, (px, n))| (k.clone(), serde_json::json!({"px": px, "n": n})))
            .collect();
        let data = serde_json::json!({
            "at": now_ms(), "n": self.messages, "gaps": self.gaps, "bad": self.bad,
            "rt": self.oldest, "sym": syms,
        });
        *self = Aggregate::default();
        sse_event(Some(end), "summary", &data.to_string())
    }
}

/// Encodes one SSE event. `data` must be one line (JSON without newlines).
pub fn sse_event(id: Option<&Cursor>, event: &str, data: &str) -> Bytes {
    let mut s = String::with_capacity(data.len() + 64);
    if let Some(id) = id {
        let _ = writeln!(s, "id: {id}");
    }
    let _ = writeln!(s, "event: {event}");
    s.push_str("data: ");
    s.push_str(data);
    s.push_str("\n\n");
    Bytes::from(s)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// What one Kafka message contributes to an event and to the state.
pub struct Decoded {
    /// The compact JSON object the page receives.
    pub json: String,
    /// The decoded message, `None` when the body did not decode.
    pub message: Option<Message>,
    /// Why the body did not decode.
    pub error: Option<&'static str>,
}

/// Decodes one body at `partition`/`offset` into the compact object the
/// page reads: `p`, `o` (the position, so the page can check it has every
/// offset once), `k` (`t` tick, `g` gap notice, `x` undecodable) and the
/// fields it draws.
pub fn decode_entry(partition: i32, offset: i64, body: &[u8], now: DateTime<Utc>) -> Decoded {
    match schema::decode(body) {
        Ok(Message::Tick(t)) => {
            let lat = (now - t.received_ts).num_microseconds().unwrap_or(0) as f64 / 1000.0;
            let json = serde_json::json!({
                "p": partition, "o": offset, "k": "t", "s": &*t.symbol, "x": t.source.as_str(),
                "px": t.price.to_string(), "q": t.qty.to_string(), "sd": t.side.as_str(),
                "v": t.via.as_str(), "rt": t.received_ts.timestamp_millis(), "l": (lat * 100.0).round() / 100.0,
            })
            .to_string();
            Decoded {
                json,
                message: Some(Message::Tick(t)),
                error: None,
            }
        }
        Ok(Message::Gap(g)) => {
            let json = serde_json::json!({
                "p": partition, "o": offset, "k": "g", "s": &*g.symbol, "x": g.source.as_str(),
                "r": g.reason.as_str(), "n": g.missing_count, "v": g.via.as_str(),
                "rt": g.detected_ts.timestamp_millis(),
            })
            .to_string();
            Decoded {
                json,
                message: Some(Message::Gap(g)),
                error: None,
            }
        }
        Err(e) => Decoded {
            json: serde_json::json!({"p": partition, "o": offset, "k": "x", "e": e.kind()})
                .to_string(),
            message: None,
            error: Some(e.kind()),
        },
    }
}

/// Encodes a batch of entries as one `batch` event with `end` as its id.
/// `at` is when the event left the dashboard, for the clients' delay.
pub fn batch_event(end: &Cursor, entries: &[String], extra: &str) -> Bytes {
    let mut data = String::with_capacity(entries.iter().map(|e| e.len() + 1).sum::<usize>() + 64);
    let _ = write!(data, "{{\"at\":{}{extra},\"m\":[", now_ms());
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            data.push(',');
        }
        data.push_str(e);
    }
    data.push_str("]}");
    sse_event(Some(end), "batch", &data)
}

/// Per-symbol numbers on the page.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SymbolState {
    /// Exchange of the last tick.
    pub source: String,
    /// Last price, exact text.
    pub price: String,
    /// Ticks read.
    pub ticks: u64,
}

/// A timeline mark: a gap notice read from Kafka, or a dead letter seen in
/// a worker's metrics.
#[derive(Debug, Clone, Serialize)]
pub struct Mark {
    /// Milliseconds since the epoch.
    pub at: i64,
    /// `gap` or `dead_letter`.
    pub kind: &'static str,
    /// The reason (`trade_id_jump`, `handler_failed`, ...).
    pub reason: String,
    /// Symbol, or the worker that dead-lettered.
    pub what: String,
    /// Missing trades (gaps) or letters (dead letters), when known.
    pub count: Option<u64>,
}

/// Everything the dashboard read, as the page and `--summary-json` show it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct State {
    /// Topic read.
    pub topic: String,
    /// The dashboard's group.
    pub group: String,
    /// Messages read from Kafka (ticks, gap notices, undecodable).
    pub messages: u64,
    /// Ticks read.
    pub ticks: u64,
    /// Gap notices read.
    pub gap_notices: u64,
    /// Bodies that did not decode, by reason.
    pub decode_errors: BTreeMap<String, u64>,
    /// Ticks by the way the producer got them (`ws`, `poll`).
    pub ticks_by_via: BTreeMap<String, u64>,
    /// Messages read per partition.
    pub per_partition: BTreeMap<i32, u64>,
    /// Per symbol.
    pub symbols: BTreeMap<String, SymbolState>,
    /// Kafka → dashboard latency (from the producer's `received_ts`), p50 ms.
    pub latency_p50_ms: f64,
    /// Same, p99 ms.
    pub latency_p99_ms: f64,
    /// Live position (`next` offset per partition).
    pub cursor: String,
    /// The dashboard group's lag per partition, from the brokers (committed
    /// offsets against watermarks).
    pub lag: BTreeMap<i32, i64>,
    /// Connected SSE clients.
    pub clients: usize,
    /// Clients cut off for not reading.
    pub cut_off: u64,
    /// Recent gap notices and dead letters.
    pub marks: VecDeque<Mark>,
}

/// Answer to a registration.
#[derive(Debug)]
pub enum Registered {
    /// Registered: live events follow in the client's queue.
    Live,
    /// The client is behind the live position (and not within the recent
    /// ring): read Kafka up to this cursor, then register again.
    Behind(Cursor),
    /// The cursor is not a position of this topic.
    Ahead(Cursor),
    /// The hub has stopped.
    Closed,
}

/// A client's sending half, and the switch that closes its connection.
#[derive(Debug, Clone)]
pub struct ClientTx {
    /// Bounded queue of encoded events.
    pub tx: mpsc::Sender<Bytes>,
    /// Which encoding of the messages it receives.
    pub view: View,
    /// Cancelling it closes the client's TCP connection.
    pub ctl: CancellationToken,
}

struct RegisterReq {
    at: Option<Cursor>,
    client: ClientTx,
    reply: oneshot::Sender<Registered>,
}

/// Cheap handle to the hub task, one per server.
#[derive(Clone)]
pub struct Hub {
    reg: mpsc::Sender<RegisterReq>,
    live: watch::Receiver<Cursor>,
    state: Arc<Mutex<State>>,
    /// Clients currently holding a slot (connected `/events` streams).
    pub active: Arc<AtomicUsize>,
    /// The hub's settings.
    pub cfg: Arc<DashboardConfig>,
}

impl Hub {
    /// The live position: every message below it has been offered to the
    /// registered clients.
    pub fn live(&self) -> Cursor {
        self.live.borrow().clone()
    }

    /// A copy of the state.
    pub fn state(&self) -> State {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner()).clone();
        s.clients = self.active.load(Ordering::Relaxed);
        s
    }

    /// Registers a client at `at` (`None`: the live position).
    pub async fn register(&self, at: Option<Cursor>, client: ClientTx) -> Registered {
        let (reply, rx) = oneshot::channel();
        if self
            .reg
            .send(RegisterReq { at, client, reply })
            .await
            .is_err()
        {
            return Registered::Closed;
        }
        rx.await.unwrap_or(Registered::Closed)
    }
}

/// The dashboard group's lag as the brokers see it (committed offsets
/// against watermarks), measured by tickbridge-core's [`LagProbe`] off the
/// message path, once per `--scrape-interval`.
async fn sample_lag(
    probe: LagProbe,
    every: Duration,
    out: Arc<Mutex<BTreeMap<i32, i64>>>,
    shutdown: Shutdown,
) {
    probe
        .sample_every(every, &shutdown, |r| match r {
            Ok(l) => *out.lock().unwrap_or_else(|e| e.into_inner()) = l.by_partition(),
            Err(e) => tracing::debug!(error = %e, "group lag sample failed"),
        })
        .await
}

/// A client that stopped reading was disconnected.
struct ClientCutOff;
impl InternalEvent for ClientCutOff {
    fn emit(self) {
        tracing::info!("SSE client cut off: its buffer was full (it stopped reading)");
        metrics::counter!("tickbridge_dashboard_clients_cut_off_total").increment(1);
    }
}

/// A message that did not decode.
struct DecodeFailed {
    reason: &'static str,
    partition: i32,
    offset: i64,
}
impl InternalEvent for DecodeFailed {
    fn emit(self) {
        tracing::warn!(
            reason = self.reason,
            partition = self.partition,
            offset = self.offset,
            "undecodable message on the topic"
        );
        metrics::counter!("tickbridge_dashboard_decode_errors_total", "reason" => self.reason)
            .increment(1);
    }
}

/// Opens the live reader and starts the hub task. `shutdown` stops it; the
/// returned handle finishes when it has committed its position.
pub async fn start(
    cfg: Arc<DashboardConfig>,
    scrapes: mpsc::Receiver<Vec<TargetView>>,
    shutdown: Shutdown,
) -> Result<(Hub, tokio::task::JoinHandle<State>)> {
    let k = &cfg.kafka;
    k.ping(Duration::from_secs(10)).await?;
    let partitions = k.wait_for_topic(&k.topic, cfg.topic_wait).await?;
    let lag = Arc::new(Mutex::new(BTreeMap::new()));
    let mut c = k.client_config();
    c.set("group.id", &cfg.group)
        .set("client.id", "dashboard")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("fetch.wait.max.ms", "20");
    let consumer: StreamConsumer = k.finish(c).create()?;
    // Where each partition starts, as a number: the group's committed
    // offset, else the start the flags ask for. A number, not
    // `Offset::Beginning`, because every event id names every partition.
    let topic = k.topic.clone();
    let start_at = cfg.start;
    let cursor = tokio::task::block_in_place(|| -> Result<Cursor> {
        let t = Duration::from_secs(10);
        let mut want = TopicPartitionList::new();
        for p in 0..partitions {
            want.add_partition(&topic, p);
        }
        let committed = consumer.committed_offsets(want, t)?;
        let mut cur = Cursor::new(&topic);
        for p in 0..partitions {
            let (lo, hi) = consumer.fetch_watermarks(&topic, p, t)?;
            let committed = committed
                .find_partition(&topic, p)
                .and_then(|e| match e.offset() {
                    Offset::Offset(n) if n >= 0 => Some(n),
                    _ => None,
                });
            let n = match (committed, start_at) {
                (Some(n), _) => n.clamp(lo, hi),
                (None, Start::Earliest) => lo,
                (None, Start::Latest) => hi,
            };
            cur.next.insert(p, n);
        }
        Ok(cur)
    })?;
    let mut tpl = TopicPartitionList::new();
    for (p, n) in &cursor.next {
        tpl.add_partition_offset(&topic, *p, Offset::Offset(*n))?;
    }
    consumer.assign(&tpl)?;
    tracing::info!(topic = %topic, group = %cfg.group, partitions, start = %cursor, "dashboard reading Kafka");

    let (reg_tx, reg_rx) = mpsc::channel(1024);
    let (live_tx, live_rx) = watch::channel(cursor.clone());
    let state = Arc::new(Mutex::new(State {
        topic: topic.clone(),
        group: cfg.group.clone(),
        cursor: cursor.to_string(),
        ..State::default()
    }));
    let active = Arc::new(AtomicUsize::new(0));
    let hub = Hub {
        reg: reg_tx,
        live: live_rx,
        state: state.clone(),
        active: active.clone(),
        cfg: cfg.clone(),
    };
    let task = HubTask {
        cfg: cfg.clone(),
        consumer,
        cursor: cursor.clone(),
        batch_start: cursor,
        pending: Vec::new(),
        aggregate: Aggregate::default(),
        ring: VecDeque::new(),
        clients: Vec::new(),
        state,
        live_tx,
        lag: lag.clone(),
        lat: LatencyStats::default(),
        targets: Vec::new(),
        dead_letters_seen: BTreeMap::new(),
        active,
    };
    let probe = LagProbe::new(k, &cfg.group, &k.topic, Duration::from_secs(5))?;
    tokio::spawn(sample_lag(
        probe,
        cfg.scrape_interval,
        lag,
        shutdown.clone(),
    ));
    let handle = tokio::spawn(task.run(reg_rx, scrapes, shutdown));
    Ok((hub, handle))
}

struct HubTask {
    cfg: Arc<DashboardConfig>,
    consumer: StreamConsumer,
    cursor: Cursor,
    batch_start: Cursor,
    pending: Vec<String>,
    aggregate: Aggregate,
    ring: VecDeque<Frame>,
    clients: Vec<ClientTx>,
    state: Arc<Mutex<State>>,
    live_tx: watch::Sender<Cursor>,
    lag: Arc<Mutex<BTreeMap<i32, i64>>>,
    lat: LatencyStats,
    targets: Vec<TargetView>,
    dead_letters_seen: BTreeMap<(String, String), f64>,
    active: Arc<AtomicUsize>,
}

impl HubTask {
    async fn run(
        mut self,
        mut reg: mpsc::Receiver<RegisterReq>,
        mut scrapes: mpsc::Receiver<Vec<TargetView>>,
        shutdown: Shutdown,
    ) -> State {
        let mut batch_tick = tokio::time::interval(self.cfg.batch_interval);
        batch_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut status_tick = tokio::time::interval(self.cfg.scrape_interval);
        status_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Committed as often as the lag is sampled: the brokers' view of the
        // group is then at most one interval old.
        let mut commit_tick = tokio::time::interval(self.cfg.scrape_interval);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                Some(r) = reg.recv() => self.register(r),
                m = self.consumer.recv() => match m {
                    Ok(m) => {
                        let (p, o) = (m.partition(), m.offset());
                        let d = decode_entry(p, o, m.payload().unwrap_or_default(), Utc::now());
                        drop(m);
                        self.fold(p, o, d);
                        if self.pending.len() >= self.cfg.batch_max {
                            self.flush();
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "Kafka receive error");
                        metrics::counter!("tickbridge_dashboard_kafka_errors_total").increment(1);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                _ = batch_tick.tick() => self.flush(),
                Some(t) = scrapes.recv() => self.targets = t,
                _ = status_tick.tick() => self.status(),
                _ = commit_tick.tick() => self.commit(CommitMode::Async),
            }
        }
        self.flush();
        self.commit(CommitMode::Sync);
        for c in &self.clients {
            c.ctl.cancel();
        }
        self.snapshot()
    }

    fn commit(&self, mode: CommitMode) {
        let mut tpl = TopicPartitionList::new();
        for (p, n) in &self.cursor.next {
            let _ = tpl.add_partition_offset(&self.cursor.topic, *p, Offset::Offset(*n));
        }
        if let Err(e) = self.consumer.commit(&tpl, mode) {
            tracing::debug!(error = %e, "dashboard group commit failed");
        }
    }

    fn fold(&mut self, p: i32, o: i64, d: Decoded) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.messages += 1;
        *s.per_partition.entry(p).or_default() += 1;
        match &d.message {
            Some(Message::Tick(t)) => {
                s.ticks += 1;
                *s.ticks_by_via
                    .entry(t.via.as_str().to_string())
                    .or_default() += 1;
                let sym = s.symbols.entry(t.symbol.to_string()).or_default();
                sym.ticks += 1;
                sym.price = t.price.to_string();
                sym.source = t.source.as_str().to_string();
                self.lat
                    .record_micros((Utc::now() - t.received_ts).num_microseconds().unwrap_or(0));
            }
            Some(Message::Gap(g)) => {
                s.gap_notices += 1;
                push_mark(
                    &mut s.marks,
                    Mark {
                        at: g.detected_ts.timestamp_millis(),
                        kind: "gap",
                        reason: g.reason.as_str().to_string(),
                        what: g.symbol.to_string(),
                        count: g.missing_count,
                    },
                );
            }
            None => {
                let reason = d.error.unwrap_or("unknown");
                *s.decode_errors.entry(reason.to_string()).or_default() += 1;
                DecodeFailed {
                    reason,
                    partition: p,
                    offset: o,
                }
                .emit();
            }
        }
        drop(s);
        metrics::counter!("tickbridge_dashboard_messages_read_total").increment(1);
        self.cursor.advance(p, o);
        self.aggregate.add(&d);
        self.pending.push(d.json);
    }

    /// Sends the pending messages as one event.
    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let bytes = batch_event(&self.cursor, &self.pending, "");
        self.pending.clear();
        let frame = Frame {
            start: std::mem::replace(&mut self.batch_start, self.cursor.clone()),
            end: self.cursor.clone(),
            bytes,
            summary: self.aggregate.take_event(&self.cursor),
        };
        self.offer(Some(&frame), None);
        self.ring.push_back(frame);
        while self.ring.len() > self.cfg.recent {
            self.ring.pop_front();
        }
        let _ = self.live_tx.send(self.cursor.clone());
        self.state.lock().unwrap_or_else(|e| e.into_inner()).cursor = self.cursor.to_string();
    }

    /// Offers one event to every client (`frame` in each client's view, or
    /// the same `bytes` to all); a full queue cuts its client off.
    fn offer(&mut self, frame: Option<&Frame>, bytes: Option<&Bytes>) {
        let before = self.clients.len();
        let mut cut = 0u64;
        self.clients.retain(|c| {
            let b = match (frame, bytes) {
                (Some(f), _) => f.for_view(c.view),
                (None, Some(b)) => b,
                (None, None) => return true,
            };
            match c.tx.try_send(b.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    ClientCutOff.emit();
                    c.ctl.cancel();
                    cut += 1;
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
        if cut > 0 {
            self.state.lock().unwrap_or_else(|e| e.into_inner()).cut_off += cut;
        }
        if self.clients.len() != before {
            metrics::gauge!("tickbridge_dashboard_registered_clients")
                .set(self.clients.len() as f64);
        }
    }

    fn register(&mut self, r: RegisterReq) {
        // Whatever is pending goes out first, so the client's position is
        // a batch boundary.
        self.flush();
        let live = self.cursor.clone();
        let from = match r.at {
            None => live.clone(),
            Some(c) => c,
        };
        let queue: Vec<Bytes> = match from.order(&live) {
            Order::Ahead => {
                let _ = r.reply.send(Registered::Ahead(live));
                return;
            }
            Order::Equal => Vec::new(),
            Order::Behind => match self.ring.iter().position(|f| f.start == from) {
                Some(i) if self.ring.len() - i < r.client.tx.capacity() => self
                    .ring
                    .iter()
                    .skip(i)
                    .map(|f| f.for_view(r.client.view).clone())
                    .collect(),
                _ => {
                    let _ = r.reply.send(Registered::Behind(live));
                    return;
                }
            },
        };
        let hello = sse_event(Some(&from), "live", &self.status_json());
        if r.client.tx.try_send(hello).is_err() {
            let _ = r.reply.send(Registered::Closed);
            return;
        }
        for b in queue {
            if r.client.tx.try_send(b).is_err() {
                let _ = r.reply.send(Registered::Closed);
                return;
            }
        }
        self.clients.push(r.client);
        metrics::gauge!("tickbridge_dashboard_registered_clients").set(self.clients.len() as f64);
        let _ = r.reply.send(Registered::Live);
    }

    fn snapshot(&self) -> State {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.latency_p50_ms = self.lat.percentile_ms(50.0);
        s.latency_p99_ms = self.lat.percentile_ms(99.0);
        s.lag = self.lag.lock().unwrap_or_else(|e| e.into_inner()).clone();
        s.clients = self.active.load(Ordering::Relaxed);
        s.clone()
    }

    fn status_json(&self) -> String {
        let s = self.snapshot();
        serde_json::json!({"at": now_ms(), "dash": s, "targets": &self.targets}).to_string()
    }

    /// Pushes the state and the scraped targets to every client.
    fn status(&mut self) {
        self.flush();
        // A dead letter counter that grew is a mark on the timeline.
        let mut new_marks = Vec::new();
        for t in &self.targets {
            for (reason, v) in &t.dead_letters {
                let key = (t.name.clone(), reason.clone());
                let seen = self.dead_letters_seen.entry(key).or_insert(0.0);
                if *v > *seen {
                    new_marks.push(Mark {
                        at: now_ms(),
                        kind: "dead_letter",
                        reason: reason.clone(),
                        what: t.name.clone(),
                        count: Some((*v - *seen) as u64),
                    });
                    *seen = *v;
                }
            }
        }
        if !new_marks.is_empty() {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            for m in new_marks {
                push_mark(&mut s.marks, m);
            }
        }
        let bytes = sse_event(None, "status", &self.status_json());
        self.offer(None, Some(&bytes));
    }
}

fn push_mark(marks: &mut VecDeque<Mark>, m: Mark) {
    marks.push_back(m);
    while marks.len() > MARKS_KEPT {
        marks.pop_front();
    }
}
