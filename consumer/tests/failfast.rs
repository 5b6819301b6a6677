//! `worker` and `consumer` with bad flags and unusable brokers: each case
//! exits non-zero within a bound, instead of entering the reconnect loop
//! that a broker lost *after* startup deserves, with one `<binary>: error:`
//! line naming the problem and never the password. None of lapin's own
//! log lines (`ERROR io_loop: lapin::channel: Channel closed ...`) comes
//! with it: a wrong password or a missing queue reads as one clean line.
//!
//! Needs the shared RabbitMQ (wrong credentials are checked against it).

use std::process::Command;
use std::time::Duration;
use tickbridge_testkit as testkit;
use tickbridge_testkit::{amqp_url, closed_port, run_bounded, BoundedRun};

/// Generous for a loaded 2-core machine; a retry loop would run forever.
const LIMIT: Duration = Duration::from_secs(15);

fn run(bin: &str, args: &[String], env: &[(&str, &str)]) -> BoundedRun {
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .env_remove("RUST_LOG")
        .env_remove("AMQP_URL")
        .env_remove("KAFKA_BROKERS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_bounded(&mut cmd, LIMIT + Duration::from_secs(15))
}

/// A bad invocation of one binary and the words its error line must hold.
struct TestCase<'a> {
    what: &'static str,
    args: Vec<String>,
    expect: &'a [&'a str],
}

/// Runs each case against `bin`: it fails fast with one
/// `<binary>: error:` (or clap's `error:`) line, no panic, no password
/// and no lapin log lines.
fn check(bin: &str, cases: &[TestCase<'_>]) {
    let name = std::path::Path::new(bin)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_string();
    let prefixes = [format!("{name}:"), "error:".to_string()];
    let prefixes: Vec<&str> = prefixes.iter().map(String::as_str).collect();
    for (i, c) in cases.iter().enumerate() {
        let r = run(bin, &c.args, &[]);
        let ctx = format!("TC{i} ({}): {r:?}", c.what);
        assert!(!r.stderr.contains("panicked"), "{ctx}");
        r.assert_one_error_line(LIMIT, "hunter2", &prefixes, c.expect, &ctx);
    }
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// `--amqp-url <url>`.
fn amqp(url: String) -> Vec<String> {
    vec!["--amqp-url".into(), url]
}

/// The consumer reading the RabbitMQ stream, with `rest`.
fn stream(rest: Vec<String>) -> Vec<String> {
    [s(&["--from", "rabbitmq-stream"]), rest].concat()
}

#[test]
fn worker_fails_fast_on_unusable_rabbitmq() {
    let reserved = closed_port();
    let closed = reserved.port;
    let missing_prefix = testkit::rand_name("tb-missing");
    let missing_work = format!("{missing_prefix}.work");
    check(
        env!("CARGO_BIN_EXE_worker"),
        &[
            TestCase {
                what: "wrong scheme",
                args: s(&["--amqp-url", "http://guest:hunter2@127.0.0.1:5672/"]),
                expect: &["scheme", "amqp://"],
            },
            TestCase {
                what: "host that does not resolve",
                args: s(&[
                    "--amqp-url",
                    "amqp://guest:hunter2@no-such-host.invalid:5672/%2f",
                ]),
                expect: &["RabbitMQ at", "guest:***@no-such-host.invalid", "host name"],
            },
            TestCase {
                what: "refused port",
                args: amqp(format!("amqp://guest:hunter2@127.0.0.1:{closed}/%2f")),
                expect: &["RabbitMQ at", "refused", "is RabbitMQ running"],
            },
            TestCase {
                what: "wrong credentials",
                args: amqp(testkit::with_password(&amqp_url(), "guest", "hunter2")),
                expect: &["ACCESS_REFUSED", "user and password"],
            },
            TestCase {
                what: "a work queue that does not exist",
                args: vec!["--amqp-prefix".into(), missing_prefix.clone()],
                expect: &[
                    "queue",
                    &missing_work,
                    "does not exist",
                    "--declare-topology",
                ],
            },
            TestCase {
                what: "a vhost that does not exist",
                args: amqp(format!(
                    "{}/no-such-vhost",
                    amqp_url().trim_end_matches("/%2f").trim_end_matches('/')
                )),
                expect: &["RabbitMQ at", "vhost"],
            },
            TestCase {
                what: "a CA file that does not exist",
                args: s(&[
                    "--amqp-url",
                    "amqps://127.0.0.1:5671/%2f",
                    "--amqp-ca-file",
                    "/no/such/ca.pem",
                ]),
                expect: &["--amqp-ca-file", "/no/such/ca.pem"],
            },
            TestCase {
                what: "prefetch not a number",
                args: s(&["--prefetch", "nope"]),
                expect: &["--prefetch"],
            },
        ],
    );
}

#[test]
fn consumer_fails_fast_on_unusable_brokers_and_bad_flags() {
    let reserved = closed_port();
    let closed = reserved.port;
    let missing_prefix = testkit::rand_name("tb-missing");
    let missing_stream = format!("{missing_prefix}.stream");
    check(
        env!("CARGO_BIN_EXE_consumer"),
        &[
            TestCase {
                what: "Kafka port refused",
                args: vec!["--kafka-brokers".into(), format!("127.0.0.1:{closed}")],
                expect: &["Kafka at", "unreachable", "refused"],
            },
            TestCase {
                what: "Kafka host that does not resolve",
                args: s(&["--kafka-brokers", "no-such-host.invalid:9092"]),
                expect: &["Kafka at", "cannot resolve host"],
            },
            TestCase {
                what: "Kafka brokers given as a URL",
                args: s(&["--kafka-brokers", "https://127.0.0.1:9092"]),
                expect: &["--kafka-brokers", "scheme"],
            },
            TestCase {
                what: "stream from a refused RabbitMQ",
                args: stream(amqp(format!("amqp://guest:hunter2@127.0.0.1:{closed}/%2f"))),
                expect: &["RabbitMQ at", "refused"],
            },
            TestCase {
                what: "stream with wrong credentials",
                args: stream(amqp(testkit::with_password(
                    &amqp_url(),
                    "guest",
                    "hunter2",
                ))),
                expect: &["ACCESS_REFUSED"],
            },
            TestCase {
                what: "a stream queue that does not exist",
                args: stream(vec!["--amqp-prefix".into(), missing_prefix.clone()]),
                expect: &["queue", &missing_stream, "does not exist"],
            },
            TestCase {
                what: "bad --replay-from",
                args: s(&["--replay-from", "yesterday-ish"]),
                expect: &["--replay-from", "yesterday-ish"],
            },
            TestCase {
                what: "negative --replay-from",
                args: s(&["--replay-from=-5"]),
                expect: &["--replay-from"],
            },
        ],
    );
}

/// The worker's JSON logs and error line carry the masked URL, never the
/// password, even at debug level.
#[test]
fn worker_never_logs_the_password() {
    let url = testkit::with_password(&amqp_url(), "user", "s3cr3tpw");
    let r = run(
        env!("CARGO_BIN_EXE_worker"),
        &s(&["--amqp-url", &url, "--log-format", "json"]),
        &[("RUST_LOG", "debug")],
    );
    assert!(r.failed_fast() && r.elapsed < LIMIT, "{r:?}");
    assert!(
        !r.stderr.contains("s3cr3tpw") && !r.stdout.contains("s3cr3tpw"),
        "{r:?}"
    );
    assert!(r.stderr.contains("user:***@"), "{r:?}");
}
