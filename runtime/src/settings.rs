//! What the runtime applies to every connection. The service fills it from its flags; each
//! field's doc says what it bounds and what happens at the bound.

use std::time::Duration;

/// Settings of every session.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// Frames waiting to be written to one client before it counts as too slow and is closed
    /// with 1008 `slow consumer`. Deliveries (other members' broadcasts) count against it; the
    /// client's own replies never close it, they pause its reading instead (see
    /// `read_pause_frames`).
    pub outbound_queue: usize,
    /// While this many frames wait to be written, the session stops reading the client's
    /// frames: a client that writes faster than it reads its answers is slowed down (TCP
    /// pushes back on it) instead of being closed. Below `outbound_queue`, so the deliveries
    /// of a busy room still fit beside a paused reader.
    pub read_pause_frames: usize,
    /// Interval of server pings.
    pub ping_interval: Duration,
    /// Silence after which a connection is closed with 1001 `idle timeout`.
    pub idle_timeout: Duration,
    /// Longest a pending write may make no progress before the client counts as a slow
    /// consumer and is dropped.
    pub write_timeout: Duration,
    /// Send `complete` / `group_complete` frames (chanx's `SEND_COMPLETION`).
    pub send_completion: bool,
    /// Largest message accepted (named in the log when a client exceeds it).
    pub max_frame_bytes: usize,
    /// How often a connection renews its group memberships.
    pub group_refresh: Duration,
    /// How long to wait for the client's close frame after the server's.
    pub close_linger: Duration,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            outbound_queue: 1024,
            read_pause_frames: 256,
            ping_interval: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(10),
            send_completion: false,
            max_frame_bytes: 64 * 1024,
            group_refresh: Duration::from_secs(3600),
            close_linger: Duration::from_secs(2),
        }
    }
}
