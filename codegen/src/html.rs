//! The HTML target: one self-contained documentation page for an API (inline stylesheet, no
//! scripts, no external resources), so the docs work offline and read the same in any browser.
//!
//! This module turns the IR into a *view model* — Markdown already rendered, examples already
//! pretty-printed, payload fields already flattened into table rows — and the template only lays
//! it out. Handlebars' HTML escaping stays on: every piece of spec text reaches the page escaped,
//! except the Markdown this module renders, which is inserted raw only after raw HTML in it has
//! been turned into text (see [`markdown`]).

use std::collections::HashSet;

use handlebars::Handlebars;
use pulldown_cmark::{html, CowStr, Event, Options, Parser, Tag};
use serde_json::{json, Value};

use crate::error::GenerateError;
use crate::ir::{self, TypeKind, TypeRef};

const DOCS_TEMPLATE: &str = include_str!("../templates/html/docs.html.hbs");

/// A comment left after the servers table: a service that serves the page may replace it with
/// where the reader actually is (the request's host), which the document cannot know.
pub const SERVER_SLOT: &str = "<!-- asyncapi-codegen:this-server -->";

/// How deep nested payload types are unfolded into a message's field table. Deeper levels are
/// still reachable by name; the limit (with the cycle guard) keeps recursive schemas finite.
const MAX_FIELD_DEPTH: usize = 4;

/// The files a service serves next to the page (at `/asyncapi`), linked relative to it so the
/// links hold wherever the service is mounted: the document in both encodings, its client view
/// for client generators, and the generated client. `(href, label, what)`.
const DOWNLOADS: [(&str, &str, &str); 5] = [
    ("asyncapi.yaml", "/asyncapi.yaml", "The AsyncAPI document (server view)."),
    ("asyncapi.json", "/asyncapi.json", "The same document as JSON, for tools that want JSON (chanx's client generator)."),
    ("asyncapi.client.yaml", "/asyncapi.client.yaml", "The document from the client's point of view, for client generators such as the AsyncAPI CLI's."),
    ("asyncapi/client.js", "/asyncapi/client.js", "The generated JavaScript client (an ES module)."),
    ("asyncapi/client.d.ts", "/asyncapi/client.d.ts", "Its TypeScript declarations."),
];

/// Renders the documentation page for `api`.
pub(crate) fn render(api: &ir::Api) -> Result<String, GenerateError> {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    hb.register_template_string("docs", DOCS_TEMPLATE)
        .map_err(|e| render_error(&e))?;
    hb.render("docs", &view(api)).map_err(|e| render_error(&e))
}

fn render_error(e: &impl std::fmt::Display) -> GenerateError {
    GenerateError::Render {
        template: "html/docs".to_owned(),
        message: e.to_string(),
    }
}

/// Markdown to HTML, safely: raw HTML (block or inline) is emitted as escaped text, never passed
/// through, and links or images whose address could run script (`javascript:`, `data:`,
/// `vbscript:`) lose the address. A spec is data, and data must not be able to script the page.
pub(crate) fn markdown(text: &str) -> String {
    let mut options = Options::empty();
    options.insert(Options::ENABLE_TABLES);
    options.insert(Options::ENABLE_STRIKETHROUGH);
    let events = Parser::new_ext(text, options).map(|event| match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Link {
            link_type,
            dest_url: safe_url(dest_url),
            title,
            id,
        }),
        Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Image {
            link_type,
            dest_url: safe_url(dest_url),
            title,
            id,
        }),
        other => other,
    });
    let mut out = String::new();
    html::push_html(&mut out, events);
    out
}

/// Plain text as HTML, with `backtick` spans as `<code>`: what field descriptions (one-line
/// notes in a table cell, not Markdown documents) need to read as they were written. Everything
/// is escaped first, so the only markup in the result is the `<code>` this function adds. A
/// backtick without a partner stays a backtick.
pub(crate) fn inline_code(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#x27;"),
            other => escaped.push(other),
        }
    }
    let mut out = String::with_capacity(escaped.len() + 16);
    let mut rest = escaped.as_str();
    while let Some(open) = rest.find('`') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('`').filter(|&close| close > 0) else {
            break;
        };
        out.push_str(&rest[..open]);
        out.push_str("<code>");
        out.push_str(&after[..close]);
        out.push_str("</code>");
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

