//! Throughput, latency and CPU per message of `worker` (RabbitMQ work
//! queue) and `consumer` (Kafka group, RabbitMQ stream) against the real
//! local brokers, each beside a raw reader of the same client library in
//! the same run.
//!
//! For each reader it measures:
//! * **paced** runs at 1,000 and 10,000 ticks/s, published by a child
//!   process (this binary again) so that this process's CPU time is the
//!   reader's alone: ticks are stamped (`received_ts` = now) right before
//!   they are published, so the latency percentiles are publish → broker →
//!   handled, the pipeline's own share; at 1,000/s a raw reader's CPU per
//!   message is measured too;
//! * **drains**: N ticks published first, then read as fast as possible,
//!   for the reader's maximum throughput, beside a **raw** reader of the
//!   same kind of preload (same client library, same prefetch or fetch
//!   settings; one ack per delivery, or Kafka offsets stored after each
//!   record and auto-committed every second; no decoding, validation or
//!   bookkeeping): the ratio is what the reader's own work costs. Two
//!   rounds, the raw reader first in the first one.
//!
//! Every row records this process's CPU per message (`/proc/self/stat`) and
//! how busy the machine was (both cores, and what the hypervisor stole,
//! from `/proc/stat`).
//!
//! `cargo bench -p tickbridge-consumer` (release build). Needs the brokers of
//! `scripts/stack.sh up`; `AMQP_URL` and `KAFKA_BROKERS` override the
//! addresses. Prints Markdown tables and writes them, with the date, under
//! `## Results` in `BENCHMARKS.md`. A reader filter argument (`Kafka`,
//! `worker`, `stream`) or `BENCH_RUNS=drain` (drains only, for `perf
//! record`) only prints.

use std::sync::Arc;
use std::time::{Duration, Instant};
use tickbridge_broker::amqp::AmqpConfig;
use tickbridge_broker::kafka::KafkaConfig;
use tickbridge_consumer::consumer::{self, ConsumerConfig};
use tickbridge_consumer::worker::{self, WorkerConfig};
use tickbridge_consumer::Summary;
use tickbridge_model::{Message, Shutdown};
use tickbridge_testkit::loadgen::{stamp, synthetic_ticks, AmqpPublisher, KafkaPublisher};
use tickbridge_testkit::{cpu_us_per_msg, host_cpu, host_share, process_cpu};

const SYMBOLS: [&str; 6] = [
    "BTC-USD", "ETH-USD", "SOL-USD", "XRP-USD", "ADA-USD", "DOGE-USD",
];

#[derive(Clone, Copy, PartialEq)]
enum Reader {
    Worker,
    Kafka,
    Stream,
}

impl Reader {
    fn label(self) -> &'static str {
        match self {
            Reader::Worker => "worker (RabbitMQ work queue)",
            Reader::Kafka => "consumer (Kafka group)",
            Reader::Stream => "consumer (RabbitMQ stream)",
        }
    }
}

fn rand_name(p: &str) -> String {
    format!("{p}-{:012x}", rand::random::<u64>() >> 16)
}

struct Setup {
    amqp: AmqpConfig,
    kafka: KafkaConfig,
}

/// Broker addresses and this run's names: the prefix of its AMQP topology
/// and its Kafka topic.
fn configs(prefix: &str, topic: &str) -> (AmqpConfig, KafkaConfig) {
    let url = std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://127.0.0.1:5672/%2f".into());
    let brokers = std::env::var("KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    (
        AmqpConfig::local(&url, prefix),
        KafkaConfig::local(&brokers, topic, 3),
    )
}

async fn setup(reader: Reader) -> Setup {
    let topic = rand_name("tb-bench");
    let (amqp, mut kafka) = configs(&rand_name("tb-bench"), &topic);
    // BENCH_KAFKA_OPTIONS="fetch.wait.max.ms=5,..." tries librdkafka settings
    // on the readers (applied last, like --kafka-option).
    if let Ok(opts) = std::env::var("BENCH_KAFKA_OPTIONS") {
        kafka.options = opts
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    }
    if reader == Reader::Kafka {
        kafka
            .ensure_topic(&topic, 3)
            .await
            .expect("Kafka is required (scripts/stack.sh up)");
    } else {
        let conn = amqp
            .connect("bench")
            .await
            .expect("RabbitMQ is required (scripts/stack.sh up)");
        let ch = conn.create_channel().await.unwrap();
        amqp.topology().declare(&ch).await.unwrap();
    }
    Setup { amqp, kafka }
}

