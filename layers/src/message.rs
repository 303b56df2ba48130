//! The unit that travels through a channel layer.
//!
//! A message is a JSON-compatible map with string keys, the same shape the Python layers carry.
//! It is immutable once built and shared behind an `Arc`, because one `group_send` reaches many
//! receivers: every receiver gets a clone of the pointer, never a copy of the map. The two costly
//! renderings a broadcast needs are memoised inside the shared part so they happen once per
//! message, whatever the number of receivers:
//! - the msgpack encoding sent to Redis ([`Message::to_msgpack`]);
//! - the JSON text of one field, typically the outgoing WebSocket frame under `"message"`
//!   ([`Message::field_json`]).

use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::LayerError;

/// A message as it travels through a layer: a JSON-compatible map with string keys. Cheap to
/// clone (an `Arc` inside).
#[derive(Clone)]
pub struct Message {
    inner: Arc<Inner>,
}

struct Inner {
    map: Map<String, Value>,
    /// msgpack encoding, computed on first use and then shared.
    msgpack: OnceLock<Bytes>,
    /// JSON text of individual fields, computed on first use. A broadcast usually asks for one
    /// field (`"message"`), so a short vector beats a hash map; the lock is held only for a
    /// lookup or an insert, never while serialising.
    fields: Mutex<Vec<(String, Arc<str>)>>,
}

impl Message {
    /// Wraps a map as a message.
    pub fn new(map: Map<String, Value>) -> Self {
        Self {
            inner: Arc::new(Inner {
                map,
                msgpack: OnceLock::new(),
                fields: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Builds a message from a JSON value, which must be an object.
    pub fn from_value(value: Value) -> Result<Self, LayerError> {
        match value {
            Value::Object(map) => Ok(Self::new(map)),
            other => Err(LayerError::NotAnObject {
                found: json_type(&other),
            }),
        }
    }

    /// The message's fields.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.inner.map
    }

    /// One field of the message.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.inner.map.get(key)
    }

    /// The msgpack encoding (`rmp_serde::to_vec_named`, a map with string keys, as Python's
    /// `msgpack.packb` writes it). Encoded once per message; later calls share the bytes.
    pub fn to_msgpack(&self) -> Result<Bytes, LayerError> {
        if let Some(bytes) = self.inner.msgpack.get() {
            return Ok(bytes.clone());
        }
        let bytes =
            Bytes::from(rmp_serde::to_vec_named(&self.inner.map).map_err(LayerError::Encode)?);
        // Two threads may race to encode; both produce the same bytes and the first one wins.
        Ok(self.inner.msgpack.get_or_init(|| bytes).clone())
    }

    /// Decodes a msgpack map with string keys.
    pub fn from_msgpack(bytes: &[u8]) -> Result<Self, LayerError> {
        let map: Map<String, Value> = rmp_serde::from_slice(bytes).map_err(LayerError::Decode)?;
        Ok(Self::new(map))
    }

    /// JSON text of one field (e.g. `"message"`), computed once per message and shared by every
    /// receiver in this process. `None` when the field is absent.
    pub fn field_json(&self, key: &str) -> Option<Arc<str>> {
        let value = self.inner.map.get(key)?;
        if let Some(text) = self.cached_field(key) {
            return Some(text);
        }
        // Serialise outside the lock: a big payload must not stall other receivers.
        let text: Arc<str> = Arc::from(value.to_string());
        let mut fields = lock(&self.inner.fields);
        if let Some((_, existing)) = fields.iter().find(|(k, _)| k == key) {
            return Some(existing.clone());
        }
        fields.push((key.to_owned(), text.clone()));
        Some(text)
    }

    fn cached_field(&self, key: &str) -> Option<Arc<str>> {
        lock(&self.inner.fields)
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, text)| text.clone())
    }

    /// Whether two handles share the same underlying message (no copy was made).
    pub fn ptr_eq(&self, other: &Message) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Message").field(&self.inner.map).finish()
    }
}

impl PartialEq for Message {
    fn eq(&self, other: &Self) -> bool {
        self.inner.map == other.inner.map
    }
}

impl From<Map<String, Value>> for Message {
    fn from(map: Map<String, Value>) -> Self {
        Self::new(map)
    }
}

/// Locks a mutex, recovering from poisoning: the data behind our locks stays consistent at every
/// step (a panic elsewhere cannot leave a half-written cache entry), so a poisoned lock is safe to
/// reuse and the layer must keep carrying messages.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn msgpack_round_trip_and_memo() {
        let m = Message::from_value(json!({"type": "x", "n": 1, "nested": {"a": [1, 2.5, null]}}))
            .unwrap();
        let a = m.to_msgpack().unwrap();
        let b = m.to_msgpack().unwrap();
        assert_eq!(a.as_ptr(), b.as_ptr(), "encoded once and shared");
        let back = Message::from_msgpack(&a).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn field_json_is_shared() {
        let m =
            Message::from_value(json!({"message": {"action": "pong", "payload": null}})).unwrap();
        let a = m.field_json("message").unwrap();
        let b = m.field_json("message").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(&*a, r#"{"action":"pong","payload":null}"#);
        assert!(m.field_json("missing").is_none());
    }

    #[test]
    fn from_value_rejects_non_objects() {
        assert!(matches!(
            Message::from_value(json!([1])),
            Err(LayerError::NotAnObject { found: "an array" })
        ));
    }
}
