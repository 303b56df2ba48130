//! Documents the generator refuses, and the exact message each gets: every message names the
//! JSON pointer of the node to edit and says what was expected. And no input makes it panic.

use asyncapi_codegen::{generate, GenerateError, Target};

const SPEC: &str = include_str!("../../asyncapi.yaml");

/// `asyncapi.yaml` with `from` replaced (once) by `to`; the edit must apply.
fn edited(from: &str, to: &str) -> String {
    assert!(
        SPEC.contains(from),
        "asyncapi.yaml no longer contains {from:?}"
    );
    SPEC.replacen(from, to, 1)
}

fn error_of(spec: &str) -> String {
    match generate(spec, Target::Rust) {
        Ok(_) => panic!("the document was accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_document_itself_is_accepted() {
    assert!(generate(SPEC, Target::Rust).is_ok());
}

#[test]
fn dangling_ref() {
    let spec = edited(
        "        payload:\n          $ref: '#/components/schemas/RoomMessagePayload'",
        "        payload:\n          $ref: '#/components/schemas/Missing'",
    );
    assert_eq!(error_of(&spec), "#/components/schemas/RoomChatMessage/properties/payload: `$ref` `#/components/schemas/Missing` does not resolve to anything in this document");
}

#[test]
fn dangling_message_ref_in_an_operation() {
    let spec = edited(
        "      - $ref: '#/channels/room_chat/messages/room_chat'",
        "      - $ref: '#/channels/room_chat/messages/shout'",
    );
    assert_eq!(error_of(&spec), "#/operations/handle_room_chat/messages/0: `$ref` `#/channels/room_chat/messages/shout` does not resolve to anything in this document");
}

#[test]
fn message_without_action_const() {
    let spec = edited("          const: ping\n", "");
    assert_eq!(error_of(&spec), "#/components/schemas/PingMessage: message has no `action` const; expected its payload schema to have `properties.action.const` set to the message's action name");
}

#[test]
fn two_messages_with_one_action() {
    let spec = edited("          const: pong", "          const: ping");
    assert_eq!(error_of(&spec), "#/components/messages/pong: action `ping` is already used by #/components/messages/ping on the same channel; each message needs its own action");
}

#[test]
fn parameter_missing_from_the_address() {
    let spec = edited("address: /ws/room/{room_name}", "address: /ws/room");
    assert_eq!(error_of(&spec), "#/channels/room_chat/parameters/room_name: parameter `room_name` does not appear in the channel address `/ws/room`; expected `{room_name}` in the address");
}

#[test]
fn address_parameter_not_declared() {
    let spec = edited(
        "address: /ws/room/{room_name}",
        "address: /ws/room/{room_name}/{page}",
    );
    assert_eq!(error_of(&spec), "#/channels/room_chat: the address `/ws/room/{room_name}/{page}` uses `{page}` but the channel declares no parameter `page`");
}

#[test]
fn unsupported_keyword_all_of() {
    let spec = edited(
        "    ErrorDetail:\n      title: ErrorDetail\n",
        "    ErrorDetail:\n      title: ErrorDetail\n      allOf:\n        - type: object\n",
    );
    assert_eq!(error_of(&spec), "#/components/schemas/ErrorDetail: unsupported schema keyword `allOf`; supported: type, properties, required, items, enum, const, oneOf, anyOf, title, description, default, examples, format, minLength, maxLength, discriminator and x-* extensions");
}

#[test]
fn unsupported_keyword_pattern_properties() {
    let spec = edited(
        "        room_name:\n          title: Room Name\n",
        "        room_name:\n          title: Room Name\n          patternProperties:\n            '^x': {}\n",
    );
    assert_eq!(error_of(&spec), "#/components/schemas/RoomMessagePayload/properties/room_name: unsupported schema keyword `patternProperties`; supported: type, properties, required, items, enum, const, oneOf, anyOf, title, description, default, examples, format, minLength, maxLength, discriminator and x-* extensions");
}

#[test]
fn not_yaml() {
    assert_eq!(
        error_of("asyncapi: '3.0.0\ninfo: {}\n"),
        "the document could not be read: found unexpected end of stream at line 3 column 1, while scanning a quoted scalar at line 1 column 11"
    );
}

#[test]
fn not_an_asyncapi_document() {
    assert_eq!(
        error_of("title: hello\n"),
        "the document could not be read: missing field `asyncapi`"
    );
}

#[test]
fn asyncapi_2() {
    let spec = edited("asyncapi: 3.0.0", "asyncapi: 2.6.0");
    assert_eq!(
        error_of(&spec),
        "#/asyncapi: unsupported AsyncAPI version `2.6.0`; expected 3.x"
    );
}

#[test]
fn receive_without_error_message() {
    let spec = edited(
        "      - $ref: '#/channels/room_chat/messages/error'\n  send_complete:",
        "      - $ref: '#/channels/room_chat/messages/complete'\n  send_complete:",
    );
    assert_eq!(error_of(&spec), "#/channels/room_chat: the channel receives messages but no send operation declares an `error` message; expected one, so that clients know how undecodable frames are answered");
}

#[test]
fn errors_are_comparable_values() {
    let spec = edited("asyncapi: 3.0.0", "asyncapi: 2.6.0");
    assert_eq!(
        generate(&spec, Target::Rust).err(),
        Some(GenerateError::Version {
            found: "2.6.0".into()
        })
    );
}

/// A small deterministic generator (xorshift), so the mangled documents are the same every run.
struct Mangler(u64);

impl Mangler {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n.max(1) as u64).unwrap_or_default()
    }
}

