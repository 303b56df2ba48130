//! The client target: a typed WebSocket client for browsers and Node, as an ES module
//! (`client.js`, no dependencies) with TypeScript declarations (`client.d.ts`).
//!
//! Per channel it renders a class (`RoomChatClient`) over a shared runtime (`ChannelClient`:
//! connect, reconnect with backoff, heartbeat, requests by `ref`, status events). The class adds
//! what the document says: the address built from typed, percent-encoded parameters; one
//! `send…` method per client-to-server message; a `request…` method, returning a promise of the
//! reply, per operation with a reply; one `on…` method per server-to-client message.
//!
//! The document is written from the server's point of view, so the client *sends* the messages
//! of `receive` operations and *receives* those of `send` operations and replies — exactly the
//! channel's `incoming` and `outgoing` lists in the IR.
//!
//! As in the Rust target, this module decides every spelling (names, TypeScript types, doc
//! comments) and the templates only lay the text out.

use handlebars::Handlebars;
use serde_json::{json, Value};

use crate::error::GenerateError;
use crate::ir::{self, TypeDef, TypeKind, TypeRef};
use crate::naming::{js_string, ts_property_name};
use crate::GeneratedFile;

const JS_TEMPLATE: &str = include_str!("../templates/client/client.js.hbs");
const DTS_TEMPLATE: &str = include_str!("../templates/client/client.d.ts.hbs");

/// Names the client module declares itself; a schema or channel whose generated name is one of
/// these would clash with them in `client.d.ts`, so the document is refused instead.
const RUNTIME_NAMES: [&str; 15] = [
    "TITLE",
    "VERSION",
    "Envelope",
    "ConnectionStatus",
    "StatusEvent",
    "RecoveryEvent",
    "WebSocketLike",
    "WebSocketConstructor",
    "ReconnectOptions",
    "ClientOptions",
    "RequestOptions",
    "RequestTimeoutError",
    "ConnectionClosedError",
    "UnexpectedReplyError",
    "ChannelClient",
];

/// The action the client pings with to check the connection, when the document has a
/// request/reply operation for it (chanx's `ping` → `pong`).
const HEARTBEAT_ACTION: &str = "ping";

/// Renders `client.js` and `client.d.ts` for `api`.
pub(crate) fn render(api: &ir::Api) -> Result<Vec<GeneratedFile>, GenerateError> {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    // JavaScript is not HTML; every spelling is decided (and escaped) here.
    hb.register_escape_fn(handlebars::no_escape);
    for (name, text) in [("js", JS_TEMPLATE), ("dts", DTS_TEMPLATE)] {
        hb.register_template_string(name, text)
            .map_err(|e| render_error(name, &e))?;
    }
    let view = view(api)?;
    let mut files = Vec::new();
    for (name, path) in [("js", "client.js"), ("dts", "client.d.ts")] {
        files.push(GeneratedFile {
            path: path.into(),
            contents: hb.render(name, &view).map_err(|e| render_error(name, &e))?,
        });
    }
    Ok(files)
}

fn render_error(template: &str, e: &impl std::fmt::Display) -> GenerateError {
    GenerateError::Render {
        template: format!("client/{template}"),
        message: e.to_string(),
    }
}

fn view(api: &ir::Api) -> Result<Value, GenerateError> {
    check_names(api)?;
    let channels = api
        .channels
        .iter()
        .map(|c| channel_view(api, c))
        .collect::<Result<Vec<_>, _>>()?;
    let types: Vec<Value> = api.types.iter().map(type_declaration).collect();
    Ok(json!({
        "title": js_string(&api.title),
        "version": js_string(&api.version),
        "header": format!("{} {}", api.title, api.version).replace(['\n', '\r'], " "),
        "types": types,
        "channels": channels,
    }))
}

