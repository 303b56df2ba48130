//! Graceful shutdown as a value passed into every connection task.
//!
//! axum's graceful shutdown stops accepting and waits for HTTP requests, but an upgraded
//! WebSocket is no longer a request: without help it would be cut off mid-conversation. So each
//! connection task holds a [`Shutdown`] and the server drives two phases:
//!
//! 1. **leaving**: every connection runs its disconnect hook (leave notices go out) but keeps
//!    delivering what arrives, so members still connected see the others leave;
//! 2. **closing**: after the drain window, every connection sends its close frame and ends.
//!
//! The [`TaskTracker`] lets the server wait for all of them, bounded by the shutdown timeout.

use std::time::Duration;

use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tokio_util::task::TaskTracker;

/// Shutdown signal and task tracker shared by the server and every connection.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    leaving: CancellationToken,
    closing: CancellationToken,
    tracker: TaskTracker,
}

impl Shutdown {
    /// A fresh, untriggered shutdown.
    pub fn new() -> Self {
        Self::default()
    }

    /// Completes when shutdown begins (phase 1).
    pub async fn leaving(&self) {
        self.leaving.cancelled().await;
    }

    /// Completes when connections must close (phase 2).
    pub async fn closing(&self) {
        self.closing.cancelled().await;
    }

    /// Completes when shutdown begins, without borrowing the handle (a connection task polls
    /// it beside its socket).
    pub(crate) fn leaving_owned(&self) -> WaitForCancellationFutureOwned {
        self.leaving.clone().cancelled_owned()
    }

    /// Whether shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.leaving.is_cancelled()
    }

    /// The tracker connection tasks register with.
    pub fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }

    /// Runs both phases: leave, drain for `drain`, close; then waits until `deadline` at the
    /// latest for the connection tasks. Returns whether every task finished in time.
    pub async fn run(&self, drain: Duration, deadline: tokio::time::Instant) -> bool {
        self.leaving.cancel();
        tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + drain)).await;
        self.closing.cancel();
        self.tracker.close();
        tokio::time::timeout_at(deadline, self.tracker.wait())
            .await
            .is_ok()
    }
}
