//! A connection as the app's handlers see it: its channel in the layer, its groups, and the
//! frames waiting to be written to its client.
//!
//! Handlers run inside the connection's own task (see [`crate::session`]), so sending to the
//! client is a push onto a queue this task owns: no channel, no lock, no wake-up of another
//! task. The session writes the queue out between frames.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::Arc;

use axum::extract::ws::{Message as WsMessage, Utf8Bytes};
use bytes::Bytes;
use room_chat_layers::{ChannelLayer, Group, LayerError, Message, ScriptedSend};
use serde::Serialize;

use crate::broadcast::Broadcast;
use crate::metrics::RuntimeMetrics;

/// Errors of the runtime's operations on a connection.
///
/// These stay concrete and unboxed: they occur on the per-message path (a refused broadcast is
/// normal while Redis is down), where allocating a boxed error per occurrence would add cost
/// exactly when the server is busiest.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsumerError {
    /// The channel layer refused or failed.
    #[error("channel layer: {0}")]
    Layer(#[from] LayerError),
    /// A frame could not be encoded as JSON.
    #[error("encoding a frame: {0}")]
    Encode(#[from] serde_json::Error),
}

/// The frames waiting to be written to one client, and the slow-consumer rule.
///
/// **Backpressure.** Two kinds of frames wait here, and they are bounded differently:
/// - *deliveries* (broadcasts from the room) arrive whatever the client does; when
///   `capacity` frames wait, the client is not keeping up with its room and is closed with
///   1008 `slow consumer`, rather than growing its backlog without bound or silently skipping
///   frames it would never know it missed;
/// - *answers* to the client's own frames (replies, error frames) are produced only when the
///   session reads a frame, and the session stops reading while `read_pause` frames wait. A
///   client that writes faster than it reads its answers is therefore slowed down by TCP, not
///   closed. Answers alone can reach `capacity` only through a handler that answers one frame
///   with hundreds; that too counts as falling behind.
#[derive(Debug)]
pub(crate) struct Outbox {
    frames: VecDeque<WsMessage>,
    capacity: usize,
    overflowed: bool,
    queued: u64,
}

impl Outbox {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            frames: VecDeque::new(),
            capacity: capacity.max(1),
            overflowed: false,
            queued: 0,
        }
    }

    /// Queues a frame; past `capacity` the client is marked as too slow.
    pub(crate) fn push(&mut self, frame: WsMessage) {
        if self.frames.len() >= self.capacity {
            self.overflowed = true;
            return;
        }
        self.queued += 1;
        self.frames.push_back(frame);
    }

    pub(crate) fn push_text(&mut self, text: Utf8Bytes) {
        self.push(WsMessage::Text(text));
    }

    /// Whether a frame was refused for lack of room (the client is a slow consumer).
    pub(crate) fn overflowed(&self) -> bool {
        self.overflowed
    }

    pub(crate) fn len(&self) -> usize {
        self.frames.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    pub(crate) fn pop(&mut self) -> Option<WsMessage> {
        self.frames.pop_front()
    }

    /// Frames queued since the last call (for the frames-out counter).
    pub(crate) fn take_queued(&mut self) -> u64 {
        std::mem::take(&mut self.queued)
    }

    /// Queues the last frame of the connection (its close frame), whatever the bound.
    pub(crate) fn push_last(&mut self, frame: WsMessage) {
        self.queued += 1;
        self.frames.push_back(frame);
    }

    /// Drops what is queued (the client will not read it) and gives the memory back.
    pub(crate) fn clear(&mut self) {
        self.frames = VecDeque::new();
    }

    /// After a burst, a long-idle connection should not keep its peak queue allocated.
    pub(crate) fn shrink(&mut self) {
        const KEEP: usize = 16;
        if self.frames.is_empty() && self.frames.capacity() > KEEP {
            self.frames.shrink_to(KEEP);
        }
    }
}

/// A connection as handlers see it: its layer channel, its groups, and a way to send.
pub struct Connection<O> {
    channel: Arc<str>,
    layer: Arc<dyn ChannelLayer>,
    groups: Vec<Group>,
    pub(crate) outbox: Outbox,
    pub(crate) metrics: Arc<RuntimeMetrics>,
    _outgoing: PhantomData<fn(O)>,
}

impl<O> std::fmt::Debug for Connection<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("channel", &self.channel)
            .field("groups", &self.groups)
            .finish_non_exhaustive()
    }
}

