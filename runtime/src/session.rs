//! The life of one connection: one task that reads the client's frames, delivers the room's
//! broadcasts and writes to the socket, from one `poll` function.
//!
//! # Life of a connection
//!
//! 1. The server checked the handshake ([`Consumer::accept`]) and upgraded the socket.
//! 2. [`serve`] opens a layer channel (the connection's inbox) and calls
//!    [`Consumer::on_connect`] (chanx's "after authentication": join groups, greet).
//! 3. The session handles client frames **one at a time, in order** (chanx handles them
//!    concurrently, so one client's messages can overtake each other; we do not), and moves
//!    layer messages (broadcasts) into the client's outbound queue.
//! 4. When the client leaves, the idle timeout fires, or the server shuts down, the session
//!    calls [`Consumer::on_disconnect`] (leave notices), discards every group the connection
//!    joined, and closes with a close frame and the closing handshake.
//!
//! # One task, one poll
//!
//! Reader and writer are one task: `Session::poll_event` looks, in this order, at the
//! shutdown signal, the timers, the inbox, the pending writes and finally the socket's next
//! frame, and returns the first thing that needs an `await` (a client frame to hand to the
//! app, a membership renewal, the end). Sending to the client is a push onto a queue this task
//! owns, so a broadcast costs each receiver one wake-up, not two (reader task, then writer
//! task), and an idle connection holds one task and no channel between halves of itself.
//!
//! Measured with `make bench`'s CPU cells (server CPU µs per delivery at 10,000 deliveries/s,
//! beside a bare tokio-tungstenite broadcast server in the same run, on a loaded 2-core
//! machine): the previous design, a reader task and a writer task joined by a channel, cost
//! 1.55× the reference in 10 rooms of 10 and 1.35× in one room of 100 on the in-memory layer;
//! this one task costs 1.25× and 1.3–1.5×, and saves the second task's stack and queue per idle
//! connection. Nothing measured favoured two tasks, so there is one.
//!
//! # Flow control
//!
//! The order of that poll is the flow-control policy, in one place:
//! - the **outbound queue** bounds deliveries: a client that lets `outbound_queue` frames pile
//!   up is closed with 1008 `slow consumer` (see `Outbox` in `connection.rs`);
//! - the client's **reading pauses** while `read_pause_frames` frames wait to be written, so a
//!   client that floods without reading its answers is slowed down by TCP instead of closed;
//! - deliveries are taken `DELIVERY_BATCH` at a time before the socket is read again, so
//!   neither a flood of broadcasts nor a flood of client frames starves the other;
//! - the **inbound rate limit** (`limit.rs`) sits beside the read step: it only decides
//!   whether the socket is polled now or after a timer, so a client over its rate is paced by
//!   TCP, told once, and closed with 1008 only if it keeps flooding.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes};
use bytes::Bytes;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use room_chat_layers::{ChannelLayer, Inbox, Message};
use tokio::time::{Instant, Interval, MissedTickBehavior, Sleep};
use tokio_util::sync::WaitForCancellationFutureOwned;

use crate::broadcast::delivery;
use crate::close::{close_code, CloseReason};
use crate::connection::Connection;
use crate::consumer::{Consumer, FrameOutcome};
use crate::limit::{rate_limit_notice, Admit, InboundLimit, Throttled};
use crate::metrics::RuntimeMetrics;
use crate::settings::SessionSettings;
use crate::shutdown::Shutdown;
use crate::writer::{WriteError, Writer};

/// Layer messages moved into the outbound queue per turn before the socket is read again.
const DELIVERY_BATCH: usize = 64;

