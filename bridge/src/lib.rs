//! tickbridge-bridge: RabbitMQ ⇄ Kafka, at least once, in either or both
//! directions.
//!
//! * [`r2k`]: `rabbitmq-to-kafka`. Consume a queue, produce to a topic, ack
//!   a delivery only after Kafka's delivery report succeeded.
//! * [`k2r`]: `kafka-to-rabbitmq`. Consume a topic in a group, publish to an
//!   exchange with confirms and `mandatory`, store an offset only after the
//!   confirm, in order per partition.
//! * [`tracker`]: the two bits of bookkeeping that make out-of-order
//!   completions safe (multiple acks, per-partition offsets).
//! * [`mapping`]: how ids and headers cross between AMQP and Kafka, and the
//!   `tb-origin` marker that stops ping-pong.
//! * [`config`], [`error`], [`events`], [`stats`], [`rabbit`]: flags, the
//!   one error enum, log-and-count telemetry, counters, AMQP helpers.
//!
//! The binary in `src/bin/bridge.rs` only parses flags and calls [`run`]
//! with a [`Shutdown`]; tests call the same [`run`] (or the binary itself).
//!
//! **Lifecycle.** Startup checks are fatal with one clear line: a broker
//! that does not answer, a queue, exchange or topic that does not exist.
//! After that, any broker failure ends the current *session* and a new one
//! starts after a capped, jittered backoff; the source brokers' own
//! redelivery (unacked AMQP deliveries, uncommitted Kafka offsets) is what
//! makes that safe. Shutdown drains: each direction stops reading, waits
//! (up to `--drain-timeout`) for outstanding reports or confirms, acks or
//! commits them, and closes.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod error;
pub mod events;
pub mod k2r;
pub mod mapping;
pub mod r2k;
pub mod rabbit;
pub mod stats;
pub mod tracker;

pub use config::{BridgeConfig, Direction, K2rArgs, R2kArgs, Shared};
pub use error::{Error, Result};
pub use stats::{Stats, Summary};

use events::{K2R, R2K};
use stats::{DirStats, StatsLine};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tickbridge_broker::backoff::Backoff;
use tickbridge_broker::dedup::DedupWindow;
use tickbridge_broker::events::{Reconnecting, Scope};
use tickbridge_model::telemetry::InternalEvent;
use tickbridge_model::Shutdown;

/// Runs the configured directions until `shutdown` fires (then drains) or
/// one of them hits a terminal error. Returns the final counters.
pub async fn run(config: BridgeConfig, shutdown: Shutdown) -> Result<Summary> {
    run_with_stats(config, shutdown, Arc::new(Stats::default())).await
}

/// [`run`], with counters the caller can watch while it runs (tests, benches).
pub async fn run_with_stats(
    config: BridgeConfig,
    shutdown: Shutdown,
    stats: Arc<Stats>,
) -> Result<Summary> {
    config.validate()?;
    tickbridge_model::telemetry::install_metrics(config.shared.metrics_addr)?;
    let shared = &config.shared;
    let name = shared.instance_name();
    if config.r2k.is_some() {
        events::register(R2K);
    }
    if config.k2r.is_some() {
        events::register(K2R);
    }
    // One direction's terminal error stops the other as well.
    let stop = shutdown.child();
    let r2k = async {
        let Some(args) = &config.r2k else {
            return Ok(());
        };
        let r = run_r2k(shared, args, &stats, &name, &stop).await;
        if r.is_err() {
            stop.trigger();
        }
        r
    };
    let k2r = async {
        let Some(args) = &config.k2r else {
            return Ok(());
        };
        let r = run_k2r(shared, args, &stats, &name, &stop).await;
        if r.is_err() {
            stop.trigger();
        }
        r
    };
    let done = Shutdown::new();
    let ticker = async {
        let mut lines = (StatsLine::new(R2K), StatsLine::new(K2R));
        let mut tick = tokio::time::interval(shared.stats_interval);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = done.cancelled() => break,
                _ = tick.tick() => log_stats(&config, &stats, &mut lines),
            }
        }
        lines
    };
    let directions = async {
        let r = tokio::join!(r2k, k2r);
        done.trigger();
        r
    };
    let ((a, b), mut lines) = tokio::join!(directions, ticker);
    // The final stats line, unless the bridge never got past its startup
    // checks (then the one-line error says everything).
    let consumed = stats
        .r2k
        .consumed
        .load(std::sync::atomic::Ordering::Relaxed)
        + stats
            .k2r
            .consumed
            .load(std::sync::atomic::Ordering::Relaxed);
    if (a.is_ok() && b.is_ok()) || consumed > 0 {
        log_stats(&config, &stats, &mut lines);
    }
    a?;
    b?;
    Ok(stats.summary())
}

fn log_stats(config: &BridgeConfig, stats: &Stats, lines: &mut (StatsLine, StatsLine)) {
    if config.r2k.is_some() {
        lines.0.log(&stats.r2k);
    }
    if config.k2r.is_some() {
        lines.1.log(&stats.k2r);
    }
}

/// A session that lasted this long was healthy: the next failure starts the
/// backoff from the beginning again.
const HEALTHY: Duration = Duration::from_secs(30);

