//! Reading the other processes' `/metrics`, and what their numbers mean.
//!
//! Every tickbridge binary serves Prometheus text. The scraper reads each
//! `--scrape` target once per `--scrape-interval`, parses the text, and
//! folds the series the page draws into a [`TargetView`]: which role the
//! process plays (known from its metric names), how many ticks it handled,
//! its lag, its latency quantiles, its dead letters. Turning names into
//! meaning here, in Rust, keeps the page a plain view and makes the meaning
//! testable.

use crate::config::ScrapeTarget;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;
use tickbridge_model::Shutdown;
use tokio::sync::mpsc;

/// Largest `/metrics` body read.
const MAX_BODY: usize = 4 * 1024 * 1024;

/// One sample: metric name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name.
    pub name: String,
    /// Label pairs in the order written.
    pub labels: Vec<(String, String)>,
    /// Value.
    pub value: f64,
}

impl Sample {
    /// The value of label `k`.
    pub fn label(&self, k: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(a, _)| a == k)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses Prometheus text exposition. Comments and lines that do not parse
/// are skipped (counted by the caller as the difference).
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if rest.starts_with('{') {
        rest = &rest[1..];
        loop {
            rest = rest.trim_start_matches([' ', ',']);
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            let eq = rest.find('=')?;
            let key = rest[..eq].trim().to_string();
            rest = rest[eq + 1..].strip_prefix('"')?;
            let mut val = String::new();
            let mut chars = rest.char_indices();
            let end = loop {
                let (i, c) = chars.next()?;
                match c {
                    '\\' => match chars.next()?.1 {
                        'n' => val.push('\n'),
                        other => val.push(other),
                    },
                    '"' => break i,
                    c => val.push(c),
                }
            };
            rest = &rest[end + 1..];
            labels.push((key, val));
        }
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// What the page shows of one scraped process.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct TargetView {
    /// `--scrape` name.
    pub name: String,
    /// Whether the last scrape answered.
    pub up: bool,
    /// Why it did not.
    pub error: Option<String>,
    /// `producer`, `worker`, `group` (Kafka consumer group), `stream`
    /// (RabbitMQ stream reader), `bridge`, or `unknown`.
    pub kind: &'static str,
    /// Ticks: read from the exchange (producer) or handled (readers).
    pub ticks: f64,
    /// Gap notices: sent (producer) or received (readers).
    pub gap_notices: f64,
    /// Messages published per sink (producer).
    pub published: BTreeMap<String, f64>,
    /// Lag of a Kafka reader, summed over partitions.
    pub lag: Option<f64>,
    /// Median end-to-end latency from the producer's `received_ts`, ms.
    pub latency_p50_ms: Option<f64>,
    /// 99th percentile of the same, ms.
    pub latency_p99_ms: Option<f64>,
    /// Dead letters by reason.
    pub dead_letters: BTreeMap<String, f64>,
    /// Gaps by reason (producer: detected; readers: notices received).
    pub gaps: BTreeMap<String, f64>,
    /// Bridged messages (bridge).
    pub bridged: f64,
    /// Messages a reader saw more than once (at-least-once redeliveries).
    pub duplicates: f64,
}

/// Folds one target's samples into what the page shows.
pub fn view(name: &str, samples: &[Sample]) -> TargetView {
    let mut v = TargetView {
        name: name.to_string(),
        up: true,
        kind: "unknown",
        ..TargetView::default()
    };
    let mut role: Option<String> = None;
    let mut lag = None::<f64>;
    let mut group_lag = None::<f64>;
    for s in samples {
        match s.name.as_str() {
            "tickbridge_producer_ticks_total" => {
                v.kind = "producer";
                v.ticks = s.value;
            }
            "tickbridge_producer_published_total" => {
                v.kind = "producer";
                if let Some(sink) = s.label("sink") {
                    v.published.insert(sink.to_string(), s.value);
                }
            }
            "tickbridge_producer_gaps_total" => {
                v.kind = "producer";
                let r = s.label("reason").unwrap_or("unknown").to_string();
                v.gap_notices += s.value;
                *v.gaps.entry(r).or_default() += s.value;
            }
            "tickbridge_consumer_messages_handled_total" => {
                role = s.label("role").map(str::to_string);
                match s.label("schema") {
                    Some("gap.v1") => v.gap_notices += s.value,
                    _ => v.ticks += s.value,
                }
            }
            "tickbridge_consumer_gap_notices_total" => {
                let r = s.label("reason").unwrap_or("unknown").to_string();
                *v.gaps.entry(r).or_default() += s.value;
            }
            "tickbridge_consumer_dead_lettered_total" => {
                role.get_or_insert_with(|| "worker".into());
                let r = s.label("reason").unwrap_or("unknown").to_string();
                *v.dead_letters.entry(r).or_default() += s.value;
            }
            "tickbridge_consumer_duplicates_total" => v.duplicates += s.value,
            // The group's lag from the brokers (committed offsets against
            // watermarks), which the consumer measures with tickbridge-core's
            // LagProbe; preferred over the reader's own fetch position.
            "tickbridge_consumer_group_lag_total" => {
                *group_lag.get_or_insert(0.0) += s.value.max(0.0);
            }
            "tickbridge_consumer_kafka_lag" => {
                *lag.get_or_insert(0.0) += s.value.max(0.0);
            }
            "tickbridge_consumer_latency_seconds" if s.label("from") == Some("received_ts") => {
                match s.label("quantile") {
                    Some("0.5") => v.latency_p50_ms = Some(s.value * 1000.0),
                    Some("0.99") => v.latency_p99_ms = Some(s.value * 1000.0),
                    _ => {}
                }
            }
            "tickbridge_bridge_bridged_total" => {
                v.kind = "bridge";
                v.bridged += s.value;
            }
            _ => {}
        }
    }
    if v.kind == "unknown" {
        v.kind = match role.as_deref() {
            Some("worker") => "worker",
            Some("kafka") => "group",
            Some("stream") => "stream",
            _ => "unknown",
        };
    }
    let lag = group_lag.or(lag);
    if v.kind == "group" || lag.is_some() {
        v.lag = lag;
    }
    v
}

/// Scrapes every target each `interval` and sends the views to the hub,
/// until `shutdown`. A target that does not answer shows as down with the
/// reason; it is tried again next time.
pub async fn run(
    targets: Vec<ScrapeTarget>,
    interval: Duration,
    out: mpsc::Sender<Vec<TargetView>>,
    shutdown: Shutdown,
) {
    let client = match reqwest::Client::builder()
        .timeout(interval.max(Duration::from_millis(500)))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the scrape client; no scraping");
            return;
        }
    };
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The last answer of each target: a process that has exited (a reader
    // done with its run) keeps its final numbers on the page, marked down.
    let mut last: Vec<Option<TargetView>> = vec![None; targets.len()];
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let mut views =
            futures::future::join_all(targets.iter().map(|t| scrape_one(&client, t))).await;
        for (v, prev) in views.iter_mut().zip(last.iter_mut()) {
            match (v.up, prev.as_ref()) {
                (true, _) => *prev = Some(v.clone()),
                (false, Some(p)) => {
                    let error = v.error.take();
                    *v = TargetView {
                        up: false,
                        error,
                        ..p.clone()
                    };
                }
                (false, None) => {}
            }
        }
        if out.send(views).await.is_err() {
            return;
        }
    }
}

