//! `chaos soak`: the whole pipeline for millions of ticks on private
//! brokers, every binary's memory, open files and threads sampled over
//! time, and a flatness verdict.
//!
//! ```text
//! feed-sim (full speed, or --rate trades/s per symbol)
//!   → producer --sink rabbitmq,kafka   (confirms, persistence, idempotence)
//!     → worker   on the RabbitMQ work queue
//!     → consumer in a Kafka consumer group
//! ```
//!
//! The brokers are the run's own ([`Brokers`], the chaos scenario's: a
//! RabbitMQ node and an Apache Kafka node on spare ports), the binaries are
//! child processes ([`Proc`]). Every step waits on a condition, never on a
//! fixed sleep: the brokers answer, the topology is declared before anything
//! publishes, each reader's metrics endpoint answers, `feed-sim` prints its
//! address, and the readers are stopped once they have handled everything
//! the producer published.
//!
//! Every `--interval` the sampler reads `VmRSS` and `Threads` from
//! `/proc/<pid>/status`, counts `/proc/<pid>/fd`, scrapes each binary's
//! progress counter from its Prometheus endpoint and appends one row per
//! process to `samples.csv` ([`SAMPLES_HEADER`]). At the end the delivery
//! is checked here ([`delivery_problems`]: exit statuses, every tick
//! arrived once), and `scripts/soak_report.py report` applies the flatness
//! rule and writes SOAK.md and SOAK.csv, as `scripts/soak.sh` always did.
//!
//! Ctrl-C or SIGTERM stops the run cleanly: the producer drains, the
//! readers write their summaries, and the report is written from what was
//! sampled (the run is marked interrupted and fails). The children and the
//! Kafka broker run in process groups of their own, so a Ctrl-C at the
//! terminal reaches the soak only and it stops them in order: the producer
//! while both brokers still take its backlog, then the readers, then the
//! brokers.

use crate::procs::{Bins, Proc};
use crate::records::ReportFile;
use crate::scenario::Brokers;
use crate::ChaosError;
use clap::Args;
use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};
use tickbridge_broker::amqp::AmqpConfig;
use tickbridge_model::report::{ReaderSummary, RunReport};
use tickbridge_model::Shutdown;
use tickbridge_testkit::KafkaNodeOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The binaries a soak runs, all judged by the flatness rule.
pub const BINARIES: [&str; 4] = ["feed-sim", "producer", "worker", "consumer"];

/// Header of the samples file: the columns `soak_report.py report` reads.
pub const SAMPLES_HEADER: &str = "elapsed_s,process,pid,rss_kib,fds,threads,progress";

/// The producer's progress counter.
const PRODUCER_PROGRESS: &str = "tickbridge_producer_ticks_total";
/// A reader's progress counter.
const READER_PROGRESS: &str = "tickbridge_consumer_messages_handled_total";
/// The readers' `--dedup-window` of a full run.
const DEDUP_WINDOW: u64 = 1_000_000;
/// How long a child may take to become ready (metrics endpoint, address).
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// The producer's `--drain-timeout`, and how much longer its SIGTERM may
/// take.
const PRODUCER_DRAIN: Duration = Duration::from_secs(60);
/// How long a reader or the simulator may take to exit after SIGTERM.
const GRACE: Duration = Duration::from_secs(60);
/// How often a wait re-checks its condition.
const POLL: Duration = Duration::from_millis(200);

/// Everything that shapes one soak. Each flag has the environment variable
/// `scripts/soak.sh` always read as its fallback, so `SOAK_TICKS=200000
/// scripts/soak.sh` and `chaos soak --ticks 200000` are the same run.
#[derive(Debug, Clone, Args)]
pub struct SoakConfig {
    /// Ticks the producer publishes before it stops (at least one per
    /// symbol). Ten million is long enough for a leak of a few bytes per
    /// tick to show against the flatness bound; 200,000 is a smoke run.
    #[arg(long, env = "SOAK_TICKS", default_value_t = 10_000_000)]
    pub ticks: u64,

    /// Trades per second per symbol sent by `feed-sim`; 0 is full speed,
    /// which finds the pipeline's own pace instead of the feed's.
    #[arg(long, env = "SOAK_RATE", default_value_t = 0.0)]
    pub rate: f64,

    /// Seconds between samples. A few seconds gives hundreds of samples
    /// over a full run without the sampler's own reads showing up.
    #[arg(long, env = "SOAK_INTERVAL", default_value_t = 5.0)]
    pub interval: f64,

    /// The readers' `--dedup-window`: a cache meant to fill, so the
    /// report's warm-up for them lasts until they have handled this many
    /// messages. Default: 1,000,000, or a quarter of `--ticks` when that is
    /// less, so a short run's readers fill their cache and are judged after
    /// it (a window the run never fills leaves nothing to judge).
    #[arg(long, env = "SOAK_DEDUP_WINDOW")]
    pub dedup_window: Option<u64>,

    /// Stop publishing after this many seconds even if `--ticks` is not
    /// reached (the producer's `--max-seconds`); the report then judges
    /// the shorter run and says so.
    #[arg(long, env = "SOAK_MAX_SECONDS")]
    pub max_seconds: Option<u64>,

    /// After the producer stopped, how many seconds the readers get to
    /// handle what it published before they are stopped anyway.
    #[arg(long, env = "SOAK_DRAIN_SECONDS", default_value_t = 1800)]
    pub drain_seconds: u64,

