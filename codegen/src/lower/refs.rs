//! Following `$ref`s, and the checks on derived names that every part of lowering shares.
//!
//! A reference is followed only in the forms AsyncAPI 3 documents use (`#/components/<kind>/<name>`,
//! `#/channels/<id>`, `#/channels/<id>/messages/<key>`), at most [`MAX_REF_DEPTH`] deep; each
//! resolution returns the pointer where the target is written, so that later errors point at
//! the text to edit rather than at the reference.

use super::{Lowering, Result, MAX_REF_DEPTH};
use crate::error::GenerateError;
use crate::model::{Channel, Message, Parameter, RefOr, Schema};
use crate::naming::escape_pointer;

impl<'d> Lowering<'d> {
    /// Follows a parameter `$ref` (to `#/components/parameters/<name>`) to the parameter.
    pub(super) fn resolve_parameter(
        &self,
        parameter: &'d RefOr<Parameter>,
        pointer: &str,
    ) -> Result<&'d Parameter> {
        let mut current = parameter;
        for _ in 0..MAX_REF_DEPTH {
            match current {
                RefOr::Item(p) => return Ok(p),
                RefOr::Ref { reference } => {
                    let name = strip_prefix(
                        reference,
                        "#/components/parameters/",
                        pointer,
                        "`#/components/parameters/<name>`",
                    )?;
                    current = self.doc.components.parameters.get(name).ok_or_else(|| {
                        GenerateError::DanglingRef {
                            pointer: pointer.to_owned(),
                            reference: reference.clone(),
                        }
                    })?;
                }
            }
        }
        Err(ref_cycle(pointer))
    }

    /// Follows a message `$ref` to the message object; returns it with the pointer where it is
    /// written, so errors point at the text to edit.
    pub(super) fn resolve_message(
        &self,
        message: &'d RefOr<Message>,
        pointer: &str,
    ) -> Result<(&'d Message, String)> {
        let mut current = message;
        let mut at = pointer.to_owned();
        for _ in 0..MAX_REF_DEPTH {
            match current {
                RefOr::Item(m) => return Ok((m, at)),
                RefOr::Ref { reference } => {
                    let name = strip_prefix(
                        reference,
                        "#/components/messages/",
                        &at,
                        "`#/components/messages/<name>`",
                    )?;
                    current = self.doc.components.messages.get(name).ok_or_else(|| {
                        GenerateError::DanglingRef {
                            pointer: at.clone(),
                            reference: reference.clone(),
                        }
                    })?;
                    at = reference.clone();
                }
            }
        }
        Err(ref_cycle(pointer))
    }

    /// The channel id an operation (or reply) refers to.
    pub(super) fn channel_id_of(&self, channel: &RefOr<Channel>, pointer: &str) -> Result<String> {
        let RefOr::Ref { reference } = channel else {
            return Err(GenerateError::UnsupportedRef {
                pointer: pointer.to_owned(),
                reference: "(inline channel)".into(),
                expected: "`$ref: '#/channels/<id>'`",
            });
        };
        let id = strip_prefix(reference, "#/channels/", pointer, "`#/channels/<id>`")?;
        let id = unescape_pointer(id);
        if self.doc.channels.get(id.as_str()).is_none() {
            return Err(GenerateError::DanglingRef {
                pointer: pointer.to_owned(),
                reference: reference.clone(),
            });
        }
        Ok(id)
    }

    /// The key, in the channel's `messages`, of a message an operation names.
    pub(super) fn message_key(
        &self,
        channel_id: &str,
        channel: &'d Channel,
        message: &RefOr<Message>,
        pointer: &str,
    ) -> Result<String> {
        let RefOr::Ref { reference } = message else {
            return Err(GenerateError::UnsupportedRef {
                pointer: pointer.to_owned(),
                reference: "(inline message)".into(),
                expected: "`$ref: '#/channels/<id>/messages/<key>'`",
            });
        };
        let prefix = format!("#/channels/{}/messages/", escape_pointer(channel_id));
        if let Some(key) = reference.strip_prefix(&prefix) {
            let key = unescape_pointer(key);
            if channel.messages.get(key.as_str()).is_some() {
                return Ok(key);
            }
            return Err(GenerateError::DanglingRef {
                pointer: pointer.to_owned(),
                reference: reference.clone(),
            });
        }
        if reference.starts_with("#/channels/") {
            return Err(GenerateError::ForeignMessage {
                pointer: pointer.to_owned(),
                reference: reference.clone(),
                prefix,
            });
        }
        Err(GenerateError::UnsupportedRef {
            pointer: pointer.to_owned(),
            reference: reference.clone(),
            expected:
                "`#/channels/<id>/messages/<key>` (AsyncAPI 3 operations name channel messages)",
        })
    }

    /// The schema itself, or the component it references.
    pub(super) fn follow(&self, schema: &'d Schema, pointer: &str) -> Result<&'d Schema> {
        match &schema.reference {
            None => Ok(schema),
            Some(reference) => Ok(self.resolve_schema_ref(reference, pointer)?.0),
        }
    }

    /// The component schema a `$ref` names, with the pointer it is written at and its name
    /// (which names its type when it has no `title`). An alias of another component is refused:
    /// which of the two names the type would then be a guess.
    pub(super) fn resolve_schema_ref(
        &self,
        reference: &str,
        pointer: &str,
    ) -> Result<(&'d Schema, String, String)> {
        let name = strip_prefix(
            reference,
            "#/components/schemas/",
            pointer,
            "`#/components/schemas/<name>`",
        )?;
        let schema =
            self.doc
                .components
                .schemas
                .get(name)
                .ok_or_else(|| GenerateError::DanglingRef {
                    pointer: pointer.to_owned(),
                    reference: reference.to_owned(),
                })?;
        if schema.reference.is_some() {
            return Err(GenerateError::UnsupportedRef {
                pointer: reference.to_owned(),
                reference: schema.reference.clone().unwrap_or_default(),
                expected: "component schemas that are schemas, not aliases of other components",
            });
        }
        Ok((schema, reference.to_owned(), name.to_owned()))
    }
}

