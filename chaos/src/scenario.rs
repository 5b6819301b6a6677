//! One scenario, start to finish:
//!
//! ```text
//! feed-sim (in process) ─▶ fault proxy ─ws─▶ producer ─┬─▶ RabbitMQ ─┬─▶ <run>.work ─▶ worker-1, worker-2
//!                                                      │            └─▶ <run>.bridge ─▶ bridge ─▶ Kafka <run>-bridged
//!                                                      └─▶ Kafka <run> ─▶ group (2 members); replay from 0 at the end
//! ```
//!
//! The brokers are the scenario's own ([`Brokers`]: a RabbitMQ node and a
//! single-node Apache Kafka, each on spare ports). The pipeline warms up, the seeded
//! schedule injects every fault once, the producer is stopped, the readers
//! and the bridge are given time to catch up and are stopped, the topic and
//! the bridge's topic are replayed from offset 0, the DLQ is read, and
//! everything is reconciled ([`crate::reconcile`]).

use crate::config::ChaosConfig;
use crate::faults::{schedule, FaultKind, Planned};
use crate::inject::{self, Injected};
use crate::procs::{Bins, Proc};
use crate::proxy::FaultProxy;
use crate::reconcile::{reconcile, DupBounds, Evidence, FaultRecord, Outcome, ProducerRun};
use crate::records::{read_producer_dir, Received, ReportFile};
use crate::ChaosError;
use chrono::Utc;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tickbridge_broker::amqp::AmqpConfig;
use tickbridge_broker::kafka::{groups, KafkaConfig};
use tickbridge_feed_sim::{SimConfig, SimHandle};
use tickbridge_model::report::ReaderSummary;
use tickbridge_testkit::{KafkaNode, KafkaNodeOptions, RabbitNode};

/// Worker `--prefetch`.
const WORKER_PREFETCH: u64 = 50;
/// Bridge `--prefetch`.
const BRIDGE_PREFETCH: u64 = 200;
/// Producer `--confirm-window`.
const CONFIRM_WINDOW: u64 = 500;
/// Producer `--kafka-in-flight`.
const KAFKA_IN_FLIGHT: u64 = 1000;
/// Consumer `--commit-interval`.
const COMMIT_INTERVAL: Duration = Duration::from_secs(1);
/// Consumer `--session-timeout`.
const SESSION_TIMEOUT: Duration = Duration::from_secs(6);
/// How long a clean exit may take after SIGTERM.
const GRACE: Duration = Duration::from_secs(40);
/// librdkafka reconnects within a second of a broker restart, instead of
/// backing off up to its 10 s default.
const KAFKA_RECONNECT: &str = "reconnect.backoff.max.ms=1000";

/// The scenario's own brokers.
pub struct Brokers {
    rabbit: Arc<RabbitNode>,
    kafka_node: Arc<Mutex<KafkaNode>>,
    kafka: String,
}

impl Brokers {
    /// Starts a RabbitMQ node and an Apache Kafka node (KRaft, its own log
    /// directory) on spare ports.
    pub async fn start() -> Result<Self, ChaosError> {
        Self::start_with(KafkaNodeOptions::default()).await
    }

    /// Like [`Brokers::start`], with the Kafka node started as `kafka`
    /// says: the soak sizes its heap like the shared stack's broker and
    /// keeps it out of the terminal's Ctrl-C. (The RabbitMQ node detaches
    /// by itself.)
    pub async fn start_with(kafka: KafkaNodeOptions) -> Result<Self, ChaosError> {
        let (rabbit, node) = tokio::task::spawn_blocking(move || {
            let rabbit = RabbitNode::start().map_err(ChaosError::Setup)?;
            let node = KafkaNode::start_with(kafka).map_err(ChaosError::Setup)?;
            Ok::<_, ChaosError>((rabbit, node))
        })
        .await
        .map_err(|e| ChaosError::Setup(e.to_string()))??;
        let kafka = node.brokers();
        tracing::info!(amqp = %rabbit.url(), %kafka, "private brokers up");
        Ok(Self {
            rabbit: Arc::new(rabbit),
            kafka_node: Arc::new(Mutex::new(node)),
            kafka,
        })
    }