    /// Markets `feed-sim` serves and the producer subscribes to; the ticks
    /// are split evenly between them.
    #[arg(
        long,
        env = "SOAK_SYMBOLS",
        value_delimiter = ',',
        default_value = "BTC-USDT,ETH-USDT,SOL-USDT"
    )]
    pub symbols: Vec<String>,

    /// The report (tables and verdict), for people.
    #[arg(long = "out", env = "SOAK_OUT", default_value = "SOAK.md")]
    pub out_md: PathBuf,

    /// Every sample, for plots and for comparing runs.
    #[arg(long = "csv", env = "SOAK_CSV", default_value = "SOAK.csv")]
    pub out_csv: PathBuf,

    /// Keep the run directory (logs, summaries, raw samples) of a passing
    /// run; a failing or interrupted run's is always kept.
    #[arg(long, env = "SOAK_KEEP", value_parser = clap::builder::BoolishValueParser::new())]
    pub keep: bool,

    /// `KAFKA_HEAP_OPTS` of the private Kafka broker: the shared stack's
    /// sizing, since a full run keeps ten million records.
    #[arg(long, env = "SOAK_KAFKA_HEAP_OPTS", default_value = "-Xms256m -Xmx1g")]
    pub kafka_heap_opts: String,

    /// Directory holding `feed-sim`, `producer`, `worker` and `consumer`.
    /// Default: the directory of this executable, so a release `chaos`
    /// runs release binaries (what the report's numbers are about).
    #[arg(long, env = "SOAK_BIN_DIR")]
    pub bin_dir: Option<PathBuf>,

    /// Parent of each run's directory (`<dir>/soak-<time>-<pid>/`).
    #[arg(long, env = "SOAK_RUN_DIR", default_value = "out")]
    pub run_dir: PathBuf,

    /// The flatness rule and the SOAK.md renderer. Default: the
    /// workspace's `scripts/soak_report.py`.
    #[arg(long, env = "SOAK_REPORT_SCRIPT")]
    pub report_script: Option<PathBuf>,
}

impl Default for SoakConfig {
    fn default() -> Self {
        Self {
            ticks: 10_000_000,
            rate: 0.0,
            interval: 5.0,
            dedup_window: None,
            max_seconds: None,
            drain_seconds: 1800,
            symbols: vec!["BTC-USDT".into(), "ETH-USDT".into(), "SOL-USDT".into()],
            out_md: "SOAK.md".into(),
            out_csv: "SOAK.csv".into(),
            keep: false,
            kafka_heap_opts: "-Xms256m -Xmx1g".into(),
            bin_dir: None,
            run_dir: "out".into(),
            report_script: None,
        }
    }
}

impl SoakConfig {
    /// Checks what clap cannot; the message names the flag and its
    /// environment variable.
    pub fn validate(&self) -> Result<(), String> {
        if self.symbols.is_empty() || self.symbols.iter().any(|s| s.trim().is_empty()) {
            return Err(
                "--symbols (SOAK_SYMBOLS) must name at least one market, none empty".into(),
            );
        }
        let n = self.symbols.len() as u64;
        if self.ticks < n {
            return Err(format!(
                "--ticks (SOAK_TICKS) must be at least {n} (one per symbol), got {}",
                self.ticks
            ));
        }
        if !(self.rate >= 0.0 && self.rate.is_finite()) {
            return Err(format!(
                "--rate (SOAK_RATE) must be 0 (full speed) or more, got {}",
                self.rate
            ));
        }
        if !(self.interval > 0.0 && self.interval <= 3600.0) {
            return Err(format!(
                "--interval (SOAK_INTERVAL) must be more than 0 and at most 3600 seconds, got {}",
                self.interval
            ));
        }
        if self.max_seconds == Some(0) {
            return Err("--max-seconds (SOAK_MAX_SECONDS) must be at least 1".into());
        }
        if self.drain_seconds == 0 {
            return Err("--drain-seconds (SOAK_DRAIN_SECONDS) must be at least 1".into());
        }
        if self.kafka_heap_opts.trim().is_empty() {
            return Err("--kafka-heap-opts (SOAK_KAFKA_HEAP_OPTS) is empty".into());
        }
        Ok(())
    }

    /// The readers' `--dedup-window`: the flag, or the default above.
    pub fn dedup_window(&self) -> u64 {
        self.dedup_window
            .unwrap_or_else(|| DEDUP_WINDOW.min(self.ticks / 4).max(1))
    }

    /// Each market's `feed-sim --max-count`: enough that the producer
    /// reaches `--ticks` exactly.
    pub fn per_symbol(&self) -> u64 {
        let n = (self.symbols.len() as u64).max(1);
        self.ticks.div_ceil(n)
    }

    /// The sampling interval (validated: positive and bounded).
    pub fn interval(&self) -> Duration {
        if self.interval.is_finite() {
            Duration::from_secs_f64(self.interval.clamp(0.001, 3600.0))
        } else {
            Duration::from_secs(5)
        }
    }

    fn report_script(&self) -> PathBuf {
        self.report_script.clone().unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/soak_report.py")
        })
    }
}

/// What a soak found.
#[derive(Debug)]
pub struct SoakOutcome {
    /// No problem here and the report's flatness verdict passed.
    pub ok: bool,
    /// Delivery and exit problems found by the soak itself (the report
    /// adds the flatness ones to SOAK.md).
    pub problems: Vec<String>,
    /// The run directory, if it was kept.
    pub kept: Option<PathBuf>,
}

/// One sample of one process: a row of the samples file.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Seconds since sampling began.
    pub elapsed_s: f64,
    /// Process name (`producer`, `rabbitmq`, ...).
    pub process: String,
    /// Its pid.
    pub pid: u32,
    /// Resident memory, KiB (`VmRSS`).
    pub rss_kib: u64,
    /// Open file descriptors (entries of `/proc/<pid>/fd`).
    pub fds: u64,
    /// Threads (`Threads`).
    pub threads: u64,
    /// Its progress counter, or the last one seen (0 for the brokers).
    pub progress: u64,
}

impl Sample {
    /// The CSV row, in [`SAMPLES_HEADER`]'s order.
    pub fn csv_row(&self) -> String {
        format!(
            "{:.1},{},{},{},{},{},{}",
            self.elapsed_s,
            self.process,
            self.pid,
            self.rss_kib,
            self.fds,
            self.threads,
            self.progress
        )
    }
}

