//! The room chat app: chanx's `RoomChatConsumer`, implemented on the generated handler trait.
//!
//! Connecting joins the room's group and tells the others; a chat message goes to everyone in
//! the room, the sender included; leaving tells the others; `ping` gets `pong`. The room name
//! comes from the URL only: a `room_name` a client puts in its payload is ignored.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::ws::Utf8Bytes;
use axum::http::StatusCode;
use room_chat_layers::Group;
use room_chat_protocol::room_chat::{self, Handler, Outgoing, Params};
use room_chat_protocol::runtime::{self, Dispatched, ErrorItem};
use room_chat_protocol::{
    CompleteMessage, GroupCompleteMessage, PingMessage, PongMessage, RoomChatMessage,
    RoomMessagePayload, RoomNotificationMessage,
};
use room_chat_runtime::{Connection, Consumer, ConsumerError, FrameOutcome, Handshake, Refusal};

/// Default of [`RoomChatSettings::max_room_name_chars`].
pub const MAX_ROOM_NAME_CHARS: usize = 100;
/// Default of [`RoomChatSettings::max_room_members`].
pub const MAX_ROOM_MEMBERS: usize = 1000;

/// The room chat's own settings, and the `clap` group that sets them.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Rooms")]
pub struct RoomChatSettings {
    /// Longest accepted room name, in characters (Unicode scalar values, after NFC). The
    /// Python layers cap group names at 100; `room_` plus 100 characters still maps to a safe
    /// name.
    #[arg(long, env = "MAX_ROOM_NAME_CHARS", default_value_t = MAX_ROOM_NAME_CHARS)]
    pub max_room_name_chars: usize,

    /// Most members one room may have in this process; a further handshake gets HTTP 503
    /// `room is full`. With the inbound rate limit it bounds what one member can make the
    /// process deliver: at most `INBOUND_RATE` × this many frames per second.
    #[arg(long, env = "MAX_ROOM_MEMBERS", default_value_t = MAX_ROOM_MEMBERS)]
    pub max_room_members: usize,

    /// Members per room now, shared by every connection of this process.
    #[arg(skip)]
    pub census: Arc<RoomCensus>,
}

/// Members per room in this process, for `max_room_members`. A lock around a map, touched
/// twice per connection (handshake and drop), never per message.
#[derive(Debug, Default)]
pub struct RoomCensus {
    rooms: Mutex<HashMap<String, usize>>,
}

impl RoomCensus {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        // The map stays consistent whatever panicked while holding it (each change is one
        // insert or remove), so a poisoned lock is taken over.
        self.rooms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes a seat in `room` unless it already has `max` members.
    fn seat(self: &Arc<Self>, room: &str, max: usize) -> Option<Seat> {
        let mut rooms = self.lock();
        let members = rooms.entry(room.to_owned()).or_default();
        if *members >= max {
            if *members == 0 {
                rooms.remove(room);
            }
            return None;
        }
        *members += 1;
        Some(Seat {
            census: self.clone(),
            room: room.to_owned(),
        })
    }

    /// Members of `room` in this process.
    pub fn members(&self, room: &str) -> usize {
        self.lock().get(room).copied().unwrap_or(0)
    }
}

/// One connection's place in its room's count; given back when the connection's consumer is
/// dropped, however the connection ended.
#[derive(Debug)]
struct Seat {
    census: Arc<RoomCensus>,
    room: String,
}

impl Drop for Seat {
    fn drop(&mut self) {
        let mut rooms = self.census.lock();
        if let Some(members) = rooms.get_mut(&self.room) {
            *members = members.saturating_sub(1);
            if *members == 0 {
                rooms.remove(&self.room);
            }
        }
    }
}

/// One connection to one room.
#[derive(Debug)]
pub struct RoomChatConsumer {
    room_name: String,
    /// The room's layer group, `room_<name>` mapped to a valid group name once, at the
    /// handshake, rather than on every broadcast.
    group: Group,
    /// Counted in the room's members while the connection lives.
    _seat: Option<Seat>,
}

