//! The typed AsyncAPI 3.0 document: the subset of the specification the generator reads.
//!
//! Parsing into types (rather than walking untyped YAML) means a misspelt or mistyped field is
//! reported by serde with its line and column, and the lowering pass can pattern-match on shapes.
//! Anything the generator does not understand is kept in `extra` maps so that it can be named in an
//! error instead of silently ignored. Maps are `IndexMap`s: document order is what users expect
//! in generated code and docs.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Either an inline object or a local `$ref` to one.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RefOr<T> {
    /// `{"$ref": "#/..."}`.
    Ref {
        /// The JSON pointer (with a leading `#`).
        #[serde(rename = "$ref")]
        reference: String,
    },
    /// The object itself.
    Item(T),
}

/// The root of an AsyncAPI 3.0 document.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Document {
    /// Must start with `3.`.
    pub asyncapi: String,
    /// Title, version, description.
    pub info: Info,
    /// Servers by name, in document order.
    #[serde(default)]
    pub servers: IndexMap<String, Server>,
    /// Channels by id, in document order.
    #[serde(default)]
    pub channels: IndexMap<String, RefOr<Channel>>,
    /// Operations by id, in document order.
    #[serde(default)]
    pub operations: IndexMap<String, RefOr<Operation>>,
    /// Reusable objects.
    #[serde(default)]
    pub components: Components,
}

/// The `info` object.
#[derive(Debug, Clone, Deserialize)]
pub struct Info {
    /// Title of the API.
    pub title: String,
    /// Version of the API (not of AsyncAPI).
    pub version: String,
    /// Markdown description.
    #[serde(default)]
    pub description: Option<String>,
    /// Who to ask about the API.
    #[serde(default)]
    pub contact: Option<Contact>,
    /// The API's license.
    #[serde(default)]
    pub license: Option<License>,
    /// Tags with their descriptions, in document order (operations refer to them by name).
    #[serde(default)]
    pub tags: Vec<Tag>,
}

/// The `info.contact` object.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Contact {
    /// A person or team.
    #[serde(default)]
    pub name: Option<String>,
    /// A web page.
    #[serde(default)]
    pub url: Option<String>,
    /// An email address.
    #[serde(default)]
    pub email: Option<String>,
}

/// The `info.license` object.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct License {
    /// The license's name (an SPDX expression, often).
    pub name: String,
    /// Where its text is.
    #[serde(default)]
    pub url: Option<String>,
}

/// A server entry.
#[derive(Debug, Clone, Deserialize)]
pub struct Server {
    /// `host[:port]`.
    pub host: String,
    /// `ws`, `wss`, ...
    pub protocol: String,
    /// Optional path prefix.
    #[serde(default)]
    pub pathname: Option<String>,
    /// Markdown description.
    #[serde(default)]
    pub description: Option<String>,
}

/// A tag.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tag {
    /// The tag's name.
    pub name: String,
    /// Markdown description.
    #[serde(default)]
    pub description: Option<String>,
}

/// A channel: one address (with parameters) and the messages that travel on it.
#[derive(Debug, Clone, Deserialize)]
pub struct Channel {
    /// The address, e.g. `/ws/room/{room_name}`.
    pub address: Option<String>,
    /// Short title.
    #[serde(default)]
    pub title: Option<String>,
    /// One-line summary.
    #[serde(default)]
    pub summary: Option<String>,
    /// Markdown description.
    #[serde(default)]
    pub description: Option<String>,
    /// Parameters named in the address.
    #[serde(default)]
    pub parameters: IndexMap<String, RefOr<Parameter>>,
    /// Messages by id.
    #[serde(default)]
    pub messages: IndexMap<String, RefOr<Message>>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// Protocol bindings (the generator reads the WebSocket binding's query parameters).
    #[serde(default)]
    pub bindings: Option<ChannelBindings>,
    /// `x-recovery`: how a client catches up after a reconnect (see [`Recovery`]).
    #[serde(default, rename = "x-recovery")]
    pub recovery: Option<Recovery>,
}

/// A channel's `bindings`.
#[derive(Debug, Clone, Deserialize)]
pub struct ChannelBindings {
    /// The WebSockets binding.
    #[serde(default)]
    pub ws: Option<WsChannelBinding>,
}

/// The WebSockets channel binding (`bindings.ws`).
#[derive(Debug, Clone, Deserialize)]
pub struct WsChannelBinding {
    /// The query parameters of the handshake: an object schema whose properties are strings.
    #[serde(default)]
    pub query: Option<Schema>,
}

/// The `x-recovery` extension of a channel: the messages a client uses to fetch, after a
/// reconnect, the broadcasts it missed. `notification` payloads carry `offset` (an integer,
/// increasing) and `epoch` (a string); `request` has a reply, `reply`, whose payload carries
/// `epoch`, `messages` (notification payloads, oldest first) and `complete`; the request's
/// payload takes `since` (an offset) and `limit`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recovery {
    /// The action of the broadcast that carries `offset` and `epoch`.
    pub notification: String,
    /// The action of the request.
    pub request: String,
    /// The action of its reply.
    pub reply: String,
}