/// `VmRSS` (KiB) and `Threads` from the text of `/proc/<pid>/status`.
/// `None` without `VmRSS`, as for a zombie that has not been reaped yet.
pub fn parse_status(text: &str) -> Option<(u64, u64)> {
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("Threads:")?))
}

/// Resident KiB, open fds and threads of `pid` now; `None` once it is gone
/// (or unreadable).
pub fn read_proc(pid: u32) -> Option<(u64, u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let (rss, threads) = parse_status(&status)?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some((rss, fds, threads))
}

/// The sum of every series of `metric` in a Prometheus text exposition, or
/// `None` when it has none (not registered yet).
pub fn metric_sum(text: &str, metric: &str) -> Option<u64> {
    let mut total = 0.0;
    let mut seen = false;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(metric) else {
            continue;
        };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        if let Some(v) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
            total += v;
            seen = true;
        }
    }
    seen.then_some(total as u64)
}

/// The body of an HTTP response with status 200.
pub fn http_body(response: &str) -> Option<&str> {
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.lines().next()?;
    let mut parts = status.split_whitespace();
    let proto = parts.next()?;
    (proto.starts_with("HTTP/1.") && parts.next()? == "200").then_some(body)
}

/// The address in `feed-sim`'s first stdout line
/// (`feed-sim listening on ADDR`), found in its log.
pub fn listen_addr(log: &str) -> Option<SocketAddr> {
    log.lines()
        .find_map(|l| l.strip_prefix("feed-sim listening on "))
        .and_then(|a| a.trim().parse().ok())
}

/// GET `/metrics` from a Prometheus endpoint (HTTP/1.0, so the body is
/// neither chunked nor kept alive). `None` when it does not answer
/// within 2 s.
async fn fetch_metrics(addr: SocketAddr) -> Option<String> {
    let get = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        let req = format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        let text = String::from_utf8_lossy(&buf);
        http_body(&text).map(str::to_string)
    };
    tokio::time::timeout(Duration::from_secs(2), get)
        .await
        .ok()
        .flatten()
}

/// How a process ended: its exit status, or why it did not end cleanly
/// (hung and killed, could not be waited for).
pub type Exit = Result<ExitStatus, String>;

/// A reader being drained.
struct Reader {
    proc: Option<Proc>,
    metrics: SocketAddr,
    exit: Option<Exit>,
}

/// What each process reported at the end, for [`delivery_problems`].
#[derive(Debug, Default, Clone)]
pub struct Delivery {
    /// Ticks asked for.
    pub ticks: u64,
    /// The producer was stopped before `ticks` (`--max-seconds`, or the
    /// soak was interrupted): judge what it published.
    pub stopped_early: bool,
    /// The run was interrupted by Ctrl-C or SIGTERM.
    pub interrupted: bool,
    /// How each binary ended: `Ok(status)`, or why it did not end cleanly.
    pub exits: Vec<(String, Exit)>,
    /// The producer's `--report`, read as the model crate's type.
    pub producer: ReportFile<RunReport>,
    /// The worker's `--summary-json`.
    pub worker: ReportFile<ReaderSummary>,
    /// The consumer's `--summary-json`.
    pub consumer: ReportFile<ReaderSummary>,
}

/// A missing or unreadable report, as a problem; `None` when it was read.
fn report_problem<T>(name: &str, file: &ReportFile<T>) -> Option<String> {
    match file {
        ReportFile::Read(_) => None,
        ReportFile::Missing => Some(format!("{name} missing")),
        ReportFile::Invalid(why) => Some(format!("{name} unreadable: {why}")),
    }
}

/// Everything that went wrong apart from memory: a process that did not
/// exit cleanly, a report or summary missing, ticks not published, left
/// unconfirmed, missing at a reader or seen twice.
pub fn delivery_problems(d: &Delivery) -> Vec<String> {
    let mut problems = Vec::new();
    if d.interrupted {
        problems.push("interrupted (Ctrl-C or SIGTERM) before the run finished".to_string());
    }
    for (name, exit) in &d.exits {
        match exit {
            Ok(st) if st.success() => {}
            Ok(st) => match st.code() {
                Some(c) => problems.push(format!("{name} exited with status {c}")),
                None => problems.push(format!("{name} was ended by a signal ({st})")),
            },
            Err(why) => problems.push(format!("{name}: {why}")),
        }
    }
    problems.extend(report_problem("producer report", &d.producer));
    problems.extend(report_problem("worker summary", &d.worker));
    problems.extend(report_problem("consumer summary", &d.consumer));
    let published = d.producer.parsed().map_or(0, |r| r.ticks);
    if let Some(r) = d.producer.parsed() {
        if published != d.ticks && !d.stopped_early {
            problems.push(format!(
                "producer published {published} ticks, expected {}",
                d.ticks
            ));
        }
        if r.unconfirmed > 0 {
            problems.push(format!("producer left {} unconfirmed", r.unconfirmed));
        }
    }
    for (name, file) in [("worker", &d.worker), ("consumer", &d.consumer)] {
        let Some(s) = file.parsed() else { continue };
        if s.ticks != published {
            problems.push(format!(
                "{name} handled {} ticks, the producer published {published}",
                s.ticks
            ));
        }
        if s.duplicates > 0 {
            problems.push(format!("{name} saw {} duplicates", s.duplicates));
        }
    }
    problems
}

