//! The two ways a frame is read agree: serde in one pass (`deserialize_text`, what a valid frame
//! costs) and the reporting decoder (`decode_value`, what builds the error report). For every
//! example of the document, every row of the error table, and a few thousand generated frames,
//! valid and not, both accept or both refuse, and when they accept they decode the same value.
//!
//! The generated frames come from a fixed seed, so a failure reproduces; the printed frame is
//! the one to add to `decoder.rs` once understood.

use std::fmt::Debug;

use protocol_runtime::{Framed, Messages};
use room_chat_protocol::room_chat::{Incoming, Outgoing};
use room_chat_protocol::SPEC_YAML;
use serde_json::{json, Map, Value};

/// What each path made of `text`: serde's result, and the reporting decoder's (`None` when the
/// text is not JSON at all).
fn both<M: Messages>(text: &str) -> (Option<Framed<M>>, Option<bool>, Option<Framed<M>>) {
    let fast = protocol_runtime::deserialize_text::<M>(text);
    match serde_json::from_str::<Value>(text) {
        Err(_) => (fast, None, None),
        Ok(value) => {
            let slow = protocol_runtime::decode_value::<M>(&value);
            (fast, Some(slow.is_ok()), slow.ok())
        }
    }
}

/// Asserts agreement; returns whether the frame was accepted.
fn agree<M: Messages + PartialEq + Debug>(text: &str) -> bool {
    let (fast, walker_accepts, slow) = both::<M>(text);
    match (&fast, walker_accepts) {
        (Some(_), Some(true)) => assert_eq!(fast, slow, "the paths decode {text} differently"),
        (None, None | Some(false)) => {}
        (Some(_), _) => panic!("serde accepts {text}, the reporting decoder refuses it"),
        // By design for a message that holds a union (see `protocol_runtime::frame`).
        (None, Some(true)) if walker_only().iter().any(|a| action_of(text) == *a) => {}
        (None, Some(true)) => panic!("the reporting decoder accepts {text}, serde refuses it"),
    }
    // What callers use: serde's value when it has one, else the decoder's.
    let decoded = protocol_runtime::decode_text::<M>(text).ok();
    assert_eq!(decoded, fast.or(slow), "{text}");
    walker_accepts == Some(true)
}

fn action_of(text: &str) -> String {
    let value: Value = serde_json::from_str(text).unwrap_or_default();
    value["action"].as_str().unwrap_or_default().to_owned()
}

/// The actions whose frames hold a union (`oneOf` of several types), which only the reporting
/// decoder reads: serde's `untagged` is more lenient than the contract.
fn walker_only() -> Vec<String> {
    use asyncapi_codegen::ir::{TypeKind, TypeRef};
    let api = asyncapi_codegen::analyse(SPEC_YAML).unwrap_or_else(|e| panic!("{e}"));
    let kind = |name: &str| api.types.iter().find(|t| t.name == name).map(|t| &t.kind);
    fn names(ty: &TypeRef, out: &mut Vec<String>) {
        match ty {
            TypeRef::Named { name } => out.push(name.clone()),
            TypeRef::Array { item } => names(item, out),
            TypeRef::Nullable { inner } => names(inner, out),
            _ => {}
        }
    }
    let holds_union = |start: &str| {
        let mut pending = vec![start.to_owned()];
        let mut seen = Vec::new();
        while let Some(name) = pending.pop() {
            if seen.contains(&name) {
                continue;
            }
            match kind(&name) {
                Some(TypeKind::Untagged { .. }) => return true,
                Some(TypeKind::Struct { fields }) => {
                    fields.iter().for_each(|f| names(&f.ty, &mut pending));
                }
                _ => {}
            }
            seen.push(name);
        }
        false
    };
    let mut out: Vec<String> = api
        .channels
        .iter()
        .flat_map(|c| &c.messages)
        .filter(|m| holds_union(&m.frame_type))
        .map(|m| m.action.clone())
        .collect();
    out.sort();
    out
}

