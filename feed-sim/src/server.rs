//! HTTP routing: WebSocket upgrades and REST endpoints of the three
//! exchanges on one axum router.

use crate::conn::{Conn, Flavor};
use crate::exchange::{binance, coinbase, kraken};
use crate::market::Market;
use crate::Shared;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;
use tickbridge_model::Shutdown;
use tokio_util::task::TaskTracker;

#[derive(Clone)]
struct AppState {
    shared: Arc<Shared>,
    shutdown: Shutdown,
    tracker: TaskTracker,
}

pub(crate) fn router(shared: Arc<Shared>, shutdown: Shutdown, tracker: TaskTracker) -> Router {
    Router::new()
        .route("/", get(coinbase_ws))
        .route("/v2", get(kraken_ws))
        .route("/ws", get(binance_raw_ws))
        .route("/ws/{*streams}", get(binance_raw_ws_streams))
        .route("/stream", get(binance_combined_ws))
        .route("/api/v3/trades", get(binance_rest))
        .route("/products/{id}/trades", get(coinbase_rest))
        .route("/0/public/Trades", get(kraken_rest))
        .route("/report", get(report))
        .with_state(AppState {
            shared,
            shutdown,
            tracker,
        })
}

/// Upgrades and runs one connection, tracked so `run` waits for it.
fn upgrade(
    ws: WebSocketUpgrade,
    st: AppState,
    flavor: Flavor,
    initial: Vec<Arc<Market>>,
) -> Response {
    let token = st.tracker.token();
    let shared = st.shared.clone();
    let shutdown = st.shutdown.clone();
    ws.write_buffer_size(256 * 1024)
        .on_upgrade(move |socket| async move {
            let _token = token;
            let id = shared.next_conn_id();
            shared
                .stats
                .connections
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::debug!(conn = id, ?flavor, "connection opened");
            Conn::new(id, flavor, shared, shutdown)
                .run(socket, initial)
                .await;
            tracing::debug!(conn = id, "connection closed");
        })
}

async fn coinbase_ws(State(st): State<AppState>, ws: WebSocketUpgrade) -> Response {
    upgrade(ws, st, Flavor::Coinbase, Vec::new())
}

async fn kraken_ws(State(st): State<AppState>, ws: WebSocketUpgrade) -> Response {
    upgrade(ws, st, Flavor::Kraken, Vec::new())
}

async fn binance_raw_ws(State(st): State<AppState>, ws: WebSocketUpgrade) -> Response {
    upgrade(ws, st, Flavor::BinanceRaw, Vec::new())
}

async fn binance_raw_ws_streams(
    State(st): State<AppState>,
    Path(streams): Path<String>,
    ws: WebSocketUpgrade,
) -> Response {
    let initial = binance::markets_for_streams(&st.shared, streams.split('/'));
    upgrade(ws, st, Flavor::BinanceRaw, initial)
}

async fn binance_combined_ws(
    State(st): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    let streams = q.get("streams").map(String::as_str).unwrap_or("");
    let initial = binance::markets_for_streams(&st.shared, streams.split('/'));
    upgrade(ws, st, Flavor::BinanceCombined, initial)
}

fn count(st: &AppState) {
    st.shared
        .stats
        .rest_requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

#[derive(Deserialize)]
struct BinanceQuery {
    symbol: Option<String>,
    limit: Option<u64>,
}

async fn binance_rest(State(st): State<AppState>, Query(q): Query<BinanceQuery>) -> Response {
    count(&st);
    binance::rest(&st.shared, q.symbol.as_deref(), q.limit)
}

#[derive(Deserialize)]
struct LimitQuery {
    limit: Option<u64>,
}

async fn coinbase_rest(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<LimitQuery>,
) -> Response {
    count(&st);
    coinbase::rest(&st.shared, &id, q.limit)
}

#[derive(Deserialize)]
struct KrakenQuery {
    pair: Option<String>,
    count: Option<u64>,
    limit: Option<u64>,
}

async fn kraken_rest(State(st): State<AppState>, Query(q): Query<KrakenQuery>) -> Response {
    count(&st);
    kraken::rest(&st.shared, q.pair.as_deref(), q.count.or(q.limit))
}

async fn report(State(st): State<AppState>) -> Response {
    axum::Json(st.shared.report()).into_response()
}
