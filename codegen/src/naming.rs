//! Names in generated code, derived from names in the document.
//!
//! Derivation is deterministic and total, but it does not by itself give a usable identifier:
//! a name with no ASCII letter or digit derives to nothing (`💬` -> ``), and distinct names can
//! derive to the same identifier (`room-chat` and `room_chat` -> `RoomChat`). Lowering checks
//! every derived identifier (not empty, not reserved, unique where it is declared) and refuses
//! the document with the pointer of the name otherwise, so that what the templates receive
//! always parses.

/// `room_chat`, `room chat`, `roomChat` -> `RoomChat`. Leading digits get a `N` prefix.
pub(crate) fn pascal_case(s: &str) -> String {
    let mut out = String::new();
    for word in words(s) {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, 'N');
    }
    out
}

/// `handlePing`, `handle-ping` -> `handle_ping`.
pub(crate) fn snake_case(s: &str) -> String {
    let mut out = String::new();
    for word in words(s) {
        if !out.is_empty() {
            out.push('_');
        }
        out.push_str(&word.to_lowercase());
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// A snake_case field name, with Rust keywords escaped as raw identifiers.
pub(crate) fn field_name(s: &str) -> String {
    let name = snake_case(s);
    match name.as_str() {
        "self" | "Self" | "super" | "crate" => format!("{name}_"),
        _ if RUST_KEYWORDS.contains(&name.as_str()) => format!("r#{name}"),
        _ => name,
    }
}

/// A property name usable in a JavaScript object literal or a TypeScript type literal: bare when
/// it is a plain identifier, a string literal ([`js_string`]) otherwise.
pub(crate) fn ts_property_name(s: &str) -> String {
    let plain = !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
    if plain {
        s.to_owned()
    } else {
        js_string(s)
    }
}

/// A JavaScript string literal (JSON's syntax is a subset of JavaScript's, and `serde_json`
/// escapes quotes, backslashes and control characters; `<` is escaped as well so the text is
/// also safe inside an HTML `<script>`, and U+2028/U+2029 for engines older than ES2019).
pub(crate) fn js_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned())
        .to_string()
        .replace('<', "\\u003c")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// Escapes a key for use as a JSON-pointer token (RFC 6901).
pub(crate) fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Splits on anything that is not alphanumeric, and before an upper-case letter that follows a
/// lower-case one (`roomChat` -> `room`, `Chat`).
fn words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut previous_lower = false;
    for c in s.chars() {
        if !c.is_alphanumeric() || !c.is_ascii() && !c.is_alphabetic() {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            previous_lower = false;
            continue;
        }
        if !c.is_ascii() {
            // Identifiers stay ASCII so every toolchain and terminal shows them the same way.
            continue;
        }
        if c.is_uppercase() && previous_lower && !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
        previous_lower = c.is_lowercase() || c.is_ascii_digit();
        current.push(c);
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

const RUST_KEYWORDS: [&str; 38] = [
    "as", "async", "await", "break", "const", "continue", "dyn", "else", "enum", "extern", "false",
    "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref",
    "return", "static", "struct", "trait", "true", "type", "unsafe", "use", "where", "while",
    "abstract", "become", "box", "try",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_identifiers() {
        assert_eq!(pascal_case("room_chat"), "RoomChat");
        assert_eq!(pascal_case("Room Name"), "RoomName");
        assert_eq!(pascal_case("RoomMessagePayload"), "RoomMessagePayload");
        assert_eq!(pascal_case("2fa"), "N2fa");
        assert_eq!(snake_case("handlePing"), "handle_ping");
        assert_eq!(snake_case("handle-ping"), "handle_ping");
        assert_eq!(field_name("type"), "r#type");
        assert_eq!(field_name("ref"), "r#ref");
        assert_eq!(field_name("self"), "self_");
        assert_eq!(field_name("café"), "caf");
        assert_eq!(ts_property_name("room_name"), "room_name");
        assert_eq!(ts_property_name("x-y"), "\"x-y\"");
        assert_eq!(ts_property_name("</script>"), r#""\u003c/script>""#);
        assert_eq!(escape_pointer("a/b~c"), "a~1b~0c");
    }
}