/// The address itself, or `#` when its scheme could run script.
fn safe_url(url: CowStr<'_>) -> CowStr<'_> {
    let scheme: String = url
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_control())
        .take_while(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    let has_scheme = url.contains(':');
    if has_scheme && ["javascript", "data", "vbscript"].contains(&scheme.as_str()) {
        CowStr::Borrowed("#")
    } else {
        url
    }
}

fn markdown_opt(text: Option<&String>) -> Value {
    match text.map(|t| t.trim()).filter(|t| !t.is_empty()) {
        Some(text) => Value::String(markdown(text)),
        None => Value::Null,
    }
}

/// A fragment identifier made of `[a-z0-9-]` only, so it is valid wherever it is used.
fn anchor(parts: &[&str]) -> String {
    let mut out = String::new();
    for part in parts {
        if !out.is_empty() {
            out.push('-');
        }
        for c in part.chars() {
            if c.is_ascii_alphanumeric() {
                out.push(c.to_ascii_lowercase());
            } else {
                out.push('-');
            }
        }
    }
    out
}

/// Who sends a message, in the reader's words. The document is written from the server's
/// point of view (`receive` = the server receives), which readers writing clients often misread.
fn direction(operation_action: &str) -> &'static str {
    if operation_action == "receive" {
        "client → server"
    } else {
        "server → client"
    }
}

