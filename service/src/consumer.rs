//! The consumer runtime: one task per WebSocket connection, joining the generated protocol code
//! to a channel layer. It knows nothing of rooms; an app (such as [`crate::room_chat`]) plugs in
//! through the [`Consumer`] trait, the way a chanx consumer subclasses `AsyncJsonWebsocketConsumer`.
//!
//! # Life of a connection
//!
//! 1. The server checked the handshake (the app's [`Consumer::authenticate`], room name, origin,
//!    connection cap) and upgraded the socket.
//! 2. The runtime opens a layer channel (the connection's inbox), starts a writer task, and calls
//!    [`Consumer::on_connect`] (chanx's "after authentication": join groups, greet).
//! 3. The reader loop handles client frames **one at a time, in order** (chanx handles them
//!    concurrently, so one client's messages can overtake each other; we do not), and forwards
//!    layer messages (broadcasts) to the client.
//! 4. When the client leaves, the idle timeout fires, or the server shuts down, the runtime calls
//!    [`Consumer::on_disconnect`] (leave notices), discards every group the connection joined, and
//!    closes with a close frame.
//!
//! # Backpressure
//!
//! Everything sent to a client goes through one bounded queue drained by the writer task. The
//! reader never waits on a slow client: when the queue is full the client is too slow, and it is
//! closed with code 1008 (policy violation, reason `slow consumer`) and counted, rather than
//! letting its backlog grow without bound or silently skipping frames it would never know it
//! missed. Other clients are unaffected because each has its own queue and writer.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket};
use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use room_chat_layers::{ChannelLayer, Inbox, LayerError, Message};
use room_chat_protocol::runtime::{self, Dispatched, ErrorItem, Framed};
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::metrics::{CloseReason, Metrics};
use crate::shutdown::Shutdown;

/// The `type` of a broadcast travelling through a layer (chanx's `broadcast_message` format).
pub const GROUP_MESSAGE_TYPE: &str = "handle_group_message";

/// WebSocket close codes the runtime uses (RFC 6455 §7.4.1).
pub mod close_code {
    /// Server shutting down, or the connection was idle too long.
    pub const GOING_AWAY: u16 = 1001;
    /// The client fell too far behind (its outbound queue filled up).
    pub const POLICY_VIOLATION: u16 = 1008;
    /// A frame was larger than the configured maximum.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// The server could not serve the connection (e.g. the channel layer is unavailable).
    pub const INTERNAL_ERROR: u16 = 1011;
}

/// Errors of the runtime's operations on a connection.
///
/// These stay concrete and unboxed: they occur on the per-message path (a full queue is normal
/// under overload), where allocating a boxed error per occurrence would add cost exactly when
/// the server is busiest.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    /// The channel layer refused or failed.
    #[error("channel layer: {0}")]
    Layer(#[from] LayerError),
    /// A frame could not be encoded as JSON.
    #[error("encoding a frame: {0}")]
    Encode(#[from] serde_json::Error),
    /// The client's outbound queue is full; it is being closed as a slow consumer.
    #[error("the client's outbound queue is full")]
    SlowConsumer,
    /// The connection is already closing.
    #[error("the connection is closed")]
    Closed,
}

/// Settings the runtime applies to every connection (taken from [`crate::config::Config`]).
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    /// Frames queued for one client before it counts as too slow.
    pub outbound_queue: usize,
    /// Interval of server pings.
    pub ping_interval: Duration,
    /// Silence after which a connection is closed.
    pub idle_timeout: Duration,
    /// Longest one write may take.
    pub write_timeout: Duration,
    /// Send `complete` / `group_complete` frames.
    pub send_completion: bool,
    /// Largest message accepted (for the close reason).
    pub max_frame_bytes: usize,
    /// How often a connection renews its group memberships.
    pub group_refresh: Duration,
    /// How long to wait for the client's close frame after the server's.
    pub close_linger: Duration,
}

