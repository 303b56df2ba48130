//! The reporting decoder: reads a frame already parsed as a JSON value and, instead of stopping
//! at the first problem, lists every one with the error kinds, messages and locations pydantic
//! gives (what chanx clients expect to read).
//!
//! It runs only for frames the serde path of [`crate::frame`] refused, so it is written for
//! clarity of the report, not for speed. Generated code implements [`Decode`] for each payload
//! type with the field functions here ([`required`], [`optional`], [`omittable`], [`length`]);
//! both paths must accept the same frames with the same values, which the generated crates test
//! differentially.

use serde_json::{Map, Value};

use crate::report::{ErrorItem, LocPart};

/// Where a value sits in a frame. It is built on the stack while decoding and only turned into
/// a list when a problem is reported, so walking a frame allocates nothing for locations.
#[derive(Debug, Clone, Copy)]
pub struct Loc<'a> {
    parent: Option<&'a Loc<'a>>,
    step: Step<'a>,
}

#[derive(Debug, Clone, Copy)]
enum Step<'a> {
    Root,
    Key(&'a str),
    Index(usize),
}

impl<'a> Loc<'a> {
    /// The frame itself (`loc: []`).
    pub const ROOT: Loc<'static> = Loc {
        parent: None,
        step: Step::Root,
    };

    /// The value under `key`.
    pub fn key(&'a self, key: &'a str) -> Loc<'a> {
        Loc {
            parent: Some(self),
            step: Step::Key(key),
        }
    }

    /// The array element at `index`.
    pub fn index(&'a self, index: usize) -> Loc<'a> {
        Loc {
            parent: Some(self),
            step: Step::Index(index),
        }
    }

    /// The path, outermost first.
    pub fn to_vec(&self) -> Vec<LocPart> {
        let mut parts = Vec::new();
        let mut at = Some(self);
        while let Some(loc) = at {
            match loc.step {
                Step::Root => {}
                Step::Key(key) => parts.push(LocPart::Key(key.to_owned())),
                // No JSON array has 2^63 elements.
                Step::Index(i) => parts.push(LocPart::Index(i64::try_from(i).unwrap_or(i64::MAX))),
            }
            at = loc.parent;
        }
        parts.reverse();
        parts
    }
}

/// Decoding from a JSON value that reports every problem instead of stopping at the first.
pub trait Decode: Sized {
    /// Decodes `value`; on failure pushes at least one problem and returns `None`.
    fn decode(value: &Value, loc: &Loc<'_>, errors: &mut Vec<ErrorItem>) -> Option<Self>;
}

/// A scalar: `Some` when `value` is one, else the pydantic problem of its type.
fn scalar<T>(
    decoded: Option<T>,
    kind: &str,
    msg: &str,
    loc: &Loc<'_>,
    errors: &mut Vec<ErrorItem>,
) -> Option<T> {
    if decoded.is_none() {
        errors.push(ErrorItem::new(kind, loc, msg));
    }
    decoded
}

impl Decode for String {
    fn decode(value: &Value, loc: &Loc<'_>, errors: &mut Vec<ErrorItem>) -> Option<Self> {
        let decoded = value.as_str().map(str::to_owned);
        scalar(
            decoded,
            "string_type",
            "Input should be a valid string",
            loc,
            errors,
        )
    }
}

impl Decode for i64 {
    fn decode(value: &Value, loc: &Loc<'_>, errors: &mut Vec<ErrorItem>) -> Option<Self> {
        let msg = "Input should be a valid integer";
        scalar(value.as_i64(), "int_type", msg, loc, errors)
    }
}

impl Decode for f64 {
    fn decode(value: &Value, loc: &Loc<'_>, errors: &mut Vec<ErrorItem>) -> Option<Self> {
        let msg = "Input should be a valid number";
        scalar(value.as_f64(), "float_type", msg, loc, errors)
    }
}

impl Decode for bool {
    fn decode(value: &Value, loc: &Loc<'_>, errors: &mut Vec<ErrorItem>) -> Option<Self> {
        let msg = "Input should be a valid boolean";
        scalar(value.as_bool(), "bool_type", msg, loc, errors)
    }
}

/// `null`, the only value of a `type: 'null'` schema.
impl Decode for () {
    fn decode(value: &Value, loc: &Loc<'_>, errors: &mut Vec<ErrorItem>) -> Option<Self> {
        let decoded = value.is_null().then_some(());
        scalar(
            decoded,
            "none_required",
            "Input should be None",
            loc,
            errors,
        )
    }
}

/// Any value (a schema with no type).
impl Decode for Value {
    fn decode(value: &Value, _: &Loc<'_>, _: &mut Vec<ErrorItem>) -> Option<Self> {
        Some(value.clone())
    }
}

/// `T` or `null`.
impl<T: Decode> Decode for Option<T> {
    fn decode(value: &Value, loc: &Loc<'_>, errors: &mut Vec<ErrorItem>) -> Option<Self> {
        if value.is_null() {
            Some(None)
        } else {
            T::decode(value, loc, errors).map(Some)
        }
    }
}

/// An array whose every element is a `T`; a problem in each element is reported.
impl<T: Decode> Decode for Vec<T> {
    fn decode(value: &Value, loc: &Loc<'_>, errors: &mut Vec<ErrorItem>) -> Option<Self> {
        let Value::Array(items) = value else {
            errors.push(ErrorItem::new(
                "list_type",
                loc,
                "Input should be a valid list",
            ));
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        let mut complete = true;
        for (i, item) in items.iter().enumerate() {
            match T::decode(item, &loc.index(i), errors) {
                Some(v) => out.push(v),
                None => complete = false,
            }
        }
        complete.then_some(out)
    }
}

/// The object behind `value`, or a `model_type` problem naming the type that was expected.
pub fn object<'v>(
    value: &'v Value,
    type_name: &str,
    loc: &Loc<'_>,
    errors: &mut Vec<ErrorItem>,
) -> Option<&'v Map<String, Value>> {
    if let Value::Object(object) = value {
        return Some(object);
    }
    let msg = format!("Input should be a valid dictionary or instance of {type_name}");
    errors.push(ErrorItem::new("model_type", loc, msg));
    None
}

