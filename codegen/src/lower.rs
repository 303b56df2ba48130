//! Lowering: a typed [`Document`] becomes the intermediate [`Api`].
//!
//! This is where every rule of the generator lives: `$ref` resolution, naming, which messages
//! travel in which direction, and what a message frame must look like. Each check reports the
//! JSON pointer of the node it concerns (see [`GenerateError`]), and nothing here panics on any
//! input: the document is user input.

use std::collections::{BTreeSet, HashMap};

use indexmap::IndexMap;
use serde_json::Value;

use crate::error::GenerateError;
use crate::ir;
use crate::model::{
    Action, Channel, CorrelationId, Document, Message, Parameter, RefOr, Schema, TypeNames,
};
use crate::naming::{escape_pointer, field_name, pascal_case, ts_property_name};

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
    let mut channels = Vec::new();
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
        let lowered = lowering.channel(id, channel, &pointer)?;
        for other in &channels {
            let other: &ir::Channel = other;
            let clash = if other.module == lowered.module {
                Some(("module", &lowered.module))
            } else if other.type_prefix == lowered.type_prefix {
                Some(("type-name prefix", &lowered.type_prefix))
            } else {
                None
            };
            if let Some((what, name)) = clash {
                return Err(GenerateError::Unsupported {
                    pointer,
                    what: format!("the channel id maps to the {what} `{name}`, which the channel `{}` already has; rename one of them", other.id),
                });
            }
        }
        channels.push(lowered);
    }
    check_finite(&lowering.types)?;
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
        tags: doc
            .info
            .tags
            .iter()
            .map(|t| ir::Tag {
                name: t.name.clone(),
                description: t.description.clone(),
            })
            .collect(),
        contact: doc.info.contact.as_ref().map(|c| ir::Contact {
            name: c.name.clone(),
            url: c.url.clone(),
            email: c.email.clone(),
        }),
        license: doc.info.license.as_ref().map(|l| ir::License {
            name: l.name.clone(),
            url: l.url.clone(),
        }),
    })
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
    fn channel(&mut self, id: &str, channel: &'d Channel, pointer: &str) -> Result<ir::Channel> {
        let address = channel.address.clone().ok_or_else(|| GenerateError::Unsupported {
            pointer: pointer.to_owned(),
            what: "channel has no `address`; expected the WebSocket path, e.g. `/ws/room/{room_name}`".into(),
        })?;
        let module = field_name(id);
        identifier(&module, pointer, || {
            format!("the channel id `{id}` gives no Rust module name")
        })?;
        if RESERVED_MODULE_NAMES.contains(&module.as_str()) {
            return Err(GenerateError::Unsupported {
                pointer: pointer.to_owned(),
                what: format!("the channel id maps to the module name `{module}`, which the generated code already uses; choose another id"),
            });
        }
        let parameters = self.parameters(channel, &address, pointer)?;

        // Messages of the channel, keyed by their key in `channels.<id>.messages`.
        let mut messages: IndexMap<String, ir::Message> = IndexMap::new();
        let mut by_action: HashMap<String, String> = HashMap::new();
        for (key, message) in &channel.messages {
            let message_pointer = format!("{pointer}/messages/{}", escape_pointer(key));
            let (message, message_pointer) = self.resolve_message(message, &message_pointer)?;
            let lowered = self.message(key, message, &message_pointer)?;
            if let Some(other) = by_action.get(&lowered.action) {
                return Err(GenerateError::DuplicateAction {
                    pointer: message_pointer,
                    action: lowered.action,
                    other: other.clone(),
                });
            }
            by_action.insert(lowered.action.clone(), message_pointer);
            messages.insert(key.clone(), lowered);
        }

        let mut operations = Vec::new();
        let mut handlers = Vec::new();
        let mut incoming: IndexMap<String, ir::MessageUse> = IndexMap::new();
        let mut outgoing: IndexMap<String, ir::MessageUse> = IndexMap::new();
        for (op_id, op) in &self.doc.operations {
            let op_pointer = format!("#/operations/{}", escape_pointer(op_id));
            let RefOr::Item(op) = op else {
                return Err(GenerateError::UnsupportedRef {
                    pointer: op_pointer,
                    reference: "(operation)".into(),
                    expected: "operations written inline under `operations`",
                });
            };
            if self.channel_id_of(&op.channel, &format!("{op_pointer}/channel"))? != id {
                continue;
            }
            let mut uses = Vec::new();
            for (i, m) in op.messages.iter().enumerate() {
                let key =
                    self.message_key(id, channel, m, &format!("{op_pointer}/messages/{i}"))?;
                uses.push(message_use(&messages[&key]));
            }
            let reply = match &op.reply {
                None => None,
                Some(reply) => {
                    let reply_pointer = format!("{op_pointer}/reply");
                    if let Some(reply_channel) = &reply.channel {
                        let reply_channel_id =
                            self.channel_id_of(reply_channel, &format!("{reply_pointer}/channel"))?;
                        if reply_channel_id != id {
                            return Err(GenerateError::Unsupported {
                                pointer: format!("{reply_pointer}/channel"),
                                what: format!("a reply on another channel (`{reply_channel_id}`) is not supported; expected the operation's own channel `{id}`"),
                            });
                        }
                    }
                    if reply.messages.len() != 1 {
                        return Err(GenerateError::Unsupported {
                            pointer: format!("{reply_pointer}/messages"),
                            what: format!(
                                "a reply must name exactly one message, found {}",
                                reply.messages.len()
                            ),
                        });
                    }
                    let key = self.message_key(
                        id,
                        channel,
                        &reply.messages[0],
                        &format!("{reply_pointer}/messages/0"),
                    )?;
                    Some(message_use(&messages[&key]))
                }
            };
            match op.action {
                Action::Receive => {
                    if uses.len() != 1 {
                        return Err(GenerateError::Unsupported {
                            pointer: format!("{op_pointer}/messages"),
                            what: format!("a receive operation must name exactly one message (its handler takes that message), found {}", uses.len()),
                        });
                    }
                    for u in &uses {
                        add_use(&mut incoming, u, "incoming", &by_action)?;
                    }
                }
                Action::Send => {
                    if uses.is_empty() {
                        return Err(GenerateError::Unsupported {
                            pointer: format!("{op_pointer}/messages"),
                            what: "a send operation must name at least one message".into(),
                        });
                    }
                    for u in &uses {
                        add_use(&mut outgoing, u, "outgoing", &by_action)?;
                    }
                }
            }
            if let Some(r) = &reply {
                add_use(&mut outgoing, r, "outgoing", &by_action)?;
            }
            let lowered = ir::Operation {
                id: op_id.clone(),
                method: field_name(op_id),
                action: match op.action {
                    Action::Receive => "receive".into(),
                    Action::Send => "send".into(),
                },
                summary: op.summary.clone(),
                description: op.description.clone(),
                tags: op.tags.iter().map(|t| t.name.clone()).collect(),
                messages: uses,
                reply,
            };
            if op.action == Action::Receive {
                identifier(&lowered.method, &op_pointer, || {
                    format!("the operation id `{op_id}` gives no handler method name")
                })?;
                if handlers
                    .iter()
                    .any(|h: &ir::Operation| h.method == lowered.method)
                {
                    return Err(GenerateError::Unsupported {
                        pointer: op_pointer,
                        what: format!("operation id maps to the method name `{}` that another operation already has", lowered.method),
                    });
                }
                handlers.push(lowered.clone());
            }
            operations.push(lowered);
        }
        if !handlers.is_empty() && !outgoing.contains_key("error") {
            return Err(GenerateError::Unsupported {
                pointer: pointer.to_owned(),
                what: "the channel receives messages but no send operation declares an `error` message; expected one, so that clients know how undecodable frames are answered".into(),
            });
        }
        Ok(ir::Channel {
            id: id.to_owned(),
            module,
            type_prefix: pascal_case(id),
            address,
            title: channel.title.clone(),
            summary: channel.summary.clone(),
            description: channel.description.clone(),
            parameters,
            tags: channel.tags.iter().map(|t| t.name.clone()).collect(),
            incoming: incoming.into_values().collect(),
            outgoing: outgoing.into_values().collect(),
            operations,
            handlers,
            messages: messages.into_values().collect(),
        })
    }

    fn parameters(
        &self,
        channel: &'d Channel,
        address: &str,
        pointer: &str,
    ) -> Result<Vec<ir::Parameter>> {
        let in_address = address_parameters(address);
        for (i, name) in in_address.iter().enumerate() {
            if in_address[..i].contains(name) {
                return Err(GenerateError::Unsupported {
                    pointer: format!("{pointer}/address"),
                    what: format!("the address `{address}` uses `{{{name}}}` twice; expected each parameter once"),
                });
            }
            if channel.parameters.get(name.as_str()).is_none() {
                return Err(GenerateError::UndeclaredParameter {
                    pointer: pointer.to_owned(),
                    name: name.clone(),
                    address: address.to_owned(),
                });
            }
        }
        let mut out = Vec::new();
        for (name, parameter) in &channel.parameters {
            let param_pointer = format!("{pointer}/parameters/{}", escape_pointer(name));
            if !in_address.contains(name) {
                return Err(GenerateError::ParameterNotInAddress {
                    pointer: param_pointer,
                    name: name.clone(),
                    address: address.to_owned(),
                });
            }
            let parameter = self.resolve_parameter(parameter, &param_pointer)?;
            let rust_name = field_name(name);
            identifier(&rust_name, &param_pointer, || {
                format!("the parameter name `{name}` gives no field name")
            })?;
            if let Some(other) = out
                .iter()
                .find(|p: &&ir::Parameter| p.rust_name == rust_name)
            {
                return Err(GenerateError::Unsupported {
                    pointer: param_pointer,
                    what: format!("parameter `{name}` maps to the field name `{rust_name}`, which parameter `{}` already has; rename one of them", other.name),
                });
            }
            out.push(ir::Parameter {
                name: name.clone(),
                rust_name,
                description: parameter.description.clone(),
                examples: parameter.examples.clone(),
                allowed: parameter.allowed.clone().unwrap_or_default(),
            });
        }
        // Address order, so generated constructors read like the path.
        out.sort_by_key(|p| in_address.iter().position(|n| *n == p.name));
        Ok(out)
    }

    fn resolve_parameter(
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
    fn resolve_message(
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
    fn channel_id_of(&self, channel: &RefOr<Channel>, pointer: &str) -> Result<String> {
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
    fn message_key(
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
            return Err(GenerateError::Unsupported {
                pointer: pointer.to_owned(),
                what: format!("`{reference}` names a message of another channel; expected one of `{prefix}<key>`"),
            });
        }
        Err(GenerateError::UnsupportedRef {
            pointer: pointer.to_owned(),
            reference: reference.clone(),
            expected:
                "`#/channels/<id>/messages/<key>` (AsyncAPI 3 operations name channel messages)",
        })
    }

    fn message(&mut self, key: &str, message: &'d Message, pointer: &str) -> Result<ir::Message> {
        let payload_pointer = format!("{pointer}/payload");
        let Some(payload) = &message.payload else {
            return Err(GenerateError::MissingAction {
                pointer: payload_pointer,
            });
        };
        let reference = match payload {
            RefOr::Ref { reference } => Some(reference),
            RefOr::Item(schema) => schema.reference.as_ref(),
        };
        let (schema, schema_pointer, component) = match (payload, reference) {
            (_, Some(reference)) => {
                let (schema, at, name) = self.resolve_schema_ref(reference, &payload_pointer)?;
                (schema, at, Some(name))
            }
            (RefOr::Item(schema), None) => (schema, payload_pointer.clone(), None),
            (RefOr::Ref { .. }, None) => unreachable_ref(&payload_pointer)?,
        };
        let action = schema
            .properties
            .get("action")
            .and_then(|a| a.constant.as_ref())
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| GenerateError::MissingAction {
                pointer: schema_pointer.clone(),
            })?;
        let frame_type =
            self.frame_type(schema, &schema_pointer, component.as_deref(), key, &action)?;
        let correlation_property = match &message.correlation_id {
            None => None,
            Some(c) => Some(self.correlation_property(c, &format!("{pointer}/correlationId"))?),
        };
        let variant = pascal_case(&action);
        check_variant_name(
            &variant,
            &format!("{schema_pointer}/properties/action/const"),
            || format!("the action `{action}`"),
        )?;
        let payload_schema = self.resolved_json(schema, &schema_pointer)?;
        Ok(ir::Message {
            id: key.to_owned(),
            variant,
            action,
            frame_type,
            title: message.title.clone(),
            summary: message.summary.clone(),
            description: message.description.clone(),
            correlation_property,
            examples: message
                .examples
                .iter()
                .filter_map(|e| {
                    e.payload.clone().map(|payload| ir::Example {
                        name: e.name.clone(),
                        summary: e.summary.clone(),
                        payload,
                    })
                })
                .collect(),
            pointer: pointer.to_owned(),
            payload_schema,
        })
    }

    fn correlation_property(&self, c: &'d RefOr<CorrelationId>, pointer: &str) -> Result<String> {
        let c = match c {
            RefOr::Item(c) => c,
            RefOr::Ref { reference } => {
                let name = strip_prefix(
                    reference,
                    "#/components/correlationIds/",
                    pointer,
                    "`#/components/correlationIds/<name>`",
                )?;
                self.doc
                    .components
                    .correlation_ids
                    .get(name)
                    .ok_or_else(|| GenerateError::DanglingRef {
                        pointer: pointer.to_owned(),
                        reference: reference.clone(),
                    })?
            }
        };
        match c.location.strip_prefix("$message.payload#/") {
            Some(property) if ENVELOPE_PROPERTIES.contains(&property) => Ok(property.to_owned()),
            _ => Err(GenerateError::Unsupported {
                pointer: pointer.to_owned(),
                what: format!(
                    "correlation id location `{}` is not supported; expected `$message.payload#/ref`",
                    c.location
                ),
            }),
        }
    }

    /// Registers the struct for a message frame: every property but `action` and the envelope.
    fn frame_type(
        &mut self,
        schema: &'d Schema,
        pointer: &str,
        component: Option<&str>,
        key: &str,
        action: &str,
    ) -> Result<String> {
        if let Some(existing) = self.types.get(pointer) {
            return Ok(existing.name.clone());
        }
        let name =
            type_name(schema, component).unwrap_or_else(|| format!("{}Message", pascal_case(key)));
        self.claim_name(&name, pointer)?;
        check_keywords(schema, pointer)?;
        let placeholder = ir::TypeDef {
            name: name.clone(),
            description: schema.description.clone(),
            pointer: pointer.to_owned(),
            kind: ir::TypeKind::Struct { fields: Vec::new() },
            action: Some(action.to_owned()),
            rust_path: rust_path(schema, pointer)?,
        };
        self.types.insert(pointer.to_owned(), placeholder);
        let fields = self.fields(schema, pointer, |prop| {
            prop == "action" || ENVELOPE_PROPERTIES.contains(&prop)
        })?;
        if let Some(t) = self.types.get_mut(pointer) {
            t.kind = ir::TypeKind::Struct { fields };
        }
        Ok(name)
    }

    fn fields(
        &mut self,
        schema: &'d Schema,
        pointer: &str,
        skip: impl Fn(&str) -> bool,
    ) -> Result<Vec<ir::Field>> {
        for required in &schema.required {
            if schema.properties.get(required.as_str()).is_none() {
                return Err(GenerateError::Unsupported {
                    pointer: format!("{pointer}/required"),
                    what: format!("`{required}` is required but not among the properties"),
                });
            }
        }
        let mut fields = Vec::new();
        let mut rust_names = BTreeSet::new();
        for (prop, prop_schema) in &schema.properties {
            if skip(prop) {
                continue;
            }
            let prop_pointer = format!("{pointer}/properties/{}", escape_pointer(prop));
            let (ty, nullable) = self.type_ref(prop_schema, &prop_pointer)?;
            let rust_name = field_name(prop);
            identifier(&rust_name, &prop_pointer, || {
                format!("the property name `{prop}` gives no field name")
            })?;
            if !rust_names.insert(rust_name.clone()) {
                return Err(GenerateError::Unsupported {
                    pointer: prop_pointer,
                    what: format!("property maps to the field name `{rust_name}` that another property already has"),
                });
            }
            // Descriptions and titles of a `$ref`'d property come from the referenced schema.
            let described = self.follow(prop_schema, &prop_pointer)?;
            fields.push(ir::Field {
                json_name: prop.clone(),
                rust_name,
                ts_name: ts_property_name(prop),
                ty,
                required: schema.required.iter().any(|r| r == prop),
                nullable,
                title: prop_schema
                    .title
                    .clone()
                    .or_else(|| described.title.clone()),
                description: prop_schema
                    .description
                    .clone()
                    .or_else(|| described.description.clone()),
                min_length: described.min_length,
                max_length: described.max_length,
            });
        }
        Ok(fields)
    }

    /// The schema itself, or the component it references.
    fn follow(&self, schema: &'d Schema, pointer: &str) -> Result<&'d Schema> {
        match &schema.reference {
            None => Ok(schema),
            Some(reference) => Ok(self.resolve_schema_ref(reference, pointer)?.0),
        }
    }

    fn resolve_schema_ref(
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

    /// The type of a value, and whether it also accepts `null`.
    fn type_ref(&mut self, schema: &'d Schema, pointer: &str) -> Result<(ir::TypeRef, bool)> {
        if let Some(reference) = &schema.reference {
            let (target, at, name) = self.resolve_schema_ref(reference, pointer)?;
            // A schema reached again while it is being lowered is fine once it has a named
            // type (objects and titled unions register theirs before lowering their parts);
            // anything else (an array of itself, a nullable alias of itself) has no finite type.
            if self.visiting.contains(&at) && !self.types.contains_key(&at) {
                return Err(GenerateError::Unsupported {
                    pointer: at,
                    what: format!("the schema contains itself through the `$ref` at {pointer} with no object or titled union in between, so it has no finite type; expected the recursion to pass through an object property"),
                });
            }
            self.visiting.push(at.clone());
            let lowered = self.named_or_inline(target, &at, Some(&name));
            self.visiting.pop();
            return lowered;
        }
        check_keywords(schema, pointer)?;
        self.named_or_inline(schema, pointer, None)
    }

    fn named_or_inline(
        &mut self,
        schema: &'d Schema,
        pointer: &str,
        component: Option<&str>,
    ) -> Result<(ir::TypeRef, bool)> {
        check_keywords(schema, pointer)?;
        // `T | null` written as a union.
        if let Some(alternatives) = schema.one_of.as_ref().or(schema.any_of.as_ref()) {
            let keyword = if schema.one_of.is_some() {
                "oneOf"
            } else {
                "anyOf"
            };
            let non_null: Vec<(usize, &Schema)> = alternatives
                .iter()
                .enumerate()
                .filter(|(_, s)| !is_null_schema(s))
                .collect();
            let nullable = non_null.len() < alternatives.len();
            if let [(i, only)] = non_null.as_slice() {
                let (ty, inner_nullable) =
                    self.type_ref(only, &format!("{pointer}/{keyword}/{i}"))?;
                return Ok((ty, nullable || inner_nullable));
            }
            let name = type_name(schema, component).ok_or_else(|| GenerateError::Unsupported {
                pointer: pointer.to_owned(),
                what: format!("a `{keyword}` of several types needs a `title` to name its type"),
            })?;
            if let Some(existing) = self.types.get(pointer) {
                return Ok((named(&existing.name), nullable));
            }
            self.claim_name(&name, pointer)?;
            // Registered before the alternatives are lowered, so that one referring back to this
            // union resolves to its name instead of recursing.
            self.types.insert(
                pointer.to_owned(),
                ir::TypeDef {
                    name: name.clone(),
                    description: schema.description.clone(),
                    pointer: pointer.to_owned(),
                    kind: ir::TypeKind::Untagged {
                        variants: Vec::new(),
                    },
                    action: None,
                    rust_path: rust_path(schema, pointer)?,
                },
            );
            let mut variants = Vec::new();
            for (i, alternative) in non_null {
                let alt_pointer = format!("{pointer}/{keyword}/{i}");
                let (ty, alt_nullable) = self.type_ref(alternative, &alt_pointer)?;
                let ty = if alt_nullable {
                    ir::TypeRef::Nullable {
                        inner: Box::new(ty),
                    }
                } else {
                    ty
                };
                let described = self.follow(alternative, &alt_pointer)?;
                let variant_name = described
                    .title
                    .as_deref()
                    .map(pascal_case)
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| variant_name_for(&ty));
                check_variant_name(&variant_name, &alt_pointer, || {
                    "the alternative's title".to_owned()
                })?;
                if variants
                    .iter()
                    .any(|v: &ir::UntaggedVariant| v.name == variant_name)
                {
                    return Err(GenerateError::Unsupported {
                        pointer: alt_pointer,
                        what: format!("two alternatives are both named `{variant_name}`; give them distinct `title`s"),
                    });
                }
                variants.push(ir::UntaggedVariant {
                    name: variant_name,
                    ty,
                    description: described.description.clone(),
                });
            }
            // Moved behind its alternatives' types, where it has always been listed.
            if let Some(mut t) = self.types.shift_remove(pointer) {
                t.kind = ir::TypeKind::Untagged { variants };
                self.types.insert(pointer.to_owned(), t);
            }
            return Ok((named(&name), nullable));
        }

        let (type_name_str, nullable) = match &schema.type_names {
            None => {
                if schema.enumeration.is_some() {
                    ("string".to_owned(), false)
                } else if !schema.properties.is_empty() {
                    ("object".to_owned(), false)
                } else {
                    return Ok((ir::TypeRef::Any, false));
                }
            }
            Some(TypeNames::One(t)) => (t.clone(), false),
            Some(TypeNames::Many(ts)) => {
                let non_null: Vec<&String> = ts.iter().filter(|t| *t != "null").collect();
                let nullable = non_null.len() < ts.len();
                match non_null.as_slice() {
                    [] => ("null".to_owned(), false),
                    [only] => ((*only).clone(), nullable),
                    _ => {
                        return Err(GenerateError::Unsupported {
                            pointer: format!("{pointer}/type"),
                            what: "a value of several non-null types is not supported; expected one type, optionally with `null`".into(),
                        })
                    }
                }
            }
        };
        let ty = match type_name_str.as_str() {
            "string" if schema.enumeration.is_some() => self.string_enum(schema, pointer, component)?,
            "string" => ir::TypeRef::String,
            "integer" => ir::TypeRef::Integer,
            "number" => ir::TypeRef::Number,
            "boolean" => ir::TypeRef::Boolean,
            "null" => ir::TypeRef::Null,
            "array" => match &schema.items {
                None => ir::TypeRef::Array {
                    item: Box::new(ir::TypeRef::Any),
                },
                Some(items) => {
                    let (item, item_nullable) = self.type_ref(items, &format!("{pointer}/items"))?;
                    let item = if item_nullable {
                        ir::TypeRef::Nullable { inner: Box::new(item) }
                    } else {
                        item
                    };
                    ir::TypeRef::Array { item: Box::new(item) }
                }
            },
            "object" if schema.properties.is_empty() => ir::TypeRef::Any,
            "object" => self.object(schema, pointer, component)?,
            other => {
                return Err(GenerateError::Unsupported {
                    pointer: format!("{pointer}/type"),
                    what: format!("unknown type `{other}`; expected string, integer, number, boolean, null, array or object"),
                })
            }
        };
        if schema.enumeration.is_some() && type_name_str != "string" {
            return Err(GenerateError::Unsupported {
                pointer: format!("{pointer}/enum"),
                what: "only string enumerations are supported".into(),
            });
        }
        Ok((ty, nullable))
    }

    fn object(
        &mut self,
        schema: &'d Schema,
        pointer: &str,
        component: Option<&str>,
    ) -> Result<ir::TypeRef> {
        if let Some(existing) = self.types.get(pointer) {
            return Ok(named(&existing.name));
        }
        let name = type_name(schema, component).ok_or_else(|| GenerateError::Unsupported {
            pointer: pointer.to_owned(),
            what: "an inline object schema needs a `title` to name its type".into(),
        })?;
        self.claim_name(&name, pointer)?;
        // Insert first so a type that refers to itself (through an array) resolves to its name.
        self.types.insert(
            pointer.to_owned(),
            ir::TypeDef {
                name: name.clone(),
                description: schema.description.clone(),
                pointer: pointer.to_owned(),
                kind: ir::TypeKind::Struct { fields: Vec::new() },
                action: None,
                rust_path: rust_path(schema, pointer)?,
            },
        );
        let fields = self.fields(schema, pointer, |_| false)?;
        if let Some(t) = self.types.get_mut(pointer) {
            t.kind = ir::TypeKind::Struct { fields };
        }
        Ok(named(&name))
    }

    fn string_enum(
        &mut self,
        schema: &'d Schema,
        pointer: &str,
        component: Option<&str>,
    ) -> Result<ir::TypeRef> {
        if let Some(existing) = self.types.get(pointer) {
            return Ok(named(&existing.name));
        }
        let name = type_name(schema, component).ok_or_else(|| GenerateError::Unsupported {
            pointer: pointer.to_owned(),
            what: "an enumeration needs a `title` to name its type".into(),
        })?;
        self.claim_name(&name, pointer)?;
        let mut variants: Vec<ir::EnumVariant> = Vec::new();
        for (i, value) in schema.enumeration.iter().flatten().enumerate() {
            let Some(value) = value.as_str() else {
                return Err(GenerateError::Unsupported {
                    pointer: format!("{pointer}/enum/{i}"),
                    what: format!("enumeration value `{value}` is not a string; only string enumerations are supported"),
                });
            };
            let variant = pascal_case(value);
            check_variant_name(&variant, &format!("{pointer}/enum/{i}"), || {
                format!("enumeration value `{value}`")
            })?;
            if variants.iter().any(|v| v.name == variant) {
                return Err(GenerateError::Unsupported {
                    pointer: format!("{pointer}/enum/{i}"),
                    what: format!(
                        "enumeration value `{value}` does not give a distinct variant name"
                    ),
                });
            }
            variants.push(ir::EnumVariant {
                name: variant,
                value: value.to_owned(),
            });
        }
        self.types.insert(
            pointer.to_owned(),
            ir::TypeDef {
                name: name.clone(),
                description: schema.description.clone(),
                pointer: pointer.to_owned(),
                kind: ir::TypeKind::StringEnum { variants },
                action: None,
                rust_path: rust_path(schema, pointer)?,
            },
        );
        Ok(named(&name))
    }

    fn claim_name(&mut self, name: &str, pointer: &str) -> Result<()> {
        if RESERVED_TYPE_NAMES.contains(&name) {
            return Err(GenerateError::Unsupported {
                pointer: pointer.to_owned(),
                what: format!("the type name `{name}` is reserved by the generated code; choose another `title`"),
            });
        }
        match self.names.get(name) {
            Some(other) if other != pointer => Err(GenerateError::Unsupported {
                pointer: pointer.to_owned(),
                what: format!("the type name `{name}` is already taken by the schema at {other}; give one of them another `title`"),
            }),
            _ => {
                self.names.insert(name.to_owned(), pointer.to_owned());
                Ok(())
            }
        }
    }

    /// The frame schema as one self-contained JSON Schema (what a validator of frames needs, and
    /// what docs show): the schema itself, with each component it uses written once under
    /// `$defs` and every `$ref` pointing there. Writing each component once, instead of in place
    /// at every use, keeps the output linear in the document even when references fan out, and
    /// lets a recursive schema refer to itself.
    fn resolved_json(&self, schema: &Schema, pointer: &str) -> Result<Value> {
        let mut defs = IndexMap::new();
        let mut root = self.schema_json(schema, pointer, &mut defs)?;
        if !defs.is_empty() {
            if let Value::Object(root) = &mut root {
                root.insert("$defs".into(), Value::Object(defs.into_iter().collect()));
            }
        }
        Ok(root)
    }

    /// One schema as JSON; the components it refers to are added to `defs` (by name), each once.
    fn schema_json(
        &self,
        schema: &Schema,
        pointer: &str,
        defs: &mut IndexMap<String, Value>,
    ) -> Result<Value> {
        if let Some(reference) = &schema.reference {
            let (target, at, name) = self.resolve_schema_ref(reference, pointer)?;
            if !defs.contains_key(&name) {
                // Claimed before the component is written, so a reference back to it (recursion)
                // stops here.
                defs.insert(name.clone(), Value::Null);
                let written = self.schema_json(target, &at, defs)?;
                defs.insert(name.clone(), written);
            }
            return Ok(serde_json::json!({ "$ref": format!("#/$defs/{}", escape_pointer(&name)) }));
        }
        let mut out = serde_json::Map::new();
        if let Some(t) = &schema.title {
            out.insert("title".into(), Value::String(t.clone()));
        }
        if let Some(d) = &schema.description {
            out.insert("description".into(), Value::String(d.clone()));
        }
        match &schema.type_names {
            Some(TypeNames::One(t)) => {
                out.insert("type".into(), Value::String(t.clone()));
            }
            Some(TypeNames::Many(ts)) => {
                out.insert(
                    "type".into(),
                    Value::Array(ts.iter().cloned().map(Value::String).collect()),
                );
            }
            None => {}
        }
        if !schema.properties.is_empty() {
            let mut props = serde_json::Map::new();
            for (name, prop) in &schema.properties {
                let prop_pointer = format!("{pointer}/properties/{}", escape_pointer(name));
                props.insert(name.clone(), self.schema_json(prop, &prop_pointer, defs)?);
            }
            out.insert("properties".into(), Value::Object(props));
        }
        if !schema.required.is_empty() {
            out.insert(
                "required".into(),
                Value::Array(schema.required.iter().cloned().map(Value::String).collect()),
            );
        }
        if let Some(items) = &schema.items {
            out.insert(
                "items".into(),
                self.schema_json(items, &format!("{pointer}/items"), defs)?,
            );
        }
        if let Some(e) = &schema.enumeration {
            out.insert("enum".into(), Value::Array(e.clone()));
        }
        if let Some(c) = &schema.constant {
            out.insert("const".into(), c.clone());
        }
        for (keyword, alternatives) in [("oneOf", &schema.one_of), ("anyOf", &schema.any_of)] {
            if let Some(alternatives) = alternatives {
                let mut resolved = Vec::new();
                for (i, a) in alternatives.iter().enumerate() {
                    resolved.push(self.schema_json(
                        a,
                        &format!("{pointer}/{keyword}/{i}"),
                        defs,
                    )?);
                }
                out.insert(keyword.into(), Value::Array(resolved));
            }
        }
        if let Some(n) = schema.min_length {
            out.insert("minLength".into(), Value::from(n));
        }
        if let Some(n) = schema.max_length {
            out.insert("maxLength".into(), Value::from(n));
        }
        for keyword in DOC_ONLY_KEYWORDS {
            if let Some(v) = schema.extra.get(keyword) {
                out.insert(keyword.into(), v.clone());
            }
        }
        Ok(Value::Object(out))
    }
}

/// Refuses a named type that contains itself other than through an array. Rust needs an
/// indirection to hold a value inside a value of the same type, and the generated types only have
/// one where JSON has one that can be empty: an array (`struct Node { next: Option<Node> }` has no
/// finite size; `struct Node { children: Vec<Node> }` does).
fn check_finite(types: &IndexMap<String, ir::TypeDef>) -> Result<()> {
    /// The named types `ty` holds inline (arrays hold theirs on the heap).
    fn inline_names<'a>(ty: &'a ir::TypeRef, out: &mut Vec<&'a str>) {
        match ty {
            ir::TypeRef::Named { name } => out.push(name),
            ir::TypeRef::Nullable { inner } => inline_names(inner, out),
            _ => {}
        }
    }
    let by_name: HashMap<&str, &ir::TypeDef> =
        types.values().map(|t| (t.name.as_str(), t)).collect();
    let contains = |def: &'_ ir::TypeDef| {
        let mut out = Vec::new();
        match &def.kind {
            ir::TypeKind::Struct { fields } => {
                for f in fields {
                    inline_names(&f.ty, &mut out);
                }
            }
            ir::TypeKind::Untagged { variants } => {
                for v in variants {
                    inline_names(&v.ty, &mut out);
                }
            }
            ir::TypeKind::StringEnum { .. } => {}
        }
        // Reversed, so that popping visits them in document order.
        out.into_iter()
            .rev()
            .map(str::to_owned)
            .collect::<Vec<String>>()
    };
    // Depth-first search; `path` holds the types being visited, `done` those known to be finite.
    let mut done: BTreeSet<String> = BTreeSet::new();
    for start in types.values() {
        if done.contains(&start.name) {
            continue;
        }
        let mut path: Vec<(String, Vec<String>)> = vec![(start.name.clone(), contains(start))];
        while let Some((_, pending)) = path.last_mut() {
            let Some(next) = pending.pop() else {
                if let Some((name, _)) = path.pop() {
                    done.insert(name);
                }
                continue;
            };
            if done.contains(&next) {
                continue;
            }
            if let Some(at) = path.iter().position(|(name, _)| *name == next) {
                let mut cycle: Vec<String> = path[at..]
                    .iter()
                    .map(|(name, _)| format!("`{name}`"))
                    .collect();
                cycle.push(format!("`{next}`"));
                let pointer = by_name
                    .get(next.as_str())
                    .map(|t| t.pointer.clone())
                    .unwrap_or_default();
                return Err(GenerateError::Unsupported {
                    pointer,
                    what: format!("the type `{next}` contains itself ({}) other than through an array, so it would have no finite size; expected the recursion to pass through an array (`type: array` with `items`)", cycle.join(" -> ")),
                });
            }
            if let Some(def) = by_name.get(next.as_str()) {
                path.push((next, contains(def)));
            }
        }
    }
    Ok(())
}

