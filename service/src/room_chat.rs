//! The room chat app: chanx's `RoomChatConsumer`, implemented on the generated handler trait.
//!
//! Connecting joins the room's group and tells the others; a chat message goes to everyone in
//! the room, the sender included; leaving tells the others; `ping` gets `pong`. The room name
//! comes from the URL only: a `room_name` a client puts in its payload is ignored.
//!
//! Beyond the tutorial: a connection may carry a display name (`?name=ada`), which becomes the
//! `sender` of its notices; the room's store ([`crate::rooms`]) keeps who is in the room
//! (`presence`) and its last chat messages (`history`), each chat message stamped with its
//! `offset` and `epoch` so a client can catch up after a reconnect.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use axum::http::StatusCode;
use room_chat_layers::hosts::ConnectionSettings;
use room_chat_layers::Group;
use room_chat_protocol::room_chat::{self, Handler, Outgoing, Params};
use room_chat_protocol::runtime::{self, Dispatched, ErrorItem};
use room_chat_protocol::{
    CompleteMessage, GroupCompleteMessage, HistoryMessage, HistoryPayload, HistoryResultMessage,
    LocPart, Member, PingMessage, PongMessage, PresenceMessage, PresencePayload,
    PresenceResultMessage, RoomChatMessage, RoomNotificationMessage, RoomNotificationPayload,
};
use room_chat_runtime::settings::{human, positive_duration};
use room_chat_runtime::{Connection, Consumer, ConsumerError, FrameOutcome, Handshake, Refusal};

use crate::rooms::{
    now_ms, rfc3339, stamp, MemberEntry, MemoryStore, RedisStore, Retention, RoomStore, StoreError,
    StoredChat,
};

/// Default of [`RoomChatSettings::max_room_name_chars`].
pub const MAX_ROOM_NAME_CHARS: usize = 100;
/// Default of [`RoomChatSettings::max_room_members`].
pub const MAX_ROOM_MEMBERS: usize = 1000;
/// Default of [`RoomChatSettings::max_display_name_chars`].
pub const MAX_DISPLAY_NAME_CHARS: usize = 32;
/// Default of [`RoomChatSettings::history_size`].
pub const HISTORY_SIZE: usize = 100;
/// Default of [`RoomChatSettings::history_max_age`].
pub const HISTORY_MAX_AGE: Duration = Duration::from_secs(3600);
/// Default of [`RoomChatSettings::max_history_limit`].
pub const MAX_HISTORY_LIMIT: usize = 100;
/// Default of [`RoomChatSettings::max_presence_members`].
pub const MAX_PRESENCE_MEMBERS: usize = 100;
/// Default of [`RoomChatSettings::presence_expiry`].
pub const PRESENCE_EXPIRY: Duration = Duration::from_secs(30);
/// Default of [`RoomChatSettings::room_query_rate`].
pub const ROOM_QUERY_RATE: u32 = 2;
/// Default of [`RoomChatSettings::room_query_burst`].
pub const ROOM_QUERY_BURST: u32 = 10;

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

    /// Longest accepted display name (`?name=` at connect), in characters after NFC; a longer
    /// one gets HTTP 403. Names are shown beside every message and in the online list, so they
    /// are kept to what fits there.
    #[arg(long, env = "MAX_DISPLAY_NAME_CHARS", default_value_t = MAX_DISPLAY_NAME_CHARS)]
    pub max_display_name_chars: usize,

    /// Chat messages each room keeps for `history` (the newest ones; shared by every process
    /// on one Redis). 0 turns history off: chat messages are not stamped (no `offset` or
    /// `epoch`, so the store is not touched per message) and `history` gets an `error` frame.
    #[arg(long, env = "HISTORY_SIZE", default_value_t = HISTORY_SIZE)]
    pub history_size: usize,

    /// Messages older than this leave the history; a room with no message for this long
    /// forgets its history and starts a new epoch.
    #[arg(long, env = "HISTORY_MAX_AGE", value_parser = positive_duration,
          default_value = human(HISTORY_MAX_AGE))]
    pub history_max_age: Duration,

    /// Most messages one `history` answer carries; a request with a larger (or negative)
    /// `limit` gets an error frame. Bounds the size of one answer frame.
    #[arg(long, env = "MAX_HISTORY_LIMIT", default_value_t = MAX_HISTORY_LIMIT)]
    pub max_history_limit: usize,

    /// Most members one `presence` answer lists (`count` is still the whole room, and
    /// `truncated` says the list was cut). Bounds the size of one answer frame.
    #[arg(long, env = "MAX_PRESENCE_MEMBERS", default_value_t = MAX_PRESENCE_MEMBERS)]
    pub max_presence_members: usize,

    /// On Redis, how long a member stays listed after its process stopped renewing it (each
    /// process renews its members every third of this). The members of a process that crashed
    /// disappear from `presence` within this time.
    #[arg(long, env = "PRESENCE_EXPIRY", value_parser = positive_duration,
          default_value = human(PRESENCE_EXPIRY))]
    pub presence_expiry: Duration,

    /// `presence` and `history` requests one connection may make per second (0: no limit).
    /// Each reads the room's store (Redis, in a fleet), so a client looping on them is
    /// answered with an error frame instead of loading Redis for everyone.
    #[arg(long, env = "ROOM_QUERY_RATE", default_value_t = ROOM_QUERY_RATE)]
    pub room_query_rate: u32,

    /// `presence` and `history` requests a connection may make at once above the rate (a page
    /// asks for both on entering a room, and again after each reconnect).
    #[arg(long, env = "ROOM_QUERY_BURST", default_value_t = ROOM_QUERY_BURST)]
    pub room_query_burst: u32,

    /// Members per room now, shared by every connection of this process.
    #[arg(skip)]
    pub census: Arc<RoomCensus>,

    /// Where presence and history live: set by [`RoomChatSettings::use_redis`], otherwise an
    /// in-memory store made on first use.
    #[arg(skip)]
    pub store: StoreSlot,
}