#[test]
fn only_the_error_message_is_left_to_the_reporting_decoder() {
    assert_eq!(walker_only(), ["error"]);
}

#[test]
fn every_example_of_the_document() {
    let api = asyncapi_codegen::analyse(SPEC_YAML).unwrap_or_else(|e| panic!("{e}"));
    let mut accepted = 0;
    for channel in &api.channels {
        for message in &channel.messages {
            for example in &message.examples {
                let text = example.payload.to_string();
                let incoming = channel.incoming.iter().any(|u| u.action == message.action);
                let ok = if incoming {
                    agree::<Incoming>(&text)
                } else {
                    agree::<Outgoing>(&text)
                };
                assert!(ok, "example {text} is refused");
                accepted += 1;
            }
        }
    }
    assert!(accepted >= 10, "only {accepted} examples");
}

#[test]
fn every_row_of_the_error_table() {
    for text in [
        "",
        "hello",
        "\u{0}",
        "[]",
        "5",
        "\"ping\"",
        "null",
        "{}",
        r#"{"payload":{"message":"hi"}}"#,
        r#"{"action":"shout"}"#,
        r#"{"action":5}"#,
        r#"{"action":"room_chat"}"#,
        r#"{"action":"room_chat","payload":{}}"#,
        r#"{"action":"room_chat","payload":{"message":1}}"#,
        r#"{"action":"room_chat","payload":{"message":1},"ref":2}"#,
        r#"{"action":"ping","payload":5}"#,
        r#"{"action":"ping","payload":{}}"#,
        r#"{"action":"ping","version":"1"}"#,
    ] {
        assert!(!agree::<Incoming>(text), "{text} is accepted");
    }
    for text in [
        r#"{"action":"ping"}"#,
        r#"{"action":"ping","payload":null,"ref":"r1","version":1}"#,
        r#"{"action":"room_chat","payload":{"message":"hi","room_name":"elsewhere"}}"#,
        r#"{"payload":{"message":"hi"},"extra":{"deep":[1,{"x":null}]},"action":"room_chat"}"#,
    ] {
        assert!(agree::<Incoming>(text), "{text} is refused");
    }
}

/// A small deterministic generator (xorshift64*), so that the test needs no dependency and
/// every run sees the same frames.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap_or(0)
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn text(&mut self) -> String {
        let pieces = [
            "hi", "", " ", "é", "💬", "\"", "\\", "\n", "\u{1}", "ref", "null", "0",
        ];
        (0..self.below(4)).map(|_| *self.pick(&pieces)).collect()
    }

    /// Any JSON value, a few levels deep.
    fn value(&mut self, depth: usize) -> Value {
        match self.below(if depth == 0 { 6 } else { 8 }) {
            0 => Value::Null,
            1 => json!(self.chance(50)),
            2 => json!(self.below(1000) as i64 - 500),
            3 => json!(1.5),
            4 => json!(self.text()),
            5 => json!(u64::MAX),
            6 => Value::Array((0..self.below(3)).map(|_| self.value(depth - 1)).collect()),
            _ => {
                let mut map = Map::new();
                for _ in 0..self.below(3) {
                    map.insert(self.text(), self.value(depth - 1));
                }
                Value::Object(map)
            }
        }
    }

    /// A value that is not a string.
    fn not_string(&mut self) -> Value {
        loop {
            let v = self.value(2);
            if !v.is_string() {
                return v;
            }
        }
    }

    /// `entries` in a random order.
    fn object(&mut self, mut entries: Vec<(String, Value)>) -> Value {
        let mut map = Map::new();
        while !entries.is_empty() {
            let (key, value) = entries.swap_remove(self.below(entries.len()));
            map.insert(key, value);
        }
        Value::Object(map)
    }
}

