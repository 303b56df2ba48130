//! What the runtime applies to every connection.
//!
//! [`SessionSettings`] is a `clap` argument group: a service flattens it into its own command
//! line (`#[command(flatten)]`), so the parsed flags *are* the settings the sessions run with,
//! with no copy in between that could drift. Each default is a `const` of this module, so code
//! (tests, other services) and `--help` read the same number. Durations are written the way
//! people write them (`60s`, `250ms`, `1h`) and parsed with `humantime`.

use std::time::Duration;

/// Default of [`SessionSettings::outbound_queue`].
pub const OUTBOUND_QUEUE: usize = 1024;
/// Default of [`SessionSettings::read_pause_frames`].
pub const READ_PAUSE_FRAMES: usize = 256;
/// Default of [`SessionSettings::inbound_rate`].
pub const INBOUND_RATE: u32 = 100;
/// Default of [`SessionSettings::inbound_burst`].
pub const INBOUND_BURST: u32 = 200;
/// Default of [`SessionSettings::flood_close_after`].
pub const FLOOD_CLOSE_AFTER: Duration = Duration::from_secs(30);
/// Default of [`SessionSettings::ping_interval`].
pub const PING_INTERVAL: Duration = Duration::from_secs(20);
/// Default of [`SessionSettings::idle_timeout`].
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default of [`SessionSettings::write_timeout`].
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default of [`SessionSettings::max_frame_bytes`].
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// Default of [`SessionSettings::group_refresh`].
pub const GROUP_REFRESH: Duration = Duration::from_secs(3600);
/// Default of [`SessionSettings::close_linger`].
pub const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// Parses a duration that must not be zero (`20s`, `1m 30s`, `250ms`): a zero interval or
/// timeout would spin or fire at once, so it is refused with a message rather than accepted.
/// The layers' limits use the same rule.
pub use room_chat_layers::{human, positive_duration};

/// Settings of every session, and the `clap` group that sets them.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Connections")]
pub struct SessionSettings {
    /// Frames queued for one client before it counts as too slow and is closed with 1008
    /// `slow consumer`. The room's deliveries count against it; the client's own replies never
    /// close it, they pause its reading instead (`--read-pause-frames`). 1,024 frames absorb
    /// the bursts of a busy room while bounding what a client that stopped reading can pin.
    #[arg(long, env = "OUTBOUND_QUEUE", default_value_t = OUTBOUND_QUEUE)]
    pub outbound_queue: usize,

    /// While this many frames wait to be written to a client, its own frames are not read: a
    /// client that writes faster than it reads its answers is slowed down by TCP instead of
    /// being closed. A quarter of the outbound queue leaves room for the room's deliveries.
    #[arg(long, env = "READ_PAUSE_FRAMES", default_value_t = READ_PAUSE_FRAMES)]
    pub read_pause_frames: usize,

    /// Frames per second one connection may send, on average (0: no limit). Past the rate
    /// (and the burst) the connection's reading is paused until the budget refills, so a
    /// flooding client slows down, its room's fan-out stays bounded by rate × members, and the
    /// sender is told once per episode with an error frame naming the limit.
    #[arg(long, env = "INBOUND_RATE", default_value_t = INBOUND_RATE)]
    pub inbound_rate: u32,

    /// Frames a connection may send at once above the rate (the token bucket's size): a
    /// client reconnecting with a backlog, or a paste of many lines, passes unhindered.
    #[arg(long, env = "INBOUND_BURST", default_value_t = INBOUND_BURST)]
    pub inbound_burst: u32,

    /// A connection held at the rate limit without a pause for this long is closed with 1008
    /// `rate limit exceeded`: it is flooding, not bursting. Long enough that a client sending
    /// a few thousand frames in one go is only slowed down.
    #[arg(long, env = "FLOOD_CLOSE_AFTER", value_parser = positive_duration,
          default_value = human(FLOOD_CLOSE_AFTER))]
    pub flood_close_after: Duration,

    /// Interval of the WebSocket pings the server sends, so dead peers are noticed.
    #[arg(long, env = "PING_INTERVAL", value_parser = positive_duration,
          default_value = human(PING_INTERVAL))]
    pub ping_interval: Duration,

    /// A connection silent for this long (no frame, no pong) is closed with 1001 `idle
    /// timeout`. Three ping intervals tolerate two lost pongs.
    #[arg(long, env = "IDLE_TIMEOUT", value_parser = positive_duration,
          default_value = human(IDLE_TIMEOUT))]
    pub idle_timeout: Duration,

    /// Longest a pending write may make no progress before the client is treated as dead;
    /// stops a peer that never reads from pinning a task forever.
    #[arg(long, env = "WRITE_TIMEOUT", value_parser = positive_duration,
          default_value = human(WRITE_TIMEOUT))]
    pub write_timeout: Duration,

    /// Send `complete` after each handled frame and `group_complete` after each delivered
    /// broadcast (what chanx's own tests wait for). Off by default: it doubles the frames.
    #[arg(long, env = "SEND_COMPLETION", default_value_t = false, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub send_completion: bool,

    /// Largest WebSocket message accepted, in bytes; a larger one closes the connection with
    /// 1009 (message too big). 64 KiB is far above any chat message and bounds what one
    /// client can make the server buffer.
    #[arg(long, env = "MAX_FRAME_BYTES", default_value_t = MAX_FRAME_BYTES)]
    pub max_frame_bytes: usize,

    /// How often a connection renews its group memberships. Layers expire memberships after
    /// a day (as the Python layers do); renewing hourly keeps a long connection in its room
    /// with a wide margin.
    #[arg(long, env = "GROUP_REFRESH", value_parser = positive_duration,
          default_value = human(GROUP_REFRESH))]
    pub group_refresh: Duration,

    /// After the server's close frame, how long it waits for the client's (the closing
    /// handshake): long enough for a live client on a slow link, short enough that a vanished
    /// one frees its slot quickly.
    #[arg(long, env = "CLOSE_LINGER", value_parser = humantime::parse_duration,
          default_value = human(CLOSE_LINGER))]
    pub close_linger: Duration,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            outbound_queue: OUTBOUND_QUEUE,
            read_pause_frames: READ_PAUSE_FRAMES,
            inbound_rate: INBOUND_RATE,
            inbound_burst: INBOUND_BURST,
            flood_close_after: FLOOD_CLOSE_AFTER,
            ping_interval: PING_INTERVAL,
            idle_timeout: IDLE_TIMEOUT,
            write_timeout: WRITE_TIMEOUT,
            send_completion: false,
            max_frame_bytes: MAX_FRAME_BYTES,
            group_refresh: GROUP_REFRESH,
            close_linger: CLOSE_LINGER,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        session: SessionSettings,
    }

    #[test]
    fn the_flags_default_to_the_constants() {
        let parsed = Cli::parse_from(["x"]).session;
        let default = SessionSettings::default();
        assert_eq!(format!("{parsed:?}"), format!("{default:?}"));
    }

    #[test]
    fn durations_read_as_people_write_them() {
        let parsed = Cli::parse_from(["x", "--idle-timeout", "1m 30s", "--close-linger", "250ms"]);
        assert_eq!(parsed.session.idle_timeout, Duration::from_secs(90));
        assert_eq!(parsed.session.close_linger, Duration::from_millis(250));
    }

    #[test]
    fn a_zero_interval_is_refused_with_a_reason() {
        let error = Cli::try_parse_from(["x", "--ping-interval", "0s"])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("must be longer than zero"), "{error}");
    }
}