/// The room store shared by every connection of this process (set once).
#[derive(Debug, Clone, Default)]
pub struct StoreSlot(Arc<OnceLock<Arc<dyn RoomStore>>>);

impl RoomChatSettings {
    /// How much history the store keeps.
    pub fn retention(&self) -> Retention {
        Retention {
            size: self.history_size,
            max_age: self.history_max_age,
        }
    }

    /// Keeps presence and history on the Redis at `url` (the first of `REDIS_URL`: a plain
    /// server, a Sentinel group or a Cluster), shared with every process on it, connected as
    /// `connection` says. Call before serving, inside the Tokio runtime.
    pub fn use_redis(&self, url: &str, connection: &ConnectionSettings) -> Result<(), StoreError> {
        let store = RedisStore::new(url, connection, self.retention(), self.presence_expiry)?;
        // A second call keeps the first store: every connection must share one.
        let _ = self.store.0.set(Arc::new(store));
        Ok(())
    }

    /// The store: the Redis one if set, otherwise this process's memory.
    pub fn store(&self) -> Arc<dyn RoomStore> {
        self.store
            .0
            .get_or_init(|| Arc::new(MemoryStore::new(self.retention())))
            .clone()
    }
}

/// This process, in member ids: random, so ids of processes sharing a Redis never collide.
fn process_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| format!("{:012x}", rand::random::<u64>() >> 16))
}

/// A token bucket for one connection's `presence` and `history` requests.
#[derive(Debug)]
struct QueryBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl QueryBucket {
    fn new(rate: u32, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            rate: f64::from(rate),
            burst,
            tokens: burst,
            at: Instant::now(),
        }
    }

    /// Takes a token if there is one.
    fn take(&mut self) -> bool {
        if self.rate == 0.0 {
            return true;
        }
        let now = Instant::now();
        let refill = now.duration_since(self.at).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
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
    /// This connection in the room's presence (its display name, when it has one).
    member: MemberEntry,
    store: Arc<dyn RoomStore>,
    /// Whether chat messages are stamped and kept (`HISTORY_SIZE` > 0).
    history_on: bool,
    /// Whether this room's chat messages are appended inside their broadcast's publish (the
    /// store's server carries the room's group; see `rooms::stamp`): known from the first chat
    /// message on, since neither the store nor the layer's ring changes.
    append_in_publish: OnceLock<bool>,
    max_history_limit: usize,
    max_presence_members: usize,
    queries: Mutex<QueryBucket>,
}

