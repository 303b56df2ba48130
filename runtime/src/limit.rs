//! The inbound rate limit: a token bucket on the frames one client sends.
//!
//! # Why pause rather than refuse
//!
//! A client over its rate is not answered with refusals for every frame: its *reading is
//! paused* until the bucket refills, so TCP pushes back on it. That keeps the rule lossless
//! for an honest client that sends a backlog in one go (it is only slowed down), costs a
//! flooder its own throughput instead of its room's (a room's fan-out from one member is at
//! most `rate × members` deliveries per second, so the other members are not turned into slow
//! consumers), and needs no per-frame error traffic. The client is told once per episode, by
//! an error frame naming the limit, and a client held at the limit without a pause for
//! `flood_close_after` is closed with 1008 `rate limit exceeded`.
//!
//! # Telling a backlog from a flood
//!
//! The limiter only learns that a frame was waiting by reading it. So an episode starts when
//! the bucket runs dry (reading stops), and it is an episode of *throttling* only if the next
//! read, once a token is back, finds a frame ready at once; a read that finds nothing ends the
//! episode. A client that sent exactly its burst and stopped is therefore never told anything.
//!
//! The clock is read once per frame, by the caller (the session already reads it to restart
//! the idle timer), and the timer is allocated only the first time a connection is held: an
//! idle connection pays one `Option` for all of this.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// What the session should do about reading the socket now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Read.
    Read,
    /// Not now: the bucket is empty and the timer will wake the task.
    Hold,
}

/// What a frame read after a hold means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Throttled {
    /// Within the limit (or not the first throttled frame of this episode).
    No,
    /// The first frame of an episode that had to wait: tell the client.
    Started,
    /// Held at the limit for longer than the flood bound: close the connection.
    Flooding,
}

/// One connection's token bucket.
#[derive(Debug)]
pub(crate) struct InboundLimit {
    /// Tokens per second.
    rate: f64,
    /// Bucket size.
    burst: f64,
    flood_close_after: Duration,
    tokens: f64,
    /// When `tokens` was last brought up to date.
    updated: Instant,
    /// Set while reading is held: the instant a token is back.
    ready_at: Option<Instant>,
    /// The start of the current throttling episode (reading held, and a frame was waiting each
    /// time it resumed).
    held_since: Option<Instant>,
    /// Whether this episode's client has been told.
    told: bool,
    /// Allocated on the first hold; most connections never need it.
    timer: Option<Pin<Box<Sleep>>>,
}

impl InboundLimit {
    /// A bucket for `rate` frames/s with room for `burst`; `None` when `rate` is 0 (no limit).
    pub(crate) fn new(rate: u32, burst: u32, flood_close_after: Duration) -> Option<Self> {
        (rate > 0).then(|| Self {
            rate: f64::from(rate),
            burst: f64::from(burst.max(1)),
            flood_close_after,
            tokens: f64::from(burst.max(1)),
            updated: Instant::now(),
            ready_at: None,
            held_since: None,
            told: false,
            timer: None,
        })
    }

    /// Before reading the socket: may the session read now? Registers the timer with `cx`
    /// when it may not.
    pub(crate) fn poll_admit(&mut self, cx: &mut Context<'_>) -> Admit {
        let Some(ready_at) = self.ready_at else {
            return Admit::Read;
        };
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(ready_at)));
        if timer.deadline() != ready_at {
            timer.as_mut().reset(ready_at);
        }
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.ready_at = None;
                // The episode began when reading stopped, if it turns out to be one.
                self.held_since.get_or_insert(ready_at);
                Admit::Read
            }
            Poll::Pending => Admit::Hold,
        }
    }

    /// A frame was read at `now`: spend a token, and say whether it was a throttled one.
    pub(crate) fn spend(&mut self, now: Instant) -> Throttled {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst) - 1.0;
        self.updated = now;
        let throttled = match self.held_since {
            Some(since) if now.saturating_duration_since(since) >= self.flood_close_after => {
                Throttled::Flooding
            }
            Some(_) if !self.told => {
                self.told = true;
                Throttled::Started
            }
            _ => Throttled::No,
        };
        if self.tokens < 1.0 {
            // Wait until one whole token is back.
            let wait = (1.0 - self.tokens) / self.rate;
            self.ready_at = Some(now + Duration::from_secs_f64(wait));
        }
        throttled
    }

    /// A read found nothing waiting: whatever episode there was is over.
    pub(crate) fn quiet(&mut self) {
        if self.ready_at.is_none() {
            self.held_since = None;
            self.told = false;
        }
    }
}

/// The limit as the client is told it (the `detail` of the app's limit frame).
pub fn rate_limit_notice(rate: u32, burst: u32) -> String {
    format!(
        "rate limit: at most {rate} frames per second (bursts of {burst}); \
         your frames are being read more slowly"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noop_cx() -> Context<'static> {
        Context::from_waker(std::task::Waker::noop())
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_passes_and_a_flood_is_paced_then_closed() {
        let mut limit = InboundLimit::new(10, 5, Duration::from_secs(2)).unwrap();
        let mut cx = noop_cx();
        // The burst: five frames at once, none throttled.
        for _ in 0..5 {
            assert_eq!(limit.poll_admit(&mut cx), Admit::Read);
            assert_eq!(limit.spend(Instant::now()), Throttled::No);
        }
        // Empty: reading is held until a token is back (100 ms at 10/s).
        assert_eq!(limit.poll_admit(&mut cx), Admit::Hold);
        tokio::time::advance(Duration::from_millis(100)).await;
        assert_eq!(limit.poll_admit(&mut cx), Admit::Read);
        // A frame was waiting: the episode starts, and the client is told once.
        assert_eq!(limit.spend(Instant::now()), Throttled::Started);
        let mut frames = 1;
        let ended = loop {
            tokio::time::advance(Duration::from_millis(100)).await;
            assert_eq!(limit.poll_admit(&mut cx), Admit::Read);
            frames += 1;
            match limit.spend(Instant::now()) {
                Throttled::No => continue,
                other => break other,
            }
        };
        assert_eq!(ended, Throttled::Flooding);
        // Paced at the rate: two seconds of flood are about 20 frames, not thousands.
        assert!((19..=21).contains(&frames), "{frames}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_ends_the_episode() {
        let mut limit = InboundLimit::new(10, 1, Duration::from_secs(1)).unwrap();
        let mut cx = noop_cx();
        assert_eq!(limit.spend(Instant::now()), Throttled::No);
        tokio::time::advance(Duration::from_millis(100)).await;
        assert_eq!(limit.poll_admit(&mut cx), Admit::Read);
        assert_eq!(limit.spend(Instant::now()), Throttled::Started);
        // Nothing was waiting after the next token came back: not flooding.
        tokio::time::advance(Duration::from_millis(100)).await;
        assert_eq!(limit.poll_admit(&mut cx), Admit::Read);
        limit.quiet();
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(limit.poll_admit(&mut cx), Admit::Read);
        assert_eq!(limit.spend(Instant::now()), Throttled::No);
    }

    #[test]
    fn no_rate_is_no_limit() {
        assert!(InboundLimit::new(0, 10, Duration::from_secs(1)).is_none());
    }
}
