//! Throughput and end-to-end latency of `worker` (RabbitMQ work queue) and
//! `consumer` (Kafka group, RabbitMQ stream) against the real local brokers.
//!
//! For each reader it measures:
//! * **paced** runs at 1,000 and 10,000 ticks/s: ticks are stamped
//!   (`received_ts` = now) right before they are published, so the latency
//!   percentiles are publish → broker → handled, the pipeline's own share;
//! * a **drain** run: 30,000 ticks published first, then read as fast as
//!   possible, for the reader's maximum throughput, beside a **raw** reader
//!   of the same kind of preload in the same run (same client library, same
//!   prefetch or fetch settings, one ack per delivery or no commits, no
//!   decoding, validation or bookkeeping): the ratio is what the reader's
//!   own work costs. Two rounds, the raw reader first in the first one.
//!
//! Every row also records how busy the machine was (both cores, and what
//! the hypervisor stole, from `/proc/stat`).
//!
//! `cargo bench -p tickbridge-consumer` (release build). Needs the brokers of
//! `scripts/stack.sh up`; `AMQP_URL` and `KAFKA_BROKERS` override the
//! addresses. Prints a Markdown table and writes it, with the date, under
//! `## Results` in `BENCHMARKS.md` (a reader filter argument only prints).

use std::sync::Arc;
use std::time::{Duration, Instant};
use tickbridge_consumer::consumer::{self, ConsumerConfig};
use tickbridge_consumer::loadgen::{stamp, synthetic_ticks, AmqpPublisher, KafkaPublisher};
use tickbridge_consumer::worker::{self, WorkerConfig};
use tickbridge_consumer::Summary;
use tickbridge_core::amqp::AmqpConfig;
use tickbridge_core::kafka::KafkaConfig;
use tickbridge_core::testkit::{host_cpu, host_share};
use tickbridge_core::{Message, Shutdown};

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