fn channel_view(api: &ir::Api, channel: &ir::Channel) -> Result<Value, GenerateError> {
    let prefix = &channel.type_prefix;
    let frame_of = |u: &ir::MessageUse| -> Result<&TypeDef, GenerateError> {
        api.types
            .iter()
            .find(|t| t.name == u.frame_type)
            .ok_or_else(|| GenerateError::Render {
                template: "client".into(),
                message: format!(
                    "message `{}` has no frame type `{}`",
                    u.action, u.frame_type
                ),
            })
    };
    let mut sends = Vec::new();
    let mut requests = Vec::new();
    for u in &channel.incoming {
        let frame = frame_of(u)?;
        let shape = send_shape(frame);
        let doc = u
            .summary
            .clone()
            .unwrap_or_else(|| format!("Sends `{}`.", u.action));
        sends.push(json!({
            "action": js_string(&u.action),
            "method": format!("send{}", u.variant),
            "params": shape.send_params,
            "args": shape.send_args,
            "fields": shape.send_fields,
            "doc": jsdoc(&doc, "  "),
        }));
        let reply = channel
            .handlers
            .iter()
            .filter(|op| op.messages.iter().any(|m| m.action == u.action))
            .find_map(|op| op.reply.as_ref());
        if let Some(reply) = reply {
            let doc = format!(
                "Sends `{}` and resolves with its `{}` reply (matched by `ref`); rejects with a `RequestTimeoutError` when none comes in time, or a `ConnectionClosedError` when the connection drops first.",
                u.action, reply.action
            );
            requests.push(json!({
                "action": js_string(&u.action),
                "method": format!("request{}", u.variant),
                "params": format!("{}options?: RequestOptions", shape.request_params),
                "args": format!("{}options", shape.request_args),
                "fields": if shape.request_fields.is_empty() { String::new() } else { format!(", {}", shape.request_fields) },
                "reply_action": js_string(&reply.action),
                "reply_type": reply.frame_type,
                "doc": jsdoc(&doc, "  "),
                "heartbeat": u.action == HEARTBEAT_ACTION,
            }));
        }
    }
    let heartbeat = requests
        .iter()
        .find(|r| r["heartbeat"] == true)
        .map(|r| json!({ "action": r["action"], "reply_action": r["reply_action"] }));
    let receives: Vec<Value> = channel
        .outgoing
        .iter()
        .map(|u| {
            let doc = u
                .summary
                .clone()
                .unwrap_or_else(|| format!("A `{}` frame.", u.action));
            json!({
                "action": js_string(&u.action),
                "key": ts_property_name(&u.action),
                "method": format!("on{}", u.variant),
                "frame_type": u.frame_type,
                "doc": jsdoc(&format!("Calls `handler` with every `{}` frame: {doc}\nReturns a function that removes the handler.", u.action), "  "),
                "key_doc": jsdoc(&doc, "  "),
            })
        })
        .collect();
    let parameters: Vec<Value> = channel
        .parameters
        .iter()
        .map(|p| {
            json!({
                "key": ts_property_name(&p.name),
                // A parameter with an `enum` takes only those values.
                "ty": if p.allowed.is_empty() {
                    "string".to_owned()
                } else {
                    p.allowed.iter().map(|v| js_string(v)).collect::<Vec<_>>().join(" | ")
                },
                "doc": jsdoc(p.description.as_deref().unwrap_or(&format!("The `{}` segment of the address.", p.name)), "  "),
            })
        })
        .collect();
    let query: Vec<Value> = channel
        .query
        .iter()
        .map(|q| {
            json!({
                "name": js_string(&q.name),
                "key": ts_property_name(&q.name),
                "doc": jsdoc(q.description.as_deref().unwrap_or(&format!("The `{}` query parameter (left out when not set).", q.name)), "  "),
            })
        })
        .collect();
    let recovery = channel.recovery.as_ref().map(|r| {
        json!({
            "notification": js_string(&r.notification),
            "request": js_string(&r.request),
            "reply": js_string(&r.reply),
        })
    });
    let class_doc = [
        channel.title.as_deref(),
        channel.summary.as_deref(),
        channel.description.as_deref(),
    ]
    .into_iter()
    .flatten()
    .map(str::trim)
    .filter(|s| !s.is_empty())
    .collect::<Vec<_>>()
    .join("\n\n");
    let class_doc = format!(
        "A client of the `{}` channel (`{}`).{}",
        channel.id,
        channel.address,
        if class_doc.is_empty() {
            String::new()
        } else {
            format!("\n\n{class_doc}")
        }
    );
    Ok(json!({
        "id": channel.id.replace("*/", "*\\/"),
        "class_name": format!("{prefix}Client"),
        "params_type": format!("{prefix}Params"),
        "messages_type": format!("{prefix}ServerMessages"),
        "address_template": js_string(&channel.address),
        "address_expr": address_expr(&channel.address),
        "has_parameters": !channel.parameters.is_empty(),
        "parameters": parameters,
        "query": query,
        "recovery": recovery,
        "sends": sends,
        "requests": requests,
        "receives": receives,
        "heartbeat": heartbeat,
        "class_doc": jsdoc(&class_doc, ""),
    }))
}

