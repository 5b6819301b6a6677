//! `dashboard-fanout-bench`: holds N SSE clients on one dashboard and
//! measures the fan-out.
//!
//! For each N (1 first: the raw baseline of this run, then e.g. 1,000,
//! 5,000, 10,000) it starts a `dashboard` process on a fresh topic, writes
//! `--rate` ticks per second into the topic, connects N clients over
//! loopback and holds them for `--hold`. It reports the events and
//! messages delivered, the per-client delay (event leaving the server →
//! client, and producer → client for the oldest tick of each event), the
//! dashboard's CPU and its RSS per connection, how long N clients took to
//! connect, and how long all N took to be live again after every one of
//! them dropped its connection at once and resumed with its last event id
//! (a reconnect storm). Each client checks, from the event ids, that every
//! event's messages follow the previous ones with no gap and no duplicate,
//! across the storm too.
//!
//! The results go to stdout and, with `--out`, into the markdown file
//! between `<!-- fanout-results:start -->` and `<!-- fanout-results:end -->`.

use anyhow::{bail, Context};
use clap::Parser;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tickbridge_broker::kafka::KafkaConfig;
use tickbridge_model::telemetry::{init_tracing, LogFormat};
use tickbridge_model::{MessageRef, Source, Tick, Via};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{watch, Semaphore};

