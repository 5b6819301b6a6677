//! The binary's surface: bad flags and missing resources give one clear
//! line and a non-zero exit, `/metrics` serves every documented series,
//! and SIGTERM drains and exits 0.

mod common;

use common::*;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tickbridge_testkit::proc::{exit_within, sigterm};

fn bridge(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bridge"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run the bridge binary");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Table of bad invocations and the words their error must contain.
#[test]
fn bad_flags_are_one_line_errors() {
    // (arguments, what the error must contain)
    let cases: [(&[&str], &str); 6] = [
        // TC0: no direction.
        (&[], "Usage"),
        // TC1: a key source that does not exist.
        (
            &["rabbitmq-to-kafka", "--kafka-key", "bogus"],
            "expected `key`, `canonical` or `header:<name>`",
        ),
        // TC2: prefetch 0 would mean "unlimited" in AMQP.
        (
            &["rabbitmq-to-kafka", "--prefetch", "0"],
            "--prefetch must be at least 1",
        ),
        // TC3: a malformed duration.
        (
            &["kafka-to-rabbitmq", "--commit-interval", "soon"],
            "--commit-interval",
        ),
        // TC4: a URL with the wrong scheme; the password never shows.
        (
            &["rabbitmq-to-kafka", "--amqp-url", "http://u:hunter2@h/"],
            "scheme",
        ),
        // TC5: an unknown subcommand.
        (&["sideways"], "unrecognized subcommand"),
    ];
    for (i, (args, expect)) in cases.iter().enumerate() {
        let (ok, err) = bridge(args);
        assert!(!ok, "TC{i}: should fail");
        assert!(err.contains(expect), "TC{i}: {err}");
        assert!(
            !err.contains("hunter2") && !err.contains("panicked"),
            "TC{i}: {err}"
        );
    }
}

/// An unknown queue and an unknown topic name the resource in one line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_resources_exit_with_one_line() {
    let rabbit = Rabbit::new(&amqp_url()).await;
    let kafka = kafka_topic(&kafka_brokers(), 1).await;
    let common = broker_args(&rabbit, &kafka.brokers);
    // (arguments, the error, whether that error is all of stderr)
    let cases: [([&str; 5], &str, bool); 3] = [
        (
            [
                "rabbitmq-to-kafka",
                "--queue",
                "nope-queue",
                "--kafka-topic",
                &kafka.topic,
            ],
            "\"nope-queue\" does not exist",
            true,
        ),
        (
            [
                "kafka-to-rabbitmq",
                "--kafka-topic",
                "nope-topic-xyz",
                "--topic-wait",
                "1s",
            ],
            "\"nope-topic-xyz\" does not exist",
            true,
        ),
        (
            [
                "kafka-to-rabbitmq",
                "--kafka-topic",
                &kafka.topic,
                "--exchange",
                "nope-exchange",
            ],
            "\"nope-exchange\" does not exist",
            false,
        ),
    ];
    for (args, missing, one_line) in cases {
        let (ok, err) = bridge(&[&args[..], &common[..]].concat());
        assert!(
            !ok && (!one_line || err.trim().lines().count() == 1) && err.contains(missing),
            "{err}"
        );
    }
    rabbit.cleanup().await;
}

fn scrape(port: u16) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

/// `bridge both` serves the documented series on `--metrics-addr`, counts
/// what it bridged there, and exits 0 on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_endpoint_and_sigterm() {
    let rabbit = Rabbit::new(&amqp_url()).await;
    let kafka = kafka_topic(&kafka_brokers(), 1).await;
    rabbit.publish(&ticks("metrics", 100)).await;
    let port = tickbridge_testkit::free_port();
    let addr = format!("127.0.0.1:{port}");
    let group = rand_name("metrics");
    let mut child = Command::new(env!("CARGO_BIN_EXE_bridge"))
        .arg("both")
        .args(broker_args(&rabbit, &kafka.brokers))
        .args([
            "--kafka-topic",
            &kafka.topic,
            "--group",
            &group,
            "--metrics-addr",
            &addr,
        ])
        .env("RUST_LOG", "warn")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        if let Some(t) = scrape(port) {
            if t.contains("tickbridge_bridge_bridged_total{direction=\"rabbitmq_to_kafka\"} 100") {
                break t;
            }
        }
        assert!(
            Instant::now() < deadline,
            "metrics never showed 100 bridged: {:?}",
            scrape(port)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for series in [
        "tickbridge_bridge_bridged_total{direction=\"kafka_to_rabbitmq\"}",
        "tickbridge_bridge_in_flight{direction=\"rabbitmq_to_kafka\"}",
        "tickbridge_bridge_lag{direction=\"kafka_to_rabbitmq\"}",
        "tickbridge_bridge_retries_total{direction=\"rabbitmq_to_kafka\"}",
        "tickbridge_bridge_duplicates_total{direction=\"kafka_to_rabbitmq\"}",
        "tickbridge_bridge_skipped_own_total{direction=\"kafka_to_rabbitmq\"}",
        "tickbridge_bridge_reconnects_total{direction=\"rabbitmq_to_kafka\"}",
    ] {
        assert!(text.contains(series), "{series} missing from:\n{text}");
    }
    sigterm(&child);
    let status = exit_within(&mut child, Duration::from_secs(30))
        .await
        .expect("no exit after SIGTERM");
    assert!(status.success(), "{status}");
    rabbit.cleanup().await;
}
