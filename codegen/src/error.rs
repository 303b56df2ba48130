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
    /// Any other construct the generator does not support.
    #[error("{pointer}: {what}")]
    Unsupported {
        /// Where.
        pointer: String,
        /// What is wrong and what was expected.
        what: String,
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
