//! The Rust target: one source file holding the payload types, a module per channel (direction
//! enums, parameters, handler trait, dispatch) and the decoding runtime.
//!
//! Templates decide the layout; the helpers registered here decide how one IR node is spelt in
//! Rust (types, serde attributes, decode statements), so every spelling rule lives in one place.
//! The output is parsed with `syn` and printed with `prettyplease`: a template bug becomes an
//! error here, never a file that fails to compile somewhere else.

use handlebars::{
    handlebars_helper, Context, Handlebars, Helper, HelperResult, Output, RenderContext,
};
use serde_json::{json, Value};

use crate::error::GenerateError;
use crate::ir::{self, TypeRef};

const PROTOCOL_TEMPLATE: &str = include_str!("../templates/rust/protocol.rs.hbs");
const RUNTIME_TEMPLATE: &str = include_str!("../templates/rust/runtime.rs.hbs");

/// Renders the protocol source for `api`, embedding `spec` as [`SPEC_YAML`].
pub(crate) fn render(api: &ir::Api, spec: &str) -> Result<String, GenerateError> {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    // Rust is not HTML: escaping would turn `&str` into `&amp;str`.
    hb.register_escape_fn(handlebars::no_escape);
    register_helpers(&mut hb);
    hb.register_partial("runtime", RUNTIME_TEMPLATE)
        .map_err(|e| render_error("runtime", &e))?;
    hb.register_template_string("protocol", PROTOCOL_TEMPLATE)
        .map_err(|e| render_error("protocol", &e))?;
    let text = hb
        .render("protocol", &json!({ "api": api, "spec": spec }))
        .map_err(|e| render_error("protocol", &e))?;
    format("protocol.rs", &text)
}

