//! The unit that travels through a channel layer.
//!
//! A message is a JSON-compatible map with string keys, the same shape the Python layers carry.
//! It is immutable once built and shared behind an `Arc`, because one `group_send` reaches many
//! receivers: every receiver gets a clone of the pointer, never a copy of the map.
//!
//! A message is built in one of two ways:
//! - from a **map** ([`Message::new`], [`Message::from_value`], [`Message::from_msgpack`]): the
//!   generic form, what arrives from Redis and what tests and Python-shaped callers build;
//! - from a **typed value** ([`Message::typed`]): any `Serialize` struct that encodes as a map,
//!   such as the consumer runtime's broadcast envelope. It is never turned into a
//!   `serde_json::Value` on the way through: the in-memory layer hands the same value to every
//!   receiver ([`Message::downcast`]), and the Redis layers encode it straight to msgpack.
//!
//! The costly renderings are memoised inside the shared part so they happen once per message
//! per process, whatever the number of receivers: the msgpack encoding sent to Redis
//! ([`Message::to_msgpack`]), the map view of a typed message ([`Message::as_map`]), and one form
//! a receiver derives from the message ([`Message::derive`], e.g. the WebSocket frame a
//! broadcast carries). Reading a memo is an atomic load: no lock, no allocation.

use std::any::Any;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::LayerError;

/// A message as it travels through a layer: a JSON-compatible map with string keys. Cheap to
/// clone (an `Arc` inside).
#[derive(Clone)]
pub struct Message {
    inner: Arc<Inner>,
}

struct Inner {
    /// The typed value this message was built from, if any.
    typed: Option<Box<dyn TypedBody>>,
    /// The map: given at construction, or decoded from the typed value on first use.
    map: OnceLock<Map<String, Value>>,
    /// msgpack encoding, computed on first use and then shared.
    msgpack: OnceLock<Bytes>,
    /// What receivers derive from the message ([`Message::derive`]), computed by the first one.
    derived: OnceLock<Box<dyn Any + Send + Sync>>,
}

/// A typed message body: anything serde can encode as a map, kept as itself.
trait TypedBody: Send + Sync {
    fn encode(&self) -> Result<Vec<u8>, rmp_serde::encode::Error>;
    fn as_any(&self) -> &(dyn Any + Send + Sync);
}

impl<T: Serialize + Any + Send + Sync> TypedBody for T {
    fn encode(&self) -> Result<Vec<u8>, rmp_serde::encode::Error> {
        rmp_serde::to_vec_named(self)
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }
}

impl Message {
    /// Wraps a map as a message.
    pub fn new(map: Map<String, Value>) -> Self {
        Self::build(None, OnceLock::from(map), OnceLock::new())
    }

    /// Wraps a typed value. It must serialise as a map with string keys (a struct with named
    /// fields does), because that is what travels through Redis and what Python receivers read.
    pub fn typed<T: Serialize + Any + Send + Sync>(value: T) -> Self {
        Self::build(Some(Box::new(value)), OnceLock::new(), OnceLock::new())
    }

    fn build(
        typed: Option<Box<dyn TypedBody>>,
        map: OnceLock<Map<String, Value>>,
        msgpack: OnceLock<Bytes>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                typed,
                map,
                msgpack,
                derived: OnceLock::new(),
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

    /// The typed value this message was built from, when it is a `T`: how a receiver in the
    /// sending process reads a typed message without decoding anything.
    pub fn downcast<T: Any>(&self) -> Option<&T> {
        self.inner.typed.as_ref()?.as_any().downcast_ref()
    }

    /// A form derived from this message, computed by `derive` for the first receiver that asks
    /// and shared by the others (each receiver of a broadcast needs the same WebSocket frame;
    /// it is made once per message per process). `None` if another type was derived first: one
    /// message has one derived form.
    pub fn derive<T: Any + Send + Sync>(&self, derive: impl FnOnce(&Message) -> T) -> Option<&T> {
        self.inner
            .derived
            .get_or_init(|| Box::new(derive(self)))
            .downcast_ref()
    }

    /// The message's fields. For a typed message the map is decoded from its encoding on first
    /// use (tests and generic callers need it; the runtime's hot path does not).
    pub fn as_map(&self) -> &Map<String, Value> {
        self.inner.map.get_or_init(|| {
            let decoded = self
                .to_msgpack()
                .and_then(|bytes| rmp_serde::from_slice(&bytes).map_err(LayerError::Decode));
            match decoded {
                Ok(map) => map,
                Err(e) => {
                    tracing::warn!(error = %e, "a typed message does not encode as a map; it reads as empty");
                    Map::new()
                }
            }
        })
    }

    /// One field of the message.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_map().get(key)
    }

    /// The msgpack encoding (`rmp_serde::to_vec_named`, a map with string keys, as Python's
    /// `msgpack.packb` writes it). Encoded once per message; later calls share the bytes.
    pub fn to_msgpack(&self) -> Result<Bytes, LayerError> {
        if let Some(bytes) = self.inner.msgpack.get() {
            return Ok(bytes.clone());
        }
        let encoded = match (&self.inner.typed, self.inner.map.get()) {
            (Some(typed), _) => typed.encode(),
            (None, Some(map)) => rmp_serde::to_vec_named(map),
            (None, None) => rmp_serde::to_vec_named(&Map::new()),
        };
        let bytes = Bytes::from(encoded.map_err(LayerError::Encode)?);
        // Two threads may race to encode; both produce the same bytes and the first one wins.
        Ok(self.inner.msgpack.get_or_init(|| bytes).clone())
    }

    /// Decodes a msgpack map with string keys.
    pub fn from_msgpack(bytes: &[u8]) -> Result<Self, LayerError> {
        let map: Map<String, Value> = rmp_serde::from_slice(bytes).map_err(LayerError::Decode)?;
        Ok(Self::new(map))
    }

    /// Whether two handles share the same underlying message (no copy was made).
    pub fn ptr_eq(&self, other: &Message) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Message").field(self.as_map()).finish()
    }
}

impl PartialEq for Message {
    fn eq(&self, other: &Self) -> bool {
        self.as_map() == other.as_map()
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
    fn typed_messages_encode_like_maps_and_derive_once() {
        #[derive(serde::Serialize)]
        struct Envelope {
            r#type: &'static str,
            n: u32,
        }
        let typed = Message::typed(Envelope { r#type: "x", n: 7 });
        let map = Message::from_value(json!({"type": "x", "n": 7})).unwrap();
        assert_eq!(typed.to_msgpack().unwrap(), map.to_msgpack().unwrap());
        assert_eq!(typed.get("n"), Some(&json!(7)));
        assert_eq!(typed.downcast::<Envelope>().map(|e| e.n), Some(7));
        assert!(map.downcast::<Envelope>().is_none());
        let mut calls = 0;
        let first = *typed
            .derive(|_| {
                calls += 1;
                41_u8
            })
            .unwrap();
        let second = *typed
            .derive(|_| {
                calls += 1;
                42_u8
            })
            .unwrap();
        assert_eq!((first, second, calls), (41, 41, 1));
        assert!(typed.derive(|_| "other type").is_none());
    }

    #[test]
    fn from_value_rejects_non_objects() {
        assert!(matches!(
            Message::from_value(json!([1])),
            Err(LayerError::NotAnObject { found: "an array" })
        ));
    }
}
