//! Synthetic ticks and confirmed publishing, the way the producer publishes
//! them, for tests, the benchmark and demos that must not depend on a live
//! exchange or on the producer binary.
//!
//! Messages carry exactly the metadata of `tickbridge_broker::headers`: AMQP
//! `message_id`/`type`/`tb-*` headers, routed to the pipeline's exchange with
//! key `source.symbol`; Kafka key = symbol and the `tb-*` headers. AMQP
//! publishes are `mandatory` and every confirm is awaited (a nack or a return
//! is an error); Kafka publishes wait for every delivery report.

use chrono::{Duration as ChronoDuration, Utc};
use futures::stream::{FuturesOrdered, StreamExt};
use lapin::options::BasicPublishOptions;
use lapin::PublisherConfirm;
use lapin::{BasicProperties, Channel, Connection};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rust_decimal::Decimal;
use std::collections::VecDeque;
use std::time::Duration;
use tickbridge_broker::amqp::{AmqpConfig, Topology};
use tickbridge_broker::headers;
use tickbridge_broker::kafka::KafkaConfig;
use tickbridge_broker::{Error, Result};
use tickbridge_model::{Message, Side, Source, Tick, Via};

/// `n` ticks from one producer, round-robin over `symbols`, with per-symbol
/// trade ids and sequence numbers both starting at 1 and no gaps. Timestamps
/// are "now" (`exchange_ts` 1 ms before `received_ts`); call [`stamp`] right
/// before publishing when latency matters.
pub fn synthetic_ticks(producer: &str, symbols: &[&str], n: usize) -> Vec<Tick> {
    synthetic_ticks_after(producer, symbols, 0, n)
}

/// [`synthetic_ticks`] with trade ids starting after `base`: tests that share
/// a broker pick a random base, so their ids never meet another test's.
pub fn synthetic_ticks_after(producer: &str, symbols: &[&str], base: u64, n: usize) -> Vec<Tick> {
    let now = Utc::now();
    let mut next = vec![0u64; symbols.len()];
    (0..n)
        .map(|i| {
            let s = i % symbols.len().max(1);
            next[s] += 1;
            let k = next[s];
            let symbol = symbols[s].to_string();
            Tick {
                id: Tick::make_id(Source::Binance, &symbol, base + k),
                source: Source::Binance,
                raw_symbol: symbol.replace('-', "").into(),
                symbol: symbol.into(),
                trade_id: base + k,
                price: Decimal::new(9_700_000 + (k as i64 % 500), 2),
                qty: Decimal::new(1 + (k as i64 % 1000), 4),
                side: if k.is_multiple_of(2) {
                    Side::Buy
                } else {
                    Side::Sell
                },
                exchange_ts: now - ChronoDuration::milliseconds(1),
                received_ts: now,
                producer: producer.into(),
                seq: k,
                via: Via::Ws,
            }
        })
        .collect()
}

/// Sets a tick's timestamps to now, so end-to-end latency is measured from
/// the moment it is published.
pub fn stamp(t: &mut Tick) {
    let now = Utc::now();
    t.received_ts = now;
    t.exchange_ts = now - ChronoDuration::milliseconds(1);
}

/// Publishes to a pipeline's exchange with publisher confirms.
pub struct AmqpPublisher {
    _conn: Connection,
    channel: Channel,
    exchange: String,
    /// Confirms not yet awaited, oldest first.
    pending: VecDeque<PublisherConfirm>,
    /// Most confirms left outstanding before publishing waits.
    pub window: usize,
}

impl AmqpPublisher {
    /// Connects and enables confirms on a fresh channel.
    pub async fn connect(cfg: &AmqpConfig) -> Result<Self> {
        let conn = cfg.connect("tickbridge-loadgen").await?;
        let channel = tickbridge_broker::amqp::confirm_channel(&conn).await?;
        Ok(Self {
            _conn: conn,
            channel,
            exchange: cfg.topology().exchange,
            pending: VecDeque::new(),
            window: 2000,
        })
    }

    /// Publishes one message without waiting for its confirm (until the
    /// window is full); [`AmqpPublisher::flush`] awaits the rest.
    pub async fn publish(&mut self, msg: &Message) -> Result<()> {
        let m = msg.as_ref();
        let key = Topology::routing_key(m.source().as_str(), m.symbol());
        let props = headers::amqp_properties(m, "tickbridge-loadgen");
        self.publish_raw(&key, &m.to_json(), props).await
    }

