//! Counters a layer keeps for `/metrics`, and the rate limiter for drop warnings.
//!
//! Every message a layer gives up on is counted under a reason, and logged (at most once per
//! [`DROP_WARN_INTERVAL`] per layer, with the number dropped since the last warning, so a slow
//! consumer cannot flood the log). Counters are plain relaxed atomics: they are statistics, read
//! by a scraper, and never used to synchronise anything.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Why a message was not delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// A store with a `capacity` refused the message: a direct `send` into a full in-memory
    /// channel (the caller also gets [`LayerError::ChannelFull`](crate::LayerError::ChannelFull)),
    /// or a queue-layer `send`/`group_send` into a Redis queue at `capacity`.
    ChannelFull,
    /// A receiver's local queue was full when a broadcast or a message from Redis reached it:
    /// the consumer is not reading fast enough. Newest message dropped (see the layer's
    /// `local_queue_bound`, or the in-memory layer's `capacity`). The same on every layer.
    SlowConsumer,
    /// The message waited longer than `expiry` before being received; or a broadcast left out a
    /// member whose group membership had expired (`group_expiry`), one per evicted member; or,
    /// in the pub/sub layer, it waited longer than the command timeout to be published (Redis
    /// hung), and is dropped rather than delivered late.
    Expired,
    /// The target channel does not exist (any more) in this process.
    NoSuchChannel,
    /// Bytes from Redis that are not a valid message.
    Undecodable,
    /// The pub/sub layer received messages from Redis faster than it could fan them out, and
    /// its bounded dispatch queue was full (see `PubSubSettings::dispatch_queue`). Counted once
    /// per Redis message, however many local members it was meant for: the whole process is
    /// behind, not one consumer.
    DispatchOverflow,
    /// A message accepted for publishing could not be written to Redis (the connection failed
    /// or timed out while it waited in the pub/sub layer's publish queue). Counted once per
    /// message; the sender had already been told it was accepted.
    PublishFailed,
    /// A broadcast that Redis delivered to no subscriber although this process had members
    /// in the group: this process's own subscription was not in place (for example in the
    /// moment between a Redis restart and the resubscription), so nobody here got it.
    Unheard,
}

impl DropReason {
    /// Every reason, in a stable order (for metrics output).
    pub const ALL: [DropReason; 8] = [
        DropReason::ChannelFull,
        DropReason::SlowConsumer,
        DropReason::Expired,
        DropReason::NoSuchChannel,
        DropReason::Undecodable,
        DropReason::DispatchOverflow,
        DropReason::PublishFailed,
        DropReason::Unheard,
    ];

    /// A snake_case label for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::ChannelFull => "channel_full",
            DropReason::SlowConsumer => "slow_consumer",
            DropReason::Expired => "expired",
            DropReason::NoSuchChannel => "no_such_channel",
            DropReason::Undecodable => "undecodable",
            DropReason::DispatchOverflow => "dispatch_overflow",
            DropReason::PublishFailed => "publish_failed",
            DropReason::Unheard => "unheard",
        }
    }

    fn index(self) -> usize {
        match self {
            DropReason::ChannelFull => 0,
            DropReason::SlowConsumer => 1,
            DropReason::Expired => 2,
            DropReason::NoSuchChannel => 3,
            DropReason::Undecodable => 4,
            DropReason::DispatchOverflow => 5,
            DropReason::PublishFailed => 6,
            DropReason::Unheard => 7,
        }
    }
}

