//! Exercises the code generated for each fixture document: examples decode (with the generated
//! decoder and with serde), invalid frames are refused with pydantic-shaped errors at the right
//! location, and `dispatch` reaches a handler and frames its reply.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use asyncapi_codegen_output::{nested_types, two_channels, two_parameters, unions};
use serde_json::{json, Value};

/// Runs a future whose handlers never wait (every handler here is ready at once).
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

/// Asserts that serde (`deserialize_text`) and the reporting decoder (`decode_value`) agree on
/// `frame`: both accept it with the same value, or both refuse it. Returns whether it was
/// accepted.
fn agree<M: protocol_runtime::Messages + PartialEq + std::fmt::Debug>(frame: &Value) -> bool {
    let fast = protocol_runtime::deserialize_text::<M>(&frame.to_string());
    let slow = protocol_runtime::decode_value::<M>(frame).ok();
    assert_eq!(fast, slow, "the two paths disagree on {frame}");
    fast.is_some()
}

fn errors_json<T: serde::Serialize>(errors: &[T]) -> Value {
    serde_json::to_value(errors).unwrap_or_default()
}

mod chat {
    use super::*;
    use protocol_runtime::{Dispatched, Framed};
    use two_channels::chat::{dispatch, Handler, Incoming, Outgoing};
    use two_channels::{SaidMessage, SaidPayload, SayMessage};

    struct Echo;

    impl Handler<u32> for Echo {
        type Error = String;

        async fn handle_say(
            &self,
            ctx: &mut u32,
            message: SayMessage,
        ) -> Result<SaidMessage, String> {
            *ctx += 1;
            if message.payload.text == "fail" {
                return Err("refused".into());
            }
            Ok(SaidMessage {
                payload: SaidPayload {
                    text: message.payload.text,
                    at: i64::from(*ctx),
                },
            })
        }
    }

    #[test]
    fn reply_is_framed_with_the_ref() {
        let mut lines = 0;
        let out = block_on(dispatch(
            &Echo,
            &mut lines,
            r#"{"action":"say","payload":{"text":"hi"},"ref":"r9"}"#,
        ));
        let Dispatched::Handled {
            action,
            reply: Some(reply),
        } = out
        else {
            panic!("expected a reply, got {out:?}");
        };
        assert_eq!(action, "say");
        assert_eq!(lines, 1);
        assert_eq!(
            serde_json::to_string(&reply).unwrap_or_default(),
            r#"{"action":"said","payload":{"text":"hi","at":1},"version":1,"ref":"r9"}"#
        );
    }

    #[test]
    fn handler_failure_is_reported() {
        let out = block_on(dispatch(
            &Echo,
            &mut 0,
            r#"{"action":"say","payload":{"text":"fail"},"ref":"f1"}"#,
        ));
        let Dispatched::Failed {
            action,
            error,
            reply,
        } = out
        else {
            panic!("expected a failure, got {out:?}");
        };
        assert_eq!((action, error.as_str()), ("say", "refused"));
        // The error frame answers the request: it echoes the `ref`.
        assert_eq!(
            protocol_runtime::failure_reply(action, &reply),
            r#"{"action":"error","payload":{"detail":"Failed to process message for say"},"version":1,"ref":"f1"}"#
        );
    }

    #[test]
    fn frames_round_trip_through_serde() {
        let text = r#"{"action":"said","payload":{"text":"hi","at":3}}"#;
        let framed: Framed<Outgoing> = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(serde_json::to_string(&framed).unwrap_or_default(), text);
        assert_eq!(
            framed,
            Outgoing::decode_text(text).unwrap_or_else(|e| panic!("{e:?}"))
        );
        let error = Outgoing::decode_text(r#"{"action":"error","payload":{"anything":[1]}}"#);
        assert!(matches!(
            error,
            Ok(Framed {
                message: Outgoing::Error(_),
                ..
            })
        ));
        assert_eq!(Incoming::ACTIONS, ["say"]);
        assert_eq!(Outgoing::ACTIONS, ["error", "said"]);
    }
}

mod presence {
    use super::*;
    use protocol_runtime::Dispatched;
    use two_channels::presence::{dispatch, Handler, Incoming, Outgoing, ADDRESS};
    use two_channels::{Online, OnlineMessage};

