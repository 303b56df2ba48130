//! Service configuration: every limit of the service, with its default and why.
//!
//! Each field is a command-line flag and an environment variable (flags win), so the same binary
//! runs under `make run`, in a container, or in a test that builds a [`Config`] directly. Limits
//! live here, at the edge, rather than as constants deep in the code: an operator can see and
//! change every one of them, and tests can shrink them to provoke the limit quickly.

use std::net::IpAddr;
use std::time::Duration;

use clap::Parser;

/// How the service runs.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "room-chat",
    version,
    about = "Real-time chat rooms over WebSocket, generated from asyncapi.yaml"
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "HOST", default_value = "127.0.0.1")]
    pub host: IpAddr,

    /// Port to listen on (0 picks a free one; the log says which).
    #[arg(long, env = "PORT", default_value_t = 8000)]
    pub port: u16,

    /// Redis for the `chat`, `notifications`, `queue` and `analytics` layers; without it every
    /// layer runs in memory (a single process). Several URLs, comma-separated, spread the queue
    /// layers over several Redis hosts.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,

    /// Send `complete` after each handled frame and `group_complete` after each delivered
    /// broadcast (what chanx's own tests wait for). Off by default: it doubles the frames.
    #[arg(long, env = "SEND_COMPLETION", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub send_completion: bool,

    /// Largest WebSocket message accepted, in bytes. A larger one closes the connection with
    /// code 1009 (message too big). 64 KiB is far above any chat message and bounds the memory
    /// one client can make the server buffer.
    #[arg(long, env = "MAX_FRAME_BYTES", default_value_t = 64 * 1024)]
    pub max_frame_bytes: usize,

    /// WebSocket read buffer per connection, in bytes. The library default (128 KiB) makes an
    /// idle connection cost ~130 KiB; 2 KiB keeps it at a few KiB (every KiB here is a KiB per
    /// idle connection), at the cost of more read calls for large frames, which chat does not
    /// have.
    #[arg(long, env = "READ_BUFFER_BYTES", default_value_t = 2 * 1024)]
    pub read_buffer_bytes: usize,

    /// Bytes of outgoing frames buffered before they are written to the socket (the writer also
    /// flushes whenever its queue runs dry). Small frames of one burst then share a write call;
    /// 8 KiB is a few dozen chat frames, and the buffer only grows while it is used.
    #[arg(long, env = "WRITE_BUFFER_BYTES", default_value_t = 8 * 1024)]
    pub write_buffer_bytes: usize,

    /// Frames queued for one client before it counts as too slow and is closed with code 1008
    /// (policy violation, reason "slow consumer"). 1,024 frames absorbs bursts of a busy room
    /// while bounding what a client that stopped reading can pin in memory.
    #[arg(long, env = "OUTBOUND_QUEUE", default_value_t = 1024)]
    pub outbound_queue: usize,
    /// While this many frames wait to be written to a client, its own frames are not read:
    /// a client that writes faster than it reads its answers is slowed down by TCP instead of
    /// being closed. A quarter of the outbound queue leaves room for the room's deliveries.
    #[arg(long, env = "READ_PAUSE_FRAMES", default_value_t = 256)]
    pub read_pause_frames: usize,

    /// Most WebSocket connections served at once; more are refused with HTTP 503 before the
    /// upgrade. Sized for ~20k idle clients in one process on a small machine.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 20_000)]
    pub max_connections: usize,

    /// Longest a client may take to send a request's headers, in milliseconds, including the
    /// wait for the next request on a kept-alive connection; then the connection is closed.
    /// Without it, sockets that send nothing (or drip a header line every few seconds) stay
    /// open forever and use up file descriptors. 10 s is generous for any real client.
    #[arg(long, env = "HEADER_READ_TIMEOUT_MS", default_value_t = 10_000)]
    pub header_read_timeout_ms: u64,
    /// Most TCP connections that have not (yet) become WebSockets: HTTP requests and
    /// handshakes in progress, kept-alive page loads. Further connections wait in the
    /// listener's backlog until one finishes, so idle sockets cannot starve the process of file
    /// descriptors; upgraded WebSockets count against `MAX_CONNECTIONS` instead.
    #[arg(long, env = "MAX_PENDING_CONNECTIONS", default_value_t = 1024)]
    pub max_pending_connections: usize,
    /// Longest accepted room name, in characters (Unicode scalar values). The Python layers cap
    /// group names at 100; `room_` plus 100 characters still maps to a safe name.
    #[arg(long, env = "MAX_ROOM_NAME_CHARS", default_value_t = 100)]
    pub max_room_name_chars: usize,

    /// Interval of WebSocket pings the server sends, in seconds, so dead peers are noticed.
    #[arg(long, env = "PING_INTERVAL_SECS", default_value_t = 20)]
    pub ping_interval_secs: u64,

    /// A connection silent for this long (no frame, no pong) is closed with code 1001, in
    /// seconds. Three ping intervals tolerate two lost pongs.
    #[arg(long, env = "IDLE_TIMEOUT_SECS", default_value_t = 60)]
    pub idle_timeout_secs: u64,

    /// Longest a single write to a client may take, in seconds, before the client is treated as
    /// dead; stops a peer that never reads from pinning a task forever.
    #[arg(long, env = "WRITE_TIMEOUT_SECS", default_value_t = 10)]
    pub write_timeout_secs: u64,

    /// After the server sends a close frame, how long it waits for the client's, in
    /// milliseconds (the closing handshake). Long enough for a live client on a slow link,
    /// short enough that a vanished one frees its slot quickly.
    #[arg(long, env = "CLOSE_LINGER_MS", default_value_t = 2000)]
    pub close_linger_ms: u64,

    /// Browser origins allowed to open WebSockets besides the service's own (comma-separated,
    /// e.g. `https://chat.example.com`; `*` allows every origin). By default a handshake whose
    /// `Origin` is not the `Host` it connects to is refused with 403: otherwise any web page a
    /// user visits could read and post in the rooms of an intranet deployment or of a
    /// developer's `make run` (cross-site WebSocket hijacking). Clients that send no `Origin`
    /// (non-browser clients) are always allowed.
    #[arg(long, env = "ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// On SIGTERM/Ctrl-C, how long connections keep delivering (leave notices included) before
    /// they get their close frame, in milliseconds.
    #[arg(long, env = "SHUTDOWN_DRAIN_MS", default_value_t = 300)]
    pub shutdown_drain_ms: u64,

    /// On SIGTERM/Ctrl-C, the most the whole shutdown may take, in seconds (drain, close frames,
    /// closing the layers); connections still open then are dropped.
    #[arg(long, env = "SHUTDOWN_TIMEOUT_SECS", default_value_t = 10)]
    pub shutdown_timeout_secs: u64,

    /// How often each connection renews its group memberships, in seconds. Layers expire
    /// memberships after a day (as the Python layers do), so a connection open longer than that
    /// would stop receiving its room; renewing hourly keeps it with a wide margin.
    #[arg(long, env = "GROUP_REFRESH_SECS", default_value_t = 3600)]
    pub group_refresh_secs: u64,

    /// Messages one connection's layer channel holds before further ones are dropped and
    /// counted (in-memory layers; the Python default is 100). Sized like the outbound queue, so
    /// a burst that the client could absorb is not lost one step earlier in the layer.
    #[arg(long, env = "LAYER_CHANNEL_CAPACITY", default_value_t = 1024)]
    pub layer_channel_capacity: usize,

    /// Messages the Redis layers queue for one local channel before dropping (counted as
    /// `slow_consumer` in the layer metrics).
    #[arg(long, env = "LAYER_LOCAL_QUEUE", default_value_t = 1024)]
    pub layer_local_queue: usize,

    /// Redis messages the pub/sub layer buffers between its subscriber connection and local
    /// fan-out before dropping (counted as `dispatch_overflow`); bounds memory when fan-out
    /// falls behind Redis.
    #[arg(long, env = "PUBSUB_DISPATCH_QUEUE", default_value_t = 8192)]
    pub pubsub_dispatch_queue: usize,

    /// Seconds after which a group membership that was not renewed expires (as the Python
    /// layers' `group_expiry`); connections renew theirs every `GROUP_REFRESH_SECS`.
    #[arg(long, env = "GROUP_EXPIRY_SECS", default_value_t = 86_400)]
    pub group_expiry_secs: u64,

    /// Longest wait for a Redis connection, in milliseconds; past it the layer reports Down.
    #[arg(long, env = "REDIS_CONNECT_TIMEOUT_MS", default_value_t = 1000)]
    pub redis_connect_timeout_ms: u64,

    /// Longest wait for one Redis command, in milliseconds; past it the connection counts as
    /// lost (a hung Redis is detected, not waited on forever).
    #[arg(long, env = "REDIS_COMMAND_TIMEOUT_MS", default_value_t = 2000)]
    pub redis_command_timeout_ms: u64,

    /// The channel-layer alias the room chat uses (`chat` by default, as in the tutorial).
    #[arg(long, env = "CHAT_LAYER", default_value = "chat")]
    pub chat_layer: String,
}

