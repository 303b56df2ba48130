//! Text frames in, messages out.
//!
//! A frame is a JSON object: `action` names the message, the other keys are the message's
//! fields (`payload`, usually), and `ref` / `version` are the [`Envelope`]. A direction enum
//! (`Incoming`, `Outgoing`) implements [`Messages`], and [`decode_text`] reads a frame into it
//! in two stages:
//!
//! 1. [`deserialize_text`]: serde, in one pass over the text, straight into the generated types
//!    (their own `Deserialize` derives), with no intermediate [`Value`]. Keys that come before
//!    `action` are kept as borrowed slices of the text ([`RawValue`]) until the action says what
//!    they are.
//! 2. Only when serde refuses the frame, [`decode_value`]: the text is parsed into a [`Value`]
//!    and walked by the reporting decoder ([`crate::decode`]), which lists every problem in
//!    pydantic's shape. The client sees that report; serde's own message is never shown.
//!
//! The two stages must agree: whatever serde accepts, the walker accepts with the same value.
//! serde's derives are more lenient than pydantic in places (a struct from a JSON array, a
//! string enum from a one-key object), so stage 1 reads every value through [`Strict`], which
//! closes those doors, and strings with a length limit are read by [`text`], which checks it.
//! One leniency is left to the walker instead: a union of several types (serde's `untagged`
//! buffers and retries, and does not go through [`Strict`]), so generated code sends messages
//! containing one straight to stage 2. A frame serde refuses that the walker accepts (a duplicate key: serde
//! refuses it, the walker keeps the last) costs the second stage, nothing else.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserializer;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::decode::{Loc, Text};
use crate::envelope::{Envelope, Framed};
use crate::report::ErrorItem;

/// The messages of one direction of a channel, discriminated by `action`. Generated code
/// implements it for each direction enum.
pub trait Messages: Sized {
    /// Every action, sorted (the order error messages list them in).
    const ACTIONS: &'static [&'static str];

    /// Stage 1: the message of `action` from the frame's other fields, with serde. `action` is
    /// one of [`Self::ACTIONS`]. A message that only the walker may read answers
    /// [`walker_only`].
    fn deserialize_message<'de, D: Deserializer<'de>>(
        action: &str,
        fields: D,
    ) -> Result<Self, D::Error>;

    /// Stage 2: the message of `action` from the whole frame, reporting every problem at
    /// `loc` (the action's location). `action` is one of [`Self::ACTIONS`].
    fn decode_message(
        action: &str,
        frame: &Value,
        loc: &Loc<'_>,
        errors: &mut Vec<ErrorItem>,
    ) -> Option<Self>;
}

/// The answer of [`Messages::deserialize_message`] for a message serde must not read.
pub fn walker_only<E: de::Error>(action: &str) -> E {
    E::custom(format_args!("`{action}` is read by the reporting decoder"))
}

/// `deserialize_with` of an optional property whose schema does not admit `null`: with
/// `#[serde(default)]`, a missing property is `None`, and `null` is refused (serde would read it
/// as `None`, pydantic refuses it).
pub fn present<'de, D: Deserializer<'de>, T: de::Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

/// `deserialize_with` of a required nullable property: it must be present, and may be `null`
/// (serde would take a missing `Option` as `None`).
pub fn nullable<'de, D: Deserializer<'de>, T: de::Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    de::Deserialize::deserialize(deserializer)
}

/// `deserialize_with` of a string property with `minLength` / `maxLength` (`String`, or
/// `Option<String>` when it is nullable): the length is counted in characters, as JSON Schema
/// and the reporting decoder count it, and a string outside the limits is refused.
pub fn text<'de, D, T, const MIN: usize, const MAX: usize>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: de::Deserialize<'de> + Text,
{
    let value = T::deserialize(deserializer)?;
    if let Some(text) = value.text() {
        let length = text.chars().count();
        if length < MIN || length > MAX {
            return Err(de::Error::invalid_length(
                length,
                &"a string within the schema's limits",
            ));
        }
    }
    Ok(value)
}

/// [`text`] for an optional property whose schema does not admit `null` (see [`present`]).
pub fn present_text<'de, D, const MIN: usize, const MAX: usize>(
    deserializer: D,
) -> Result<Option<String>, D::Error>
where
    D: Deserializer<'de>,
{
    text::<D, String, MIN, MAX>(deserializer).map(Some)
}