async fn setup(reader: Reader) -> Setup {
    let url = std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://127.0.0.1:5672/%2f".into());
    let brokers = std::env::var("KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let amqp = AmqpConfig::local(&url, &rand_name("tb-bench"));
    let topic = rand_name("tb-bench");
    let mut kafka = KafkaConfig::local(&brokers, &topic, 3);
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

struct Row {
    reader: &'static str,
    mode: String,
    published_rate: f64,
    s: Summary,
    /// Share of both cores in use, and stolen, while the row ran (percent).
    machine: Option<(f64, f64)>,
}

/// A reader's raw drains: its label, the rates, and the machine's busy and
/// stolen shares during each.
type RawRow = (&'static str, Vec<f64>, Vec<Option<(f64, f64)>>);

async fn paced(reader: Reader, rate: u64, secs: u64) -> Row {
    let s = setup(reader).await;
    let host = host_cpu();
    let h = start_reader(reader, &s);
    // Let the reader connect, consume and (Kafka) join its group first.
    tokio::time::sleep(Duration::from_secs(if reader == Reader::Kafka {
        3
    } else {
        1
    }))
    .await;
    let published_rate = publish(reader, &s, (rate * secs) as usize, Some(rate)).await;
    let summary = h.await.unwrap().expect("reader ran");
    let machine = host_share(host, host_cpu());
    teardown(reader, &s).await;
    Row {
        reader: reader.label(),
        mode: format!("paced {rate}/s"),
        published_rate,
        s: summary,
        machine,
    }
}

async fn drain(reader: Reader, n: usize) -> Row {
    let s = setup(reader).await;
    let published_rate = publish(reader, &s, n, None).await;
    let host = host_cpu();
    let h = start_reader(reader, &s);
    let summary = h.await.unwrap().expect("reader ran");
    let machine = host_share(host, host_cpu());
    teardown(reader, &s).await;
    Row {
        reader: reader.label(),
        mode: format!("drain {n}"),
        published_rate,
        s: summary,
        machine,
    }
}

/// The raw reader of a drain: the same preload, read with the same client
/// library and the reader's default prefetch or fetch settings, but nothing
/// else: no decoding, no validation, no statistics, no output; the work
/// queue and the stream ack each delivery, Kafka commits nothing. Returns
/// messages per second from the first delivery to the `n`-th, as the
/// reader's `active_rate_per_sec`, and the machine's busy and stolen shares.
async fn raw_drain(reader: Reader, n: usize) -> (f64, Option<(f64, f64)>) {
    use futures::StreamExt;
    use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
    use lapin::types::{AMQPValue, FieldTable, ShortString};
    use rdkafka::consumer::{Consumer, StreamConsumer};

    let s = setup(reader).await;
    publish(reader, &s, n, None).await;
    let host = host_cpu();
    let mut first = None;
    let mut got = 0usize;
    if reader == Reader::Kafka {
        let defaults = ConsumerConfig::local_kafka(s.kafka.clone(), "unused");
        let mut c = s.kafka.client_config();
        c.set("group.id", rand_name("bench-raw"))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set(
                "fetch.wait.max.ms",
                defaults.fetch_wait.as_millis().max(1).to_string(),
            );
        let consumer: StreamConsumer = s.kafka.finish(c).create().unwrap();
        consumer.subscribe(&[&s.kafka.topic]).unwrap();
        while got < n {
            consumer.recv().await.expect("raw Kafka read");
            first.get_or_insert_with(Instant::now);
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
    let machine = host_share(host, host_cpu());
    teardown(reader, &s).await;
    ((n - 1) as f64 / secs.max(1e-9), machine)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes `--bench`; a filter argument selects readers.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted =
        |r: Reader| filter.is_empty() || filter.iter().any(|f| r.label().contains(f.as_str()));
    let mut rows = Vec::new();
    let mut raws: Vec<RawRow> = Vec::new();
    let n_drain = 30_000;
    for reader in [Reader::Worker, Reader::Kafka, Reader::Stream] {
        if !wanted(reader) {
            continue;
        }
        for (rate, secs) in [(1_000u64, 10u64), (10_000, 5)] {
            let r = paced(reader, rate, secs).await;
            eprintln!("{} {}: {:?}", r.reader, r.mode, r.s.latency_from_received);
            rows.push(r);
        }
        let mut raw = (reader.label(), Vec::new(), Vec::new());
        for round in 0..2 {
            let raw_first = round == 0;
            for raw_turn in [raw_first, !raw_first] {
                if raw_turn {
                    let (rate, machine) = raw_drain(reader, n_drain).await;
                    eprintln!("{} raw drain {n_drain}: {rate:.0}/s", reader.label());
                    raw.1.push(rate);
                    raw.2.push(machine);
                } else {
                    let r = drain(reader, n_drain).await;
                    eprintln!("{} {}: {:.0}/s", r.reader, r.mode, r.s.active_rate_per_sec);
                    rows.push(r);
                }
            }
        }
        raws.push(raw);
    }
    let pct = |m: Option<(f64, f64)>| {
        m.map_or("?".to_string(), |(busy, steal)| {
            format!("{busy:.0}% / {steal:.1}%")
        })
    };
    let mut md = String::from(
        "| reader | run | published/s | handled | handled/s | p50 ms | p90 ms | p99 ms | max ms | machine busy / stolen |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for r in &rows {
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
            "| {} | {} | {:.0} | {} | {:.0} | {} | {} | {} | {} | {} |\n",
            r.reader,
            r.mode,
            r.published_rate,
            r.s.handled,
            r.s.active_rate_per_sec,
            f(l.p50_ms),
            f(l.p90_ms),
            f(l.p99_ms),
            f(l.max_ms),
            pct(r.machine),
        ));
    }
    md.push_str(&format!(
        "\nDrain of {n_drain} ticks against a raw reader of the same preload, in the same run (two rounds each, the raw reader first in the first round; mean rates, every sample in brackets):\n\n| reader | raw msgs/s | reader handled/s | ratio | machine busy / stolen (raw; reader) |\n| --- | ---: | ---: | ---: | --- |\n"
    ));
    for (label, raw_rates, raw_machine) in &raws {
        let mine: Vec<&Row> = rows
            .iter()
            .filter(|r| r.reader == *label && r.mode.starts_with("drain"))
            .collect();
        let rates: Vec<f64> = mine.iter().map(|r| r.s.active_rate_per_sec).collect();
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let list = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        md.push_str(&format!(
            "| {label} | {:.0} ({}) | {:.0} ({}) | {:.0}% | {}; {} |\n",
            mean(raw_rates),
            list(raw_rates),
            mean(&rates),
            list(&rates),
            100.0 * mean(&rates) / mean(raw_rates).max(1e-9),
            raw_machine
                .iter()
                .map(|m| pct(*m))
                .collect::<Vec<_>>()
                .join(", "),
            mine.iter()
                .map(|r| pct(r.machine))
                .collect::<Vec<_>>()
                .join(", "),
        ));
    }
    md.push_str(&format!(
        "\nRun at {} UTC.\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M")
    ));
    print!("{md}");
    // A filtered run prints only; the page holds the whole table.
    if filter.is_empty() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/BENCHMARKS.md");
        let page = std::fs::read_to_string(path).unwrap_or_default();
        let head = page
            .split_once("## Results")
            .map_or(page.as_str(), |(h, _)| h);
        std::fs::write(path, format!("{}\n\n## Results\n\n{md}", head.trim_end()))
            .expect("write BENCHMARKS.md");
    }
}