impl Default for Config {
    /// Every field at its documented default, ignoring the environment (so a `REDIS_URL` or
    /// `SEND_COMPLETION` in the caller's shell cannot leak into a config built in code).
    fn default() -> Self {
        use clap::{CommandFactory, FromArgMatches};
        let command = Self::command().mut_args(|arg| arg.env(None));
        let matches = command.get_matches_from(["room-chat"]);
        // With no arguments and no environment only the declared defaults apply, and each of
        // them parses; the exit path is unreachable short of a broken default in this file.
        Self::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }
}

impl Config {
    /// What the runtime applies to every connection.
    pub fn session_settings(&self) -> room_chat_runtime::SessionSettings {
        room_chat_runtime::SessionSettings {
            outbound_queue: self.outbound_queue,
            read_pause_frames: self.read_pause_frames,
            ping_interval: self.ping_interval(),
            idle_timeout: self.idle_timeout(),
            write_timeout: self.write_timeout(),
            send_completion: self.send_completion,
            max_frame_bytes: self.max_frame_bytes,
            group_refresh: self.group_refresh(),
            close_linger: self.close_linger(),
        }
    }

    /// The room chat app's own settings.
    pub fn room_chat_settings(&self) -> crate::room_chat::RoomChatSettings {
        crate::room_chat::RoomChatSettings {
            max_room_name_chars: self.max_room_name_chars,
        }
    }

