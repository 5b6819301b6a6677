//! The producer binary publishing over AMQP with TLS, end to end: a private
//! RabbitMQ node with a TLS listener (certificate signed by a CA made at test
//! time), `feed-sim` as the exchange, `--amqp-url amqps://...` and
//! `--amqp-ca-file`. Every tick is confirmed and sits in the node's work
//! queue; without the CA flag the producer exits at once with a certificate
//! error that names the flag.

use std::process::Command;
use std::time::Duration;
use tickbridge_feed_sim::SimConfig;
use tickbridge_model::Source;
use tickbridge_testkit::{rand_name, run_bounded, RabbitNode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_publishes_over_amqps_with_the_ca_flag() {
    let node = tokio::task::spawn_blocking(RabbitNode::start_tls)
        .await
        .unwrap()
        .expect("a private RabbitMQ node with TLS");
    let url = node.amqps_url().unwrap();
    let ca = node.ca_file().unwrap();
    let sim = SimConfig {
        rate: 500.0,
        ..SimConfig::default()
    };
    let (_, sim) = tickbridge_feed_sim::spawn(sim).await.unwrap();
    let feed = sim.ws_base_for(Source::Binance);
    let prefix = rand_name("tb-tls");
    let args = |with_ca: bool| {
        let mut a = vec![
            "--exchange".to_string(),
            "binance".into(),
            "--symbols".into(),
            "BTC-USDT".into(),
            "--url".into(),
            feed.clone(),
            "--sink".into(),
            "rabbitmq".into(),
            "--amqp-url".into(),
            url.clone(),
            "--amqp-prefix".into(),
            prefix.clone(),
            "--max-events".into(),
            "200".into(),
        ];
        if with_ca {
            a.push("--amqp-ca-file".into());
            a.push(ca.display().to_string());
        }
        a
    };

    // TC0: no CA: one line, a certificate error, the flag named, fast.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_producer"));
    cmd.args(args(false)).env_remove("AMQP_CA_FILE");
    let r = tokio::task::spawn_blocking(move || run_bounded(&mut cmd, Duration::from_secs(30)))
        .await
        .unwrap();
    assert!(
        r.failed_fast() && r.elapsed < Duration::from_secs(15),
        "{r:?}"
    );
    let lines = r.error_lines("producer:");
    assert_eq!(lines.len(), 1, "{r:?}");
    assert!(
        lines[0].contains("certificate") && lines[0].contains("--amqp-ca-file"),
        "{r:?}"
    );
    assert!(!r.stderr.contains("guest:guest"), "{r:?}");

    // TC1: with the CA: 200 ticks confirmed over TLS, all in the queue.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_producer"));
    cmd.args(args(true));
    let r = tokio::task::spawn_blocking(move || run_bounded(&mut cmd, Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(r.code, Some(0), "{r:?}");
    let report: serde_json::Value = serde_json::from_str(r.stdout.trim()).expect("JSON report");
    assert_eq!(report["ticks"], 200, "{report}");
    assert_eq!(report["unconfirmed"], 0, "{report}");
    let published = 200 + report["gaps"].as_u64().unwrap();
    let queue = format!("{prefix}.work");
    let depth = tokio::task::spawn_blocking(move || node.queue_depth(&queue))
        .await
        .unwrap();
    assert_eq!(depth, Some(published), "work queue depth on the TLS node");
}
