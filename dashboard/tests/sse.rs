//! `/events` against the real Kafka broker: resume by `Last-Event-ID` (from
//! the recent ring and from Kafka), replay from offset 0, a client that
//! stops reading, `--max-clients`, and bad requests.
//!
//! Each test writes ticks into a fresh topic, serves a dashboard on port 0
//! in-process, and reads `/events` as a browser would.

use chrono::Utc;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tickbridge_dashboard::{Cursor, DashboardConfig};
use tickbridge_model::{MessageRef, Shutdown, Source, Tick, Via};
use tickbridge_testkit::rand_name;

fn brokers() -> String {
    std::env::var("KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

const SYMBOLS: [&str; 3] = ["BTC-USDT", "ETH-USDT", "SOL-USDT"];

/// Writes `n` ticks, trade ids from `first`, keyed by symbol.
async fn produce(topic: &str, first: u64, n: u64) {
    let k = tickbridge_broker::kafka::KafkaConfig::local(&brokers(), topic, 3);
    let p: FutureProducer = k
        .finish(k.client_config())
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let mut sends = Vec::new();
    for i in first..first + n {
        let sym = SYMBOLS[(i % 3) as usize];
        let now = Utc::now();
        let t = Tick {
            id: Tick::make_id(Source::Binance, sym, i),
            source: Source::Binance,
            symbol: Arc::from(sym),
            raw_symbol: Arc::from(sym.replace('-', "")),
            trade_id: i,
            price: rust_decimal::Decimal::new(100_000 + i as i64, 2),
            qty: rust_decimal::Decimal::new(5, 1),
            side: tickbridge_model::Side::Buy,
            exchange_ts: now,
            received_ts: now,
            producer: Arc::from("test"),
            seq: i / 3 + 1,
            via: Via::Ws,
        };
        let body = MessageRef::Tick(&t).to_json();
        let p = p.clone();
        let topic = topic.to_string();
        sends.push(async move {
            p.send(
                FutureRecord::to(&topic).key(sym).payload(&body),
                Duration::from_secs(30),
            )
            .await
            .map(|_| ())
            .map_err(|(e, _)| e)
        });
        if sends.len() >= 1000 {
            for r in futures::future::join_all(sends.drain(..)).await {
                r.expect("delivered");
            }
        }
    }
    for r in futures::future::join_all(sends).await {
        r.expect("delivered");
    }
}

struct Served {
    url: String,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<tickbridge_dashboard::Result<tickbridge_dashboard::hub::State>>,
}

async fn serve(topic: &str, tweak: impl FnOnce(&mut DashboardConfig)) -> Served {
    tickbridge_model::telemetry::init_test_tracing();
    let k = tickbridge_broker::kafka::KafkaConfig::local(&brokers(), topic, 3);
    k.ensure_topic(topic, 3).await.expect("topic");
    let mut cfg = DashboardConfig::local(&brokers(), topic, &rand_name("dash"));
    tweak(&mut cfg);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = Shutdown::new();
    let task = tokio::spawn(tickbridge_dashboard::run(cfg, listener, shutdown.clone()));
    // Up when /healthz answers.
    for _ in 0..300 {
        if reqwest::get(format!("{url}/healthz")).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Served {
        url,
        shutdown,
        task,
    }
}

async fn state(url: &str) -> serde_json::Value {
    reqwest::get(format!("{url}/api/state"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Waits until the dashboard has read `n` messages (no timing asserted:
/// it fails only if that never happens within minutes).
async fn wait_read(url: &str, n: u64) {
    for _ in 0..1200 {
        if state(url).await["messages"].as_u64() == Some(n) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("dashboard never read {n} messages: {}", state(url).await);
}

/// One parsed SSE event.
#[derive(Debug, Clone)]
struct Event {
    id: Option<String>,
    kind: String,
    data: serde_json::Value,
}

/// A streaming `/events` reader.
struct Sse {
    resp: reqwest::Response,
    buf: String,
    last_id: Option<String>,
}

impl Sse {
    async fn open(url: &str, query: &str, last_id: Option<&str>) -> reqwest::Response {
        let mut req = reqwest::Client::new().get(format!("{url}/events{query}"));
        if let Some(id) = last_id {
            req = req.header("Last-Event-ID", id);
        }
        req.send().await.expect("request")
    }

    async fn connect(url: &str, query: &str, last_id: Option<&str>) -> Sse {
        let resp = Self::open(url, query, last_id).await;
        assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
        Sse {
            resp,
            buf: String::new(),
            last_id: last_id.map(str::to_string),
        }
    }

    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut ev = Event {
                    id: None,
                    kind: "message".into(),
                    data: serde_json::Value::Null,
                };
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        ev.id = Some(v.to_string());
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        ev.kind = v.to_string();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data.push_str(v);
                    }
                }
                if data.is_empty() {
                    continue;
                }
                ev.data = serde_json::from_str(&data).expect("JSON data");
                if let Some(id) = &ev.id {
                    self.last_id = Some(id.clone());
                }
                return Some(ev);
            }
            let chunk = tokio::time::timeout(Duration::from_secs(60), self.resp.chunk())
                .await
                .expect("an event within a minute")
                .ok()??;
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

/// Positions received, per partition, in order.
#[derive(Default, Debug)]
struct Received {
    offsets: BTreeMap<i64, Vec<i64>>,
}

impl Received {
    fn take(&mut self, ev: &Event) {
        if ev.kind == "batch" {
            for m in ev.data["m"].as_array().unwrap() {
                let (p, o) = (m["p"].as_i64().unwrap(), m["o"].as_i64().unwrap());
                self.offsets.entry(p).or_default().push(o);
            }
        }
    }
    fn count(&self) -> usize {
        self.offsets.values().map(Vec::len).sum()
    }
    /// Every partition holds exactly `from[p]..to[p]`, in order.
    fn assert_exact(&self, from: &Cursor, to: &Cursor) {
        for (p, end) in &to.next {
            let start = from.next.get(p).copied().unwrap_or(0);
            let want: Vec<i64> = (start..*end).collect();
            let got = self.offsets.get(&(*p as i64)).cloned().unwrap_or_default();
            assert_eq!(got, want, "partition {p}: a gap or a duplicate");
        }
    }
}

async fn read_until(sse: &mut Sse, rx: &mut Received, n: usize) {
    while rx.count() < n {
        let ev = sse.next().await.expect("stream open");
        rx.take(&ev);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_by_last_event_id_is_exact_from_ring_and_from_kafka() {
    let topic = rand_name("dash-resume");
    // A small ring, so an old cursor must be read back from Kafka.
    let s = serve(&topic, |c| {
        c.recent = 4;
        c.batch_max = 50;
    })
    .await;
    produce(&topic, 1, 600).await;
    wait_read(&s.url, 600).await;

    // A live client joins now; a replay from 0 reads all 600 from Kafka.
    let mut replay = Sse::connect(&s.url, "?from=0", None).await;
    let mut got = Received::default();
    let mut ids = Vec::new();
    while got.count() < 600 {
        let ev = replay.next().await.unwrap();
        got.take(&ev);
        if ev.kind == "batch" {
            ids.push(ev.id.clone().unwrap());
        }
    }
    let zero = Cursor::parse(&format!("{topic}/0:0,1:0,2:0")).unwrap();
    let live600 = Cursor::parse(ids.last().unwrap()).unwrap();
    got.assert_exact(&zero, &live600);

    // Resume from an early id (older than the ring: a Kafka read), while
    // more is written.
    let early = Cursor::parse(&ids[2]).unwrap();
    produce(&topic, 601, 400).await;
    wait_read(&s.url, 1000).await;
    let mut resumed = Sse::connect(&s.url, "", Some(&early.to_string())).await;
    let mut got = Received::default();
    let want = 1000 - early.next.values().sum::<i64>() as usize;
    read_until(&mut resumed, &mut got, want).await;
    let end = Cursor::parse(resumed.last_id.as_ref().unwrap()).unwrap();
    assert_eq!(end.next.values().sum::<i64>(), 1000);
    got.assert_exact(&early, &end);

    // Resume from the newest id while messages keep coming: the ring.
    let recent = end.clone();
    let writer = tokio::spawn({
        let topic = topic.clone();
        async move { produce(&topic, 1001, 300).await }
    });
    let mut again = Sse::connect(&s.url, "", Some(&recent.to_string())).await;
    writer.await.unwrap();
    let mut got = Received::default();
    read_until(&mut again, &mut got, 300).await;
    let end = Cursor::parse(again.last_id.as_ref().unwrap()).unwrap();
    got.assert_exact(&recent, &end);
    assert_eq!(end.next.values().sum::<i64>(), 1300);

    // The summary view resumes the same way: each event's count is exactly
    // what its id moved on by, from the early id to the end.
    let mut summary = Sse::connect(&s.url, "?view=summary", Some(&early.to_string())).await;
    let total = |c: &Cursor| c.next.values().sum::<i64>();
    let mut at = total(&early);
    let mut counted = 0i64;
    while at < 1300 {
        let ev = summary.next().await.unwrap();
        if ev.kind == "summary" {
            let id = Cursor::parse(ev.id.as_ref().unwrap()).unwrap();
            let n = ev.data["n"].as_i64().unwrap();
            assert_eq!(
                total(&id) - at,
                n,
                "a summary's count is what its id moved on by"
            );
            counted += n;
            at = total(&id);
        }
    }
    assert_eq!(counted, 1300 - total(&early));

    s.shutdown.trigger();
    let st = s.task.await.unwrap().unwrap();
    assert_eq!(st.messages, 1300);
    assert_eq!(st.ticks, 1300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_cut_off_and_the_others_get_everything() {
    let topic = rand_name("dash-slow");
    let s = serve(&topic, |c| {
        c.client_buffer = 64;
        c.batch_interval = Duration::from_millis(5);
        c.batch_max = 100;
    })
    .await;
    // The stalled client: a raw socket with a small receive buffer that
    // sends its request and never reads again.
    let addr: std::net::SocketAddr = s.url.trim_start_matches("http://").parse().unwrap();
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut stalled = sock.connect(addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stalled
        .write_all(b"GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        .await
        .unwrap();
    // A reading client alongside.
    let mut reader = Sse::connect(&s.url, "", None).await;
    let first = loop {
        let ev = reader.next().await.unwrap();
        if ev.kind == "live" {
            break Cursor::parse(ev.id.as_ref().unwrap()).unwrap();
        }
    };
    let target = Arc::new(std::sync::atomic::AtomicUsize::new(usize::MAX));
    let reading = tokio::spawn({
        let target = target.clone();
        async move {
            let mut got = Received::default();
            while let Some(ev) = reader.next().await {
                got.take(&ev);
                if got.count() >= target.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
            }
            (got, reader.last_id.clone())
        }
    });
    // Write until the stalled client is cut off (bounded: it must happen
    // long before 200,000 ticks of ~330 bytes fill any socket buffer).
    const MAX: u64 = 200_000;
    let mut written = 0u64;
    while written < MAX {
        produce(&topic, written + 1, 2000).await;
        written += 2000;
        if state(&s.url).await["cut_off"].as_u64().unwrap_or(0) >= 1 {
            break;
        }
    }
    let cut = state(&s.url).await["cut_off"].as_u64().unwrap();
    assert_eq!(cut, 1, "the stalled client, and only it, was cut off");
    // Its connection is closed: draining what the kernel holds ends in EOF
    // (or a reset), not in a stream that stays open.
    let mut sink = vec![0u8; 1 << 16];
    loop {
        match tokio::time::timeout(Duration::from_secs(60), stalled.read(&mut sink)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(_)) => continue,
            Err(_) => panic!("the stalled client's connection stayed open"),
        }
    }
    // The reading client got every message written, exactly once.
    target.store(written as usize, std::sync::atomic::Ordering::SeqCst);
    produce(&topic, written + 1, 1).await; // wakes a reader already at the target
    let (got, last) = reading.await.unwrap();
    let end = Cursor::parse(last.as_ref().unwrap()).unwrap();
    got.assert_exact(&first, &end);
    assert!(got.count() >= written as usize);
    assert_eq!(state(&s.url).await["cut_off"].as_u64(), Some(1));
    s.shutdown.trigger();
    s.task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_clients_is_503_with_retry_after_and_a_freed_slot_is_reused() {
    let topic = rand_name("dash-max");
    let s = serve(&topic, |c| {
        c.max_clients = 2;
        c.retry_after = 7;
    })
    .await;
    let mut a = Sse::connect(&s.url, "", None).await;
    let mut b = Sse::connect(&s.url, "", None).await;
    assert_eq!(a.next().await.unwrap().kind, "live");
    assert_eq!(b.next().await.unwrap().kind, "live");
    let third = Sse::open(&s.url, "", None).await;
    assert_eq!(third.status(), 503);
    assert_eq!(
        third
            .headers()
            .get("retry-after")
            .unwrap()
            .to_str()
            .unwrap(),
        "7"
    );
    drop(a);
    // The slot comes back once the server sees the connection close.
    let mut ok = false;
    for _ in 0..600 {
        let r = Sse::open(&s.url, "", None).await;
        if r.status() == 200 {
            ok = true;
            break;
        }
        assert_eq!(r.status(), 503);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "a closed client's slot was never released");
    drop(b);
    s.shutdown.trigger();
    s.task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_400_with_the_reason() {
    let topic = rand_name("dash-bad");
    let s = serve(&topic, |_| {}).await;
    produce(&topic, 1, 3).await;
    wait_read(&s.url, 3).await;
    struct TestCase {
        query: &'static str,
        last_id: Option<String>,
        reason: &'static str,
    }
    let cases = [
        // TC0: unknown parameter
        TestCase {
            query: "?form=0",
            last_id: None,
            reason: "unknown query parameter \"form\"",
        },
        // TC1: negative offset
        TestCase {
            query: "?from=-5",
            last_id: None,
            reason: "offsets are not negative",
        },
        // TC2: not a time or duration
        TestCase {
            query: "?from=yesterday",
            last_id: None,
            reason: "invalid from",
        },
        // TC3: garbage Last-Event-ID
        TestCase {
            query: "",
            last_id: Some("nonsense".into()),
            reason: "Last-Event-ID",
        },
        // TC4: another topic's position
        TestCase {
            query: "",
            last_id: Some("other/0:1".into()),
            reason: "this dashboard reads",
        },
        // TC5: beyond the end of the topic
        TestCase {
            query: "",
            last_id: Some(format!("{topic}/0:999999,1:0,2:0")),
            reason: "beyond",
        },
        // TC6: the same parameter twice
        TestCase {
            query: "?from=0&from=1",
            last_id: None,
            reason: "twice",
        },
    ];
    for (i, tc) in cases.iter().enumerate() {
        let r = Sse::open(&s.url, tc.query, tc.last_id.as_deref()).await;
        assert_eq!(r.status(), 400, "TC{i}");
        let body = r.text().await.unwrap();
        assert!(body.contains(tc.reason), "TC{i}: {body}");
    }
    s.shutdown.trigger();
    s.task.await.unwrap().unwrap();
}
