//! The `bridge` binary with a broker it cannot use at startup: a wrong
//! scheme, a host that does not resolve, a refused port, wrong credentials
//! (RabbitMQ's ACCESS_REFUSED) or a broker list that is not `host:port`.
//! Each exits non-zero within a bound with one `bridge: error:` line naming
//! the broker, and never the password.
//!
//! Needs the shared RabbitMQ (wrong credentials are checked against it, and
//! the Kafka cases get past the RabbitMQ check with it).

use std::process::Command;
use std::time::Duration;
use tickbridge_core::testkit::{self, amqp_url, closed_port, run_bounded};

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
            assert!(r.failed_fast() && r.elapsed < LIMIT, "{ctx}");
            assert!(!r.stderr.contains("hunter2"), "password leaked: {ctx}");
            let lines = r.error_lines("bridge:");
            assert_eq!(lines.len(), 1, "{ctx}");
            for word in c.expect {
                assert!(lines[0].contains(word), "{word:?} missing: {ctx}");
            }
        }
    }
}
