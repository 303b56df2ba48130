//! Channel addresses with parameters (`/ws/room/{room_name}`) against request paths.
//!
//! A parameter's value is the percent-decoded text of its place in the path, within one
//! segment, so `a%20b` is `a b` and `caf%C3%A9` is `café`. Rules beyond the document's (what a
//! room name may contain, say) are the application's.

use crate::decode::quoted_list;

/// Why a request path is not an address of a channel. Every variant about one parameter names
/// it, so a server can say which part of the URL to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    /// The path does not have the shape of the address: a literal part differs, or a
    /// parameter's place would span more than one segment.
    #[error("the path `{path}` does not match the address `{address}`")]
    Mismatch {
        /// The address template.
        address: &'static str,
        /// The path.
        path: String,
    },
    /// A parameter's place in the path is empty.
    #[error("parameter `{parameter}` is empty")]
    Empty {
        /// The parameter.
        parameter: &'static str,
    },
    /// A parameter's text is not percent-encoded UTF-8 (a stray `%`, or bytes such as `%FF`
    /// that are not UTF-8).
    #[error("parameter `{parameter}`: `{segment}` is not percent-encoded UTF-8")]
    InvalidEncoding {
        /// The parameter.
        parameter: &'static str,
        /// Its text as it stands in the path.
        segment: String,
    },
    /// A parameter's value is not one of those the document allows (its `enum`).
    #[error(
        "parameter `{parameter}`: `{value}` is not allowed; expected {}",
        quoted_list(allowed, "or")
    )]
    NotAllowed {
        /// The parameter.
        parameter: &'static str,
        /// The decoded value.
        value: String,
        /// The values the document allows.
        allowed: &'static [&'static str],
    },
}

impl ParamsError {
    /// The parameter that failed, when one did.
    pub fn parameter(&self) -> Option<&'static str> {
        match self {
            Self::Mismatch { .. } => None,
            Self::Empty { parameter }
            | Self::InvalidEncoding { parameter, .. }
            | Self::NotAllowed { parameter, .. } => Some(parameter),
        }
    }
}

/// The values of the `N` parameters of `address` in `path`, percent-decoded, in the order the
/// address names them. A parameter's value runs to the end of its path segment, or to the
/// literal text that follows it inside the segment (`{a}-{b}`).
pub fn parameters<const N: usize>(
    address: &'static str,
    path: &str,
) -> Result<[String; N], ParamsError> {
    let mismatch = || ParamsError::Mismatch {
        address,
        path: path.to_owned(),
    };
    let mut values = Vec::with_capacity(N);
    let mut template = address;
    let mut rest = path;
    while let Some(open) = template.find('{') {
        rest = rest.strip_prefix(&template[..open]).ok_or_else(mismatch)?;
        let after = &template[open + 1..];
        let close = after.find('}').ok_or_else(mismatch)?;
        let parameter = &after[..close];
        template = &after[close + 1..];
        let segment_end = rest.find('/').unwrap_or(rest.len());
        // The literal text after the parameter, within its segment.
        let next = &template[..template.find(['{', '/']).unwrap_or(template.len())];
        let end = if next.is_empty() {
            segment_end
        } else {
            rest[..segment_end].find(next).ok_or_else(mismatch)?
        };
        let (raw, tail) = rest.split_at(end);
        if raw.is_empty() {
            return Err(ParamsError::Empty { parameter });
        }
        let value = percent_decode(raw).ok_or_else(|| ParamsError::InvalidEncoding {
            parameter,
            segment: raw.to_owned(),
        })?;
        values.push(value);
        rest = tail;
    }
    if rest != template {
        return Err(mismatch());
    }
    // Generated code asks for as many values as its address has parameters.
    values.try_into().map_err(|_| mismatch())
}

/// Refuses a value outside `allowed`.
pub fn check_allowed(
    parameter: &'static str,
    value: &str,
    allowed: &'static [&'static str],
) -> Result<(), ParamsError> {
    if allowed.contains(&value) {
        return Ok(());
    }
    Err(ParamsError::NotAllowed {
        parameter,
        value: value.to_owned(),
        allowed,
    })
}

/// `address` with its parameters replaced, in order, by `values`, each percent-encoded.
/// Generated code passes one value per parameter; a parameter without a value would stay as
/// `{name}` in the result, visibly.
pub fn address<const N: usize>(address: &str, values: [&str; N]) -> String {
    let mut out = String::with_capacity(address.len());
    let mut rest = address;
    for value in values {
        let (Some(open), Some(close)) = (rest.find('{'), rest.find('}')) else {
            break;
        };
        out.push_str(&rest[..open]);
        out.push_str(&encode_path_segment(value));
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// Why [`query_parameter`] refused a query string: it names the parameter, so a server can say
/// which part of the URL to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// The parameter's value is not percent-encoded UTF-8 (a stray `%`, or bytes such as `%FF`
    /// that are not UTF-8).
    #[error("query parameter `{parameter}`: `{value}` is not percent-encoded UTF-8")]
    InvalidEncoding {
        /// The parameter.
        parameter: &'static str,
        /// Its value as it stands in the query string.
        value: String,
    },
}

impl QueryError {
    /// The parameter that failed.
    pub fn parameter(&self) -> &'static str {
        match self {
            Self::InvalidEncoding { parameter, .. } => parameter,
        }
    }
}