/// Decides, after a session ended, whether to start another one, and
/// waits the backoff before it.
struct Reconnect<'a> {
    direction: &'static str,
    stats: &'a DirStats,
    backoff: Backoff,
}

impl<'a> Reconnect<'a> {
    fn new(direction: &'static str, stats: &'a DirStats) -> Self {
        Self {
            direction,
            stats,
            backoff: Backoff::new(Duration::from_millis(200), Duration::from_secs(10)),
        }
    }

    /// `Ok(true)`: run another session. `Ok(false)`: done (drained, or shut
    /// down while disconnected). `Err`: terminal.
    async fn again(
        &mut self,
        ended: Result<()>,
        started: Instant,
        shutdown: &Shutdown,
    ) -> Result<bool> {
        match ended {
            Ok(()) => Ok(false),
            Err(e) if e.is_terminal() => Err(e),
            Err(_) if shutdown.is_shutdown() => Ok(false),
            Err(e) => {
                if started.elapsed() >= HEALTHY {
                    self.backoff.reset();
                }
                let delay = self.backoff.next_delay();
                Reconnecting {
                    scope: Scope::Bridge(self.direction),
                    tally: Some(&self.stats.reconnects),
                    error: &e,
                    attempt: self.backoff.attempt(),
                    delay,
                }
                .emit();
                tokio::select! {
                    _ = shutdown.cancelled() => Ok(false),
                    _ = tokio::time::sleep(delay) => Ok(true),
                }
            }
        }
    }
}

/// Startup checks shared by both directions: both brokers answer, and with
/// `--declare-topology` the resources exist afterwards.
async fn preflight(shared: &Shared, name: &str) -> Result<lapin::Connection> {
    let conn = shared.amqp.connect(name).await.map_err(|e| match e {
        tickbridge_broker::Error::Config(_) => Error::Broker(e),
        other => Error::Unreachable {
            broker: "RabbitMQ",
            address: shared.amqp.masked_url(),
            reason: other.to_string(),
        },
    })?;
    let k = &shared.kafka;
    k.ping(Duration::from_secs(10)).await.map_err(|e| match e {
        // Already names the brokers and says what to check.
        tickbridge_broker::Error::Config(_) => Error::Broker(e),
        other => Error::Unreachable {
            broker: "Kafka",
            address: k.brokers.clone(),
            reason: other.to_string(),
        },
    })?;
    if shared.declare_topology {
        let ch = conn.create_channel().await?;
        shared.amqp.topology().declare(&ch).await?;
        let _ = ch.close(200, "declared".into()).await;
        k.ensure_topic(&k.topic, k.partitions).await?;
    } else {
        k.wait_for_topic(&k.topic, shared.topic_wait)
            .await
            .map_err(|_| Error::UnknownTopic {
                topic: k.topic.clone(),
                brokers: k.brokers.clone(),
            })?;
    }
    rabbit::check_exchange(&conn, &shared.dlx(), &shared.amqp).await?;
    Ok(conn)
}

async fn run_r2k(
    shared: &Shared,
    args: &R2kArgs,
    stats: &Stats,
    name: &str,
    shutdown: &Shutdown,
) -> Result<()> {
    let conn = preflight(shared, name).await?;
    let queue = args
        .queue
        .clone()
        .unwrap_or_else(|| shared.amqp.topology().work_queue);
    let depth = rabbit::queue_depth(&conn, &queue, &shared.amqp).await?;
    let _ = conn.close(200, "preflight".into()).await;
    stats
        .r2k
        .lag
        .store(depth as i64, std::sync::atomic::Ordering::Relaxed);
    let mut r = r2k::R2k {
        shared,
        args,
        stats: &stats.r2k,
        name: name.to_string(),
        queue,
        dlx: shared.dlx(),
        producer: r2k::producer(shared, args, name)?,
        ids: DedupWindow::new(shared.dedup_window),
    };
    let mut rc = Reconnect::new(R2K, &stats.r2k);
    let res = loop {
        let started = Instant::now();
        let ended = r.session(shutdown).await;
        match rc.again(ended, started, shutdown).await {
            Ok(true) => continue,
            Ok(false) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    r.flush().await;
    res
}

async fn run_k2r(
    shared: &Shared,
    args: &K2rArgs,
    stats: &Arc<Stats>,
    name: &str,
    shutdown: &Shutdown,
) -> Result<()> {
    let conn = preflight(shared, name).await?;
    let exchange = args
        .exchange
        .clone()
        .unwrap_or_else(|| shared.amqp.topology().exchange);
    rabbit::check_exchange(&conn, &exchange, &shared.amqp).await?;
    let unroutable = args
        .unroutable_exchange
        .clone()
        .unwrap_or_else(|| shared.dlx());
    rabbit::check_exchange(&conn, &unroutable, &shared.amqp).await?;
    let _ = conn.close(200, "preflight".into()).await;
    let mut k = k2r::K2r {
        shared,
        args,
        all: stats.clone(),
        name: name.to_string(),
        exchange,
        dlx: shared.dlx(),
        unroutable,
        ids: DedupWindow::new(shared.dedup_window),
    };
    let mut rc = Reconnect::new(K2R, &stats.k2r);
    loop {
        let started = Instant::now();
        let ended = k.session(shutdown).await;
        if !rc.again(ended, started, shutdown).await? {
            return Ok(());
        }
    }
}
