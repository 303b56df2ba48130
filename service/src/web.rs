//! The chat web page at `/`: a room box, the room's messages and notices, a send box and the
//! connection status. Its script imports the generated client from `/asyncapi/client.js`, so
//! the page speaks exactly the protocol in `asyncapi.yaml`.
//!
//! The files live in `service/assets/` and are compiled into the binary: the service is one
//! file to deploy, and the page works with no network beyond the service itself (no CDN).

use axum::http::header;
use axum::response::{IntoResponse, Response};

const INDEX_HTML: &str = include_str!("../assets/index.html");
const CHAT_JS: &str = include_str!("../assets/chat.js");
const CHAT_CSS: &str = include_str!("../assets/chat.css");

/// Scripts and styles only from this origin, WebSockets only to it. Messages are inserted as
/// text, and this policy is the second line of defence should that ever regress.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'";

/// `GET /`: the chat page.
pub async fn chat_page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, PAGE_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        INDEX_HTML,
    )
        .into_response()
}

/// `GET /assets/chat.js`: the page's script (an ES module).
pub async fn chat_script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        CHAT_JS,
    )
        .into_response()
}

/// `GET /assets/chat.css`: the page's stylesheet.
pub async fn chat_stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        CHAT_CSS,
    )
        .into_response()
}