/// The value of the parameter `key` in a request's query string (the text after `?`, if any):
/// percent-decoded, with `+` read as a space (as HTML forms write it). `None` when the key is
/// absent; the empty text for `key=` or a bare `key`. The first occurrence wins, so a proxy
/// that appends a second one cannot override what the client sent.
pub fn query_parameter(
    query: Option<&str>,
    key: &'static str,
) -> Result<Option<String>, QueryError> {
    let Some(pair) = query
        .unwrap_or_default()
        .split('&')
        .find(|pair| pair.split('=').next() == Some(key))
    else {
        return Ok(None);
    };
    let value = pair.split_once('=').map_or("", |(_, v)| v);
    percent_decode(&value.replace('+', " "))
        .map(Some)
        .ok_or_else(|| QueryError::InvalidEncoding {
            parameter: key,
            value: value.to_owned(),
        })
}

/// A query string (without `?`) of the parameters that have a value, in the order given, each
/// key and value percent-encoded; empty when none has one.
pub fn query_string(pairs: &[(&str, Option<&str>)]) -> String {
    pairs
        .iter()
        .filter_map(|(key, value)| {
            value.map(|v| format!("{}={}", encode_path_segment(key), encode_path_segment(v)))
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Decodes `%XX` escapes; `None` for a malformed escape or bytes that are not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        if byte == b'%' {
            let high = bytes.get(i + 1).and_then(|b| char::from(*b).to_digit(16))?;
            let low = bytes.get(i + 2).and_then(|b| char::from(*b).to_digit(16))?;
            out.push(u8::try_from(high * 16 + low).ok()?);
            i += 3;
        } else {
            out.push(byte);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Percent-encodes one path segment (everything but RFC 3986 unreserved characters).
pub fn encode_path_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOM: &str = "/ws/room/{room_name}";

    #[test]
    fn query_parameters_are_decoded_and_the_first_wins() {
        let q = |text: &str| query_parameter(Some(text), "name");
        assert_eq!(q("name=ada"), Ok(Some("ada".into())));
        assert_eq!(q("x=1&name=ad%C3%A9+l&name=eve"), Ok(Some("adé l".into())));
        assert_eq!(q("name"), Ok(Some(String::new())));
        assert_eq!(q("names=x"), Ok(None));
        assert_eq!(query_parameter(None, "name"), Ok(None));
        assert_eq!(
            q("name=%FF"),
            Err(QueryError::InvalidEncoding {
                parameter: "name",
                value: "%FF".into()
            })
        );
        assert_eq!(
            query_string(&[("name", Some("adé l")), ("other", None)]),
            "name=ad%C3%A9%20l"
        );
        assert_eq!(query_string(&[("name", None)]), "");
    }

    #[test]
    fn parameters_are_percent_decoded() {
        assert_eq!(
            parameters(ROOM, "/ws/room/caf%C3%A9"),
            Ok(["café".to_owned()])
        );
        assert_eq!(
            parameters::<2>("/a/{x}-{y}", "/a/1-2"),
            Ok(["1".to_owned(), "2".to_owned()])
        );
        assert_eq!(parameters::<0>("/plain", "/plain"), Ok([]));
    }

    #[test]
    fn bad_paths_name_the_parameter() {
        let empty = parameters::<1>(ROOM, "/ws/room/");
        assert_eq!(
            empty,
            Err(ParamsError::Empty {
                parameter: "room_name"
            })
        );
        let bad = parameters::<1>(ROOM, "/ws/room/%FF").err();
        assert_eq!(bad.and_then(|e| e.parameter()), Some("room_name"));
        let two_segments = parameters::<1>(ROOM, "/ws/room/a/b").err();
        assert!(matches!(two_segments, Some(ParamsError::Mismatch { .. })));
        let refused = check_allowed("x", "c", &["a", "b"])
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            refused.as_deref(),
            Some("parameter `x`: `c` is not allowed; expected 'a' or 'b'")
        );
    }

    #[test]
    fn addresses_are_filled_in_order() {
        assert_eq!(address(ROOM, ["a b"]), "/ws/room/a%20b");
        assert_eq!(address("/a/{x}-{y}", ["1", "é"]), "/a/1-%C3%A9");
    }
}
