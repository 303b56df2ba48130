//! Opening load-generator connections: spread over several server URLs and several loopback
//! source addresses, with small buffers so tens of thousands fit in one process.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// A load-generator connection.
pub type Ws = WebSocketStream<TcpStream>;

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL is not `ws://host:port/...`.
    #[error("not a ws://host:port/ URL: {0}")]
    Url(String),
    /// TCP failed (refused, out of ports or file descriptors...).
    #[error("tcp: {0}")]
    Tcp(#[from] std::io::Error),
    /// The WebSocket handshake failed (e.g. HTTP 503 at the connection cap).
    #[error("handshake: {0}")]
    Handshake(#[from] tokio_tungstenite::tungstenite::Error),
    /// The server did not answer the readiness ping.
    #[error("no pong: {0}")]
    NoPong(&'static str),
}

/// Where clients connect from and to.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// Server base URLs (`ws://127.0.0.1:8000`); client `i` uses `urls[i % len]`, so members
    /// of one room are spread over every server process.
    pub urls: Vec<String>,
    /// Loopback source addresses to spread over (`127.0.0.1` to `127.0.0.N`). One address
    /// gives ~28k ephemeral ports per server port; more lift that limit. With 1 the kernel
    /// chooses as usual.
    pub source_ips: u8,
}

impl Endpoints {
    /// The URL of client `index` for `room`.
    pub fn room_url(&self, index: usize, room: &str) -> String {
        let base = &self.urls[index % self.urls.len().max(1)];
        format!("{}/ws/room/{room}", base.trim_end_matches('/'))
    }

    /// The source address of client `index`, when spreading.
    pub fn source(&self, index: usize) -> Option<IpAddr> {
        (self.source_ips > 1).then(|| {
            let last = 1 + (index % usize::from(self.source_ips)) as u8;
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
        })
    }
}

/// Client WebSocket settings: 8 KiB buffers instead of the default 128 KiB read buffer, which
/// would cost 2.5 GiB at 20k connections in the load generator.
pub fn client_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(8 * 1024)
}

/// Opens a WebSocket to `url` (`ws://host:port/path`), from `source` if given, with
/// `TCP_NODELAY` (latency figures would otherwise include Nagle's delay).
pub async fn connect(url: &str, source: Option<IpAddr>) -> Result<Ws, ConnectError> {
    let authority = url
        .strip_prefix("ws://")
        .and_then(|rest| rest.split('/').next())
        .ok_or_else(|| ConnectError::Url(url.to_owned()))?;
    let addr: SocketAddr = match authority.parse() {
        Ok(addr) => addr,
        Err(_) => tokio::net::lookup_host(authority)
            .await?
            .next()
            .ok_or_else(|| ConnectError::Url(url.to_owned()))?,
    };
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    let (ws, _) =
        tokio_tungstenite::client_async_with_config(url, stream, Some(client_config())).await?;
    Ok(ws)
}

/// Pings with the protocol's `ping` and waits for the `pong`: once it arrives the server has
/// finished the connect hook (the group is joined), because it handles frames only after it.
/// Returns how many other frames (join notices) arrived first.
pub async fn sync(ws: &mut Ws) -> Result<u64, ConnectError> {
    ws.send(Message::text(r#"{"action":"ping"}"#)).await?;
    let mut others = 0;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) if is_pong(&text) => return Ok(others),
            Some(Ok(Message::Text(_))) => others += 1,
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => return Err(ConnectError::NoPong("closed before the pong")),
        }
    }
}

/// Whether a frame is the protocol's `pong`.
pub fn is_pong(text: &str) -> bool {
    text.starts_with(r#"{"action":"pong""#)
}

/// Raises the open-file limit as far as allowed (as root: to `want`; otherwise to the hard
/// limit), since every connection is a file descriptor. Returns the limit in force.
pub fn raise_open_files(want: u64) -> std::io::Result<u64> {
    use rlimit::Resource;
    let (soft, hard) = rlimit::getrlimit(Resource::NOFILE)?;
    if soft >= want {
        return Ok(soft);
    }
    if rlimit::setrlimit(Resource::NOFILE, want, want.max(hard)).is_ok() {
        return Ok(want);
    }
    rlimit::increase_nofile_limit(want)
}
