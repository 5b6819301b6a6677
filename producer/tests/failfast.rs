//! The `producer` binary with bad flags and unusable brokers: each case
//! exits non-zero within a bound (no hang, no retry loop), with one
//! `producer: ...` line on stderr naming the problem and never a password,
//! and none of lapin's own log lines with it (the producer declares its
//! topology, so RabbitMQ's refusals here are credentials and vhosts, not a
//! missing queue).
//! The exchange feed is the exception, by design: a feed host that resolves
//! but refuses is retried with backoff, every attempt logged.
//!
//! Needs the shared RabbitMQ (for the wrong-credentials case).

use std::process::Command;
use std::time::Duration;
use tickbridge_testkit as testkit;
use tickbridge_testkit::{amqp_url, closed_port, run_bounded, BoundedRun};

/// Generous for a loaded 2-core machine; a retry loop would run forever.
const LIMIT: Duration = Duration::from_secs(15);

fn producer(args: &[&str]) -> BoundedRun {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_producer"));
    cmd.args(args)
        .env_remove("RUST_LOG")
        .env_remove("AMQP_URL")
        .env_remove("KAFKA_BROKERS")
        .env_remove("PRODUCER_URL")
        .env_remove("PRODUCER_SINKS");
    run_bounded(&mut cmd, LIMIT + Duration::from_secs(15))
}

/// Every bad flag or unusable broker makes the producer exit at once with
/// one error line naming the problem (and no password).
///
/// Long (~160 lines) on purpose: table-driven, one `TestCase` per case.
#[test]
fn bad_flags_and_unusable_brokers_fail_fast_with_one_line() {
    let reserved = closed_port();
    let closed = reserved.port.to_string();
    let feed = "ws://127.0.0.1:1".to_string();
    let refused_amqp = format!("amqp://guest:hunter2@127.0.0.1:{closed}/%2f");
    let wrong_creds = testkit::with_password(&amqp_url(), "guest", "hunter2");
    let refused_kafka = format!("127.0.0.1:{closed}");
    let missing_vhost = format!(
        "{}/{}",
        amqp_url().trim_end_matches("/%2f").trim_end_matches('/'),
        testkit::rand_name("tb-no-vhost")
    );
    struct TestCase {
        what: &'static str,
        args: Vec<String>,
        expect: &'static [&'static str],
    }
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // A feed that is never reached, and one sink at an unusable broker.
    let amqp_sink = |url: &str| s(&["--url", &feed, "--sink", "rabbitmq", "--amqp-url", url]);
    let kafka_sink = |brokers: &str| {
        s(&[
            "--url",
            &feed,
            "--sink",
            "kafka",
            "--kafka-brokers",
            brokers,
        ])
    };
    let cases = vec![
        TestCase {
            what: "unknown exchange",
            args: s(&["--exchange", "ftx"]),
            expect: &["invalid value", "ftx"],
        },
        TestCase {
            what: "feed URL with the wrong scheme",
            args: s(&["--url", "http://127.0.0.1:9000", "--sink", "jsonl"]),
            expect: &["--url", "ws://"],
        },
        TestCase {
            what: "feed host that does not resolve",
            args: s(&["--url", "ws://no-such-host.invalid:9000", "--sink", "jsonl"]),
            expect: &["--url", "cannot resolve host", "no-such-host.invalid"],
        },
        TestCase {
            what: "AMQP URL with the wrong scheme",
            args: amqp_sink("http://guest:hunter2@127.0.0.1:5672/"),
            expect: &["AMQP URL", "scheme", "amqp://"],
        },
        TestCase {
            what: "AMQP host that does not resolve",
            args: amqp_sink("amqp://guest:hunter2@no-such-host.invalid:5672/%2f"),
            expect: &["RabbitMQ at", "guest:***@no-such-host.invalid"],
        },
        TestCase {
            what: "AMQP port refused",
            args: amqp_sink(&refused_amqp),
            expect: &["RabbitMQ at", "refused"],
        },
        TestCase {
            what: "AMQP wrong credentials",
            args: amqp_sink(&wrong_creds),
            expect: &["RabbitMQ at", "ACCESS_REFUSED"],
        },
        TestCase {
            what: "AMQP vhost that does not exist",
            args: amqp_sink(&missing_vhost),
            expect: &["RabbitMQ at", "vhost"],
        },
        TestCase {
            what: "Kafka port refused",
            args: kafka_sink(&refused_kafka),
            expect: &["Kafka at", "unreachable", "refused"],
        },
        TestCase {
            what: "Kafka host that does not resolve",
            args: kafka_sink("no-such-host.invalid:9092"),
            expect: &["Kafka at", "cannot resolve host"],
        },
        TestCase {
            what: "Kafka brokers given as a URL",
            args: kafka_sink("http://127.0.0.1:9092"),
            expect: &["--kafka-brokers", "scheme"],
        },
        TestCase {
            what: "malformed --kafka-option",
            args: s(&["--kafka-option", "sasl.password"]),
            expect: &["key=value"],
        },
    ];
    for (i, c) in cases.iter().enumerate() {
        let args: Vec<&str> = c.args.iter().map(String::as_str).collect();
        let r = producer(&args);
        let ctx = format!("TC{i} ({}): {r:?}", c.what);
        assert!(!r.stderr.contains("panicked"), "{ctx}");
        // clap's own errors start with `error:`; ours with `producer:`.
        r.assert_one_error_line(LIMIT, "hunter2", &["producer:", "error:"], c.expect, &ctx);
    }
}