/// Fan-out benchmark of the dashboard's `/events`: holds N SSE clients on
/// one dashboard over loopback and reports delivery, delay, CPU and memory
/// per connection, and the recovery from a reconnect storm.
#[derive(Parser)]
#[command(
    name = "dashboard-fanout-bench",
    version,
    help_template = tickbridge_model::cli::help_template(
        "1,000 clients for 10 s at 1,000 ticks/s, against the local Kafka; prints the table",
        "dashboard-fanout-bench --clients 1000 --hold 10s",
    )
)]
pub(crate) struct Cli {
    /// Client counts to run, after a 1-client baseline.
    #[arg(long, value_delimiter = ',', default_value = "1000,5000,10000")]
    clients: Vec<usize>,
    /// Ticks per second written to the topic during each run (the
    /// aggregate the clients receive, batched per interval).
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// How long each run holds its clients under load while measuring.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    hold: Duration,
    /// The dashboard's `--batch-interval`.
    #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration)]
    batch_interval: Duration,
    /// What each client asks for: `summary` (one aggregate per interval) or
    /// `full` (every message).
    #[arg(long, default_value = "summary")]
    view: String,
    /// The `dashboard` binary (default: next to this one).
    #[arg(long)]
    dashboard: Option<PathBuf>,
    /// Kafka bootstrap servers.
    #[arg(long, env = "KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    kafka_brokers: String,
    /// Markdown file whose results section is replaced with this run's.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Delays in microseconds, shared by all clients in a few shards.
struct Hist {
    shards: Vec<Mutex<hdrhistogram::Histogram<u64>>>,
}

impl Hist {
    fn new() -> Self {
        Self {
            shards: (0..16)
                .map(|_| {
                    Mutex::new(
                        hdrhistogram::Histogram::new_with_bounds(1, 600_000_000, 3)
                            .expect("static bounds"),
                    )
                })
                .collect(),
        }
    }
    fn record(&self, shard: usize, micros: i64) {
        let v = micros.clamp(1, 600_000_000) as u64;
        let mut h = self.shards[shard % 16]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let _ = h.record(v);
    }
    fn merged(&self) -> hdrhistogram::Histogram<u64> {
        let mut all = hdrhistogram::Histogram::new_with_bounds(1, 600_000_000, 3).expect("bounds");
        for s in &self.shards {
            let _ = all.add(&*s.lock().unwrap_or_else(|e| e.into_inner()));
        }
        all
    }
}

/// What every client adds to.
struct Shared {
    measuring: AtomicBool,
    events: AtomicU64,
    messages: AtomicU64,
    violations: AtomicU64,
    live: AtomicUsize,
    closed: AtomicUsize,
    fanout: Hist,
    e2e: Hist,
}

impl Shared {
    /// Nothing counted yet, not measuring.
    fn new() -> Self {
        Self {
            measuring: AtomicBool::new(false),
            events: AtomicU64::new(0),
            messages: AtomicU64::new(0),
            violations: AtomicU64::new(0),
            live: AtomicUsize::new(0),
            closed: AtomicUsize::new(0),
            fanout: Hist::new(),
            e2e: Hist::new(),
        }
    }
}

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// Sum of the `next` offsets in an event id: the messages before it.
fn id_total(id: &str) -> Option<i64> {
    let (_, list) = id.rsplit_once('/')?;
    list.split(',')
        .map(|p| p.split_once(':').and_then(|(_, o)| o.parse::<i64>().ok()))
        .sum()
}

fn json_int(data: &str, key: &str) -> Option<i64> {
    let at = data.find(key)? + key.len();
    let rest = &data[at..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '-'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// One client: connects, reads events until told to reconnect (then
/// resumes with its last id) or to stop.
async fn client(
    i: usize,
    addr: std::net::SocketAddr,
    view: String,
    shared: Arc<Shared>,
    connect: Arc<Semaphore>,
    mut storm: watch::Receiver<u32>,
) {
    let mut pos = Position::default();
    loop {
        if *storm.borrow() == u32::MAX {
            shared.closed.fetch_add(1, Relaxed);
            return;
        }
        let mut r = match open_events(addr, &view, pos.last_id.as_deref(), &connect).await {
            Ok(r) => r,
            Err(wait) => {
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                continue;
            }
        };
        match read_events(i, &mut r, &shared, &mut storm, &mut pos).await {
            StreamEnd::Stop => {
                shared.closed.fetch_add(1, Relaxed);
                return;
            }
            StreamEnd::Storm => {}
            StreamEnd::Cut => {
                // Cut by the server (or it went away): resume, as a browser does.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Where a client is in the stream, kept across its reconnections.
#[derive(Default)]
struct Position {
    /// The last event id seen: sent back as `Last-Event-ID` on resuming.
    last_id: Option<String>,
    /// Messages before the last event (from its id), to check that the next
    /// one follows it with no gap and no duplicate.
    total: Option<i64>,
}

/// How one connection's event stream ended.
enum StreamEnd {
    /// The server cut it (or went away).
    Cut,
    /// The storm told the client to drop it and resume.
    Storm,
    /// The run is over.
    Stop,
}

/// Connects and asks for the events (resuming after `last_id`), holding a
/// `connect` permit until the response headers are read. `Err` is how long
/// to wait before trying again.
async fn open_events(
    addr: std::net::SocketAddr,
    view: &str,
    last_id: Option<&str>,
    connect: &Semaphore,
) -> Result<BufReader<tokio::net::TcpStream>, Duration> {
    let permit = connect.acquire().await;
    let stream = match tokio::net::TcpStream::connect(addr).await {
        Ok(s) => s,
        Err(_) => {
            drop(permit);
            return Err(Duration::from_millis(200));
        }
    };
    let mut req =
        format!("GET /events?view={view} HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n");
    if let Some(id) = last_id {
        req.push_str(&format!("Last-Event-ID: {id}\r\n"));
    }
    req.push_str("\r\n");
    let mut r = BufReader::with_capacity(16 * 1024, stream);
    if r.get_mut().write_all(req.as_bytes()).await.is_err() {
        return Err(Duration::ZERO);
    }
    let mut line = String::new();
    // Status line and headers.
    let mut ok = false;
    loop {
        line.clear();
        match r.read_line(&mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if line.starts_with("HTTP/1.1 ") {
            ok = line.starts_with("HTTP/1.1 200");
        }
        if line == "\r\n" {
            break;
        }
    }
    drop(permit);
    if !ok {
        return Err(Duration::from_millis(500));
    }
    Ok(r)
}

/// Reads one connection's events until it ends or the storm says otherwise.
async fn read_events(
    i: usize,
    r: &mut BufReader<tokio::net::TcpStream>,
    shared: &Shared,
    storm: &mut watch::Receiver<u32>,
    pos: &mut Position,
) -> StreamEnd {
    // Chunked body: chunk-size lines, then data. The events are parsed
    // from the lines, whatever the chunk boundaries.
    let mut line = String::new();
    let mut id: Option<String> = None;
    let mut event = String::new();
    let mut data = String::new();
    loop {
        line.clear();
        let read = tokio::select! {
            r = r.read_line(&mut line) => r,
            _ = storm.changed() => {
                let generation = *storm.borrow();
                if generation == u32::MAX {
                    return StreamEnd::Stop;
                }
                return StreamEnd::Storm;
            }
        };
        match read {
            Ok(0) | Err(_) => return StreamEnd::Cut,
            Ok(_) => {}
        }
        let l = line.trim_end_matches(['\r', '\n']);
        if let Some(v) = l.strip_prefix("id: ") {
            id = Some(v.to_string());
        } else if let Some(v) = l.strip_prefix("event: ") {
            event = v.to_string();
        } else if let Some(v) = l.strip_prefix("data: ") {
            data = v.to_string();
        } else if l.is_empty() && !data.is_empty() {
            on_event(i, shared, &event, &data, id.as_deref(), &mut pos.total);
            if let Some(x) = id.take() {
                pos.last_id = Some(x);
            }
            data.clear();
            event.clear();
        }
    }
}

/// One complete event: checks that it follows the previous one (`total`)
/// and, while measuring, counts it and records its delays.
fn on_event(
    i: usize,
    shared: &Shared,
    event: &str,
    data: &str,
    id: Option<&str>,
    total: &mut Option<i64>,
) {
    let now = now_us();
    match event {
        "live" => {
            let t = id.and_then(id_total);
            if let (Some(prev), Some(t)) = (*total, t) {
                if prev != t {
                    shared.violations.fetch_add(1, Relaxed);
                }
            }
            *total = t.or(*total);
            shared.live.fetch_add(1, Relaxed);
        }
        "summary" | "batch" => {
            let n = if event == "summary" {
                json_int(data, "\"n\":").unwrap_or(0)
            } else {
                data.matches("\"o\":").count() as i64
            };
            let t = id.and_then(id_total);
            match (*total, t) {
                (Some(prev), Some(t)) if t - prev != n => {
                    shared.violations.fetch_add(1, Relaxed);
                }
                _ => {}
            }
            *total = t.or(*total);
            if shared.measuring.load(Relaxed) {
                shared.events.fetch_add(1, Relaxed);
                shared.messages.fetch_add(n as u64, Relaxed);
                if let Some(at) = json_int(data, "\"at\":") {
                    shared.fanout.record(i, now - at * 1000);
                }
                if let Some(rt) = json_int(data, "\"rt\":") {
                    shared.e2e.record(i, now - rt * 1000);
                }
            }
        }
        _ => {}
    }
}

/// utime + stime of `pid`, in clock ticks (100 per second on Linux).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // Fields after the command: state is index 0; utime 11, stime 12.
    get(11) + get(12)
}

/// Resident memory of `pid`, KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

struct Row {
    n: usize,
    events: u64,
    messages: u64,
    per_client_rate: f64,
    fan_p50: f64,
    fan_p99: f64,
    fan_max: f64,
    e2e_p50: f64,
    e2e_p99: f64,
    cpu_pct: f64,
    rss_per_conn_kib: f64,
    rss_mib: f64,
    connect_s: f64,
    storm_s: f64,
    violations: u64,
    cut_off: u64,
}

fn tick_body(i: u64) -> Vec<u8> {
    let syms = ["BTC-USDT", "ETH-USDT", "SOL-USDT"];
    let sym = syms[(i % 3) as usize];
    let now = chrono::Utc::now();
    let t = Tick {
        id: Tick::make_id(Source::Binance, sym, i),
        source: Source::Binance,
        symbol: Arc::from(sym),
        raw_symbol: Arc::from(sym.replace('-', "")),
        trade_id: i,
        price: rust_decimal::Decimal::new(100_000 + (i % 1000) as i64, 2),
        qty: rust_decimal::Decimal::new(5, 1),
        side: tickbridge_model::Side::Buy,
        exchange_ts: now,
        received_ts: now,
        producer: Arc::from("fanout-bench"),
        seq: i / 3 + 1,
        via: Via::Ws,
    };
    MessageRef::Tick(&t).to_json()
}

/// One run with `n` clients: a dashboard on a fresh topic under load, the
/// clients connected, held while measuring, put through a reconnect storm,
/// and everything stopped.
async fn run_one(cli: &Cli, dashboard: &Path, n: usize) -> anyhow::Result<Row> {
    let topic = rand_name("fanout");
    let k = KafkaConfig::local(&cli.kafka_brokers, &topic, 3);
    k.ensure_topic(&topic, 3).await?;
    let mut dash = Dashboard::start(cli, dashboard, &topic, n).await?;
    let rss0 = rss_kib(dash.pid);

    let stop = Arc::new(AtomicBool::new(false));
    let writer = start_load(&k, &topic, cli.rate, stop.clone())?;
    let shared = Arc::new(Shared::new());
    let (storm_tx, storm_rx) = watch::channel(0u32);
    // At most this many connections opening at once: the listen backlog
    // is finite, and a refused SYN costs a second of retry.
    let connect = Arc::new(Semaphore::new(256));
    let t0 = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        tasks.push(tokio::spawn(client(
            i,
            dash.addr,
            cli.view.clone(),
            shared.clone(),
            connect.clone(),
            storm_rx.clone(),
        )));
    }
    dash.wait_live(&shared, n).await?;
    let connect_s = t0.elapsed().as_secs_f64();
    let held = hold(cli.hold, dash.pid, &shared).await;
    let storm_s = reconnect_storm(&mut dash, &shared, &storm_tx, n).await?;
    // A little more traffic after the storm, so a gap would show.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cut_off = cut_off(dash.addr).await?;

    storm_tx.send(u32::MAX)?;
    for t in tasks {
        t.abort();
        let _ = t.await;
    }
    stop.store(true, Relaxed);
    let _ = writer.await;
    let _ = dash.child.kill().await;

    let fan = shared.fanout.merged();
    let e2e = shared.e2e.merged();
    let events = shared.events.load(Relaxed);
    let ms = |h: &hdrhistogram::Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    Ok(Row {
        n,
        events,
        messages: shared.messages.load(Relaxed),
        per_client_rate: events as f64 / n as f64 / held.wall,
        fan_p50: ms(&fan, 0.5),
        fan_p99: ms(&fan, 0.99),
        fan_max: fan.max() as f64 / 1000.0,
        e2e_p50: ms(&e2e, 0.5),
        e2e_p99: ms(&e2e, 0.99),
        cpu_pct: held.cpu_pct,
        rss_per_conn_kib: held.rss.saturating_sub(rss0) as f64 / n as f64,
        rss_mib: held.rss as f64 / 1024.0,
        connect_s,
        storm_s,
        violations: shared.violations.load(Relaxed),
        cut_off,
    })
}

/// A running `dashboard` process, serving.
struct Dashboard {
    child: tokio::process::Child,
    pid: u32,
    addr: std::net::SocketAddr,
    /// Its stderr, for when a run goes wrong.
    log_path: PathBuf,
    /// Its stdout, held open so the process never writes into a closed
    /// pipe.
    _stdout: BufReader<tokio::process::ChildStdout>,
}

impl Dashboard {
    /// Starts one on `topic` for `n` clients and waits until it serves.
    async fn start(cli: &Cli, dashboard: &Path, topic: &str, n: usize) -> anyhow::Result<Self> {
        // The dashboard's log, for when a run goes wrong.
        let log_path = std::env::temp_dir().join(format!("fanout-dashboard-{n}.log"));
        let mut child = tokio::process::Command::new(dashboard)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--kafka-brokers",
                &cli.kafka_brokers,
            ])
            .args(["--kafka-topic", topic, "--group", &rand_name("fanout-dash")])
            .args(["--max-clients", &(n + 16).to_string()])
            .args([
                "--batch-interval",
                &humantime::format_duration(cli.batch_interval).to_string(),
            ])
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&log_path)?))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", dashboard.display()))?;
        let pid = child.id().context("dashboard pid")?;
        let mut out = BufReader::new(child.stdout.take().context("stdout")?);
        let mut first = String::new();
        out.read_line(&mut first).await?;
        let url = first
            .trim()
            .strip_prefix("dashboard on ")
            .with_context(|| format!("unexpected first line {first:?}"))?;
        let addr: std::net::SocketAddr = url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()?;
        if !healthy(addr).await {
            bail!("the dashboard did not come up");
        }
        Ok(Self {
            child,
            pid,
            addr,
            log_path,
            _stdout: out,
        })
    }

    /// Waits until `n` clients are live, or fails if the dashboard exits
    /// meanwhile.
    async fn wait_live(&mut self, shared: &Shared, n: usize) -> anyhow::Result<()> {
        tokio::select! {
            r = wait_for(|| shared.live.load(Relaxed) >= n, Duration::from_secs(300)) => r?,
            s = self.child.wait() => bail!("the dashboard exited ({s:?}); see {}", self.log_path.display()),
        }
        Ok(())
    }
}

/// Serving once /healthz answers (tried for 30 s).
async fn healthy(addr: std::net::SocketAddr) -> bool {
    for _ in 0..300 {
        if let Ok(mut s) = tokio::net::TcpStream::connect(addr).await {
            let _ = s
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await;
            let mut b = Vec::new();
            let _ = s.read_to_end(&mut b).await;
            if b.starts_with(b"HTTP/1.1 200") {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// The load: `rate` ticks per second, in 10 ms slices, until `stop`. The
/// task returns how many it sent.
fn start_load(
    k: &KafkaConfig,
    topic: &str,
    rate: u64,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<tokio::task::JoinHandle<u64>> {
    let producer: ThreadedProducer<DefaultProducerContext> =
        k.finish(k.client_config()).set("linger.ms", "5").create()?;
    let topic = topic.to_string();
    Ok(tokio::task::spawn_blocking(move || {
        let start = Instant::now();
        let mut sent = 0u64;
        while !stop.load(Relaxed) {
            let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
            while sent < due {
                let body = tick_body(sent);
                let key = ["a", "b", "c"][(sent % 3) as usize];
                if producer
                    .send(BaseRecord::to(&topic).key(key).payload(&body))
                    .is_err()
                {
                    std::thread::sleep(Duration::from_millis(5));
                    break;
                }
                sent += 1;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = producer.flush(Duration::from_secs(10));
        sent
    }))
}

/// What the measuring window saw.
struct Held {
    /// Its length, seconds.
    wall: f64,
    /// The dashboard's CPU over it, percent of one core.
    cpu_pct: f64,
    /// The dashboard's RSS at its end, KiB.
    rss: u64,
}

/// Hold under load, measuring (after 2 s to settle).
async fn hold(hold: Duration, pid: u32, shared: &Shared) -> Held {
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu0 = cpu_ticks(pid);
    let w0 = Instant::now();
    shared.measuring.store(true, Relaxed);
    tokio::time::sleep(hold).await;
    shared.measuring.store(false, Relaxed);
    let wall = w0.elapsed().as_secs_f64();
    let cpu_pct = (cpu_ticks(pid) - cpu0) as f64 / 100.0 / wall * 100.0;
    let rss = rss_kib(pid);
    Held { wall, cpu_pct, rss }
}

/// Reconnect storm: every client drops its connection at once and
/// resumes with its last event id. Returns the seconds until all `n` are
/// live again.
async fn reconnect_storm(
    dash: &mut Dashboard,
    shared: &Shared,
    storm_tx: &watch::Sender<u32>,
    n: usize,
) -> anyhow::Result<f64> {
    shared.live.store(0, Relaxed);
    let t1 = Instant::now();
    storm_tx.send(1)?;
    dash.wait_live(shared, n).await?;
    Ok(t1.elapsed().as_secs_f64())
}

/// The dashboard's `cut_off` count (clients it dropped for falling
/// behind), from `/api/state`; -1 as u64 if absent.
async fn cut_off(addr: std::net::SocketAddr) -> anyhow::Result<u64> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(b"GET /api/state HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await?;
    let mut b = String::new();
    s.read_to_string(&mut b).await?;
    Ok(json_int(&b, "\"cut_off\":").unwrap_or(-1) as u64)
}

async fn wait_for(f: impl Fn() -> bool, limit: Duration) -> anyhow::Result<()> {
    let t = Instant::now();
    while !f() {
        if t.elapsed() > limit {
            bail!("not reached within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Prints the table and, with `--out`, replaces the results section.
fn write_table(cli: &Cli, rows: &[Row], failed: Option<(usize, String)>) -> anyhow::Result<()> {
    let Some(first) = rows.first() else {
        return Ok(());
    };
    let base_p99 = first.fan_p99.max(0.001);
    let mut table = String::new();
    let date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC");
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    table.push_str(&format!(
        "Run {date}: {cores} cores, Linux {}, {} ticks/s into a 3-partition topic, `--batch-interval {}`, view `{}`, {} s held per N; the dashboard and the clients on the same machine (loopback).\n\n",
        kernel.trim(),
        cli.rate,
        humantime::format_duration(cli.batch_interval),
        cli.view,
        cli.hold.as_secs()
    ));
    table.push_str("| clients | events delivered | messages delivered | events/s per client | delay p50 / p99 / max (ms) | p99 vs 1 client | producer → client p50 / p99 (ms) | server CPU | server RSS (per connection) | connect all | all live again after a reconnect storm | gaps or duplicates | cut off |\n");
    table.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in rows {
        table.push_str(&format!(
            "| {} | {} | {} | {:.1} | {:.1} / {:.1} / {:.1} | {:.1}× | {:.1} / {:.1} | {:.0}% | {:.1} MiB ({:.1} KiB) | {:.2} s | {:.2} s | {} | {} |\n",
            r.n, r.events, r.messages, r.per_client_rate, r.fan_p50, r.fan_p99, r.fan_max,
            r.fan_p99 / base_p99, r.e2e_p50, r.e2e_p99, r.cpu_pct, r.rss_mib, r.rss_per_conn_kib,
            r.connect_s, r.storm_s, r.violations, r.cut_off
        ));
    }
    if let Some((n, why)) = failed {
        table.push_str(&format!("\n{n} clients: the run failed: {why}\n"));
    }
    println!("{table}");
    if let Some(path) = &cli.out {
        let old = std::fs::read_to_string(path).unwrap_or_default();
        let (start, end) = (
            "<!-- fanout-results:start -->",
            "<!-- fanout-results:end -->",
        );
        let new = match (old.find(start), old.find(end)) {
            (Some(a), Some(b)) if a < b => format!("{}{start}\n{table}{}", &old[..a], &old[b..]),
            _ => format!("{old}\n{start}\n{table}{end}\n"),
        };
        std::fs::write(path, new)?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(LogFormat::Text);
    if !matches!(cli.view.as_str(), "summary" | "full") {
        bail!("--view must be summary or full");
    }
    let most = cli.clients.iter().copied().max().unwrap_or(1);
    let limit = tickbridge_dashboard::limits::raise_nofile(most as u64 + 1024);
    if (limit as usize) < most + 64 {
        bail!(
            "open-file limit {limit} is below {most} clients; raise it (ulimit -n) and run again"
        );
    }
    let dashboard = match &cli.dashboard {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("dashboard"),
    };
    let mut rows = Vec::new();
    for n in std::iter::once(1).chain(cli.clients.iter().copied()) {
        eprintln!("fan-out: {n} clients ...");
        let r = match run_one(&cli, &dashboard, n).await {
            Ok(r) => r,
            Err(e) => {
                // The rows measured so far stay written; the failure is
                // reported, not hidden.
                eprintln!("  {n}: FAILED: {e:#}");
                write_table(&cli, &rows, Some((n, format!("{e:#}"))))?;
                return Err(e);
            }
        };
        eprintln!(
            "  {n}: {} events ({:.1}/s per client), delay p50 {:.1} ms p99 {:.1} ms, CPU {:.0}%, RSS {:.1} MiB, storm {:.2} s, violations {}",
            r.events, r.per_client_rate, r.fan_p50, r.fan_p99, r.cpu_pct, r.rss_mib, r.storm_s, r.violations
        );
        rows.push(r);
        write_table(&cli, &rows, None)?;
    }
    Ok(())
}

/// A topic or group name no earlier run used.
fn rand_name(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros()
    )
}
