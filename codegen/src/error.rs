//! What can go wrong when generating code from a document.
//!
//! Every variant that concerns the document names the JSON pointer of the offending node
//! (`#/components/schemas/Foo/properties/bar`) and says what was expected, because the person
//! reading the error is editing YAML and needs to know where to look.

/// An error from [`crate::generate`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GenerateError {
    /// The text is not YAML, or does not have the shape of an AsyncAPI document.
    #[error("the document could not be read: {0}")]
    Parse(String),
    /// Only AsyncAPI 3.x is understood.
    #[error("#/asyncapi: unsupported AsyncAPI version `{found}`; expected 3.x")]
    Version {
        /// The version the document declares.
        found: String,
    },
    /// A `$ref` points nowhere.
    #[error("{pointer}: `$ref` `{reference}` does not resolve to anything in this document")]
    DanglingRef {
        /// Where the `$ref` stands.
        pointer: String,
        /// What it points to.
        reference: String,
    },
    /// A `$ref` is not a local pointer of a kind the generator follows.
    #[error("{pointer}: `$ref` `{reference}` is not supported; expected {expected}")]
    UnsupportedRef {
        /// Where the `$ref` stands.
        pointer: String,
        /// What it points to.
        reference: String,
        /// The forms that are supported.
        expected: &'static str,
    },
    /// A message's frame schema does not pin its `action`.
    #[error("{pointer}: message has no `action` const; expected its payload schema to have `properties.action.const` set to the message's action name")]
    MissingAction {
        /// The message's payload schema.
        pointer: String,
    },
    /// Two messages on one channel share an action, so frames could not be told apart.
    #[error("{pointer}: action `{action}` is already used by {other} on the same channel; each message needs its own action")]
    DuplicateAction {
        /// The second message.
        pointer: String,
        /// The shared action.
        action: String,
        /// The first message.
        other: String,
    },
    /// A declared parameter does not occur in the channel address.
    #[error("{pointer}: parameter `{name}` does not appear in the channel address `{address}`; expected `{{{name}}}` in the address")]
    ParameterNotInAddress {
        /// The parameter.
        pointer: String,
        /// Its name.
        name: String,
        /// The address.
        address: String,
    },
    /// The channel address uses a parameter that is not declared.
    #[error("{pointer}: the address `{address}` uses `{{{name}}}` but the channel declares no parameter `{name}`")]
    UndeclaredParameter {
        /// The channel.
        pointer: String,
        /// The parameter name.
        name: String,
        /// The address.
        address: String,
    },
    /// A schema keyword the generator cannot honour.
    #[error("{pointer}: unsupported schema keyword `{keyword}`; supported: type, properties, required, items, enum, const, oneOf, anyOf, title, description, default, examples, format, minLength, maxLength, discriminator and x-* extensions")]
    UnsupportedKeyword {
        /// The schema.
        pointer: String,
        /// The keyword.
        keyword: String,
    },
    /// `x-rust-type` is not a Rust path.
    #[error("{pointer}: `x-rust-type` must be a Rust path such as `protocol_runtime::ErrorItem`, found {found}")]
    RustType {
        /// The `x-rust-type` keyword.
        pointer: String,
        /// What it holds.
        found: String,
    },
    /// A channel without an address.
    #[error("{pointer}: channel has no `address`; expected the WebSocket path, e.g. `/ws/room/{{room_name}}`")]
    MissingAddress {
        /// The channel.
        pointer: String,
    },
    /// The address names one parameter twice.
    #[error(
        "{pointer}: the address `{address}` uses `{{{name}}}` twice; expected each parameter once"
    )]
    RepeatedParameter {
        /// The address.
        pointer: String,
        /// The parameter name.
        name: String,
        /// The address.
        address: String,
    },
    /// A name in the document gives no Rust identifier (only symbols or non-ASCII letters).
    #[error(
        "{pointer}: {what}: it has no ASCII letter or digit; expected a name like `room_chat`"
    )]
    NoIdentifier {
        /// Where the name is.
        pointer: String,
        /// Which name, and what it should have become.
        what: String,
    },
    /// A name derived from the document is taken: by another name of the document that
    /// derives to the same identifier, or by the generated code itself. Renaming one fixes it.
    #[error("{pointer}: {detail}")]
    NameTaken {
        /// The second name.
        pointer: String,
        /// Which names collide, and what to rename.
        detail: String,
    },
    /// A schema that becomes a named type has nothing to name it by.
    #[error("{pointer}: {construct} needs a `title` to name its type")]
    MissingTitle {
        /// The schema.
        pointer: String,
        /// What kind of schema it is.
        construct: String,
    },
    /// A schema whose values no generated Rust type can hold.
    #[error("{pointer}: {detail}")]
    UnsupportedType {
        /// The schema.
        pointer: String,
        /// What is not supported, and what is.
        detail: String,
    },
    /// A type that would contain itself with no indirection, so it would have no finite size.
    #[error("{pointer}: {detail}")]
    InfiniteType {
        /// The schema.
        pointer: String,
        /// The cycle, and where it has to pass instead.
        detail: String,
    },
    /// A channel binding or extension the generator cannot honour.
    #[error("{pointer}: {detail}")]
    UnsupportedChannelFeature {
        /// The binding or extension.
        pointer: String,
        /// What is wrong, and what is expected.
        detail: String,
    },
    /// `required` names a property that is not declared.
    #[error("{pointer}: `{name}` is required but not among the properties")]
    RequiredNotAProperty {
        /// The `required` list.
        pointer: String,
        /// The name.
        name: String,
    },
    /// A receive operation names no message or several: its handler takes one.
    #[error("{pointer}: a receive operation must name exactly one message (its handler takes that message), found {found}")]
    ReceiveMessages {
        /// The operation's messages.
        pointer: String,
        /// How many it names.
        found: usize,
    },
    /// A send operation names no message.
    #[error("{pointer}: a send operation must name at least one message")]
    SendWithoutMessages {
        /// The operation's messages.
        pointer: String,
    },
    /// A reply names no message or several.
    #[error("{pointer}: a reply must name exactly one message, found {found}")]
    ReplyMessages {
        /// The reply's messages.
        pointer: String,
        /// How many it names.
        found: usize,
    },
    /// A reply travels on another channel than its request.
    #[error("{pointer}: a reply on another channel (`{reply_channel}`) is not supported; expected the operation's own channel `{channel}`")]
    ReplyElsewhere {
        /// The reply's channel.
        pointer: String,
        /// The channel it names.
        reply_channel: String,
        /// The operation's channel.
        channel: String,
    },
    /// An operation names a message of another channel.
    #[error("{pointer}: `{reference}` names a message of another channel; expected one of `{prefix}<key>`")]
    ForeignMessage {
        /// The operation's message.
        pointer: String,
        /// The reference.
        reference: String,
        /// The prefix of the operation's own channel's messages.
        prefix: String,
    },
    /// A channel receives messages but declares no way to answer a frame it cannot decode.
    #[error("{pointer}: the channel receives messages but no send operation declares an `error` message; expected one, so that clients know how undecodable frames are answered")]
    NoErrorMessage {
        /// The channel.
        pointer: String,
    },
    /// The correlation id is not the envelope's `ref`.
    #[error("{pointer}: correlation id location `{location}` is not supported; expected `$message.payload#/ref`")]
    CorrelationLocation {
        /// The correlation id.
        pointer: String,
        /// Its location.
        location: String,
    },
    /// `$ref`s that lead to `$ref`s too many times (a cycle, most likely).
    #[error("{pointer}: `$ref`s nest deeper than {depth} levels (a cycle?)")]
    RefTooDeep {
        /// The first `$ref`.
        pointer: String,
        /// How deep the generator follows.
        depth: usize,
    },
    /// A template failed to render: a bug in the generator, not in the document.
    #[error("internal error rendering {template}: {message}")]
    Render {
        /// The template.
        template: String,
        /// The renderer's message.
        message: String,
    },
    /// The rendered Rust did not parse: a bug in the generator, not in the document.
    #[error("internal error: generated Rust for {file} does not parse: {message}")]
    InvalidRust {
        /// The file.
        file: String,
        /// The parser's message.
        message: String,
    },
}