    struct Nobody;

    impl Handler<()> for Nobody {
        type Error = String;
    }

    #[test]
    fn a_send_only_channel_refuses_every_frame() {
        assert_eq!(ADDRESS, "/presence");
        assert!(Incoming::ACTIONS.is_empty());
        let out = block_on(dispatch(
            &Nobody,
            &mut (),
            r#"{"action":"online","payload":{"users":[]}}"#,
        ));
        let Dispatched::Rejected { errors } = out else {
            panic!("expected a rejection, got {out:?}");
        };
        assert_eq!(
            errors_json(&errors),
            json!([{"type": "union_tag_invalid", "loc": [], "msg": "Input tag 'online' found using 'action' does not match any of the expected tags: "}])
        );
    }

    #[test]
    fn the_server_can_push() {
        let frame = Outgoing::Online(OnlineMessage {
            payload: Online {
                users: vec!["ada".into()],
            },
        });
        assert_eq!(frame.action(), "online");
        assert_eq!(
            serde_json::to_value(&frame).unwrap_or_default(),
            json!({"action": "online", "payload": {"users": ["ada"]}})
        );
    }
}

mod orders {
    use super::*;
    use nested_types::orders::{dispatch, Handler, Incoming};
    use nested_types::{Acceptance, Kind, OrderAccepted, OrderStatus, PlaceOrder};
    use protocol_runtime::Dispatched;

    fn full() -> Value {
        json!({"action": "place_order", "payload": {
            "customer": {"name": "Ada", "address": {"street": "1 Loop Road", "city": "Turing"}},
            "lines": [{"sku": "A-1", "quantity": 2, "price": 9.5}],
            "tags": ["gift"], "status": "new", "note": null, "coupon": null, "gift": true,
            "type": "retail"
        }})
    }

    fn rejected(frame: &Value) -> Value {
        match Incoming::decode_value(frame) {
            Ok(framed) => panic!("expected a rejection, decoded {framed:?}"),
            Err(errors) => errors_json(&errors),
        }
    }