/// Module names the generated file already uses at its top level, or paths it relies on.
const RESERVED_MODULE_NAMES: [&str; 9] = [
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
fn identifier(derived: &str, pointer: &str, what: impl FnOnce() -> String) -> Result<()> {
    if derived.chars().any(|c| c.is_ascii_alphanumeric()) {
        return Ok(());
    }
    Err(GenerateError::Unsupported {
        pointer: pointer.to_owned(),
        what: format!(
            "{}: it has no ASCII letter or digit; expected a name like `room_chat`",
            what()
        ),
    })
}

/// Refuses an enum variant name that is empty or `Self`.
fn check_variant_name(derived: &str, pointer: &str, source: impl FnOnce() -> String) -> Result<()> {
    let problem = match derived {
        "" => "gives no variant name: it has no ASCII letter or digit; expected a name like `room_chat`".to_owned(),
        "Self" => "gives the variant name `Self`, which Rust reserves; choose another name".to_owned(),
        _ => return Ok(()),
    };
    Err(GenerateError::Unsupported {
        pointer: pointer.to_owned(),
        what: format!("{} {problem}", source()),
    })
}

/// Adds a message to one direction of a channel, refusing two actions that give one variant name.
fn add_use(
    direction: &mut IndexMap<String, ir::MessageUse>,
    message: &ir::MessageUse,
    name: &str,
    pointers: &HashMap<String, String>,
) -> Result<()> {
    if direction.contains_key(&message.action) {
        return Ok(());
    }
    if let Some(other) = direction.values().find(|u| u.variant == message.variant) {
        return Err(GenerateError::Unsupported {
            pointer: pointers.get(&message.action).cloned().unwrap_or_default(),
            what: format!("the action `{}` gives the variant name `{}`, which the action `{}` already has in the channel's {name} messages; rename one of the actions", message.action, message.variant, other.action),
        });
    }
    direction.insert(message.action.clone(), message.clone());
    Ok(())
}

/// Names the generated file already uses at its top level (the prelude and its imports) or in
/// every channel module, which a schema title must not take.
const RESERVED_TYPE_NAMES: [&str; 25] = [
    "Self",
    // Imported by the generated file and its channel modules.
    "Decode",
    "Dispatched",
    "Framed",
    "Send",
    "Sync",
    "Sized",
    // Items of every channel module, which sees the payload types through `use super::*`.
    "Params",
    "ParamsError",
    "Incoming",
    "Outgoing",
    "Handler",
    "Ctx",
    "H",
    "Option",
    "Result",
    "String",
    "Vec",
    "Box",
    "Some",
    "None",
    "Ok",
    "Err",
    "Serialize",
    "Deserialize",
];

fn message_use(m: &ir::Message) -> ir::MessageUse {
    ir::MessageUse {
        action: m.action.clone(),
        variant: m.variant.clone(),
        frame_type: m.frame_type.clone(),
        summary: m.summary.clone().or_else(|| m.title.clone()),
    }
}

/// The `x-rust-type` of a schema: a Rust path (`protocol_runtime::ErrorItem`) the Rust target
/// uses instead of generating a type, for a shape the runtime already provides.
fn rust_path(schema: &Schema, pointer: &str) -> Result<Option<String>> {
    let Some(value) = schema.extra.get("x-rust-type") else {
        return Ok(None);
    };
    let path = value.as_str().unwrap_or_default();
    let is_path = !path.is_empty()
        && path.split("::").all(|segment| {
            segment.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && segment
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
    if !is_path {
        return Err(GenerateError::RustType {
            pointer: format!("{pointer}/x-rust-type"),
            found: value.to_string(),
        });
    }
    Ok(Some(path.to_owned()))
}

fn named(name: &str) -> ir::TypeRef {
    ir::TypeRef::Named {
        name: name.to_owned(),
    }
}

fn type_name(schema: &Schema, component: Option<&str>) -> Option<String> {
    schema
        .title
        .as_deref()
        .or(component)
        .map(pascal_case)
        .filter(|n| !n.is_empty())
}

fn variant_name_for(ty: &ir::TypeRef) -> String {
    match ty {
        ir::TypeRef::String => "String".into(),
        ir::TypeRef::Integer => "Integer".into(),
        ir::TypeRef::Number => "Number".into(),
        ir::TypeRef::Boolean => "Boolean".into(),
        ir::TypeRef::Null => "Null".into(),
        ir::TypeRef::Any => "Value".into(),
        ir::TypeRef::Array { item } => format!("{}List", variant_name_for(item)),
        ir::TypeRef::Nullable { inner } => format!("Optional{}", variant_name_for(inner)),
        ir::TypeRef::Named { name } => name.clone(),
    }
}

fn is_null_schema(s: &Schema) -> bool {
    matches!(&s.type_names, Some(TypeNames::One(t)) if t == "null") && s.reference.is_none()
}

fn check_keywords(schema: &Schema, pointer: &str) -> Result<()> {
    for keyword in schema.extra.keys() {
        if keyword.starts_with("x-") || DOC_ONLY_KEYWORDS.contains(&keyword.as_str()) {
            continue;
        }
        return Err(GenerateError::UnsupportedKeyword {
            pointer: pointer.to_owned(),
            keyword: keyword.clone(),
        });
    }
    Ok(())
}

fn strip_prefix<'r>(
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

fn unescape_pointer(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// A `RefOr::Ref` always carries its reference; this only satisfies the match.
fn unreachable_ref<T>(pointer: &str) -> Result<T> {
    Err(GenerateError::Unsupported {
        pointer: pointer.to_owned(),
        what: "a `$ref` without a target".into(),
    })
}

fn ref_cycle(pointer: &str) -> GenerateError {
    GenerateError::Unsupported {
        pointer: pointer.to_owned(),
        what: format!("`$ref`s nest deeper than {MAX_REF_DEPTH} levels (a cycle?)"),
    }
}

/// The `{name}` parameters of an address, in order.
fn address_parameters(address: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = address;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else { break };
        out.push(after[..end].to_owned());
        rest = &after[end + 1..];
    }
    out
}