/// A snapshot of a layer's counters, for `/metrics`. All counts are since the layer was built.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LayerStats {
    /// Successful `send` calls.
    pub sent: u64,
    /// Successful `group_send` calls (one per call, whatever the group size).
    pub group_sent: u64,
    /// Messages handed to a receiver by `Inbox::receive`.
    pub delivered: u64,
    /// Messages given up on, indexed like [`DropReason::ALL`]; see [`LayerStats::dropped`].
    pub drops: [u64; DropReason::ALL.len()],
    /// Times a backend connection was lost or could not be established (Up to Down transitions).
    pub outages: u64,
    /// Times a lost backend connection was re-established.
    pub reconnects: u64,
    /// Subscribe commands sent to restore subscriptions the backend dropped (a failover, a slot
    /// migration, a lost node connection, a missed liveness probe). Counted by the Cluster
    /// pub/sub layer, which resubscribes one partition per `SSUBSCRIBE`: the cost of a failover
    /// in commands, which grows with the partitions affected, not with the groups.
    pub resubscribes: u64,
}

impl LayerStats {
    /// Messages dropped for one reason.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops[reason.index()]
    }

    /// Messages dropped for any reason.
    pub fn dropped_total(&self) -> u64 {
        self.drops.iter().sum()
    }
}

/// Drop warnings are logged at most this often per layer: often enough to notice, rarely enough
/// that ten thousand drops a second do not become ten thousand log lines.
pub(crate) const DROP_WARN_INTERVAL: Duration = Duration::from_secs(5);

/// The live counters behind [`LayerStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) sent: AtomicU64,
    pub(crate) group_sent: AtomicU64,
    pub(crate) delivered: AtomicU64,
    drops: [AtomicU64; DropReason::ALL.len()],
    pub(crate) outages: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) resubscribes: AtomicU64,
    /// Drops not yet reported in a warning.
    unreported: AtomicU64,
    /// Milliseconds since `epoch` of the last warning (0 = never).
    last_warn_ms: AtomicU64,
    epoch: OnceInstant,
}

#[derive(Debug)]
struct OnceInstant(std::time::Instant);
impl Default for OnceInstant {
    fn default() -> Self {
        Self(std::time::Instant::now())
    }
}

impl Counters {
    pub(crate) fn snapshot(&self) -> LayerStats {
        let mut drops = [0; DropReason::ALL.len()];
        for (slot, counter) in drops.iter_mut().zip(&self.drops) {
            *slot = counter.load(Relaxed);
        }
        LayerStats {
            sent: self.sent.load(Relaxed),
            group_sent: self.group_sent.load(Relaxed),
            delivered: self.delivered.load(Relaxed),
            drops,
            outages: self.outages.load(Relaxed),
            reconnects: self.reconnects.load(Relaxed),
            resubscribes: self.resubscribes.load(Relaxed),
        }
    }

    /// Counts `n` dropped messages and warns, rate-limited, naming the layer, channel and reason.
    pub(crate) fn dropped(&self, layer: &'static str, reason: DropReason, channel: &str, n: u64) {
        if n == 0 {
            return;
        }
        self.drops[reason.index()].fetch_add(n, Relaxed);
        self.unreported.fetch_add(n, Relaxed);
        // +1 so that 0 keeps meaning "never warned".
        let now_ms = u64::try_from(self.epoch.0.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1;
        let last = self.last_warn_ms.load(Relaxed);
        let interval = u64::try_from(DROP_WARN_INTERVAL.as_millis()).unwrap_or(u64::MAX);
        let due = last == 0 || now_ms.saturating_sub(last) >= interval;
        // Only the thread that wins the exchange logs, so concurrent drops produce one line.
        if due
            && self
                .last_warn_ms
                .compare_exchange(last, now_ms, Relaxed, Relaxed)
                .is_ok()
        {
            let total = self.unreported.swap(0, Relaxed);
            tracing::warn!(
                layer,
                reason = reason.as_str(),
                channel,
                dropped_since_last_warning = total,
                "channel layer dropped messages"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_are_counted_per_reason() {
        let c = Counters::default();
        c.dropped("memory", DropReason::Expired, "x", 2);
        c.dropped("memory", DropReason::SlowConsumer, "x", 1);
        let s = c.snapshot();
        assert_eq!(s.dropped(DropReason::Expired), 2);
        assert_eq!(s.dropped(DropReason::SlowConsumer), 1);
        assert_eq!(s.dropped_total(), 3);
    }
}
