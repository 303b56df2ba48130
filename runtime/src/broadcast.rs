//! The broadcast envelope: what one connection's `broadcast` puts into the channel layer, and
//! what each receiving connection turns back into a WebSocket frame.
//!
//! On the wire (through Redis) it is chanx's `broadcast_message` map, so Python and Rust nodes
//! read each other's broadcasts:
//!
//! ```json
//! {"type": "handle_group_message", "message": <the outgoing frame>,
//!  "exclude_current": false, "from_channel": "<the sender's channel>"}
//! ```
//!
//! **Encoded once, shared by every receiver.** The sender encodes the frame's JSON text once,
//! into shared bytes, and puts the typed [`Broadcast`] into the layer as it is. The in-memory
//! layer hands the same value to every receiver, which only clones the bytes handle (a
//! reference-count increment): no per-receiver allocation, UTF-8 check, lock or map lookup. A
//! Redis layer encodes the struct straight to msgpack; what arrives from Redis is decoded into a
//! [`Delivery`] by the first receiver of this process and shared with the others through the
//! message's memo ([`Message::derive`]).

use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use room_chat_layers::Message;
use serde::ser::{Serialize, SerializeStruct, Serializer};
use serde_json::Value;

/// The `type` of a broadcast travelling through a layer (chanx's `broadcast_message` format).
pub const GROUP_MESSAGE_TYPE: &str = "handle_group_message";

/// What a receiving connection needs of a broadcast: the frame, ready to write, and whom to
/// leave out.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    /// The frame's JSON text.
    pub(crate) frame: Utf8Bytes,
    /// The sender's channel, when the sender asked to be left out (`exclude_current`).
    pub(crate) excluded: Option<Arc<str>>,
}

impl Delivery {
    /// Whether the connection with this channel name gets the frame.
    pub(crate) fn is_for(&self, channel: &str) -> bool {
        self.excluded.as_deref() != Some(channel)
    }
}

/// A broadcast built in this process: the frame's text and, for encoding to Redis, the typed
/// frame itself (so the msgpack map is encoded from the struct, with no JSON tree between).
pub(crate) struct Broadcast<O> {
    frame: O,
    from_channel: Arc<str>,
    delivery: Delivery,
}

impl<O: Serialize> Broadcast<O> {
    /// Encodes `frame` once; the result is what every receiver shares.
    pub(crate) fn new(
        frame: O,
        from_channel: Arc<str>,
        exclude_current: bool,
    ) -> Result<Self, serde_json::Error> {
        let text = serde_json::to_string(&frame)?;
        Ok(Self {
            frame,
            delivery: Delivery {
                frame: Utf8Bytes::from(text),
                excluded: exclude_current.then(|| from_channel.clone()),
            },
            from_channel,
        })
    }
}

impl<O: Serialize> Serialize for Broadcast<O> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // The field order of chanx's dict, so the msgpack bytes match a Python sender's.
        let mut map = serializer.serialize_struct("Broadcast", 4)?;
        map.serialize_field("type", GROUP_MESSAGE_TYPE)?;
        map.serialize_field("message", &self.frame)?;
        map.serialize_field("exclude_current", &self.delivery.excluded.is_some())?;
        map.serialize_field("from_channel", &*self.from_channel)?;
        map.end()
    }
}

/// Why a layer message could not be delivered as a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Undeliverable {
    /// Its `type` is not [`GROUP_MESSAGE_TYPE`].
    #[error("a layer message of another type than `handle_group_message`")]
    UnknownType,
    /// It has no `message` field to send.
    #[error("a group message without a `message` field")]
    NoFrame,
}

/// The delivery a layer message carries: read from the typed broadcast when it was sent from
/// this process through the in-memory layer, or decoded once per message (and shared) when it
/// came through Redis, possibly from a Python node.
pub(crate) fn delivery<O: Serialize + Send + Sync + 'static>(
    message: &Message,
) -> Result<&Delivery, Undeliverable> {
    if let Some(broadcast) = message.downcast::<Broadcast<O>>() {
        return Ok(&broadcast.delivery);
    }
    match message.derive(decode) {
        Some(Ok(delivery)) => Ok(delivery),
        Some(Err(why)) => Err(*why),
        // Something else derived a different form from this message first; nothing in this
        // process does, but a foreign form is no frame either.
        None => Err(Undeliverable::UnknownType),
    }
}

fn decode(message: &Message) -> Result<Delivery, Undeliverable> {
    if message.get("type").and_then(Value::as_str) != Some(GROUP_MESSAGE_TYPE) {
        return Err(Undeliverable::UnknownType);
    }
    let frame = message.get("message").ok_or(Undeliverable::NoFrame)?;
    let excluded = if message.get("exclude_current").and_then(Value::as_bool) == Some(true) {
        message
            .get("from_channel")
            .and_then(Value::as_str)
            .map(Arc::from)
    } else {
        None
    };
    Ok(Delivery {
        frame: Utf8Bytes::from(frame.to_string()),
        excluded,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(serde::Serialize)]
    struct Frame {
        action: &'static str,
        payload: Value,
    }

    fn frame() -> Frame {
        Frame {
            action: "room_notification",
            payload: json!({"message": "💬 hi", "room_name": "café"}),
        }
    }

    #[test]
    fn encodes_like_chanx_and_decodes_back() {
        let typed =
            Message::typed(Broadcast::new(frame(), Arc::from("specific.a!b"), true).unwrap());
        let python_shaped = Message::from_value(json!({
            "type": "handle_group_message",
            "message": {"action": "room_notification", "payload": {"message": "💬 hi", "room_name": "café"}},
            "exclude_current": true,
            "from_channel": "specific.a!b",
        }))
        .unwrap();
        assert_eq!(
            typed.to_msgpack().unwrap(),
            python_shaped.to_msgpack().unwrap()
        );
        let from_redis = Message::from_msgpack(&typed.to_msgpack().unwrap()).unwrap();
        let local = delivery::<Frame>(&typed).unwrap();
        let remote = delivery::<Frame>(&from_redis).unwrap();
        assert_eq!(local.frame, remote.frame);
        assert_eq!(local.excluded, remote.excluded);
        assert!(!remote.is_for("specific.a!b"));
        assert!(remote.is_for("specific.a!c"));
    }

    #[test]
    fn receivers_share_one_frame() {
        let message =
            Message::typed(Broadcast::new(frame(), Arc::from("specific.a!b"), false).unwrap());
        let copy = message.clone();
        let a = delivery::<Frame>(&message).unwrap();
        let b = delivery::<Frame>(&copy).unwrap();
        assert_eq!(
            a.frame.as_str().as_ptr(),
            b.frame.as_str().as_ptr(),
            "one encoding"
        );
        let remote = Message::from_msgpack(&message.to_msgpack().unwrap()).unwrap();
        let shared = remote.clone();
        let c = delivery::<Frame>(&remote).unwrap();
        let d = delivery::<Frame>(&shared).unwrap();
        assert_eq!(
            c.frame.as_str().as_ptr(),
            d.frame.as_str().as_ptr(),
            "decoded once"
        );
    }

    #[test]
    fn foreign_messages_are_not_frames() {
        let other = Message::from_value(json!({"type": "chat.message", "message": {}})).unwrap();
        assert_eq!(
            delivery::<Frame>(&other).unwrap_err(),
            Undeliverable::UnknownType
        );
        let empty = Message::from_value(json!({"type": GROUP_MESSAGE_TYPE})).unwrap();
        assert_eq!(
            delivery::<Frame>(&empty).unwrap_err(),
            Undeliverable::NoFrame
        );
    }
}
