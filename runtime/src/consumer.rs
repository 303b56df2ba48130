//! The app's side of the runtime: the [`Consumer`] trait an app implements (the way a chanx
//! consumer subclasses `AsyncJsonWebsocketConsumer`), and what the runtime tells it and asks of
//! it.

use std::future::Future;

use axum::extract::ws::Utf8Bytes;
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;

use crate::connection::{Connection, ConsumerError};

/// An app served by the runtime: how a connection is admitted, and the hooks around its frames.
///
/// One value is built per connection by [`accept`](Consumer::accept), before the upgrade, so it
/// can hold that connection's parameters (a room, a user); every hook gets the connection's
/// [`Connection`] context.
pub trait Consumer: Sized + Send + Sync + 'static {
    /// The generated enum of messages the server may send.
    type Outgoing: Serialize + Send + Sync + 'static;
    /// The app's own settings (name rules, for instance), shared by every connection.
    type Settings: Send + Sync + 'static;

    /// The channel's address as the contract writes it, `{name}` for each parameter
    /// (`/ws/room/{room_name}`). The server hands every path under its fixed part (`/ws/room/`)
    /// to [`accept`](Consumer::accept), which judges the rest: a malformed path is the app's
    /// refusal to explain, not a bare 404.
    const ADDRESS: &'static str;

    /// Before the upgrade: the consumer for this handshake, or why it is refused. A refusal is
    /// an HTTP status with a plain-text reason, so the client learns why instead of seeing a
    /// socket open and die. Whatever the connection will need on every message (its groups,
    /// checked against the naming rules) is best built here, once.
    fn accept(settings: &Self::Settings, handshake: &Handshake<'_>) -> Result<Self, Refusal>;

    /// After the upgrade: join groups, greet others.
    fn on_connect(
        &self,
        conn: &mut Connection<Self::Outgoing>,
    ) -> impl Future<Output = Result<(), ConsumerError>> + Send;

    /// One text frame from the client; normally a call to the generated `dispatch`, whose
    /// result says what to answer.
    fn on_frame(
        &self,
        conn: &mut Connection<Self::Outgoing>,
        text: &str,
    ) -> impl Future<Output = FrameOutcome> + Send;

    /// One binary frame from the client. The protocol decides what it means; a JSON protocol
    /// refuses it with its error frame.
    fn on_binary(&self, conn: &mut Connection<Self::Outgoing>, data: &[u8]) -> FrameOutcome;

    /// The connection is ending (the client left, or the server is shutting down): say goodbye.
    /// Groups are discarded by the runtime afterwards.
    fn on_disconnect(
        &self,
        conn: &mut Connection<Self::Outgoing>,
    ) -> impl Future<Output = ()> + Send;

    /// The protocol's error frame telling the client it reached a limit of the runtime (the
    /// inbound rate); `detail` names the limit in words. Sent once per episode, so a client
    /// learns why its frames are read more slowly instead of guessing at a slow network.
    fn limit_frame(detail: &str) -> Utf8Bytes;

    /// The frames the app sends when `SEND_COMPLETION` is on: after a handled frame, and after a
    /// delivered broadcast.
    fn completion_frames() -> (Self::Outgoing, Self::Outgoing);
}

/// What a consumer can see of a handshake when deciding whether to admit it.
#[derive(Debug, Clone, Copy)]
pub struct Handshake<'a> {
    /// The request's headers (cookies, authorization, origin, ...).
    pub headers: &'a HeaderMap,
    /// The request path, still percent-encoded.
    pub path: &'a str,
    /// The query string, if any.
    pub query: Option<&'a str>,
}

/// A handshake the consumer refused: the HTTP status, the reason shown to the client, and a
/// label to count it under (a fixed set, so metrics stay bounded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The HTTP status (403 for a name the rules refuse, 400 for one that does not decode).
    pub status: StatusCode,
    /// Plain text for the client.
    pub reason: String,
    /// The metrics label (`room_name`, `unauthenticated`, ...).
    pub label: &'static str,
}

impl Refusal {
    /// A refusal with `status`, counted under `label`.
    pub fn new(status: StatusCode, label: &'static str, reason: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.into(),
            label,
        }
    }
}

/// What became of one client frame, as the app's dispatcher reports it; the runtime sends the
/// answer and keeps the counts.
#[derive(Debug)]
pub enum FrameOutcome {
    /// Handled; with the direct reply, encoded, when the operation has one.
    Handled {
        /// The reply frame's JSON text.
        reply: Option<Utf8Bytes>,
    },
    /// The frame did not decode; the client gets this error frame.
    Rejected {
        /// The error frame's JSON text.
        error_frame: Utf8Bytes,
    },
    /// The handler failed; the client gets the error frame, the log gets the error.
    Failed {
        /// The action whose handler failed.
        action: &'static str,
        /// The handler's error, for the log.
        error: String,
        /// The error frame's JSON text.
        error_frame: Utf8Bytes,
    },
}