async fn teardown(reader: Reader, s: &Setup) {
    if reader != Reader::Kafka {
        let conn = s.amqp.connect("bench").await.unwrap();
        let ch = conn.create_channel().await.unwrap();
        let _ = s.amqp.topology().delete(&ch).await;
    }
}

fn start_reader(
    reader: Reader,
    s: &Setup,
) -> tokio::task::JoinHandle<tickbridge_consumer::Result<Summary>> {
    let idle = Some(Duration::from_secs(2));
    match reader {
        Reader::Worker => {
            let mut c = WorkerConfig::local(&s.amqp.url, &s.amqp.prefix);
            c.common.exit_when_idle = idle;
            c.common.stats_interval = Duration::from_secs(3600);
            tokio::spawn(worker::run(c, Shutdown::new()))
        }
        Reader::Kafka => {
            let mut c = ConsumerConfig::local_kafka(s.kafka.clone(), &rand_name("bench"));
            c.common.exit_when_idle = Some(Duration::from_secs(4));
            c.common.stats_interval = Duration::from_secs(3600);
            tokio::spawn(consumer::run(c, Shutdown::new()))
        }
        Reader::Stream => {
            let mut c = ConsumerConfig::local_stream(s.amqp.clone());
            c.replay_from = Some("earliest".parse().unwrap());
            c.common.exit_when_idle = idle;
            c.common.stats_interval = Duration::from_secs(3600);
            tokio::spawn(consumer::run(c, Shutdown::new()))
        }
    }
}

