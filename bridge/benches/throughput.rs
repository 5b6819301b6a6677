//! Bridge throughput benchmark (not a test): each direction of the bridge
//! against a raw consume-then-produce baseline in the same run, on a private
//! Apache Kafka node (spare ports, its own log directory) and the stack's
//! RabbitMQ.
//!
//! ```sh
//! scripts/stack.sh up
//! cargo bench -p tickbridge-bridge --bench throughput
//! ```
//!
//! Each run preloads N ticks into a fresh source (queue or topic), then
//! times draining them into a fresh destination: from the start of the
//! reader until the last message is confirmed by the destination.
//!
//! * **Baseline R→K**: lapin consumer (same prefetch) → rdkafka producer
//!   with the bridge's settings (idempotent, `acks=all`, lz4, linger 5 ms);
//!   key and headers copied from the AMQP metadata without looking at the
//!   body; each delivery acked after its delivery report.
//! * **Baseline K→R**: rdkafka consumer → lapin publisher with confirms
//!   (same window), `mandatory`, properties copied from the Kafka headers;
//!   no offset bookkeeping.
//! * **Bridge**: `tickbridge_bridge::run_with_stats`, which additionally
//!   validates every body against the schema, rebuilds the metadata,
//!   checks the origin marker, counts duplicates, multiple-acks /
//!   stores offsets in order and commits.
//!
//! A second measurement runs each at 1,000 ticks/s: a child process (this
//! binary again) publishes 10,000 ticks into the source while the baseline
//! or the bridge runs, so this process's CPU per message is the reader's
//! alone (`/proc/self/stat`).
//!
//! Results are printed and written to `bridge/BENCHMARKS.md`. `BENCH_SCALE`
//! (default 1.0) scales N.

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::BasicProperties;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message as _;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use tickbridge_bridge::{BridgeConfig, K2rArgs, R2kArgs, Stats};
use tickbridge_broker::kafka::KafkaConfig;
use tickbridge_model::Shutdown;
use tickbridge_testkit::{cpu_us_per_msg, host_cpu, host_share, process_cpu, KafkaNode};

const PREFETCH: u16 = 2000;

/// How to read the table; written under it on every run.
const READING: &str = "
## Reading the numbers

* The R→K baseline acks every delivery on its own, as a naive bridge would; the bridge sends one `multiple` ack per batch of reports, which is why it can beat its baseline. A baseline with batched acks would be the bridge minus validation.
* K→R is bounded by RabbitMQ's persistent, confirmed publishes into two queues (work + stream); the bridge's extra cost there is schema validation and the rebuilt metadata.
* Every cell includes connecting (and, for K→R, the consumer-group join), for baseline and bridge alike.
* CPU µs/msg is this benchmark process's CPU time (all threads, from `/proc/self/stat`) per message over the drain, or over the paced run while a child process publishes; the brokers and the publisher are not in it.
";
const WINDOW: usize = 2000;

