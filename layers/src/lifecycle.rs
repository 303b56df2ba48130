//! The lifecycle every layer shares: open until `close`, background tasks that stop on
//! shutdown, and a `close` that waits for them.
//!
//! Shutdown is a value passed to every task, not a flag each task polls: a task
//! waits on [`Lifecycle::shutdown`] next to its real work (`select!`), so `close` reaches it
//! even while it is blocked on Redis, and the [`TaskTracker`] lets `close` wait until every
//! task has actually returned (including clean-ups spawned from `Drop`, which cannot await).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::LayerError;

/// Open/closed state, shutdown signal and background tasks of one layer.
#[derive(Debug, Default)]
pub(crate) struct Lifecycle {
    /// Set by `close`: later operations fail with [`LayerError::Closed`].
    closed: AtomicBool,
    /// Cancelled at `close` (or when the layer is dropped): every background task returns.
    pub(crate) shutdown: CancellationToken,
    /// Every background task, so `close` can wait for them.
    pub(crate) tasks: TaskTracker,
}

impl Lifecycle {
    /// `Err(Closed)` once the layer is closed.
    pub(crate) fn check_open(&self) -> Result<(), LayerError> {
        if self.closed.load(Ordering::Acquire) {
            Err(LayerError::Closed)
        } else {
            Ok(())
        }
    }

    /// Marks the layer closed; `true` if this call closed it (it was open).
    pub(crate) fn mark_closed(&self) -> bool {
        !self.closed.swap(true, Ordering::AcqRel)
    }

    /// Signals shutdown to every background task and waits until all have returned.
    pub(crate) async fn stop_tasks(&self) {
        self.shutdown.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Sleeps, or returns `true` at once if the layer is shutting down.
    pub(crate) async fn sleep_or_shutdown(&self, delay: Duration) -> bool {
        tokio::select! {
            () = self.shutdown.cancelled() => true,
            () = tokio::time::sleep(delay) => false,
        }
    }
}
