//! The Kafka contract at-least-once rests on: a consumer that starts at
//! offset *n* (a committed offset, a `--replay-from` offset) gets every
//! record from *n* on, and a partition's offsets count its records.
//!
//! The bridge and the consumers store an offset only after the record was
//! handled, so a restarted member loses nothing *if* the broker serves the
//! records from that offset. Run against the shared test broker
//! (`KAFKA_BROKERS`, default the local stack's), so a broker that breaks the
//! contract fails here, with the skipped offsets named, instead of as lost
//! ticks somewhere else.

use futures::stream::{FuturesUnordered, StreamExt};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message as _, Offset, TopicPartitionList};
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;
use tickbridge_broker::kafka::KafkaConfig;
use tickbridge_testkit::{kafka_brokers, rand_name};

const PARTITIONS: i32 = 3;

/// `(partition, offset, payload)` of every record read from `start` until
/// `quiet` passes without one.
fn read_from(
    cfg: &KafkaConfig,
    start: &BTreeMap<i32, i64>,
    quiet: Duration,
) -> Vec<(i32, i64, String)> {
    let mut c = cfg.client_config();
    c.set("group.id", rand_name("resume-reader"))
        .set("enable.auto.commit", "false");
    let consumer: BaseConsumer = cfg.finish(c).create().expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for (p, o) in start {
        tpl.add_partition_offset(&cfg.topic, *p, Offset::Offset(*o))
            .expect("partition");
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let mut last = std::time::Instant::now();
    while last.elapsed() < quiet {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                last = std::time::Instant::now();
                let payload = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                out.push((m.partition(), m.offset(), payload));
            }
            Some(Err(e)) => panic!("fetch failed: {e}"),
            None => {}
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_starting_at_an_offset_gets_every_later_record() {
    let topic = rand_name("tb-resume");
    let cfg = KafkaConfig::local(&kafka_brokers(), &topic, PARTITIONS);
    cfg.ensure_topic(&topic, PARTITIONS)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "Kafka is required at {} (run scripts/stack.sh up): {e}",
                kafka_brokers()
            )
        });

    // Many batches per partition: lingering producers, five keys.
    let n = 30_000;
    let mut c = cfg.client_config();
    c.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000");
    let producer: FutureProducer = cfg.finish(c).create().expect("producer");
    let mut sends = FuturesUnordered::new();
    let mut reported = Vec::with_capacity(n);
    for i in 0..n {
        let producer = producer.clone();
        let topic = topic.clone();
        sends.push(async move {
            let payload = format!("record-{i}");
            let key = format!("key-{}", i % 5);
            let d = producer
                .send(
                    FutureRecord::to(&topic).key(&key).payload(&payload),
                    Duration::from_secs(30),
                )
                .await
                .map_err(|(e, _)| e)
                .expect("delivered");
            (d.partition, d.offset, payload)
        });
        if sends.len() >= 10_000 {
            reported.push(sends.next().await.expect("a send"));
        }
    }
    while let Some(r) = sends.next().await {
        reported.push(r);
    }

    // Per partition: how many records, and the offsets the broker reported.
    let mut count: BTreeMap<i32, i64> = BTreeMap::new();
    let mut unique = HashSet::new();
    for (p, o, _) in &reported {
        *count.entry(*p).or_default() += 1;
        assert!(unique.insert((*p, *o)), "offset p{p}@{o} reported twice");
    }
    // A fresh topic without transactions: each partition's offsets are
    // exactly 0..records, no holes.
    for (p, records) in &count {
        let mut offsets: Vec<i64> = reported
            .iter()
            .filter(|(q, _, _)| q == p)
            .map(|(_, o, _)| *o)
            .collect();
        offsets.sort_unstable();
        assert!(
            offsets.iter().copied().eq(0..*records),
            "partition {p}: {records} records at offsets other than 0..{records}"
        );
    }
    let mut c = cfg.client_config();
    c.set("group.id", rand_name("resume-wm"));
    let consumer: BaseConsumer = cfg.finish(c).create().expect("consumer");
    for (p, records) in &count {
        let (lo, hi) = consumer
            .fetch_watermarks(&topic, *p, Duration::from_secs(10))
            .expect("watermarks");
        assert_eq!(
            (lo, hi),
            (0, *records),
            "partition {p}: watermarks {lo}..{hi} for {records} records"
        );
    }

    let quiet = Duration::from_secs(3);
    let from_zero: BTreeMap<i32, i64> = count.keys().map(|p| (*p, 0)).collect();
    let all = read_from(&cfg, &from_zero, quiet);
    assert_eq!(all.len(), n, "a reader from offset 0 gets every record");

    // Start in the middle of each partition.
    let middle: BTreeMap<i32, i64> = count.iter().map(|(p, c)| (*p, c / 2)).collect();
    let later = read_from(&cfg, &middle, quiet);
    for (p, start) in &middle {
        let expected: Vec<_> = all
            .iter()
            .filter(|(q, o, _)| q == p && o >= start)
            .collect();
        let got: Vec<_> = later.iter().filter(|(q, _, _)| q == p).collect();
        let first = got.first().map(|(_, o, _)| *o);
        assert_eq!(
            got.len(),
            expected.len(),
            "partition {p} from offset {start}: first record read at {first:?}, {} of {} records",
            got.len(),
            expected.len()
        );
        assert!(
            got.iter().zip(&expected).all(|(a, b)| a == b),
            "partition {p} from offset {start}: not the same records in the same order"
        );
    }
}