async fn baseline_r2k(rabbit: &Rabbit, kafka: &KafkaConfig, n: usize) -> f64 {
    let mut c = kafka.client_config();
    c.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "100000");
    let producer: FutureProducer = c.create().unwrap();
    let conn = rabbit.cfg.connect("bench-baseline").await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.basic_qos(PREFETCH, BasicQosOptions::default())
        .await
        .unwrap();
    let t = Instant::now();
    let mut consumer = ch
        .basic_consume(
            rabbit.topo().work_queue.as_str().into(),
            "bench".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut inflight = FuturesUnordered::new();
    let mut done = 0;
    while done < n {
        tokio::select! {
            Some((d, r)) = inflight.next(), if !inflight.is_empty() => {
                let d: lapin::message::Delivery = d;
                let r: Result<Result<(), rdkafka::error::KafkaError>, futures::channel::oneshot::Canceled> = r;
                r.expect("delivery report").expect("delivered");
                d.acker.ack(BasicAckOptions::default()).await.unwrap();
                done += 1;
            }
            Some(d) = consumer.next() => {
                let d = d.unwrap();
                let mut h = OwnedHeaders::new();
                let mut key = String::new();
                if let Some(t) = d.properties.headers() {
                    for (k, v) in t.inner() {
                        if let Some(text) = tickbridge_bridge::mapping::amqp_value_text(v) {
                            if k.as_str() == "tb-symbol" { key = text.clone(); }
                            h = h.insert(Header { key: k.as_str(), value: Some(text.as_str()) });
                        }
                    }
                }
                if let Some(id) = d.properties.message_id() {
                    h = h.insert(Header { key: "tb-id", value: Some(id.as_str()) });
                }
                let fut = loop {
                    let rec = FutureRecord::to(&kafka.topic).key(&key).payload(&d.data).headers(h.clone());
                    match producer.send_result(rec).map_err(|(e, _)| e) {
                        Ok(f) => break f,
                        Err(_) => tokio::time::sleep(Duration::from_millis(2)).await,
                    }
                };
                inflight.push(async move { (d, fut.await.map(|r| r.map(|_| ()).map_err(|(e, _)| e))) });
            }
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let _ = conn.close(200, "done".into()).await;
    n as f64 / secs
}

async fn baseline_k2r(rabbit: &Rabbit, kafka: &KafkaConfig, n: usize) -> f64 {
    let conn = rabbit.cfg.connect("bench-baseline").await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let mut c = kafka.client_config();
    c.set("group.id", rand_name("bench"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10");
    let consumer: StreamConsumer = c.create().unwrap();
    let t = Instant::now();
    consumer.subscribe(&[&kafka.topic]).unwrap();
    let ex = rabbit.topo().exchange;
    let mut inflight = FuturesUnordered::new();
    let mut done = 0;
    while done < n {
        tokio::select! {
            Some(r) = inflight.next(), if !inflight.is_empty() => {
                let r: Result<lapin::Confirmation, lapin::Error> = r;
                assert!(r.unwrap().is_ack());
                done += 1;
            }
            m = consumer.recv(), if inflight.len() < WINDOW => {
                let m = m.unwrap();
                let mut table = FieldTable::default();
                let mut id = String::new();
                let mut rk = String::new();
                if let Some(h) = m.headers() {
                    for x in h.iter() {
                        let v = String::from_utf8_lossy(x.value.unwrap_or_default()).into_owned();
                        match x.key { "tb-id" => id = v.clone(), "tb-symbol" => rk = format!("coinbase.{v}"), _ => {} }
                        table.insert(ShortString::from(x.key), AMQPValue::LongString(LongString::from(v.as_str())));
                    }
                }
                let props = BasicProperties::default().with_message_id(id.as_str().into()).with_delivery_mode(2).with_headers(table);
                let confirm = ch
                    .basic_publish(ex.as_str().into(), rk.as_str().into(), BasicPublishOptions { mandatory: true, ..Default::default() }, m.payload().unwrap_or_default(), props)
                    .await
                    .unwrap();
                inflight.push(confirm);
            }
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let _ = conn.close(200, "done".into()).await;
    n as f64 / secs
}

async fn bridge_run(rabbit: &Rabbit, kafka: &KafkaConfig, n: usize, r2k: bool) -> f64 {
    let mut shared = shared(rabbit, kafka);
    shared.stats_interval = Duration::from_secs(60);
    let cfg = if r2k {
        BridgeConfig {
            shared,
            r2k: Some(R2kArgs {
                prefetch: PREFETCH,
                ..Default::default()
            }),
            k2r: None,
        }
    } else {
        BridgeConfig {
            shared,
            r2k: None,
            k2r: Some(K2rArgs {
                group: rand_name("bench"),
                confirm_window: WINDOW,
                ..Default::default()
            }),
        }
    };
    let stats = std::sync::Arc::new(Stats::default());
    let shutdown = Shutdown::new();
    let t = Instant::now();
    let h = tokio::spawn(tickbridge_bridge::run_with_stats(
        cfg,
        shutdown.clone(),
        stats.clone(),
    ));
    let dir = if r2k { &stats.r2k } else { &stats.k2r };
    while dir.bridged.load(Relaxed) < n as u64 {
        assert!(!h.is_finished(), "bridge stopped early");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let secs = t.elapsed().as_secs_f64();
    shutdown.trigger();
    h.await.unwrap().expect("bridge ran");
    n as f64 / secs
}

/// Paced publishing for the CPU-per-message runs happens in a child process
/// (this binary again, with `BENCH_PUBLISH` set to `r2k|k2r prefix brokers
/// topic n rate`), so that this process's CPU time is the reader's alone.
const CHILD_ENV: &str = "BENCH_PUBLISH";

async fn child_publish(spec: &str) {
    let f: Vec<&str> = spec.split_whitespace().collect();
    let (r2k, prefix, brokers, topic) = (f[0] == "r2k", f[1], f[2], f[3]);
    let (n, rate): (usize, u64) = (f[4].parse().unwrap(), f[5].parse().unwrap());
    let msgs = ticks("bench-paced", n);
    let start = Instant::now();
    let due = |i: usize| start + Duration::from_secs_f64(i as f64 / rate as f64);
    // Ten messages per step: 100 steps a second at 1,000/s.
    const STEP: usize = 10;
    if r2k {
        let rabbit = Rabbit::with_prefix(&amqp_url(), prefix).await;
        for (i, chunk) in msgs.chunks(STEP).enumerate() {
            tokio::time::sleep_until(due(i * STEP).into()).await;
            rabbit.publish(chunk).await;
        }
    } else {
        let cfg = KafkaConfig::local(brokers, topic, 3);
        let mut c = cfg.client_config();
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "0");
        let producer: FutureProducer = cfg.finish(c).create().unwrap();
        let mut inflight = FuturesUnordered::new();
        for (i, m) in msgs.iter().enumerate() {
            if i % STEP == 0 {
                tokio::time::sleep_until(due(i).into()).await;
            }
            let r = m.as_ref();
            let (body, key, hdrs) = (
                r.to_json(),
                r.symbol().to_string(),
                tickbridge_broker::headers::kafka_headers(r),
            );
            let p = producer.clone();
            let topic = cfg.topic.clone();
            inflight.push(async move {
                let rec = FutureRecord::to(&topic)
                    .key(&key)
                    .payload(&body)
                    .headers(hdrs);
                p.send(rec, Duration::from_secs(30))
                    .await
                    .map(|_| ())
                    .map_err(|(e, _)| e)
            });
            while let Some(r) = inflight.next().now_or_never().flatten() {
                r.expect("delivered");
            }
        }
        while let Some(r) = inflight.next().await {
            r.expect("delivered");
        }
    }
}

/// Starts the child that publishes `n` ticks at `rate`/s into the source.
fn spawn_publisher(
    rabbit: &Rabbit,
    kafka: &KafkaConfig,
    r2k: bool,
    n: usize,
    rate: u64,
) -> tokio::process::Child {
    let spec = format!(
        "{} {} {} {} {n} {rate}",
        if r2k { "r2k" } else { "k2r" },
        rabbit.cfg.prefix,
        kafka.brokers,
        kafka.topic
    );
    tokio::process::Command::new(std::env::current_exe().expect("own path"))
        .env(CHILD_ENV, spec)
        .kill_on_drop(true)
        .spawn()
        .expect("start the publishing child")
}

struct Row {
    direction: &'static str,
    n: usize,
    baseline: Vec<f64>,
    bridge: Vec<f64>,
    /// Machine busy and stolen percent during each baseline drain.
    machine_baseline: Vec<Option<(f64, f64)>>,
    /// The same during each bridge drain.
    machine_bridge: Vec<Option<(f64, f64)>>,
    /// This process's CPU per message (µs) in each baseline and bridge drain.
    cpu_baseline: Vec<Option<f64>>,
    cpu_bridge: Vec<Option<f64>>,
    /// CPU per message (µs) at 1,000 ticks/s: baseline, bridge.
    paced: (Option<f64>, Option<f64>),
}

fn shares(v: &[Option<(f64, f64)>]) -> String {
    v.iter()
        .map(|m| m.map_or("?".into(), |(b, s)| format!("{b:.0}% / {s:.1}%")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One measurement on fresh resources: preload the source, then drain it;
/// or, with `paced`, a child publishes at that rate while the reader runs.
/// Returns the rate, the machine's busy and stolen shares, and this
/// process's CPU per message.
async fn once(
    brokers: &str,
    n: usize,
    r2k: bool,
    use_bridge: bool,
    paced: Option<u64>,
) -> (f64, Option<(f64, f64)>, Option<f64>) {
    let rabbit = Rabbit::new(&amqp_url()).await;
    let kafka = kafka_topic(brokers, 3).await;
    let mut child = None;
    match paced {
        Some(rate) => child = Some(spawn_publisher(&rabbit, &kafka, r2k, n, rate)),
        None if r2k => rabbit.publish(&ticks("bench", n)).await,
        None => {
            kafka_publish(&kafka, &ticks("bench", n)).await;
        }
    }
    let host = host_cpu();
    let cpu = process_cpu();
    let rate = match (r2k, use_bridge) {
        (true, false) => baseline_r2k(&rabbit, &kafka, n).await,
        (false, false) => baseline_k2r(&rabbit, &kafka, n).await,
        (_, true) => bridge_run(&rabbit, &kafka, n, r2k).await,
    };
    let cpu_us = cpu_us_per_msg(cpu, n as u64);
    let machine = host_share(host, host_cpu());
    if let Some(mut c) = child {
        let st = c.wait().await.expect("publishing child");
        assert!(st.success(), "publishing child failed: {st}");
    }
    rabbit.cleanup().await;
    (rate, machine, cpu_us)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        return child_publish(&spec).await;
    }
    tickbridge_model::telemetry::init_tracing(tickbridge_model::telemetry::LogFormat::Text);
    let scale: f64 = std::env::var("BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let mut rows = Vec::new();
    let node = tokio::task::spawn_blocking(KafkaNode::start)
        .await
        .expect("start task")
        .expect("private Kafka node (scripts/kafka.sh install)");
    let brokers = node.brokers();
    let n = (40_000.0 * scale) as usize;
    for (direction, r2k) in [("RabbitMQ → Kafka", true), ("Kafka → RabbitMQ", false)] {
        let mut row = Row {
            direction,
            n,
            baseline: vec![],
            bridge: vec![],
            machine_baseline: vec![],
            machine_bridge: vec![],
            cpu_baseline: vec![],
            cpu_bridge: vec![],
            paced: (None, None),
        };
        // Alternate, so drift on the shared machine hits both alike.
        for _ in 0..2 {
            let (rate, machine, cpu) = once(&brokers, n, r2k, false, None).await;
            row.baseline.push(rate);
            row.machine_baseline.push(machine);
            row.cpu_baseline.push(cpu);
            let (rate, machine, cpu) = once(&brokers, n, r2k, true, None).await;
            row.bridge.push(rate);
            row.machine_bridge.push(machine);
            row.cpu_bridge.push(cpu);
        }
        // 10,000 ticks at 1,000/s through each.
        let paced_n = (10_000.0 * scale) as usize;
        row.paced.0 = once(&brokers, paced_n, r2k, false, Some(1_000)).await.2;
        row.paced.1 = once(&brokers, paced_n, r2k, true, Some(1_000)).await.2;
        eprintln!(
            "{direction}: baseline {:?} bridge {:?}",
            row.baseline, row.bridge
        );
        rows.push(row);
    }
    drop(node);
    let us = |v: Option<f64>| v.map_or("?".to_string(), |v| format!("{v:.1}"));
    let mean_opt = |v: &[Option<f64>]| -> Option<f64> {
        let v: Option<Vec<f64>> = v.iter().copied().collect();
        v.filter(|v| !v.is_empty())
            .map(|v| v.iter().sum::<f64>() / v.len() as f64)
    };
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "?".into(),
    };
    let mut md = String::from(
        "# Bridge throughput\n\nGenerated by `cargo bench -p tickbridge-bridge --bench throughput` (release build, `benches/throughput.rs`) on this project's 2-core machine, shared with the brokers and with other engineers' builds. RabbitMQ: the stack's Debian 3.10 (persistent messages; the pipeline exchange routes to the work queue and the stream queue). Kafka: a private Apache Kafka 4.1.1 node (KRaft, single node, its own log directory), 3-partition topics. Each cell drains N preloaded ticks from a fresh source into a fresh destination, from reader start to the last destination confirm; two alternating runs each, the table shows the mean (and both runs), and how busy both cores were during each drain and what the hypervisor stole (`/proc/stat`).\n\n* **baseline**: raw consume-then-produce with the same client libraries and windows (prefetch 2,000 / confirm window 2,000), metadata copied blindly, no validation, no ordered ack/offset bookkeeping.\n* **bridge**: `tickbridge_bridge::run_with_stats` with default flags except the same windows: schema validation of every body, metadata rebuilt from the body, origin check, duplicate window, multiple acks or in-order offset stores plus commits.\n\n| direction | N | baseline msgs/s | bridge msgs/s | ratio | baseline CPU µs/msg | bridge CPU µs/msg | CPU bridge/baseline | machine busy / stolen (baseline; bridge) |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n",
    );
    for r in &rows {
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let (b, g) = (mean(&r.baseline), mean(&r.bridge));
        let cb = mean_opt(&r.cpu_baseline);
        let cg = mean_opt(&r.cpu_bridge);
        md.push_str(&format!(
            "| {} | {} | {:.0} ({}) | {:.0} ({}) | {:.0}% | {} | {} | {} | {}; {} |\n",
            r.direction,
            r.n,
            b,
            r.baseline
                .iter()
                .map(|x| format!("{x:.0}"))
                .collect::<Vec<_>>()
                .join(", "),
            g,
            r.bridge
                .iter()
                .map(|x| format!("{x:.0}"))
                .collect::<Vec<_>>()
                .join(", "),
            100.0 * g / b,
            us(cb),
            us(cg),
            ratio(cg, cb),
            shares(&r.machine_baseline),
            shares(&r.machine_bridge),
        ));
    }
    md.push_str("\nCPU per message at 1,000 ticks/s (10,000 ticks published by a child process while the reader runs; target: bridge within 2× of baseline):\n\n| direction | baseline CPU µs/msg | bridge CPU µs/msg | CPU bridge/baseline |\n| --- | ---: | ---: | ---: |\n");
    for r in &rows {
        md.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            r.direction,
            us(r.paced.0),
            us(r.paced.1),
            ratio(r.paced.1, r.paced.0)
        ));
    }
    md.push_str(&format!(
        "\nRun at {} (BENCH_SCALE={scale}).\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    ));
    md.push_str(READING);
    println!("{md}");
    std::fs::write(concat!(env!("CARGO_MANIFEST_DIR"), "/BENCHMARKS.md"), md)
        .expect("write BENCHMARKS.md");
}
