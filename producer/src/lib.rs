//! tickbridge-producer: exchange trade feeds → RabbitMQ, Kafka, JSON Lines.
//!
//! ```text
//!  feed (ws | poll) ──SourceEvent──▶ Continuity ──Arc<Outgoing>──┬─▶ Buffer ─▶ RabbitMQ sink (confirms)
//!   reconnect, ping,  bounded mpsc   dedup, gaps,                ├─▶ Buffer ─▶ Kafka sink (delivery reports)
//!   idle timeout                     seq, serialize once         └─▶ Buffer ─▶ JSON Lines sink
//! ```
//!
//! [`run`] wires it together and returns a [`RunReport`] once every sink has
//! confirmed what it was given (or the drain timeout passed, in which case
//! the report says how many messages are unconfirmed). `--report PATH`
//! writes it as JSON; the type and its fields are in
//! [`tickbridge_model::report`] and `docs/reports.md`.
#![forbid(unsafe_code)]

pub mod alloc;
pub mod buffer;
pub mod config;
pub mod error;
pub mod events;
pub mod exchange;
pub mod pipeline;
pub mod sinks;
pub mod source;
pub mod state;
pub mod stats;

use crate::buffer::Buffer;
use crate::config::{ProducerConfig, SinkKind, ViaArg};
use crate::error::ProducerError;
use crate::pipeline::{Continuity, Outgoing};
use crate::source::SourceEvent;
use crate::stats::{get, Stats};
use std::sync::Arc;
use std::time::{Duration, Instant};
/// The report types live in the model crate, so that what reads the
/// `--report` file (the chaos suite) parses the type this crate writes.
pub use tickbridge_model::report::{RunReport, SinkReport};
use tickbridge_model::{Shutdown, Via};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

struct SinkTask {
    kind: SinkKind,
    buffer: Arc<Buffer>,
    /// Messages left unconfirmed, and when the sink finished.
    handle: JoinHandle<(u64, Instant)>,
}

/// Runs a sink task and notes when it finished. The run's active time ends
/// when the last sink has everything confirmed, not after its client is torn
/// down.
fn spawn_sink(
    sink: impl std::future::Future<Output = u64> + Send + 'static,
) -> JoinHandle<(u64, Instant)> {
    tokio::spawn(async move {
        let unconfirmed = sink.await;
        (unconfirmed, Instant::now())
    })
}

fn default_producer_id(cfg: &ProducerConfig) -> String {
    let via = match cfg.via {
        ViaArg::Ws => "ws",
        ViaArg::Poll => "poll",
    };
    format!(
        "{}-{via}-{}-{}",
        cfg.exchange,
        std::process::id(),
        chrono::Utc::now().timestamp_millis()
    )
}

/// Runs a producer until `shutdown`, `--max-events` or `--max-seconds`, then
/// drains every sink and reports.
pub async fn run(cfg: ProducerConfig, shutdown: Shutdown) -> Result<RunReport, ProducerError> {
    let mut pipeline = Pipeline::open(cfg, shutdown).await?;
    let mut feed = pipeline.spawn_source();
    let handed = pipeline.hand_over(&mut feed).await?;
    let remaining = pipeline.drain(feed, &handed).await;
    Ok(pipeline.report(handed, remaining))
}

/// Per sink: messages left unconfirmed and when the sink finished, `None`
/// until its task has ended.
type Remaining = Vec<Option<(u64, Instant)>>;

/// One producer run, as the steps [`run`] takes in order: [`Pipeline::open`],
/// [`Pipeline::spawn_source`], [`Pipeline::hand_over`], [`Pipeline::drain`],
/// [`Pipeline::report`]. It holds what every step shares, so each step reads
/// as one thing instead of one function threading a dozen locals.
struct Pipeline {
    cfg: ProducerConfig,
    /// The caller's signal: stops the reader, after which the sinks drain.
    shutdown: Shutdown,
    started: Instant,
    adapter: Arc<dyn exchange::Exchange>,
    via: Via,
    producer_id: String,
    stats: Arc<Stats>,
    /// Stops the sinks outright once the drain timeout has passed.
    hard_stop: Shutdown,
    sinks: Vec<SinkTask>,
}