impl RoomChatConsumer {
    /// The consumer for a connection to the room in `params` (not counted against any room
    /// cap: [`Consumer::accept`] is what admits a handshake).
    pub fn new(params: Params) -> Self {
        Self::with(params, None, &RoomChatSettings::default_for_tests())
    }

    fn with(params: Params, name: Option<String>, settings: &RoomChatSettings) -> Self {
        static CONNECTIONS: AtomicU64 = AtomicU64::new(0);
        let group = Group::for_text(&format!("room_{}", params.room_name));
        let number = CONNECTIONS.fetch_add(1, Ordering::Relaxed);
        Self {
            room_name: params.room_name,
            group,
            _seat: None,
            member: MemberEntry {
                id: format!("{}:{number}", process_id()),
                name,
                joined_at_ms: now_ms(),
            },
            store: settings.store(),
            history_on: settings.history_size > 0,
            append_in_publish: OnceLock::new(),
            max_history_limit: settings.max_history_limit,
            max_presence_members: settings.max_presence_members,
            queries: Mutex::new(QueryBucket::new(
                settings.room_query_rate,
                settings.room_query_burst,
            )),
        }
    }

    fn payload(&self, message: String) -> RoomNotificationPayload {
        RoomNotificationPayload {
            message,
            room_name: Some(self.room_name.clone()),
            sender: self.member.name.clone(),
            offset: None,
            epoch: None,
        }
    }

    fn notification(&self, payload: RoomNotificationPayload) -> Outgoing {
        Outgoing::RoomNotification(RoomNotificationMessage { payload })
    }

    /// Takes one of the connection's `presence`/`history` tokens, or says why not.
    fn take_query(&self, action: &'static str) -> Result<(), RoomChatError> {
        let mut bucket = self
            .queries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if bucket.take() {
            Ok(())
        } else {
            Err(RoomChatError::Refused(ErrorItem {
                kind: "rate_limited".into(),
                loc: vec![LocPart::Key(action.into())],
                msg: format!(
                    "too many presence/history requests: at most {} per second (burst {})",
                    bucket.rate, bucket.burst
                ),
            }))
        }
    }

    fn stored_payload(&self, m: StoredChat, epoch: &str) -> RoomNotificationPayload {
        RoomNotificationPayload {
            message: m.message,
            room_name: Some(self.room_name.clone()),
            sender: m.sender,
            offset: Some(i64::try_from(m.offset).unwrap_or(i64::MAX)),
            epoch: Some(epoch.to_owned()),
        }
    }
}

impl RoomChatSettings {
    /// The defaults, without reading flags or the environment (for consumers built outside a
    /// server, as in unit tests).
    fn default_for_tests() -> Self {
        Self {
            max_room_name_chars: MAX_ROOM_NAME_CHARS,
            max_room_members: MAX_ROOM_MEMBERS,
            max_display_name_chars: MAX_DISPLAY_NAME_CHARS,
            history_size: HISTORY_SIZE,
            history_max_age: HISTORY_MAX_AGE,
            max_history_limit: MAX_HISTORY_LIMIT,
            max_presence_members: MAX_PRESENCE_MEMBERS,
            presence_expiry: PRESENCE_EXPIRY,
            room_query_rate: ROOM_QUERY_RATE,
            room_query_burst: ROOM_QUERY_BURST,
            census: Arc::default(),
            store: StoreSlot::default(),
        }
    }
}