/// Parses and pretty-prints Rust source.
pub(crate) fn format(file: &str, text: &str) -> Result<String, GenerateError> {
    let parsed = syn::parse_file(text).map_err(|e| GenerateError::InvalidRust {
        file: file.to_owned(),
        message: e.to_string(),
    })?;
    let header = text
        .lines()
        .take_while(|l| l.starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    Ok(format!("{header}\n\n{}", prettyplease::unparse(&parsed)))
}

fn render_error(template: &str, e: &impl std::fmt::Display) -> GenerateError {
    GenerateError::Render {
        template: template.to_owned(),
        message: e.to_string(),
    }
}

fn register_helpers(hb: &mut Handlebars<'_>) {
    handlebars_helper!(h_eq: |a: Json, b: Json| a == b);
    handlebars_helper!(h_lit: |s: str| format!("{s:?}"));
    handlebars_helper!(h_raw: |s: str| raw_string(s));
    handlebars_helper!(h_concat: |*args| args.iter().filter_map(|a| a.as_str()).collect::<String>());
    handlebars_helper!(h_paragraphs: |*args| args
        .iter()
        .filter_map(|a| a.as_str())
        .filter(|s| !s.trim().is_empty())
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("\n\n"));
    handlebars_helper!(h_doc: |s: Json| doc_comment(s.as_str().unwrap_or("")));
    handlebars_helper!(h_doc_or: |s: Json, fallback: str| doc_comment(
        s.as_str().filter(|s| !s.trim().is_empty()).unwrap_or(fallback)
    ));
    handlebars_helper!(h_type_of: |ty: Json| type_ref(ty));
    handlebars_helper!(h_field_type: |field: Json| field_type(field));
    handlebars_helper!(h_serde_attr: |field: Json| serde_attr(field));
    handlebars_helper!(h_decode_field: |field: Json| decode_field(field));
    handlebars_helper!(h_local: |field: Json| local_name(field));
    handlebars_helper!(h_directions: |channel: Json| directions(channel));
    hb.register_helper("eq", Box::new(h_eq));
    hb.register_helper("lit", Box::new(h_lit));
    hb.register_helper("raw", Box::new(h_raw));
    hb.register_helper("concat", Box::new(h_concat));
    hb.register_helper("paragraphs", Box::new(h_paragraphs));
    hb.register_helper("doc", Box::new(h_doc));
    hb.register_helper("doc_or", Box::new(h_doc_or));
    hb.register_helper("type_of", Box::new(h_type_of));
    hb.register_helper("field_type", Box::new(h_field_type));
    hb.register_helper("serde_attr", Box::new(h_serde_attr));
    hb.register_helper("decode_field", Box::new(h_decode_field));
    hb.register_helper("directions", Box::new(h_directions));
    hb.register_helper("local", Box::new(h_local));
    hb.register_helper("field_doc", Box::new(field_doc));
}

/// `///` lines for a Markdown text. Untyped code fences become `text` fences, because rustdoc
/// would otherwise compile them as Rust doctests.
fn doc_comment(text: &str) -> String {
    let text = text.trim();
    if text.is_empty() {
        return String::new();
    }
    let mut out = String::new();
    for line in text.lines() {
        let line = if line.trim() == "```" && !in_fence(&out) {
            line.replace("```", "```text")
        } else {
            line.to_owned()
        };
        out.push_str("/// ");
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// Whether the doc text so far leaves a code fence open.
fn in_fence(doc_so_far: &str) -> bool {
    doc_so_far
        .lines()
        .filter(|l| l.trim_start_matches("/// ").trim_start().starts_with("```"))
        .count()
        % 2
        == 1
}

fn field_doc(
    h: &Helper<'_>,
    _: &Handlebars<'_>,
    _: &Context,
    _: &mut RenderContext<'_, '_>,
    out: &mut dyn Output,
) -> HelperResult {
    let field = h.param(0).map(|p| p.value().clone()).unwrap_or(Value::Null);
    let text = match field["description"]
        .as_str()
        .or_else(|| field["title"].as_str())
    {
        Some(text) if !text.trim().is_empty() => text.to_owned(),
        // Generated items are always documented, so that a crate with `missing_docs` can
        // include them.
        _ => format!(
            "The `{}` property.",
            field["json_name"].as_str().unwrap_or_default()
        ),
    };
    out.write(&doc_comment(&text))?;
    Ok(())
}

/// A raw string literal with enough `#`s for any content.
fn raw_string(s: &str) -> String {
    let mut hashes = 1;
    while s.contains(&format!("\"{}", "#".repeat(hashes))) {
        hashes += 1;
    }
    let h = "#".repeat(hashes);
    format!("r{h}\"{s}\"{h}")
}

fn parse_type(ty: &Value) -> TypeRef {
    serde_json::from_value(ty.clone()).unwrap_or(TypeRef::Any)
}

fn type_ref(ty: &Value) -> String {
    rust_type(&parse_type(ty))
}

/// The Rust spelling of a type.
fn rust_type(ty: &TypeRef) -> String {
    match ty {
        TypeRef::String => "String".into(),
        TypeRef::Integer => "i64".into(),
        TypeRef::Number => "f64".into(),
        TypeRef::Boolean => "bool".into(),
        TypeRef::Null => "()".into(),
        TypeRef::Any => "serde_json::Value".into(),
        TypeRef::Array { item } => format!("Vec<{}>", rust_type(item)),
        TypeRef::Nullable { inner } => format!("Option<{}>", rust_type(inner)),
        TypeRef::Named { name } => name.clone(),
    }
}

/// How a field is held: `T` when always present and never null, `Option<T>` otherwise. A
/// `null`-typed field is `()` either way (absent and `null` mean the same).
fn field_type(field: &Value) -> String {
    let ty = parse_type(&field["ty"]);
    let inner = rust_type(&ty);
    if ty == TypeRef::Null || ty == TypeRef::Any {
        return inner;
    }
    if field["required"].as_bool() == Some(true) && field["nullable"].as_bool() != Some(true) {
        inner
    } else {
        format!("Option<{inner}>")
    }
}

/// Serde attributes: the wire name always; for optional fields, a default; and an absent
/// optional non-nullable value is left out rather than written as `null`, since `null` is not
/// one of its values. Nullable fields are always written, as pydantic does.
fn serde_attr(field: &Value) -> String {
    let name = field["json_name"].as_str().unwrap_or_default();
    let required = field["required"].as_bool() == Some(true);
    let nullable = field["nullable"].as_bool() == Some(true);
    let ty = parse_type(&field["ty"]);
    let mut parts = vec![format!("rename = {name:?}")];
    if !required {
        parts.push("default".into());
        if !nullable && ty != TypeRef::Null && ty != TypeRef::Any {
            parts.push("skip_serializing_if = \"Option::is_none\"".into());
        }
    }
    format!("#[serde({})]", parts.join(", "))
}

/// `let x = runtime::required::<T>(object, "x", loc, errors);` plus length checks.
fn decode_field(field: &Value) -> String {
    let rust_name = local_name(field);
    let json_name = field["json_name"].as_str().unwrap_or_default();
    let required = field["required"].as_bool() == Some(true);
    let ty = field_type(field);
    let inner = parse_type(&field["ty"]);
    let nullable = field["nullable"].as_bool() == Some(true);
    // An optional field that is not nullable may be left out but not sent as `null`: `null` is
    // not one of its values (JSON Schema, and pydantic for a non-`Optional` field with a default).
    let (getter, decoded) = if required {
        ("required", ty.clone())
    } else if nullable || inner == TypeRef::Null || inner == TypeRef::Any {
        ("optional", ty.clone())
    } else {
        ("omittable", rust_type(&inner))
    };
    let mut out = format!(
        "let {rust_name} = runtime::{getter}::<{decoded}>(object, {json_name:?}, loc, errors);"
    );
    let min = field["min_length"].as_u64();
    let max = field["max_length"].as_u64();
    if parse_type(&field["ty"]) == TypeRef::String && (min.is_some() || max.is_some()) {
        let as_str = if ty == "String" {
            format!("{rust_name}.as_deref()")
        } else {
            format!("{rust_name}.as_ref().and_then(|v| v.as_deref())")
        };
        let opt = |n: Option<u64>| match n {
            Some(n) => format!("Some({n})"),
            None => "None".into(),
        };
        out.push_str(&format!(
            "\nlet {rust_name} = if runtime::check_length({as_str}, {}, {}, &loc.key({json_name:?}), errors) {{ {rust_name} }} else {{ None }};",
            opt(min),
            opt(max)
        ));
    }
    out
}

/// The decoder's local variable for a field: prefixed, so that a property called `loc` or
/// `errors` cannot shadow the decoder's own arguments.
fn local_name(field: &Value) -> String {
    let name = field["rust_name"].as_str().unwrap_or_default();
    format!("field_{}", name.trim_start_matches("r#"))
}

/// The two direction enums of a channel, for the shared `impl` template.
fn directions(channel: &Value) -> Value {
    let side = |enum_name: &str, key: &str| {
        let uses = channel[key].clone();
        let mut sorted: Vec<String> = uses
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|u| u["action"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        sorted.sort();
        json!({ "enum_name": enum_name, "uses": uses, "sorted": sorted })
    };
    json!([side("Incoming", "incoming"), side("Outgoing", "outgoing")])
}
