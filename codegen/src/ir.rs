//! The intermediate model: what the templates render, independent of AsyncAPI's document shape.
//!
//! Lowering resolves every `$ref`, decides every name and direction, and checks every rule once, so
//! targets (Rust, TypeScript, HTML docs) only lay text out. Everything here is `Serialize` because
//! handlebars templates read it as JSON.

use serde::Serialize;

/// A whole API.
#[derive(Debug, Clone, Serialize)]
pub struct Api {
    /// `info.title`.
    pub title: String,
    /// `info.version`.
    pub version: String,
    /// `info.description`.
    pub description: Option<String>,
    /// Named payload types in a deterministic order (first reached first).
    pub types: Vec<TypeDef>,
    /// Channels in document order.
    pub channels: Vec<Channel>,
    /// Servers in document order.
    pub servers: Vec<Server>,
    /// Tags declared in `info.tags`, in document order.
    pub tags: Vec<Tag>,
    /// `info.contact`.
    pub contact: Option<Contact>,
    /// `info.license`.
    pub license: Option<License>,
}

/// `info.tags`, `info.contact` and `info.license` are rendered as the document writes them, so
/// the IR holds the document's own types rather than copies of them.
pub use crate::model::{Contact, License, Tag};

/// A server.
#[derive(Debug, Clone, Serialize)]
pub struct Server {
    /// The key in `servers`.
    pub id: String,
    /// `host[:port]`.
    pub host: String,
    /// `ws`, `wss`, ...
    pub protocol: String,
    /// Optional path prefix.
    pub pathname: Option<String>,
    /// Markdown description.
    pub description: Option<String>,
}

/// A named type.
#[derive(Debug, Clone, Serialize)]
pub struct TypeDef {
    /// The type's name in generated code (`PascalCase`).
    pub name: String,
    /// The schema's description.
    pub description: Option<String>,
    /// Where the schema was found, for docs and errors.
    pub pointer: String,
    /// The shape.
    pub kind: TypeKind,
    /// The message action, when this type is a message frame (its `action` is implied).
    pub action: Option<String>,
    /// The existing Rust type the document maps the schema to (`x-rust-type`), which the Rust
    /// target re-exports instead of generating one; other targets still render the schema.
    pub rust_path: Option<String>,
}

/// The shape of a named type.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TypeKind {
    /// An object with known properties.
    Struct {
        /// Fields in document order (the frame's `action` and envelope keys excluded).
        fields: Vec<Field>,
    },
    /// A string enumeration.
    StringEnum {
        /// Variants in document order.
        variants: Vec<EnumVariant>,
    },
    /// Alternatives tried in order (`oneOf` / `anyOf`).
    Untagged {
        /// Variants in document order.
        variants: Vec<UntaggedVariant>,
    },
}

/// A struct field.
#[derive(Debug, Clone, Serialize)]
pub struct Field {
    /// The property name on the wire.
    pub json_name: String,
    /// The field name in generated code (`snake_case`, keywords escaped).
    pub rust_name: String,
    /// The field name in TypeScript (the wire name, quoted when needed).
    pub ts_name: String,
    /// The value's type.
    pub ty: TypeRef,
    /// Listed in `required`.
    pub required: bool,
    /// Accepts `null` (a `T | null` type).
    pub nullable: bool,
    /// The property's title.
    pub title: Option<String>,
    /// The property's description.
    pub description: Option<String>,
    /// `minLength`, for strings.
    pub min_length: Option<u64>,
    /// `maxLength`, for strings.
    pub max_length: Option<u64>,
}

/// A value of a string enumeration.
#[derive(Debug, Clone, Serialize)]
pub struct EnumVariant {
    /// The variant name in generated code.
    pub name: String,
    /// The string on the wire.
    pub value: String,
}

/// An alternative of an untagged union.
#[derive(Debug, Clone, Serialize)]
pub struct UntaggedVariant {
    /// The variant name (from the alternative's title or type).
    pub name: String,
    /// Its type.
    pub ty: TypeRef,
    /// Its description.
    pub description: Option<String>,
}

/// A reference to a type.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TypeRef {
    /// A JSON string.
    String,
    /// A JSON integer.
    Integer,
    /// A JSON number.
    Number,
    /// `true` / `false`.
    Boolean,
    /// Only `null`.
    Null,
    /// Any JSON value (a schema with no type).
    Any,
    /// An array of one item type.
    Array {
        /// The item type.
        item: Box<TypeRef>,
    },
    /// `T | null` inside an array or union (fields carry nullability themselves).
    Nullable {
        /// The non-null type.
        inner: Box<TypeRef>,
    },
    /// A named type.
    Named {
        /// The type's name.
        name: String,
    },
}