/// Why a room chat handler did not answer as asked.
#[derive(Debug, thiserror::Error)]
pub enum RoomChatError {
    /// The runtime or the channel layer failed.
    #[error(transparent)]
    Consumer(#[from] ConsumerError),
    /// The room store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The request was valid JSON of the right shape but asked for something the rules refuse
    /// (a negative `limit`, too many requests); the client gets this as an error frame.
    #[error("{}", .0.msg)]
    Refused(ErrorItem),
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
        // The generated reader takes the query the way the contract's WebSocket binding
        // declares it; the display-name rule then applies to the text.
        let query = room_chat::Query::from_query(handshake.query)
            .map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, "display_name", e.to_string()))?;
        let name = query
            .name
            .map(|raw| {
                display_name(&raw, settings.max_display_name_chars)
                    .map_err(|e| Refusal::new(StatusCode::FORBIDDEN, "display_name", e.to_string()))
            })
            .transpose()?
            .flatten();
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
            ..Self::with(Params { room_name }, name, settings)
        })
    }

    async fn on_connect(&self, conn: &mut Connection<Outgoing>) -> Result<(), ConsumerError> {
        conn.group_add(&self.group).await?;
        // Presence is a courtesy: a store that fails must not keep anyone out of the room.
        if let Err(e) = self.store.join(&self.room_name, &self.member).await {
            tracing::warn!(room = %self.room_name, error = %e, "could not record presence");
        }
        let joined = format!("🚪 Someone joined room '{}'", self.room_name);
        conn.broadcast_to_others(&self.group, self.notification(self.payload(joined)))
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
        // Out of the presence first, so a member who refreshes the list on the leave notice no
        // longer sees the one who left.
        if let Err(e) = self.store.leave(&self.room_name, &self.member).await {
            tracing::warn!(room = %self.room_name, error = %e, "could not remove presence; it expires by itself");
        }
        let left = format!("👋 Someone left room '{}'", self.room_name);
        if let Err(e) = conn
            .broadcast_to_others(&self.group, self.notification(self.payload(left)))
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
    type Error = RoomChatError;

    async fn handle_ping(
        &self,
        _conn: &mut Connection<Outgoing>,
        _message: PingMessage,
    ) -> Result<PongMessage, RoomChatError> {
        Ok(PongMessage { payload: () })
    }

    async fn handle_room_chat(
        &self,
        conn: &mut Connection<Outgoing>,
        message: RoomChatMessage,
    ) -> Result<(), RoomChatError> {
        let text = format!("💬 {}", message.payload.message);
        // Every receiver must see the message's offset, which only the store can give. Where
        // the store lives on the server that carries the room's group, the append rides inside
        // the broadcast's own publish (one Redis command, nothing awaited here; see
        // `rooms::stamp`); otherwise it is a separate call made before the broadcast.
        let append_in_publish = *self.append_in_publish.get_or_init(|| {
            let store = self.store.script_server();
            store.is_some() && store == conn.script_server(&self.group)
        });
        if self.history_on && append_in_publish {
            let mut payload = self.payload(text.clone());
            payload.offset = Some(stamp::OFFSET_PLACEHOLDER);
            payload.epoch = Some(stamp::EPOCH_PLACEHOLDER.to_owned());
            let (store, room, sender) = (&self.store, &self.room_name, self.member.name.as_deref());
            let sent = conn
                .broadcast_scripted(&self.group, self.notification(payload), |encoded| {
                    store.append_script(room, &text, sender, encoded)
                })
                .await?;
            if sent {
                return Ok(());
            }
            tracing::warn!(room = %self.room_name, "the broadcast has no place for its offset; appending it apart");
        }
        let mut payload = self.payload(text);
        // The message is stamped before it is broadcast, so every receiver sees its offset. A
        // store that fails costs the message its place in history, not its delivery.
        if self.history_on {
            match self
                .store
                .append(&self.room_name, &payload.message, payload.sender.as_deref())
                .await
            {
                Ok(stamp) => {
                    payload.offset = Some(i64::try_from(stamp.offset).unwrap_or(i64::MAX));
                    payload.epoch = Some(stamp.epoch);
                }
                Err(e) => {
                    tracing::warn!(room = %self.room_name, error = %e, "message not kept in history");
                }
            }
        }
        Ok(conn
            .broadcast(&self.group, self.notification(payload))
            .await?)
    }

    async fn handle_presence(
        &self,
        _conn: &mut Connection<Outgoing>,
        _message: PresenceMessage,
    ) -> Result<PresenceResultMessage, RoomChatError> {
        self.take_query("presence")?;
        let max = self.max_presence_members;
        let presence = self.store.presence(&self.room_name, max).await?;
        let members: Vec<Member> = presence
            .members
            .into_iter()
            .take(max)
            .map(|m| Member {
                name: m.name,
                joined_at: rfc3339(m.joined_at_ms),
            })
            .collect();
        Ok(PresenceResultMessage {
            payload: PresencePayload {
                room_name: self.room_name.clone(),
                count: i64::try_from(presence.count).unwrap_or(i64::MAX),
                truncated: members.len() < presence.count,
                members,
            },
        })
    }

    async fn handle_history(
        &self,
        _conn: &mut Connection<Outgoing>,
        message: HistoryMessage,
    ) -> Result<HistoryResultMessage, RoomChatError> {
        if !self.history_on {
            return Err(RoomChatError::Refused(ErrorItem {
                kind: "history_off".into(),
                loc: vec![LocPart::Key("history".into())],
                msg: "this server keeps no history (HISTORY_SIZE=0)".into(),
            }));
        }
        let request = message.payload;
        let bad = |field: &str, kind: &str, msg: String| {
            RoomChatError::Refused(ErrorItem {
                kind: kind.into(),
                loc: vec![
                    LocPart::Key("history".into()),
                    LocPart::Key("payload".into()),
                    LocPart::Key(field.into()),
                ],
                msg,
            })
        };
        let since = match request.since {
            None => None,
            Some(since) => Some(u64::try_from(since).map_err(|_| {
                bad(
                    "since",
                    "greater_than_equal",
                    "Input should be greater than or equal to 0".into(),
                )
            })?),
        };
        let max = self.max_history_limit;
        let limit = match request.limit {
            None => max,
            Some(limit) => usize::try_from(limit)
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| {
                    bad(
                        "limit",
                        if limit < 0 {
                            "greater_than_equal"
                        } else {
                            "less_than_equal"
                        },
                        if limit < 0 {
                            "Input should be greater than or equal to 0".into()
                        } else {
                            format!("Input should be less than or equal to {max}")
                        },
                    )
                })?,
        };
        self.take_query("history")?;
        let history = self.store.history(&self.room_name, since, limit).await?;
        let epoch = history.epoch;
        Ok(HistoryResultMessage {
            payload: HistoryPayload {
                room_name: self.room_name.clone(),
                messages: history
                    .messages
                    .into_iter()
                    .map(|m| self.stored_payload(m, &epoch))
                    .collect(),
                epoch,
                complete: history.complete,
            },
        })
    }
}