/// Refuses a document whose generated names would collide in the module: with the runtime's
/// own declarations, or a channel's `…Client` / `…Params` / `…ServerMessages` with a type.
fn check_names(api: &ir::Api) -> Result<(), GenerateError> {
    let mut taken: std::collections::HashMap<String, String> = RUNTIME_NAMES
        .iter()
        .map(|n| ((*n).to_owned(), "the client runtime".to_owned()))
        .collect();
    let mut claim = |name: String, pointer: &str| {
        match taken.get(&name) {
        Some(owner) => Err(GenerateError::NameTaken {
            pointer: pointer.to_owned(),
            detail: format!(
                "the client target would declare `{name}` here and in {owner}; rename one (e.g. the schema's title)"
            ),
        }),
        None => {
            taken.insert(name, pointer.to_owned());
            Ok(())
        }
    }
    };
    for def in &api.types {
        claim(def.name.clone(), &def.pointer)?;
    }
    for channel in &api.channels {
        let pointer = format!("#/channels/{}", channel.id);
        for suffix in ["Client", "Params", "ServerMessages"] {
            claim(format!("{}{suffix}", channel.type_prefix), &pointer)?;
        }
    }
    Ok(())
}

/// How the `send…` and `request…` methods of one message take their arguments: the payload
/// alone when the frame is `{action, payload}` (the common case: `sendRoomChat({ message: "hi" })`),
/// nothing when the frame has no fields, otherwise every field but `action`.
struct SendShape {
    /// TypeScript parameters of `send…`.
    send_params: String,
    /// JavaScript parameters of `send…`.
    send_args: String,
    /// JavaScript expression spreading the fields (envelope included) into the frame.
    send_fields: String,
    /// TypeScript parameters of `request…`, before `options`.
    request_params: String,
    /// JavaScript parameters of `request…`, before `options`.
    request_args: String,
    /// JavaScript expression spreading the fields into the request frame.
    request_fields: String,
}

fn send_shape(frame: &TypeDef) -> SendShape {
    let fields = match &frame.kind {
        TypeKind::Struct { fields } => fields.as_slice(),
        _ => &[],
    };
    let general = || SendShape {
        send_params: format!("fields: Omit<{}, \"action\">", frame.name),
        send_args: "fields".into(),
        send_fields: "...fields".into(),
        request_params: format!("fields: Omit<{}, \"action\" | \"ref\">, ", frame.name),
        request_args: "fields, ".into(),
        request_fields: "...fields".into(),
    };
    match fields {
        [] if matches!(frame.kind, TypeKind::Struct { .. }) => SendShape {
            send_params: "envelope?: Envelope".into(),
            send_args: "envelope".into(),
            send_fields: "...envelope".into(),
            request_params: String::new(),
            request_args: String::new(),
            request_fields: String::new(),
        },
        [only] if only.json_name == "payload" => {
            let optional = !only.required || only.ty == TypeRef::Null;
            let param = format!(
                "payload{}: {}[\"payload\"]",
                if optional { "?" } else { "" },
                frame.name
            );
            // Left out rather than sent as `null` when not given: an optional payload may be
            // absent, but `null` is not always one of its values.
            let spread = "...(payload === undefined ? {} : { payload })";
            SendShape {
                send_params: format!("{param}, envelope?: Envelope"),
                send_args: "payload, envelope".into(),
                send_fields: format!("...envelope, {spread}"),
                request_params: format!("{param}, "),
                request_args: "payload, ".into(),
                request_fields: spread.into(),
            }
        }
        _ => general(),
    }
}