/// A frame of the room chat channel, valid unless `break_it`, in which case one thing about it
/// is wrong (sometimes in a way the contract still allows, which is fine: both paths must
/// agree either way).
fn frame(rng: &mut Rng, break_it: bool) -> String {
    let mut entries: Vec<(String, Value)> = Vec::new();
    let chat = rng.chance(50);
    entries.push((
        "action".into(),
        json!(if chat { "room_chat" } else { "ping" }),
    ));
    if chat {
        let mut payload = vec![("message".to_owned(), json!(rng.text()))];
        match rng.below(3) {
            0 => {}
            1 => payload.push(("room_name".into(), Value::Null)),
            _ => payload.push(("room_name".into(), json!(rng.text()))),
        }
        if rng.chance(30) {
            payload.push((rng.text(), rng.value(2)));
        }
        let payload = rng.object(payload);
        entries.push(("payload".into(), payload));
    } else if rng.chance(50) {
        entries.push(("payload".into(), Value::Null));
    }
    match rng.below(3) {
        0 => {}
        1 => entries.push(("ref".into(), Value::Null)),
        _ => entries.push(("ref".into(), json!(rng.text()))),
    }
    match rng.below(3) {
        0 => {}
        1 => entries.push(("version".into(), Value::Null)),
        _ => entries.push(("version".into(), json!(rng.below(3)))),
    }
    if rng.chance(30) {
        let key = format!("x{}", rng.text());
        entries.push((key, rng.value(3)));
    }
    if break_it {
        breakage(rng, &mut entries, chat);
    }
    rng.object(entries).to_string()
}

fn set(entries: &mut Vec<(String, Value)>, key: &str, value: Value) {
    entries.retain(|(k, _)| k != key);
    entries.push((key.to_owned(), value));
}

fn breakage(rng: &mut Rng, entries: &mut Vec<(String, Value)>, chat: bool) {
    match rng.below(9) {
        0 => entries.retain(|(k, _)| k != "action"),
        1 => {
            let action = if rng.chance(50) {
                json!(rng.text())
            } else {
                rng.not_string()
            };
            set(entries, "action", action);
        }
        2 => set(entries, "ref", rng.not_string()),
        3 => {
            let versions = [
                json!(1.5),
                json!("1"),
                json!(true),
                json!([]),
                json!(u64::MAX),
            ];
            let version = rng.pick(&versions).clone();
            set(entries, "version", version);
        }
        4 if chat => entries.retain(|(k, _)| k != "payload"),
        5 if chat => {
            let payloads = [
                json!(["hi", null]),
                json!("hi"),
                json!([{"message": "hi"}]),
                json!({}),
            ];
            let payload = rng.pick(&payloads).clone();
            set(entries, "payload", payload);
        }
        6 if chat => {
            let message = rng.not_string();
            set(entries, "payload", json!({"message": message}));
        }
        7 if chat => {
            let room_name = rng.not_string();
            set(
                entries,
                "payload",
                json!({"message": "hi", "room_name": room_name}),
            );
        }
        _ if !chat => set(entries, "payload", rng.value(2)),
        _ => set(entries, "payload", rng.value(2)),
    }
}

#[test]
fn thousands_of_generated_frames() {
    let mut rng = Rng(0x5EED_C4A7);
    let (mut accepted, mut refused) = (0, 0);
    for i in 0..4000 {
        let text = frame(&mut rng, i % 2 == 1);
        if agree::<Incoming>(&text) {
            accepted += 1;
        } else {
            refused += 1;
        }
    }
    // The generator must exercise both outcomes, or the agreement means little.
    assert!(
        accepted > 1500 && refused > 1000,
        "{accepted} accepted, {refused} refused"
    );
}

#[test]
fn outgoing_frames_agree_too() {
    let mut rng = Rng(0xB0A7);
    for _ in 0..500 {
        let action = *rng.pick(&[
            "room_notification",
            "pong",
            "complete",
            "group_complete",
            "error",
        ]);
        let text = rng.text();
        let payloads = [
            json!({"message": text, "room_name": "r"}),
            Value::Null,
            json!([]),
            json!({"detail": "d"}),
        ];
        let payload = rng.pick(&payloads).clone();
        let notification = json!({ "action": action, "payload": payload });
        agree::<Outgoing>(&notification.to_string());
    }
}
