//! Lowering: a typed [`Document`] becomes the intermediate [`ir::Api`].
//!
//! This is where every rule of the generator lives, so that targets only lay text out:
//! - [`channels`]: which messages travel in which direction on each channel, the operations
//!   that become handler methods, and the channel's parameters;
//! - [`types`]: schemas become named types (structs, string enums, unions) and type references;
//! - [`json_schema`]: each message's frame schema as one self-contained JSON Schema, for the
//!   docs and for validating frames;
//! - [`refs`]: following `$ref`s, and the checks on names every part shares.
//!
//! Each check reports the JSON pointer of the node it concerns (see [`GenerateError`]) in
//! terms of what the author should change, and nothing here panics on any input: the document
//! is user input.

mod channels;
mod json_schema;
mod refs;
mod types;

use std::collections::HashMap;

use indexmap::IndexMap;

use crate::error::GenerateError;
use crate::ir;
use crate::model::{Document, Operation, RefOr};
use crate::naming::escape_pointer;

/// Property names of the chanx envelope: they travel on every frame beside the payload and are
/// handled by the dispatcher, so they never become struct fields.
pub(crate) const ENVELOPE_PROPERTIES: [&str; 2] = ["ref", "version"];

/// Schema keywords accepted but not enforced, because they only document a value.
const DOC_ONLY_KEYWORDS: [&str; 4] = ["default", "examples", "format", "deprecated"];

/// `$ref`s are followed at most this deep, so a cycle of refs is an error rather than a hang.
const MAX_REF_DEPTH: usize = 16;

type Result<T> = std::result::Result<T, GenerateError>;

/// Lowers a parsed document.
pub(crate) fn lower(doc: &Document) -> Result<ir::Api> {
    if !doc.asyncapi.starts_with("3.") {
        return Err(GenerateError::Version {
            found: doc.asyncapi.clone(),
        });
    }
    let mut lowering = Lowering {
        doc,
        types: IndexMap::new(),
        names: HashMap::new(),
        visiting: Vec::new(),
    };
    // Each operation names its channel; reading them once, here, lets each channel take its
    // own operations instead of scanning all of them.
    let operations = lowering.operations_by_channel()?;
    let mut channels: Vec<ir::Channel> = Vec::new();
    for (id, channel) in &doc.channels {
        let pointer = format!("#/channels/{}", escape_pointer(id));
        let channel = match channel {
            RefOr::Item(channel) => channel,
            RefOr::Ref { reference } => {
                return Err(GenerateError::UnsupportedRef {
                    pointer,
                    reference: reference.clone(),
                    expected: "channels written inline under `channels`",
                })
            }
        };
        let own = operations.get(id.as_str()).map_or(&[][..], Vec::as_slice);
        let lowered = lowering.channel(id, channel, &pointer, own)?;
        channels::check_distinct_modules(&channels, &lowered, &pointer)?;
        channels.push(lowered);
    }
    types::check_finite(&lowering.types)?;
    let servers = doc
        .servers
        .iter()
        .map(|(id, s)| ir::Server {
            id: id.clone(),
            host: s.host.clone(),
            protocol: s.protocol.clone(),
            pathname: s.pathname.clone(),
            description: s.description.clone(),
        })
        .collect();
    Ok(ir::Api {
        title: doc.info.title.clone(),
        version: doc.info.version.clone(),
        description: doc.info.description.clone(),
        types: lowering.types.into_values().collect(),
        channels,
        servers,
        tags: doc.info.tags.clone(),
        contact: doc.info.contact.clone(),
        license: doc.info.license.clone(),
    })
}

/// An operation of the document with the pointer it is written at.
struct OperationAt<'d> {
    id: &'d str,
    operation: &'d Operation,
    pointer: String,
}

struct Lowering<'d> {
    doc: &'d Document,
    /// Named types by the pointer of the schema that defines them, in the order first reached.
    types: IndexMap<String, ir::TypeDef>,
    /// Type name -> pointer of the schema that took it, to refuse two schemas with one name.
    names: HashMap<String, String>,
    /// Pointers of the component schemas being lowered, innermost last: a `$ref` back to one of
    /// them that has no named type yet would recurse forever.
    visiting: Vec<String>,
}

impl<'d> Lowering<'d> {
    /// Every operation, under the id of the channel it names, in document order.
    fn operations_by_channel(&self) -> Result<HashMap<String, Vec<OperationAt<'d>>>> {
        let mut by_channel: HashMap<String, Vec<OperationAt<'d>>> = HashMap::new();
        for (id, operation) in &self.doc.operations {
            let pointer = format!("#/operations/{}", escape_pointer(id));
            let RefOr::Item(operation) = operation else {
                return Err(GenerateError::UnsupportedRef {
                    pointer,
                    reference: "(operation)".into(),
                    expected: "operations written inline under `operations`",
                });
            };
            let channel = self.channel_id_of(&operation.channel, &format!("{pointer}/channel"))?;
            by_channel.entry(channel).or_default().push(OperationAt {
                id,
                operation,
                pointer,
            });
        }
        Ok(by_channel)
    }
}