/// Why a display name is refused: the room-name rule's reasons (but `/` is allowed), in
/// words about names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.to_string().replacen("room name", "display name", 1))]
pub struct DisplayNameError(pub RoomNameError);

/// The display-name rule (also stated in the contract's `name` query parameter): the name in
/// Unicode NFC, 1 to `max` characters of visible text, with the room-name rule's exclusions
/// but `/` allowed; an empty `?name=` means anonymous (`Ok(None)`). Names are shown beside
/// other people's messages, so invisible and reordering characters are refused for the same
/// reason as in room names: they let one name pass for another.
pub fn display_name(text: &str, max: usize) -> Result<Option<String>, DisplayNameError> {
    if text.is_empty() {
        return Ok(None);
    }
    // The room-name rule on the name with `/` swapped for a letter, then the real name back.
    let probe = text.replace('/', "a");
    room_name(&probe, max).map_err(DisplayNameError)?;
    use unicode_normalization::UnicodeNormalization;
    Ok(Some(text.nfc().collect()))
}

/// What the generated dispatcher did, as the frames the runtime sends back.
fn outcome(dispatched: Dispatched<Outgoing, RoomChatError>) -> FrameOutcome {
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
        // A refusal is the client's to read (a limit, a bad value); its `ref` is echoed, so a
        // request waiting for its answer fails at once instead of timing out.
        Dispatched::Failed {
            error: RoomChatError::Refused(item),
            reply,
            ..
        } => FrameOutcome::Rejected {
            error_frame: Utf8Bytes::from(runtime::rejection_reply(&[item], &reply)),
        },
        Dispatched::Failed {
            action,
            error,
            reply,
        } => FrameOutcome::Failed {
            action,
            error: error.to_string(),
            error_frame: Utf8Bytes::from(runtime::failure_reply(action, &reply)),
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