/// The running feed reader and its end of the channel.
struct Feed {
    rx: mpsc::Receiver<SourceEvent>,
    /// Trade vectors handed back to the reader once emptied.
    pool: source::BatchPool,
    /// Stops the reader only (a child of the run's shutdown).
    stop: Shutdown,
    task: JoinHandle<()>,
}

/// The main loop's state, and what drain and report need from it.
struct HandOver {
    continuity: Continuity,
    stats_tick: tokio::time::Interval,
    /// When the last stats line was written, and the ticks then.
    last_line: (Instant, u64),
    /// One batch's messages, reused from batch to batch.
    out: Vec<Arc<Outgoing>>,
    /// Messages never handed to a sink because the drain deadline passed
    /// while its buffer was full.
    abandoned: u64,
    handover_deadline: Option<tokio::time::Instant>,
    first_tick: Option<Instant>,
    /// Once stopping, the reader is told to stop and the loop keeps going
    /// until it has handed over every trade already read off the socket.
    stopping: bool,
}

impl HandOver {
    /// Starts stopping: the reader stops, the loop hands over what it read.
    fn stop(&mut self, feed: &Feed) {
        self.stopping = true;
        feed.stop.trigger();
    }
}

impl Pipeline {
    /// Validates the configuration, resolves the adapter and the feed host,
    /// and opens every sink: whatever can fail at startup fails here, before
    /// a trade is read.
    async fn open(cfg: ProducerConfig, shutdown: Shutdown) -> Result<Self, ProducerError> {
        cfg.validate().map_err(ProducerError::Config)?;
        let started = Instant::now();
        let adapter: Arc<dyn exchange::Exchange> =
            Arc::from(exchange::adapter(cfg.exchange, &cfg.symbols)?);
        let via: Via = cfg.via.into();
        let producer_id = cfg
            .producer_id
            .clone()
            .unwrap_or_else(|| default_producer_id(&cfg));
        // An exchange host that does not resolve stops the run before any
        // broker is touched; a refused connection is retried by the reader.
        let feed_url = match cfg.via {
            ViaArg::Ws => ("--url", Self::ws_base(&cfg)),
            ViaArg::Poll => ("--rest-url", Self::rest_base(&cfg)),
        };
        source::check_feed_host(feed_url.0, &feed_url.1)
            .await
            .map_err(ProducerError::Config)?;
        let mut pipeline = Pipeline {
            cfg,
            shutdown,
            started,
            adapter,
            via,
            producer_id,
            stats: Arc::new(Stats::default()),
            hard_stop: Shutdown::new(),
            sinks: Vec::new(),
        };
        // Sinks first, so a broker that is down or misconfigured at startup
        // fails the run at once with a clear message instead of buffering
        // forever.
        if pipeline.cfg.has_sink(SinkKind::Rabbitmq) {
            pipeline.open_rabbitmq().await?;
        }
        if pipeline.cfg.has_sink(SinkKind::Kafka) {
            pipeline.open_kafka().await?;
        }
        if pipeline.cfg.has_sink(SinkKind::Jsonl) {
            pipeline.open_jsonl();
        }
        Ok(pipeline)
    }

    /// The WebSocket base URL: `--url`, or the exchange's default.
    fn ws_base(cfg: &ProducerConfig) -> String {
        cfg.url
            .clone()
            .unwrap_or_else(|| exchange::default_ws_url(cfg.exchange).to_string())
    }

    /// The REST base URL: `--rest-url`, or the exchange's default.
    fn rest_base(cfg: &ProducerConfig) -> String {
        cfg.rest_url
            .clone()
            .unwrap_or_else(|| exchange::default_rest_url(cfg.exchange).to_string())
    }

