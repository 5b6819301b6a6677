//! The chaos suite: the whole pipeline on a private RabbitMQ node and a
//! private Apache Kafka node, every fault injected once per seed at seeded
//! random points, and an exact reconciliation by tick id after each seed.
//!
//! `CHAOS_RUNS` seeds run (default 3), each random and printed, on brokers
//! shared between the seeds; `CHAOS_SEED` pins the first one to replay a
//! failure. Run it alone with its output:
//!
//! ```sh
//! cargo test -p tickbridge-chaos --test chaos -- --nocapture
//! CHAOS_SEED=1234 CHAOS_RUNS=1 cargo test -p tickbridge-chaos --test chaos -- --nocapture
//! ```

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};
use tickbridge_chaos::{run_on, Brokers, ChaosConfig};

/// Bound on one seed: warm-up, ten faults with their pauses (a RabbitMQ
/// restart alone takes 5-15 s), catch-up and two replays fit well inside.
const PER_RUN: Duration = Duration::from_secs(300);

/// The scenario spawns the workspace's binaries from this test's target
/// directory, so they must exist and be newer than every source file of the
/// crates they are built from. `scripts/test.sh` builds them
/// (`cargo build --workspace --bins`) before the tests; on a fresh clone, or
/// after an edit, this runs the same command. (It is not run
/// unconditionally: under `cargo test` the environment differs from a
/// shell's, and cargo would rebuild dependencies it has already built.)
fn ensure_bins_built() {
    let exe = std::env::current_exe().expect("test executable path");
    let release = exe.components().any(|c| c.as_os_str() == "release");
    let mut bin_dir = exe.parent().expect("deps dir").to_path_buf();
    if bin_dir.ends_with("deps") {
        bin_dir.pop();
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf();
    let oldest_bin = ["producer", "worker", "consumer", "bridge"]
        .iter()
        .map(|b| mtime(&bin_dir.join(b)))
        .min()
        .flatten();
    let newest_src = ["core", "feed-sim", "producer", "consumer", "bridge"]
        .iter()
        .map(|c| newest(&root.join(c).join("src")).max(mtime(&root.join(c).join("Cargo.toml"))))
        .chain([
            mtime(&root.join("Cargo.lock")),
            mtime(&root.join("stack/definitions.json")),
        ])
        .max()
        .flatten();
    if oldest_bin.is_some() && oldest_bin >= newest_src {
        return;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args(["build", "--workspace", "--bins"]);
    if release {
        cmd.arg("--release");
    }
    let t = Instant::now();
    let st = cmd.status().expect("run cargo build --workspace --bins");
    assert!(st.success(), "cargo build --workspace --bins failed: {st}");
    eprintln!("chaos: binaries built ({:.1} s)", t.elapsed().as_secs_f64());
}

fn mtime(p: &std::path::Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// Newest modification time of any file under `dir`.
fn newest(dir: &std::path::Path) -> Option<std::time::SystemTime> {
    let mut best = mtime(dir);
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        let t = if p.is_dir() { newest(&p) } else { mtime(&p) };
        best = best.max(t);
    }
    best
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pipeline_survives_seeded_faults_and_reconciles_exactly() {
    let _ = tracing_subscriber_init();
    ensure_bins_built();
    let runs: usize = std::env::var("CHAOS_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let pinned: Option<u64> = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|v| v.parse().ok());
    let brokers = Brokers::start().await.unwrap_or_else(|e| {
        panic!("the chaos suite needs rabbitmq-server and Apache Kafka (scripts/kafka.sh install): {e}")
    });
    let mut failed = Vec::new();
    for i in 0..runs {
        let seed = match (i, pinned) {
            (0, Some(s)) => s,
            _ => rand::random::<u32>() as u64,
        };
        println!("chaos: run {}/{runs}, seed {seed}", i + 1);
        let cfg = ChaosConfig {
            seed: Some(seed),
            ..ChaosConfig::default()
        };
        let outcome = tokio::time::timeout(PER_RUN, run_on(cfg, &brokers))
            .await
            .unwrap_or_else(|_| panic!("seed {seed}: the scenario did not finish in {PER_RUN:?}"))
            .unwrap_or_else(|e| panic!("seed {seed}: the scenario could not run: {e}"));
        println!("{}", outcome.table);
        if !outcome.ok {
            failed.push((seed, outcome.failures));
        }
    }
    assert!(
        failed.is_empty(),
        "unexplained differences (replay with CHAOS_SEED=<seed> CHAOS_RUNS=1): {failed:#?}"
    );
}

/// Logs of the runner itself (not of the children, which log to files in
/// the run directory) at `warn` unless `RUST_LOG` says otherwise.
fn tracing_subscriber_init() -> Option<()> {
    if std::env::var("RUST_LOG").is_err() {
        std::env::set_var("RUST_LOG", "warn");
    }
    tickbridge_model::telemetry::init_test_tracing();
    Some(())
}
