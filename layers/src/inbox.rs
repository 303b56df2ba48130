//! The receiving end of a channel, and the bounded local queue that feeds it.
//!
//! Every layer delivers into the same structure: one bounded `mpsc` queue per channel, whose
//! sending half the layer keeps in its routing table and whose receiving half is the
//! [`Inbox`] handed to the consumer. Dropping the inbox tells the layer to forget the channel
//! (routing entry, local group memberships, Redis subscriptions), so a consumer that goes away
//! cannot leak anything.
//!
//! **Drop policy.** Delivery into a local queue never waits: a Redis reader or a fan-out loop
//! must not stall every other receiver because one consumer is slow. When a queue is full the
//! *newest* message is dropped, counted as [`DropReason::SlowConsumer`] and logged
//! (rate-limited); the fan-out itself lives in the layers' shared local core (`local.rs`). Newest-first keeps the queue a plain `mpsc` (dropping the oldest needs a lock
//! around a deque on the hot path) and keeps what the consumer receives a gap-free prefix of what
//! was sent, which is easier to reason about than holes in the middle.

use std::sync::{Arc, Weak};

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::stats::{Counters, DropReason};
use crate::{LayerError, Message};

/// A message waiting in a local queue, with its deadline (messages older than the layer's
/// `expiry` are dropped at receive time rather than handed to a consumer as if fresh).
#[derive(Debug)]
pub(crate) struct Envelope {
    pub(crate) message: Message,
    pub(crate) expires_at: Option<Instant>,
}

/// What a layer does when an inbox goes away.
pub(crate) trait ChannelOwner: Send + Sync {
    /// Forgets the channel. Called from `Drop`, so it must not block; asynchronous clean-up
    /// (Redis `UNSUBSCRIBE`, `ZREM`) is spawned on the layer's task tracker.
    fn release(self: Arc<Self>, channel: &str);
}

/// The receiving end of one channel; created by
/// [`ChannelLayer::new_channel`](crate::ChannelLayer::new_channel). Dropping it removes the
/// channel from the layer (and any group memberships it holds), so nothing leaks.
///
/// **Drop policy.** Messages wait in a bounded queue (the memory layer's `capacity`, the Redis
/// layers' `local_queue_bound`). Delivery never waits for a slow consumer: when the queue is
/// full the newest message is dropped, counted as [`DropReason::SlowConsumer`] when it came from
/// a fan-out or from Redis, or refused with `ChannelFull` (and counted so) when a direct `send`
/// of the in-memory layer finds it full, and logged, rate-limited. What a slow consumer
/// receives is therefore a gap-free prefix of what was sent, followed by newer messages once it
/// catches up.
pub struct Inbox {
    name: Arc<str>,
    rx: mpsc::Receiver<Envelope>,
    counters: Arc<Counters>,
    layer: &'static str,
    owner: Weak<dyn ChannelOwner>,
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox")
            .field("name", &self.name)
            .field("layer", &self.layer)
            .finish_non_exhaustive()
    }
}

impl Inbox {
    pub(crate) fn new(
        name: Arc<str>,
        rx: mpsc::Receiver<Envelope>,
        counters: Arc<Counters>,
        layer: &'static str,
        owner: Weak<dyn ChannelOwner>,
    ) -> Self {
        Self {
            name,
            rx,
            counters,
            layer,
            owner,
        }
    }

    /// The channel name: give it to `send`, `group_add` and `group_discard`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Waits for the next message. Expired messages are skipped (and counted). Returns
    /// [`LayerError::Closed`] once the layer is closed or flushed; that is the consumer's signal
    /// to stop. Cancel-safe: a message is only taken from the queue when it is returned.
    pub async fn receive(&mut self) -> Result<Message, LayerError> {
        loop {
            let envelope = self.rx.recv().await.ok_or(LayerError::Closed)?;
            if let Some(message) = self.accept(envelope) {
                return Ok(message);
            }
        }
    }

    /// Polls for the next message (the poll form of [`receive`](Self::receive), for a
    /// connection task that drives its socket and its inbox from one `poll` function).
    pub fn poll_receive(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<Message, LayerError>> {
        loop {
            match self.rx.poll_recv(cx) {
                std::task::Poll::Ready(Some(envelope)) => {
                    if let Some(message) = self.accept(envelope) {
                        return std::task::Poll::Ready(Ok(message));
                    }
                }
                std::task::Poll::Ready(None) => {
                    return std::task::Poll::Ready(Err(LayerError::Closed))
                }
                std::task::Poll::Pending => return std::task::Poll::Pending,
            }
        }
    }

    /// Takes a message if one is ready, without waiting.
    pub fn try_receive(&mut self) -> Option<Message> {
        while let Ok(envelope) = self.rx.try_recv() {
            if let Some(message) = self.accept(envelope) {
                return Some(message);
            }
        }
        None
    }

    /// The message of a dequeued envelope, counted as delivered; `None` (counted as expired)
    /// if it waited past its deadline.
    fn accept(&self, envelope: Envelope) -> Option<Message> {
        if envelope
            .expires_at
            .is_some_and(|deadline| Instant::now() >= deadline)
        {
            self.counters
                .dropped(self.layer, DropReason::Expired, &self.name, 1);
            return None;
        }
        self.counters
            .delivered
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Some(envelope.message)
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        if let Some(owner) = self.owner.upgrade() {
            owner.release(&self.name);
        }
    }
}