    /// Opens the RabbitMQ session and starts its sink task; a broker that is
    /// down or refuses the login fails the run here, at startup.
    async fn open_rabbitmq(&mut self) -> Result<(), ProducerError> {
        let cfg = &self.cfg;
        let topo = cfg.amqp.topology();
        let session = sinks::amqp::open(&cfg.amqp, &topo)
            .await
            .map_err(|e| match e {
                tickbridge_broker::Error::Config(_) => ProducerError::Broker(e),
                other => ProducerError::Config(cfg.amqp.unusable(&other)),
            })?;
        tracing::info!(url = %cfg.amqp.masked_url(), exchange = %topo.exchange, "RabbitMQ sink ready");
        let buffer = Buffer::new(cfg.max_buffer, cfg.overflow);
        let opts = sinks::amqp::AmqpSinkOptions {
            window: cfg.confirm_window,
            retries: cfg.publish_retries,
            reconnect_min: cfg.reconnect_min,
            reconnect_max: cfg.reconnect_max,
        };
        let handle = spawn_sink(sinks::amqp::run(
            cfg.amqp.clone(),
            opts,
            session,
            buffer.clone(),
            self.stats.clone(),
            self.hard_stop.clone(),
        ));
        self.sinks.push(SinkTask {
            kind: SinkKind::Rabbitmq,
            buffer,
            handle,
        });
        Ok(())
    }

    /// Checks the Kafka brokers answer, ensures the topic, warms the
    /// producer up and starts its sink task.
    async fn open_kafka(&mut self) -> Result<(), ProducerError> {
        let cfg = &self.cfg;
        cfg.kafka
            .ping(Duration::from_secs(10))
            .await
            .map_err(|e| ProducerError::Config(format!("{e} (is the Kafka broker running?)")))?;
        let partitions = cfg
            .kafka
            .ensure_topic(&cfg.kafka.topic, cfg.kafka.partitions)
            .await?;
        let opts = sinks::kafka::KafkaSinkOptions {
            window: cfg.kafka_in_flight.max(1),
            retries: cfg.publish_retries,
            compression: cfg.kafka_compression.clone(),
            linger_ms: cfg.kafka_linger_ms,
        };
        let producer = sinks::kafka::producer(&cfg.kafka, &opts)?;
        producer
            .warm_up(&cfg.kafka.topic, Duration::from_secs(10))
            .await;
        tracing::info!(brokers = %cfg.kafka.brokers, topic = %cfg.kafka.topic, partitions, "Kafka sink ready");
        let buffer = Buffer::new(cfg.max_buffer, cfg.overflow);
        let handle = spawn_sink(sinks::kafka::run(
            cfg.kafka.topic.clone(),
            opts,
            producer,
            buffer.clone(),
            self.stats.clone(),
            self.hard_stop.clone(),
        ));
        self.sinks.push(SinkTask {
            kind: SinkKind::Kafka,
            buffer,
            handle,
        });
        Ok(())
    }