fn view(api: &ir::Api) -> Value {
    let servers: Vec<Value> = api
        .servers
        .iter()
        .map(|s| {
            json!({
                "id": s.id,
                "url": format!("{}://{}{}", s.protocol, s.host, s.pathname.as_deref().unwrap_or("")),
                "protocol": s.protocol,
                "description": markdown_opt(s.description.as_ref()),
            })
        })
        .collect();
    let channels: Vec<Value> = api.channels.iter().map(|c| channel_view(api, c)).collect();
    let toc: Vec<Value> = api
        .channels
        .iter()
        .map(|c| {
            json!({
                "id": c.id,
                "anchor": anchor(&["channel", &c.id]),
                "messages": c.messages.iter().map(|m| json!({
                    "action": m.action,
                    "anchor": anchor(&["message", &c.id, &m.action]),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "title": api.title,
        "version": api.version,
        "description": markdown_opt(api.description.as_ref()),
        "contact": api.contact.as_ref().map(|c| json!({
            "name": c.name,
            "url": c.url.as_deref().map(|u| safe_url(CowStr::Borrowed(u)).to_string()),
            "email": c.email,
        })),
        "license": api.license.as_ref().map(|l| json!({
            "name": l.name,
            "url": l.url.as_deref().map(|u| safe_url(CowStr::Borrowed(u)).to_string()),
        })),
        "servers": servers,
        "channels": channels,
        "toc": toc,
        "server_slot": SERVER_SLOT,
        "downloads": DOWNLOADS.iter().map(|(href, label, what)| json!({
            "href": href, "label": label, "what": what,
        })).collect::<Vec<_>>(),
    })
}

fn channel_view(api: &ir::Api, channel: &ir::Channel) -> Value {
    let message_anchor = |action: &str| anchor(&["message", &channel.id, action]);
    let use_view = |u: &ir::MessageUse| json!({ "action": u.action, "anchor": message_anchor(&u.action), "summary": u.summary });

    // Operations grouped by tag: declared tags first, in `info.tags` order, then tags only
    // operations name, then the untagged. An operation with two tags is listed under both,
    // because a reader browsing either topic expects to find it.
    let mut tag_names: Vec<String> = api.tags.iter().map(|t| t.name.clone()).collect();
    for op in &channel.operations {
        for tag in &op.tags {
            if !tag_names.contains(tag) {
                tag_names.push(tag.clone());
            }
        }
    }
    let operation_view = |op: &ir::Operation| {
        json!({
            "id": op.id,
            "anchor": anchor(&["operation", &channel.id, &op.id]),
            "action": op.action,
            "direction": direction(&op.action),
            "summary": op.summary,
            "description": markdown_opt(op.description.as_ref()),
            "messages": op.messages.iter().map(use_view).collect::<Vec<_>>(),
            "reply": op.reply.as_ref().map(use_view),
        })
    };
    let mut groups: Vec<Value> = tag_names
        .iter()
        .filter_map(|tag| {
            let ops: Vec<Value> = channel
                .operations
                .iter()
                .filter(|op| op.tags.contains(tag))
                .map(operation_view)
                .collect();
            (!ops.is_empty()).then(|| {
                let description = api
                    .tags
                    .iter()
                    .find(|t| &t.name == tag)
                    .and_then(|t| t.description.as_ref());
                json!({ "name": tag, "description": markdown_opt(description), "operations": ops })
            })
        })
        .collect();
    let untagged: Vec<Value> = channel
        .operations
        .iter()
        .filter(|op| op.tags.is_empty())
        .map(operation_view)
        .collect();
    if !untagged.is_empty() {
        groups.push(
            json!({ "name": Value::Null, "description": Value::Null, "operations": untagged }),
        );
    }

    let messages: Vec<Value> = channel
        .messages
        .iter()
        .map(|m| message_view(api, channel, m, &message_anchor(&m.action)))
        .collect();
    json!({
        "id": channel.id,
        "anchor": anchor(&["channel", &channel.id]),
        "address": channel.address,
        "title": channel.title,
        "summary": channel.summary,
        "description": markdown_opt(channel.description.as_ref()),
        "tags": channel.tags,
        "parameters": channel.parameters.iter().map(|p| json!({
            "name": p.name,
            "description": markdown_opt(p.description.as_ref()),
            "examples": p.examples,
            "allowed": p.allowed,
        })).collect::<Vec<_>>(),
        "query": channel.query.iter().map(|q| json!({
            "name": q.name,
            "description": markdown_opt(q.description.as_ref()),
        })).collect::<Vec<_>>(),
        "groups": groups,
        "messages": messages,
    })
}

fn message_view(api: &ir::Api, channel: &ir::Channel, m: &ir::Message, anchor: &str) -> Value {
    // Which operations move this message, and how: sent, received, or as a reply.
    let mut used_by = Vec::new();
    for op in &channel.operations {
        let op_anchor = self::anchor(&["operation", &channel.id, &op.id]);
        if op.messages.iter().any(|u| u.action == m.action) {
            let role = if op.action == "receive" {
                "received by the server in"
            } else {
                "sent by the server in"
            };
            used_by.push(json!({ "role": role, "id": op.id, "anchor": op_anchor }));
        }
        if op.reply.as_ref().is_some_and(|r| r.action == m.action) {
            used_by.push(json!({ "role": "the reply of", "id": op.id, "anchor": op_anchor }));
        }
    }
    let mut directions = Vec::new();
    if channel.incoming.iter().any(|u| u.action == m.action) {
        directions.push(json!({ "text": direction("receive"), "class": "receive" }));
    }
    if channel.outgoing.iter().any(|u| u.action == m.action) {
        directions.push(json!({ "text": direction("send"), "class": "send" }));
    }
    let examples: Vec<Value> = m
        .examples
        .iter()
        .map(|e| {
            json!({
                "name": e.name,
                "summary": e.summary,
                "json": serde_json::to_string_pretty(&e.payload).unwrap_or_default(),
            })
        })
        .collect();
    let frame = api.types.iter().find(|t| t.name == m.frame_type);
    let mut rows = vec![row(
        "action",
        &format!("string, always \"{}\"", m.action),
        true,
        Some("Names the message."),
    )];
    if let Some(frame) = frame {
        let mut seen = HashSet::from([frame.name.clone()]);
        type_rows(api, &frame.kind, "", 1, &mut seen, &mut rows);
    }
    // The envelope keys are part of every frame the schema lists them in.
    if let Some(properties) = m.payload_schema["properties"].as_object() {
        for key in crate::lower::ENVELOPE_PROPERTIES {
            if let Some(schema) = properties.get(key) {
                let schema = local_target(&m.payload_schema, schema);
                let mut envelope = row(
                    key,
                    schema["type"].as_str().unwrap_or("any JSON"),
                    false,
                    schema["description"].as_str().or(schema["title"].as_str()),
                );
                envelope["envelope"] = Value::Bool(true);
                rows.push(envelope);
            }
        }
    }
    json!({
        "id": m.id,
        "action": m.action,
        "anchor": anchor,
        "title": m.title,
        "summary": m.summary,
        "description": markdown_opt(m.description.as_ref()),
        "frame_type": m.frame_type,
        "directions": directions,
        "used_by": used_by,
        "correlation_property": m.correlation_property,
        "fields": rows,
        "examples": examples,
    })
}

/// The schema a `{"$ref": "#/$defs/..."}` of a message's frame schema points to, or `schema`
/// itself.
fn local_target<'s>(root: &'s Value, schema: &'s Value) -> &'s Value {
    schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix('#'))
        .and_then(|pointer| root.pointer(pointer))
        .unwrap_or(schema)
}

/// Appends a row per field of `kind`, unfolding named object types in place (`payload.message`)
/// so that a message's whole shape is one table.
fn type_rows(
    api: &ir::Api,
    kind: &TypeKind,
    prefix: &str,
    depth: usize,
    seen: &mut HashSet<String>,
    rows: &mut Vec<Value>,
) {
    match kind {
        TypeKind::Struct { fields } => {
            for f in fields {
                let path = format!("{prefix}{}", f.json_name);
                let mut ty = type_name(&f.ty);
                if f.nullable {
                    ty.push_str(" | null");
                }
                let description = f
                    .description
                    .as_ref()
                    .or(f.title.as_ref())
                    .map(|d| d.trim().to_owned());
                let mut notes = Vec::new();
                if let Some(n) = f.min_length {
                    notes.push(format!("at least {n} characters"));
                }
                if let Some(n) = f.max_length {
                    notes.push(format!("at most {n} characters"));
                }
                let mut field = row(&path, &ty, f.required, description.as_deref());
                field["notes"] = Value::String(notes.join(", "));
                rows.push(field);
                unfold(api, &f.ty, &path, depth, seen, rows);
            }
        }
        TypeKind::StringEnum { variants } => rows.push(row(
            prefix.trim_end_matches('.'),
            &variants
                .iter()
                .map(|v| format!("\"{}\"", v.value))
                .collect::<Vec<_>>()
                .join(" | "),
            true,
            None,
        )),
        TypeKind::Untagged { variants } => {
            for v in variants {
                let path = prefix.trim_end_matches('.');
                rows.push(row(
                    &format!("{path} (one of: {})", v.name),
                    &type_name(&v.ty),
                    false,
                    v.description.as_deref().map(str::trim),
                ));
                unfold(api, &v.ty, path, depth, seen, rows);
            }
        }
    }
}

/// Follows a field's type into a named struct (or an array of one) to list its fields too.
fn unfold(
    api: &ir::Api,
    ty: &TypeRef,
    path: &str,
    depth: usize,
    seen: &mut HashSet<String>,
    rows: &mut Vec<Value>,
) {
    if depth >= MAX_FIELD_DEPTH {
        return;
    }
    let (name, prefix) = match ty {
        TypeRef::Named { name } => (name, format!("{path}.")),
        TypeRef::Nullable { inner } => return unfold(api, inner, path, depth, seen, rows),
        TypeRef::Array { item } => {
            return unfold(api, item, &format!("{path}[]"), depth, seen, rows)
        }
        _ => return,
    };
    let Some(def) = api.types.iter().find(|t| &t.name == name) else {
        return;
    };
    // A type that contains itself is listed once per branch, not forever.
    if !seen.insert(name.clone()) {
        return;
    }
    let prefix = match def.kind {
        TypeKind::Struct { .. } => prefix,
        _ => path.to_owned(),
    };
    type_rows(api, &def.kind, &prefix, depth + 1, seen, rows);
    seen.remove(name);
}

/// One row of a field table; every row has every key, as the strict template expects. The
/// description is HTML (see [`inline_code`]).
fn row(path: &str, ty: &str, required: bool, description: Option<&str>) -> Value {
    json!({
        "path": path,
        "type": ty,
        "required": required,
        "description": description.map(inline_code),
        "notes": "",
        "envelope": false,
    })
}

/// A type as readers of JSON know it.
fn type_name(ty: &TypeRef) -> String {
    match ty {
        TypeRef::String => "string".into(),
        TypeRef::Integer => "integer".into(),
        TypeRef::Number => "number".into(),
        TypeRef::Boolean => "boolean".into(),
        TypeRef::Null => "null".into(),
        TypeRef::Any => "any JSON".into(),
        TypeRef::Array { item } => format!("array of {}", type_name(item)),
        TypeRef::Nullable { inner } => format!("{} | null", type_name(inner)),
        TypeRef::Named { name } => name.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::{inline_code, markdown};

    #[test]
    fn backticks_in_plain_text_become_code_and_the_rest_is_escaped() {
        assert_eq!(
            inline_code("Kinds: `json_invalid`, `missing`, ..."),
            "Kinds: <code>json_invalid</code>, <code>missing</code>, ..."
        );
        assert_eq!(
            inline_code("`<script>` & <b>x</b> `"),
            "<code>&lt;script&gt;</code> &amp; &lt;b&gt;x&lt;/b&gt; `"
        );
        assert_eq!(inline_code("a `` b"), "a `` b");
    }

    #[test]
    fn raw_html_in_markdown_is_text() {
        let out = markdown("Hi <script>alert(1)</script>\n\n<div onclick=x>block</div>");
        assert!(!out.contains("<script"), "{out}");
        assert!(!out.contains("<div"), "{out}");
        assert!(out.contains("&lt;script&gt;"), "{out}");
    }

    #[test]
    fn script_links_lose_their_address() {
        let out = markdown("[a](javascript:alert(1)) [b](https://example.com) ![c](data:x)");
        assert!(!out.contains("javascript:"), "{out}");
        assert!(!out.contains("data:"), "{out}");
        assert!(out.contains("https://example.com"), "{out}");
    }

    #[test]
    fn markdown_renders_code_and_emphasis() {
        assert_eq!(
            markdown("`a` and *b*"),
            "<p><code>a</code> and <em>b</em></p>\n"
        );
    }
}
