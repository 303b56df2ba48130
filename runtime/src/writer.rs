//! Writing a connection's queued frames to its socket, from inside the connection's one task.
//!
//! The session polls [`Writer::poll_write`] each time it wakes up, beside its socket reads and
//! its inbox, so a client that is slow to read never blocks the task from noticing anything
//! else: while a write waits for the socket, deliveries keep being queued (and counted against
//! the slow-consumer bound), the idle and shutdown timers keep running, and reading continues
//! until the queue reaches the read-pause mark.
//!
//! **Batching.** Frames are fed to the WebSocket's write buffer as they are queued and flushed
//! together: one `write` system call carries every frame queued by one turn of the session.
//! When a turn queued frames, the flush is put off by one scheduler turn (the task wakes itself
//! and yields): a broadcast wakes every member of a room at once, and letting the other senders
//! run first lets one write carry several of their frames. Measured on the previous two-task
//! design, writing each delivery alone cost ~23 µs of CPU per delivery in a 1,000-member room;
//! batching brought it to a few.
//!
//! **Write timeout.** A write that makes no progress for `write_timeout` means the client has
//! stopped reading (or the network is gone): the session gives up on it as a slow consumer.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ws::Message as WsMessage;
use futures_util::Sink;
use tokio::time::{Instant, Sleep};

use crate::connection::Outbox;

/// Why writing to a client stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WriteError {
    /// The socket failed (the peer went away).
    #[error("write failed: {0}")]
    Socket(String),
    /// No progress within the write timeout.
    #[error("no write progress within the write timeout")]
    TimedOut,
}

/// The write half of a session's state.
pub(crate) struct Writer {
    timeout: Duration,
    /// Frames were fed since the last flush.
    needs_flush: bool,
    /// The flush was put off by one turn already (see the module docs).
    deferred: bool,
    /// A write is waiting for the socket; `deadline` is armed.
    stalled: bool,
    deadline: Pin<Box<Sleep>>,
}

impl Writer {
    pub(crate) fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            needs_flush: false,
            deferred: false,
            stalled: false,
            deadline: Box::pin(tokio::time::sleep(timeout)),
        }
    }

    /// Asks for a flush even if nothing was queued (the WebSocket library queued a pong or a
    /// close reply of its own).
    pub(crate) fn want_flush(&mut self) {
        self.needs_flush = true;
    }

    /// Feeds queued frames and flushes them. `Ready(Ok)` when everything is written,
    /// `Pending` while the socket (or a deferred flush) has more to do.
    pub(crate) fn poll_write<S>(
        &mut self,
        socket: &mut S,
        outbox: &mut Outbox,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), WriteError>>
    where
        S: Sink<WsMessage> + Unpin,
        S::Error: std::fmt::Display,
    {
        let mut fed = false;
        while !outbox.is_empty() {
            match Pin::new(&mut *socket).poll_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(WriteError::Socket(e.to_string()))),
                Poll::Pending => return self.stall(cx),
            }
            let Some(frame) = outbox.pop() else { break };
            if let Err(e) = Pin::new(&mut *socket).start_send(frame) {
                return Poll::Ready(Err(WriteError::Socket(e.to_string())));
            }
            self.stalled = false;
            self.needs_flush = true;
            fed = true;
        }
        if !self.needs_flush {
            return Poll::Ready(Ok(()));
        }
        if fed && !self.deferred {
            self.deferred = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        match Pin::new(&mut *socket).poll_flush(cx) {
            Poll::Ready(Ok(())) => {
                self.needs_flush = false;
                self.deferred = false;
                self.stalled = false;
                outbox.shrink();
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(WriteError::Socket(e.to_string()))),
            Poll::Pending => self.stall(cx),
        }
    }

    /// The socket is not taking more: arm the write deadline (once per stall) and wait.
    fn stall(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), WriteError>> {
        if !self.stalled {
            self.stalled = true;
            let deadline = Instant::now() + self.timeout;
            self.deadline.as_mut().reset(deadline);
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(WriteError::TimedOut)),
            Poll::Pending => Poll::Pending,
        }
    }
}