/// Module names the generated file already uses at its top level, or paths it relies on.
pub(super) const RESERVED_MODULE_NAMES: [&str; 9] = [
    "runtime",
    "decode",
    "protocol_runtime",
    "serde",
    "serde_json",
    "schemars",
    "std",
    "core",
    "alloc",
];

/// Refuses a derived identifier with nothing left of the name it came from (a name of only
/// symbols or non-ASCII letters, which identifiers leave out).
pub(super) fn identifier(
    derived: &str,
    pointer: &str,
    what: impl FnOnce() -> String,
) -> Result<()> {
    if derived.chars().any(|c| c.is_ascii_alphanumeric()) {
        return Ok(());
    }
    Err(GenerateError::NoIdentifier {
        pointer: pointer.to_owned(),
        what: what(),
    })
}

/// Refuses an enum variant name that is empty or `Self`.
pub(super) fn check_variant_name(
    derived: &str,
    pointer: &str,
    source: impl FnOnce() -> String,
) -> Result<()> {
    match derived {
        "" => Err(GenerateError::NoIdentifier {
            pointer: pointer.to_owned(),
            what: format!("{} gives no variant name", source()),
        }),
        "Self" => Err(GenerateError::NameTaken {
            pointer: pointer.to_owned(),
            detail: format!(
                "{} gives the variant name `Self`, which Rust reserves; choose another name",
                source()
            ),
        }),
        _ => Ok(()),
    }
}

/// The `<name>` of a reference `prefix<name>`: one JSON-pointer token, or the form the caller
/// expects named in the error.
pub(super) fn strip_prefix<'r>(
    reference: &'r str,
    prefix: &str,
    pointer: &str,
    expected: &'static str,
) -> Result<&'r str> {
    reference
        .strip_prefix(prefix)
        .filter(|rest| !rest.is_empty() && !rest.contains('/'))
        .ok_or_else(|| GenerateError::UnsupportedRef {
            pointer: pointer.to_owned(),
            reference: reference.to_owned(),
            expected,
        })
}

/// A JSON-pointer token back to the key it stands for (RFC 6901: `~1` is `/`, `~0` is `~`).
pub(super) fn unescape_pointer(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// The error for `$ref`s followed [`MAX_REF_DEPTH`] times without reaching an object.
pub(super) fn ref_cycle(pointer: &str) -> GenerateError {
    GenerateError::RefTooDeep {
        pointer: pointer.to_owned(),
        depth: MAX_REF_DEPTH,
    }
}
