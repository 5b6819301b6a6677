//! Observability of a worker, end to end: Prometheus `/metrics` on
//! `--metrics-addr`, the `--summary-json` file, price alerts and poison
//! counted by reason. Its own test binary, because the metrics recorder is
//! global to a process.

mod common;

use common::*;
use std::time::Duration;
use tickbridge_consumer::worker::{self, WorkerConfig};
use tickbridge_model::Shutdown;
use tickbridge_testkit::prom::{scrape, series_value};

/// A series that must be there.
fn value(text: &str, series: &str) -> f64 {
    series_value(text, series).unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_serves_metrics_and_writes_a_summary() {
    let (rabbit, _msgs) = Rabbit::with_ticks("p-metrics", 1_200).await;
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

    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", tickbridge_testkit::free_port())
        .parse()
        .unwrap();
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
    let text = scrape(addr).await.expect("metrics endpoint answers");
    let summary = finish_within(h, Duration::from_secs(40)).await;

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