/// The TypeScript declaration of a named type.
fn type_declaration(def: &TypeDef) -> Value {
    let doc = def
        .description
        .clone()
        .unwrap_or_else(|| format!("The `{}` type.", def.name));
    let body = match &def.kind {
        TypeKind::Struct { fields } => {
            let mut lines = Vec::new();
            let extends = if let Some(action) = &def.action {
                lines.push(format!(
                    "{}  action: {};",
                    jsdoc("Names the message.", "  "),
                    js_string(action)
                ));
                " extends Envelope"
            } else {
                ""
            };
            for f in fields {
                let text = f
                    .description
                    .as_deref()
                    .or(f.title.as_deref())
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("The `{}` property.", f.json_name));
                let optional = !f.required;
                let mut ty = ts_type(&f.ty);
                if f.nullable {
                    ty = format!("{ty} | null");
                }
                lines.push(format!(
                    "{}  {}{}: {ty};",
                    jsdoc(&text, "  "),
                    f.ts_name,
                    if optional { "?" } else { "" }
                ));
            }
            format!(
                "export interface {}{extends} {{\n{}}}",
                def.name,
                lines.iter().map(|l| format!("{l}\n")).collect::<String>()
            )
        }
        TypeKind::StringEnum { variants } => format!(
            "export type {} = {};",
            def.name,
            variants
                .iter()
                .map(|v| js_string(&v.value))
                .collect::<Vec<_>>()
                .join(" | ")
        ),
        TypeKind::Untagged { variants } => format!(
            "export type {} = {};",
            def.name,
            variants
                .iter()
                .map(|v| ts_type(&v.ty))
                .collect::<Vec<_>>()
                .join(" | ")
        ),
    };
    json!({ "doc": jsdoc(&doc, ""), "body": body })
}

/// The TypeScript spelling of a type. Arrays are written `Array<T>` so that a union item needs
/// no parentheses.
fn ts_type(ty: &TypeRef) -> String {
    match ty {
        TypeRef::String => "string".into(),
        TypeRef::Integer | TypeRef::Number => "number".into(),
        TypeRef::Boolean => "boolean".into(),
        TypeRef::Null => "null".into(),
        TypeRef::Any => "unknown".into(),
        TypeRef::Array { item } => format!("Array<{}>", ts_type(item)),
        TypeRef::Nullable { inner } => format!("{} | null", ts_type(inner)),
        TypeRef::Named { name } => name.clone(),
    }
}

/// A JavaScript expression for the channel's address, each `{parameter}` replaced by the
/// percent-encoded value of `params[parameter]`.
fn address_expr(address: &str) -> String {
    let mut parts = Vec::new();
    let mut rest = address;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}').map(|i| open + i) else {
            break;
        };
        if open > 0 {
            parts.push(js_string(&rest[..open]));
        }
        let name = &rest[open + 1..close];
        parts.push(format!(
            "encodeURIComponent(String(params[{}]))",
            js_string(name)
        ));
        rest = &rest[close + 1..];
    }
    if !rest.is_empty() || parts.is_empty() {
        parts.push(js_string(rest));
    }
    parts.join(" + ")
}

/// A `/** … */` comment, each line indented by `indent`; `*/` in the text cannot end it early.
fn jsdoc(text: &str, indent: &str) -> String {
    let text = text.trim().replace("*/", "*\\/");
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() <= 1 {
        return format!("{indent}/** {} */\n", lines.first().unwrap_or(&""));
    }
    let mut out = format!("{indent}/**\n");
    for line in lines {
        if line.trim().is_empty() {
            out.push_str(&format!("{indent} *\n"));
        } else {
            out.push_str(&format!("{indent} * {line}\n"));
        }
    }
    out.push_str(&format!("{indent} */\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::{address_expr, js_string, jsdoc};

    #[test]
    fn addresses_encode_every_parameter() {
        assert_eq!(
            address_expr("/ws/room/{room_name}"),
            r#""/ws/room/" + encodeURIComponent(String(params["room_name"]))"#
        );
        assert_eq!(
            address_expr("/orgs/{org}/rooms/{room}"),
            r#""/orgs/" + encodeURIComponent(String(params["org"])) + "/rooms/" + encodeURIComponent(String(params["room"]))"#
        );
        assert_eq!(address_expr("/chat"), r#""/chat""#);
    }

    #[test]
    fn strings_and_comments_cannot_break_out() {
        assert_eq!(js_string("a\"</script>"), r#""a\"\u003c/script>""#);
        assert_eq!(jsdoc("ends */ early", ""), "/** ends *\\/ early */\n");
    }
}