/// Deletes lines, truncates values and renames keys of `asyncapi.yaml`, hundreds of ways: the
/// generator answers each with `Ok` or `Err`, never a panic.
#[test]
fn mangled_documents_never_panic() {
    let lines: Vec<&str> = SPEC.lines().collect();
    let mut rng = Mangler(0x5eed_cafe_f00d_d00d);
    let mut refused = 0;
    // Every single line deleted, one at a time (lowering only: rendering is exercised below).
    for skip in 0..lines.len() {
        let spec: Vec<&str> = lines
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != skip)
            .map(|(_, l)| *l)
            .collect();
        let spec = spec.join("\n");
        let result = std::panic::catch_unwind(|| asyncapi_codegen::analyse(&spec));
        match result {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => refused += 1,
            Err(_) => panic!("deleting line {} panicked", skip + 1),
        }
    }
    // Random combinations of edits, through the whole generator for the first ones.
    for round in 0..300 {
        let mut mangled: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(mangled.len());
            match rng.below(4) {
                0 => {
                    mangled.remove(at);
                }
                1 => {
                    // Drop the value of a `key: value` line.
                    if let Some(colon) = mangled[at].find(": ") {
                        mangled[at].truncate(colon + 1);
                    }
                }
                2 => {
                    // Rename a key.
                    if let Some(colon) = mangled[at].find(':') {
                        mangled[at].insert(colon, 'x');
                    }
                }
                _ => {
                    // Swap two lines.
                    let other = rng.below(mangled.len());
                    mangled.swap(at, other);
                }
            }
        }
        let spec = mangled.join("\n");
        let result = if round < 40 {
            std::panic::catch_unwind(|| generate(&spec, Target::Rust).map(drop))
        } else {
            std::panic::catch_unwind(|| asyncapi_codegen::analyse(&spec).map(drop))
        };
        assert!(
            result.is_ok(),
            "mangled document #{round} panicked:\n{spec}"
        );
    }
    assert!(
        refused > 50,
        "deleting lines should break the document often, refused {refused}"
    );
}

/// `asyncapi.yaml` with `RoomMessagePayload.room_name` replaced by a property of type `Loop`,
/// defined by `definition` (indented as a component schema).
fn with_loop(definition: &str) -> String {
    let spec = edited(
        "        room_name:\n          title: Room Name\n",
        "        looped:\n          $ref: '#/components/schemas/Loop'\n        room_name:\n          title: Room Name\n",
    );
    spec.replacen(
        "  schemas:\n",
        &format!("  schemas:\n    Loop:\n{definition}"),
        1,
    )
}

