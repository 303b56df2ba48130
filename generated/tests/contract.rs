//! The generated code honours the contract it was generated from: every example of the document
//! decodes (with the generated decoder and with serde) and re-encodes to itself, validates against
//! its message's schema, the schemars schemas of the generated types agree with the document's
//! schemas, and the runtime's own `error` frames are valid `error` messages.

use std::collections::BTreeSet;

use asyncapi_codegen::ir;
use room_chat_protocol::room_chat::{Incoming, Outgoing};
use room_chat_protocol::runtime::{failure_frame, rejection_frame, ErrorItem, Framed, Loc};
use room_chat_protocol::SPEC_YAML;
use room_chat_protocol::{ErrorPayload, LocPart};
use serde_json::Value;

fn api() -> ir::Api {
    asyncapi_codegen::analyse(SPEC_YAML).unwrap_or_else(|e| panic!("{e}"))
}

fn channel(api: &ir::Api) -> &ir::Channel {
    api.channels
        .iter()
        .find(|c| c.id == "room_chat")
        .unwrap_or_else(|| panic!("no room_chat channel"))
}

/// The document as JSON, for following `$ref`s by JSON pointer.
fn document() -> Value {
    serde_yaml::from_str(SPEC_YAML).unwrap_or_else(|e| panic!("{e}"))
}

fn validator(schema: &Value) -> jsonschema::Validator {
    jsonschema::validator_for(schema).unwrap_or_else(|e| panic!("invalid schema {schema}: {e}"))
}