/// Reads one text frame: serde first, the reporting decoder when serde refuses it.
pub fn decode_text<M: Messages>(text: &str) -> Result<Framed<M>, Vec<ErrorItem>> {
    match deserialize_text(text) {
        Some(framed) => Ok(framed),
        None => decode_value(&parse_frame(text)?),
    }
}

/// Stage 1 alone: the frame, when serde accepts it.
pub fn deserialize_text<M: Messages>(text: &str) -> Option<Framed<M>> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let framed = (&mut deserializer)
        .deserialize_map(FrameVisitor(PhantomData))
        .ok()?;
    deserializer.end().ok()?;
    Some(framed)
}

/// Stage 2 alone: a frame already parsed as JSON, every problem reported.
pub fn decode_value<M: Messages>(frame: &Value) -> Result<Framed<M>, Vec<ErrorItem>> {
    let (object, action) = frame_action(frame, M::ACTIONS)?;
    let root = Loc::ROOT;
    let loc = root.key(action);
    let mut errors = Vec::new();
    // The envelope first: its problems are listed before the message's.
    let envelope = Envelope::decode(object, &loc, &mut errors);
    let message = M::decode_message(action, frame, &loc, &mut errors);
    match (message, envelope) {
        (Some(message), Some(envelope)) if errors.is_empty() => Ok(Framed { message, envelope }),
        _ if errors.is_empty() => Err(vec![tag_invalid(action, M::ACTIONS)]),
        _ => Err(errors),
    }
}

/// Parses a text frame; anything but JSON is `json_invalid`.
fn parse_frame(text: &str) -> Result<Value, Vec<ErrorItem>> {
    serde_json::from_str(text).map_err(|e| {
        let msg = format!("Invalid JSON: {e}");
        vec![ErrorItem::new("json_invalid", &Loc::ROOT, msg)]
    })
}

/// The frame's object and its `action`, checked against `actions`.
fn frame_action<'v>(
    frame: &'v Value,
    actions: &[&str],
) -> Result<(&'v serde_json::Map<String, Value>, &'v str), Vec<ErrorItem>> {
    let Value::Object(object) = frame else {
        let msg = "Input should be an object";
        return Err(vec![ErrorItem::new("model_type", &Loc::ROOT, msg)]);
    };
    let Some(tag) = object.get("action") else {
        let msg = "Unable to extract tag using discriminator 'action'";
        return Err(vec![ErrorItem::new("union_tag_not_found", &Loc::ROOT, msg)]);
    };
    match tag {
        Value::String(action) if actions.contains(&action.as_str()) => Ok((object, action)),
        Value::String(other) => Err(vec![tag_invalid(other, actions)]),
        other => Err(vec![tag_invalid(&other.to_string(), actions)]),
    }
}

/// `union_tag_invalid`: `tag` names no message of the direction.
fn tag_invalid(tag: &str, actions: &[&str]) -> ErrorItem {
    let expected: Vec<String> = actions.iter().map(|a| format!("'{a}'")).collect();
    let msg = format!(
        "Input tag '{tag}' found using 'action' does not match any of the expected tags: {}",
        expected.join(", ")
    );
    ErrorItem::new("union_tag_invalid", &Loc::ROOT, msg)
}

/// A key of the frame object, borrowed from the text unless it has escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// `ref` and `version` as read so far; each may appear once.
#[derive(Default)]
struct EnvelopeKeys {
    reference: Option<Option<String>>,
    version: Option<Option<i64>>,
}

