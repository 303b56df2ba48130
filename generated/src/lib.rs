//! The room chat protocol, generated from `asyncapi.yaml` by `asyncapi-codegen` at build time.
//!
//! Nothing here is written by hand: to change the protocol, edit the AsyncAPI document and
//! rebuild. The service implements [`room_chat::Handler`] and feeds text frames to
//! [`room_chat::dispatch`]; clients can use the same types through serde.
//!
//! What is here, for each channel of the document (one: [`room_chat`]):
//! - a struct per payload schema ([`RoomMessagePayload`], ...) and per message frame
//!   ([`PingMessage`], ...), with serde and schemars derives;
//! - [`room_chat::Incoming`] and [`room_chat::Outgoing`], the messages of each direction,
//!   discriminated by `action`: the server can only send what the document declares;
//! - [`room_chat::Params`], the parameters of the channel address;
//! - [`room_chat::Handler`], one async method per `receive` operation, and
//!   [`room_chat::dispatch`], which decodes a frame, reports problems in the protocol's error
//!   format ([`runtime::rejection_frame`]) and calls the right method;
//! - [`SPEC_YAML`], the document itself, for serving.
//!
//! A readable copy of the generated source is kept in `codegen/tests/snapshots/`.

include!(concat!(env!("OUT_DIR"), "/protocol.rs"));
