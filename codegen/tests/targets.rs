//! The HTML and client targets as a reader and a caller see them: the docs page carries every
//! operation, message and example of the document and never lets the document's text script the
//! page; the client has a method per message in the right direction; both are deterministic.

use asyncapi_codegen::{generate, Target};

const SPEC: &str = include_str!("../../asyncapi.yaml");

fn one(spec: &str, target: Target, path: &str) -> String {
    let files = generate(spec, target).unwrap_or_else(|e| panic!("{e}"));
    files
        .into_iter()
        .find(|f| f.path == path)
        .map(|f| f.contents)
        .unwrap_or_else(|| panic!("no {path}"))
}

#[test]
fn docs_list_every_operation_message_and_example() {
    let html = one(SPEC, Target::Html, "docs.html");
    for operation in [
        "handle_ping",
        "handle_room_chat",
        "send_room_notification",
        "send_error",
        "send_complete",
        "send_group_complete",
    ] {
        assert!(
            html.contains(&format!("<code>{operation}</code>")),
            "{operation}"
        );
    }
    for message in [
        "ping",
        "pong",
        "room_chat",
        "room_notification",
        "error",
        "complete",
        "group_complete",
    ] {
        assert!(
            html.contains(&format!(
                "id=\"message-room-chat-{}\"",
                message.replace('_', "-")
            )),
            "{message}"
        );
    }
    // Fields of nested payloads are unfolded into the message's table.
    assert!(html.contains("<code>payload.room_name</code>"));
    assert!(html.contains("<code>payload[].loc</code>"));
    // Examples are pretty JSON (escaped for HTML).
    assert!(html.contains("&quot;room_name&quot;: &quot;general&quot;"));
    // Tags group operations, with their descriptions.
    assert!(html.contains("Tag chat") && html.contains("Joining and leaving rooms."));
    // The reply relationship is stated on both sides.
    assert!(html.contains("Reply: <a href=\"#message-room-chat-pong\">"));
    assert!(html.contains("the reply of <a href=\"#operation-room-chat-handle-ping\">"));
    assert!(!html.contains("<script"), "the page has no scripts");
}

#[test]
fn docs_link_every_served_artifact_and_show_inline_code_in_field_descriptions() {
    let html = one(SPEC, Target::Html, "docs.html");
    for href in [
        "asyncapi.yaml",
        "asyncapi.json",
        "asyncapi.client.yaml",
        "asyncapi/client.js",
        "asyncapi/client.d.ts",
    ] {
        assert!(html.contains(&format!("<a href=\"{href}\">")), "{href}");
    }
    // ErrorItem.type's description lists kinds in backticks: a reader sees code, not backticks.
    assert!(
        html.contains("Machine-readable kind: <code>json_invalid</code>, <code>model_type</code>"),
        "inline code in a field description"
    );
    assert!(!html.contains("`json_invalid`"));
}

#[test]
fn markup_in_the_document_is_shown_as_text() {
    let evil = "<script>alert(1)</script><img src=x onerror=alert(2)>";
    let spec = SPEC
        .replacen(
            "    Real-time chat rooms over WebSocket.",
            &format!("    {evil}\n\n    A [link](javascript:alert(3)).\n\n    Real-time chat rooms over WebSocket."),
            1,
        )
        .replacen(
            "    summary: Handle ping requests",
            &format!("    summary: \"{evil}\""),
            1,
        )
        .replacen(
            "  license:\n    name: MIT OR Apache-2.0\n",
            "  license:\n    name: MIT OR Apache-2.0\n    url: \" JavaScript:alert(4)\"\n",
            1,
        )
        .replacen(
            "          description: Human-readable explanation.",
            &format!("          description: \"{evil}\""),
            1,
        );
    let html = one(&spec, Target::Html, "docs.html");
    assert!(!html.contains("<script"), "{html}");
    assert!(!html.contains("<img"), "{html}");
    assert!(!html.to_ascii_lowercase().contains("javascript:"), "{html}");
    assert!(
        html.contains("A <a href=\"#\">link</a>."),
        "the link stays, without its address"
    );
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
}

#[test]
fn query_parameters_and_recovery_reach_the_client_and_the_docs() {
    let js = one(SPEC, Target::Client, "client.js");
    let dts = one(SPEC, Target::Client, "client.d.ts");
    let html = one(SPEC, Target::Html, "docs.html");
    // The binding's query parameter: optional in the params type, appended when set.
    assert!(js.contains(r#" + queryString(params, ["name"])"#), "{js}");
    assert!(dts.contains("  name?: string;"));
    // `x-recovery` hands its three actions to the runtime.
    assert!(js.contains(
        r#"{ notification: "room_notification", request: "history", reply: "history_result" }"#
    ));
    assert!(dts.contains("onRecovery(handler: (event: RecoveryEvent) => void): () => void;"));
    assert!(html.contains("<h4>Query parameters</h4>") && html.contains("<code>name</code>"));
    // A channel without them gets neither.
    let plain = SPEC
        .replacen("    x-recovery:\n      notification: room_notification\n      request: history\n      reply: history_result\n", "", 1)
        .replacen("    bindings:\n      ws:\n", "    x-bindings:\n      ws:\n", 1);
    let js = one(&plain, Target::Client, "client.js");
    assert!(!js.contains("queryString(params, [") && js.contains("}, null);\n  }"));
}

#[test]
fn the_client_sends_what_the_server_receives_and_handles_what_it_sends() {
    let js = one(SPEC, Target::Client, "client.js");
    let dts = one(SPEC, Target::Client, "client.d.ts");
    for method in ["sendPing", "sendRoomChat", "requestPing"] {
        assert!(
            js.contains(&format!("  {method}(")),
            "{method} in client.js"
        );
        assert!(
            dts.contains(&format!("  {method}(")),
            "{method} in client.d.ts"
        );
    }
    for method in [
        "onPong",
        "onRoomNotification",
        "onError",
        "onComplete",
        "onGroupComplete",
    ] {
        assert!(js.contains(&format!("  {method}(handler)")), "{method}");
    }
    // The client never sends what only the server sends, and the reverse.
    assert!(!js.contains("sendRoomNotification") && !js.contains("onRoomChat("));
    assert!(dts.contains("requestPing(payload?: PingMessage[\"payload\"], options?: RequestOptions): Promise<PongMessage>;"));
    assert!(js.contains(r#""/ws/room/" + encodeURIComponent(String(params["room_name"]))"#));
    assert!(
        dts.contains("  'room_name'?: string | null;")
            || dts.contains("  room_name?: string | null;")
    );
}

#[test]
fn html_and_client_output_are_deterministic() {
    for target in [Target::Html, Target::Client] {
        let first = generate(SPEC, target).unwrap_or_else(|e| panic!("{e}"));
        let second = generate(SPEC, target).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(first, second);
    }
}

#[test]
fn a_schema_named_like_the_client_runtime_is_refused_with_its_pointer() {
    let spec = SPEC.replacen(
        "    ErrorDetail:\n      title: ErrorDetail\n",
        "    ErrorDetail:\n      title: ClientOptions\n",
        1,
    );
    let error = generate(&spec, Target::Client).expect_err("a clash is refused");
    assert_eq!(
        error.to_string(),
        "#/components/schemas/ErrorDetail: the client target would declare `ClientOptions` here and in the client runtime; rename one (e.g. the schema's title)"
    );
}
