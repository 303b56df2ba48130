//! Service configuration: every limit of the service, with its default and why.
//!
//! Each field is a command-line flag and an environment variable (flags win), so the same binary
//! runs under `make run`, in a container, or in a test that builds a [`Config`] directly. Limits
//! live here, at the edge, rather than as constants deep in the code: an operator can see and
//! change every one of them, and tests can shrink them to provoke the limit quickly.

use std::net::IpAddr;
use std::time::Duration;

use clap::Parser;
use room_chat_runtime::settings::{human, positive_duration};
use room_chat_runtime::SessionSettings;

use room_chat_layers::{LayerError, LayerLimits, LayerRegistry};

use crate::room_chat::RoomChatSettings;

/// Default of [`EdgeSettings::max_connections`].
pub const MAX_CONNECTIONS: usize = 20_000;
/// Default of [`EdgeSettings::max_pending_connections`].
pub const MAX_PENDING_CONNECTIONS: usize = 1024;
/// Default of [`EdgeSettings::header_read_timeout`].
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default of [`EdgeSettings::read_buffer_bytes`].
pub const READ_BUFFER_BYTES: usize = 2 * 1024;
/// Default of [`EdgeSettings::write_buffer_bytes`].
pub const WRITE_BUFFER_BYTES: usize = 8 * 1024;
/// Default of [`EdgeSettings::shutdown_drain`].
pub const SHUTDOWN_DRAIN: Duration = Duration::from_millis(300);
/// Default of [`EdgeSettings::shutdown_timeout`].
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// How the service runs: a few top-level choices, then one group of flags per part of the
/// service, each the very settings type that part takes.
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

    /// The channel-layer alias the room chat uses (`chat` by default, as in the tutorial).
    #[arg(long, env = "CHAT_LAYER", default_value = "chat")]
    pub chat_layer: String,

    /// What every WebSocket connection is held to (the runtime's own settings).
    #[command(flatten)]
    pub session: SessionSettings,

    /// The room chat's rules.
    #[command(flatten)]
    pub room_chat: RoomChatSettings,

    /// The HTTP edge: caps and time limits before and around the upgrade.
    #[command(flatten)]
    pub edge: EdgeSettings,

    /// What the channel layers may spend (the layers' own limits type).
    #[command(flatten)]
    pub layers: LayerLimits,
}

/// The HTTP edge: what a connection may cost before it is a WebSocket, and how the server
/// stops.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "HTTP edge")]
pub struct EdgeSettings {
    /// Most WebSocket connections served at once; more are refused with HTTP 503 before the
    /// upgrade. Sized for ~20k idle clients in one process on a small machine.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = MAX_CONNECTIONS)]
    pub max_connections: usize,

    /// Most TCP connections that have not (yet) become WebSockets: HTTP requests and
    /// handshakes in progress, kept-alive page loads. Further connections wait in the
    /// listener's backlog until one finishes, so idle sockets cannot starve the process of file
    /// descriptors; upgraded WebSockets count against `MAX_CONNECTIONS` instead.
    #[arg(long, env = "MAX_PENDING_CONNECTIONS", default_value_t = MAX_PENDING_CONNECTIONS)]
    pub max_pending_connections: usize,

    /// Longest a client may take to send a request's headers, including the wait for the next
    /// request on a kept-alive connection; then the connection is closed. Without it, sockets
    /// that send nothing (or drip a header line every few seconds) stay open forever and use
    /// up file descriptors. 10 s is generous for any real client.
    #[arg(long, env = "HEADER_READ_TIMEOUT", value_parser = positive_duration,
          default_value = human(HEADER_READ_TIMEOUT))]
    pub header_read_timeout: Duration,

    /// WebSocket read buffer per connection, in bytes. The library default (128 KiB) makes an
    /// idle connection cost ~130 KiB; 2 KiB keeps it at a few KiB (every KiB here is a KiB per
    /// idle connection), at the cost of more read calls for large frames, which chat does not
    /// have.
    #[arg(long, env = "READ_BUFFER_BYTES", default_value_t = READ_BUFFER_BYTES)]
    pub read_buffer_bytes: usize,

    /// Bytes of outgoing frames buffered before they are written to the socket (the writer also
    /// flushes whenever its queue runs dry). Small frames of one burst then share a write call;
    /// 8 KiB is a few dozen chat frames, and the buffer only grows while it is used.
    #[arg(long, env = "WRITE_BUFFER_BYTES", default_value_t = WRITE_BUFFER_BYTES)]
    pub write_buffer_bytes: usize,

    /// Browser origins allowed to open WebSockets besides the service's own (comma-separated,
    /// e.g. `https://chat.example.com`; `*` allows every origin). By default a handshake whose
    /// `Origin` is not the `Host` it connects to is refused with 403: otherwise any web page a
    /// user visits could read and post in the rooms of an intranet deployment or of a
    /// developer's `make run` (cross-site WebSocket hijacking). Clients that send no `Origin`
    /// (non-browser clients) are always allowed.
    #[arg(long, env = "ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// On SIGTERM/Ctrl-C, how long connections keep delivering (leave notices included) before
    /// they get their close frame.
    #[arg(long, env = "SHUTDOWN_DRAIN", value_parser = humantime::parse_duration,
          default_value = human(SHUTDOWN_DRAIN))]
    pub shutdown_drain: Duration,

    /// On SIGTERM/Ctrl-C, the most the whole shutdown may take (drain, close frames, closing
    /// the layers); connections still open then are dropped.
    #[arg(long, env = "SHUTDOWN_TIMEOUT", value_parser = positive_duration,
          default_value = human(SHUTDOWN_TIMEOUT))]
    pub shutdown_timeout: Duration,
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
    /// The room chat's settings with their store: on the first member of `REDIS_URL` (a plain
    /// server, a Sentinel group or a Cluster; every process lists the same members in the same
    /// order, so they share it), otherwise in this process's memory.
    pub fn room_chat_settings(&self) -> Result<RoomChatSettings, crate::rooms::StoreError> {
        let app = self.room_chat.clone();
        let first = self
            .redis_url
            .as_deref()
            .and_then(|urls| urls.split(',').map(str::trim).find(|u| !u.is_empty()));
        if let Some(url) = first {
            app.use_redis(url, &self.layers.connection())?;
        }
        Ok(app)
    }

    /// The channel layers the service runs. Only the alias the room chat uses is built: the
    /// others would hold Redis connections and background tasks (a queue reader blocked on
    /// `BZPOPMIN`, subscriber and probe traffic) for nothing. An alias that is not one of the
    /// standard ones is a configuration error, reported at start-up.
    pub fn layer_registry(&self) -> Result<LayerRegistry, LayerError> {
        LayerRegistry::standard_for(
            self.redis_url.as_deref(),
            &self.layers,
            &[self.chat_layer.as_str()],
        )
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
        assert_eq!(config.session.outbound_queue, 1024);
        assert_eq!(config.port, 8000);
    }

    #[test]
    fn flags_and_environment_configure_the_binary() {
        let config = Config::parse_from([
            "room-chat",
            "--port",
            "9000",
            "--max-frame-bytes",
            "10",
            "--header-read-timeout",
            "1500ms",
        ]);
        assert_eq!(config.port, 9000);
        assert_eq!(config.session.max_frame_bytes, 10);
        assert_eq!(config.edge.header_read_timeout, Duration::from_millis(1500));
    }
}
