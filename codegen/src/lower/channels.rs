//! Channels and operations: the messages of each channel, which of them travel in which
//! direction, the receive operations that become handler methods, and the parameters of the
//! channel's address.
//!
//! A channel is lowered in steps that each own one rule: its identity (address, module name),
//! its parameters, its messages (one action each), then its operations, which put messages in
//! the incoming or outgoing direction, and finally the check that a channel which receives can
//! also answer a frame it cannot decode.

use std::collections::HashMap;

use indexmap::IndexMap;
use serde_json::Value;

use super::refs::{check_variant_name, identifier, strip_prefix, RESERVED_MODULE_NAMES};
use super::{Lowering, OperationAt, Result, ENVELOPE_PROPERTIES};
use crate::error::GenerateError;
use crate::ir;
use crate::model::{Action, Channel, CorrelationId, Message, RefOr, Reply, Schema};
use crate::naming::{escape_pointer, field_name, pascal_case};

/// The messages of one channel, keyed by their key in `channels.<id>.messages`, and the pointer
/// of each action's message (for errors about a second message with the same action).
struct ChannelMessages {
    by_key: IndexMap<String, ir::Message>,
    pointer_of_action: HashMap<String, String>,
}

/// The messages of one direction of a channel, by action, in the order first named.
#[derive(Default)]
struct Direction(IndexMap<String, ir::MessageUse>);

impl Direction {
    /// Adds a message (once), refusing two actions that give one variant name.
    fn add(
        &mut self,
        message: &ir::MessageUse,
        name: &str,
        messages: &ChannelMessages,
    ) -> Result<()> {
        if self.0.contains_key(&message.action) {
            return Ok(());
        }
        if let Some(other) = self.0.values().find(|u| u.variant == message.variant) {
            return Err(GenerateError::NameTaken {
                pointer: messages
                    .pointer_of_action
                    .get(&message.action)
                    .cloned()
                    .unwrap_or_default(),
                detail: format!("the action `{}` gives the variant name `{}`, which the action `{}` already has in the channel's {name} messages; rename one of the actions", message.action, message.variant, other.action),
            });
        }
        self.0.insert(message.action.clone(), message.clone());
        Ok(())
    }
}