impl EnvelopeKeys {
    /// Reads the value of `key` when it is an envelope key; `false` when it is not one.
    fn read<'de, A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error> {
        match key {
            "ref" if self.reference.is_none() => {
                self.reference = Some(map.next_value_seed(StrictSeed(PhantomData))?);
            }
            "version" if self.version.is_none() => {
                self.version = Some(map.next_value_seed(StrictSeed(PhantomData))?);
            }
            "ref" | "version" => return Err(de::Error::duplicate_field("envelope key")),
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn finish(self) -> Envelope {
        Envelope {
            version: self.version.flatten(),
            reference: self.reference.flatten(),
        }
    }
}

/// Reads the frame object: the envelope and any key before `action` first, then, once the
/// action is known, the message from the keys kept so far and the rest of the object.
struct FrameVisitor<M>(PhantomData<M>);

impl<'de, M: Messages> Visitor<'de> for FrameVisitor<M> {
    type Value = Framed<M>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a frame object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Framed<M>, A::Error> {
        let mut envelope = EnvelopeKeys::default();
        let mut early: Vec<(Cow<'de, str>, &'de RawValue)> = Vec::new();
        while let Some(Key(key)) = map.next_key()? {
            if envelope.read(&key, &mut map)? {
                continue;
            }
            if key != "action" {
                early.push((key, map.next_value()?));
                continue;
            }
            let Key(action) = map.next_value()?;
            if !M::ACTIONS.contains(&&*action) {
                return Err(de::Error::unknown_variant(&action, M::ACTIONS));
            }
            let fields = Fields {
                early: early.into_iter(),
                pending: None,
                map,
                envelope: &mut envelope,
            };
            let message =
                M::deserialize_message(&action, de::value::MapAccessDeserializer::new(fields))?;
            return Ok(Framed {
                message,
                envelope: envelope.finish(),
            });
        }
        Err(de::Error::missing_field("action"))
    }
}

/// The message's fields: the keys kept before `action`, then the rest of the frame object,
/// with the envelope keys taken out.
struct Fields<'e, 'de, A> {
    early: std::vec::IntoIter<(Cow<'de, str>, &'de RawValue)>,
    /// The value of the early key just handed out.
    pending: Option<&'de RawValue>,
    map: A,
    envelope: &'e mut EnvelopeKeys,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Fields<'_, 'de, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        if let Some((key, value)) = self.early.next() {
            self.pending = Some(value);
            return seed.deserialize(key.into_deserializer()).map(Some);
        }
        while let Some(Key(key)) = self.map.next_key()? {
            if self.envelope.read(&key, &mut self.map)? {
                continue;
            }
            if key == "action" {
                return Err(de::Error::duplicate_field("action"));
            }
            return seed.deserialize(key.into_deserializer()).map(Some);
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        match self.pending.take() {
            Some(raw) => {
                let mut deserializer = serde_json::Deserializer::from_str(raw.get());
                seed.deserialize(Strict(&mut deserializer))
                    .map_err(de::Error::custom)
            }
            None => self.map.next_value_seed(StrictSeed(seed)),
        }
    }
}

/// A deserializer that reads through another one, with pydantic's strictness where serde's
/// derives are lenient: a struct only from a JSON object (never from an array), and an
/// enumeration only from a string (never from a one-key object). Everything else is passed
/// through, and every nested value is read through `Strict` as well.
///
/// serde_json calls `visit_enum` only from `deserialize_enum`, which `Strict` answers itself,
/// so enum access is passed through unwrapped.
pub struct Strict<D>(pub D);

/// A seed whose deserializer is wrapped in [`Strict`].
struct StrictSeed<S>(S);

/// A visitor whose nested deserializers are wrapped in [`Strict`].
struct StrictVisitor<V>(V);

/// An enumeration visitor that only admits a string naming a unit variant.
struct StringVariant<V>(V);

macro_rules! forward {
    ($($method:ident)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
                self.0.$method(StrictVisitor(visitor))
            }
        )*
    };
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Strict<D> {
    type Error = D::Error;

    forward! {
        deserialize_any deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32
        deserialize_i64 deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32
        deserialize_u64 deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char
        deserialize_str deserialize_string deserialize_bytes deserialize_byte_buf
        deserialize_option deserialize_unit deserialize_seq deserialize_map
        deserialize_identifier deserialize_ignored_any
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_unit_struct(name, StrictVisitor(visitor))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0
            .deserialize_newtype_struct(name, StrictVisitor(visitor))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_tuple(len, StrictVisitor(visitor))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0
            .deserialize_tuple_struct(name, len, StrictVisitor(visitor))
    }

    /// Objects only: pydantic refuses an array where a model is expected.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_map(StrictVisitor(visitor))
    }

    /// Strings only: generated enumerations are string enumerations.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_str(StringVariant(visitor))
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for StrictSeed<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
        self.0.deserialize(Strict(deserializer))
    }
}