/// Serves one upgraded WebSocket until it ends. Never panics and never returns an error: every
/// failure ends this connection only, with a close code, a log line and one counted reason.
///
/// `socket` is anything that is a `Stream` of received WebSocket messages and a `Sink` of
/// messages to send: axum's `WebSocket` in the server, an in-memory pair in tests.
pub async fn serve<C, S, E>(
    socket: S,
    consumer: C,
    layer: Arc<dyn ChannelLayer>,
    settings: Arc<SessionSettings>,
    metrics: Arc<RuntimeMetrics>,
    shutdown: Shutdown,
) where
    C: Consumer,
    S: Stream<Item = Result<WsMessage, E>> + Sink<WsMessage> + Unpin + Send,
    E: std::fmt::Display,
    <S as Sink<WsMessage>>::Error: std::fmt::Display,
{
    metrics.connection_opened();
    let mut socket = socket;
    let inbox = match layer.new_channel().await {
        Ok(inbox) => inbox,
        Err(e) => {
            tracing::error!(error = %e, "cannot open a layer channel; refusing the connection");
            metrics.closed(CloseReason::LayerUnavailable);
            let frame = close_frame(close_code::INTERNAL_ERROR, "channel layer unavailable");
            let _ = tokio::time::timeout(settings.write_timeout, socket.send(frame)).await;
            metrics.connection_closed();
            return;
        }
    };
    let conn = Connection::new(
        Arc::from(inbox.name()),
        layer,
        settings.outbound_queue,
        metrics.clone(),
    );
    // The server instruments this task with a `connection` span; name the channel in it now
    // that it exists, so every log line of this connection says which one it is.
    tracing::Span::current().record("channel", conn.channel_name());
    let mut session = Session {
        leaving: Box::pin(shutdown.leaving_owned()),
        ping: interval(settings.ping_interval),
        refresh: interval(settings.group_refresh),
        idle: Box::pin(tokio::time::sleep(settings.idle_timeout)),
        last_heard: Instant::now(),
        writer: Writer::new(settings.write_timeout),
        write_bound: settings.write_timeout,
        limit: InboundLimit::new(
            settings.inbound_rate,
            settings.inbound_burst,
            settings.flood_close_after,
        ),
        completions: if settings.send_completion {
            Completions::of::<C>()
        } else {
            None
        },
        socket,
        consumer,
        conn,
        inbox,
        settings,
        shutdown,
    };
    session.run().await;
    metrics.connection_closed();
}

fn interval(period: Duration) -> Interval {
    let mut interval = tokio::time::interval_at(Instant::now() + period, period);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    interval
}

/// How the conversation with the client ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The client closed or went away.
    ClientLeft,
    /// The server ends it, for this reason.
    Server(CloseReason),
}

/// What `Session::poll_event` hands to the async loop.
enum Event<E> {
    /// A message from the client.
    Received(WsMessage),
    /// Reading the client failed.
    ReadFailed(E),
    /// Memberships are due for renewal.
    Refresh,
    /// The conversation is over.
    End(Ending),
}

struct Session<C: Consumer, S> {
    socket: S,
    consumer: C,
    conn: Connection<C::Outgoing>,
    inbox: Inbox,
    settings: Arc<SessionSettings>,
    shutdown: Shutdown,
    leaving: Pin<Box<WaitForCancellationFutureOwned>>,
    ping: Interval,
    refresh: Interval,
    /// Fires `idle_timeout` after `last_heard` (re-armed lazily: hearing from the client only
    /// stores a time, so a busy connection does not touch the timer wheel per frame).
    idle: Pin<Box<Sleep>>,
    last_heard: Instant,
    writer: Writer,
    /// How long the final writes (the close frame) may take.
    write_bound: Duration,
    /// The inbound rate limit; `None` when it is off.
    limit: Option<InboundLimit>,
    /// The encoded completion frames, when `send_completion` is on: encoded once per
    /// connection, not once per frame or per delivery.
    completions: Option<Completions>,
}

/// `complete` and `group_complete`, ready to write.
struct Completions {
    handled: Utf8Bytes,
    delivered: Utf8Bytes,
}

impl Completions {
    fn of<C: Consumer>() -> Option<Self> {
        let (handled, delivered) = C::completion_frames();
        match (
            serde_json::to_string(&handled),
            serde_json::to_string(&delivered),
        ) {
            (Ok(handled), Ok(delivered)) => Some(Self {
                handled: Utf8Bytes::from(handled),
                delivered: Utf8Bytes::from(delivered),
            }),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(error = %e, "the completion frames do not encode; sending none");
                None
            }
        }
    }
}