async fn scrape_one(client: &reqwest::Client, t: &ScrapeTarget) -> TargetView {
    let down = |why: String| {
        metrics::counter!("tickbridge_dashboard_scrape_errors_total", "target" => t.name.clone())
            .increment(1);
        TargetView {
            name: t.name.clone(),
            up: false,
            error: Some(why),
            kind: "unknown",
            ..TargetView::default()
        }
    };
    let resp = match client.get(&t.url).send().await {
        Ok(r) if r.status().is_success() => r,
        Ok(r) => return down(format!("HTTP {}", r.status())),
        Err(e) => return down(format!("{e}")),
    };
    match resp.bytes().await {
        Ok(b) if b.len() <= MAX_BODY => view(&t.name, &parse(&String::from_utf8_lossy(&b))),
        Ok(b) => down(format!("body of {} bytes is over {MAX_BODY}", b.len())),
        Err(e) => down(format!("{e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Name, labels, value.
    type Expected = (&'static str, Vec<(&'static str, &'static str)>, f64);

    #[test]
    fn parses_exposition_lines() {
        struct TestCase {
            input: &'static str,
            expected: Option<Expected>,
        }
        let cases = [
            // TC0: a labelled counter, as metrics-exporter-prometheus writes it
            TestCase {
                input: r#"tickbridge_consumer_messages_handled_total{role="worker",schema="tick.v1"} 1234"#,
                expected: Some((
                    "tickbridge_consumer_messages_handled_total",
                    vec![("role", "worker"), ("schema", "tick.v1")],
                    1234.0,
                )),
            },
            // TC1: no labels
            TestCase {
                input: "tickbridge_producer_ticks_total 42",
                expected: Some(("tickbridge_producer_ticks_total", vec![], 42.0)),
            },
            // TC2: escaped quote in a label value
            TestCase {
                input: r#"m{a="x\"y"} 1.5"#,
                expected: Some(("m", vec![("a", "x\"y")], 1.5)),
            },
            // TC3: comment
            TestCase {
                input: "# TYPE m counter",
                expected: None,
            },
            // TC4: no value
            TestCase {
                input: "m{a=\"b\"}",
                expected: None,
            },
            // TC5: summary quantile
            TestCase {
                input: r#"lat{from="received_ts",quantile="0.99"} 0.012"#,
                expected: Some((
                    "lat",
                    vec![("from", "received_ts"), ("quantile", "0.99")],
                    0.012,
                )),
            },
        ];
        for (i, tc) in cases.iter().enumerate() {
            let got = parse_line(tc.input);
            match (&got, &tc.expected) {
                (None, None) => {}
                (Some(s), Some((n, l, v))) => {
                    assert_eq!(s.name, *n, "TC{i}");
                    let l: Vec<(String, String)> = l
                        .iter()
                        .map(|(a, b)| (a.to_string(), b.to_string()))
                        .collect();
                    assert_eq!(s.labels, l, "TC{i}");
                    assert_eq!(s.value, *v, "TC{i}");
                }
                _ => panic!("TC{i}: {got:?}"),
            }
        }
    }

    #[test]
    fn roles_from_metric_names() {
        let worker = parse(
            r#"tickbridge_consumer_messages_handled_total{role="worker",schema="tick.v1"} 100
tickbridge_consumer_messages_handled_total{role="worker",schema="gap.v1"} 3
tickbridge_consumer_dead_lettered_total{role="worker",reason="handler_failed"} 2
tickbridge_consumer_latency_seconds{role="worker",from="received_ts",quantile="0.5"} 0.004
tickbridge_consumer_latency_seconds{role="worker",from="received_ts",quantile="0.99"} 0.02
"#,
        );
        let v = view("worker-1", &worker);
        assert_eq!(v.kind, "worker");
        assert_eq!((v.ticks, v.gap_notices), (100.0, 3.0));
        assert_eq!(v.dead_letters.get("handler_failed"), Some(&2.0));
        assert_eq!(v.latency_p99_ms, Some(20.0));
        assert_eq!(v.lag, None);

        let group = parse(
            r#"tickbridge_consumer_messages_handled_total{role="kafka",schema="tick.v1"} 7
tickbridge_consumer_kafka_lag{partition="0"} 2
tickbridge_consumer_kafka_lag{partition="1"} 3
"#,
        );
        let v = view("g", &group);
        assert_eq!((v.kind, v.lag), ("group", Some(5.0)));
        // The brokers' view of the group wins when the reader reports it.
        let mut with_group = group.clone();
        with_group.extend(parse(
            r#"tickbridge_consumer_group_lag_total{group="g",topic="t"} 9
"#,
        ));
        assert_eq!(view("g", &with_group).lag, Some(9.0));

        let producer = parse(
            r#"tickbridge_producer_ticks_total 50
tickbridge_producer_published_total{sink="kafka"} 52
tickbridge_producer_gaps_total{reason="trade_id_jump"} 2
"#,
        );
        let v = view("p", &producer);
        assert_eq!((v.kind, v.ticks, v.gap_notices), ("producer", 50.0, 2.0));
        assert_eq!(v.published.get("kafka"), Some(&52.0));
    }
}
