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
//! the report says how many messages are unconfirmed).
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
use crate::stats::{get, SinkReport, Stats};
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tickbridge_model::{Shutdown, Via};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// What a run did, printed as JSON at exit.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// Producer id (scopes `seq`).
    pub producer: String,
    /// Exchange.
    pub exchange: String,
    /// `ws` or `poll`.
    pub via: &'static str,
    /// Seconds the run lasted.
    pub seconds: f64,
    /// Seconds from the first tick handed to the sinks until every sink had
    /// confirmed everything: the denominator of throughput figures, without
    /// connection and topic setup.
    pub active_seconds: f64,
    /// Frames (or REST bodies) read.
    pub frames: u64,
    /// Trades parsed.
    pub trades_in: u64,
    /// Ticks emitted to the sinks.
    pub ticks: u64,
    /// Gap notices emitted by the pipeline.
    pub gaps: u64,
    /// Trades those notices report missing.
    pub gap_trades: u64,
    /// Duplicates dropped.
    pub duplicates: u64,
    /// Poll responses' overlap with earlier polls.
    pub poll_overlap: u64,
    /// Out-of-order trades.
    pub out_of_order: u64,
    /// Rejected frames.
    pub malformed: u64,
    /// Feed reconnections.
    pub reconnects: u64,
    /// Per sink.
    pub sinks: Vec<SinkReport>,
    /// Sum of `unconfirmed` over sinks.
    pub unconfirmed: u64,
}

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
        ViaArg::Ws => (
            "--url",
            cfg.url
                .clone()
                .unwrap_or_else(|| exchange::default_ws_url(cfg.exchange).to_string()),
        ),
        ViaArg::Poll => (
            "--rest-url",
            cfg.rest_url
                .clone()
                .unwrap_or_else(|| exchange::default_rest_url(cfg.exchange).to_string()),
        ),
    };
    source::check_feed_host(feed_url.0, &feed_url.1)
        .await
        .map_err(ProducerError::Config)?;
    let stats = Arc::new(Stats::default());
    let hard_stop = Shutdown::new();
    let mut sinks: Vec<SinkTask> = Vec::new();

    // Sinks first, so a broker that is down or misconfigured at startup fails
    // the run at once with a clear message instead of buffering forever.
    let retry_min = cfg.reconnect_min;
    let retry_max = cfg.reconnect_max;
    if cfg.has_sink(SinkKind::Rabbitmq) {
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
            reconnect_min: retry_min,
            reconnect_max: retry_max,
        };
        let handle = spawn_sink(sinks::amqp::run(
            cfg.amqp.clone(),
            opts,
            session,
            buffer.clone(),
            stats.clone(),
            hard_stop.clone(),
        ));
        sinks.push(SinkTask {
            kind: SinkKind::Rabbitmq,
            buffer,
            handle,
        });
    }
    if cfg.has_sink(SinkKind::Kafka) {
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
            stats.clone(),
            hard_stop.clone(),
        ));
        sinks.push(SinkTask {
            kind: SinkKind::Kafka,
            buffer,
            handle,
        });
    }
    if cfg.has_sink(SinkKind::Jsonl) {
        let buffer = Buffer::new(cfg.max_buffer, cfg.overflow);
        let (dir, b, s, h) = (
            cfg.out_dir.clone(),
            buffer.clone(),
            stats.clone(),
            hard_stop.clone(),
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
        sinks.push(SinkTask {
            kind: SinkKind::Jsonl,
            buffer,
            handle,
        });
    }

    // The feed reader.
    let (tx, mut rx) = mpsc::channel::<SourceEvent>(16);
    let pool = source::BatchPool::default();
    let source_stop = shutdown.child();
    let source = match cfg.via {
        ViaArg::Ws => {
            let base = cfg
                .url
                .clone()
                .unwrap_or_else(|| exchange::default_ws_url(cfg.exchange).to_string());
            let opts = source::ws::WsOptions {
                url: adapter.ws_url(&base),
                idle_timeout: cfg.idle_timeout,
                reconnect_min: retry_min,
                reconnect_max: retry_max,
            };
            tracing::info!(url = %opts.url, symbols = ?cfg.symbols, %producer_id, "streaming");
            tokio::spawn(source::ws::run(
                adapter.clone(),
                opts,
                tx,
                pool.clone(),
                stats.clone(),
                source_stop.clone(),
            ))
        }
        ViaArg::Poll => {
            let base = cfg
                .rest_url
                .clone()
                .unwrap_or_else(|| exchange::default_rest_url(cfg.exchange).to_string());
            let opts = source::poll::PollOptions {
                base,
                interval: cfg.poll_interval,
                limit: cfg.poll_limit,
                timeout: Duration::from_secs(10),
                reconnect_min: retry_min,
                reconnect_max: retry_max,
            };
            tracing::info!(url = %opts.base, interval = ?cfg.poll_interval, symbols = ?cfg.symbols, %producer_id, "polling");
            tokio::spawn(source::poll::run(
                adapter.clone(),
                opts,
                tx,
                pool.clone(),
                stats.clone(),
                source_stop.clone(),
            ))
        }
    };

    let mut continuity = Continuity::new(cfg.exchange, via, producer_id.clone(), cfg.dedup_window);
    if let Some(path) = &cfg.state_file {
        for (symbol, last) in state::load(path)? {
            tracing::info!(%symbol, last_trade_id = last, "resuming after an earlier run");
            continuity.resume(&symbol, last);
        }
    }
    let save_state = |c: &Continuity| {
        if let Some(path) = &cfg.state_file {
            if let Err(e) = state::save(path, &c.last_trade_ids()) {
                tracing::error!(path = %path.display(), error = %e, "cannot write --state-file");
            }
        }
    };
    let deadline = cfg
        .max_seconds
        .map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    let mut stats_tick = tokio::time::interval(cfg.stats_interval.max(Duration::from_millis(100)));
    stats_tick.tick().await;
    let mut last_line = (Instant::now(), 0u64);
    let mut out: Vec<Arc<Outgoing>> = Vec::with_capacity(64);
    let mut abandoned = 0u64;
    let mut handover_deadline: Option<tokio::time::Instant> = None;
    let mut first_tick: Option<Instant> = None;
    // Once stopping, the reader is told to stop and the loop keeps going
    // until it has handed over every trade already read off the socket.
    let mut stopping = false;
    'main: loop {
        let ev = tokio::select! {
            _ = shutdown.cancelled(), if !stopping => {
                stopping = true;
                source_stop.trigger();
                continue;
            }
            _ = async { tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)).await }, if deadline.is_some() && !stopping => {
                tracing::info!(seconds = cfg.max_seconds, "--max-seconds reached");
                stopping = true;
                source_stop.trigger();
                continue;
            }
            _ = stats_tick.tick() => {
                last_line = stats_line(&stats, &sinks, last_line);
                save_state(&continuity);
                continue;
            }
            ev = rx.recv() => ev,
        };
        match ev {
            None => break,
            Some(SourceEvent::Connected { attempt }) => {
                tracing::debug!(attempt, "source connected");
            }
            Some(SourceEvent::Disconnected { reason }) => {
                tracing::debug!(%reason, "source disconnected");
                continuity.on_disconnect();
            }
            Some(SourceEvent::Trades {
                mut trades,
                received_ts,
            }) => {
                for raw in trades.drain(..) {
                    if cfg.max_events.is_some_and(|m| get(&stats.ticks) >= m) {
                        break;
                    }
                    continuity.on_trade(raw, received_ts, &stats, &mut out);
                }
                pool.give(trades);
                if !out.is_empty() {
                    first_tick.get_or_insert_with(Instant::now);
                }
                for s in &sinks {
                    let mut next = 0;
                    loop {
                        next = s.buffer.push_available(&out, next);
                        if next == out.len() {
                            break;
                        }
                        // Full under `block`: wait for room for one, then
                        // hand over the rest in bulk again.
                        let push = s.buffer.push(out[next].clone());
                        tokio::pin!(push);
                        // The stats line and /metrics keep ticking while
                        // blocked: a broker outage under `block` is exactly
                        // when the operator needs to see the full buffer.
                        let pushed = !stopping
                            && loop {
                                tokio::select! {
                                    _ = &mut push => break true,
                                    _ = shutdown.cancelled() => {
                                        stopping = true;
                                        source_stop.trigger();
                                        break false;
                                    }
                                    _ = stats_tick.tick() => {
                                        last_line = stats_line(&stats, &sinks, last_line);
                                    }
                                }
                            };
                        if !pushed {
                            // Stopping: the sinks keep draining, so keep
                            // handing over what was already read, until the
                            // drain deadline.
                            let deadline = *handover_deadline.get_or_insert_with(|| {
                                tokio::time::Instant::now() + cfg.drain_timeout
                            });
                            if tokio::time::timeout_at(deadline, push).await.is_err() {
                                abandoned += (out.len() - next) as u64;
                                tracing::warn!(
                                    sink = s.kind.as_str(),
                                    "drain deadline passed while blocked on a full buffer"
                                );
                                break 'main;
                            }
                        }
                        next += 1;
                    }
                }
                out.clear();
                if !stopping && cfg.max_events.is_some_and(|m| get(&stats.ticks) >= m) {
                    tracing::info!(max_events = cfg.max_events, "--max-events reached");
                    stopping = true;
                    source_stop.trigger();
                }
            }
        }
    }

    // Drain: stop the reader, close the buffers, wait for every confirm.
    source_stop.trigger();
    drop(rx);
    let _ = source.await;
    save_state(&continuity);
    for s in &sinks {
        s.buffer.close();
    }
    tracing::info!(timeout = ?cfg.drain_timeout, "draining: waiting for every confirm and delivery report");
    // Per sink: messages left unconfirmed, and when it finished.
    let mut remaining: Vec<Option<(u64, Instant)>> = vec![None; sinks.len()];
    let drain = async {
        for (i, s) in sinks.iter_mut().enumerate() {
            remaining[i] = Some((&mut s.handle).await.unwrap_or_else(|e| {
                tracing::error!(sink = s.kind.as_str(), error = %e, "sink task failed");
                (s.buffer.len() as u64, Instant::now())
            }));
        }
    };
    if tokio::time::timeout(cfg.drain_timeout, drain)
        .await
        .is_err()
    {
        tracing::warn!("drain timeout passed; counting what is left as unconfirmed");
        hard_stop.trigger();
        for (i, s) in sinks.iter_mut().enumerate() {
            if remaining[i].is_none() {
                remaining[i] = Some(
                    (&mut s.handle)
                        .await
                        .unwrap_or((s.buffer.len() as u64, Instant::now())),
                );
            }
        }
    }
    // The last sink's end is the end of the active time.
    let done_at = remaining.iter().flatten().map(|&(_, at)| at).max();
    let remaining: Vec<(SinkKind, u64)> = sinks
        .iter()
        .zip(remaining)
        .map(|(s, r)| (s.kind, r.map_or(0, |(n, _)| n)))
        .collect();
    let sink_reports: Vec<SinkReport> = remaining
        .iter()
        .map(|(k, n)| stats.sink(*k).report(*k, *n + abandoned))
        .collect();
    let unconfirmed = sink_reports.iter().map(|r| r.unconfirmed).sum();
    sync_metrics(&stats, &sinks);
    let report = RunReport {
        producer: producer_id,
        exchange: cfg.exchange.to_string(),
        via: via.as_str(),
        seconds: started.elapsed().as_secs_f64(),
        active_seconds: first_tick.map_or(0.0, |t| {
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
    stats_line(&stats, &sinks, last_line);
    tracing::info!(
        ticks = report.ticks,
        unconfirmed,
        seconds = format!("{:.1}", report.seconds),
        "producer finished"
    );
    if let Some(path) = &cfg.report {
        if let Ok(text) = serde_json::to_string_pretty(&report) {
            if let Err(e) = std::fs::write(path, text) {
                tracing::error!(path = %path.display(), error = %e, "cannot write report");
            }
        }
    }
    Ok(report)
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