    /// AMQP URL of the node.
    pub fn amqp_url(&self) -> String {
        self.rabbit.url()
    }

    /// Kafka bootstrap address.
    pub fn kafka_brokers(&self) -> String {
        self.kafka.clone()
    }

    /// Process id of the RabbitMQ node (the Erlang VM), when known.
    pub fn rabbit_pid(&self) -> Option<u32> {
        self.rabbit.pid()
    }

    /// Process id of the Kafka broker's JVM, while it runs.
    pub fn kafka_pid(&self) -> Option<u32> {
        match self.kafka_node.lock() {
            Ok(k) => k.pid(),
            Err(p) => p.into_inner().pid(),
        }
    }

    async fn restart_rabbit(&self) -> Result<(), ChaosError> {
        let r = self.rabbit.clone();
        tokio::task::spawn_blocking(move || r.restart())
            .await
            .map_err(|e| ChaosError::Broker(e.to_string()))?
            .map_err(ChaosError::Broker)
    }

    async fn restart_kafka(&self) -> Result<(), ChaosError> {
        let t = self.kafka_node.clone();
        tokio::task::spawn_blocking(move || match t.lock() {
            Ok(mut t) => t.restart(),
            Err(p) => p.into_inner().restart(),
        })
        .await
        .map_err(|e| ChaosError::Broker(e.to_string()))?
        .map_err(ChaosError::Broker)
    }

    async fn queue_depth(&self, queue: &str) -> Option<u64> {
        let r = self.rabbit.clone();
        let q = queue.to_string();
        tokio::task::spawn_blocking(move || r.queue_depth(&q))
            .await
            .ok()
            .flatten()
    }
}

struct Scenario<'a> {
    cfg: ChaosConfig,
    seed: u64,
    brokers: &'a Brokers,
    bins: Bins,
    dir: PathBuf,
    amqp: AmqpConfig,
    kafka: KafkaConfig,
    topic: String,
    bridged_topic: String,
    bridge_queue: String,
    group: String,
    proxy: FaultProxy,
    sim: Option<SimHandle>,
    producer: Option<Proc>,
    producer_runs: Vec<ProducerRun>,
    workers: [Option<Proc>; 2],
    worker_gen: [usize; 2],
    members: [Option<Proc>; 2],
    member_gen: [usize; 2],
    bridge: Option<Proc>,
    bridge_gen: usize,
    started: Instant,
    faults: Vec<FaultRecord>,
    injected_queue: Vec<Injected>,
    injected_topic: Vec<Injected>,
    injected_topic_at: Option<chrono::DateTime<Utc>>,
    unclean: Vec<(String, String)>,
    notes: Vec<String>,
}