    /// [`Self::ping_interval_secs`] as a duration.
    pub fn ping_interval(&self) -> Duration {
        Duration::from_secs(self.ping_interval_secs.max(1))
    }

    /// [`Self::idle_timeout_secs`] as a duration.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs.max(1))
    }

    /// [`Self::write_timeout_secs`] as a duration.
    pub fn write_timeout(&self) -> Duration {
        Duration::from_secs(self.write_timeout_secs.max(1))
    }

    /// [`Self::group_refresh_secs`] as a duration.
    pub fn group_refresh(&self) -> Duration {
        Duration::from_secs(self.group_refresh_secs.max(1))
    }

    /// The channel-layer limits this config asks for.
    pub fn layer_limits(&self) -> room_chat_layers::LayerLimits {
        room_chat_layers::LayerLimits {
            local_queue_bound: self.layer_local_queue.max(1),
            memory_capacity: self.layer_channel_capacity.max(1),
            group_expiry: Duration::from_secs(self.group_expiry_secs.max(1)),
            redis_connect_timeout: Duration::from_millis(self.redis_connect_timeout_ms.max(1)),
            redis_command_timeout: Duration::from_millis(self.redis_command_timeout_ms.max(1)),
            pubsub_dispatch_queue: self.pubsub_dispatch_queue.max(1),
            ..room_chat_layers::LayerLimits::default()
        }
    }

    /// [`Self::header_read_timeout_ms`] as a duration.
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms.max(1))
    }

    /// [`Self::close_linger_ms`] as a duration.
    pub fn close_linger(&self) -> Duration {
        Duration::from_millis(self.close_linger_ms)
    }

    /// [`Self::shutdown_drain_ms`] as a duration.
    pub fn shutdown_drain(&self) -> Duration {
        Duration::from_millis(self.shutdown_drain_ms)
    }

    /// [`Self::shutdown_timeout_secs`] as a duration.
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_ignore_the_environment() {
        // Set for this process only; the test checks `Default` does not read it.
        std::env::set_var("OUTBOUND_QUEUE", "7");
        let config = Config::default();
        std::env::remove_var("OUTBOUND_QUEUE");
        assert_eq!(config.outbound_queue, 1024);
        assert_eq!(config.port, 8000);
    }

    #[test]
    fn flags_and_environment_configure_the_binary() {
        let config = Config::parse_from(["room-chat", "--port", "9000", "--max-frame-bytes", "10"]);
        assert_eq!(config.port, 9000);
        assert_eq!(config.max_frame_bytes, 10);
    }
}
