//! What the service serves for people and other programs besides the contract: the HTML docs
//! (`/asyncapi`), the generated client (`/asyncapi/client.js`, `/asyncapi/client.d.ts`) and the
//! chat page (`/` and its assets), each with the right media type.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

use std::net::SocketAddr;

use room_chat_e2e::{Layer, TestServer, FRAME_WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// GET `path`; returns the status, the lower-cased header block and the body. (The shared
/// helper drops the headers, and the media types are what these tests are about.)
async fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(FRAME_WAIT, stream.read_to_end(&mut raw))
        .await
        .expect("HTTP response in time")
        .unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "static bodies have a length"
    );
    (status, head.to_ascii_lowercase(), body.to_owned())
}

fn header<'h>(head: &'h str, name: &str) -> &'h str {
    head.lines()
        .find_map(|line| line.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name} in\n{head}"))
}

#[tokio::test]
async fn the_docs_page_shows_operations_messages_and_examples_and_runs_no_script() {
    let server = TestServer::start(Layer::Memory).await;
    let (status, head, html) = get(server.addr(), "/asyncapi").await;
    assert_eq!(status, 200);
    assert_eq!(header(&head, "content-type"), "text/html; charset=utf-8");
    assert!(header(&head, "content-security-policy").contains("default-src 'none'"));
    assert!(html.starts_with("<!DOCTYPE html>"));
    // The servers section names this server as the request reached it.
    let addr = server.addr();
    assert!(
        html.contains(&format!("<p>This server: <code>ws://{addr}</code>")),
        "this server's address"
    );
    assert!(!html.contains(room_chat_protocol::DOCS_SERVER_SLOT));
    for operation in [
        "handle_ping",
        "handle_room_chat",
        "send_room_notification",
        "send_error",
    ] {
        assert!(
            html.contains(&format!("<code>{operation}</code>")),
            "{operation}"
        );
    }
    for summary in [
        "Handle room chat messages",
        "Notify the room",
        "Check that the connection is alive.",
    ] {
        assert!(html.contains(summary), "{summary}");
    }
    for message in ["ping", "pong", "room-chat", "room-notification", "error"] {
        assert!(
            html.contains(&format!("id=\"message-room-chat-{message}\"")),
            "{message}"
        );
    }
    assert!(html.contains("<code>/ws/room/{room_name}</code>"));
    assert!(html.contains("<code>payload.message</code>"));
    // An example, pretty-printed and escaped.
    assert!(html.contains("&quot;message&quot;: &quot;💬 hello&quot;"));
    // Markdown is rendered, and no description brings a script in.
    assert!(html.contains("<h2>Frames</h2>"));
    assert!(!html.contains("<script"));
    // No CDN: nothing is loaded from elsewhere.
    assert!(!html.contains("src=\"http") && !html.contains("<link rel=\"stylesheet\""));
}

#[tokio::test]
async fn the_generated_client_is_served_as_a_module_with_its_types() {
    let server = TestServer::start(Layer::Memory).await;
    let (status, head, js) = get(server.addr(), "/asyncapi/client.js").await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&head, "content-type"),
        "text/javascript; charset=utf-8"
    );
    assert_eq!(js, room_chat_protocol::CLIENT_JS);
    assert!(js.contains("export class RoomChatClient extends ChannelClient"));
    assert!(js.contains("sendRoomChat(payload, envelope)"));

    let (status, head, dts) = get(server.addr(), "/asyncapi/client.d.ts").await;
    assert_eq!(status, 200);
    assert_eq!(header(&head, "content-type"), "text/plain; charset=utf-8");
    assert!(dts.contains("export declare class RoomChatClient"));
    assert!(dts.contains("room_name?: string | null;"));
}

#[tokio::test]
async fn the_chat_page_and_its_assets_are_served() {
    let server = TestServer::start(Layer::Memory).await;
    let (status, head, html) = get(server.addr(), "/").await;
    assert_eq!(status, 200);
    assert_eq!(header(&head, "content-type"), "text/html; charset=utf-8");
    assert!(header(&head, "content-security-policy").contains("script-src 'self'"));
    assert!(html.contains("<input id=\"room\" name=\"room\" value=\"general\""));
    assert!(html.contains("<script type=\"module\" src=\"/assets/chat.js\"></script>"));

    let (status, head, js) = get(server.addr(), "/assets/chat.js").await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&head, "content-type"),
        "text/javascript; charset=utf-8"
    );
    assert!(
        js.contains("from \"/asyncapi/client.js\""),
        "the page uses the generated client"
    );
    assert!(
        js.contains(".textContent = text"),
        "messages are inserted as text"
    );
    assert!(!js.contains("innerHTML"));

    let (status, head, _) = get(server.addr(), "/assets/chat.css").await;
    assert_eq!(status, 200);
    assert_eq!(header(&head, "content-type"), "text/css; charset=utf-8");
}

#[tokio::test]
async fn a_host_header_with_markup_is_not_echoed_into_the_docs() {
    let server = TestServer::start(Layer::Memory).await;
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    let request = "GET /asyncapi HTTP/1.1\r\nHost: <b>x</b>\r\nConnection: close\r\n\r\n";
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(FRAME_WAIT, stream.read_to_end(&mut raw))
        .await
        .expect("HTTP response in time")
        .unwrap();
    let text = String::from_utf8(raw).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(!text.contains("<b>x</b>"));
    assert!(!text.contains("This server:"));
}
