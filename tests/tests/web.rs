//! What the service serves for people and other programs besides the contract: the HTML docs
//! (`/asyncapi`), the generated client (`/asyncapi/client.js`, `/asyncapi/client.d.ts`) and the
//! chat page (`/` and its assets), each with the right media type.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

use std::net::SocketAddr;

use room_chat_e2e::{Layer, TestServer};

/// GET `path`; returns the status, the lower-cased header block and the body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let response = room_chat_e2e::http_get_full(addr, path).await;
    assert!(!response.chunked, "static bodies have a length");
    (response.status, response.head, response.body)
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
    // Every artifact the service serves is linked (relative to `/asyncapi`), and each link works.
    for path in [
        "/asyncapi.yaml",
        "/asyncapi.json",
        "/asyncapi.client.yaml",
        "/asyncapi/client.js",
        "/asyncapi/client.d.ts",
    ] {
        let href = path.trim_start_matches('/');
        assert!(
            html.contains(&format!("<a href=\"{href}\">")),
            "a link to {path}"
        );
        let (status, _, _) = get(server.addr(), path).await;
        assert_eq!(status, 200, "{path}");
    }
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
    let request = "GET /asyncapi HTTP/1.1\r\nHost: <b>x</b>\r\nConnection: close\r\n\r\n";
    let response = room_chat_e2e::http_request(server.addr(), request).await;
    assert_eq!(response.status, 200, "{response:?}");
    let text = response.body;
    assert!(!text.contains("<b>x</b>"));
    assert!(!text.contains("This server:"));
}