/// Runs one scenario on `brokers` and reconciles it. `Err` means the
/// scenario could not be carried out (setup failed, a process hung); an
/// unexplained difference is an [`Outcome`] with `ok == false`.
pub async fn run_on(cfg: ChaosConfig, brokers: &Brokers) -> Result<Outcome, ChaosError> {
    cfg.validate().map_err(ChaosError::Config)?;
    let seed = cfg.seed.unwrap_or_else(rand::random);
    let bin_dir = match &cfg.bin_dir {
        Some(d) => d.clone(),
        None => Bins::beside_current_exe()?,
    };
    let bins = Bins::in_dir(&bin_dir)?;
    let run_id = format!(
        "chaos-{seed}-{}",
        tickbridge_testkit::rand_name("r").trim_start_matches("r-")
    );
    let out = cfg
        .out_dir
        .clone()
        .unwrap_or_else(|| bin_dir.join("chaos-runs"));
    let dir = out.join(&run_id);
    std::fs::create_dir_all(&dir)?;
    tracing::info!(seed, dir = %dir.display(), "chaos scenario starting");
    println!(
        "chaos: seed {seed} (replay with CHAOS_SEED={seed}); run directory {}",
        dir.display()
    );

    let sim_cfg = SimConfig {
        seed,
        rate: cfg.rate,
        symbols: cfg.symbols.clone(),
        gap_every: Some(cfg.sim_gap_every),
        gap_size: 3,
        dup_every: Some(cfg.sim_dup_every),
        malformed_every: Some(cfg.sim_malformed_every),
        ping_interval: Duration::from_secs(1),
        sent_log: Some(dir.join("feed-sim.sent.jsonl")),
        ..SimConfig::default()
    };
    let (sim_addr, sim) = tickbridge_feed_sim::spawn(sim_cfg)
        .await
        .map_err(|e| ChaosError::Setup(format!("feed-sim: {e}")))?;
    let proxy = FaultProxy::start(sim_addr).await?;

    let amqp = AmqpConfig::local(&brokers.amqp_url(), &run_id);
    let topic = run_id.clone();
    let kafka = KafkaConfig::local(&brokers.kafka_brokers(), &topic, 3);
    let mut sc = Scenario {
        bridged_topic: format!("{topic}-bridged"),
        bridge_queue: format!("{run_id}.bridge"),
        group: format!("{run_id}-group"),
        topic,
        cfg,
        seed,
        brokers,
        bins,
        dir,
        amqp,
        kafka,
        proxy,
        sim: Some(sim),
        producer: None,
        producer_runs: Vec::new(),
        workers: [None, None],
        worker_gen: [0, 0],
        members: [None, None],
        member_gen: [0, 0],
        bridge: None,
        bridge_gen: 0,
        started: Instant::now(),
        faults: Vec::new(),
        injected_queue: Vec::new(),
        injected_topic: Vec::new(),
        injected_topic_at: None,
        unclean: Vec::new(),
        notes: Vec::new(),
    };
    let outcome = sc.run().await;
    // Whatever happened, nothing this scenario started outlives it.
    sc.kill_all().await;
    let outcome = outcome?;
    let report = sc.dir.join("reconciliation.txt");
    let _ = std::fs::write(&report, &outcome.table);
    if outcome.ok && !sc.cfg.keep {
        let _ = std::fs::remove_dir_all(&sc.dir);
    }
    Ok(outcome)
}

