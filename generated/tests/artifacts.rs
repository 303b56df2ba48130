//! The non-Rust artefacts of the crate are what the generator makes of `asyncapi.yaml` today,
//! and the docs page carries the slot the service fills in.

#[test]
fn docs_and_client_are_the_generators_output_for_the_spec() {
    use asyncapi_codegen::{generate, Target};
    let html =
        generate(room_chat_protocol::SPEC_YAML, Target::Html).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(html[0].contents, room_chat_protocol::DOCS_HTML);
    let client =
        generate(room_chat_protocol::SPEC_YAML, Target::Client).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(client[0].contents, room_chat_protocol::CLIENT_JS);
    assert_eq!(client[1].contents, room_chat_protocol::CLIENT_DTS);
}

#[test]
fn the_docs_carry_the_server_slot() {
    assert_eq!(
        room_chat_protocol::DOCS_SERVER_SLOT,
        asyncapi_codegen::HTML_SERVER_SLOT
    );
    assert_eq!(
        room_chat_protocol::DOCS_HTML
            .matches(room_chat_protocol::DOCS_SERVER_SLOT)
            .count(),
        1
    );
}
