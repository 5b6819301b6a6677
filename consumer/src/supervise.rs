//! Reconnect loop for the binaries: run, and on a recoverable error (a lost
//! connection, a broker restart) run again after a capped, jittered,
//! exponential backoff.
//!
//! Restarting is safe by construction: a worker's unacked messages go back
//! to the queue when its connection dies, and a Kafka consumer resumes from
//! its group's committed offsets. Terminal errors (bad flags, a missing queue
//! or topic, refused credentials) exit at once with their one-line message.

use crate::config::CommonArgs;
use crate::stats::Summary;
use crate::{Error, Result};
use std::future::Future;
use std::time::{Duration, Instant};
use tickbridge_broker::backoff::Backoff;
use tickbridge_broker::events::{Reconnecting, Scope};
use tickbridge_model::telemetry::InternalEvent;
use tickbridge_model::Shutdown;

/// A run that lasted this long was healthy: the next failure starts the
/// backoff from the beginning again.
const HEALTHY_RUN: Duration = Duration::from_secs(30);

/// Longest a run may take to return once `shutdown` has fired. A run's own
/// shutdown is bounded well below this (the delivery in hand, then closing
/// its channel and connection); this is the backstop that keeps a process
/// from outliving its signal whatever a broker client does. Nothing is lost
/// by giving up: unacked deliveries return to their queue and uncommitted
/// offsets are read again.
pub const EXIT_DEADLINE: Duration = Duration::from_secs(20);

/// Calls `run` until it returns `Ok`, a terminal error, or `shutdown` fires.
/// After `shutdown`, the run in progress has [`EXIT_DEADLINE`] to return.
/// `role` labels the reconnect counter (`worker`, `kafka` or `stream`).
pub async fn supervise<F, Fut>(
    role: &'static str,
    shutdown: &Shutdown,
    mut run: F,
) -> Result<Summary>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Summary>>,
{
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
    loop {
        let started = Instant::now();
        let Some(outcome) = shutdown.finish_within(EXIT_DEADLINE, run()).await else {
            let e = Error::Broker(tickbridge_broker::Error::Timeout {
                what: "the shutdown (closing the broker connections)".into(),
                secs: EXIT_DEADLINE.as_secs(),
            });
            tracing::error!(error = %e, "giving up on a clean shutdown; unacked messages return to their queue");
            return Err(e);
        };
        match outcome {
            Ok(s) => return Ok(s),
            Err(e) if e.is_terminal() || shutdown.is_shutdown() => return Err(e),
            Err(e) => {
                if started.elapsed() >= HEALTHY_RUN {
                    backoff.reset();
                }
                let delay = backoff.next_delay();
                Reconnecting {
                    scope: Scope::Consumer(role),
                    tally: None,
                    error: &e,
                    attempt: backoff.attempt(),
                    delay,
                }
                .emit();
                tokio::select! {
                    _ = shutdown.cancelled() => return Err(e),
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// A reader as its binary runs it: `worker` and `consumer` differ only in
/// these, so their `main` is one function, [`main`].
pub trait Reader: Clone + Send + Sync + 'static {
    /// Binary name, for the one-line error.
    const BIN: &'static str;
    /// The `role` label of the reader's metrics.
    fn role(&self) -> &'static str;
    /// The output, stats and lifecycle flags every reader shares (log
    /// format, instance name).
    fn common(&self) -> &CommonArgs;
    /// The startup check: one connection must work now, or the run ends
    /// with a terminal error instead of reconnecting forever.
    fn preflight(&self) -> impl Future<Output = Result<()>> + Send;
    /// Connection name of the startup check, `<instance>-preflight`, so the
    /// broker's connection list tells it from the run's own connection.
    fn preflight_name(&self) -> String {
        format!("{}-preflight", self.common().instance_name(Self::BIN))
    }
    /// One run, until `shutdown` or an error.
    fn run(self, shutdown: Shutdown) -> impl Future<Output = Result<Summary>> + Send;
}

/// `main` of the reader binaries: logs, the signal handler, the startup
/// check, then [`supervise`]; an error becomes one line on stderr and a
/// non-zero exit.
pub async fn main<R: Reader>(config: R) -> std::process::ExitCode {
    tickbridge_model::telemetry::init_tracing(config.common().log_format);
    let shutdown = Shutdown::on_signals();
    let result = async {
        config.preflight().await?;
        supervise(config.role(), &shutdown, || {
            config.clone().run(shutdown.clone())
        })
        .await
    };
    tickbridge_model::cli::exit(R::BIN, result.await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn retries_recoverable_errors_and_stops_on_terminal_ones() {
        let calls = AtomicU32::new(0);
        let s = Shutdown::new();
        let r = supervise("worker", &s, || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => Err(Error::Broker(tickbridge_broker::Error::Timeout {
                    what: "broker".into(),
                    secs: 1,
                })),
                _ => Ok(Summary::default()),
            }
        })
        .await;
        assert!(r.is_ok());
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        let calls = AtomicU32::new(0);
        let r = supervise("worker", &s, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(Error::Config("bad".into()))
        })
        .await;
        assert!(r.is_err());
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "terminal errors are not retried"
        );
    }

    /// A run stuck in a broker call that never answers: after the shutdown
    /// signal, supervise gives up on it at the deadline instead of hanging.
    #[tokio::test(start_paused = true)]
    async fn a_run_that_ignores_shutdown_is_abandoned_at_the_deadline() {
        let s = Shutdown::new();
        let trigger = s.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            trigger.trigger();
        });
        let t0 = tokio::time::Instant::now();
        let r = supervise("worker", &s, std::future::pending::<Result<Summary>>).await;
        let e = r.expect_err("abandoned");
        assert!(e.to_string().contains("shutdown"), "{e}");
        assert_eq!(t0.elapsed(), Duration::from_secs(3) + EXIT_DEADLINE);

        // A run that returns within the deadline keeps its own result.
        let s = Shutdown::new();
        s.trigger();
        let r = supervise("worker", &s, || async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            Ok(Summary::default())
        })
        .await;
        assert!(r.is_ok());
    }
}
