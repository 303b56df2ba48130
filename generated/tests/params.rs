//! `room_chat::Params::from_path`: the room name is the percent-decoded path segment, and a
//! path that is not an address of the channel says which parameter failed.

use room_chat_protocol::room_chat::{Params, ParamsError, ADDRESS};

fn room(path: &str) -> Result<String, ParamsError> {
    Params::from_path(path).map(|p| p.room_name)
}

#[test]
fn the_room_name_is_the_percent_decoded_segment() {
    assert_eq!(room("/ws/room/general"), Ok("general".to_owned()));
    assert_eq!(room("/ws/room/a%20b"), Ok("a b".to_owned()));
    assert_eq!(room("/ws/room/caf%C3%A9"), Ok("café".to_owned()));
    assert_eq!(room("/ws/room/caf%c3%a9"), Ok("café".to_owned()));
    // Only `%XX` is an escape in a path: `+` is a plus sign.
    assert_eq!(room("/ws/room/a+b"), Ok("a+b".to_owned()));
}

#[test]
fn bytes_that_are_not_utf8_are_refused_naming_the_parameter() {
    let error = Params::from_path("/ws/room/%FF");
    assert_eq!(
        error,
        Err(ParamsError::InvalidEncoding {
            parameter: "room_name",
            segment: "%FF".to_owned(),
        })
    );
    let error = error.err().unwrap_or_else(|| panic!("accepted"));
    assert_eq!(error.parameter(), Some("room_name"));
    assert_eq!(
        error.to_string(),
        "parameter `room_name`: `%FF` is not percent-encoded UTF-8"
    );
}

#[test]
fn malformed_escapes_are_refused() {
    for segment in ["%", "a%2", "%G1", "%+1", "caf%C3"] {
        assert_eq!(
            room(&format!("/ws/room/{segment}")),
            Err(ParamsError::InvalidEncoding {
                parameter: "room_name",
                segment: segment.to_owned(),
            }),
            "{segment}"
        );
    }
}

#[test]
fn paths_of_another_shape_are_refused() {
    for path in [
        "/ws/room",
        "/ws/rooms/general",
        "/ws/room/a/b",
        "ws/room/a",
        "",
    ] {
        let error = Params::from_path(path).err();
        assert_eq!(
            error,
            Some(ParamsError::Mismatch {
                address: ADDRESS,
                path: path.to_owned(),
            }),
            "{path}"
        );
    }
    assert_eq!(
        Params::from_path("/ws/rooms/general")
            .err()
            .map(|e| e.to_string()),
        Some(
            "the path `/ws/rooms/general` does not match the address `/ws/room/{room_name}`"
                .to_owned()
        )
    );
    assert_eq!(
        room("/ws/room/"),
        Err(ParamsError::Empty {
            parameter: "room_name"
        })
    );
}

#[test]
fn the_address_of_parameters_parses_back_to_them() {
    for name in ["general", "a b", "café", "50%", "a/b", "💬 ?#"] {
        let params = Params {
            room_name: name.to_owned(),
        };
        assert_eq!(Params::from_path(&params.address()), Ok(params), "{name}");
    }
}

/// `room_chat::Query`: the channel's WebSocket binding declares `name`, so the generated
/// reader has it as an optional field, decoded the way HTML forms encode it.
#[test]
fn the_display_name_comes_from_the_query_string() {
    use room_chat_protocol::room_chat::{Query, QueryError};
    let name = |query: Option<&str>| Query::from_query(query).map(|q| q.name);
    assert_eq!(name(None), Ok(None));
    assert_eq!(name(Some("")), Ok(None));
    assert_eq!(name(Some("name=ada")), Ok(Some("ada".to_owned())));
    assert_eq!(
        name(Some("v=1&name=Ada+L%C3%B6")),
        Ok(Some("Ada Lö".to_owned()))
    );
    // The first occurrence wins, so a second one appended on the way cannot replace it.
    assert_eq!(name(Some("name=ada&name=eve")), Ok(Some("ada".to_owned())));
    let error = Query::from_query(Some("name=%FF")).err();
    assert_eq!(
        error,
        Some(QueryError::InvalidEncoding {
            parameter: "name",
            value: "%FF".to_owned()
        })
    );
    // And back: what a client puts in the address.
    let query = Query {
        name: Some("Ada Lö".to_owned()),
    };
    assert_eq!(query.to_query(), "name=Ada%20L%C3%B6");
    assert_eq!(Query::from_query(Some(&query.to_query())), Ok(query));
    assert_eq!(Query::default().to_query(), "");
}