/// One process the sampler watches.
#[derive(Debug, Clone)]
struct Watched {
    name: String,
    pid: u32,
    /// Metrics endpoint and progress counter, for the binaries.
    metrics: Option<(SocketAddr, &'static str)>,
}

/// Samples every watched process each `interval` into `out` until `stop`
/// fires. Returns the number of rows written.
async fn sample(
    watched: Vec<Watched>,
    interval: Duration,
    out: PathBuf,
    stop: Shutdown,
) -> Result<usize, ChaosError> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(&out)?);
    writeln!(file, "{SAMPLES_HEADER}")?;
    file.flush()?;
    let t0 = Instant::now();
    let mut last: Vec<u64> = vec![0; watched.len()];
    let mut rows = 0;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => break,
        }
        let elapsed_s = t0.elapsed().as_secs_f64();
        let mut line = Vec::new();
        for (w, last) in watched.iter().zip(last.iter_mut()) {
            let Some((rss_kib, fds, threads)) = read_proc(w.pid) else {
                continue;
            };
            if let Some((addr, metric)) = w.metrics {
                if let Some(n) = fetch_metrics(addr)
                    .await
                    .and_then(|t| metric_sum(&t, metric))
                {
                    *last = n;
                }
            }
            let s = Sample {
                elapsed_s,
                process: w.name.clone(),
                pid: w.pid,
                rss_kib,
                fds,
                threads,
                progress: *last,
            };
            writeln!(file, "{}", s.csv_row())?;
            rows += 1;
            if BINARIES.contains(&w.name.as_str()) {
                let n = if w.metrics.is_some() {
                    format!(" n={}", s.progress)
                } else {
                    String::new()
                };
                line.push(format!(
                    "{} {:.1}MiB/{}fd/{}thr{n}",
                    w.name,
                    rss_kib as f64 / 1024.0,
                    fds,
                    threads
                ));
            }
        }
        file.flush()?;
        if !line.is_empty() {
            println!("[soak sample {elapsed_s:6.0}s] {}", line.join("  "));
        }
    }
    file.flush()?;
    Ok(rows)
}

/// Progress lines, timed from the start of the soak.
struct Say(Instant);

impl Say {
    fn say(&self, msg: impl std::fmt::Display) {
        println!("[soak {:5.0}s] {msg}", self.0.elapsed().as_secs_f64());
    }
}

/// Polls `probe` until it gives a value, failing when `p` exits first,
/// after [`READY_TIMEOUT`], or when `shutdown` fires.
async fn wait_ready<T, Fut>(
    p: &mut Proc,
    what: &str,
    shutdown: &Shutdown,
    mut probe: impl FnMut() -> Fut,
) -> Result<T, ChaosError>
where
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Some(v) = probe().await {
            return Ok(v);
        }
        if let Some(st) = p.try_status() {
            return Err(ChaosError::Setup(format!(
                "{} exited with {st} before {what} (log {})",
                p.name,
                p.log.display()
            )));
        }
        if Instant::now() >= deadline {
            return Err(ChaosError::Setup(format!(
                "{} did not get to {what} within {READY_TIMEOUT:?} (log {})",
                p.name,
                p.log.display()
            )));
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = shutdown.cancelled() => {
                return Err(ChaosError::Interrupted(format!("while waiting for {} ({what})", p.name)));
            }
        }
    }
}

/// Where a process's progress counter is read: its metrics address and the
/// counter's name.
type Progress = (SocketAddr, &'static str);

/// Owned arguments from string slices.
fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// A child's metrics address on a spare port.
fn metrics_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], tickbridge_testkit::free_port()))
}

/// Runs one soak: private brokers, the pipeline, the sampler, the
/// delivery check and the report. `Err` means it could not be carried out
/// (setup failed, interrupted before anything ran); a leak or a missing
/// tick is a [`SoakOutcome`] with `ok == false`.
pub async fn soak(cfg: SoakConfig, shutdown: Shutdown) -> Result<SoakOutcome, ChaosError> {
    cfg.validate().map_err(ChaosError::Config)?;
    let bin_dir = match &cfg.bin_dir {
        Some(d) => d.clone(),
        None => Bins::beside_current_exe()?,
    };
    let bins = Bins::with(&bin_dir, &BINARIES)?;
    let script = cfg.report_script();
    if !script.is_file() {
        return Err(ChaosError::Setup(format!(
            "the report script {} is missing (point --report-script at scripts/soak_report.py)",
            script.display()
        )));
    }
    let run_id = format!(
        "soak-{}-{}",
        chrono::Utc::now().format("%H%M%S"),
        std::process::id()
    );
    let dir = cfg.run_dir.join(&run_id);
    std::fs::create_dir_all(&dir)?;
    let say = Say(Instant::now());
    say.say(format_args!(
        "run {run_id}: {} ticks ({} per symbol), feed rate {} (0 = full speed), sample every {}s; run directory {}",
        cfg.ticks,
        cfg.per_symbol(),
        cfg.rate,
        cfg.interval,
        dir.display()
    ));

    let brokers = Brokers::start_with(KafkaNodeOptions {
        heap_opts: Some(cfg.kafka_heap_opts.clone()),
        own_process_group: true,
    })
    .await?;
    say.say(format_args!(
        "private RabbitMQ on {} (pid {}), private Apache Kafka on {} (pid {})",
        tickbridge_model::telemetry::mask_url(&brokers.amqp_url()),
        brokers
            .rabbit_pid()
            .map_or_else(|| "?".to_string(), |p| p.to_string()),
        brokers.kafka_brokers(),
        brokers
            .kafka_pid()
            .map_or_else(|| "?".to_string(), |p| p.to_string()),
    ));
    let result = if shutdown.is_shutdown() {
        Err(ChaosError::Interrupted("while the brokers started".into()))
    } else {
        let mut run = Run {
            cfg: &cfg,
            bins,
            dir: dir.clone(),
            run_id,
            brokers: &brokers,
            shutdown,
            say: &say,
        };
        run.go(&script).await
    };
    // Stopping the nodes blocks (rabbitmqctl stop, the JVM's exit).
    let _ = tokio::task::spawn_blocking(move || drop(brokers)).await;
    let outcome = result?;
    if outcome.ok && !cfg.keep {
        let _ = std::fs::remove_dir_all(&dir);
        Ok(outcome)
    } else {
        Ok(SoakOutcome {
            kept: Some(dir),
            ..outcome
        })
    }
}