/// Publishes `n` ticks at `rate`/s (or as fast as possible with `None`),
/// stamping each right before it is sent. Returns the achieved rate.
async fn publish(reader: Reader, s: &Setup, n: usize, rate: Option<u64>) -> f64 {
    let ticks = synthetic_ticks(&rand_name("bench"), &SYMBOLS, n);
    let started = Instant::now();
    let due = |i: usize| rate.map(|r| started + Duration::from_secs_f64(i as f64 / r as f64));
    if reader == Reader::Kafka {
        // Send at once at 1,000/s; batch for 20 ms at higher rates, as the
        // producer would: fewer, larger produce requests per partition.
        let default_linger = if rate.is_some_and(|r| r < 5_000) {
            0
        } else {
            20
        };
        let linger = std::env::var("BENCH_LINGER_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default_linger);
        let mut pcfg = s.kafka.clone();
        pcfg.options.clear();
        let p =
            Arc::new(KafkaPublisher::with_linger(&pcfg, Duration::from_millis(linger)).unwrap());
        let mut handles = Vec::with_capacity(n);
        for (i, mut t) in ticks.into_iter().enumerate() {
            if let Some(at) = due(i) {
                tokio::time::sleep_until(at.into()).await;
            }
            stamp(&mut t);
            let p = p.clone();
            handles.push(tokio::spawn(async move { p.send(&Message::Tick(t)).await }));
        }
        for h in handles {
            h.await.unwrap().expect("delivered");
        }
    } else {
        let mut p = AmqpPublisher::connect(&s.amqp).await.unwrap();
        for (i, mut t) in ticks.into_iter().enumerate() {
            if let Some(at) = due(i) {
                if at > Instant::now() + Duration::from_micros(500) {
                    tokio::time::sleep_until(at.into()).await;
                }
            }
            stamp(&mut t);
            p.publish(&Message::Tick(t)).await.unwrap();
        }
        p.flush().await.unwrap();
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// Paced publishing runs in a child process (this binary again, with
/// `BENCH_PUBLISH` set), so that this process's CPU time is the reader's
/// alone: the CPU per message of a reader and of its raw baseline are
/// compared at the same rate.
const CHILD_ENV: &str = "BENCH_PUBLISH";

async fn publish_in_child(reader: Reader, s: &Setup, n: usize, rate: u64) -> f64 {
    let kind = match reader {
        Reader::Worker => "worker",
        Reader::Kafka => "kafka",
        Reader::Stream => "stream",
    };
    let spec = format!("{kind} {} {} {n} {rate}", s.amqp.prefix, s.kafka.topic);
    let exe = std::env::current_exe().expect("own path");
    let out = tokio::process::Command::new(exe)
        .env(CHILD_ENV, spec)
        .stderr(std::process::Stdio::inherit())
        .output()
        .await
        .expect("start the publishing child");
    assert!(
        out.status.success(),
        "publishing child failed: {}",
        out.status
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("child prints its rate")
}

/// The child's side: `kind prefix topic n rate`; prints the achieved rate.
async fn child_publish(spec: &str) {
    let f: Vec<&str> = spec.split_whitespace().collect();
    let reader = match f[0] {
        "worker" => Reader::Worker,
        "kafka" => Reader::Kafka,
        _ => Reader::Stream,
    };
    let (amqp, kafka) = configs(f[1], f[2]);
    let s = Setup { amqp, kafka };
    let rate = publish(
        reader,
        &s,
        f[3].parse().unwrap(),
        Some(f[4].parse().unwrap()),
    )
    .await;
    println!("{rate}");
}

struct Row {
    reader: &'static str,
    mode: String,
    published_rate: f64,
    s: Summary,
    /// Share of both cores in use, and stolen, while the row ran (percent).
    machine: Option<(f64, f64)>,
    /// This process's CPU per handled message (µs): the reader's alone,
    /// since publishing ran before it (drains) or in a child (paced).
    cpu_us: Option<f64>,
}

/// A raw reader's run: messages per second, CPU per message (µs), and the
/// machine's busy and stolen shares.
#[derive(Clone, Copy)]
struct RawRun {
    rate: f64,
    cpu_us: Option<f64>,
    machine: Option<(f64, f64)>,
}

/// A reader's raw runs: its label, its drains and its paced run.
struct RawRow {
    label: &'static str,
    drains: Vec<RawRun>,
    paced: Option<RawRun>,
}

/// How a row's ticks are published.
enum Load {
    /// `n` ticks before the reader starts; the reader drains them.
    Drain(usize),
    /// `rate` ticks/s for `secs` s from a child process, after the reader
    /// has started.
    Paced { rate: u64, secs: u64 },
}

/// One row: the reader's rate, and this process's CPU per message while it
/// read (the reader's alone: publishing ran before it, or in a child).
async fn run_row(reader: Reader, load: Load) -> Row {
    let s = setup(reader).await;
    let (mode, preloaded) = match load {
        Load::Drain(n) => (
            format!("drain {n}"),
            Some(publish(reader, &s, n, None).await),
        ),
        Load::Paced { rate, .. } => (format!("paced {rate}/s"), None),
    };
    let host = host_cpu();
    let cpu = process_cpu();
    let h = start_reader(reader, &s);
    let published_rate = match (load, preloaded) {
        (Load::Paced { rate, secs }, _) => {
            // Let the reader connect, consume and (Kafka) join its group first.
            let warm_up = if reader == Reader::Kafka { 3 } else { 1 };
            tokio::time::sleep(Duration::from_secs(warm_up)).await;
            publish_in_child(reader, &s, (rate * secs) as usize, rate).await
        }
        (Load::Drain(_), rate) => rate.unwrap_or_default(),
    };
    let summary = h.await.unwrap().expect("reader ran");
    let cpu_us = cpu_us_per_msg(cpu, summary.handled);
    let machine = host_share(host, host_cpu());
    teardown(reader, &s).await;
    Row {
        reader: reader.label(),
        mode,
        published_rate,
        s: summary,
        machine,
        cpu_us,
    }
}

async fn paced(reader: Reader, rate: u64, secs: u64) -> Row {
    run_row(reader, Load::Paced { rate, secs }).await
}

async fn drain(reader: Reader, n: usize) -> Row {
    run_row(reader, Load::Drain(n)).await
}

/// The raw reader: the same messages, read with the same client library
/// and the reader's default prefetch or fetch settings, but nothing else:
/// no decoding, no validation, no statistics, no output. The work queue and
/// the stream ack each delivery after reading it; Kafka stores each offset
/// after reading the record and lets librdkafka commit the stored offsets
/// every second (the reader's `--commit-interval`), the at-least-once
/// pattern without the reader's own bookkeeping. With `rate`, a child
/// publishes at that rate while it reads; without, the messages are
/// published first. Returns messages per second from the first delivery to
/// the `n`-th (as the reader's `active_rate_per_sec`), CPU per message, and
/// the machine's busy and stolen shares.
async fn raw_read(reader: Reader, n: usize, rate: Option<u64>) -> RawRun {
    use futures::StreamExt;
    use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
    use lapin::types::{AMQPValue, FieldTable, ShortString};
    use rdkafka::consumer::{Consumer, StreamConsumer};

    let s = setup(reader).await;
    if rate.is_none() {
        publish(reader, &s, n, None).await;
    }
    let host = host_cpu();
    let cpu = process_cpu();
    let mut first = None;
    let mut got = 0usize;
    let mut child = None;
    if reader == Reader::Kafka {
        let defaults = ConsumerConfig::local_kafka(s.kafka.clone(), "unused");
        let mut c = s.kafka.client_config();
        c.set("group.id", rand_name("bench-raw"))
            .set("enable.auto.commit", "true")
            .set("enable.auto.offset.store", "false")
            .set(
                "auto.commit.interval.ms",
                defaults.commit_interval.as_millis().to_string(),
            )
            .set("auto.offset.reset", "earliest")
            .set(
                "fetch.wait.max.ms",
                defaults.fetch_wait.as_millis().max(1).to_string(),
            );
        let consumer: StreamConsumer = s.kafka.finish(c).create().unwrap();
        consumer.subscribe(&[&s.kafka.topic]).unwrap();
        if let Some(r) = rate {
            // Joined before the child publishes, as the reader is.
            tokio::time::sleep(Duration::from_secs(3)).await;
            child = Some(tokio::spawn(publish_in_child_owned(
                reader,
                s.amqp.prefix.clone(),
                s.kafka.topic.clone(),
                n,
                r,
            )));
        }
        while got < n {
            let m = consumer.recv().await.expect("raw Kafka read");
            first.get_or_insert_with(Instant::now);
            consumer
                .store_offset_from_message(&m)
                .expect("store offset");
            got += 1;
        }
    } else {
        let (queue, prefetch, args) = if reader == Reader::Worker {
            let p = WorkerConfig::local(&s.amqp.url, &s.amqp.prefix).prefetch;
            (s.amqp.topology().work_queue, p, FieldTable::default())
        } else {
            let mut args = FieldTable::default();
            args.insert(
                ShortString::from("x-stream-offset"),
                AMQPValue::LongString("first".into()),
            );
            let p = ConsumerConfig::local_stream(s.amqp.clone()).prefetch;
            (s.amqp.topology().stream_queue, p, args)
        };
        let conn = s.amqp.connect("bench-raw").await.unwrap();
        let ch = conn.create_channel().await.unwrap();
        ch.basic_qos(prefetch, BasicQosOptions::default())
            .await
            .unwrap();
        let mut deliveries = ch
            .basic_consume(
                queue.as_str().into(),
                "bench-raw".into(),
                BasicConsumeOptions::default(),
                args,
            )
            .await
            .unwrap();
        if let Some(r) = rate {
            child = Some(tokio::spawn(publish_in_child_owned(
                reader,
                s.amqp.prefix.clone(),
                s.kafka.topic.clone(),
                n,
                r,
            )));
        }
        while got < n {
            let d = deliveries
                .next()
                .await
                .expect("consumer open")
                .expect("raw delivery");
            first.get_or_insert_with(Instant::now);
            d.ack(BasicAckOptions::default()).await.unwrap();
            got += 1;
        }
        let _ = conn.close(200, "done".into()).await;
    }
    let secs = first.map_or(0.0, |f| f.elapsed().as_secs_f64());
    let cpu_us = cpu_us_per_msg(cpu, n as u64);
    let machine = host_share(host, host_cpu());
    if let Some(c) = child {
        c.await.unwrap();
    }
    teardown(reader, &s).await;
    RawRun {
        rate: (n - 1) as f64 / secs.max(1e-9),
        cpu_us,
        machine,
    }
}

async fn publish_in_child_owned(
    reader: Reader,
    prefix: String,
    topic: String,
    n: usize,
    rate: u64,
) -> f64 {
    let (amqp, kafka) = configs(&prefix, &topic);
    publish_in_child(reader, &Setup { amqp, kafka }, n, rate).await
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        return child_publish(&spec).await;
    }
    // `cargo bench` passes `--bench`; a filter argument selects readers.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted =
        |r: Reader| filter.is_empty() || filter.iter().any(|f| r.label().contains(f.as_str()));
    let mut rows = Vec::new();
    let mut raws: Vec<RawRow> = Vec::new();
    // BENCH_RUNS=drain skips the paced runs (for profiling a drain); like a
    // reader filter, it only prints.
    let drains_only = std::env::var("BENCH_RUNS").is_ok_and(|v| v == "drain");
    for reader in [Reader::Worker, Reader::Kafka, Reader::Stream] {
        if !wanted(reader) {
            continue;
        }
        raws.push(measure(reader, drains_only, &mut rows).await);
    }
    let mut md = runs_table(&rows);
    md.push_str(&drains_table(&rows, &raws));
    md.push_str(&paced_cpu_table(&rows, &raws));
    md.push_str(&format!(
        "\nRun at {} UTC.\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M")
    ));
    print!("{md}");
    // A filtered run prints only; the page holds the whole table.
    if filter.is_empty() && !drains_only {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/BENCHMARKS.md");
        let page = std::fs::read_to_string(path).unwrap_or_default();
        let head = page
            .split_once("## Results")
            .map_or(page.as_str(), |(h, _)| h);
        std::fs::write(path, format!("{}\n\n## Results\n\n{md}", head.trim_end()))
            .expect("write BENCHMARKS.md");
    }
}

/// Every run of one reader: the raw paced run and the paced runs (unless
/// `drains_only`), then two rounds of a raw drain and a reader drain. The
/// reader's rows go to `rows`; the raw runs are returned.
async fn measure(reader: Reader, drains_only: bool, rows: &mut Vec<Row>) -> RawRow {
    // Kafka drains 30,000 records in a fifth of a second: too short a
    // window to time, so it gets five times as many.
    let n_drain = if reader == Reader::Kafka {
        150_000
    } else {
        30_000
    };
    let mut raw = RawRow {
        label: reader.label(),
        drains: Vec::new(),
        paced: None,
    };
    if !drains_only {
        let paced_raw = raw_read(reader, 10_000, Some(1_000)).await;
        eprintln!(
            "{} raw paced 1000/s: {:?} us/msg",
            reader.label(),
            paced_raw.cpu_us
        );
        raw.paced = Some(paced_raw);
    }
    let paced_runs: &[(u64, u64)] = if drains_only {
        &[]
    } else {
        &[(1_000, 10), (10_000, 5)]
    };
    for &(rate, secs) in paced_runs {
        let r = paced(reader, rate, secs).await;
        eprintln!(
            "{} {}: {:?}, {:?} us/msg",
            r.reader, r.mode, r.s.latency_from_received, r.cpu_us
        );
        rows.push(r);
    }
    for round in 0..2 {
        let raw_first = round == 0;
        for raw_turn in [raw_first, !raw_first] {
            if raw_turn {
                let run = raw_read(reader, n_drain, None).await;
                eprintln!(
                    "{} raw drain {n_drain}: {:.0}/s, {:?} us/msg",
                    reader.label(),
                    run.rate,
                    run.cpu_us
                );
                raw.drains.push(run);
            } else {
                let r = drain(reader, n_drain).await;
                eprintln!(
                    "{} {}: {:.0}/s, {:?} us/msg (first {:?}, last {:?}, run {:.1}s)",
                    r.reader,
                    r.mode,
                    r.s.active_rate_per_sec,
                    r.cpu_us,
                    r.s.first_handled_at,
                    r.s.last_handled_at,
                    r.s.elapsed_secs
                );
                rows.push(r);
            }
        }
    }
    raw
}

/// The machine's busy and stolen shares, or `?`.
fn fmt_machine(m: Option<(f64, f64)>) -> String {
    m.map_or("?".to_string(), |(busy, steal)| {
        format!("{busy:.0}% / {steal:.1}%")
    })
}

/// µs per message, or `?`.
fn fmt_us(v: Option<f64>) -> String {
    v.map_or("?".to_string(), |v| format!("{v:.1}"))
}

/// Mean (0 for none).
fn avg(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Mean, if there is at least one value and none is missing.
fn avg_all(v: Vec<Option<f64>>) -> Option<f64> {
    let v: Option<Vec<f64>> = v.into_iter().collect();
    v.filter(|v| !v.is_empty()).map(|v| avg(&v))
}

/// Every sample, comma separated.
fn list(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x:.0}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `a / b` as `1.23×`, or `?`.
fn fmt_ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "?".into(),
    }
}

/// One line per reader run (latency only for paced runs).
fn runs_table(rows: &[Row]) -> String {
    let mut md = String::from(
        "| reader | run | published/s | handled | handled/s | CPU µs/msg | p50 ms | p90 ms | p99 ms | max ms | machine busy / stolen |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for r in rows {
        let l = &r.s.latency_from_received;
        let latency = r.mode.starts_with("paced");
        let f = |v: f64| {
            if latency {
                format!("{v:.2}")
            } else {
                "–".into()
            }
        };
        md.push_str(&format!(
            "| {} | {} | {:.0} | {} | {:.0} | {} | {} | {} | {} | {} | {} |\n",
            r.reader,
            r.mode,
            r.published_rate,
            r.s.handled,
            r.s.active_rate_per_sec,
            fmt_us(r.cpu_us),
            f(l.p50_ms),
            f(l.p90_ms),
            f(l.p99_ms),
            f(l.max_ms),
            fmt_machine(r.machine),
        ));
    }
    md
}

/// Each reader's drains against the raw reader's.
fn drains_table(rows: &[Row], raws: &[RawRow]) -> String {
    let mut md = String::from(
        "\nDrains of N preloaded ticks against a raw reader of the same preload, in the same run (two rounds each, the raw reader first in the first round; mean rates, every sample in brackets; target: ratio ≥ 80%):\n\n| reader | N | raw msgs/s | reader handled/s | ratio | raw CPU µs/msg | reader CPU µs/msg | CPU reader/raw | machine busy / stolen (raw; reader) |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n"
    );
    for raw in raws {
        let mine: Vec<&Row> = rows
            .iter()
            .filter(|r| r.reader == raw.label && r.mode.starts_with("drain"))
            .collect();
        let rates: Vec<f64> = mine.iter().map(|r| r.s.active_rate_per_sec).collect();
        let raw_rates: Vec<f64> = raw.drains.iter().map(|r| r.rate).collect();
        let raw_cpu = avg_all(raw.drains.iter().map(|r| r.cpu_us).collect());
        let cpu = avg_all(mine.iter().map(|r| r.cpu_us).collect());
        md.push_str(&format!(
            "| {} | {} | {:.0} ({}) | {:.0} ({}) | {:.0}% | {} | {} | {} | {}; {} |\n",
            raw.label,
            mine.first().map_or(0, |r| r.s.handled),
            avg(&raw_rates),
            list(&raw_rates),
            avg(&rates),
            list(&rates),
            100.0 * avg(&rates) / avg(&raw_rates).max(1e-9),
            fmt_us(raw_cpu),
            fmt_us(cpu),
            fmt_ratio(cpu, raw_cpu),
            raw.drains
                .iter()
                .map(|m| fmt_machine(m.machine))
                .collect::<Vec<_>>()
                .join(", "),
            mine.iter()
                .map(|r| fmt_machine(r.machine))
                .collect::<Vec<_>>()
                .join(", "),
        ));
    }
    md
}

/// Each reader's CPU per message at 1,000/s against the raw reader's.
fn paced_cpu_table(rows: &[Row], raws: &[RawRow]) -> String {
    let mut md = String::from(
        "\nCPU per message at 1,000 ticks/s for 10 s, the publisher in a child process (target: reader within 2× of raw):\n\n| reader | raw CPU µs/msg | reader CPU µs/msg | CPU reader/raw | machine busy / stolen (raw; reader) |\n| --- | ---: | ---: | ---: | --- |\n",
    );
    for raw in raws {
        let Some(p) = raw.paced else { continue };
        let Some(r) = rows
            .iter()
            .find(|r| r.reader == raw.label && r.mode == "paced 1000/s")
        else {
            continue;
        };
        md.push_str(&format!(
            "| {} | {} | {} | {} | {}; {} |\n",
            raw.label,
            fmt_us(p.cpu_us),
            fmt_us(r.cpu_us),
            fmt_ratio(r.cpu_us, p.cpu_us),
            fmt_machine(p.machine),
            fmt_machine(r.machine),
        ));
    }
    md
}