#[test]
fn an_array_of_itself_is_refused() {
    let spec =
        with_loop("      type: array\n      items:\n        $ref: '#/components/schemas/Loop'\n");
    assert_eq!(error_of(&spec), "#/components/schemas/Loop: the schema contains itself through the `$ref` at #/components/schemas/Loop/items with no object or titled union in between, so it has no finite type; expected the recursion to pass through an object property");
}

#[test]
fn a_union_of_itself_is_refused() {
    let spec = with_loop(
        "      title: Loop\n      oneOf:\n        - $ref: '#/components/schemas/Loop'\n        - type: string\n        - type: integer\n",
    );
    assert_eq!(error_of(&spec), "#/components/schemas/Loop: the type `Loop` contains itself (`Loop` -> `Loop`) other than through an array, so it would have no finite size; expected the recursion to pass through an array (`type: array` with `items`)");
}

#[test]
fn a_nullable_alias_of_itself_is_refused() {
    let spec = with_loop(
        "      oneOf:\n        - $ref: '#/components/schemas/Loop'\n        - type: 'null'\n",
    );
    assert_eq!(error_of(&spec), "#/components/schemas/Loop: the schema contains itself through the `$ref` at #/components/schemas/Loop/oneOf/0 with no object or titled union in between, so it has no finite type; expected the recursion to pass through an object property");
}

#[test]
fn an_object_holding_itself_outside_an_array_is_refused() {
    let spec = with_loop(
        "      type: object\n      properties:\n        next:\n          $ref: '#/components/schemas/Hop'\n    Hop:\n      type: object\n      properties:\n        back:\n          $ref: '#/components/schemas/Loop'\n",
    );
    assert_eq!(error_of(&spec), "#/components/schemas/Loop: the type `Loop` contains itself (`Loop` -> `Hop` -> `Loop`) other than through an array, so it would have no finite size; expected the recursion to pass through an array (`type: array` with `items`)");
}

/// Recursion through an array is a tree, which every target renders (and whose frame schema
/// refers to itself through `$defs`).
#[test]
fn a_tree_is_accepted() {
    let spec = with_loop(
        "      type: object\n      properties:\n        label:\n          type: string\n        children:\n          type: array\n          items:\n            $ref: '#/components/schemas/Loop'\n      required: [label]\n",
    );
    for target in [Target::Rust, Target::Html, Target::Client] {
        if let Err(e) = generate(&spec, target) {
            panic!("{target:?}: {e}");
        }
    }
    let rust: String = generate(&spec, Target::Rust)
        .unwrap_or_default()
        .into_iter()
        .map(|f| f.contents)
        .collect();
    assert!(rust.contains("pub children: Option<Vec<Loop>>,"), "{rust}");
}

/// Each schema references the next one eight times: written out in place, the frame schema of
/// the message would hold 8^12 copies of the last one. Each component is written once instead.
#[test]
fn references_that_fan_out_stay_linear() {
    let mut schemas = String::new();
    for level in 0..12 {
        schemas.push_str(&format!(
            "    Fan{level}:\n      type: object\n      properties:\n"
        ));
        for branch in 0..8 {
            schemas.push_str(&format!(
                "        p{branch}:\n          $ref: '#/components/schemas/Fan{}'\n",
                level + 1
            ));
        }
    }
    schemas.push_str("    Fan12:\n      type: string\n");
    let spec = edited(
        "        room_name:\n          title: Room Name\n",
        "        fan:\n          $ref: '#/components/schemas/Fan0'\n        room_name:\n          title: Room Name\n",
    )
    .replacen("  schemas:\n", &format!("  schemas:\n{schemas}"), 1);
    let started = std::time::Instant::now();
    let api = asyncapi_codegen::analyse(&spec).unwrap_or_else(|e| panic!("{e}"));
    for target in [Target::Rust, Target::Html, Target::Client] {
        if let Err(e) = generate(&spec, target) {
            panic!("{target:?}: {e}");
        }
    }
    // Not a timing assertion on a fast path: exponential work would take hours, not seconds.
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    let chat = api.channels[0]
        .messages
        .iter()
        .find(|m| m.action == "room_chat")
        .unwrap_or_else(|| panic!("no room_chat"));
    assert_eq!(
        chat.payload_schema["$defs"]["Fan0"]["properties"]["p7"]["$ref"],
        "#/$defs/Fan1"
    );
    assert!(chat.payload_schema.to_string().len() < 100_000);
}