struct Run<'a> {
    cfg: &'a SoakConfig,
    bins: Bins,
    dir: PathBuf,
    run_id: String,
    brokers: &'a Brokers,
    shutdown: Shutdown,
    say: &'a Say,
}

impl Run<'_> {
    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// The exchange and work queue, declared before any process starts, so
    /// nothing the producer publishes is unroutable however fast it is.
    async fn declare_topology(&self) -> Result<(), ChaosError> {
        let amqp = AmqpConfig::local(&self.brokers.amqp_url(), &self.run_id);
        let conn = amqp.connect("chaos-soak-setup").await?;
        let ch = conn.create_channel().await?;
        amqp.topology().declare(&ch).await?;
        let _ = conn.close(200, "setup done".into()).await;
        Ok(())
    }

    fn reader_common(&self, metrics: SocketAddr, summary: &str) -> Vec<String> {
        [
            "--quiet",
            "--stats-interval",
            "10s",
            "--exit-when-idle",
            "30s",
            "--dedup-window",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([
            self.cfg.dedup_window().to_string(),
            "--metrics-addr".into(),
            metrics.to_string(),
            "--summary-json".into(),
            self.path(summary),
        ])
        .collect()
    }

    async fn wait_metrics(&self, p: &mut Proc, addr: SocketAddr) -> Result<(), ChaosError> {
        wait_ready(
            p,
            "its metrics endpoint answered",
            &self.shutdown,
            || async move { fetch_metrics(addr).await.map(|_| ()) },
        )
        .await
    }

    /// Starts the worker and the Kafka consumer and waits until both serve
    /// their metrics. Readers come first: the queue is declared and the
    /// consumer reads the topic from its start, so they lose nothing to a
    /// late start, but a reader that cannot start fails the run before
    /// anything publishes.
    async fn start_readers(&mut self) -> Result<(Proc, SocketAddr, Proc, SocketAddr), ChaosError> {
        let amqp_url = self.brokers.amqp_url();
        let kafka = self.brokers.kafka_brokers();
        let (w_metrics, c_metrics) = (metrics_addr(), metrics_addr());
        let mut args = strings(&[
            "--amqp-url",
            &amqp_url,
            "--amqp-prefix",
            &self.run_id,
            "--declare-topology",
            "--name",
            "soak-worker",
        ]);
        args.extend(self.reader_common(w_metrics, "worker.json"));
        let mut worker = Proc::spawn_own_group(&self.bins, "worker", "worker", &args, &self.dir)?;
        let group = format!("{}-group", self.run_id);
        let mut args = strings(&[
            "--kafka-brokers",
            &kafka,
            "--kafka-topic",
            &self.run_id,
            "--group",
            &group,
            "--name",
            "soak-consumer",
            "--topic-wait",
            "120s",
        ]);
        args.extend(self.reader_common(c_metrics, "consumer.json"));
        let mut consumer =
            Proc::spawn_own_group(&self.bins, "consumer", "consumer", &args, &self.dir)?;
        self.wait_metrics(&mut worker, w_metrics).await?;
        self.wait_metrics(&mut consumer, c_metrics).await?;
        Ok((worker, w_metrics, consumer, c_metrics))
    }

    /// Starts feed-sim, waits for its address, then the producer into both
    /// brokers, and waits until the producer serves its metrics (it is
    /// sampled from then, not while it is still being exec'd).
    async fn start_feed_and_producer(&mut self) -> Result<(Proc, Proc, SocketAddr), ChaosError> {
        let amqp_url = self.brokers.amqp_url();
        let kafka = self.brokers.kafka_brokers();
        let symbols = self.cfg.symbols.join(",");
        let rate = self.cfg.rate.to_string();
        let per_symbol = self.cfg.per_symbol().to_string();
        let args = strings(&[
            "--listen",
            "127.0.0.1:0",
            "--rate",
            &rate,
            "--symbols",
            &symbols,
            "--max-count",
            &per_symbol,
        ]);
        let mut sim = Proc::spawn_own_group(&self.bins, "feed-sim", "feed-sim", &args, &self.dir)?;
        let sim_log = sim.log.clone();
        let sim_addr = wait_ready(&mut sim, "it printed its address", &self.shutdown, || {
            let text = std::fs::read_to_string(&sim_log).unwrap_or_default();
            std::future::ready(listen_addr(&text))
        })
        .await?;
        self.say
            .say(format_args!("feed-sim listening on {sim_addr}"));

        let p_metrics = metrics_addr();
        let url = format!("ws://{sim_addr}");
        let ticks = self.cfg.ticks.to_string();
        let drain = format!("{}s", PRODUCER_DRAIN.as_secs());
        let metrics = p_metrics.to_string();
        let report = self.path("producer.json");
        let mut args = strings(&[
            "--exchange",
            "binance",
            "--symbols",
            &symbols,
            "--sink",
            "rabbitmq,kafka",
            "--amqp-url",
            &amqp_url,
            "--amqp-prefix",
            &self.run_id,
            "--kafka-brokers",
            &kafka,
            "--kafka-topic",
            &self.run_id,
            "--stats-interval",
            "5s",
            "--url",
            &url,
            "--max-events",
            &ticks,
            "--drain-timeout",
            &drain,
            "--metrics-addr",
            &metrics,
            "--report",
            &report,
        ]);
        if let Some(s) = self.cfg.max_seconds {
            args.extend(["--max-seconds".into(), s.to_string()]);
        }
        let mut producer =
            Proc::spawn_own_group(&self.bins, "producer", "producer", &args, &self.dir)?;
        self.wait_metrics(&mut producer, p_metrics).await?;
        Ok((sim, producer, p_metrics))
    }

    /// The sampler task over the processes that have a pid, writing
    /// `samples` every interval until `stop` fires.
    fn start_sampler(
        &self,
        watched: &[(&str, Option<u32>, Option<Progress>)],
        samples: &Path,
        stop: &Shutdown,
    ) -> tokio::task::JoinHandle<Result<usize, ChaosError>> {
        let watched = watched
            .iter()
            .filter_map(|&(name, pid, metrics)| {
                pid.map(|pid| Watched {
                    name: name.into(),
                    pid,
                    metrics,
                })
            })
            .collect();
        tokio::spawn(sample(
            watched,
            self.cfg.interval(),
            samples.to_path_buf(),
            stop.clone(),
        ))
    }

    async fn go(&mut self, script: &Path) -> Result<SoakOutcome, ChaosError> {
        self.declare_topology().await?;
        let (worker, w_metrics, consumer, c_metrics) = self.start_readers().await?;
        let (sim, mut producer, p_metrics) = self.start_feed_and_producer().await?;
        self.say.say(format_args!(
            "pids: feed-sim {}, producer {}, worker {}, consumer {}",
            pid_text(&sim),
            pid_text(&producer),
            pid_text(&worker),
            pid_text(&consumer)
        ));
        let watched = [
            ("feed-sim", sim.pid(), None),
            (
                "producer",
                producer.pid(),
                Some((p_metrics, PRODUCER_PROGRESS)),
            ),
            ("worker", worker.pid(), Some((w_metrics, READER_PROGRESS))),
            (
                "consumer",
                consumer.pid(),
                Some((c_metrics, READER_PROGRESS)),
            ),
            ("rabbitmq", self.brokers.rabbit_pid(), None),
            ("kafka", self.brokers.kafka_pid(), None),
        ];
        let samples = self.dir.join("samples.csv");
        // Its own signal, fired at the end: an interrupted run is still
        // sampled while it stops.
        let stop_sampling = Shutdown::new();
        let sampler = self.start_sampler(&watched, &samples, &stop_sampling);

        // The producer stops by itself at --ticks (or --max-seconds).
        let mut interrupted = false;
        let producer_exit = tokio::select! {
            st = producer.exited() => st.map_err(|e| e.to_string()),
            _ = self.shutdown.cancelled() => {
                interrupted = true;
                self.say.say("interrupted: stopping the producer (it drains)");
                producer.terminate(PRODUCER_DRAIN + GRACE).await.map_err(|e| e.to_string())
            }
        };
        let producer_report = ReportFile::<RunReport>::read(&self.dir.join("producer.json"));
        let published = producer_report.parsed().map(|r| r.ticks);
        self.say.say(format_args!(
            "producer exited ({}), {} ticks published; stopping feed-sim, waiting for the readers",
            exit_text(&producer_exit),
            published.map_or_else(|| "?".into(), |n| n.to_string())
        ));
        let _ = sim.terminate(GRACE).await;

        let [worker_exit, consumer_exit] = self
            .drain_readers(
                [(worker, w_metrics), (consumer, c_metrics)],
                published,
                &mut interrupted,
            )
            .await;
        stop_sampling.trigger();
        let rows = match sampler.await {
            Ok(r) => r?,
            Err(e) => return Err(ChaosError::Setup(format!("the sampler failed: {e}"))),
        };
        self.say.say(format_args!(
            "{rows} samples in {}; worker {}, consumer {}",
            samples.display(),
            exit_text(&worker_exit),
            exit_text(&consumer_exit)
        ));

        let stopped_early = self.cfg.max_seconds.is_some() || interrupted;
        let delivery = Delivery {
            ticks: self.cfg.ticks,
            stopped_early,
            interrupted,
            exits: vec![
                ("producer".into(), producer_exit),
                ("worker".into(), worker_exit),
                ("consumer".into(), consumer_exit),
            ],
            producer: producer_report,
            worker: ReportFile::read(&self.dir.join("worker.json")),
            consumer: ReportFile::read(&self.dir.join("consumer.json")),
        };
        let problems = delivery_problems(&delivery);
        let report_ok = self
            .report(script, &samples, &problems, stopped_early)
            .await?;
        Ok(SoakOutcome {
            ok: report_ok && problems.is_empty(),
            problems,
            kept: None,
        })
    }

    /// Waits until each reader has handled `published` messages (then
    /// SIGTERM: it commits and writes its summary), exits by itself
    /// (`--exit-when-idle`), or `--drain-seconds` pass. Polls its metrics
    /// endpoint; a shutdown stops both at once.
    async fn drain_readers(
        &self,
        readers: [(Proc, SocketAddr); 2],
        published: Option<u64>,
        interrupted: &mut bool,
    ) -> [Exit; 2] {
        let deadline = Instant::now() + Duration::from_secs(self.cfg.drain_seconds);
        let mut slots = readers.map(|(p, metrics)| Reader {
            proc: Some(p),
            metrics,
            exit: None,
        });
        loop {
            let stop_all = *interrupted || Instant::now() >= deadline;
            for r in slots.iter_mut() {
                let Some(p) = r.proc.as_mut() else { continue };
                if let Some(st) = p.try_status() {
                    r.exit = Some(Ok(st));
                    r.proc = None;
                    continue;
                }
                let handled = fetch_metrics(r.metrics)
                    .await
                    .and_then(|t| metric_sum(&t, READER_PROGRESS));
                let caught_up = matches!((handled, published), (Some(h), Some(n)) if h >= n);
                if !(caught_up || stop_all) {
                    continue;
                }
                if let Some(p) = r.proc.take() {
                    if caught_up {
                        self.say.say(format_args!(
                            "{} handled {} messages: stopping it",
                            p.name,
                            handled.unwrap_or(0)
                        ));
                    } else if !*interrupted {
                        self.say.say(format_args!(
                            "{} still busy after {} s: stopping it",
                            p.name, self.cfg.drain_seconds
                        ));
                    }
                    r.exit = Some(p.terminate(GRACE).await.map_err(|e| e.to_string()));
                }
            }
            if slots.iter().all(|r| r.proc.is_none()) {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = self.shutdown.cancelled(), if !*interrupted => {
                    *interrupted = true;
                    self.say.say("interrupted: stopping the readers (they write their summaries)");
                }
            }
        }
        slots.map(|r| {
            r.exit
                .unwrap_or_else(|| Err("no exit status recorded".to_string()))
        })
    }

    /// `soak_report.py report`: the flatness rule, SOAK.md and SOAK.csv,
    /// with this run's delivery problems listed. True when it passed.
    async fn report(
        &self,
        script: &Path,
        samples: &Path,
        problems: &[String],
        stopped_early: bool,
    ) -> Result<bool, ChaosError> {
        let build = if self
            .bins
            .path("producer")
            .parent()
            .and_then(Path::file_name)
            .is_some_and(|n| n == "debug")
        {
            "debug"
        } else {
            "release"
        };
        let mut cmd = tokio::process::Command::new("python3");
        cmd.arg(script)
            .arg("report")
            .arg("--samples")
            .arg(samples)
            .args(["--ticks", &self.cfg.ticks.to_string()])
            .args(["--rate", &self.cfg.rate.to_string()])
            .args(["--interval", &self.cfg.interval.to_string()])
            .args(["--producer-report", &self.path("producer.json")])
            .args(["--worker", &self.path("worker.json")])
            .args(["--consumer", &self.path("consumer.json")])
            .args(["--dedup-window", &self.cfg.dedup_window().to_string()])
            .args(["--build", build])
            .arg("--md")
            .arg(&self.cfg.out_md)
            .arg("--csv")
            .arg(&self.cfg.out_csv);
        for p in problems {
            cmd.args(["--problem", p]);
        }
        if stopped_early {
            cmd.arg("--stopped-early");
        }
        let st = cmd.status().await.map_err(|e| {
            ChaosError::Setup(format!("cannot run python3 {}: {e}", script.display()))
        })?;
        match st.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(ChaosError::Setup(format!(
                "{} report failed ({st}); the samples are in {}",
                script.display(),
                samples.display()
            ))),
        }
    }
}