/// A property listed in `required`.
pub fn required<T: Decode>(
    object: &Map<String, Value>,
    key: &str,
    loc: &Loc<'_>,
    errors: &mut Vec<ErrorItem>,
) -> Option<T> {
    match object.get(key) {
        Some(value) => T::decode(value, &loc.key(key), errors),
        None => {
            errors.push(ErrorItem::new("missing", &loc.key(key), "Field required"));
            None
        }
    }
}

/// A property that may be left out, in which case it takes the type's default (`None` for a
/// nullable value, `()` for a `null` one).
pub fn optional<T: Decode + Default>(
    object: &Map<String, Value>,
    key: &str,
    loc: &Loc<'_>,
    errors: &mut Vec<ErrorItem>,
) -> Option<T> {
    match object.get(key) {
        Some(value) => T::decode(value, &loc.key(key), errors),
        None => Some(T::default()),
    }
}

/// A property that may be left out but, when present, must be a `T`: an optional property
/// whose schema does not admit `null` (JSON Schema, and pydantic for a non-`Optional` field
/// with a default, both refuse `null` there).
pub fn omittable<T: Decode>(
    object: &Map<String, Value>,
    key: &str,
    loc: &Loc<'_>,
    errors: &mut Vec<ErrorItem>,
) -> Option<Option<T>> {
    match object.get(key) {
        Some(value) => T::decode(value, &loc.key(key), errors).map(Some),
        None => Some(None),
    }
}

/// A decoded string property whose length [`length`] can check: `String` or `Option<String>`.
pub trait Text {
    /// The text, when there is one.
    fn text(&self) -> Option<&str>;
}

impl Text for String {
    fn text(&self) -> Option<&str> {
        Some(self)
    }
}

impl Text for Option<String> {
    fn text(&self) -> Option<&str> {
        self.as_deref()
    }
}

