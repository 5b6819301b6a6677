//! The `bridge` binary with a broker it cannot use at startup: a wrong
//! scheme, a host that does not resolve, a refused port, wrong credentials
//! (RabbitMQ's ACCESS_REFUSED) or a broker list that is not `host:port`.
//! Each exits non-zero within a bound with one `bridge: error:` line naming
//! the broker, and never the password. So does a queue or exchange that does
//! not exist. None of lapin's own log lines (`ERROR io_loop: lapin::...`)
//! comes with that line.
//!
//! Needs the shared RabbitMQ (wrong credentials are checked against it, and
//! the Kafka cases get past the RabbitMQ check with it).

mod common;

use std::process::Command;
use std::time::Duration;
use tickbridge_testkit as testkit;
use tickbridge_testkit::{amqp_url, closed_port, run_bounded};

/// Generous for a loaded 2-core machine; a retry loop would run forever.
const LIMIT: Duration = Duration::from_secs(15);

#[test]
fn unusable_brokers_fail_fast_with_one_line() {
    let reserved = closed_port();
    let closed = reserved.port;
    let good_amqp = amqp_url();
    struct TestCase {
        what: &'static str,
        amqp: String,
        kafka: String,
        expect: &'static [&'static str],
    }
    let cases = [
        TestCase {
            what: "AMQP host that does not resolve",
            amqp: "amqp://guest:hunter2@no-such-host.invalid:5672/%2f".into(),
            kafka: "127.0.0.1:9092".into(),
            expect: &["RabbitMQ at", "guest:***@no-such-host.invalid"],
        },
        TestCase {
            what: "AMQP port refused",
            amqp: format!("amqp://guest:hunter2@127.0.0.1:{closed}/%2f"),
            kafka: "127.0.0.1:9092".into(),
            expect: &["RabbitMQ at", "refused"],
        },
        TestCase {
            what: "AMQP wrong credentials",
            amqp: testkit::with_password(&good_amqp, "guest", "hunter2"),
            kafka: "127.0.0.1:9092".into(),
            expect: &["RabbitMQ at", "ACCESS_REFUSED"],
        },
        TestCase {
            what: "Kafka port refused",
            amqp: good_amqp.clone(),
            kafka: format!("127.0.0.1:{closed}"),
            expect: &["Kafka at", "refused"],
        },
        TestCase {
            what: "Kafka host that does not resolve",
            amqp: good_amqp.clone(),
            kafka: "no-such-host.invalid:9092".into(),
            expect: &["Kafka at", "cannot resolve host"],
        },
        TestCase {
            what: "Kafka brokers given as a URL",
            amqp: good_amqp.clone(),
            kafka: "http://127.0.0.1:9092".into(),
            expect: &["--kafka-brokers", "scheme"],
        },
    ];
    for (i, c) in cases.iter().enumerate() {
        for direction in ["rabbitmq-to-kafka", "kafka-to-rabbitmq"] {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_bridge"));
            cmd.args([
                direction,
                "--amqp-url",
                &c.amqp,
                "--kafka-brokers",
                &c.kafka,
            ])
            .env_remove("RUST_LOG");
            let r = run_bounded(&mut cmd, LIMIT + Duration::from_secs(15));
            let ctx = format!("TC{i} ({}, {direction}): {r:?}", c.what);
            r.assert_one_error_line(LIMIT, "hunter2", &["bridge:"], c.expect, &ctx);
        }
    }
}

/// A queue (rabbitmq-to-kafka) or exchange (kafka-to-rabbitmq) that does not
/// exist, on a pipeline and topic that do: one `bridge: error:` line naming
/// it, and none of lapin's `Channel closed ... NOT_FOUND` lines.
#[tokio::test(flavor = "multi_thread")]
async fn missing_queue_or_exchange_is_one_clean_line() {
    let rabbit = common::Rabbit::new(&amqp_url()).await;
    let kafka = common::kafka_topic(&common::kafka_brokers(), 1).await;
    let prefix = rabbit.cfg.prefix.clone();
    let missing = format!("{prefix}.no-such");
    for (direction, flag, what) in [
        ("rabbitmq-to-kafka", "--queue", "queue"),
        ("kafka-to-rabbitmq", "--exchange", "exchange"),
    ] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bridge"));
        cmd.args([
            direction,
            "--amqp-url",
            &amqp_url(),
            "--amqp-prefix",
            &prefix,
            "--kafka-brokers",
            &kafka.brokers,
            "--kafka-topic",
            &kafka.topic,
            flag,
            &missing,
        ])
        .env_remove("RUST_LOG");
        let r = tokio::task::spawn_blocking(move || {
            run_bounded(&mut cmd, LIMIT + Duration::from_secs(15))
        })
        .await
        .unwrap();
        let ctx = format!("{direction} {flag} {missing}: {r:?}");
        r.assert_one_error_line(
            LIMIT,
            "hunter2",
            &["bridge:"],
            &[what, missing.as_str(), "does not exist"],
            &ctx,
        );
    }
    rabbit.cleanup().await;
}