impl<C, S, E> Session<C, S>
where
    C: Consumer,
    S: Stream<Item = Result<WsMessage, E>> + Sink<WsMessage> + Unpin + Send,
    E: std::fmt::Display,
    <S as Sink<WsMessage>>::Error: std::fmt::Display,
{
    async fn run(&mut self) {
        if let Err(e) = self.consumer.on_connect(&mut self.conn).await {
            tracing::warn!(error = %e, "connect hook failed; closing");
            self.conn.metrics.closed(CloseReason::LayerUnavailable);
            // The hook may have joined groups before it failed; leave them, or a Redis-backed
            // group would keep a member that no longer exists.
            self.conn.leave_groups().await;
            self.close(Some((close_code::INTERNAL_ERROR, "could not join")), true)
                .await;
            return;
        }
        let ending = self.converse().await;
        tracing::debug!(?ending, "connection ending");
        self.consumer.on_disconnect(&mut self.conn).await;
        if ending == Ending::Server(CloseReason::Shutdown) {
            // Stay in the groups and keep delivering until the server's drain window ends: the
            // other connections of this process are saying goodbye at the same moment, and
            // their leave notices should still reach this client.
            self.drain().await;
        }
        self.conn.leave_groups().await;
        match ending {
            Ending::ClientLeft => self.close(None, false).await,
            Ending::Server(reason) => {
                self.conn.metrics.closed(reason);
                if reason == CloseReason::SlowConsumer {
                    // It is not reading what is queued; the close frame should not wait
                    // behind it, nor longer than the closing handshake would.
                    self.conn.outbox.clear();
                    self.write_bound = self.settings.close_linger.min(self.settings.write_timeout);
                }
                self.close(reason.close_frame(), reason.close_frame().is_some())
                    .await;
            }
        }
    }

    /// The conversation: frames in, answers and deliveries out, until it ends.
    async fn converse(&mut self) -> Ending {
        loop {
            let event = std::future::poll_fn(|cx| self.poll_event(cx)).await;
            match event {
                Event::Received(message) => {
                    let now = Instant::now();
                    self.last_heard = now;
                    if let Some(limit) = &mut self.limit {
                        match limit.spend(now) {
                            Throttled::No => {}
                            Throttled::Started => {
                                self.conn.metrics.throttled();
                                let (rate, burst) =
                                    (self.settings.inbound_rate, self.settings.inbound_burst);
                                tracing::info!(
                                    rate,
                                    burst,
                                    "client over its rate; pacing its reads"
                                );
                                self.conn
                                    .outbox
                                    .push_text(C::limit_frame(&rate_limit_notice(rate, burst)));
                            }
                            Throttled::Flooding => {
                                tracing::warn!(
                                    rate = self.settings.inbound_rate,
                                    held = ?self.settings.flood_close_after,
                                    "client kept flooding at its rate limit; closing with 1008"
                                );
                                return Ending::Server(CloseReason::RateLimited);
                            }
                        }
                    }
                    match message {
                        WsMessage::Text(text) => self.handle_text(&text).await,
                        WsMessage::Binary(data) => {
                            self.conn.metrics.frame_in();
                            let outcome = self.consumer.on_binary(&mut self.conn, &data);
                            self.answer(outcome);
                        }
                        // Pongs only prove liveness; pings are answered by the WebSocket
                        // library, whose pong goes out with the next flush.
                        WsMessage::Ping(_) | WsMessage::Pong(_) => self.writer.want_flush(),
                        WsMessage::Close(_) => {
                            // The library queued its close reply; let it out.
                            self.writer.want_flush();
                            return Ending::ClientLeft;
                        }
                    }
                }
                Event::ReadFailed(e) => {
                    let ending = read_failure(&e);
                    match ending {
                        Ending::Server(CloseReason::FrameTooLarge) => {
                            tracing::info!(
                                limit = self.settings.max_frame_bytes,
                                "frame over the size limit; closing with 1009"
                            );
                        }
                        Ending::Server(reason) => {
                            tracing::info!(error = %e, ?reason, "client broke the protocol; closing");
                        }
                        Ending::ClientLeft => {
                            tracing::debug!(error = %e, "read error; connection ends");
                        }
                    }
                    return ending;
                }
                Event::Refresh => self.conn.refresh_groups().await,
                Event::End(ending) => return ending,
            }
        }
    }

    /// The one poll of the connection (see the module docs for the order and why).
    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Event<E>> {
        if self.leaving.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Event::End(Ending::Server(CloseReason::Shutdown)));
        }
        if self.idle.as_mut().poll(cx).is_ready() {
            let due = self.last_heard + self.settings.idle_timeout;
            if Instant::now() >= due {
                return Poll::Ready(Event::End(Ending::Server(CloseReason::Idle)));
            }
            self.idle.as_mut().reset(due);
            // Register the re-armed timer with this waker.
            let _ = self.idle.as_mut().poll(cx);
        }
        if self.ping.poll_tick(cx).is_ready() {
            self.conn.outbox.push(WsMessage::Ping(Bytes::new()));
        }
        if self.refresh.poll_tick(cx).is_ready() {
            return Poll::Ready(Event::Refresh);
        }
        let more = match self.poll_deliveries(cx) {
            Ok(more) => more,
            Err(ending) => return Poll::Ready(Event::End(ending)),
        };
        if let Poll::Ready(Err(e)) = self.poll_write(cx) {
            return Poll::Ready(Event::End(e));
        }
        let admitted = match &mut self.limit {
            Some(limit) => limit.poll_admit(cx) == Admit::Read,
            None => true,
        };
        if admitted && self.conn.outbox.len() < self.settings.read_pause_frames {
            match Pin::new(&mut self.socket).poll_next(cx) {
                Poll::Ready(Some(Ok(message))) => return Poll::Ready(Event::Received(message)),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Event::ReadFailed(e)),
                Poll::Ready(None) => return Poll::Ready(Event::End(Ending::ClientLeft)),
                Poll::Pending => {
                    if let Some(limit) = &mut self.limit {
                        limit.quiet();
                    }
                }
            }
        }
        if more {
            // Deliveries are waiting beyond this batch: come back after other tasks had a turn.
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }

    /// Moves up to `DELIVERY_BATCH` layer messages into the outbound queue. `Ok(true)` when
    /// more are waiting; `Err` when the client is too slow or the layer is gone.
    fn poll_deliveries(&mut self, cx: &mut Context<'_>) -> Result<bool, Ending> {
        // No more than the queue has room for, so what is queued gets written before more is
        // taken; with no room at all, one more delivery is the overflow.
        let room = self
            .settings
            .outbound_queue
            .saturating_sub(self.conn.outbox.len());
        for _ in 0..DELIVERY_BATCH.min(room.max(1)) {
            match self.inbox.poll_receive(cx) {
                Poll::Ready(Ok(message)) => self.deliver(&message),
                Poll::Ready(Err(e)) => {
                    tracing::warn!(error = %e, "layer channel closed");
                    return Err(Ending::Server(CloseReason::LayerUnavailable));
                }
                Poll::Pending => return self.check_overflow().map(|()| false),
            }
        }
        self.check_overflow().map(|()| true)
    }

    fn check_overflow(&self) -> Result<(), Ending> {
        if self.conn.outbox.overflowed() {
            tracing::warn!(
                channel = self.conn.channel_name(),
                queue = self.settings.outbound_queue,
                "closing slow consumer: outbound queue full"
            );
            return Err(Ending::Server(CloseReason::SlowConsumer));
        }
        Ok(())
    }

    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Ending>> {
        let written = self
            .writer
            .poll_write(&mut self.socket, &mut self.conn.outbox, cx);
        self.conn.metrics.frames_out(self.conn.outbox.take_queued());
        match written {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(WriteError::TimedOut)) => {
                tracing::info!(
                    "write made no progress within the write timeout; dropping the connection"
                );
                Poll::Ready(Err(Ending::Server(CloseReason::WriteTimeout)))
            }
            Poll::Ready(Err(WriteError::Socket(e))) => {
                tracing::debug!(error = e, "write failed; connection ends");
                Poll::Ready(Err(Ending::ClientLeft))
            }
        }
    }

    /// Hands one text frame to the app, then queues its answer.
    async fn handle_text(&mut self, text: &Utf8Bytes) {
        self.conn.metrics.frame_in();
        let outcome = self.consumer.on_frame(&mut self.conn, text.as_str()).await;
        self.answer(outcome);
    }

    /// Queues the answer to one client frame: its reply or error frame, then (with
    /// `send_completion`) `complete`, which follows every frame handled, refused or failed, as
    /// in chanx.
    fn answer(&mut self, outcome: FrameOutcome) {
        match outcome {
            FrameOutcome::Handled { reply } => {
                if let Some(reply) = reply {
                    self.conn.outbox.push_text(reply);
                }
            }
            FrameOutcome::Rejected { error_frame } => {
                self.conn.metrics.frame_rejected();
                self.conn.outbox.push_text(error_frame);
            }
            FrameOutcome::Failed {
                action,
                error,
                error_frame,
            } => {
                self.conn.metrics.handler_error();
                tracing::warn!(action, error, "handler failed");
                self.conn.outbox.push_text(error_frame);
            }
        }
        if let Some(completions) = &self.completions {
            self.conn.outbox.push_text(completions.handled.clone());
        }
    }

    /// Queues one layer message for the client, unless it is this connection's own broadcast
    /// sent to the others only. Anything that is not a frame is counted and logged, never
    /// silently lost.
    fn deliver(&mut self, message: &Message) {
        match delivery::<C::Outgoing>(message) {
            Ok(delivery) => {
                if delivery.is_for(self.conn.channel_name()) {
                    self.conn.outbox.push_text(delivery.frame.clone());
                    if let Some(completions) = &self.completions {
                        self.conn.outbox.push_text(completions.delivered.clone());
                    }
                }
            }
            Err(why) => {
                self.conn.metrics.broadcast_dropped();
                tracing::warn!(error = %why, "dropping a layer message");
            }
        }
    }

    /// During shutdown, keeps delivering (no more reading) until the drain window closes.
    async fn drain(&mut self) {
        let shutdown = self.shutdown.clone();
        let closing = shutdown.closing();
        tokio::pin!(closing);
        std::future::poll_fn(|cx| {
            if closing.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
            if self.poll_deliveries(cx).is_err() {
                return Poll::Ready(());
            }
            if let Poll::Ready(Err(_)) = self.poll_write(cx) {
                return Poll::Ready(());
            }
            Poll::Pending
        })
        .await;
    }

    /// Writes what is queued and the close frame (each write bounded by the write timeout),
    /// closes the socket, and, when the server initiated the close, waits (bounded) for the
    /// client's close frame: the closing handshake of RFC 6455. Dropping the socket at once
    /// would make the client's automatic replies hit a closed socket, and the resulting TCP
    /// reset can destroy the close frame still unread in the client's buffer, so the client
    /// would see an abrupt end instead of the code.
    async fn close(&mut self, frame: Option<(u16, &'static str)>, linger: bool) {
        if let Some((code, reason)) = frame {
            // Past the slow-consumer bound: it is the last frame.
            self.conn.outbox.push_last(close_frame(code, reason));
        }
        let timeout = self.write_bound;
        let flushed = tokio::time::timeout(
            timeout,
            std::future::poll_fn(|cx| {
                self.writer
                    .poll_write(&mut self.socket, &mut self.conn.outbox, cx)
            }),
        )
        .await;
        self.conn.metrics.frames_out(self.conn.outbox.take_queued());
        if !matches!(flushed, Ok(Ok(()))) {
            return;
        }
        let _ = tokio::time::timeout(timeout, self.socket.close()).await;
        if linger {
            let _ = tokio::time::timeout(self.settings.close_linger, async {
                while let Some(Ok(message)) = self.socket.next().await {
                    if matches!(message, WsMessage::Close(_)) {
                        break;
                    }
                }
            })
            .await;
        }
    }
}

/// What a read error means for the connection. axum wraps tungstenite's error and does not
/// re-export its type, so errors are told apart by tungstenite's messages rather than by
/// downcasting to a tungstenite version that may differ from axum's; the end-to-end tests of
/// 1009, 1007 and 1002 pin them.
fn read_failure(e: &impl std::fmt::Display) -> Ending {
    let text = e.to_string();
    if text.contains("Space limit exceeded")
        || text.contains("too long")
        || text.contains("Message too big")
        || text.contains("capacity")
    {
        Ending::Server(CloseReason::FrameTooLarge)
    } else if text.starts_with("UTF-8 encoding error") {
        Ending::Server(CloseReason::InvalidUtf8)
    } else if text.starts_with("WebSocket protocol error")
        && !text.contains("without closing handshake")
    {
        // A client that vanished mid-connection is not a protocol violation; everything else
        // tungstenite reports under this heading is (RSV bits, masking, opcodes, control
        // frames, fragmentation).
        Ending::Server(CloseReason::ProtocolViolation)
    } else {
        Ending::ClientLeft
    }
}

fn close_frame(code: u16, reason: &'static str) -> WsMessage {
    WsMessage::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }))
}