macro_rules! forward_visit {
    ($($method:ident($ty:ty))*) => {
        $(
            fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
                self.0.$method(v)
            }
        )*
    };
}

impl<'de, V: Visitor<'de>> Visitor<'de> for StrictVisitor<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }

    forward_visit! {
        visit_bool(bool) visit_i64(i64) visit_i128(i128) visit_u64(u64) visit_u128(u128)
        visit_f64(f64) visit_char(char) visit_str(&str) visit_borrowed_str(&'de str)
        visit_string(String) visit_bytes(&[u8]) visit_borrowed_bytes(&'de [u8])
        visit_byte_buf(Vec<u8>)
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.0.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.0.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        self.0.visit_some(Strict(deserializer))
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<V::Value, D::Error> {
        self.0.visit_newtype_struct(Strict(deserializer))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.0.visit_seq(StrictSeq(seq))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.0.visit_map(StrictMap(map))
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        self.0.visit_enum(data)
    }
}

impl<'de, V: Visitor<'de>> Visitor<'de> for StringVariant<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<V::Value, E> {
        self.0.visit_enum(v.into_deserializer())
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<V::Value, E> {
        self.0
            .visit_enum(de::value::BorrowedStrDeserializer::new(v))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<V::Value, E> {
        self.0.visit_enum(v.into_deserializer())
    }
}

/// Array elements read through [`Strict`].
struct StrictSeq<A>(A);

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for StrictSeq<A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        self.0.next_element_seed(StrictSeed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

/// Object entries read through [`Strict`].
struct StrictMap<A>(A);

impl<'de, A: MapAccess<'de>> MapAccess<'de> for StrictMap<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        self.0.next_key_seed(StrictSeed(seed))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.0.next_value_seed(StrictSeed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;
    use crate::decode::{self, Decode};

    #[derive(Debug, PartialEq, Deserialize)]
    struct Payload {
        message: String,
        #[serde(default)]
        room_name: Option<String>,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Mood {
        Calm,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    struct Say {
        payload: Payload,
        #[serde(default, deserialize_with = "present")]
        mood: Option<Mood>,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    struct Ping {
        #[serde(default)]
        payload: (),
    }

    #[derive(Debug, PartialEq)]
    enum In {
        Ping(Ping),
        Say(Say),
    }

    impl Messages for In {
        const ACTIONS: &'static [&'static str] = &["ping", "say"];

        fn deserialize_message<'de, D: Deserializer<'de>>(
            action: &str,
            fields: D,
        ) -> Result<Self, D::Error> {
            match action {
                "ping" => Deserialize::deserialize(fields).map(Self::Ping),
                "say" => Deserialize::deserialize(fields).map(Self::Say),
                _ => Err(walker_only(action)),
            }
        }

        fn decode_message(
            action: &str,
            frame: &Value,
            loc: &Loc<'_>,
            errors: &mut Vec<ErrorItem>,
        ) -> Option<Self> {
            let object = decode::object(frame, "frame", loc, errors)?;
            match action {
                "ping" => {
                    let payload = decode::optional(object, "payload", loc, errors);
                    Some(Self::Ping(Ping { payload: payload? }))
                }
                _ => {
                    let payload = decode::required::<Value>(object, "payload", loc, errors)?;
                    let payload_loc = loc.key("payload");
                    let inner = decode::object(&payload, "Payload", &payload_loc, errors)?;
                    let message = decode::required(inner, "message", &payload_loc, errors);
                    let room_name = decode::optional(inner, "room_name", &payload_loc, errors);
                    let mood: Option<Option<String>> =
                        decode::omittable(object, "mood", loc, errors);
                    let mood = match mood?.as_deref() {
                        None => None,
                        Some("calm") => Some(Mood::Calm),
                        Some(_) => {
                            errors.push(decode::enum_error(&["calm"], &loc.key("mood")));
                            return None;
                        }
                    };
                    Some(Self::Say(Say {
                        payload: Payload {
                            message: message?,
                            room_name: room_name?,
                        },
                        mood,
                    }))
                }
            }
        }
    }

    fn say(message: &str) -> In {
        In::Say(Say {
            payload: Payload {
                message: message.into(),
                room_name: None,
            },
            mood: None,
        })
    }

    #[test]
    fn keys_in_any_order_with_the_envelope() {
        for text in [
            r#"{"action":"say","payload":{"message":"hi"},"ref":"r","version":1}"#,
            r#"{"ref":"r","payload":{"message":"hi"},"extra":[1,{}],"action":"say","version":1}"#,
            r#"{"version":1,"payload":{"message":"hi"},"action":"say","ref":"r"}"#,
        ] {
            let framed = deserialize_text::<In>(text);
            let framed = framed.unwrap_or_else(|| panic!("{text} was refused"));
            assert_eq!(framed.message, say("hi"));
            assert_eq!(framed.envelope.reference.as_deref(), Some("r"));
            assert_eq!(framed.envelope.version, Some(1));
        }
        let ping = deserialize_text::<In>(r#"{"action":"ping","payload":null,"ref":null}"#);
        assert_eq!(
            ping.map(|f| f.message),
            Some(In::Ping(Ping { payload: () }))
        );
    }

    #[test]
    fn serde_refuses_what_pydantic_refuses() {
        for text in [
            // A struct from an array, an enumeration from an object.
            r#"{"action":"say","payload":["hi",null]}"#,
            r#"{"action":"say","payload":{"message":"hi"},"mood":{"calm":null}}"#,
            // `null` where the schema has no `null`.
            r#"{"action":"say","payload":{"message":"hi"},"mood":null}"#,
            r#"{"action":"ping","payload":1}"#,
            r#"{"action":"ping","version":1.5}"#,
            r#"{"action":"shout"}"#,
            r#"["ping"]"#,
            r#"{"action":"ping"} x"#,
        ] {
            assert!(
                deserialize_text::<In>(text).is_none(),
                "{text} was accepted"
            );
            assert!(
                decode_text::<In>(text).is_err(),
                "{text} was accepted by the walker"
            );
        }
    }

    #[test]
    fn the_walker_reports_what_serde_refused() {
        let errors = decode_text::<In>(r#"{"action":"say","payload":{"message":1}}"#).err();
        let first = errors
            .as_deref()
            .and_then(<[ErrorItem]>::first)
            .map(|e| e.kind.clone());
        assert_eq!(first.as_deref(), Some("string_type"));
        // A duplicate key is refused by serde, and the walker keeps the last one.
        let duplicate = decode_text::<In>(r#"{"action":"ping","payload":5,"payload":null}"#);
        assert_eq!(
            duplicate.map(|f| f.message),
            Ok(In::Ping(Ping { payload: () }))
        );
    }

    #[test]
    fn lengths_are_checked_in_characters() {
        #[derive(Debug, Deserialize)]
        struct Limited {
            #[serde(deserialize_with = "text::<_, _, 1, 4>")]
            name: String,
            #[serde(default, deserialize_with = "present_text::<_, 0, 2>")]
            code: Option<String>,
            #[serde(default, deserialize_with = "text::<_, _, 2, { usize::MAX }>")]
            note: Option<String>,
        }
        let read = |text: &str| serde_json::from_str::<Limited>(text).ok();
        assert_eq!(
            read(r#"{"name":"café"}"#).map(|l| l.name),
            Some("café".into())
        );
        assert!(read(r#"{"name":""}"#).is_none());
        assert!(read(r#"{"name":"cafés"}"#).is_none());
        assert!(read(r#"{"name":"a","code":null}"#).is_none());
        assert!(read(r#"{"name":"a","code":"abc"}"#).is_none());
        assert!(read(r#"{"name":"a","note":"x"}"#).is_none());
        let full = read(r#"{"name":"a","code":"ab","note":null}"#);
        assert_eq!(
            full.map(|l| (l.code, l.note)),
            Some((Some("ab".into()), None))
        );
    }

    #[test]
    fn decoded_strings_are_the_same_on_both_paths() {
        let text = r#"{"action":"say","payload":{"message":"a\"\u00e9\n"}}"#;
        let fast = deserialize_text::<In>(text).map(|f| f.message);
        let frame: Value = serde_json::from_str(text).unwrap_or_default();
        let slow = decode_value::<In>(&frame).ok().map(|f| f.message);
        assert_eq!(fast, slow);
        assert_eq!(fast, Some(say("a\"é\n")));
        let _ = String::decode(&Value::Null, &Loc::ROOT, &mut Vec::new());
    }
}
