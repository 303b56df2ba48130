//! The room chat app: chanx's `RoomChatConsumer`, implemented on the generated handler trait.
//!
//! Connecting joins the room's group and tells the others; a chat message goes to everyone in
//! the room, the sender included; leaving tells the others; `ping` gets `pong`. The room name
//! comes from the URL only: a `room_name` a client puts in its payload is ignored.

use room_chat_protocol::room_chat::{self, Handler, Outgoing, Params};
use room_chat_protocol::runtime::Dispatched;
use room_chat_protocol::{
    CompleteMessage, GroupCompleteMessage, PingMessage, PongMessage, RoomChatMessage,
    RoomMessagePayload, RoomNotificationMessage,
};

use crate::consumer::{Connection, Consumer, ConsumerError};

/// One connection to one room.
#[derive(Debug, Clone)]
pub struct RoomChatConsumer {
    room_name: String,
    group: String,
}

impl RoomChatConsumer {
    /// The consumer for a connection to the room in `params`.
    pub fn new(params: Params) -> Self {
        let group = format!("room_{}", params.room_name);
        Self {
            room_name: params.room_name,
            group,
        }
    }

    fn notification(&self, message: String) -> Outgoing {
        Outgoing::RoomNotification(RoomNotificationMessage {
            payload: RoomMessagePayload {
                message,
                room_name: Some(self.room_name.clone()),
            },
        })
    }
}

impl Consumer for RoomChatConsumer {
    type Outgoing = Outgoing;
    type Error = ConsumerError;

    async fn on_connect(&self, conn: &mut Connection<Outgoing>) -> Result<(), ConsumerError> {
        conn.group_add(&self.group).await?;
        let joined = format!("🚪 Someone joined room '{}'", self.room_name);
        conn.broadcast(&self.group, &self.notification(joined), true)
            .await
    }

    async fn on_frame(
        &self,
        conn: &mut Connection<Outgoing>,
        text: &str,
    ) -> Dispatched<Outgoing, ConsumerError> {
        room_chat::dispatch(self, conn, text).await
    }

    async fn on_disconnect(&self, conn: &mut Connection<Outgoing>) {
        let left = format!("👋 Someone left room '{}'", self.room_name);
        if let Err(e) = conn
            .broadcast(&self.group, &self.notification(left), true)
            .await
        {
            tracing::warn!(room = %self.room_name, error = %e, "could not send the leave notice");
        }
    }

    fn completion_frames() -> (Outgoing, Outgoing) {
        (
            Outgoing::Complete(CompleteMessage { payload: () }),
            Outgoing::GroupComplete(GroupCompleteMessage { payload: () }),
        )
    }
}

impl Handler<Connection<Outgoing>> for RoomChatConsumer {
    type Error = ConsumerError;

    async fn handle_ping(
        &self,
        _conn: &mut Connection<Outgoing>,
        _message: PingMessage,
    ) -> Result<PongMessage, ConsumerError> {
        Ok(PongMessage { payload: () })
    }

    async fn handle_room_chat(
        &self,
        conn: &mut Connection<Outgoing>,
        message: RoomChatMessage,
    ) -> Result<(), ConsumerError> {
        let text = format!("💬 {}", message.payload.message);
        conn.broadcast(&self.group, &self.notification(text), false)
            .await
    }
}
