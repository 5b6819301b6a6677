//! The binaries under test as child processes: started with their log in a
//! file, stopped with SIGKILL (a crash) or SIGTERM (a graceful stop), and
//! awaited with a bound. The crash, restart and shutdown tests of several
//! crates repeated these steps, each with its own polling loop.

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

/// Starts `cmd` with stdout discarded and stderr (where the binaries log)
/// written to `log`, for a failure message to quote later.
pub fn spawn_logged(cmd: &mut Command, log: &Path) -> Child {
    let file = std::fs::File::create(log)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
    cmd.stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", cmd.get_program()))
}

/// SIGKILL, the crash: no chance to clean up. Waits for the process so
/// that it is gone when this returns.
pub fn sigkill(child: &mut Child) {
    child.kill().expect("SIGKILL the child");
    child.wait().expect("reap the killed child");
}

/// SIGTERM, the graceful stop, through `kill(1)` (the testkit does without
/// libc). Returns whether `kill` could deliver it.
pub fn sigterm(child: &Child) -> bool {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .is_ok_and(|s| s.success())
}

/// Polls every 50 ms until `child` exits, for at most `within`. `None`
/// means it is still running: the caller decides whether to kill it and
/// what the failure says (usually the child's log).
pub async fn exit_within(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("poll the child") {
            return Some(status);
        }
        if tokio::time::Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