impl RoomChatConsumer {
    /// The consumer for a connection to the room in `params` (not counted against any room
    /// cap: [`Consumer::accept`] is what admits a handshake).
    pub fn new(params: Params) -> Self {
        let group = Group::for_text(&format!("room_{}", params.room_name));
        Self {
            room_name: params.room_name,
            group,
            _seat: None,
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
    type Settings = RoomChatSettings;
    const ADDRESS: &'static str = room_chat::ADDRESS;

    fn accept(settings: &RoomChatSettings, handshake: &Handshake<'_>) -> Result<Self, Refusal> {
        let refuse =
            |e: RoomNameError| Refusal::new(StatusCode::FORBIDDEN, "room_name", e.to_string());
        // A literal `/` (or nothing) after `/ws/room/` asks for a room whose name has one.
        let prefix = Self::ADDRESS.split('{').next().unwrap_or_default();
        let rest = handshake.path.strip_prefix(prefix).unwrap_or_default();
        if rest.is_empty() {
            return Err(refuse(RoomNameError::Empty));
        }
        if rest.contains('/') {
            return Err(refuse(RoomNameError::Slash));
        }
        // The generated parser reads the parameter the way the contract's address declares it
        // (one percent-decoded UTF-8 segment); the room-name rule then applies to the text.
        let params = Params::from_path(handshake.path)
            .map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, "room_name", e.to_string()))?;
        let room_name =
            room_name(&params.room_name, settings.max_room_name_chars).map_err(refuse)?;
        let seat = settings
            .census
            .seat(&room_name, settings.max_room_members)
            .ok_or_else(|| {
                Refusal::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "room_full",
                    format!(
                        "room is full ({} members on this server)",
                        settings.max_room_members
                    ),
                )
            })?;
        Ok(Self {
            _seat: Some(seat),
            ..Self::new(Params { room_name })
        })
    }

    async fn on_connect(&self, conn: &mut Connection<Outgoing>) -> Result<(), ConsumerError> {
        conn.group_add(&self.group).await?;
        let joined = format!("🚪 Someone joined room '{}'", self.room_name);
        conn.broadcast_to_others(&self.group, self.notification(joined))
            .await
    }

    async fn on_frame(&self, conn: &mut Connection<Outgoing>, text: &str) -> FrameOutcome {
        outcome(room_chat::dispatch(self, conn, text).await)
    }

    fn on_binary(&self, _conn: &mut Connection<Outgoing>, _data: &[u8]) -> FrameOutcome {
        let error = ErrorItem {
            kind: "json_invalid".into(),
            loc: Vec::new(),
            msg: "Invalid JSON: binary frames are not supported; send JSON text frames".into(),
        };
        FrameOutcome::Rejected {
            error_frame: Utf8Bytes::from(runtime::rejection_frame(&[error])),
        }
    }

    async fn on_disconnect(&self, conn: &mut Connection<Outgoing>) {
        let left = format!("👋 Someone left room '{}'", self.room_name);
        if let Err(e) = conn
            .broadcast_to_others(&self.group, self.notification(left))
            .await
        {
            tracing::warn!(room = %self.room_name, error = %e, "could not send the leave notice");
        }
    }

    fn limit_frame(detail: &str) -> Utf8Bytes {
        Utf8Bytes::from(runtime::detail_frame(detail))
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
        conn.broadcast(&self.group, self.notification(text)).await
    }
}

/// What the generated dispatcher did, as the frames the runtime sends back.
fn outcome(dispatched: Dispatched<Outgoing, ConsumerError>) -> FrameOutcome {
    match dispatched {
        Dispatched::Handled { reply, action } => match reply.map(|r| serde_json::to_string(&r)) {
            None => FrameOutcome::Handled { reply: None },
            Some(Ok(reply)) => FrameOutcome::Handled {
                reply: Some(Utf8Bytes::from(reply)),
            },
            Some(Err(e)) => FrameOutcome::Failed {
                action,
                error: e.to_string(),
                error_frame: Utf8Bytes::from(runtime::failure_frame(action)),
            },
        },
        Dispatched::Rejected { errors } => FrameOutcome::Rejected {
            error_frame: Utf8Bytes::from(runtime::rejection_frame(&errors)),
        },
        Dispatched::Failed { action, error } => FrameOutcome::Failed {
            action,
            error: error.to_string(),
            error_frame: Utf8Bytes::from(runtime::failure_frame(action)),
        },
    }
}