impl<O: Serialize + Send + Sync + 'static> Connection<O> {
    pub(crate) fn new(
        channel: Arc<str>,
        layer: Arc<dyn ChannelLayer>,
        outbound_queue: usize,
        metrics: Arc<RuntimeMetrics>,
    ) -> Self {
        Self {
            channel,
            layer,
            groups: Vec::new(),
            outbox: Outbox::new(outbound_queue),
            metrics,
            _outgoing: PhantomData,
        }
    }

    /// The connection's unique channel name in the layer.
    pub fn channel_name(&self) -> &str {
        &self.channel
    }

    /// The groups this connection is in.
    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    /// Joins `group`; the runtime leaves it when the connection ends.
    pub async fn group_add(&mut self, group: &Group) -> Result<(), ConsumerError> {
        self.layer.group_add(group, &self.channel).await?;
        if !self.groups.contains(group) {
            self.metrics.group_joined(group);
            self.groups.push(group.clone());
        }
        Ok(())
    }

    /// Leaves `group`.
    pub async fn group_discard(&mut self, group: &Group) -> Result<(), ConsumerError> {
        // Forget the group only once the layer has let go of it: if the discard fails, the
        // runtime still discards it when the connection ends.
        self.layer.group_discard(group, &self.channel).await?;
        if let Some(at) = self.groups.iter().position(|g| g == group) {
            self.groups.swap_remove(at);
            self.metrics.group_left(group);
        }
        Ok(())
    }

    /// Sends a frame to this client.
    pub fn send(&mut self, frame: &O) -> Result<(), ConsumerError> {
        let text = serde_json::to_string(frame)?;
        self.outbox.push_text(Utf8Bytes::from(text));
        Ok(())
    }

    /// Sends `frame` to every member of `group`, in this process and others, this connection
    /// included (a chat message reaches its sender too).
    pub async fn broadcast(&self, group: &Group, frame: O) -> Result<(), ConsumerError> {
        self.broadcast_message(group, frame, false).await
    }

    /// Sends `frame` to every other member of `group` (a join or leave notice).
    pub async fn broadcast_to_others(&self, group: &Group, frame: O) -> Result<(), ConsumerError> {
        self.broadcast_message(group, frame, true).await
    }

    /// Sends `frame` to every member of `group`, this connection included, through a script
    /// that the layer runs in place of its publish, so that what the caller keeps beside the
    /// broadcast is written in the same Redis command (see [`ScriptedSend`]). `script` is given
    /// the message exactly as the layer will publish it (chanx's envelope, msgpack) and builds
    /// the send; when it declines (`None`) nothing is sent and this returns `Ok(false)`, so the
    /// caller can send another way. Only on a layer whose
    /// [`script_server`](ChannelLayer::script_server) is `Some` for `group`.
    pub async fn broadcast_scripted(
        &self,
        group: &Group,
        frame: O,
        script: impl FnOnce(&Bytes) -> Option<ScriptedSend>,
    ) -> Result<bool, ConsumerError> {
        let broadcast = Broadcast::new(frame, self.channel.clone(), false)?;
        let message = Message::typed(broadcast);
        let Some(script) = script(&message.to_msgpack()?) else {
            return Ok(false);
        };
        self.layer
            .group_send_scripted(group, message, script)
            .await?;
        Ok(true)
    }

    /// The server that [`broadcast_scripted`](Connection::broadcast_scripted) to `group` would
    /// run its script on (see [`ChannelLayer::script_server`]).
    pub fn script_server(&self, group: &Group) -> Option<&str> {
        self.layer.script_server(group)
    }

    async fn broadcast_message(
        &self,
        group: &Group,
        frame: O,
        exclude_current: bool,
    ) -> Result<(), ConsumerError> {
        // Encoded here, once; every receiver in this process shares the bytes.
        let broadcast = Broadcast::new(frame, self.channel.clone(), exclude_current)?;
        self.layer
            .group_send(group, Message::typed(broadcast))
            .await?;
        Ok(())
    }

    /// Re-joins every group, which renews the membership's timestamp: layers expire memberships
    /// after `group_expiry` (a day by default, as in the Python layers), and a connection that
    /// stays open longer must not silently stop receiving its room.
    pub(crate) async fn refresh_groups(&self) {
        for group in &self.groups {
            if let Err(e) = self.layer.group_add(group, &self.channel).await {
                tracing::warn!(%group, error = %e, "could not renew group membership; retrying at the next refresh");
            }
        }
    }

    /// Leaves every group (the connection is ending).
    pub(crate) async fn leave_groups(&mut self) {
        for group in std::mem::take(&mut self.groups) {
            self.metrics.group_left(&group);
            if let Err(e) = self.layer.group_discard(&group, &self.channel).await {
                tracing::warn!(%group, error = %e, "could not leave group");
            }
        }
    }
}