    #[test]
    fn nested_example_decodes() {
        let framed = Incoming::decode_value(&full()).unwrap_or_else(|e| panic!("{e:?}"));
        let Incoming::PlaceOrder(PlaceOrder { payload }) = framed.message;
        assert_eq!(payload.customer.address.city, "Turing");
        assert_eq!(payload.customer.address.postcode, None);
        assert_eq!(payload.lines[0].quantity, 2);
        assert_eq!(payload.status, OrderStatus::New);
        assert_eq!(payload.r#type, Some(Kind::Retail));
        assert_eq!(payload.gift, Some(true));
        assert_eq!(payload.note, None);
        let by_serde: Incoming = serde_json::from_value(full()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(by_serde, Incoming::PlaceOrder(PlaceOrder { payload }));
        assert_eq!(OrderStatus::InTransit.as_str(), "in-transit");
    }

    #[test]
    fn serde_and_the_reporting_decoder_agree() {
        let with = |pointer: &str, value: Value| {
            let mut frame = full();
            if let Some(slot) = frame.pointer_mut(pointer) {
                *slot = value;
            }
            frame
        };
        let accepted = [
            full(),
            with("/payload/coupon", json!("SAVE-TWELVE!")),
            with("/payload/note", json!("at the door")),
            with("/payload/status", json!("in-transit")),
            with("/payload/customer/name", json!("é")),
        ];
        for frame in &accepted {
            assert!(agree::<Incoming>(frame), "{frame} was refused");
        }
        let refused = [
            with("/payload/coupon", json!("THIRTEEN-CHAR")),
            with("/payload/customer/name", json!("")),
            with("/payload/gift", Value::Null),
            with("/payload/status", json!({"new": null})),
            with(
                "/payload/customer",
                json!(["Ada", {"street": "s", "city": "c"}]),
            ),
            with("/payload/lines/0/quantity", json!(2.5)),
            with("/payload/tags", json!(["gift", null])),
        ];
        for frame in &refused {
            assert!(!agree::<Incoming>(frame), "{frame} was accepted");
        }
        let mut missing_note = full();
        if let Some(payload) = missing_note["payload"].as_object_mut() {
            payload.remove("note");
        }
        assert!(
            !agree::<Incoming>(&missing_note),
            "a required nullable field may not be left out"
        );
    }

    #[test]
    fn optional_and_nullable_fields_serialize_as_declared() {
        let minimal = json!({"action": "place_order", "payload": {
            "customer": {"name": "Bob", "address": {"street": "2", "city": "T"}},
            "lines": [], "status": "paid", "note": "door"
        }});
        let framed = Incoming::decode_value(&minimal).unwrap_or_else(|e| panic!("{e:?}"));
        // Optional non-nullable fields (`tags`, `gift`, `type`) are left out; nullable ones
        // (`coupon`, `postcode`) are written as null, as pydantic does.
        assert_eq!(
            serde_json::to_value(&framed.message).unwrap_or_default(),
            json!({"action": "place_order", "payload": {
                "customer": {"name": "Bob", "address": {"street": "2", "city": "T", "postcode": null}},
                "lines": [], "status": "paid", "note": "door", "coupon": null
            }})
        );
    }

    #[test]
    fn required_nullable_field_must_be_present() {
        let mut frame = full();
        frame["payload"].as_object_mut().map(|p| p.remove("note"));
        assert_eq!(
            rejected(&frame),
            json!([{"type": "missing", "loc": ["place_order", "payload", "note"], "msg": "Field required"}])
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_location() {
        let mut frame = full();
        frame["payload"]["lines"][0]
            .as_object_mut()
            .map(|l| l.remove("quantity"));
        frame["payload"]["status"] = json!("lost");
        frame["payload"]["coupon"] = json!("0123456789abc");
        frame["payload"]["customer"]["name"] = json!("");
        frame["payload"]["gift"] = json!(null);
        assert_eq!(
            rejected(&frame),
            json!([
                {"type": "string_too_short", "loc": ["place_order", "payload", "customer", "name"], "msg": "String should have at least 1 character"},
                {"type": "missing", "loc": ["place_order", "payload", "lines", 0, "quantity"], "msg": "Field required"},
                {"type": "enum", "loc": ["place_order", "payload", "status"], "msg": "Input should be 'new', 'paid', 'shipped' or 'in-transit'"},
                {"type": "string_too_long", "loc": ["place_order", "payload", "coupon"], "msg": "String should have at most 12 characters"},
                {"type": "bool_type", "loc": ["place_order", "payload", "gift"], "msg": "Input should be a valid boolean"},
            ])
        );
    }

    /// `OrderLine.parts` holds `OrderLine`s: a recursive type decodes at any depth, and reports
    /// problems with the full path.
    #[test]
    fn a_recursive_type_decodes_at_depth() {
        let mut frame = full();
        frame["payload"]["lines"][0]["parts"] = json!([
            {"sku": "A-1a", "quantity": 1, "price": 1.0, "parts": [{"sku": "A-1a-i", "quantity": 3, "price": 0.5}]},
        ]);
        let framed = Incoming::decode_value(&frame).unwrap_or_else(|e| panic!("{e:?}"));
        let Incoming::PlaceOrder(PlaceOrder { payload }) = framed.message;
        let parts = payload.lines[0].parts.as_deref().unwrap_or_default();
        let inner = parts[0].parts.as_deref().unwrap_or_default();
        assert_eq!(inner[0].sku, "A-1a-i");
        frame["payload"]["lines"][0]["parts"][0]["parts"][0]["sku"] = json!(7);
        assert_eq!(
            rejected(&frame),
            json!([{"type": "string_type", "loc": ["place_order", "payload", "lines", 0, "parts", 0, "parts", 0, "sku"], "msg": "Input should be a valid string"}])
        );
    }

    struct Shop;

    impl Handler<()> for Shop {
        type Error = std::convert::Infallible;

        async fn place_order(
            &self,
            _: &mut (),
            message: PlaceOrder,
        ) -> Result<OrderAccepted, Self::Error> {
            Ok(OrderAccepted {
                payload: Acceptance {
                    number: i64::try_from(message.payload.lines.len()).unwrap_or_default(),
                },
            })
        }
    }

    #[test]
    fn dispatch_reaches_the_handler() {
        let text = full().to_string();
        let out = block_on(dispatch(&Shop, &mut (), &text));
        let Dispatched::Handled {
            action,
            reply: Some(reply),
        } = out
        else {
            panic!("expected a reply, got {out:?}");
        };
        assert_eq!(action, "place_order");
        assert_eq!(
            serde_json::to_value(&reply).unwrap_or_default(),
            json!({"action": "order_accepted", "payload": {"number": 1}})
        );
    }
}

mod canvas {
    use super::*;
    use protocol_runtime::Dispatched;
    use unions::canvas::{dispatch, Handler, Incoming, Outgoing};
    use unions::{Circle, DrawMessage, Fill, Rectangle, Rgb, Shape};

    #[test]
    fn alternatives_are_tried_in_order() {
        let circle = json!({"action": "draw", "payload": {"shape": {"radius": 2.5}, "fill": "red", "label": null}});
        let Incoming::Draw(DrawMessage { payload }) = Incoming::decode_value(&circle)
            .unwrap_or_else(|e| panic!("{e:?}"))
            .message;
        assert_eq!(payload.shape, Shape::Circle(Circle { radius: 2.5 }));
        assert_eq!(payload.fill, Fill::String("red".into()));
        assert_eq!(payload.label, None);

        let rectangle = json!({"action": "draw", "payload": {
            "shape": {"width": 1, "height": 2}, "fill": {"r": 1, "g": 2, "b": 3},
            "label": "box", "layers": [1, null, 3]
        }});
        let framed = Incoming::decode_value(&rectangle).unwrap_or_else(|e| panic!("{e:?}"));
        let by_serde: Incoming =
            serde_json::from_value(rectangle).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(framed.message, by_serde);
        let Incoming::Draw(DrawMessage { payload }) = by_serde;
        assert_eq!(
            payload.shape,
            Shape::Rectangle(Rectangle {
                width: 1.0,
                height: 2.0
            })
        );
        assert_eq!(payload.fill, Fill::Rgb(Rgb { r: 1, g: 2, b: 3 }));
        assert_eq!(payload.layers, Some(vec![Some(1), None, Some(3)]));
    }

    #[test]
    fn a_union_that_fits_nothing_reports_every_alternative() {
        let frame = json!({"action": "draw", "payload": {"shape": {}, "fill": 7, "label": 1}});
        let Err(errors) = Incoming::decode_value(&frame) else {
            panic!("expected a rejection");
        };
        assert_eq!(
            errors_json(&errors),
            json!([
                {"type": "missing", "loc": ["draw", "payload", "shape", "radius"], "msg": "Field required"},
                {"type": "missing", "loc": ["draw", "payload", "shape", "width"], "msg": "Field required"},
                {"type": "missing", "loc": ["draw", "payload", "shape", "height"], "msg": "Field required"},
                {"type": "string_type", "loc": ["draw", "payload", "fill"], "msg": "Input should be a valid string"},
                {"type": "model_type", "loc": ["draw", "payload", "fill"], "msg": "Input should be a valid dictionary or instance of Rgb"},
                {"type": "string_type", "loc": ["draw", "payload", "label"], "msg": "Input should be a valid string"},
            ])
        );
    }

    #[test]
    fn outgoing_union_payloads_decode() {
        for text in [
            r#"{"action":"error","payload":["bad shape"]}"#,
            r#"{"action":"error","payload":{"detail":"failed"}}"#,
        ] {
            let framed = Outgoing::decode_text(text).unwrap_or_else(|e| panic!("{e:?}"));
            assert_eq!(serde_json::to_string(&framed).unwrap_or_default(), text);
        }
    }

    struct Painter;

    impl Handler<Vec<Shape>> for Painter {
        type Error = String;

        async fn draw(&self, canvas: &mut Vec<Shape>, message: DrawMessage) -> Result<(), String> {
            canvas.push(message.payload.shape);
            Ok(())
        }
    }

    #[test]
    fn a_handler_without_reply_returns_nothing() {
        let mut canvas = Vec::new();
        let out = block_on(dispatch(
            &Painter,
            &mut canvas,
            r#"{"action":"draw","payload":{"shape":{"radius":1},"fill":"red","label":null},"ref":"x"}"#,
        ));
        assert!(matches!(
            out,
            Dispatched::Handled {
                action: "draw",
                reply: None
            }
        ));
        assert_eq!(canvas, [Shape::Circle(Circle { radius: 1.0 })]);
    }
}

mod rooms {
    use super::*;
    use two_parameters::room::{Incoming, Params, ParamsError, ADDRESS};
    use two_parameters::Post;

    #[test]
    fn parameters_fill_the_address_in_order() {
        assert_eq!(ADDRESS, "/orgs/{org}/rooms/{room}");
        let params = Params {
            org: "acme".into(),
            room: "a b/é".into(),
        };
        assert_eq!(params.address(), "/orgs/acme/rooms/a%20b%2F%C3%A9");
    }

    #[test]
    fn parameters_are_parsed_from_the_path() {
        assert_eq!(
            Params::from_path("/orgs/globex/rooms/caf%C3%A9"),
            Ok(Params {
                org: "globex".into(),
                room: "café".into(),
            })
        );
        let params = Params {
            org: "acme".into(),
            room: "a b/é".into(),
        };
        assert_eq!(Params::from_path(&params.address()), Ok(params));
        assert_eq!(
            Params::from_path("/orgs/acme/rooms/%FF"),
            Err(ParamsError::InvalidEncoding {
                parameter: "room",
                segment: "%FF".into(),
            })
        );
    }

    /// `org` declares `enum: [acme, globex]`.
    #[test]
    fn a_parameter_outside_its_enum_is_refused() {
        let error = Params::from_path("/orgs/initech/rooms/general");
        assert_eq!(
            error,
            Err(ParamsError::NotAllowed {
                parameter: "org",
                value: "initech".into(),
                allowed: &["acme", "globex"],
            })
        );
        assert_eq!(
            error.err().map(|e| e.to_string()),
            Some("parameter `org`: `initech` is not allowed; expected 'acme' or 'globex'".into())
        );
    }

    #[test]
    fn string_payload_limits_are_checked() {
        let ok = Incoming::decode_text(r#"{"action":"post","payload":"hello"}"#);
        assert_eq!(
            ok.map(|f| f.message).ok(),
            Some(Incoming::Post(Post {
                payload: "hello".into()
            }))
        );
        let long = json!({"action": "post", "payload": "x".repeat(281)});
        assert!(!agree::<Incoming>(&long));
        assert!(agree::<Incoming>(
            &json!({"action": "post", "payload": "x".repeat(280)})
        ));
        let Err(errors) = Incoming::decode_value(&long) else {
            panic!("expected a rejection");
        };
        assert_eq!(
            errors_json(&errors),
            json!([{"type": "string_too_long", "loc": ["post", "payload"], "msg": "String should have at most 280 characters"}])
        );
    }
}