/// A channel parameter.
#[derive(Debug, Clone, Deserialize)]
pub struct Parameter {
    /// Markdown description.
    #[serde(default)]
    pub description: Option<String>,
    /// Allowed values, if restricted.
    #[serde(default, rename = "enum")]
    pub allowed: Option<Vec<String>>,
    /// Example values.
    #[serde(default)]
    pub examples: Vec<String>,
}

/// The direction of an operation, from the server's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// The server receives these messages.
    Receive,
    /// The server sends these messages.
    Send,
}

/// An operation.
#[derive(Debug, Clone, Deserialize)]
pub struct Operation {
    /// Receive or send.
    pub action: Action,
    /// The channel it happens on.
    pub channel: RefOr<Channel>,
    /// Messages (refs into the channel's messages).
    #[serde(default)]
    pub messages: Vec<RefOr<Message>>,
    /// One-line summary.
    #[serde(default)]
    pub summary: Option<String>,
    /// Markdown description.
    #[serde(default)]
    pub description: Option<String>,
    /// The direct reply, if any.
    #[serde(default)]
    pub reply: Option<Reply>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<Tag>,
}

/// An operation's reply.
#[derive(Debug, Clone, Deserialize)]
pub struct Reply {
    /// The channel the reply travels on (ours: the same one).
    #[serde(default)]
    pub channel: Option<RefOr<Channel>>,
    /// The reply messages.
    #[serde(default)]
    pub messages: Vec<RefOr<Message>>,
}

/// A message.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// Machine name.
    #[serde(default)]
    pub name: Option<String>,
    /// Human title.
    #[serde(default)]
    pub title: Option<String>,
    /// One-line summary.
    #[serde(default)]
    pub summary: Option<String>,
    /// Markdown description.
    #[serde(default)]
    pub description: Option<String>,
    /// The frame's schema.
    pub payload: Option<RefOr<Schema>>,
    /// Where the correlation id lives.
    #[serde(default)]
    pub correlation_id: Option<RefOr<CorrelationId>>,
    /// Examples.
    #[serde(default)]
    pub examples: Vec<MessageExample>,
}

/// A message example.
#[derive(Debug, Clone, Deserialize)]
pub struct MessageExample {
    /// Machine name.
    #[serde(default)]
    pub name: Option<String>,
    /// One-line summary.
    #[serde(default)]
    pub summary: Option<String>,
    /// The example frame.
    #[serde(default)]
    pub payload: Option<Value>,
}

/// A correlation id.
#[derive(Debug, Clone, Deserialize)]
pub struct CorrelationId {
    /// Markdown description.
    #[serde(default)]
    pub description: Option<String>,
    /// Runtime expression, e.g. `$message.payload#/ref`.
    pub location: String,
}

/// `components`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Components {
    /// Reusable schemas.
    #[serde(default)]
    pub schemas: IndexMap<String, Schema>,
    /// Reusable messages.
    #[serde(default)]
    pub messages: IndexMap<String, RefOr<Message>>,
    /// Reusable parameters.
    #[serde(default)]
    pub parameters: IndexMap<String, RefOr<Parameter>>,
    /// Reusable correlation ids.
    #[serde(default)]
    pub correlation_ids: IndexMap<String, CorrelationId>,
}

/// `type` may be one name or a list of names.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum TypeNames {
    /// `type: string`.
    One(String),
    /// `type: [string, "null"]`.
    Many(Vec<String>),
}

/// A JSON Schema (the AsyncAPI schema dialect), as far as the generator understands it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Schema {
    /// Local reference to `#/components/schemas/<name>`.
    #[serde(rename = "$ref", default)]
    pub reference: Option<String>,
    /// Type name(s).
    #[serde(rename = "type", default)]
    pub type_names: Option<TypeNames>,
    /// Names the Rust type.
    #[serde(default)]
    pub title: Option<String>,
    /// Doc comment.
    #[serde(default)]
    pub description: Option<String>,
    /// Object properties, in document order.
    #[serde(default)]
    pub properties: IndexMap<String, Schema>,
    /// Required property names.
    #[serde(default)]
    pub required: Vec<String>,
    /// Array items.
    #[serde(default)]
    pub items: Option<Box<Schema>>,
    /// String enumerations.
    #[serde(rename = "enum", default)]
    pub enumeration: Option<Vec<Value>>,
    /// A constant (the generator uses it for `action`).
    #[serde(rename = "const", default)]
    pub constant: Option<Value>,
    /// Untagged alternatives.
    #[serde(default)]
    pub one_of: Option<Vec<Schema>>,
    /// Untagged alternatives (pydantic writes `anyOf` for `T | None`).
    #[serde(default)]
    pub any_of: Option<Vec<Schema>>,
    /// The discriminating property of a message frame.
    #[serde(default)]
    pub discriminator: Option<String>,
    /// Minimum string length, checked by the decoder.
    #[serde(default)]
    pub min_length: Option<u64>,
    /// Maximum string length, checked by the decoder.
    #[serde(default)]
    pub max_length: Option<u64>,
    /// Every keyword not listed above; the lowering pass refuses the ones it cannot honour.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}
