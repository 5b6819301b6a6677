//! The Kafka reader's group lag in Prometheus `/metrics`, in the stats it
//! returns and in `--summary-json`. Its own test binary, because the
//! metrics recorder is global to a process.

mod common;

use common::*;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::time::Duration;
use tickbridge_consumer::consumer::{self, ConsumerConfig};
use tickbridge_consumer::replay::ReplayFrom;
use tickbridge_model::Shutdown;
use tickbridge_testkit::prom::{scrape, series_value as value};

/// A member whose group is known to lag by an exact amount it does not
/// read (it starts at `latest`, so it commits nothing): the gauges show
/// that lag per partition and in total, one member, state `Stable`; the
/// summary JSON carries the same numbers at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_lag_is_served_in_metrics_and_written_in_the_summary() {
    init_logs();
    let k = kafka_topic(3).await;
    let positions = kafka_publish(&k, &messages("p-lag-metrics", 900)).await;
    let mut hw: BTreeMap<i32, i64> = (0..3).map(|p| (p, 0)).collect();
    for (p, o) in &positions {
        let e = hw.get_mut(p).unwrap();
        *e = (*e).max(o + 1);
    }
    let g = rand_name("g-lag-metrics");
    // The group stands at 1 on every written partition: lag = hw - 1 there.
    {
        let mut c = k.client_config();
        c.set("group.id", &g).set("enable.auto.commit", "false");
        let c: BaseConsumer = k.finish(c).create().unwrap();
        let mut tpl = TopicPartitionList::new();
        for (p, h) in &hw {
            tpl.add_partition_offset(&k.topic, *p, Offset::Offset((*h).min(1)))
                .unwrap();
        }
        c.commit(&tpl, CommitMode::Sync).unwrap();
    }
    let want: BTreeMap<i32, i64> = hw.iter().map(|(p, h)| (*p, h - (*h).min(1))).collect();
    let total: i64 = want.values().sum();
    assert!(total > 800, "{want:?}");

    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", tickbridge_testkit::free_port())
        .parse()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let summary_path = dir.path().join("summary.json");
    let mut c = ConsumerConfig::local_kafka(k.clone(), &g);
    c.replay_from = Some("latest".parse::<ReplayFrom>().unwrap());
    c.common.metrics_addr = Some(addr);
    c.common.summary_json = Some(summary_path.clone());
    c.common.stats_interval = Duration::from_secs(1);
    let assignment = c.assignment.clone();
    let shutdown = Shutdown::new();
    let h = tokio::spawn(consumer::run(c, shutdown.clone()));
    tokio::time::timeout(
        Duration::from_secs(30),
        assignment.wait_for(|s| s.len() == 3),
    )
    .await
    .expect("the member owns the topic within 30 s");

    let total_series = format!(
        "tickbridge_consumer_group_lag_total{{group=\"{g}\",topic=\"{}\"}}",
        k.topic
    );
    let state_series = format!("tickbridge_consumer_group_state{{group=\"{g}\",state=\"Stable\"}}");
    let mut text = String::new();
    let seen = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Some(t) = scrape(addr).await {
                text = t;
                if value(&text, &total_series) == Some(total as f64)
                    && value(&text, &state_series) == Some(1.0)
                {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
    .await;
    assert!(
        seen.is_ok(),
        "no stable sample of {total_series} = {total}:\n{text}"
    );
    for (p, l) in &want {
        let series = format!(
            "tickbridge_consumer_group_lag{{group=\"{g}\",topic=\"{}\",partition=\"{p}\"}}",
            k.topic
        );
        assert_eq!(value(&text, &series), Some(*l as f64), "{series}\n{text}");
    }
    assert_eq!(
        value(
            &text,
            &format!("tickbridge_consumer_group_members{{group=\"{g}\"}}")
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        value(
            &text,
            &format!("tickbridge_consumer_group_lag_samples_total{{group=\"{g}\",result=\"ok\"}}")
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{text}"
    );

    shutdown.trigger();
    let summary = finish_within(h, Duration::from_secs(40)).await;
    let gl = summary.group_lag.expect("group lag in the summary");
    assert_eq!((gl.lag_at_end, gl.max_lag), (Some(total), total), "{gl:#?}");
    assert_eq!(gl.partitions_at_end, want);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&summary_path).unwrap()).unwrap();
    assert_eq!(json["group_lag"]["lag_at_end"], total);
    assert_eq!(json["group_lag"]["max_lag"], total);
    assert_eq!(json["group_lag"]["group"], g.as_str());
    assert_eq!(json["group_lag"]["partitions_at_end"]["0"], want[&0]);
}
