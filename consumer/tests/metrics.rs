//! Observability of a worker, end to end: Prometheus `/metrics` on
//! `--metrics-addr`, the `--summary-json` file, price alerts and poison
//! counted by reason. Its own test binary, because the metrics recorder is
//! global to a process.

mod common;

use common::*;
use std::time::Duration;
use tickbridge_consumer::worker::{self, WorkerConfig};
use tickbridge_model::Shutdown;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn scrape(addr: std::net::SocketAddr) -> String {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("metrics endpoint answers");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    body
}

fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_serves_metrics_and_writes_a_summary() {
    init_logs();
    let rabbit = Rabbit::new().await;
    let msgs = messages("p-metrics", 1_200);
    rabbit.publish(&msgs).await;
    let mut p = rabbit.publisher().await;
    p.publish_raw("binance.BTC-USD", b"{oops", Default::default())
        .await
        .unwrap();
    p.publish_raw(
        "binance.BTC-USD",
        br#"{"schema":"tick.v1"}"#,
        Default::default(),
    )
    .await
    .unwrap();
    p.flush().await.unwrap();

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let summary_path = dir.path().join("summary.json");
    let mut c = WorkerConfig::local(&rabbit.cfg.url, &rabbit.cfg.prefix);
    c.common.metrics_addr = Some(addr);
    c.common.summary_json = Some(summary_path.clone());
    c.common.exit_when_idle = Some(Duration::from_secs(2));
    // Synthetic prices are 97000.00 + trade_id/100: 97000.01..=97002.00 here.
    c.common.alert_above = Some("97001.50".parse().unwrap());
    c.common.alert_below = Some("97000.10".parse().unwrap());
    let shutdown = Shutdown::new();
    let h = tokio::spawn(worker::run(c, shutdown.clone()));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let text = scrape(addr).await;
    let summary = tokio::time::timeout(Duration::from_secs(40), h)
        .await
        .unwrap()
        .unwrap()
        .unwrap();

    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert_eq!(
        value(
            &text,
            "tickbridge_consumer_messages_handled_total{role=\"worker\",schema=\"tick.v1\"}"
        ),
        1200.0
    );
    assert_eq!(
        value(
            &text,
            "tickbridge_consumer_decode_errors_total{role=\"worker\",reason=\"not_json\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            "tickbridge_consumer_decode_errors_total{role=\"worker\",reason=\"schema_invalid\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            "tickbridge_consumer_dead_lettered_total{role=\"worker\",reason=\"decode\"}"
        ),
        2.0
    );
    assert!(
        text.contains("tickbridge_consumer_latency_seconds"),
        "latency is exported"
    );
    assert!(text.contains(
        "tickbridge_consumer_price_alerts_total{symbol=\"BTC-USD\",direction=\"above\"}"
    ));

    // Each symbol starts below 97000.10 and climbs past 97001.50: two alerts each.
    assert_eq!(summary.alerts, 12);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&summary_path).unwrap()).unwrap();
    assert_eq!(json["handled"], 1200);
    assert_eq!(json["received"], 1202);
    assert_eq!(json["dead_lettered"]["decode"], 2);
    assert_eq!(json["per_symbol"]["ETH-USD"], 200);
    assert_eq!(json["duplicates"], 0);
    assert_eq!(json["seq_gaps"], 0, "one worker sees every seq");
    assert!(json["latency_from_received"]["p99_ms"].as_f64().unwrap() > 0.0);
    assert!(
        json["latency_from_exchange"]["max_ms"].as_f64().unwrap()
            >= json["latency_from_received"]["max_ms"].as_f64().unwrap()
    );
    assert_eq!(json["queue_depth"], 0);
    rabbit.cleanup().await;
}