/// A channel.
#[derive(Debug, Clone, Serialize)]
pub struct Channel {
    /// The key in `channels` (`room_chat`).
    pub id: String,
    /// The id as a Rust module name (`room_chat`; keywords escaped, unique in the document).
    pub module: String,
    /// The id as a type-name prefix (`RoomChat`).
    pub type_prefix: String,
    /// The address template.
    pub address: String,
    /// Title, unless it is the channel's id again.
    pub title: Option<String>,
    /// Summary.
    pub summary: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Parameters in address order.
    pub parameters: Vec<Parameter>,
    /// Optional query parameters of the handshake (the WebSocket binding's `query`), strings.
    pub query: Vec<QueryParameter>,
    /// How a client catches up after a reconnect (`x-recovery`), checked against the messages.
    pub recovery: Option<Recovery>,
    /// Tags.
    pub tags: Vec<String>,
    /// Messages the server receives (client to server).
    pub incoming: Vec<MessageUse>,
    /// Messages the server sends (server to client).
    pub outgoing: Vec<MessageUse>,
    /// Every operation on the channel, in document order.
    pub operations: Vec<Operation>,
    /// The receive operations (one handler method each).
    pub handlers: Vec<Operation>,
    /// All messages on the channel.
    pub messages: Vec<Message>,
}

/// A query parameter of the handshake.
#[derive(Debug, Clone, Serialize)]
pub struct QueryParameter {
    /// Its name in the query string.
    pub name: String,
    /// Its field name in the generated Rust `Query`.
    pub rust_name: String,
    /// Description.
    pub description: Option<String>,
}

/// The recovery messages of a channel (see `model::Recovery`), by action.
#[derive(Debug, Clone, Serialize)]
pub struct Recovery {
    /// The broadcast with `offset` and `epoch`.
    pub notification: String,
    /// The request (`since`, `limit`).
    pub request: String,
    /// Its reply (`epoch`, `messages`, `complete`).
    pub reply: String,
}

/// A channel parameter.
#[derive(Debug, Clone, Serialize)]
pub struct Parameter {
    /// The name in the address.
    pub name: String,
    /// The field name in generated code.
    pub rust_name: String,
    /// Description.
    pub description: Option<String>,
    /// Example values.
    pub examples: Vec<String>,
    /// The values the parameter may take (its `enum`); empty when any value is allowed.
    pub allowed: Vec<String>,
}

/// A message.
#[derive(Debug, Clone, Serialize)]
pub struct Message {
    /// The message key (channel's messages map).
    pub id: String,
    /// The `action` const.
    pub action: String,
    /// The variant name in the direction enums.
    pub variant: String,
    /// The frame type's name.
    pub frame_type: String,
    /// Title.
    pub title: Option<String>,
    /// Summary.
    pub summary: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// The property holding the correlation id (`ref`), when the message declares one.
    pub correlation_property: Option<String>,
    /// Examples as JSON values.
    pub examples: Vec<Example>,
    /// Pointer to the message object.
    pub pointer: String,
    /// The frame's schema as one self-contained JSON Schema (for docs and contract tests): each
    /// component schema it uses is written once under `$defs`, and its `$ref`s point there
    /// (`#/$defs/<component name>`).
    pub payload_schema: serde_json::Value,
}

/// A message example.
#[derive(Debug, Clone, Serialize)]
pub struct Example {
    /// Name.
    pub name: Option<String>,
    /// Summary.
    pub summary: Option<String>,
    /// The frame.
    pub payload: serde_json::Value,
}

/// A message as used in one direction of a channel.
#[derive(Debug, Clone, Serialize)]
pub struct MessageUse {
    /// The `action` const.
    pub action: String,
    /// The variant name.
    pub variant: String,
    /// The frame type's name.
    pub frame_type: String,
    /// Doc text (summary or title).
    pub summary: Option<String>,
}

/// An operation.
#[derive(Debug, Clone, Serialize)]
pub struct Operation {
    /// The key in `operations` (`handle_ping`).
    pub id: String,
    /// The method name in generated code (`snake_case`, keywords escaped; unique among the
    /// channel's handlers).
    pub method: String,
    /// `receive` or `send`.
    pub action: String,
    /// Summary.
    pub summary: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// The operation's messages.
    pub messages: Vec<MessageUse>,
    /// The direct reply, if any.
    pub reply: Option<MessageUse>,
}
