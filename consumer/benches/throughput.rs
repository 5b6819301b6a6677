//! Throughput and end-to-end latency of `worker` (RabbitMQ work queue) and
//! `consumer` (Kafka group, RabbitMQ stream) against the real local brokers.
//!
//! For each reader it measures:
//! * **paced** runs at 1,000 and 10,000 ticks/s: ticks are stamped
//!   (`received_ts` = now) right before they are published, so the latency
//!   percentiles are publish → broker → handled, the pipeline's own share;
//! * a **drain** run: 30,000 ticks published first, then read as fast as
//!   possible, for the reader's maximum throughput.
//!
//! `cargo bench -p tickbridge-consumer` (release build). Needs the brokers of
//! `scripts/stack.sh up`; `AMQP_URL` and `KAFKA_BROKERS` override the
//! addresses. Prints a Markdown table (the one in `BENCHMARKS.md`).

use std::sync::Arc;
use std::time::{Duration, Instant};
use tickbridge_consumer::consumer::{self, ConsumerConfig};
use tickbridge_consumer::loadgen::{stamp, synthetic_ticks, AmqpPublisher, KafkaPublisher};
use tickbridge_consumer::worker::{self, WorkerConfig};
use tickbridge_consumer::Summary;
use tickbridge_core::amqp::AmqpConfig;
use tickbridge_core::kafka::KafkaConfig;
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
}

async fn paced(reader: Reader, rate: u64, secs: u64) -> Row {
    let s = setup(reader).await;
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
    teardown(reader, &s).await;
    Row {
        reader: reader.label(),
        mode: format!("paced {rate}/s"),
        published_rate,
        s: summary,
    }
}

async fn drain(reader: Reader, n: usize) -> Row {
    let s = setup(reader).await;
    let published_rate = publish(reader, &s, n, None).await;
    let h = start_reader(reader, &s);
    let summary = h.await.unwrap().expect("reader ran");
    teardown(reader, &s).await;
    Row {
        reader: reader.label(),
        mode: format!("drain {n}"),
        published_rate,
        s: summary,
    }
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
    for reader in [Reader::Worker, Reader::Kafka, Reader::Stream] {
        if !wanted(reader) {
            continue;
        }
        for (rate, secs) in [(1_000u64, 10u64), (10_000, 5)] {
            let r = paced(reader, rate, secs).await;
            eprintln!("{} {}: {:?}", r.reader, r.mode, r.s.latency_from_received);
            rows.push(r);
        }
        let r = drain(reader, 30_000).await;
        eprintln!("{} {}: {:.0}/s", r.reader, r.mode, r.s.active_rate_per_sec);
        rows.push(r);
    }
    println!(
        "| reader | run | published/s | handled | handled/s | p50 ms | p90 ms | p99 ms | max ms |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
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
        println!(
            "| {} | {} | {:.0} | {} | {:.0} | {} | {} | {} | {} |",
            r.reader,
            r.mode,
            r.published_rate,
            r.s.handled,
            r.s.active_rate_per_sec,
            f(l.p50_ms),
            f(l.p90_ms),
            f(l.p99_ms),
            f(l.max_ms)
        );
    }
}