impl<'d> Lowering<'d> {
    /// One channel, with the operations that name it.
    pub(super) fn channel(
        &mut self,
        id: &str,
        channel: &'d Channel,
        pointer: &str,
        operations: &[OperationAt<'d>],
    ) -> Result<ir::Channel> {
        let address = channel
            .address
            .clone()
            .ok_or_else(|| GenerateError::MissingAddress {
                pointer: pointer.to_owned(),
            })?;
        let module = module_name(id, pointer)?;
        let parameters = self.parameters(channel, &address, pointer)?;
        let messages = self.channel_messages(channel, pointer)?;

        let mut lowered_operations = Vec::new();
        let mut handlers: Vec<ir::Operation> = Vec::new();
        let mut incoming = Direction::default();
        let mut outgoing = Direction::default();
        for at in operations {
            let operation = self.operation(id, channel, at, &messages)?;
            match at.operation.action {
                Action::Receive => {
                    for u in &operation.messages {
                        incoming.add(u, "incoming", &messages)?;
                    }
                }
                Action::Send => {
                    for u in &operation.messages {
                        outgoing.add(u, "outgoing", &messages)?;
                    }
                }
            }
            if let Some(reply) = &operation.reply {
                outgoing.add(reply, "outgoing", &messages)?;
            }
            if at.operation.action == Action::Receive {
                check_handler(&operation, &handlers, at)?;
                handlers.push(operation.clone());
            }
            lowered_operations.push(operation);
        }
        let query = query_parameters(channel, pointer)?;
        let recovery = match &channel.recovery {
            None => None,
            Some(r) => Some(self.recovery(r, &incoming, &outgoing, &handlers, pointer)?),
        };
        // A client that sends a frame the server cannot decode must learn so, in a message the
        // contract declares.
        if !handlers.is_empty() && !outgoing.0.contains_key("error") {
            return Err(GenerateError::NoErrorMessage {
                pointer: pointer.to_owned(),
            });
        }
        Ok(ir::Channel {
            id: id.to_owned(),
            module,
            type_prefix: pascal_case(id),
            address,
            // A title that only repeats the id (what some client generators name their package
            // after, so specs write `title: room_chat`) would say the same thing twice in docs.
            title: channel.title.clone().filter(|title| title != id),
            summary: channel.summary.clone(),
            description: channel.description.clone(),
            parameters,
            query,
            recovery,
            tags: channel.tags.iter().map(|t| t.name.clone()).collect(),
            incoming: incoming.0.into_values().collect(),
            outgoing: outgoing.0.into_values().collect(),
            operations: lowered_operations,
            handlers,
            messages: messages.by_key.into_values().collect(),
        })
    }

    /// The channel's messages, refusing two with one action (frames could not be told apart).
    fn channel_messages(&mut self, channel: &'d Channel, pointer: &str) -> Result<ChannelMessages> {
        let mut out = ChannelMessages {
            by_key: IndexMap::new(),
            pointer_of_action: HashMap::new(),
        };
        for (key, message) in &channel.messages {
            let message_pointer = format!("{pointer}/messages/{}", escape_pointer(key));
            let (message, message_pointer) = self.resolve_message(message, &message_pointer)?;
            let lowered = self.message(key, message, &message_pointer)?;
            if let Some(other) = out.pointer_of_action.get(&lowered.action) {
                return Err(GenerateError::DuplicateAction {
                    pointer: message_pointer,
                    action: lowered.action,
                    other: other.clone(),
                });
            }
            out.pointer_of_action
                .insert(lowered.action.clone(), message_pointer);
            out.by_key.insert(key.clone(), lowered);
        }
        Ok(out)
    }

    /// One operation of the channel `id`: its messages and its reply, checked for the shapes a
    /// handler method can take.
    fn operation(
        &self,
        id: &str,
        channel: &'d Channel,
        at: &OperationAt<'d>,
        messages: &ChannelMessages,
    ) -> Result<ir::Operation> {
        let op = at.operation;
        let op_pointer = &at.pointer;
        let mut uses = Vec::new();
        for (i, m) in op.messages.iter().enumerate() {
            let key = self.message_key(id, channel, m, &format!("{op_pointer}/messages/{i}"))?;
            uses.push(message_use(messages, &key));
        }
        let reply = match &op.reply {
            None => None,
            Some(reply) => Some(self.reply(id, channel, reply, op_pointer, messages)?),
        };
        match op.action {
            // The handler takes that one message.
            Action::Receive if uses.len() != 1 => {
                return Err(GenerateError::ReceiveMessages {
                    pointer: format!("{op_pointer}/messages"),
                    found: uses.len(),
                });
            }
            Action::Send if uses.is_empty() => {
                return Err(GenerateError::SendWithoutMessages {
                    pointer: format!("{op_pointer}/messages"),
                });
            }
            _ => {}
        }
        Ok(ir::Operation {
            id: at.id.to_owned(),
            method: field_name(at.id),
            action: match op.action {
                Action::Receive => "receive".into(),
                Action::Send => "send".into(),
            },
            summary: op.summary.clone(),
            description: op.description.clone(),
            tags: op.tags.iter().map(|t| t.name.clone()).collect(),
            messages: uses,
            reply,
        })
    }

    /// An operation's reply: one message, on the operation's own channel (the dispatcher sends
    /// it back on the connection the request came in on).
    fn reply(
        &self,
        id: &str,
        channel: &'d Channel,
        reply: &Reply,
        op_pointer: &str,
        messages: &ChannelMessages,
    ) -> Result<ir::MessageUse> {
        let reply_pointer = format!("{op_pointer}/reply");
        if let Some(reply_channel) = &reply.channel {
            let reply_channel_id =
                self.channel_id_of(reply_channel, &format!("{reply_pointer}/channel"))?;
            if reply_channel_id != id {
                return Err(GenerateError::ReplyElsewhere {
                    pointer: format!("{reply_pointer}/channel"),
                    reply_channel: reply_channel_id,
                    channel: id.to_owned(),
                });
            }
        }
        let [message] = reply.messages.as_slice() else {
            return Err(GenerateError::ReplyMessages {
                pointer: format!("{reply_pointer}/messages"),
                found: reply.messages.len(),
            });
        };
        let key = self.message_key(id, channel, message, &format!("{reply_pointer}/messages/0"))?;
        Ok(message_use(messages, &key))
    }

    /// The channel's parameters, in address order. The address and the `parameters` map must
    /// name the same set, each once: a parameter missing from one side is a typo the author
    /// wants to hear about, and the generated `Params::from_path` relies on the address alone.
    pub(super) fn parameters(
        &self,
        channel: &'d Channel,
        address: &str,
        pointer: &str,
    ) -> Result<Vec<ir::Parameter>> {
        let in_address = address_parameters(address);
        for (i, name) in in_address.iter().enumerate() {
            if in_address[..i].contains(name) {
                return Err(GenerateError::RepeatedParameter {
                    pointer: format!("{pointer}/address"),
                    name: name.clone(),
                    address: address.to_owned(),
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
            field_name_free(
                "parameter",
                name,
                &rust_name,
                out.iter()
                    .map(|p: &ir::Parameter| (p.name.as_str(), p.rust_name.as_str())),
                &param_pointer,
            )?;
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

    /// One message of a channel. Its frame schema must pin `action` with a `const`: that is how
    /// a frame is told apart from the others on the wire, and what names the enum variant.
    pub(super) fn message(
        &mut self,
        key: &str,
        message: &'d Message,
        pointer: &str,
    ) -> Result<ir::Message> {
        let payload_pointer = format!("{pointer}/payload");
        let Some(payload) = &message.payload else {
            return Err(GenerateError::MissingAction {
                pointer: payload_pointer,
            });
        };
        // The frame schema, and the name of the component it is, when it is one (that names
        // its type).
        let component = |reference: &str| -> Result<(&'d Schema, String, Option<String>)> {
            let (schema, at, name) = self.resolve_schema_ref(reference, &payload_pointer)?;
            Ok((schema, at, Some(name)))
        };
        let (schema, schema_pointer, component) = match payload {
            RefOr::Ref { reference } => component(reference)?,
            RefOr::Item(schema) => match &schema.reference {
                Some(reference) => component(reference)?,
                None => (schema, payload_pointer.clone(), None),
            },
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

    /// Where a message's correlation id lives. Only the envelope's `ref` is supported: the
    /// dispatcher echoes it on the direct reply, and the generated clients match replies by it.
    pub(super) fn correlation_property(
        &self,
        c: &'d RefOr<CorrelationId>,
        pointer: &str,
    ) -> Result<String> {
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
            _ => Err(GenerateError::CorrelationLocation {
                pointer: pointer.to_owned(),
                location: c.location.clone(),
            }),
        }
    }
}

/// The channel id as a Rust module name: an identifier the generated file does not already use.
fn module_name(id: &str, pointer: &str) -> Result<String> {
    let module = field_name(id);
    identifier(&module, pointer, || {
        format!("the channel id `{id}` gives no Rust module name")
    })?;
    if RESERVED_MODULE_NAMES.contains(&module.as_str()) {
        return Err(GenerateError::NameTaken {
            pointer: pointer.to_owned(),
            detail: format!("the channel id maps to the module name `{module}`, which the generated code already uses; choose another id"),
        });
    }
    Ok(module)
}

/// Refuses a channel whose module or type-name prefix another channel already has.
pub(super) fn check_distinct_modules(
    channels: &[ir::Channel],
    lowered: &ir::Channel,
    pointer: &str,
) -> Result<()> {
    for other in channels {
        let clash = if other.module == lowered.module {
            Some(("module", &lowered.module))
        } else if other.type_prefix == lowered.type_prefix {
            Some(("type-name prefix", &lowered.type_prefix))
        } else {
            None
        };
        if let Some((what, name)) = clash {
            return Err(GenerateError::NameTaken {
                pointer: pointer.to_owned(),
                detail: format!("the channel id maps to the {what} `{name}`, which the channel `{}` already has; rename one of them", other.id),
            });
        }
    }
    Ok(())
}

/// Refuses a receive operation whose id gives no method name, or one another handler has.
fn check_handler(
    operation: &ir::Operation,
    handlers: &[ir::Operation],
    at: &OperationAt<'_>,
) -> Result<()> {
    identifier(&operation.method, &at.pointer, || {
        format!("the operation id `{}` gives no handler method name", at.id)
    })?;
    if handlers.iter().any(|h| h.method == operation.method) {
        return Err(GenerateError::NameTaken {
            pointer: at.pointer.clone(),
            detail: format!(
                "operation id maps to the method name `{}` that another operation already has",
                operation.method
            ),
        });
    }
    Ok(())
}

/// A message as one direction names it. The key was checked by `message_key`.
fn message_use(messages: &ChannelMessages, key: &str) -> ir::MessageUse {
    let m = &messages.by_key[key];
    ir::MessageUse {
        action: m.action.clone(),
        variant: m.variant.clone(),
        frame_type: m.frame_type.clone(),
        summary: m.summary.clone().or_else(|| m.title.clone()),
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

/// The query parameters of a channel's WebSocket binding: an object schema whose properties
/// are strings (what a query string carries), each optional.
/// Refuses a `kind` (`parameter`, `query parameter`) called `name` whose Rust field name is one
/// that an earlier one of `taken` (name, field name) already has.
fn field_name_free<'a>(
    kind: &str,
    name: &str,
    rust_name: &str,
    mut taken: impl Iterator<Item = (&'a str, &'a str)>,
    pointer: &str,
) -> Result<()> {
    match taken.find(|(_, field)| *field == rust_name) {
        Some((other, _)) => Err(GenerateError::NameTaken {
            pointer: pointer.to_owned(),
            detail: format!("{kind} `{name}` maps to the field name `{rust_name}`, which {kind} `{other}` already has; rename one of them"),
        }),
        None => Ok(()),
    }
}

fn query_parameters(channel: &Channel, pointer: &str) -> Result<Vec<ir::QueryParameter>> {
    let Some(schema) = channel
        .bindings
        .as_ref()
        .and_then(|b| b.ws.as_ref())
        .and_then(|ws| ws.query.as_ref())
    else {
        return Ok(Vec::new());
    };
    let pointer = format!("{pointer}/bindings/ws/query");
    let is = |s: &crate::model::Schema, name: &str| matches!(&s.type_names, Some(crate::model::TypeNames::One(t)) if t == name);
    if !is(schema, "object") || schema.reference.is_some() {
        return Err(GenerateError::UnsupportedChannelFeature {
            pointer,
            detail: "the query must be an inline `type: object` schema".into(),
        });
    }
    let mut out: Vec<ir::QueryParameter> = Vec::new();
    for (name, property) in &schema.properties {
        let at = format!("{pointer}/properties/{}", escape_pointer(name));
        if !is(property, "string") {
            return Err(GenerateError::UnsupportedChannelFeature {
                pointer: at,
                detail: "query parameters must be `type: string` (a query string carries text)"
                    .into(),
            });
        }
        let rust_name = field_name(name);
        identifier(&rust_name, &at, || {
            format!("the query parameter name `{name}` gives no field name")
        })?;
        field_name_free(
            "query parameter",
            name,
            &rust_name,
            out.iter().map(|q| (q.name.as_str(), q.rust_name.as_str())),
            &at,
        )?;
        out.push(ir::QueryParameter {
            name: name.clone(),
            rust_name,
            description: property.description.clone(),
        });
    }
    Ok(out)
}

impl Lowering<'_> {
    /// Checks `x-recovery` against the channel: the notification is something the server sends,
    /// the request something it receives, answered by the reply.
    fn recovery(
        &self,
        recovery: &crate::model::Recovery,
        incoming: &Direction,
        outgoing: &Direction,
        handlers: &[ir::Operation],
        pointer: &str,
    ) -> Result<ir::Recovery> {
        let pointer = format!("{pointer}/x-recovery");
        let refuse = |detail: String| GenerateError::UnsupportedChannelFeature {
            pointer: pointer.clone(),
            detail,
        };
        if !outgoing.0.contains_key(&recovery.notification) {
            return Err(refuse(format!(
                "`notification: {}` is not a message the server sends on this channel",
                recovery.notification
            )));
        }
        if !incoming.0.contains_key(&recovery.request) {
            return Err(refuse(format!(
                "`request: {}` is not a message the server receives on this channel",
                recovery.request
            )));
        }
        let answered = handlers.iter().any(|op| {
            op.messages.iter().any(|m| m.action == recovery.request)
                && op
                    .reply
                    .as_ref()
                    .is_some_and(|r| r.action == recovery.reply)
        });
        if !answered {
            return Err(refuse(format!(
                "`reply: {}` is not the reply of the operation that receives `{}`",
                recovery.reply, recovery.request
            )));
        }
        Ok(ir::Recovery {
            notification: recovery.notification.clone(),
            request: recovery.request.clone(),
            reply: recovery.reply.clone(),
        })
    }
}