fn rust_of(spec: &str) -> String {
    match generate(spec, Target::Rust) {
        Ok(files) => files.into_iter().map(|f| f.contents).collect(),
        Err(e) => panic!("{e}"),
    }
}

/// `asyncapi.yaml` with the channel `room_chat` renamed to `id`.
fn channel_renamed(id: &str) -> String {
    edited(
        "  room_chat:\n    address:",
        &format!("  {id}:\n    address:"),
    )
    .replace("#/channels/room_chat", &format!("#/channels/{id}"))
}

/// Two send-only channels with the ids `first` and `second`.
fn two_channels(first: &str, second: &str) -> String {
    let channel = |id: &str, address: &str| {
        format!("  {id}:\n    address: {address}\n    messages:\n      note:\n        $ref: '#/components/messages/note'\n")
    };
    format!(
        "asyncapi: 3.0.0\ninfo:\n  title: T\n  version: '1'\nchannels:\n{}{}components:\n  messages:\n    note:\n      payload:\n        title: Note\n        type: object\n        properties:\n          action:\n            type: string\n            const: note\n",
        channel(first, "/a"),
        channel(second, "/b"),
    )
}

#[test]
fn a_channel_id_with_a_dash_becomes_a_module_name() {
    let rust = rust_of(&channel_renamed("room-chat"));
    assert!(rust.contains("pub mod room_chat {"));
    assert!(rust.contains("pub const CHANNEL: &str = \"room-chat\";"));
}

#[test]
fn a_channel_id_that_is_a_keyword_is_escaped() {
    let rust = rust_of(&channel_renamed("type"));
    assert!(rust.contains("pub mod r#type {"));
}

#[test]
fn a_channel_id_without_letters_is_refused() {
    assert_eq!(error_of(&channel_renamed("💬")), "#/channels/💬: the channel id `💬` gives no Rust module name: it has no ASCII letter or digit; expected a name like `room_chat`");
}

#[test]
fn a_channel_id_taking_a_module_of_the_generated_code_is_refused() {
    assert_eq!(error_of(&channel_renamed("runtime")), "#/channels/runtime: the channel id maps to the module name `runtime`, which the generated code already uses; choose another id");
}

#[test]
fn two_channel_ids_with_one_module_name_are_refused() {
    assert_eq!(error_of(&two_channels("room-chat", "room_chat")), "#/channels/room_chat: the channel id maps to the module `room_chat`, which the channel `room-chat` already has; rename one of them");
    assert_eq!(error_of(&two_channels("a_b", "AB")), "#/channels/AB: the channel id maps to the type-name prefix `AB`, which the channel `a_b` already has; rename one of them");
    assert!(generate(&two_channels("chat", "news"), Target::Rust).is_ok());
}

#[test]
fn an_operation_id_that_is_a_keyword_is_escaped() {
    let rust = rust_of(&edited(
        "  handle_ping:\n    action: receive",
        "  type:\n    action: receive",
    ));
    assert!(rust.contains("fn r#type("), "{rust}");
    assert!(rust.contains("handler.r#type(ctx, message)"), "{rust}");
}

#[test]
fn an_operation_id_without_letters_is_refused() {
    let spec = edited(
        "  handle_ping:\n    action: receive",
        "  💬:\n    action: receive",
    );
    assert_eq!(error_of(&spec), "#/operations/💬: the operation id `💬` gives no handler method name: it has no ASCII letter or digit; expected a name like `room_chat`");
}