/// An app served by the runtime: lifecycle hooks around the generated handler.
///
/// One value is built per connection (so it can hold that connection's path parameters), and
/// every hook gets the connection's [`Connection`] context.
pub trait Consumer: Send + Sync + 'static {
    /// The generated enum of messages the server may send.
    type Outgoing: Serialize + Send + Sync + 'static;
    /// Why a handler failed.
    type Error: std::fmt::Display + Send;

    /// Before the upgrade: whether this client may connect (chanx's authenticator). An `Err`
    /// refuses the handshake with HTTP 403 and the reason as the body, so the client learns why
    /// instead of seeing a socket open and die. The default admits everyone.
    fn authenticate(&self, handshake: &Handshake<'_>) -> Result<(), String> {
        let _ = handshake;
        Ok(())
    }

    /// After authentication and the upgrade: join groups, greet others.
    fn on_connect(
        &self,
        conn: &mut Connection<Self::Outgoing>,
    ) -> impl std::future::Future<Output = Result<(), ConsumerError>> + Send;

    /// One text frame from the client; normally a call to the generated `dispatch`.
    fn on_frame(
        &self,
        conn: &mut Connection<Self::Outgoing>,
        text: &str,
    ) -> impl std::future::Future<Output = Dispatched<Self::Outgoing, Self::Error>> + Send;

    /// The connection is ending (the client left, or the server is shutting down): say goodbye.
    /// Groups are discarded by the runtime afterwards.
    fn on_disconnect(
        &self,
        conn: &mut Connection<Self::Outgoing>,
    ) -> impl std::future::Future<Output = ()> + Send;

    /// The frames the app sends when `SEND_COMPLETION` is on: after a handled frame, and after a
    /// delivered broadcast.
    fn completion_frames() -> (Self::Outgoing, Self::Outgoing);
}

/// What a consumer can see of a handshake when deciding whether to admit it.
#[derive(Debug, Clone, Copy)]
pub struct Handshake<'a> {
    /// The request's headers (cookies, authorization, origin, ...).
    pub headers: &'a axum::http::HeaderMap,
    /// The request path.
    pub path: &'a str,
}

/// What the writer task sends.
enum Outbound {
    Text(Utf8Bytes),
    Close(u16, &'static str),
}

/// A connection as handlers see it: its layer channel, its groups, and a way to send.
pub struct Connection<O> {
    inbox_name: String,
    layer: Arc<dyn ChannelLayer>,
    groups: Vec<String>,
    outbound: mpsc::Sender<Outbound>,
    /// Cancelled when the outbound queue overflowed: the writer closes with 1008 at once.
    overflow: CancellationToken,
    metrics: Arc<Metrics>,
    _outgoing: PhantomData<fn(O)>,
}

impl<O: Serialize> Connection<O> {
    /// The connection's unique channel name in the layer.
    pub fn channel_name(&self) -> &str {
        &self.inbox_name
    }

    /// Joins `group`; the runtime leaves it when the connection ends. The name is mapped
    /// through the layer's safe-name rule, so any room name works on every layer.
    pub async fn group_add(&mut self, group: &str) -> Result<(), ConsumerError> {
        let group = self.layer.safe_group_name(group).into_owned();
        self.layer.group_add(&group, &self.inbox_name).await?;
        if !self.groups.contains(&group) {
            self.metrics.group_joined(&group);
            self.groups.push(group);
        }
        Ok(())
    }

    /// Leaves `group`.
    pub async fn group_discard(&mut self, group: &str) -> Result<(), ConsumerError> {
        let group = self.layer.safe_group_name(group).into_owned();
        // Forget the group only once the layer has let go of it: if the discard fails, the
        // runtime still discards it when the connection ends.
        self.layer.group_discard(&group, &self.inbox_name).await?;
        if let Some(at) = self.groups.iter().position(|g| *g == group) {
            self.groups.swap_remove(at);
            self.metrics.group_left(&group);
        }
        Ok(())
    }

    /// Sends a frame to this client.
    pub fn send(&self, frame: &O) -> Result<(), ConsumerError> {
        self.queue(Utf8Bytes::from(serde_json::to_string(frame)?))
    }

    /// Sends a frame with envelope keys (a direct reply) to this client.
    pub fn send_framed(&self, frame: &Framed<O>) -> Result<(), ConsumerError> {
        self.queue(Utf8Bytes::from(serde_json::to_string(frame)?))
    }

