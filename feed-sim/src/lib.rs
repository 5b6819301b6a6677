//! tickbridge-feed-sim: an offline exchange feed for tests and load runs.
//!
//! One server speaks the real wire formats of Binance spot, Coinbase Exchange
//! and Kraken WebSocket v2 (and their recent-trades REST endpoints) on
//! distinct paths, so the producer can be pointed at it instead of the
//! internet:
//!
//! | exchange | WebSocket | REST |
//! |---|---|---|
//! | Binance | `/ws/<stream>[/<stream>…]`, `/stream?streams=a/b` | `/api/v3/trades?symbol=BTCUSDT&limit=N` |
//! | Coinbase | `/` | `/products/{id}/trades?limit=N` |
//! | Kraken | `/v2` | `/0/public/Trades?pair=BTC/USDT&count=N` |
//!
//! `GET /report` returns the live [`SimReport`].
//!
//! * [`market`]: the deterministic market (trade N is a pure function of
//!   seed, exchange, symbol and N) and its clock;
//! * [`exchange`]: one file per exchange's wire format;
//! * `conn`: the paced send loop and fault injection;
//! * [`stats`]: what was sent, for comparison with what arrived.
//!
//! Library first: the `feed-sim` binary only parses flags and calls [`run`];
//! tests call [`spawn`] and read [`SimHandle::report`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
mod conn;
pub mod exchange;
pub mod market;
mod server;
pub mod stats;
pub mod wire;

pub use config::SimConfig;
pub use stats::{IdRange, SimReport, SymbolReport};

use market::Market;
use stats::SimStats;
use std::net::SocketAddr;
use std::sync::Arc;
use tickbridge_model::{Shutdown, Source};

/// The simulator's one error type.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A flag combination that cannot run.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Binding, accepting or the sent log failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The server task panicked or was cancelled.
    #[error("server task failed: {0}")]
    Join(String),
}

/// State shared by every connection and request of one run.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: SimConfig,
    /// Every (exchange, symbol) market, exchange-major in `Source::ALL` order.
    pub markets: Vec<Arc<Market>>,
    pub stats: Arc<SimStats>,
    next_conn: std::sync::atomic::AtomicU64,
}

impl Shared {
    fn new(config: SimConfig) -> Result<Self, SimError> {
        config.validate()?;
        let mut markets = Vec::new();
        for ex in Source::ALL {
            for s in &config.symbols {
                let i = markets.len();
                markets.push(Arc::new(Market::new(
                    config.seed,
                    ex,
                    s,
                    i,
                    config.rate,
                    config.max_count,
                )));
            }
        }
        let log = match &config.sent_log {
            Some(p) => Some(std::fs::File::create(p)?),
            None => None,
        };
        Ok(Self {
            stats: Arc::new(SimStats::new(markets.len(), log)),
            markets,
            config,
            next_conn: Default::default(),
        })
    }

    /// The first market of `exchange` matching `pred`.
    pub(crate) fn find(
        &self,
        exchange: Source,
        pred: impl Fn(&Market) -> bool,
    ) -> Option<&Arc<Market>> {
        self.markets
            .iter()
            .find(|m| m.exchange == exchange && pred(m))
    }

    pub(crate) fn next_conn_id(&self) -> u64 {
        self.next_conn
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1
    }

    pub(crate) fn report(&self) -> SimReport {
        self.stats.report(&self.markets)
    }
}

/// Serves the simulator on `listener` until `shutdown` fires (or
/// `--duration` passes), then waits for every connection to finish and
/// returns the final report.
pub async fn run(
    listener: tokio::net::TcpListener,
    config: SimConfig,
    shutdown: Shutdown,
) -> Result<SimReport, SimError> {
    let shared = Arc::new(Shared::new(config)?);
    run_shared(listener, shared, shutdown).await
}

async fn run_shared(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    shutdown: Shutdown,
) -> Result<SimReport, SimError> {
    let stop = shutdown.child();
    if let Some(d) = shared.config.duration {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            stop.trigger();
        });
    }
    let tracker = tokio_util::task::TaskTracker::new();
    let app = server::router(shared.clone(), stop.clone(), tracker.clone());
    let graceful = stop.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { graceful.cancelled().await })
        .await?;
    tracker.close();
    tracker.wait().await;
    shared.stats.flush_log();
    Ok(shared.report())
}

/// A simulator running in the background, for tests.
#[derive(Debug)]
pub struct SimHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<Result<SimReport, SimError>>,
}

impl SimHandle {
    /// The bound address (`127.0.0.1:PORT`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://127.0.0.1:PORT`, the base every adapter builds its URL from.
    pub fn ws_base(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// The WebSocket base to give an exchange adapter in place of the
    /// exchange's default: `ws://127.0.0.1:PORT` for Binance (the adapter
    /// appends `/stream?...`) and Coinbase (served at `/`), and
    /// `ws://127.0.0.1:PORT/v2` for Kraken, whose real default URL also ends
    /// in `/v2`.
    pub fn ws_base_for(&self, exchange: Source) -> String {
        match exchange {
            Source::Kraken => format!("ws://{}/v2", self.addr),
            Source::Binance | Source::Coinbase => self.ws_base(),
        }
    }

    /// `http://127.0.0.1:PORT`, the REST base.
    pub fn http_base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What has been sent so far.
    pub fn report(&self) -> SimReport {
        self.shared.report()
    }

    /// The market of one exchange and symbol, to rebuild expected trades.
    pub fn market(&self, exchange: Source, symbol: &str) -> Option<Arc<Market>> {
        self.shared.find(exchange, |m| m.symbol == symbol).cloned()
    }

    /// Stops the server, waits for every connection to close and returns the
    /// final report.
    pub async fn stop(self) -> Result<SimReport, SimError> {
        self.shutdown.trigger();
        self.task.await.map_err(|e| SimError::Join(e.to_string()))?
    }
}

/// Starts a simulator on `127.0.0.1:0` (ignoring `config.listen`) and returns
/// its address and a handle.
pub async fn spawn(config: SimConfig) -> Result<(SocketAddr, SimHandle), SimError> {
    let shared = Arc::new(Shared::new(config)?);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let shutdown = Shutdown::new();
    let task = tokio::spawn(run_shared(listener, shared.clone(), shutdown.clone()));
    Ok((
        addr,
        SimHandle {
            addr,
            shared,
            shutdown,
            task,
        },
    ))
}
