//! Scenario configuration: the `chaos` command line (clap derive, every flag
//! with an environment fallback) and what the integration test builds by
//! hand.

use crate::faults::FaultKind;
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

/// Everything that shapes one chaos scenario.
#[derive(Debug, Clone, Args)]
pub struct ChaosConfig {
    /// Seed of the fault schedule (order, pauses, which instance is killed)
    /// and of the simulated market. Random when unset; it is always
    /// printed, so a failing run can be replayed with `--seed`.
    #[arg(long, env = "CHAOS_SEED")]
    pub seed: Option<u64>,

    /// Trades per second per symbol sent by the simulator. A few hundred in
    /// total keeps every process and broker far from saturation on a shared
    /// 2-core machine, so backlogs come from faults only.
    #[arg(long, env = "CHAOS_RATE", default_value_t = 100.0)]
    pub rate: f64,

    /// Symbols the producer subscribes to (`BASE-QUOTE`).
    #[arg(
        long,
        env = "CHAOS_SYMBOLS",
        value_delimiter = ',',
        default_value = "BTC-USDT,ETH-USDT,SOL-USDT"
    )]
    pub symbols: Vec<String>,

    /// Faults to inject, each once, in a seeded random order. Default: all
    /// of them.
    #[arg(long, env = "CHAOS_FAULTS", value_enum, value_delimiter = ',')]
    pub faults: Vec<FaultKind>,

    /// Shortest pause between the end of one fault and the next.
    #[arg(long, env = "CHAOS_MIN_PAUSE", value_parser = humantime::parse_duration, default_value = "1500ms")]
    pub min_pause: Duration,

    /// Longest pause between the end of one fault and the next.
    #[arg(long, env = "CHAOS_MAX_PAUSE", value_parser = humantime::parse_duration, default_value = "4s")]
    pub max_pause: Duration,

    /// How long the pipeline runs before the first pause: the Kafka group
    /// needs a moment to join.
    #[arg(long, env = "CHAOS_WARMUP", value_parser = humantime::parse_duration, default_value = "4s")]
    pub warmup: Duration,

    /// How long the pipeline runs after the last fault before the producer
    /// is stopped.
    #[arg(long, env = "CHAOS_TAIL", value_parser = humantime::parse_duration, default_value = "3s")]
    pub tail: Duration,

    /// The producer's `--idle-timeout`. A `sim-stall` lasts 1.5 s longer,
    /// so the producer must notice the silence and reconnect.
    #[arg(long, env = "CHAOS_IDLE_TIMEOUT", value_parser = humantime::parse_duration, default_value = "2s")]
    pub idle_timeout: Duration,

    /// Longest wait, after the producer stopped, for the readers and the
    /// bridge to catch up; the wait also ends after 20 s without progress.
    #[arg(long, env = "CHAOS_CATCH_UP", value_parser = humantime::parse_duration, default_value = "90s")]
    pub catch_up: Duration,

    /// The simulator injects a trade-id gap of 3 ids after every N-th trade
    /// frame of a connection, which the producer must report as a
    /// `trade_id_jump` gap notice.
    #[arg(long, env = "CHAOS_SIM_GAP_EVERY", default_value_t = 1500)]
    pub sim_gap_every: u64,

    /// The simulator sends every N-th trade frame twice (the producer drops
    /// the copy).
    #[arg(long, env = "CHAOS_SIM_DUP_EVERY", default_value_t = 1100)]
    pub sim_dup_every: u64,

    /// The simulator sends a truncated frame after every N-th trade frame
    /// (the producer counts and skips it).
    #[arg(long, env = "CHAOS_SIM_MALFORMED_EVERY", default_value_t = 1900)]
    pub sim_malformed_every: u64,

    /// Directory holding `producer`, `worker`, `consumer` and `bridge`.
    /// Default: the directory of this executable (one level up from a test
    /// binary's `deps/`), where cargo puts the workspace's binaries.
    #[arg(long, env = "CHAOS_BIN_DIR")]
    pub bin_dir: Option<PathBuf>,

    /// Directory for each run's logs and outputs (`<dir>/<run>/`). Default:
    /// `chaos-runs/` in the binaries' directory.
    #[arg(long, env = "CHAOS_OUT_DIR")]
    pub out_dir: Option<PathBuf>,

    /// Keep a passing run's directory (a failing run's is always kept).
    #[arg(long, env = "CHAOS_KEEP", value_parser = clap::builder::BoolishValueParser::new())]
    pub keep: bool,
}

impl Default for ChaosConfig {
    fn default() -> Self {
        Self {
            seed: None,
            rate: 100.0,
            symbols: vec!["BTC-USDT".into(), "ETH-USDT".into(), "SOL-USDT".into()],
            faults: Vec::new(),
            min_pause: Duration::from_millis(1500),
            max_pause: Duration::from_secs(4),
            warmup: Duration::from_secs(4),
            tail: Duration::from_secs(3),
            idle_timeout: Duration::from_secs(2),
            catch_up: Duration::from_secs(90),
            sim_gap_every: 1500,
            sim_dup_every: 1100,
            sim_malformed_every: 1900,
            bin_dir: None,
            out_dir: None,
            keep: false,
        }
    }
}

impl ChaosConfig {
    /// Checks what clap cannot.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.rate > 0.0 && self.rate.is_finite()) {
            return Err(format!("--rate must be > 0, got {}", self.rate));
        }
        if self.symbols.is_empty() {
            return Err("--symbols is empty".into());
        }
        if self.min_pause > self.max_pause {
            return Err("--min-pause must not exceed --max-pause".into());
        }
        if self.idle_timeout.is_zero() {
            return Err("--idle-timeout must be > 0".into());
        }
        if self.sim_gap_every == 0 || self.sim_dup_every == 0 || self.sim_malformed_every == 0 {
            return Err("--sim-*-every must be at least 1".into());
        }
        Ok(())
    }

    /// The faults to run: `--faults`, or all of them.
    pub fn fault_kinds(&self) -> Vec<FaultKind> {
        if self.faults.is_empty() {
            FaultKind::ALL.to_vec()
        } else {
            self.faults.clone()
        }
    }
}