    /// Sends `frame` to every member of `group` (this process and others), except this
    /// connection when `exclude_current`. The frame is encoded once here; receivers share it.
    pub async fn broadcast(
        &self,
        group: &str,
        frame: &O,
        exclude_current: bool,
    ) -> Result<(), ConsumerError> {
        let group = self.layer.safe_group_name(group);
        let mut map = Map::with_capacity(4);
        map.insert("type".into(), Value::from(GROUP_MESSAGE_TYPE));
        map.insert("message".into(), serde_json::to_value(frame)?);
        map.insert("exclude_current".into(), Value::from(exclude_current));
        map.insert("from_channel".into(), Value::from(self.inbox_name.as_str()));
        self.layer.group_send(&group, Message::new(map)).await?;
        Ok(())
    }

    fn queue(&self, text: Utf8Bytes) -> Result<(), ConsumerError> {
        match self.outbound.try_send(Outbound::Text(text)) {
            Ok(()) => {
                self.metrics.frame_out();
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                if !self.overflow.is_cancelled() {
                    self.overflow.cancel();
                    self.metrics.closed(CloseReason::SlowConsumer);
                    tracing::warn!(channel = %self.inbox_name, "closing slow consumer: outbound queue full");
                }
                Err(ConsumerError::SlowConsumer)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(ConsumerError::Closed),
        }
    }

    fn queue_close(&self, code: u16, reason: &'static str) {
        // A full queue means the client is not reading anyway; the overflow path closes it, so
        // such a client sees 1008 "slow consumer" instead of the code asked for here.
        if self
            .outbound
            .try_send(Outbound::Close(code, reason))
            .is_err()
        {
            self.overflow.cancel();
        }
    }
}

/// Why the reader loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    ClientLeft,
    Shutdown,
    Idle,
    TooLarge,
    WriterGone,
    LayerClosed,
}

/// Serves one upgraded WebSocket until it ends. Never panics and never returns an error: every
/// failure ends this connection only, with a close code, a log line and a counter.
pub async fn serve<C: Consumer>(
    socket: WebSocket,
    consumer: C,
    layer: Arc<dyn ChannelLayer>,
    settings: Arc<ConnectionSettings>,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
) {
    metrics.connection_opened();
    let (sink, mut stream) = socket.split();
    let (tx, rx) = mpsc::channel(settings.outbound_queue.max(1));
    let overflow = CancellationToken::new();
    let writer_gone = CancellationToken::new();
    let writer = tokio::spawn(write_loop(
        sink,
        rx,
        overflow.clone(),
        writer_gone.clone(),
        settings.clone(),
        metrics.clone(),
    ));

    let inbox = match layer.new_channel().await {
        Ok(inbox) => inbox,
        Err(e) => {
            tracing::error!(error = %e, "cannot open a layer channel; refusing the connection");
            metrics.closed(CloseReason::LayerUnavailable);
            let _ = tx.try_send(Outbound::Close(
                close_code::INTERNAL_ERROR,
                "channel layer unavailable",
            ));
            drop(tx);
            let _ = writer.await;
            metrics.connection_closed();
            return;
        }
    };
    let mut conn = Connection::<C::Outgoing> {
        inbox_name: inbox.name().to_owned(),
        layer,
        groups: Vec::new(),
        outbound: tx,
        overflow,
        metrics: metrics.clone(),
        _outgoing: PhantomData,
    };
    // The server instruments this task with a `connection` span; name the channel in it now
    // that it exists, so every log line of this connection says which one it is.
    tracing::Span::current().record("channel", conn.inbox_name.as_str());

    if let Err(e) = consumer.on_connect(&mut conn).await {
        tracing::warn!(error = %e, "connect hook failed; closing");
        metrics.closed(CloseReason::LayerUnavailable);
        // The hook may have joined groups before it failed; leave them, or a Redis-backed
        // group would keep a member that no longer exists.
        leave_groups(&mut conn).await;
        conn.queue_close(close_code::INTERNAL_ERROR, "could not join");
        finish(&mut conn, writer, &metrics).await;
        drop(inbox);
        return;
    }

    let mut inbox = inbox;
    let ending = read_loop(
        &consumer,
        &mut conn,
        &mut stream,
        &mut inbox,
        &settings,
        &shutdown,
        &writer_gone,
    )
    .await;
    tracing::debug!(?ending, "connection ending");

    consumer.on_disconnect(&mut conn).await;
    if ending == Ending::Shutdown {
        // Stay in the groups and keep delivering until the server's drain window ends: the
        // other connections of this process are saying goodbye at the same moment, and their
        // leave notices should still reach this client.
        drain_until::<C>(&mut conn, &mut inbox, &shutdown, settings.send_completion).await;
    }
    leave_groups(&mut conn).await;

    match ending {
        Ending::Shutdown => {
            metrics.closed(CloseReason::Shutdown);
            conn.queue_close(close_code::GOING_AWAY, "server shutting down");
        }
        Ending::Idle => {
            metrics.closed(CloseReason::Idle);
            conn.queue_close(close_code::GOING_AWAY, "idle timeout");
        }
        Ending::TooLarge => {
            metrics.closed(CloseReason::FrameTooLarge);
            conn.queue_close(close_code::MESSAGE_TOO_BIG, "frame too large");
        }
        Ending::LayerClosed => {
            metrics.closed(CloseReason::LayerUnavailable);
            conn.queue_close(close_code::INTERNAL_ERROR, "channel layer closed");
        }
        Ending::ClientLeft | Ending::WriterGone => {}
    }
    drop(inbox);
    finish(&mut conn, writer, &metrics).await;
    if ending != Ending::ClientLeft {
        linger(&mut stream, settings.close_linger).await;
    }
}

/// After the server's close frame, waits (bounded) for the client's: the closing handshake of
/// RFC 6455. Dropping the socket at once would make the client's automatic replies (pongs, its
/// close frame) hit a closed socket, and the resulting TCP reset can destroy the close frame
/// still unread in the client's buffer, so the client would see an abrupt end, not the code.
async fn linger(stream: &mut SplitStream<WebSocket>, wait: Duration) {
    let _ = tokio::time::timeout(wait, async {
        while let Some(Ok(message)) = stream.next().await {
            if matches!(message, WsMessage::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// Layer messages forwarded per turn of the read loop before client frames get a chance again.
const DELIVERY_BATCH: usize = 64;

/// Re-joins every group, which renews the membership's timestamp: layers expire memberships
/// after `group_expiry` (a day by default, as in the Python layers), and a connection that
/// stays open longer must not silently stop receiving its room.
async fn refresh_groups<O>(conn: &Connection<O>) {
    for group in &conn.groups {
        if let Err(e) = conn.layer.group_add(group, &conn.inbox_name).await {
            tracing::warn!(group, error = %e, "could not renew group membership; retrying at the next refresh");
        }
    }
}

async fn read_loop<C: Consumer>(
    consumer: &C,
    conn: &mut Connection<C::Outgoing>,
    stream: &mut SplitStream<WebSocket>,
    inbox: &mut Inbox,
    settings: &ConnectionSettings,
    shutdown: &Shutdown,
    writer_gone: &CancellationToken,
) -> Ending {
    let idle = tokio::time::sleep(settings.idle_timeout);
    tokio::pin!(idle);
    let mut refresh = tokio::time::interval(settings.group_refresh);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    refresh.tick().await;
    loop {
        // Not `biased`: deliveries and client frames take turns at random, so neither a flood
        // of broadcasts nor a flood of frames from this client can starve the other (or the
        // socket read that notices pongs). Each turn of deliveries takes up to
        // `DELIVERY_BATCH` messages, which keeps the layer's per-channel queue short.
        tokio::select! {
            () = shutdown.leaving() => return Ending::Shutdown,
            () = writer_gone.cancelled() => return Ending::WriterGone,
            () = conn.overflow.cancelled() => return Ending::WriterGone,
            () = &mut idle => return Ending::Idle,
            _ = refresh.tick() => refresh_groups(conn).await,
            message = inbox.receive() => match message {
                Ok(message) => {
                    deliver::<C>(conn, &message, settings.send_completion);
                    for _ in 1..DELIVERY_BATCH {
                        let Some(message) = inbox.try_receive() else { break };
                        deliver::<C>(conn, &message, settings.send_completion);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "layer channel closed");
                    return Ending::LayerClosed;
                }
            },
            frame = stream.next() => {
                idle.as_mut().reset(Instant::now() + settings.idle_timeout);
                match frame {
                    Some(Ok(WsMessage::Text(text))) => {
                        handle_text(consumer, conn, text.as_str(), settings.send_completion).await;
                    }
                    Some(Ok(WsMessage::Binary(_))) => {
                        conn.metrics.frame_in();
                        conn.metrics.frame_rejected();
                        let error = ErrorItem {
                            kind: "json_invalid".into(),
                            loc: Vec::new(),
                            msg: "Invalid JSON: binary frames are not supported; send JSON text frames".into(),
                        };
                        let _ = conn.queue(Utf8Bytes::from(runtime::rejection_frame(&[error])));
                    }
                    // Pongs only prove liveness (the idle timer was reset above); pings are
                    // answered by the WebSocket library itself.
                    Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => {}
                    Some(Ok(WsMessage::Close(_))) | None => return Ending::ClientLeft,
                    Some(Err(e)) => {
                        return if is_too_large(&e) {
                            tracing::info!(limit = settings.max_frame_bytes, "frame over the size limit; closing with 1009");
                            Ending::TooLarge
                        } else {
                            tracing::debug!(error = %e, "read error; connection ends");
                            Ending::ClientLeft
                        };
                    }
                }
            }
        }
    }
}

/// Handles one client frame through the app, then answers it: reply, error frame, completion.
async fn handle_text<C: Consumer>(
    consumer: &C,
    conn: &mut Connection<C::Outgoing>,
    text: &str,
    send_completion: bool,
) {
    conn.metrics.frame_in();
    let result = match consumer.on_frame(conn, text).await {
        Dispatched::Handled {
            reply: Some(reply), ..
        } => conn.send_framed(&reply),
        Dispatched::Handled { reply: None, .. } => Ok(()),
        Dispatched::Rejected { errors } => {
            conn.metrics.frame_rejected();
            conn.queue(Utf8Bytes::from(runtime::rejection_frame(&errors)))
        }
        Dispatched::Failed { action, error } => {
            conn.metrics.handler_error();
            tracing::warn!(action, error = %error, "handler failed");
            conn.queue(Utf8Bytes::from(runtime::failure_frame(action)))
        }
    };
    if result.is_ok() && send_completion {
        let _ = conn.send(&C::completion_frames().0);
    }
}

/// Forwards one layer message to the client, unless it is this connection's own broadcast with
/// `exclude_current`. Anything else on the channel is counted and logged, never silently lost.
fn deliver<C: Consumer>(conn: &Connection<C::Outgoing>, message: &Message, send_completion: bool) {
    if message.get("type").and_then(Value::as_str) != Some(GROUP_MESSAGE_TYPE) {
        conn.metrics.broadcast_dropped();
        tracing::warn!(kind = ?message.get("type"), "dropping a layer message of unknown type");
        return;
    }
    let excluded = message.get("exclude_current").and_then(Value::as_bool) == Some(true)
        && message.get("from_channel").and_then(Value::as_str) == Some(conn.inbox_name.as_str());
    if excluded {
        return;
    }
    // The JSON text of the frame is computed once per message per process and shared by every
    // receiver; wrapping it costs one small allocation, not a copy.
    let Some(text) = message.field_json("message") else {
        conn.metrics.broadcast_dropped();
        tracing::warn!("dropping a group message without a `message` field");
        return;
    };
    let bytes = Bytes::from_owner(SharedText(text));
    let Ok(text) = Utf8Bytes::try_from(bytes) else {
        conn.metrics.broadcast_dropped();
        return;
    };
    if conn.queue(text).is_ok() && send_completion {
        let _ = conn.send(&C::completion_frames().1);
    }
}

/// Shares layer-encoded JSON text with the WebSocket writer without copying it.
struct SharedText(Arc<str>);

impl AsRef<[u8]> for SharedText {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// During shutdown, keeps forwarding broadcasts until the drain window closes.
async fn drain_until<C: Consumer>(
    conn: &mut Connection<C::Outgoing>,
    inbox: &mut Inbox,
    shutdown: &Shutdown,
    send_completion: bool,
) {
    loop {
        tokio::select! {
            biased;
            () = shutdown.closing() => return,
            message = inbox.receive() => match message {
                Ok(message) => deliver::<C>(conn, &message, send_completion),
                Err(_) => return,
            },
        }
    }
}

async fn leave_groups<O: Serialize>(conn: &mut Connection<O>) {
    for group in std::mem::take(&mut conn.groups) {
        conn.metrics.group_left(&group);
        if let Err(e) = conn.layer.group_discard(&group, &conn.inbox_name).await {
            tracing::warn!(group, error = %e, "could not leave group");
        }
    }
}

/// Lets the writer send what is queued (bounded by the write timeout per frame), then ends.
async fn finish<O>(
    conn: &mut Connection<O>,
    writer: tokio::task::JoinHandle<()>,
    metrics: &Metrics,
) {
    // Dropping the last sender lets the writer drain the queue and stop.
    let (closed_tx, _) = mpsc::channel(1);
    drop(std::mem::replace(&mut conn.outbound, closed_tx));
    if let Err(e) = writer.await {
        tracing::error!(error = %e, "writer task failed");
    }
    metrics.connection_closed();
}

fn is_too_large(e: &axum::Error) -> bool {
    // axum wraps tungstenite's error and does not re-export its type, so the capacity error
    // ("Space limit exceeded: Message too long") is recognised by its text rather than by
    // downcasting to a tungstenite version that may differ from axum's. The oversized-frame
    // end-to-end test pins this behaviour.
    let text = e.to_string();
    text.contains("Space limit exceeded")
        || text.contains("too long")
        || text.contains("Message too big")
        || text.contains("capacity")
}

/// The writer task: drains the outbound queue into the socket, batching whatever is queued into
/// one flush, pings on an interval, and gives up on a write that exceeds the write timeout.
async fn write_loop(
    mut sink: SplitSink<WebSocket, WsMessage>,
    mut rx: mpsc::Receiver<Outbound>,
    overflow: CancellationToken,
    gone: CancellationToken,
    settings: Arc<ConnectionSettings>,
    metrics: Arc<Metrics>,
) {
    /// Frames fed before a flush: large enough to amortise syscalls under load, small enough
    /// that a burst does not delay the first frame noticeably.
    const BATCH: usize = 64;
    let mut ping = tokio::time::interval(settings.ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    let timeout = settings.write_timeout;
    loop {
        tokio::select! {
            // Pings before frames: under a constant stream of frames a biased `recv` first
            // would never ping, and a healthy but read-only client would look dead.
            biased;
            () = overflow.cancelled() => {
                let frame = close_frame(close_code::POLICY_VIOLATION, "slow consumer");
                let _ = tokio::time::timeout(timeout, sink.send(frame)).await;
                break;
            }
            _ = ping.tick() => {
                if !timed(sink.send(WsMessage::Ping(Bytes::new())), timeout, &metrics).await {
                    gone.cancel();
                    return;
                }
            }
            item = rx.recv() => {
                let Some(item) = item else {
                    let _ = tokio::time::timeout(timeout, sink.close()).await;
                    break;
                };
                let mut pending = Some(item);
                let mut fed = 0;
                let mut yielded = false;
                let mut closing = None;
                while let Some(item) = pending.take() {
                    match item {
                        Outbound::Text(text) => {
                            if !timed(sink.feed(WsMessage::Text(text)), timeout, &metrics).await {
                                gone.cancel();
                                return;
                            }
                            fed += 1;
                        }
                        Outbound::Close(code, reason) => {
                            closing = Some((code, reason));
                            break;
                        }
                    }
                    if fed < BATCH {
                        pending = rx.try_recv().ok();
                        if pending.is_none() && !yielded {
                            // The queue ran dry before the batch filled: let the tasks that
                            // are about to queue more run first (a broadcast wakes many
                            // connections at once), so one write carries several frames.
                            yielded = true;
                            tokio::task::yield_now().await;
                            pending = rx.try_recv().ok();
                        }
                    }
                }
                if !timed(sink.flush(), timeout, &metrics).await {
                    gone.cancel();
                    return;
                }
                if let Some((code, reason)) = closing {
                    let _ = tokio::time::timeout(timeout, sink.send(close_frame(code, reason))).await;
                    break;
                }
            }
        }
    }
    gone.cancel();
}

/// Runs one socket operation under the write timeout; `false` means the connection is done
/// (an error, or a peer so slow that a single write did not complete in time).
async fn timed<E>(
    operation: impl std::future::Future<Output = Result<(), E>>,
    timeout: Duration,
    metrics: &Metrics,
) -> bool {
    match tokio::time::timeout(timeout, operation).await {
        Ok(Ok(())) => true,
        Ok(Err(_)) => false,
        Err(_) => {
            metrics.closed(CloseReason::WriteTimeout);
            tracing::info!("write timed out; dropping the connection");
            false
        }
    }
}

fn close_frame(code: u16, reason: &'static str) -> WsMessage {
    WsMessage::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }))
}