    /// Starts the JSON Lines sink task; a write failure is logged and what
    /// it still buffered counts as unconfirmed.
    fn open_jsonl(&mut self) {
        let buffer = Buffer::new(self.cfg.max_buffer, self.cfg.overflow);
        let (dir, via, b, s, h) = (
            self.cfg.out_dir.clone(),
            self.via,
            buffer.clone(),
            self.stats.clone(),
            self.hard_stop.clone(),
        );
        let handle = spawn_sink(async move {
            match sinks::jsonl::run(dir, via, b.clone(), s, h).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(error = %e, "JSON Lines sink failed");
                    b.len() as u64
                }
            }
        });
        self.sinks.push(SinkTask {
            kind: SinkKind::Jsonl,
            buffer,
            handle,
        });
    }

    /// Starts the feed reader (WebSocket or REST poller) on its own stop
    /// signal, so the run can stop reading and still hand over what was read.
    fn spawn_source(&self) -> Feed {
        let cfg = &self.cfg;
        let (tx, rx) = mpsc::channel::<SourceEvent>(16);
        let pool = source::BatchPool::default();
        let stop = self.shutdown.child();
        let producer_id = &self.producer_id;
        let context = source::Context {
            adapter: self.adapter.clone(),
            tx,
            pool: pool.clone(),
            stats: self.stats.clone(),
            shutdown: stop.clone(),
        };
        let task = match cfg.via {
            ViaArg::Ws => {
                let opts = source::ws::WsOptions {
                    url: self.adapter.ws_url(&Self::ws_base(cfg)),
                    idle_timeout: cfg.idle_timeout,
                    reconnect_min: cfg.reconnect_min,
                    reconnect_max: cfg.reconnect_max,
                };
                tracing::info!(url = %opts.url, symbols = ?cfg.symbols, %producer_id, "streaming");
                tokio::spawn(source::ws::run(context, opts))
            }
            ViaArg::Poll => {
                let opts = source::poll::PollOptions {
                    base: Self::rest_base(cfg),
                    interval: cfg.poll_interval,
                    limit: cfg.poll_limit,
                    timeout: Duration::from_secs(10),
                    reconnect_min: cfg.reconnect_min,
                    reconnect_max: cfg.reconnect_max,
                };
                tracing::info!(url = %opts.base, interval = ?cfg.poll_interval, symbols = ?cfg.symbols, %producer_id, "polling");
                tokio::spawn(source::poll::run(context, opts))
            }
        };
        Feed {
            rx,
            pool,
            stop,
            task,
        }
    }

    /// Writes `--state-file`, if set: the last trade id per symbol, so a
    /// later run resumes continuity where this one stopped.
    fn save_state(&self, c: &Continuity) {
        if let Some(path) = &self.cfg.state_file {
            if let Err(e) = state::save(path, &c.last_trade_ids()) {
                tracing::error!(path = %path.display(), error = %e, "cannot write --state-file");
            }
        }
    }

    /// The continuity check, resumed from `--state-file` if one was saved.
    fn continuity(&self) -> Result<Continuity, ProducerError> {
        let cfg = &self.cfg;
        let mut continuity = Continuity::new(
            cfg.exchange,
            self.via,
            self.producer_id.clone(),
            cfg.dedup_window,
        );
        if let Some(path) = &cfg.state_file {
            for (symbol, last) in state::load(path)? {
                tracing::info!(%symbol, last_trade_id = last, "resuming after an earlier run");
                continuity.resume(&symbol, last);
            }
        }
        Ok(continuity)
    }

    /// The main loop: reads the feed's events and hands their trades to the
    /// sinks until the reader is done after a stop (shutdown, `--max-seconds`,
    /// `--max-events`) or the drain deadline passed while a buffer was full.
    /// The stats line and state file are kept current on the stats interval.
    async fn hand_over(&self, feed: &mut Feed) -> Result<HandOver, ProducerError> {
        let cfg = &self.cfg;
        let continuity = self.continuity()?;
        let deadline = cfg
            .max_seconds
            .map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
        let mut stats_tick =
            tokio::time::interval(cfg.stats_interval.max(Duration::from_millis(100)));
        stats_tick.tick().await;
        let mut h = HandOver {
            continuity,
            stats_tick,
            last_line: (Instant::now(), 0u64),
            out: Vec::with_capacity(64),
            abandoned: 0,
            handover_deadline: None,
            first_tick: None,
            stopping: false,
        };
        loop {
            let ev = tokio::select! {
                _ = self.shutdown.cancelled(), if !h.stopping => {
                    h.stop(feed);
                    continue;
                }
                _ = async { tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)).await }, if deadline.is_some() && !h.stopping => {
                    tracing::info!(seconds = cfg.max_seconds, "--max-seconds reached");
                    h.stop(feed);
                    continue;
                }
                _ = h.stats_tick.tick() => {
                    h.last_line = stats_line(&self.stats, &self.sinks, h.last_line);
                    self.save_state(&h.continuity);
                    continue;
                }
                ev = feed.rx.recv() => ev,
            };
            match ev {
                None => break,
                Some(SourceEvent::Connected { attempt }) => {
                    tracing::debug!(attempt, "source connected");
                }
                Some(SourceEvent::Disconnected { reason }) => {
                    tracing::debug!(%reason, "source disconnected");
                    h.continuity.on_disconnect();
                }
                Some(SourceEvent::Trades {
                    trades,
                    received_ts,
                }) => {
                    if !self.hand_batch(feed, &mut h, trades, received_ts).await {
                        break;
                    }
                }
            }
        }
        Ok(h)
    }

    /// One batch from the reader: through the continuity check (up to
    /// `--max-events`), then to every sink. `false` when the drain deadline
    /// passed while a full buffer held the hand-over up: the loop ends.
    async fn hand_batch(
        &self,
        feed: &Feed,
        h: &mut HandOver,
        mut trades: Vec<exchange::RawTrade>,
        received_ts: chrono::DateTime<chrono::Utc>,
    ) -> bool {
        let max_events = self.cfg.max_events;
        for raw in trades.drain(..) {
            if max_events.is_some_and(|m| get(&self.stats.ticks) >= m) {
                break;
            }
            h.continuity
                .on_trade(raw, received_ts, &self.stats, &mut h.out);
        }
        feed.pool.give(trades);
        if !h.out.is_empty() {
            h.first_tick.get_or_insert_with(Instant::now);
        }
        for s in &self.sinks {
            if !self.push_to(s, feed, h).await {
                return false;
            }
        }
        h.out.clear();
        if !h.stopping && max_events.is_some_and(|m| get(&self.stats.ticks) >= m) {
            tracing::info!(max_events, "--max-events reached");
            h.stop(feed);
        }
        true
    }

    /// Hands the batch in `h.out` to one sink's buffer, in bulk while it has
    /// room. `false` when stopping and the drain deadline passed while the
    /// buffer stayed full; what was not handed over counts as abandoned.
    async fn push_to(&self, s: &SinkTask, feed: &Feed, h: &mut HandOver) -> bool {
        let mut next = 0;
        loop {
            next = s.buffer.push_available(&h.out, next);
            if next == h.out.len() {
                return true;
            }
            // Full under `block`: wait for room for one, then
            // hand over the rest in bulk again.
            let push = s.buffer.push(h.out[next].clone());
            tokio::pin!(push);
            // The stats line and /metrics keep ticking while
            // blocked: a broker outage under `block` is exactly
            // when the operator needs to see the full buffer.
            let pushed = !h.stopping
                && loop {
                    tokio::select! {
                        _ = &mut push => break true,
                        _ = self.shutdown.cancelled() => {
                            h.stop(feed);
                            break false;
                        }
                        _ = h.stats_tick.tick() => {
                            h.last_line = stats_line(&self.stats, &self.sinks, h.last_line);
                        }
                    }
                };
            if !pushed {
                // Stopping: the sinks keep draining, so keep
                // handing over what was already read, until the
                // drain deadline.
                let drain_timeout = self.cfg.drain_timeout;
                let deadline = *h
                    .handover_deadline
                    .get_or_insert_with(|| tokio::time::Instant::now() + drain_timeout);
                if tokio::time::timeout_at(deadline, push).await.is_err() {
                    h.abandoned += (h.out.len() - next) as u64;
                    tracing::warn!(
                        sink = s.kind.as_str(),
                        "drain deadline passed while blocked on a full buffer"
                    );
                    return false;
                }
            }
            next += 1;
        }
    }

    /// Stops the reader, saves the state, closes the buffers and waits up to
    /// `--drain-timeout` for every confirm; past it the sinks are stopped
    /// outright and what they still hold counts as unconfirmed.
    async fn drain(&mut self, feed: Feed, h: &HandOver) -> Remaining {
        // Drain: stop the reader, close the buffers, wait for every confirm.
        let Feed { rx, stop, task, .. } = feed;
        stop.trigger();
        drop(rx);
        let _ = task.await;
        self.save_state(&h.continuity);
        for s in &self.sinks {
            s.buffer.close();
        }
        let drain_timeout = self.cfg.drain_timeout;
        tracing::info!(timeout = ?drain_timeout, "draining: waiting for every confirm and delivery report");
        // Per sink: messages left unconfirmed, and when it finished.
        let mut remaining: Remaining = vec![None; self.sinks.len()];
        let sinks = &mut self.sinks;
        let drain = async {
            for (i, s) in sinks.iter_mut().enumerate() {
                remaining[i] = Some((&mut s.handle).await.unwrap_or_else(|e| {
                    tracing::error!(sink = s.kind.as_str(), error = %e, "sink task failed");
                    (s.buffer.len() as u64, Instant::now())
                }));
            }
        };
        if tokio::time::timeout(drain_timeout, drain).await.is_err() {
            tracing::warn!("drain timeout passed; counting what is left as unconfirmed");
            self.hard_stop.trigger();
            for (i, s) in self.sinks.iter_mut().enumerate() {
                if remaining[i].is_none() {
                    remaining[i] = Some(
                        (&mut s.handle)
                            .await
                            .unwrap_or((s.buffer.len() as u64, Instant::now())),
                    );
                }
            }
        }
        remaining
    }

    /// Builds the [`RunReport`] from the stats and what each sink left
    /// unconfirmed, logs the last stats line, and writes `--report` if set.
    fn report(self, h: HandOver, remaining: Remaining) -> RunReport {
        let stats = &self.stats;
        // The last sink's end is the end of the active time.
        let done_at = remaining.iter().flatten().map(|&(_, at)| at).max();
        let remaining: Vec<(SinkKind, u64)> = self
            .sinks
            .iter()
            .zip(remaining)
            .map(|(s, r)| (s.kind, r.map_or(0, |(n, _)| n)))
            .collect();
        let sink_reports: Vec<SinkReport> = remaining
            .iter()
            .map(|(k, n)| stats.sink(*k).report(*k, *n + h.abandoned))
            .collect();
        let unconfirmed = sink_reports.iter().map(|r| r.unconfirmed).sum();
        sync_metrics(stats, &self.sinks);
        let report = RunReport {
            producer: self.producer_id,
            exchange: self.cfg.exchange.to_string(),
            via: self.via,
            seconds: self.started.elapsed().as_secs_f64(),
            active_seconds: h.first_tick.map_or(0.0, |t| {
                done_at
                    .unwrap_or_else(Instant::now)
                    .saturating_duration_since(t)
                    .as_secs_f64()
            }),
            frames: get(&stats.frames),
            trades_in: get(&stats.trades_in),
            ticks: get(&stats.ticks),
            gaps: get(&stats.gaps),
            gap_trades: get(&stats.gap_trades),
            duplicates: get(&stats.duplicates),
            poll_overlap: get(&stats.poll_overlap),
            out_of_order: get(&stats.out_of_order),
            malformed: get(&stats.malformed),
            reconnects: get(&stats.reconnects),
            sinks: sink_reports,
            unconfirmed,
        };
        stats_line(stats, &self.sinks, h.last_line);
        tracing::info!(
            ticks = report.ticks,
            unconfirmed,
            seconds = format!("{:.1}", report.seconds),
            "producer finished"
        );
        if let Some(path) = &self.cfg.report {
            if let Ok(text) = serde_json::to_string_pretty(&report) {
                if let Err(e) = std::fs::write(path, text) {
                    tracing::error!(path = %path.display(), error = %e, "cannot write report");
                }
            }
        }
        report
    }
}