/// Checks `minLength` / `maxLength` of a decoded string property (counted in characters, as
/// JSON Schema counts them); `decoded` passes through when it fits.
pub fn length<T: Text>(
    decoded: Option<T>,
    min: Option<usize>,
    max: Option<usize>,
    loc: &Loc<'_>,
    errors: &mut Vec<ErrorItem>,
) -> Option<T> {
    let count = decoded.as_ref()?.text().map_or(0, |s| s.chars().count());
    let present = decoded.as_ref()?.text().is_some();
    let unit = |n: usize| if n == 1 { "character" } else { "characters" };
    if let Some(min) = min.filter(|min| present && count < *min) {
        let msg = format!("String should have at least {min} {}", unit(min));
        errors.push(ErrorItem::new("string_too_short", loc, msg));
        return None;
    }
    if let Some(max) = max.filter(|max| present && count > *max) {
        let msg = format!("String should have at most {max} {}", unit(max));
        errors.push(ErrorItem::new("string_too_long", loc, msg));
        return None;
    }
    decoded
}

/// The problem of a string enumeration given something else, listing the allowed values the
/// way pydantic does.
pub fn enum_error(allowed: &[&str], loc: &Loc<'_>) -> ErrorItem {
    let msg = format!("Input should be {}", quoted_list(allowed, "or"));
    ErrorItem::new("enum", loc, msg)
}

/// `'a', 'b' or 'c'`.
pub(crate) fn quoted_list(items: &[&str], last_joiner: &str) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("'{s}'")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} {last_joiner} {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn kinds(errors: &[ErrorItem]) -> Vec<(&str, Vec<LocPart>)> {
        errors
            .iter()
            .map(|e| (e.kind.as_str(), e.loc.clone()))
            .collect()
    }

    #[test]
    fn every_problem_is_reported_with_its_location() {
        let frame = json!({"a": 1, "list": ["x", 2, "y", false]});
        let object = frame.as_object().cloned().unwrap_or_default();
        let root = Loc::ROOT;
        let mut errors = Vec::new();
        let a: Option<String> = required(&object, "a", &root, &mut errors);
        let list: Option<Vec<String>> = required(&object, "list", &root, &mut errors);
        let gone: Option<bool> = required(&object, "gone", &root, &mut errors);
        assert!(a.is_none() && list.is_none() && gone.is_none());
        let key = |k: &str| LocPart::Key(k.to_owned());
        assert_eq!(
            kinds(&errors),
            [
                ("string_type", vec![key("a")]),
                ("string_type", vec![key("list"), LocPart::Index(1)]),
                ("string_type", vec![key("list"), LocPart::Index(3)]),
                ("missing", vec![key("gone")]),
            ]
        );
    }

    #[test]
    fn optional_omittable_and_nullable_differ_on_null() {
        let object = json!({"n": null}).as_object().cloned().unwrap_or_default();
        let mut errors = Vec::new();
        let root = Loc::ROOT;
        let nullable: Option<Option<i64>> = optional(&object, "n", &root, &mut errors);
        assert_eq!(nullable, Some(None));
        let unit: Option<()> = optional(&object, "absent", &root, &mut errors);
        assert_eq!(unit, Some(()));
        assert!(errors.is_empty());
        let omitted: Option<Option<i64>> = omittable(&object, "absent", &root, &mut errors);
        assert_eq!(omitted, Some(None));
        let null: Option<Option<i64>> = omittable(&object, "n", &root, &mut errors);
        assert_eq!(null, None);
        assert_eq!(
            kinds(&errors),
            [("int_type", vec![LocPart::Key("n".into())])]
        );
    }

    #[test]
    fn lengths_count_characters() {
        let mut errors = Vec::new();
        let root = Loc::ROOT;
        let fits = length(
            Some("café".to_owned()),
            Some(4),
            Some(4),
            &root,
            &mut errors,
        );
        assert_eq!(fits.as_deref(), Some("café"));
        assert_eq!(
            length(Some(String::new()), Some(1), None, &root, &mut errors),
            None
        );
        let absent = length(Some(None::<String>), Some(1), Some(2), &root, &mut errors);
        assert_eq!(absent, Some(None));
        assert_eq!(
            length(Some("abc".to_owned()), None, Some(2), &root, &mut errors),
            None
        );
        let msgs: Vec<&str> = errors.iter().map(|e| e.msg.as_str()).collect();
        assert_eq!(
            msgs,
            [
                "String should have at least 1 character",
                "String should have at most 2 characters"
            ]
        );
    }

    #[test]
    fn enum_errors_list_the_values() {
        let error = enum_error(&["red", "green", "blue"], &Loc::ROOT);
        assert_eq!(error.msg, "Input should be 'red', 'green' or 'blue'");
    }
}