fn pid_text(p: &Proc) -> String {
    p.pid()
        .map_or_else(|| "(exited)".to_string(), |p| p.to_string())
}

fn exit_text(r: &Exit) -> String {
    match r {
        Ok(st) => st.to_string(),
        Err(e) => e.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::os::unix::process::ExitStatusExt;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        soak: SoakConfig,
    }

    fn parse(args: &[&str]) -> Result<SoakConfig, clap::Error> {
        Cli::try_parse_from(std::iter::once("soak").chain(args.iter().copied())).map(|c| c.soak)
    }

    const STATUS: &str = "Name:\tproducer\nUmask:\t0022\nState:\tS (sleeping)\n\
        VmPeak:\t  120000 kB\nVmRSS:\t   57984 kB\nRssAnon:\t   40000 kB\n\
        Threads:\t9\nSigQ:\t0/31503\n";

    #[test]
    fn status_gives_rss_and_threads() {
        assert_eq!(parse_status(STATUS), Some((57984, 9)));
        // A zombie has no VmRSS: not a sample.
        let zombie = "Name:\tworker\nState:\tZ (zombie)\nThreads:\t1\n";
        assert_eq!(parse_status(zombie), None);
        // VmRSS must not be confused with VmRSSx or read from another line.
        assert_eq!(parse_status("VmHWM:\t 9 kB\nThreads:\t2\n"), None);
        assert_eq!(parse_status("VmRSS:\t x kB\nThreads:\t2\n"), None);
    }

    /// This process is alive: its own /proc entry reads.
    #[test]
    fn reads_own_proc() {
        let (rss, fds, threads) = read_proc(std::process::id()).expect("own /proc entry");
        assert!(rss > 0 && fds > 0 && threads > 0, "{rss} {fds} {threads}");
        assert_eq!(read_proc(u32::MAX), None);
    }

    #[test]
    fn csv_row_matches_the_header() {
        let s = Sample {
            elapsed_s: 12.345,
            process: "consumer".into(),
            pid: 4242,
            rss_kib: 174_000,
            fds: 17,
            threads: 6,
            progress: 1_000_000,
        };
        assert_eq!(s.csv_row(), "12.3,consumer,4242,174000,17,6,1000000");
        assert_eq!(
            s.csv_row().split(',').count(),
            SAMPLES_HEADER.split(',').count()
        );
    }

    #[test]
    fn metric_sums_every_series_and_only_that_metric() {
        let text = "# HELP tickbridge_consumer_messages_handled_total handled\n\
            # TYPE tickbridge_consumer_messages_handled_total counter\n\
            tickbridge_consumer_messages_handled_total{source=\"binance\",symbol=\"BTC-USDT\"} 100\n\
            tickbridge_consumer_messages_handled_total{source=\"binance\",symbol=\"ETH-USDT\"} 50\n\
            tickbridge_consumer_messages_handled_total_extra 7\n\
            tickbridge_producer_ticks_total 3e2\n";
        assert_eq!(metric_sum(text, READER_PROGRESS), Some(150));
        assert_eq!(metric_sum(text, PRODUCER_PROGRESS), Some(300));
        assert_eq!(metric_sum(text, "tickbridge_missing_total"), None);
    }

    #[test]
    fn http_body_needs_a_200() {
        let ok = "HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\na 1\n";
        assert_eq!(http_body(ok), Some("a 1\n"));
        assert_eq!(http_body("HTTP/1.1 404 Not Found\r\n\r\nnope"), None);
        assert_eq!(http_body("HTTP/1.0 200 OK\r\nno end of head"), None);
    }

    #[test]
    fn finds_feed_sim_address() {
        let log = "2026-01-01T00:00:00Z INFO starting\nfeed-sim listening on 127.0.0.1:40123\n";
        assert_eq!(
            listen_addr(log),
            Some(SocketAddr::from(([127, 0, 0, 1], 40123)))
        );
        assert_eq!(listen_addr("feed-sim starting\n"), None);
    }

    #[test]
    fn defaults_match_the_env_knobs_of_soak_sh() {
        // The defaults are what an empty environment gives.
        let set: Vec<String> = std::env::vars()
            .map(|(k, _)| k)
            .filter(|k| k.starts_with("SOAK_"))
            .collect();
        assert!(set.is_empty(), "unset {set:?} to run this test");
        let c = parse(&[]).expect("defaults parse");
        assert_eq!(c.ticks, 10_000_000);
        assert_eq!(c.interval(), Duration::from_secs(5));
        assert_eq!(c.dedup_window(), 1_000_000);
        assert_eq!(c.kafka_heap_opts, "-Xms256m -Xmx1g");
        assert_eq!(c.per_symbol(), 3_333_334);
        assert!(c.validate().is_ok());
        let d = SoakConfig::default();
        assert_eq!(
            (d.ticks, d.interval, d.drain_seconds, d.symbols.len()),
            (c.ticks, c.interval, c.drain_seconds, c.symbols.len())
        );
    }

    #[test]
    fn validation_names_the_bad_flag() {
        let cases: [(&[&str], &str); 7] = [
            (&["--ticks", "2"], "--ticks (SOAK_TICKS) must be at least 3"),
            (&["--rate=-1"], "--rate (SOAK_RATE)"),
            (&["--rate", "inf"], "--rate (SOAK_RATE)"),
            (&["--interval", "0"], "--interval (SOAK_INTERVAL)"),
            (&["--max-seconds", "0"], "--max-seconds (SOAK_MAX_SECONDS)"),
            (&["--drain-seconds", "0"], "--drain-seconds"),
            (&["--symbols", "BTC-USDT,,ETH-USDT"], "--symbols"),
        ];
        for (args, want) in cases {
            let c = parse(args).expect("clap accepts it");
            let err = c.validate().expect_err(want);
            assert!(err.starts_with(want), "{args:?}: {err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
        // One symbol makes one tick enough.
        let c = parse(&["--ticks", "1", "--symbols", "BTC-USDT"]).expect("parses");
        assert!(c.validate().is_ok());
        assert_eq!(c.per_symbol(), 1);
        // A short run's readers get a window they fill; a given one stays.
        let c = parse(&["--ticks", "200000"]).expect("parses");
        assert_eq!(c.dedup_window(), 50_000);
        let c = parse(&["--ticks", "200000", "--dedup-window", "7"]).expect("parses");
        assert_eq!(c.dedup_window(), 7);
        // Not a number: clap refuses it.
        assert!(parse(&["--ticks", "lots"]).is_err());
    }

    fn done(code: i32) -> Exit {
        Ok(ExitStatus::from_raw(code << 8))
    }

    /// The documented example report, with the counts a case needs.
    fn producer(ticks: u64, unconfirmed: u64) -> ReportFile<RunReport> {
        let example = include_str!("../../schemas/examples/reports/producer-report.json");
        let r: RunReport = serde_json::from_str(example).expect("the example parses");
        ReportFile::Read(RunReport {
            ticks,
            unconfirmed,
            ..r
        })
    }

    /// The documented example summary, with the counts a case needs.
    fn reader(ticks: u64, duplicates: u64) -> ReportFile<ReaderSummary> {
        let example = include_str!("../../schemas/examples/reports/reader-summary.json");
        let s: ReaderSummary = serde_json::from_str(example).expect("the example parses");
        ReportFile::Read(ReaderSummary {
            ticks,
            duplicates,
            ..s
        })
    }

    fn good() -> Delivery {
        Delivery {
            ticks: 200_000,
            stopped_early: false,
            interrupted: false,
            exits: vec![
                ("producer".into(), done(0)),
                ("worker".into(), done(0)),
                ("consumer".into(), done(0)),
            ],
            producer: producer(200_000, 0),
            worker: reader(200_000, 0),
            consumer: reader(200_000, 0),
        }
    }

    #[test]
    fn a_complete_run_has_no_problems() {
        assert_eq!(delivery_problems(&good()), Vec::<String>::new());
    }

    #[test]
    fn delivery_problems_are_named() {
        let mut d = good();
        d.exits[1].1 = done(1);
        d.exits[2].1 = Ok(ExitStatus::from_raw(9));
        d.consumer = reader(199_999, 2);
        let p = delivery_problems(&d);
        assert_eq!(
            p,
            [
                "worker exited with status 1",
                "consumer was ended by a signal (signal: 9 (SIGKILL))",
                "consumer handled 199999 ticks, the producer published 200000",
                "consumer saw 2 duplicates",
            ]
        );

        let mut d = good();
        d.producer = producer(150_000, 3);
        d.worker = ReportFile::Missing;
        let p = delivery_problems(&d);
        assert!(p.contains(&"worker summary missing".to_string()), "{p:?}");
        assert!(p.contains(&"producer published 150000 ticks, expected 200000".to_string()));
        assert!(p.contains(&"producer left 3 unconfirmed".to_string()));
        assert!(
            p.contains(&"consumer handled 200000 ticks, the producer published 150000".to_string())
        );

        // Stopped early: fewer ticks are fine when the readers got them all.
        let mut d = good();
        d.stopped_early = true;
        d.producer = producer(150_000, 0);
        d.worker = reader(150_000, 0);
        d.consumer = reader(150_000, 0);
        assert_eq!(delivery_problems(&d), Vec::<String>::new());
        d.interrupted = true;
        assert_eq!(delivery_problems(&d).len(), 1);

        // A summary that does not parse is a problem of its own.
        let mut d = good();
        d.consumer = ReportFile::Invalid("consumer.json: missing field `ticks`".into());
        assert_eq!(
            delivery_problems(&d),
            ["consumer summary unreadable: consumer.json: missing field `ticks`"]
        );
    }
}