#[test]
fn an_action_without_letters_is_refused() {
    let spec = edited("          const: ping\n", "          const: 💬\n");
    assert_eq!(error_of(&spec), "#/components/schemas/PingMessage/properties/action/const: the action `💬` gives no variant name: it has no ASCII letter or digit; expected a name like `room_chat`");
}

#[test]
fn an_action_named_self_is_refused() {
    let spec = edited("          const: ping\n", "          const: self\n");
    assert_eq!(error_of(&spec), "#/components/schemas/PingMessage/properties/action/const: the action `self` gives the variant name `Self`, which Rust reserves; choose another name");
}

#[test]
fn two_actions_with_one_variant_name_in_one_direction_are_refused() {
    let spec = edited(
        "          const: complete\n",
        "          const: room-notification\n",
    );
    assert_eq!(error_of(&spec), "#/components/messages/complete: the action `room-notification` gives the variant name `RoomNotification`, which the action `room_notification` already has in the channel's outgoing messages; rename one of the actions");
}

/// `Ping` (server to client) and `ping` (client to server) are variants of different enums.
#[test]
fn one_variant_name_in_each_direction_is_accepted() {
    let spec = edited("          const: pong\n", "          const: Ping\n");
    for target in [Target::Rust, Target::Html, Target::Client] {
        if let Err(e) = generate(&spec, target) {
            panic!("{target:?}: {e}");
        }
    }
}

#[test]
fn a_property_name_without_letters_is_refused() {
    let spec = edited(
        "        room_name:\n          title: Room Name\n",
        "        '💬':\n          title: Room Name\n",
    );
    assert_eq!(error_of(&spec), "#/components/schemas/RoomMessagePayload/properties/💬: the property name `💬` gives no field name: it has no ASCII letter or digit; expected a name like `room_chat`");
}

#[test]
fn a_type_named_like_an_item_of_the_channel_module_is_refused() {
    let spec = edited("      title: ErrorDetail\n", "      title: Handler\n");
    assert_eq!(error_of(&spec), "#/components/schemas/ErrorDetail: the type name `Handler` is reserved by the generated code; choose another `title`");
}

#[test]
fn a_parameter_used_twice_in_the_address_is_refused() {
    let spec = edited(
        "address: /ws/room/{room_name}",
        "address: /ws/room/{room_name}/{room_name}",
    );
    assert_eq!(error_of(&spec), "#/channels/room_chat/address: the address `/ws/room/{room_name}/{room_name}` uses `{room_name}` twice; expected each parameter once");
}

#[test]
fn recovery_must_name_the_channels_messages() {
    let spec = edited("      request: history\n", "      request: shout\n");
    assert_eq!(error_of(&spec), "#/channels/room_chat/x-recovery: `request: shout` is not a message the server receives on this channel");
    let spec = edited(
        "      notification: room_notification\n",
        "      notification: history\n",
    );
    assert_eq!(error_of(&spec), "#/channels/room_chat/x-recovery: `notification: history` is not a message the server sends on this channel");
    let spec = edited("      reply: history_result\n", "      reply: pong\n");
    assert_eq!(error_of(&spec), "#/channels/room_chat/x-recovery: `reply: pong` is not the reply of the operation that receives `history`");
}

#[test]
fn query_parameters_are_strings() {
    let spec = edited(
        "            name:\n              type: string\n              description: |\n                Optional display name",
        "            name:\n              type: integer\n              description: |\n                Optional display name",
    );
    assert_eq!(error_of(&spec), "#/channels/room_chat/bindings/ws/query/properties/name: query parameters must be `type: string` (a query string carries text)");
}

#[test]
fn two_query_parameters_with_one_field_name() {
    let spec = edited(
        "          properties:\n            name:\n              type: string\n",
        "          properties:\n            display-name:\n              type: string\n            display_name:\n              type: string\n            name:\n              type: string\n",
    );
    assert_eq!(error_of(&spec), "#/channels/room_chat/bindings/ws/query/properties/display_name: query parameter `display_name` maps to the field name `display_name`, which query parameter `display-name` already has; rename one of them");
}