fn sync_metrics(stats: &Stats, sinks: &[SinkTask]) {
    use metrics::{counter, gauge};
    counter!("tickbridge_producer_ticks_total").absolute(get(&stats.ticks));
    counter!("tickbridge_producer_frames_total").absolute(get(&stats.frames));
    counter!("tickbridge_producer_reconnects_total").absolute(get(&stats.reconnects));
    for s in sinks {
        let st = stats.sink(s.kind);
        let k = s.kind.as_str();
        counter!("tickbridge_producer_published_total", "sink" => k).absolute(get(&st.published));
        counter!("tickbridge_producer_confirmed_total", "sink" => k).absolute(get(&st.confirmed));
        counter!("tickbridge_producer_retries_total", "sink" => k).absolute(get(&st.retries));
        gauge!("tickbridge_producer_in_flight", "sink" => k).set(get(&st.in_flight) as f64);
        gauge!("tickbridge_producer_buffered", "sink" => k).set(s.buffer.len() as f64);
    }
}

fn stats_line(stats: &Stats, sinks: &[SinkTask], last: (Instant, u64)) -> (Instant, u64) {
    sync_metrics(stats, sinks);
    let now = Instant::now();
    let ticks = get(&stats.ticks);
    let rate = (ticks - last.1) as f64 / now.duration_since(last.0).as_secs_f64().max(1e-3);
    let mut per_sink = String::new();
    for s in sinks {
        let st = stats.sink(s.kind);
        per_sink.push_str(&format!(
            " {}={}/{} inflight={} buf={}",
            s.kind.as_str(),
            get(&st.confirmed),
            get(&st.published),
            get(&st.in_flight),
            s.buffer.len()
        ));
    }
    tracing::info!(
        "stats rate={rate:.0}/s ticks={ticks} confirmed/published:{per_sink} reconnects={} gaps={} dups={} malformed={}",
        get(&stats.reconnects),
        get(&stats.gaps),
        get(&stats.duplicates),
        get(&stats.malformed)
    );
    (now, ticks)
}