/// Why a room name is refused, in words a client can show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomNameError {
    /// Nothing between the slashes.
    #[error("room name must not be empty")]
    Empty,
    /// Longer than the configured maximum.
    #[error("room name is longer than {max} characters")]
    TooLong {
        /// The limit.
        max: usize,
    },
    /// Contains `/` (it would be another path).
    #[error("room name must not contain '/'")]
    Slash,
    /// Contains a control character.
    #[error("room name must not contain control characters")]
    Control,
    /// Contains an invisible formatting character (bidi override, zero-width, BOM, ...).
    #[error("room name must not contain invisible formatting characters (such as U+{0:04X})")]
    Format(u32),
    /// Contains a line or paragraph separator.
    #[error("room name must not contain line or paragraph separators")]
    Separator,
    /// Starts or ends with whitespace.
    #[error("room name must not start or end with whitespace")]
    Whitespace,
}

/// The room-name rule (also stated in the contract's `room_name` parameter), returning the
/// name as the room is known: in Unicode NFC, so that `café` typed with a combining accent
/// (NFD, as some keyboards and file systems produce) is the same room as the precomposed one.
/// The name must then be 1 to `max` characters of visible text, non-ASCII included, without
/// `/`, control characters, invisible formatting characters (bidi overrides and isolates,
/// zero-width characters, the BOM, soft hyphens: they make two rooms look alike or reorder
/// what a reader sees), line or paragraph separators, or surrounding whitespace. Layers that
/// need ASCII group names get a safe mapping of it.
pub fn room_name(text: &str, max: usize) -> Result<String, RoomNameError> {
    use unicode_general_category::{get_general_category, GeneralCategory};
    use unicode_normalization::UnicodeNormalization;
    let name: String = text.nfc().collect();
    if name.is_empty() {
        return Err(RoomNameError::Empty);
    }
    if name.chars().count() > max {
        return Err(RoomNameError::TooLong { max });
    }
    if name.contains('/') {
        return Err(RoomNameError::Slash);
    }
    for c in name.chars() {
        match get_general_category(c) {
            GeneralCategory::Control => return Err(RoomNameError::Control),
            GeneralCategory::Format => return Err(RoomNameError::Format(u32::from(c))),
            GeneralCategory::LineSeparator | GeneralCategory::ParagraphSeparator => {
                return Err(RoomNameError::Separator)
            }
            _ => {}
        }
    }
    if name.starts_with(char::is_whitespace) || name.ends_with(char::is_whitespace) {
        return Err(RoomNameError::Whitespace);
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_limit_notice_is_the_contracts_example() {
        let spec: serde_json::Value =
            serde_yaml::from_str(room_chat_protocol::SPEC_YAML).unwrap_or_default();
        let example = spec["components"]["messages"]["error"]["examples"]
            .as_array()
            .and_then(|examples| examples.iter().find(|e| e["name"] == "rate_limited"))
            .map(|e| e["payload"].clone())
            .unwrap_or_default();
        let sent = RoomChatConsumer::limit_frame(&room_chat_runtime::rate_limit_notice(
            room_chat_runtime::settings::INBOUND_RATE,
            room_chat_runtime::settings::INBOUND_BURST,
        ));
        let sent: serde_json::Value = serde_json::from_str(sent.as_str()).unwrap_or_default();
        assert_eq!(sent, example);
    }

    #[test]
    fn one_room_per_text_and_no_invisible_characters() {
        assert_eq!(room_name("cafe\u{301}", 100), room_name("café", 100));
        assert_eq!(room_name("café", 100).as_deref(), Ok("café"));
        assert_eq!(room_name("general", 100).as_deref(), Ok("general"));
        for (bad, why) in [
            ("a\u{202E}b", RoomNameError::Format(0x202E)),
            ("a\u{200B}b", RoomNameError::Format(0x200B)),
            ("\u{FEFF}room", RoomNameError::Format(0xFEFF)),
            ("a\u{2066}b", RoomNameError::Format(0x2066)),
            ("a\u{2028}b", RoomNameError::Separator),
            ("a\u{2029}b", RoomNameError::Separator),
            ("a\u{7}b", RoomNameError::Control),
            ("a/b", RoomNameError::Slash),
            (" a", RoomNameError::Whitespace),
            ("", RoomNameError::Empty),
        ] {
            assert_eq!(room_name(bad, 100), Err(why), "{bad:?}");
        }
        // The limit counts characters of the normalised name: 100 composed é pass.
        assert!(room_name(&"e\u{301}".repeat(100), 100).is_ok());
        assert_eq!(
            room_name(&"é".repeat(101), 100),
            Err(RoomNameError::TooLong { max: 100 })
        );
    }
}
