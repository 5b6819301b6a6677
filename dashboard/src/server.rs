//! The HTTP side: the page, `/events` (Server-Sent Events), `/api/state`.
//!
//! `GET /events` answers:
//! * `400` with the reason for an unknown or malformed query parameter or
//!   `Last-Event-ID` (a cursor of another topic, or beyond the topic's end);
//! * `503` with `Retry-After` when `--max-clients` streams are open;
//! * otherwise a stream that starts at the live position, at
//!   `Last-Event-ID` (a resume: exactly the messages after it), or at
//!   `?from=` (a replay, in the consumer's `--replay-from` syntax: `0`,
//!   `earliest`, `2026-12-03T10:00:00Z`, `5m`), catching up from Kafka
//!   before it joins the live events.
//!
//! The accept loop is written out instead of `axum::serve` for one reason:
//! each connection gets a switch ([`ConnCtl`]) that closes its socket from
//! outside the request, which is how a client that stopped reading is cut
//! off even though nothing polls its response any more.

use crate::config::DashboardConfig;
use crate::cursor::{Cursor, Order};
use crate::hub::{self, ClientTx, Hub, Registered, State, View};
use crate::{replay, scrape, Error, Result};
use axum::body::Body;
use axum::extract::{RawQuery, State as AxState};
use axum::http::{header, HeaderMap, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use bytes::Bytes;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tickbridge_consumer::replay::ReplayFrom;
use tickbridge_model::telemetry::InternalEvent;
use tickbridge_model::Shutdown;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const INDEX_HTML: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const STYLE_CSS: &str = include_str!("../assets/style.css");

/// Closes the connection a request arrived on.
#[derive(Clone, Debug)]
pub struct ConnCtl(pub CancellationToken);

#[derive(Clone)]
struct App {
    hub: Hub,
}

/// Serves the dashboard on `listener` until `shutdown`; returns what it
/// read, for the summary.
pub async fn run(cfg: DashboardConfig, listener: TcpListener, shutdown: Shutdown) -> Result<State> {
    cfg.validate()?;
    if let Some(addr) = cfg.metrics_addr {
        tickbridge_model::telemetry::install_metrics(Some(addr))?;
    }
    let cfg = Arc::new(cfg);
    let (scrape_tx, scrape_rx) = mpsc::channel(4);
    let scraper = tokio::spawn(scrape::run(
        cfg.scrape.clone(),
        cfg.scrape_interval,
        scrape_tx,
        shutdown.clone(),
    ));
    let (hub, hub_task) = hub::start(cfg.clone(), scrape_rx, shutdown.clone()).await?;
    let app = App { hub };
    let router = Router::new()
        .route(
            "/",
            get(|| async { page(INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/app.js",
            get(|| async { page(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/style.css",
            get(|| async { page(STYLE_CSS, "text/css; charset=utf-8") }),
        )
        .route("/events", get(events))
        .route("/api/state", get(api_state))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(app);
    tracing::info!(url = %format!("http://{}/", listener.local_addr()?), "dashboard serving");
    let conns = TaskTracker::new();
    let all = CancellationToken::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                // EMFILE and friends: wait instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                metrics::counter!("tickbridge_dashboard_accept_errors_total").increment(1);
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let ctl = all.child_token();
        let router = router.clone();
        conns.spawn(async move {
            let ctl2 = ctl.clone();
            let svc = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnCtl(ctl2.clone()));
                tower::ServiceExt::oneshot(router.clone(), req)
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
            tokio::select! {
                _ = conn => {}
                _ = ctl.cancelled() => {}
            }
        });
    }
    all.cancel();
    conns.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), conns.wait()).await;
    let state = hub_task
        .await
        .map_err(|e| Error::Config(format!("hub task failed: {e}")))?;
    let _ = scraper.await;
    Ok(state)
}

fn page(body: &'static str, ctype: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, ctype),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn api_state(AxState(app): AxState<App>) -> Response {
    axum::Json(app.hub.state()).into_response()
}

/// A request that was refused with 400.
struct BadRequest<'a> {
    why: &'a str,
}
impl InternalEvent for BadRequest<'_> {
    fn emit(self) {
        tracing::info!(why = self.why, "bad /events request");
        metrics::counter!("tickbridge_dashboard_bad_requests_total").increment(1);
    }
}

fn bad_request(why: String) -> Response {
    BadRequest { why: &why }.emit();
    (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response()
}

/// Where a stream starts.
#[derive(Debug)]
enum Begin {
    Live,
    Resume(Cursor),
    Replay(ReplayFrom),
}

/// `/events`'s query.
#[derive(Debug, Default)]
struct Query {
    from: Option<ReplayFrom>,
    last: Option<String>,
    view: View,
}

/// Reads `/events`'s query: `from`, `last_event_id` (the `Last-Event-ID`
/// header for clients that cannot set headers) and `view` (`full` or
/// `summary`), each at most once.
fn parse_query(q: Option<&str>) -> std::result::Result<Query, String> {
    let mut from = None;
    let mut last = None;
    let mut view = None;
    for (k, v) in url::form_urlencoded::parse(q.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "from" => {
                if from.is_some() {
                    return Err("query parameter from given twice".into());
                }
                from = Some(ReplayFrom::from_str(&v).map_err(|e| e.replace("--replay-from", "from"))?);
            }
            "last_event_id" => {
                if last.is_some() {
                    return Err("query parameter last_event_id given twice".into());
                }
                last = Some(v.into_owned());
            }
            "view" => {
                if view.is_some() {
                    return Err("query parameter view given twice".into());
                }
                view = Some(match v.as_ref() {
                    "full" => View::Full,
                    "summary" => View::Summary,
                    other => return Err(format!("view {other:?} is not full or summary")),
                });
            }
            other => {
                return Err(format!(
                    "unknown query parameter {other:?}: /events accepts from (an offset, earliest, latest, a time or a duration ago), last_event_id and view (full or summary)"
                ))
            }
        }
    }
    Ok(Query {
        from,
        last,
        view: view.unwrap_or_default(),
    })
}

/// Releases a `--max-clients` slot when the stream ends.
struct Slot(Arc<AtomicUsize>);
impl Drop for Slot {
    fn drop(&mut self) {
        let n = self.0.fetch_sub(1, Ordering::Relaxed) - 1;
        metrics::gauge!("tickbridge_dashboard_clients").set(n as f64);
    }
}

async fn events(
    AxState(app): AxState<App>,
    ctl: Option<Extension<ConnCtl>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let Query {
        from,
        last: last_q,
        view,
    } = match parse_query(q.as_deref()) {
        Ok(x) => x,
        Err(why) => return bad_request(why),
    };
    let last = match headers.get("last-event-id") {
        Some(h) => match h.to_str() {
            Ok(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
            Ok(_) => None,
            Err(_) => return bad_request("Last-Event-ID is not visible ASCII".into()),
        },
        None => last_q,
    };
    let live = app.hub.live();
    let begin = match last {
        Some(text) => {
            let c = match Cursor::parse(&text) {
                Ok(c) => c,
                Err(why) => return bad_request(format!("Last-Event-ID: {why}")),
            };
            if c.topic != live.topic {
                return bad_request(format!(
                    "Last-Event-ID is a position in topic {:?}; this dashboard reads {:?}",
                    c.topic, live.topic
                ));
            }
            if c.order(&live) == Order::Ahead {
                return bad_request(format!(
                    "Last-Event-ID {c} is beyond the topic's live position {live}"
                ));
            }
            Begin::Resume(c)
        }
        None => match from {
            Some(f) => Begin::Replay(f),
            None => Begin::Live,
        },
    };
    let cfg = &app.hub.cfg;
    let active = app.hub.active.clone();
    if active.fetch_add(1, Ordering::Relaxed) >= cfg.max_clients {
        active.fetch_sub(1, Ordering::Relaxed);
        metrics::counter!("tickbridge_dashboard_clients_refused_total").increment(1);
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, HeaderValue::from(cfg.retry_after))],
            format!(
                "{} clients already connected (--max-clients); retry later\n",
                cfg.max_clients
            ),
        )
            .into_response();
    }
    let slot = Slot(active);
    metrics::gauge!("tickbridge_dashboard_clients").set(slot.0.load(Ordering::Relaxed) as f64);
    let (tx, mut rx) = mpsc::channel::<Bytes>(cfg.client_buffer);
    // A connection without the switch (a test calling the router directly)
    // still gets one, which then only ends this stream.
    let ctl = ctl.map(|c| c.0 .0).unwrap_or_default();
    let client = ClientTx {
        tx,
        view,
        ctl: ctl.clone(),
    };
    let _ = client.tx.try_send(Bytes::from_static(
        b": tickbridge dashboard\nretry: 1000\n\n",
    ));
    tokio::spawn(feed(app.clone(), begin, client));
    let stream = futures::stream::poll_fn(move |cx| {
        let _hold = &slot;
        rx.poll_recv(cx)
            .map(|o| o.map(Ok::<Bytes, std::convert::Infallible>))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .header("x-accel-buffering", "no")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Brings a client to the live position (reading Kafka when it is
/// behind), then hands its queue to the hub.
async fn feed(app: App, begin: Begin, client: ClientTx) {
    let hub = &app.hub;
    let mut at = match begin {
        Begin::Live => None,
        Begin::Resume(c) => Some(c),
        Begin::Replay(f) => {
            let live = hub.live();
            match replay::resolve(&hub.cfg.kafka, &f, &live).await {
                Ok(c) => {
                    let data = serde_json::json!({"from": c.to_string(), "live": live.to_string()});
                    let e = hub::sse_event(Some(&c), "replay", &data.to_string());
                    if client.tx.send(e).await.is_err() {
                        return;
                    }
                    Some(c)
                }
                Err(e) => {
                    let data = serde_json::json!({"error": e.to_string()});
                    let _ = client
                        .tx
                        .send(hub::sse_event(None, "error", &data.to_string()))
                        .await;
                    return;
                }
            }
        }
    };
    loop {
        match hub.register(at.clone(), client.clone()).await {
            Registered::Live | Registered::Closed => return,
            Registered::Ahead(live) => {
                let data =
                    serde_json::json!({"error": format!("position beyond the live one {live}")});
                let _ = client
                    .tx
                    .send(hub::sse_event(None, "error", &data.to_string()))
                    .await;
                return;
            }
            Registered::Behind(live) => {
                let from = at.clone().unwrap_or_else(|| live.clone());
                match replay::read_range(
                    &hub.cfg.kafka,
                    &from,
                    &live,
                    hub.cfg.batch_max,
                    client.view,
                    &client.tx,
                )
                .await
                {
                    Ok(c) => at = Some(c),
                    Err(e) => {
                        tracing::info!(error = %e, "catching a client up failed; it reconnects");
                        let data = serde_json::json!({"error": e.to_string()});
                        let _ =
                            client
                                .tx
                                .try_send(hub::sse_event(None, "error", &data.to_string()));
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters() {
        struct TestCase {
            input: Option<&'static str>,
            expected: std::result::Result<(bool, bool), &'static str>,
        }
        let cases = [
            // TC0: nothing
            TestCase {
                input: None,
                expected: Ok((false, false)),
            },
            // TC1: replay from offset 0
            TestCase {
                input: Some("from=0"),
                expected: Ok((true, false)),
            },
            // TC2: replay from a time, percent-encoded
            TestCase {
                input: Some("from=2026-12-03T10%3A00%3A00Z"),
                expected: Ok((true, false)),
            },
            // TC3: unknown parameter
            TestCase {
                input: Some("form=0"),
                expected: Err("unknown query parameter \"form\""),
            },
            // TC4: bad value
            TestCase {
                input: Some("from=-3"),
                expected: Err("invalid from"),
            },
            // TC5: twice
            TestCase {
                input: Some("from=0&from=1"),
                expected: Err("twice"),
            },
            // TC7: an unknown view
            TestCase {
                input: Some("view=compact"),
                expected: Err("not full or summary"),
            },
            // TC6: resume by query
            TestCase {
                input: Some("last_event_id=t%2F0%3A1"),
                expected: Ok((false, true)),
            },
        ];
        for (i, tc) in cases.iter().enumerate() {
            match (parse_query(tc.input), &tc.expected) {
                (Ok(q), Ok((wf, wl))) => {
                    assert_eq!((q.from.is_some(), q.last.is_some()), (*wf, *wl), "TC{i}")
                }
                (Err(e), Err(w)) => assert!(e.contains(w), "TC{i}: {e}"),
                (got, _) => panic!("TC{i}: {got:?}"),
            }
        }
    }
}
