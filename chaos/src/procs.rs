//! Child processes of a scenario: the real `producer`, `worker`, `consumer`
//! and `bridge` binaries, so a SIGKILL is a real SIGKILL.
//!
//! Every child is spawned with `kill_on_drop`, so a scenario that fails or
//! panics half-way never leaves an orphan behind: dropping the [`Proc`]
//! kills it. Output goes to one log file per instance in the run directory.

use crate::ChaosError;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::process::{Child, Command};

/// Where the sibling binaries live.
#[derive(Debug, Clone)]
pub struct Bins {
    dir: PathBuf,
}

/// The binaries a scenario runs.
pub const NEEDED: [&str; 4] = ["producer", "worker", "consumer", "bridge"];

impl Bins {
    /// The scenario's binaries ([`NEEDED`]) in `dir`, checked to exist.
    pub fn in_dir(dir: &Path) -> Result<Self, ChaosError> {
        Self::with(dir, &NEEDED)
    }

    /// The binaries `needed` in `dir`, checked to exist: the soak runs
    /// another set (`feed-sim` as a process, no bridge).
    pub fn with(dir: &Path, needed: &[&str]) -> Result<Self, ChaosError> {
        for b in needed {
            let p = dir.join(b);
            if !p.is_file() {
                return Err(ChaosError::Setup(format!(
                    "binary {} is missing: build them first with `cargo build --workspace --bins` \
                     (or point --bin-dir at the directory that holds them)",
                    p.display()
                )));
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// The directory of the running executable, one level up when that is a
    /// `deps/` directory (an integration test binary). That is where cargo
    /// puts the workspace's binaries of the same profile.
    pub fn beside_current_exe() -> Result<PathBuf, ChaosError> {
        let exe = std::env::current_exe()
            .map_err(|e| ChaosError::Setup(format!("cannot locate the running executable: {e}")))?;
        let mut dir = exe
            .parent()
            .ok_or_else(|| ChaosError::Setup("executable has no parent directory".into()))?
            .to_path_buf();
        if dir.file_name().is_some_and(|n| n == "deps") {
            dir.pop();
        }
        Ok(dir)
    }

    /// Path of one binary.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// One running child.
pub struct Proc {
    /// Instance name (also its log file name).
    pub name: String,
    /// Log file (stdout and stderr).
    pub log: PathBuf,
    child: Child,
}

impl Proc {
    /// Spawns `bin` with `args`, output appended to `<dir>/<name>.log`.
    pub fn spawn(
        bins: &Bins,
        bin: &str,
        name: &str,
        args: &[String],
        dir: &Path,
    ) -> Result<Self, ChaosError> {
        Self::spawn_with(bins, bin, name, args, dir, false)
    }

    /// Like [`Proc::spawn`], in a process group of its own: a Ctrl-C at
    /// the terminal then reaches the runner only, which stops its children
    /// in order (the producer drains while the brokers still run). Only
    /// for a runner that handles the signal; otherwise the child would
    /// outlive it.
    pub fn spawn_own_group(
        bins: &Bins,
        bin: &str,
        name: &str,
        args: &[String],
        dir: &Path,
    ) -> Result<Self, ChaosError> {
        Self::spawn_with(bins, bin, name, args, dir, true)
    }

    fn spawn_with(
        bins: &Bins,
        bin: &str,
        name: &str,
        args: &[String],
        dir: &Path,
        own_group: bool,
    ) -> Result<Self, ChaosError> {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        let mut cmd = Command::new(bins.path(bin));
        if own_group {
            cmd.process_group(0);
        }
        let child = cmd
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("CHAOS_CHILD_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| ChaosError::Setup(format!("cannot start {bin}: {e}")))?;
        tracing::info!(name, bin, pid = child.id(), "started");
        Ok(Self {
            name: name.to_string(),
            log,
            child,
        })
    }

    /// Process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Whether it has exited already (and with what).
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGKILL, then reap.
    pub async fn kill(mut self) {
        tracing::info!(name = %self.name, pid = self.pid(), "SIGKILL");
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// SIGTERM, wait up to `grace` for a clean exit, then SIGKILL. Returns
    /// the exit status of a clean exit, or an error naming what happened.
    pub async fn terminate(mut self, grace: Duration) -> Result<ExitStatus, ChaosError> {
        if let Some(st) = self.try_status() {
            return Ok(st);
        }
        if let Some(pid) = self.pid() {
            tracing::info!(name = %self.name, pid, "SIGTERM");
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
        }
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(Ok(st)) => Ok(st),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(self
                .kill_hung(format!("did not exit within {grace:?} of SIGTERM"))
                .await),
        }
    }

    /// Kills a child that overran its time, waits for it, and names it in
    /// the error with `what` happened and the tail of its log.
    async fn kill_hung(&mut self, what: String) -> ChaosError {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        ChaosError::Hung(format!(
            "{} {what} (killed; log {}){}",
            self.name,
            self.log.display(),
            self.log_tail()
        ))
    }

    /// Waits for the child to exit by itself, with no limit. Cancel-safe,
    /// so it can race a shutdown signal and the [`Proc`] is still there
    /// to be terminated when the signal wins.
    pub async fn exited(&mut self) -> Result<ExitStatus, ChaosError> {
        Ok(self.child.wait().await?)
    }

    /// Waits for the child to exit by itself, up to `limit`.
    pub async fn wait(mut self, limit: Duration) -> Result<ExitStatus, ChaosError> {
        match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(self
                .kill_hung(format!("did not finish within {limit:?}"))
                .await),
        }
    }

    /// The log's warnings and errors and its last lines, for a failure
    /// message: a CI log keeps the text, not the run directory.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let notable: Vec<&str> = lines
            .iter()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .take(30)
            .copied()
            .collect();
        let tail = &lines[lines.len().saturating_sub(15)..];
        format!(
            "\n    warnings and errors ({} shown):\n      {}\n    last {} lines:\n      {}",
            notable.len(),
            notable.join("\n      "),
            tail.len(),
            tail.join("\n      ")
        )
    }
}