    /// Publishes an arbitrary body (poison messages in tests).
    pub async fn publish_raw(
        &mut self,
        routing_key: &str,
        body: &[u8],
        props: BasicProperties,
    ) -> Result<()> {
        let confirm = self
            .channel
            .basic_publish(
                self.exchange.as_str().into(),
                routing_key.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                body,
                props,
            )
            .await?;
        self.pending.push_back(confirm);
        while self.pending.len() > self.window {
            if let Some(c) = self.pending.pop_front() {
                check_confirm(c).await?;
            }
        }
        Ok(())
    }

    /// Awaits every outstanding confirm.
    pub async fn flush(&mut self) -> Result<()> {
        while let Some(c) = self.pending.pop_front() {
            check_confirm(c).await?;
        }
        Ok(())
    }

    /// Publishes all messages and awaits every confirm.
    pub async fn publish_all(&mut self, msgs: &[Message]) -> Result<()> {
        for m in msgs {
            self.publish(m).await?;
        }
        self.flush().await
    }
}

async fn check_confirm(c: PublisherConfirm) -> Result<()> {
    let confirm = c.await?;
    let acked = confirm.is_ack();
    if let Some(ret) = confirm.take_message() {
        return Err(Error::Config(format!(
            "message returned unroutable: {} {}",
            ret.reply_code, ret.reply_text
        )));
    }
    if !acked {
        return Err(Error::Config("broker nacked a publish".into()));
    }
    Ok(())
}

/// Publishes to a Kafka topic, waiting for every delivery report.
pub struct KafkaPublisher {
    producer: FutureProducer,
    topic: String,
}

impl KafkaPublisher {
    /// Idempotent producer (`acks=all`), as the real producer's sink: a
    /// retried batch is neither duplicated nor reordered, so tests can rely
    /// on each message's reported `(partition, offset)` and per-partition
    /// order.
    pub fn new(cfg: &KafkaConfig) -> Result<Self> {
        Self::with_linger(cfg, Duration::from_millis(20))
    }

    /// Same, with a chosen `linger.ms`: tests batch for throughput, the
    /// latency benchmark sends at once.
    pub fn with_linger(cfg: &KafkaConfig, linger: Duration) -> Result<Self> {
        let mut c = cfg.client_config();
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", linger.as_millis().to_string())
            .set("batch.num.messages", "10000")
            .set("message.timeout.ms", "30000");
        Ok(Self {
            producer: cfg.finish(c).create()?,
            topic: cfg.topic.clone(),
        })
    }

    /// Publishes all messages (pipelined) and returns each one's
    /// `(partition, offset)`, in order.
    pub async fn send_all(&self, msgs: &[Message]) -> Result<Vec<(i32, i64)>> {
        let mut out = Vec::with_capacity(msgs.len());
        let mut inflight = FuturesOrdered::new();
        for m in msgs {
            if inflight.len() >= 10_000 {
                if let Some(r) = inflight.next().await {
                    out.push(r?);
                }
            }
            inflight.push_back(self.send(m));
        }
        while let Some(r) = inflight.next().await {
            out.push(r?);
        }
        Ok(out)
    }

    /// Publishes one message and waits for its delivery report.
    pub async fn send(&self, msg: &Message) -> Result<(i32, i64)> {
        let m = msg.as_ref();
        let body = m.to_json();
        let record = FutureRecord::to(&self.topic)
            .key(m.symbol())
            .payload(&body)
            .headers(headers::kafka_headers(m));
        match self.producer.send(record, Duration::from_secs(30)).await {
            Ok(d) => Ok((d.partition, d.offset)),
            Err((e, _)) => Err(e.into()),
        }
    }

    /// Publishes a raw body with a key and no headers (poison messages in tests).
    pub async fn send_raw(&self, key: &str, body: &[u8]) -> Result<(i32, i64)> {
        let record = FutureRecord::to(&self.topic).key(key).payload(body);
        match self.producer.send(record, Duration::from_secs(30)).await {
            Ok(d) => Ok((d.partition, d.offset)),
            Err((e, _)) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_ticks_are_valid_and_sequenced() {
        let ticks = synthetic_ticks("p1", &["BTC-USD", "ETH-USD"], 6);
        for t in &ticks {
            let body = Message::Tick(t.clone()).as_ref().to_json();
            tickbridge_model::schema::decode(&body).expect("valid against the schema");
        }
        let eth: Vec<u64> = ticks
            .iter()
            .filter(|t| &*t.symbol == "ETH-USD")
            .map(|t| t.seq)
            .collect();
        assert_eq!(eth, vec![1, 2, 3]);
        assert_eq!(ticks[3].id, "binance:ETH-USD:2");
    }
}
