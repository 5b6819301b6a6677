//! One shutdown signal threaded through every task.
//!
//! A [`Shutdown`] is cheap to clone; every loop selects on
//! [`Shutdown::cancelled`] beside its work. Binaries create one with
//! [`Shutdown::on_signals`] (Ctrl-C / SIGTERM); tests create one with
//! [`Shutdown::new`] and trigger it themselves.

use tokio_util::sync::CancellationToken;

/// Cloneable shutdown signal.
#[derive(Clone, Debug, Default)]
pub struct Shutdown {
    token: CancellationToken,
}

impl Shutdown {
    /// A signal that fires only when [`Shutdown::trigger`] is called.
    pub fn new() -> Self {
        Self::default()
    }

    /// A signal that fires on Ctrl-C or SIGTERM, or on [`Shutdown::trigger`].
    pub fn on_signals() -> Self {
        let s = Self::new();
        let trigger = s.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown signal received, draining");
            trigger.trigger();
        });
        s
    }

    /// Fires the signal.
    pub fn trigger(&self) {
        self.token.cancel();
    }

    /// Whether the signal has fired.
    pub fn is_shutdown(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Completes when the signal fires.
    pub async fn cancelled(&self) {
        self.token.cancelled().await
    }

    /// A child that fires with its parent, or alone (to stop one subtask,
    /// such as a reader, before its sinks).
    pub fn child(&self) -> Shutdown {
        Shutdown {
            token: self.token.child_token(),
        }
    }

    /// Runs `work` to completion, unless the signal fires first: then `work`
    /// has `grace` more to finish, and `None` means it did not (the caller
    /// abandons it). For work that must not be cut short by the signal
    /// alone, but must not outlive it by more than `grace` either.
    pub async fn finish_within<F: std::future::Future>(
        &self,
        grace: std::time::Duration,
        work: F,
    ) -> Option<F::Output> {
        tokio::pin!(work);
        tokio::select! {
            r = &mut work => Some(r),
            _ = self.cancelled() => tokio::time::timeout(grace, &mut work).await.ok(),
        }
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
