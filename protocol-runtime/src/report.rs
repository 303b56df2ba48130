//! What a client is told about a frame that could not be handled.
//!
//! The shapes are pydantic's validation errors, because that is what clients of the Python
//! original (chanx) already parse: a list of `{"type", "loc", "msg"}` objects, or
//! `{"detail": ...}` when a handler failed.

use serde::{Deserialize, Serialize};

use crate::decode::{self, Decode, Loc};

/// One problem in a refused frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ErrorItem {
    /// Machine-readable kind, e.g. `missing` or `string_type`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Path to the offending value: the action first, then keys and indices; empty for the
    /// frame itself.
    pub loc: Vec<LocPart>,
    /// Human-readable explanation.
    pub msg: String,
}

/// One step of [`ErrorItem::loc`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum LocPart {
    /// A property name (or the action).
    Key(String),
    /// The zero-based position of an element in an array.
    Index(i64),
}

impl ErrorItem {
    /// A problem of `kind` at `loc`.
    pub fn new(kind: &str, loc: &Loc<'_>, msg: impl Into<String>) -> Self {
        Self {
            kind: kind.to_owned(),
            loc: loc.to_vec(),
            msg: msg.into(),
        }
    }
}

/// The `error` frame listing the problems of a refused frame.
pub fn rejection_frame(errors: &[ErrorItem]) -> String {
    error_frame(errors)
}

/// The `error` frame for a handler that failed; what went wrong stays in the server's log.
pub fn failure_frame(action: &str) -> String {
    detail_frame(&failure_detail(action))
}

/// An `error` frame whose payload is `{"detail": detail}`: the shape of a handler failure,
/// also used to tell a client about a limit it reached.
pub fn detail_frame(detail: &str) -> String {
    detail_frame_with(detail, &NoEnvelope {})
}

/// [`detail_frame`] with `envelope`'s keys flattened into the frame (see [`error_frame_with`]).
pub(crate) fn detail_frame_with<E: Serialize>(detail: &str, envelope: &E) -> String {
    /// `{"detail": ...}`.
    #[derive(Serialize)]
    struct Detail<'a> {
        detail: &'a str,
    }
    error_frame_with(&Detail { detail }, envelope)
}

fn error_frame<P: Serialize + ?Sized>(payload: &P) -> String {
    error_frame_with(payload, &NoEnvelope {})
}

/// No envelope keys.
#[derive(Serialize)]
struct NoEnvelope {}

/// `{"action": "error", "payload": ..., <envelope keys>}`: `envelope` is flattened into the
/// frame (the reply envelope of the request, so a client can match the error to it).
pub(crate) fn error_frame_with<P: Serialize + ?Sized, E: Serialize>(
    payload: &P,
    envelope: &E,
) -> String {
    /// `{"action": "error", "payload": ...}`.
    #[derive(Serialize)]
    struct Frame<'a, P: ?Sized, E> {
        action: &'static str,
        payload: &'a P,
        #[serde(flatten)]
        envelope: &'a E,
    }
    let frame = Frame {
        action: "error",
        payload,
        envelope,
    };
    // Strings, integers and lists of them: serde_json has no error to report for these.
    serde_json::to_string(&frame).unwrap_or_else(|e| unreachable!("an error frame: {e}"))
}

/// [`failure_frame`]'s payload, for [`crate::envelope`].
pub(crate) fn failure_detail(action: &str) -> String {
    format!("Failed to process message for {action}")
}

impl Decode for ErrorItem {
    fn decode(
        value: &serde_json::Value,
        loc: &Loc<'_>,
        errors: &mut Vec<ErrorItem>,
    ) -> Option<Self> {
        let object = decode::object(value, "ErrorItem", loc, errors)?;
        let kind = decode::required(object, "type", loc, errors);
        let at = decode::required(object, "loc", loc, errors);
        let msg = decode::required(object, "msg", loc, errors);
        Some(Self {
            kind: kind?,
            loc: at?,
            msg: msg?,
        })
    }
}

impl Decode for LocPart {
    fn decode(
        value: &serde_json::Value,
        loc: &Loc<'_>,
        errors: &mut Vec<ErrorItem>,
    ) -> Option<Self> {
        let mut problems = Vec::new();
        if let Some(key) = Decode::decode(value, loc, &mut problems) {
            return Some(Self::Key(key));
        }
        if let Some(index) = Decode::decode(value, loc, &mut problems) {
            return Some(Self::Index(index));
        }
        errors.extend(problems);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_have_the_pydantic_shape() {
        let root = Loc::ROOT;
        let action = root.key("room_chat");
        let item = action.index(2);
        assert_eq!(
            rejection_frame(&[ErrorItem::new("missing", &item, "Field required")]),
            r#"{"action":"error","payload":[{"type":"missing","loc":["room_chat",2],"msg":"Field required"}]}"#
        );
        assert_eq!(
            failure_frame("ping"),
            r#"{"action":"error","payload":{"detail":"Failed to process message for ping"}}"#
        );
    }

    #[test]
    fn error_items_read_back() {
        let value = serde_json::json!({"type": "missing", "loc": ["a", 0], "msg": "m"});
        let mut errors = Vec::new();
        let item = ErrorItem::decode(&value, &Loc::ROOT, &mut errors);
        assert_eq!(
            item.map(|i| i.loc),
            Some(vec![LocPart::Key("a".into()), LocPart::Index(0)])
        );
        let bad = serde_json::json!({"type": "missing", "loc": [true]});
        assert_eq!(ErrorItem::decode(&bad, &Loc::ROOT, &mut errors), None);
        let kinds: Vec<&str> = errors.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["string_type", "int_type", "missing"]);
    }
}
