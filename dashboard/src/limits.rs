//! The open-file limit: each SSE client is a socket, and the soft limit of
//! a login shell (often 1024) is far below the ten thousand clients the
//! dashboard is built for. The soft limit is raised to the hard one at
//! start; what was obtained is logged, so a refused connection is never a
//! mystery. Beyond the hard limit, raise it with `ulimit -Hn` or systemd's
//! `LimitNOFILE=` (see the crate's BENCHMARKS.md).

/// Raises the soft `RLIMIT_NOFILE` towards `want` (at most the hard limit)
/// and returns the soft limit in force afterwards.
pub fn raise_nofile(want: u64) -> u64 {
    match rlimit::increase_nofile_limit(want) {
        Ok(n) => {
            tracing::info!(open_files = n, "open-file limit");
            n
        }
        Err(e) => {
            let now = rlimit::getrlimit(rlimit::Resource::NOFILE)
                .map(|(s, _)| s)
                .unwrap_or(0);
            tracing::warn!(error = %e, open_files = now, "could not raise the open-file limit");
            now
        }
    }
}
