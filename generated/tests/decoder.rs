//! The decoder and dispatcher against chanx's wire protocol: every row of the error table, as
//! the exact `error` frame the client receives, plus the envelope rules.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use room_chat_protocol::room_chat::{dispatch, Handler, Incoming};
use room_chat_protocol::runtime::{failure_frame, failure_reply, rejection_frame, Dispatched};
use room_chat_protocol::{
    HistoryMessage, HistoryResultMessage, PingMessage, PongMessage, PresenceMessage,
    PresenceResultMessage, RoomChatMessage, RoomMessagePayload,
};

/// Runs a future whose handlers never wait.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

/// Records what it handled; fails a chat message that says "boom".
#[derive(Default)]
struct Recorder;

impl Handler<Vec<RoomChatMessage>> for Recorder {
    type Error = String;

    async fn handle_ping(
        &self,
        _: &mut Vec<RoomChatMessage>,
        _: PingMessage,
    ) -> Result<PongMessage, String> {
        Ok(PongMessage { payload: () })
    }

    async fn handle_room_chat(
        &self,
        seen: &mut Vec<RoomChatMessage>,
        message: RoomChatMessage,
    ) -> Result<(), String> {
        if message.payload.message == "boom" {
            return Err("the room is on fire".into());
        }
        seen.push(message);
        Ok(())
    }

    async fn handle_presence(
        &self,
        _: &mut Vec<RoomChatMessage>,
        _: PresenceMessage,
    ) -> Result<PresenceResultMessage, String> {
        Err("not part of these tests".into())
    }

    async fn handle_history(
        &self,
        _: &mut Vec<RoomChatMessage>,
        _: HistoryMessage,
    ) -> Result<HistoryResultMessage, String> {
        Err("not part of these tests".into())
    }
}

fn run(
    text: &str,
) -> (
    Dispatched<room_chat_protocol::room_chat::Outgoing, String>,
    Vec<RoomChatMessage>,
) {
    let mut seen = Vec::new();
    let out = block_on(dispatch(&Recorder, &mut seen, text));
    (out, seen)
}

/// The `error` frame the client gets for `text`.
fn rejection(text: &str) -> String {
    match run(text).0 {
        Dispatched::Rejected { errors } => rejection_frame(&errors),
        other => panic!("{text:?} was not rejected: {other:?}"),
    }
}