impl Scenario<'_> {
    async fn run(&mut self) -> Result<Outcome, ChaosError> {
        let plan = schedule(
            self.seed,
            &self.cfg.fault_kinds(),
            self.cfg.min_pause,
            self.cfg.max_pause,
        );
        let order: Vec<&str> = plan.iter().map(|p| p.kind.as_str()).collect();
        println!("chaos: fault schedule {}", order.join(" -> "));

        inject::declare_rabbit(&self.amqp, &self.bridge_queue).await?;
        self.kafka.ping(Duration::from_secs(20)).await?;
        self.kafka.ensure_topic(&self.topic, 3).await?;
        self.kafka.ensure_topic(&self.bridged_topic, 3).await?;

        for i in 0..2 {
            self.start_worker(i)?;
            self.start_member(i)?;
        }
        self.start_bridge()?;
        self.started = Instant::now();
        self.start_producer()?;
        tokio::time::sleep(self.cfg.warmup).await;

        for (n, p) in plan.iter().enumerate() {
            tokio::time::sleep(p.pause).await;
            self.check_alive();
            let at = Utc::now();
            let offset_secs = self.started.elapsed().as_secs_f64();
            println!(
                "chaos: +{offset_secs:.1}s fault {}/{}: {}",
                n + 1,
                plan.len(),
                p.kind.as_str()
            );
            let (victim, detail) = self.inject(p).await?;
            self.faults.push(FaultRecord {
                kind: p.kind,
                offset_secs,
                at,
                done: Utc::now(),
                victim,
                detail,
            });
        }
        tokio::time::sleep(self.cfg.tail).await;
        self.check_alive();

        // The end: stop the feed side first, then let the readers catch up.
        self.stop_producer().await?;
        let sim = self
            .sim
            .take()
            .ok_or_else(|| ChaosError::Setup("simulator already stopped".into()))?;
        let sim_report = sim
            .stop()
            .await
            .map_err(|e| ChaosError::Setup(format!("feed-sim: {e}")))?;

        let mut workers = Received::default();
        let mut group = Received::default();
        self.catch_up(&mut workers, &mut group).await;
        let coordinator = self.describe_group().await;
        self.stop_readers().await;
        workers.poll(&self.dir, "worker-");
        group.poll(&self.dir, "group-");

        // Replays from offset 0: the topic, and the bridge's topic.
        let (replay_errors, bridged_errors) = tokio::join!(
            self.replay(&self.topic, "replay"),
            self.replay(&self.bridged_topic, "bridged")
        );
        // The replay's summary is evidence (its decode errors); the bridged
        // replay's is not read.
        let mut summary_errors = Vec::new();
        let replay_decode_errors = replay_errors?.unwrap_or_else(|why| {
            summary_errors.push(why);
            BTreeMap::new()
        });
        let _ = bridged_errors?;
        let mut replay = Received::default();
        replay.poll(&self.dir, "replay");
        let mut bridged = Received::default();
        bridged.poll(&self.dir, "bridged");

        let dlq = inject::drain_queue(&self.amqp, &self.amqp.topology().dlq).await?;
        let (group_decode_errors, group_summary_errors) = self.summaries_decode_errors("group-");
        summary_errors.extend(group_summary_errors);

        let ev = Evidence {
            seed: self.seed,
            sim: &sim_report,
            producers: &self.producer_runs,
            faults: &self.faults,
            workers: &workers,
            group: &group,
            replay: &replay,
            bridged: &bridged,
            injected_queue: &self.injected_queue,
            injected_topic: &self.injected_topic,
            injected_topic_at: self.injected_topic_at,
            dlq: &dlq,
            replay_decode_errors,
            group_decode_errors,
            summary_errors,
            unclean_exits: self.unclean.clone(),
            coordinator,
            notes: self.notes.clone(),
            bounds: DupBounds {
                worker_prefetch: WORKER_PREFETCH,
                workers: 2,
                bridge_prefetch: BRIDGE_PREFETCH,
                confirm_window: CONFIRM_WINDOW,
                kafka_in_flight: KAFKA_IN_FLIGHT,
                commit_interval: COMMIT_INTERVAL,
            },
            seconds: self.started.elapsed().as_secs_f64(),
        };
        Ok(reconcile(&ev))
    }

    /// Carries out one fault; returns the victim (if any) and a detail.
    async fn inject(&mut self, p: &Planned) -> Result<(Option<String>, String), ChaosError> {
        Ok(match p.kind {
            FaultKind::RabbitRestart => {
                let t = Instant::now();
                self.brokers.restart_rabbit().await?;
                (
                    None,
                    format!(
                        "node stopped and started ({:.1} s)",
                        t.elapsed().as_secs_f64()
                    ),
                )
            }
            FaultKind::KafkaRestart => {
                let t = Instant::now();
                self.brokers.restart_kafka().await?;
                (
                    None,
                    format!(
                        "broker SIGKILLed, restarted on its log directory ({:.1} s)",
                        t.elapsed().as_secs_f64()
                    ),
                )
            }
            FaultKind::WsDrop => {
                self.proxy.drop_all();
                (None, "WebSocket closed without a close frame".into())
            }
            FaultKind::SimStall => {
                let d = self.cfg.idle_timeout + Duration::from_millis(1500);
                self.proxy.stall_all(d);
                tokio::time::sleep(d).await;
                (
                    None,
                    format!(
                        "feed silent for {:.1} s (idle timeout {:.1} s)",
                        d.as_secs_f64(),
                        self.cfg.idle_timeout.as_secs_f64()
                    ),
                )
            }
            FaultKind::ProducerRestart => {
                let name = self.producer.as_ref().map(|p| p.name.clone());
                self.stop_producer().await?;
                self.start_producer()?;
                (name, "SIGTERM (drain, report), then a new producer".into())
            }
            FaultKind::WorkerKill => {
                let i = p.pick % 2;
                let name = self.kill_slot(Slot::Worker(i)).await;
                self.start_worker(i)?;
                (name, "SIGKILL, restarted".into())
            }
            FaultKind::ConsumerKill => {
                let i = p.pick % 2;
                let name = self.kill_slot(Slot::Member(i)).await;
                // Restarted at once: the replacement joins while the dead
                // member still holds its partitions, and the coordinator
                // must finish that rebalance once the dead member's
                // session (`--session-timeout`) expires, handing its
                // partitions to the live members.
                self.start_member(i)?;
                (
                    name,
                    format!(
                        "SIGKILL, restarted at once in the same group (the dead member expires after the {} s session timeout)",
                        SESSION_TIMEOUT.as_secs()
                    ),
                )
            }
            FaultKind::BridgeKill => {
                let name = self.kill_slot(Slot::Bridge).await;
                self.start_bridge()?;
                (name, "SIGKILL, restarted".into())
            }
            FaultKind::PoisonQueue => {
                let tag = format!("{}-{}", self.seed, self.faults.len());
                let queues = [self.amqp.topology().work_queue, self.bridge_queue.clone()];
                let inj = inject::poison_queues(&self.amqp, &queues, &tag).await?;
                self.injected_queue.extend(inj);
                (
                    None,
                    "not_json + schema_invalid into the work and bridge queues".into(),
                )
            }
            FaultKind::PoisonTopic => {
                let tag = format!("{}-{}", self.seed, self.faults.len());
                self.injected_topic_at = Some(Utc::now());
                let inj = inject::poison_topic(&self.kafka, &self.topic, &tag).await?;
                self.injected_topic.extend(inj);
                (None, "not_json + schema_invalid into the topic".into())
            }
        })
    }

    async fn kill_slot(&mut self, slot: Slot) -> Option<String> {
        let p = match slot {
            Slot::Worker(i) => self.workers[i].take(),
            Slot::Member(i) => self.members[i].take(),
            Slot::Bridge => self.bridge.take(),
        }?;
        let name = p.name.clone();
        p.kill().await;
        Some(name)
    }

    /// A reader that exited by itself mid-run is a failure to report (and
    /// its slot stays empty, so its losses show in the reconciliation).
    fn check_alive(&mut self) {
        let mut dead = Vec::new();
        for slot in self
            .workers
            .iter_mut()
            .chain(self.members.iter_mut())
            .chain(std::iter::once(&mut self.bridge))
            .chain(std::iter::once(&mut self.producer))
        {
            if let Some(p) = slot {
                if let Some(st) = p.try_status() {
                    dead.push((p.name.clone(), format!("exited by itself mid-run ({st})")));
                    *slot = None;
                }
            }
        }
        for d in dead {
            tracing::error!(name = %d.0, why = %d.1, "process died");
            self.unclean.push(d);
        }
    }

    fn common_amqp(&self) -> Vec<String> {
        vec![
            "--amqp-url".into(),
            self.amqp.url.clone(),
            "--amqp-prefix".into(),
            self.amqp.prefix.clone(),
        ]
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn start_worker(&mut self, i: usize) -> Result<(), ChaosError> {
        self.worker_gen[i] += 1;
        let name = format!("worker-{}.{}", i + 1, self.worker_gen[i]);
        let mut args = self.common_amqp();
        args.extend([
            "--name".into(),
            name.clone(),
            "--prefetch".into(),
            WORKER_PREFETCH.to_string(),
        ]);
        args.extend(self.reader_outputs(&name));
        args.extend(["--stats-interval".into(), "5s".into()]);
        self.workers[i] = Some(Proc::spawn(&self.bins, "worker", &name, &args, &self.dir)?);
        Ok(())
    }

    /// `--jsonl` and `--summary-json` of a reader, named after it in the
    /// run directory (the reconciliation reads both).
    fn reader_outputs(&self, name: &str) -> [String; 4] {
        [
            "--jsonl".into(),
            self.path(&format!("{name}.jsonl")),
            "--summary-json".into(),
            self.path(&format!("{name}.summary.json")),
        ]
    }

    fn kafka_args(&self, topic: &str) -> Vec<String> {
        vec![
            "--kafka-brokers".into(),
            self.kafka.brokers.clone(),
            "--kafka-topic".into(),
            topic.into(),
            "--kafka-option".into(),
            KAFKA_RECONNECT.into(),
        ]
    }

    fn start_member(&mut self, i: usize) -> Result<(), ChaosError> {
        self.member_gen[i] += 1;
        let name = format!("group-{}.{}", ["a", "b"][i], self.member_gen[i]);
        let mut args = self.kafka_args(&self.topic);
        args.extend([
            "--group".into(),
            self.group.clone(),
            "--name".into(),
            name.clone(),
            "--session-timeout".into(),
            format!("{}ms", SESSION_TIMEOUT.as_millis()),
            "--commit-interval".into(),
            format!("{}ms", COMMIT_INTERVAL.as_millis()),
            "--topic-wait".into(),
            "60s".into(),
        ]);
        args.extend(self.reader_outputs(&name));
        args.extend(["--stats-interval".into(), "5s".into()]);
        self.members[i] = Some(Proc::spawn(
            &self.bins, "consumer", &name, &args, &self.dir,
        )?);
        Ok(())
    }

    fn start_bridge(&mut self) -> Result<(), ChaosError> {
        self.bridge_gen += 1;
        let name = format!("bridge.{}", self.bridge_gen);
        let mut args = vec!["rabbitmq-to-kafka".to_string()];
        args.extend(self.common_amqp());
        args.extend(self.kafka_args(&self.bridged_topic));
        args.extend([
            "--queue".into(),
            self.bridge_queue.clone(),
            "--prefetch".into(),
            BRIDGE_PREFETCH.to_string(),
            "--name".into(),
            name.clone(),
            "--stats-interval".into(),
            "5s".into(),
            "--topic-wait".into(),
            "60s".into(),
        ]);
        self.bridge = Some(Proc::spawn(&self.bins, "bridge", &name, &args, &self.dir)?);
        Ok(())
    }

    fn start_producer(&mut self) -> Result<(), ChaosError> {
        let n = self.producer_runs.len() + 1;
        let name = format!("producer-{n}");
        let mut args = self.common_amqp();
        args.extend(self.kafka_args(&self.topic));
        args.extend([
            "--exchange".into(),
            "binance".into(),
            "--symbols".into(),
            self.cfg.symbols.join(","),
            "--url".into(),
            format!("ws://{}", self.proxy.addr()),
            "--sink".into(),
            "rabbitmq,kafka,jsonl".into(),
            "--out-dir".into(),
            self.path(&name),
            "--report".into(),
            self.path(&format!("{name}.report.json")),
            "--state-file".into(),
            self.path("producer.state.json"),
            "--kafka-partitions".into(),
            "3".into(),
            "--idle-timeout".into(),
            format!("{}ms", self.cfg.idle_timeout.as_millis()),
            "--reconnect-min".into(),
            "100ms".into(),
            "--reconnect-max".into(),
            "1s".into(),
            "--confirm-window".into(),
            CONFIRM_WINDOW.to_string(),
            "--kafka-in-flight".into(),
            KAFKA_IN_FLIGHT.to_string(),
            "--drain-timeout".into(),
            "30s".into(),
            "--stats-interval".into(),
            "5s".into(),
        ]);
        self.producer = Some(Proc::spawn(
            &self.bins, "producer", &name, &args, &self.dir,
        )?);
        // Keep the run's slot so its outputs are read even if it dies.
        self.producer_runs.push(ProducerRun {
            index: n,
            msgs: Vec::new(),
            bad_lines: 0,
            report: ReportFile::Missing,
            exit_code: None,
        });
        Ok(())
    }

    /// SIGTERM the producer, wait for its drain and read what it wrote.
    async fn stop_producer(&mut self) -> Result<(), ChaosError> {
        let n = self.producer_runs.len();
        let exit_code = match self.producer.take() {
            Some(p) => match p.terminate(GRACE).await {
                Ok(st) => st.code(),
                Err(e) => {
                    self.unclean.push((format!("producer-{n}"), e.to_string()));
                    None
                }
            },
            None => None,
        };
        self.collect_producer(n, exit_code);
        Ok(())
    }

    fn collect_producer(&mut self, n: usize, exit_code: Option<i32>) {
        let name = format!("producer-{n}");
        let (msgs, bad) = read_producer_dir(&self.dir.join(&name));
        let report = ReportFile::read(&self.dir.join(format!("{name}.report.json")));
        if let Some(run) = self.producer_runs.iter_mut().find(|r| r.index == n) {
            run.msgs = msgs;
            run.bad_lines = bad;
            run.report = report;
            run.exit_code = exit_code;
        }
    }

    /// Waits until every worker and group member has handled every message
    /// the producers emitted and the bridge's queue is empty, or until no
    /// progress for 20 s, or `--catch-up`.
    async fn catch_up(&self, workers: &mut Received, group: &mut Received) {
        let expected: HashSet<String> = self
            .producer_runs
            .iter()
            .flat_map(|r| r.msgs.iter().map(|m| m.id.clone()))
            .collect();
        let deadline = Instant::now() + self.cfg.catch_up;
        let mut last_progress = Instant::now();
        let mut last_bridge: Option<u64> = None;
        loop {
            let new = workers.poll(&self.dir, "worker-") + group.poll(&self.dir, "group-");
            let bridge_depth = self.brokers.queue_depth(&self.bridge_queue).await;
            if new > 0 || bridge_depth != last_bridge {
                last_progress = Instant::now();
            }
            last_bridge = bridge_depth;
            let missing = |r: &Received| {
                expected
                    .iter()
                    .filter(|id| !r.count.contains_key(*id))
                    .count()
            };
            let (mw, mg) = (missing(workers), missing(group));
            if mw == 0 && mg == 0 && bridge_depth == Some(0) {
                tracing::info!("every reader caught up");
                return;
            }
            if Instant::now() >= deadline || last_progress.elapsed() > Duration::from_secs(20) {
                println!(
                    "chaos: catch-up gave up: workers missing {mw}, group missing {mg}, bridge queue depth {bridge_depth:?}"
                );
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// The group from its coordinator's side (DescribeGroups), once the
    /// readers have caught up: it must be `Stable` with exactly the two
    /// live members (by client id, which is the instance name) and every
    /// partition of the topic assigned to exactly one of them. A rebalance
    /// still settling gets up to 30 s.
    async fn describe_group(&self) -> (String, Vec<String>) {
        let live: BTreeSet<String> = self
            .members
            .iter()
            .flatten()
            .map(|p| p.name.clone())
            .collect();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (line, problems) =
                match groups::describe_group(&self.kafka, &self.group, Duration::from_secs(10))
                    .await
                {
                    Err(e) => (
                        format!("not described: {e}"),
                        vec![format!("DescribeGroups failed: {e}")],
                    ),
                    Ok(d) => {
                        let assigned = d.assigned(&self.topic);
                        let members: BTreeSet<String> =
                            d.members.iter().map(|m| m.client_id.clone()).collect();
                        let mut parts: Vec<i32> = assigned.values().flatten().copied().collect();
                        parts.sort_unstable();
                        let mut problems = Vec::new();
                        if d.state != "Stable" {
                            problems.push(format!("state {} (not Stable)", d.state));
                        }
                        if members != live {
                            problems.push(format!("members {members:?}, live {live:?}"));
                        }
                        if parts != [0, 1, 2] {
                            problems.push(format!(
                                "partitions assigned {parts:?}, want each of [0, 1, 2] once"
                            ));
                        }
                        (
                            format!("{}, {} members, {assigned:?}", d.state, d.members.len()),
                            problems,
                        )
                    }
                };
            if problems.is_empty() || Instant::now() >= deadline {
                return (line, problems);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn stop_readers(&mut self) {
        let mut procs: Vec<Proc> = Vec::new();
        procs.extend(self.workers.iter_mut().filter_map(Option::take));
        procs.extend(self.members.iter_mut().filter_map(Option::take));
        procs.extend(self.bridge.take());
        let results = futures::future::join_all(procs.into_iter().map(|p| async move {
            let name = p.name.clone();
            (name, p.terminate(GRACE).await)
        }))
        .await;
        for (name, r) in results {
            match r {
                Ok(st) if st.success() => {}
                // Stopped promptly, but while waiting to reconnect (the
                // binaries then exit 1 with the last connection error).
                // Nothing is unacked or uncommitted in that state, so the
                // data checks stand; the table notes it.
                Ok(st) => self.notes.push(format!(
                    "{name} exited with {st} after SIGTERM: {}",
                    last_error_line(&self.dir.join(format!("{name}.log")))
                )),
                Err(e) => self.unclean.push((name, e.to_string())),
            }
        }
    }

    /// `consumer --replay-from 0 --no-commit` of `topic` into
    /// `<out>.jsonl`; returns its decode errors, or why its summary could
    /// not be read (the process exited cleanly, so it must have written one).
    async fn replay(
        &self,
        topic: &str,
        out: &str,
    ) -> Result<Result<BTreeMap<String, u64>, String>, ChaosError> {
        let mut args = self.kafka_args(topic);
        args.extend([
            "--group".into(),
            format!("{}-{out}", self.group),
            "--name".into(),
            out.into(),
            "--replay-from".into(),
            "0".into(),
            "--no-commit".into(),
            // Generous on a busy 2-core machine: the reader exits after
            // 12 s without a message (twice that before the first one).
            "--exit-when-idle".into(),
            "12s".into(),
            "--topic-wait".into(),
            "30s".into(),
        ]);
        args.extend(self.reader_outputs(out));
        let p = Proc::spawn(&self.bins, "consumer", out, &args, &self.dir)?;
        let st = p.wait(Duration::from_secs(180)).await?;
        if !st.success() {
            return Err(ChaosError::Hung(format!(
                "{out} replay exited with {st} (log {})",
                self.path(&format!("{out}.log"))
            )));
        }
        Ok(decode_errors(&self.dir.join(format!("{out}.summary.json"))))
    }

    /// The decode errors of every `<prefix>*.summary.json`, summed, and the
    /// summaries that did not parse. A reader killed on purpose wrote none,
    /// so only the files that exist are read.
    fn summaries_decode_errors(&self, prefix: &str) -> (BTreeMap<String, u64>, Vec<String>) {
        let mut total = BTreeMap::new();
        let mut bad = Vec::new();
        if let Ok(rd) = std::fs::read_dir(&self.dir) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().to_string();
                if n.starts_with(prefix) && n.ends_with(".summary.json") {
                    match decode_errors(&e.path()) {
                        Ok(errors) => {
                            for (k, v) in errors {
                                *total.entry(k).or_default() += v;
                            }
                        }
                        Err(why) => bad.push(why),
                    }
                }
            }
        }
        (total, bad)
    }

    async fn kill_all(&mut self) {
        let mut procs: Vec<Proc> = Vec::new();
        procs.extend(self.workers.iter_mut().filter_map(Option::take));
        procs.extend(self.members.iter_mut().filter_map(Option::take));
        procs.extend(self.bridge.take());
        procs.extend(self.producer.take());
        for p in procs {
            p.kill().await;
        }
        if let Some(sim) = self.sim.take() {
            let _ = sim.stop().await;
        }
    }
}

#[derive(Clone, Copy)]
enum Slot {
    Worker(usize),
    Member(usize),
    Bridge,
}

/// The last line of a log that says `error`, for a note.
fn last_error_line(log: &Path) -> String {
    std::fs::read_to_string(log)
        .ok()
        .and_then(|t| {
            t.lines()
                .rev()
                .find(|l| l.contains("error"))
                .map(|l| l.chars().take(160).collect())
        })
        .unwrap_or_default()
}

/// A reader's decode errors by kind, from its `--summary-json` read as the
/// [`ReaderSummary`] it wrote; or why that file is missing or unparsable.
fn decode_errors(path: &Path) -> Result<BTreeMap<String, u64>, String> {
    match ReportFile::<ReaderSummary>::read(path) {
        ReportFile::Read(s) => Ok(s.decode_errors),
        ReportFile::Missing => Err(format!("{} is missing", path.display())),
        ReportFile::Invalid(why) => {
            Err(format!("{why} (not a ReaderSummary, see docs/reports.md)"))
        }
    }
}