fn problems(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn every_example_decodes_and_re_encodes_to_itself() {
    let api = api();
    let channel = channel(&api);
    let incoming: BTreeSet<&str> = channel.incoming.iter().map(|u| u.action.as_str()).collect();
    let outgoing: BTreeSet<&str> = channel.outgoing.iter().map(|u| u.action.as_str()).collect();
    let mut checked = 0;
    for message in &channel.messages {
        assert!(
            !message.examples.is_empty(),
            "message `{}` has no example",
            message.id
        );
        for example in &message.examples {
            let name = format!("{}/{}", message.id, example.name.as_deref().unwrap_or("?"));
            let frame = &example.payload;
            assert_eq!(
                frame["action"],
                message.action.as_str(),
                "{name}: wrong action"
            );
            let encoded = if incoming.contains(message.action.as_str()) {
                let decoded =
                    Incoming::decode_value(frame).unwrap_or_else(|e| panic!("{name}: {e:?}"));
                let by_serde: Framed<Incoming> =
                    serde_json::from_value(frame.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(decoded, by_serde, "{name}: decoder and serde disagree");
                serde_json::to_value(&decoded)
            } else {
                assert!(
                    outgoing.contains(message.action.as_str()),
                    "{name}: in no direction"
                );
                let decoded =
                    Outgoing::decode_value(frame).unwrap_or_else(|e| panic!("{name}: {e:?}"));
                let by_serde: Framed<Outgoing> =
                    serde_json::from_value(frame.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(decoded, by_serde, "{name}: decoder and serde disagree");
                serde_json::to_value(&decoded)
            };
            assert_eq!(
                encoded.ok().as_ref(),
                Some(frame),
                "{name}: does not re-encode to itself"
            );
            checked += 1;
        }
    }
    assert!(checked >= 12, "only {checked} examples checked");
}

#[test]
fn every_example_validates_against_its_schema() {
    let api = api();
    for message in &channel(&api).messages {
        let validator = validator(&message.payload_schema);
        for example in &message.examples {
            let found = problems(&validator, &example.payload);
            assert!(
                found.is_empty(),
                "{}/{:?}: {found:?}",
                message.id,
                example.name
            );
        }
    }
}

/// The schemas really constrain: a frame that breaks one is refused by the validator.
#[test]
fn schemas_refuse_broken_frames() {
    let api = api();
    let messages = &channel(&api).messages;
    let schema = |action: &str| {
        let message = messages.iter().find(|m| m.action == action);
        validator(
            &message
                .unwrap_or_else(|| panic!("no {action}"))
                .payload_schema,
        )
    };
    let chat = schema("room_chat");
    for bad in [
        serde_json::json!({"action": "room_chat"}),
        serde_json::json!({"action": "room_chat", "payload": {}}),
        serde_json::json!({"action": "room_chat", "payload": {"message": 5}}),
        serde_json::json!({"action": "ping", "payload": {"message": "hi"}}),
    ] {
        assert!(!problems(&chat, &bad).is_empty(), "{bad} was accepted");
    }
    assert!(!problems(
        &schema("ping"),
        &serde_json::json!({"action": "ping", "payload": 1})
    )
    .is_empty());
}

/// The runtime's error frames are valid `error` messages, and decode as one.
#[test]
fn runtime_error_frames_are_valid_error_messages() {
    let api = api();
    let error = channel(&api)
        .messages
        .iter()
        .find(|m| m.action == "error")
        .unwrap_or_else(|| panic!("no error message"));
    let validator = validator(&error.payload_schema);
    let mut frames = vec![failure_frame("room_chat"), failure_frame("ping")];
    for text in [
        "",
        "not json",
        "[]",
        "{}",
        r#"{"action":"shout"}"#,
        r#"{"action":"room_chat"}"#,
        r#"{"action":"room_chat","payload":{"message":1},"ref":2}"#,
        r#"{"action":"ping","payload":5}"#,
    ] {
        let errors = Incoming::decode_text(text)
            .err()
            .unwrap_or_else(|| panic!("{text:?} decoded"));
        frames.push(rejection_frame(&errors));
    }
    for frame in frames {
        let value: Value = serde_json::from_str(&frame).unwrap_or_else(|e| panic!("{frame}: {e}"));
        let found = problems(&validator, &value);
        assert!(found.is_empty(), "{frame}: {found:?}");
        let decoded = Outgoing::decode_text(&frame).unwrap_or_else(|e| panic!("{frame}: {e:?}"));
        assert!(matches!(decoded.message, Outgoing::Error(_)), "{frame}");
    }
}

/// The runtime reports array positions as integers (`["draw", "payload", "points", 2]`): the
/// contract admits them, and the generated types read them back as `LocPart::Index`.
#[test]
fn error_locations_with_array_positions_are_valid() {
    let api = api();
    let error = channel(&api)
        .messages
        .iter()
        .find(|m| m.action == "error")
        .unwrap_or_else(|| panic!("no error message"));
    let validator = validator(&error.payload_schema);
    let root = Loc::ROOT;
    let action = root.key("room_chat");
    let payload = action.key("payload");
    let item = payload.index(2);
    let frame = rejection_frame(&[ErrorItem::new(
        "string_type",
        &item,
        "Input should be a valid string",
    )]);
    let value: Value = serde_json::from_str(&frame).unwrap_or_else(|e| panic!("{frame}: {e}"));
    assert_eq!(
        value["payload"][0]["loc"],
        serde_json::json!(["room_chat", "payload", 2])
    );
    let found = problems(&validator, &value);
    assert!(found.is_empty(), "{frame}: {found:?}");
    let decoded = Outgoing::decode_text(&frame).unwrap_or_else(|e| panic!("{frame}: {e:?}"));
    let Outgoing::Error(message) = decoded.message else {
        panic!("{frame} is not an error");
    };
    let ErrorPayload::ValidationErrors(items) = message.payload else {
        panic!("{frame} lists no problems");
    };
    assert_eq!(
        items[0].loc,
        [
            LocPart::Key("room_chat".into()),
            LocPart::Key("payload".into()),
            LocPart::Index(2)
        ]
    );
    // Anything else in `loc` is outside the contract.
    for bad in [
        serde_json::json!(true),
        serde_json::json!(1.5),
        serde_json::json!(null),
    ] {
        let mut broken = value.clone();
        broken["payload"][0]["loc"][2] = bad.clone();
        assert!(
            !problems(&validator, &broken).is_empty(),
            "{bad} was accepted"
        );
    }
}

/// What kinds of JSON value a schema admits, following `$ref`s (as JSON pointers into `root`)
/// and unions: enough to tell whether two schemas describe the same shape.
fn kinds(schema: &Value, root: &Value) -> BTreeSet<String> {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let target = reference
            .strip_prefix('#')
            .and_then(|pointer| root.pointer(pointer))
            .unwrap_or_else(|| panic!("cannot follow {reference}"));
        return kinds(target, root);
    }
    for keyword in ["oneOf", "anyOf"] {
        if let Some(alternatives) = schema.get(keyword).and_then(Value::as_array) {
            return alternatives.iter().flat_map(|a| kinds(a, root)).collect();
        }
    }
    match schema.get("type") {
        Some(Value::String(t)) => [t.clone()].into(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect(),
        _ => ["any".to_owned()].into(),
    }
}

fn object_shape(schema: &Value, root: &Value) -> (Value, BTreeSet<String>, BTreeSet<String>) {
    let schema = match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => root.pointer(&reference[1..]).cloned().unwrap_or_default(),
        None => schema.clone(),
    };
    let ignored = ["action", "ref", "version"];
    let properties: BTreeSet<String> = schema["properties"]
        .as_object()
        .map(|p| {
            p.keys()
                .filter(|k| !ignored.contains(&k.as_str()))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let required: BTreeSet<String> = schema["required"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(Value::as_str)
                .filter(|k| !ignored.contains(k))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    (schema, properties, required)
}

macro_rules! generated_schemas {
    ($($ty:ident),* $(,)?) => {
        vec![$((stringify!($ty), serde_json::to_value(schemars::schema_for!(room_chat_protocol::$ty)).unwrap_or_default())),*]
    };
}

#[test]
fn schemars_schemas_agree_with_the_document() {
    let api = api();
    let document = document();
    let generated = generated_schemas![
        PingMessage,
        PongMessage,
        RoomChatMessage,
        RoomNotificationMessage,
        RoomMessagePayload,
        RoomNotificationPayload,
        PresenceMessage,
        PresenceResultMessage,
        PresencePayload,
        Member,
        HistoryMessage,
        HistoryRequest,
        HistoryResultMessage,
        HistoryPayload,
        ErrorMessage,
        ErrorPayload,
        ErrorItem,
        LocPart,
        ErrorDetail,
        CompleteMessage,
        GroupCompleteMessage,
    ];
    let listed: BTreeSet<&str> = generated.iter().map(|(name, _)| *name).collect();
    let types: BTreeSet<&str> = api.types.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(listed, types, "list every generated type here");

    for (name, schema) in &generated {
        let typedef = api
            .types
            .iter()
            .find(|t| t.name == *name)
            .unwrap_or_else(|| panic!("{name}"));
        let spec_schema = typedef
            .pointer
            .strip_prefix('#')
            .and_then(|p| document.pointer(p))
            .unwrap_or_else(|| panic!("{name}: no schema at {}", typedef.pointer));
        assert_eq!(
            kinds(schema, schema),
            kinds(spec_schema, &document),
            "{name}: kinds differ"
        );
        let (generated_object, generated_props, generated_required) = object_shape(schema, schema);
        let (spec_object, spec_props, spec_required) = object_shape(spec_schema, &document);
        assert_eq!(generated_props, spec_props, "{name}: properties differ");
        assert_eq!(
            generated_required, spec_required,
            "{name}: required properties differ"
        );
        for property in &spec_props {
            assert_eq!(
                kinds(&generated_object["properties"][property], schema),
                kinds(&spec_object["properties"][property], &document),
                "{name}.{property}: types differ"
            );
        }
    }
}