#[test]
fn not_json() {
    assert_eq!(
        rejection("hello"),
        r#"{"action":"error","payload":[{"type":"json_invalid","loc":[],"msg":"Invalid JSON: expected value at line 1 column 1"}]}"#
    );
    assert_eq!(
        rejection(r#"{"action": "ping""#),
        r#"{"action":"error","payload":[{"type":"json_invalid","loc":[],"msg":"Invalid JSON: EOF while parsing an object at line 1 column 17"}]}"#
    );
}

#[test]
fn empty_frame() {
    assert_eq!(
        rejection(""),
        r#"{"action":"error","payload":[{"type":"json_invalid","loc":[],"msg":"Invalid JSON: EOF while parsing a value at line 1 column 0"}]}"#
    );
}

#[test]
fn json_that_is_not_an_object() {
    for text in ["[1, 2]", "\"ping\"", "42", "null"] {
        assert_eq!(
            rejection(text),
            r#"{"action":"error","payload":[{"type":"model_type","loc":[],"msg":"Input should be an object"}]}"#,
            "{text}"
        );
    }
}

#[test]
fn no_action() {
    assert_eq!(
        rejection(r#"{"payload": {"message": "hi"}}"#),
        r#"{"action":"error","payload":[{"type":"union_tag_not_found","loc":[],"msg":"Unable to extract tag using discriminator 'action'"}]}"#
    );
}

#[test]
fn unknown_action_lists_the_expected_tags_sorted() {
    assert_eq!(
        rejection(r#"{"action": "shout"}"#),
        r#"{"action":"error","payload":[{"type":"union_tag_invalid","loc":[],"msg":"Input tag 'shout' found using 'action' does not match any of the expected tags: 'history', 'ping', 'presence', 'room_chat'"}]}"#
    );
    // A server-to-client action is not something a client may send.
    assert_eq!(
        rejection(r#"{"action": "pong"}"#),
        r#"{"action":"error","payload":[{"type":"union_tag_invalid","loc":[],"msg":"Input tag 'pong' found using 'action' does not match any of the expected tags: 'history', 'ping', 'presence', 'room_chat'"}]}"#
    );
}

#[test]
fn missing_payload() {
    assert_eq!(
        rejection(r#"{"action": "room_chat"}"#),
        r#"{"action":"error","payload":[{"type":"missing","loc":["room_chat","payload"],"msg":"Field required"}]}"#
    );
}

#[test]
fn missing_payload_message() {
    assert_eq!(
        rejection(r#"{"action": "room_chat", "payload": {}}"#),
        r#"{"action":"error","payload":[{"type":"missing","loc":["room_chat","payload","message"],"msg":"Field required"}]}"#
    );
}

#[test]
fn message_not_a_string() {
    assert_eq!(
        rejection(r#"{"action": "room_chat", "payload": {"message": 5}}"#),
        r#"{"action":"error","payload":[{"type":"string_type","loc":["room_chat","payload","message"],"msg":"Input should be a valid string"}]}"#
    );
}

#[test]
fn ping_with_a_payload() {
    assert_eq!(
        rejection(r#"{"action": "ping", "payload": {"x": 1}}"#),
        r#"{"action":"error","payload":[{"type":"none_required","loc":["ping","payload"],"msg":"Input should be None"}]}"#
    );
}

#[test]
fn envelope_keys_are_checked_too() {
    assert_eq!(
        rejection(r#"{"action": "ping", "ref": 7}"#),
        r#"{"action":"error","payload":[{"type":"string_type","loc":["ping","ref"],"msg":"Input should be a valid string"}]}"#
    );
}

#[test]
fn handler_failure() {
    let (out, _) = run(r#"{"action": "room_chat", "payload": {"message": "boom"}}"#);
    let Dispatched::Failed {
        action,
        error,
        reply,
    } = out
    else {
        panic!("expected a failure, got {out:?}");
    };
    assert_eq!(error, "the room is on fire");
    assert_eq!(
        failure_frame(action),
        r#"{"action":"error","payload":{"detail":"Failed to process message for room_chat"}}"#
    );
    // Without a `ref` there is nothing to echo: the same frame.
    assert_eq!(failure_reply(action, &reply), failure_frame(action));
    // With one, the error answers the request as a reply would.
    let (out, _) = run(r#"{"action": "room_chat", "payload": {"message": "boom"}, "ref": "c1"}"#);
    let Dispatched::Failed { action, reply, .. } = out else {
        panic!("expected a failure, got {out:?}");
    };
    assert_eq!(
        failure_reply(action, &reply),
        r#"{"action":"error","payload":{"detail":"Failed to process message for room_chat"},"version":1,"ref":"c1"}"#
    );
}

fn pong_for(text: &str) -> String {
    match run(text).0 {
        Dispatched::Handled {
            action: "ping",
            reply: Some(reply),
        } => serde_json::to_string(&reply).unwrap_or_default(),
        other => panic!("{text:?}: expected a pong, got {other:?}"),
    }
}

#[test]
fn pong_echoes_ref_with_version_1() {
    assert_eq!(
        pong_for(r#"{"action": "ping", "ref": "r1"}"#),
        r#"{"action":"pong","payload":null,"version":1,"ref":"r1"}"#
    );
    // The client's own version does not leak into the reply.
    assert_eq!(
        pong_for(r#"{"action": "ping", "payload": null, "ref": "r2", "version": 7}"#),
        r#"{"action":"pong","payload":null,"version":1,"ref":"r2"}"#
    );
}

#[test]
fn pong_without_ref_has_no_envelope() {
    assert_eq!(
        pong_for(r#"{"action": "ping"}"#),
        r#"{"action":"pong","payload":null}"#
    );
    assert_eq!(
        pong_for(r#"{"action": "ping", "version": 1}"#),
        r#"{"action":"pong","payload":null}"#
    );
}

#[test]
fn extra_unknown_fields_are_ignored() {
    let (out, seen) = run(
        r#"{"action": "room_chat", "payload": {"message": "hi", "mood": "happy"}, "extra": [1]}"#,
    );
    assert!(matches!(
        out,
        Dispatched::Handled {
            action: "room_chat",
            reply: None
        }
    ));
    assert_eq!(
        seen,
        [RoomChatMessage {
            payload: RoomMessagePayload {
                message: "hi".into(),
                room_name: None
            }
        }]
    );
    assert_eq!(
        pong_for(r#"{"action": "ping", "something": {}}"#),
        r#"{"action":"pong","payload":null}"#
    );
}

#[test]
fn client_sent_room_name_is_kept_in_the_payload() {
    // The service ignores it (the room comes from the URL), but the decoder does not drop it.
    let (_, seen) =
        run(r#"{"action": "room_chat", "payload": {"message": "hi", "room_name": "elsewhere"}}"#);
    assert_eq!(seen[0].payload.room_name.as_deref(), Some("elsewhere"));
}

#[test]
fn decoded_frames_carry_the_envelope() {
    let framed = Incoming::decode_text(r#"{"action": "ping", "ref": "abc", "version": 3}"#)
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(framed.message, Incoming::Ping(PingMessage { payload: () }));
    assert_eq!(framed.envelope.reference.as_deref(), Some("abc"));
    assert_eq!(framed.envelope.version, Some(3));
}