/// A feed that refuses is retried, not fatal: exchanges drop and refuse
/// connections routinely. Each attempt is logged with its number, and the
/// run still ends cleanly at `--max-seconds`.
#[test]
fn refused_feed_is_retried_with_logged_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let reserved = closed_port();
    let closed = reserved.port;
    let r = producer(&[
        "--url",
        &format!("ws://127.0.0.1:{closed}"),
        "--sink",
        "jsonl",
        "--out-dir",
        dir.path().to_str().unwrap(),
        "--reconnect-min",
        "100ms",
        "--reconnect-max",
        "400ms",
        "--max-seconds",
        "3",
    ]);
    assert_eq!(r.code, Some(0), "{r:?}");
    let attempts = r
        .stderr
        .lines()
        .filter(|l| l.contains("feed reconnect scheduled") && l.contains(" attempt="))
        .count();
    assert!(attempts >= 3, "expected logged retries: {r:?}");
}

/// Secrets given in the AMQP URL or through the Kafka passthrough never
/// reach stdout or stderr, even at debug level and in JSON logs; the masked
/// URL does, so the user can still tell which broker failed.
#[test]
fn credentials_are_never_logged() {
    // A port that accepts TCP and then says nothing: the Kafka client is
    // created with the SASL options and its metadata request times out.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in silent.incoming().flatten() {
            held.push(s);
        }
    });
    let amqp = testkit::with_password(&amqp_url(), "user", "s3cr3tpw");
    let runs = [
        (
            "amqp",
            vec![
                "--sink".to_string(),
                "rabbitmq".into(),
                "--amqp-url".into(),
                amqp.clone(),
            ],
        ),
        (
            "kafka",
            vec![
                "--sink".to_string(),
                "kafka".into(),
                "--kafka-brokers".into(),
                silent_addr.clone(),
                "--kafka-option".into(),
                "security.protocol=SASL_PLAINTEXT".into(),
                "--kafka-option".into(),
                "sasl.mechanism=PLAIN".into(),
                "--kafka-option".into(),
                "sasl.username=user".into(),
                "--kafka-option".into(),
                "sasl.password=s3cr3tkafka".into(),
                // The AMQP URL is logged nowhere it is not used, but carries
                // a secret too, to be sure.
                "--amqp-url".into(),
                amqp.clone(),
            ],
        ),
    ];
    for (what, extra) in runs {
        let mut args = vec![
            "--url".to_string(),
            "ws://127.0.0.1:1".into(),
            "--log-format".into(),
            "json".into(),
        ];
        args.extend(extra);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_producer"));
        cmd.args(&args).env("RUST_LOG", "debug");
        let r = run_bounded(&mut cmd, LIMIT + Duration::from_secs(15));
        assert!(r.failed_fast() && r.elapsed < LIMIT, "{what}: {r:?}");
        for secret in ["s3cr3tpw", "s3cr3tkafka"] {
            assert!(
                !r.stderr.contains(secret) && !r.stdout.contains(secret),
                "{what}: {secret} leaked: {r:?}"
            );
        }
        if what == "amqp" {
            assert!(
                r.stderr.contains("user:***@"),
                "{what}: masked URL missing: {r:?}"
            );
        } else {
            assert!(r.stderr.contains("Kafka at"), "{what}: {r:?}");
        }
    }
}
