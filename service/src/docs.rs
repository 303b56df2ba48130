//! Serves what the AsyncAPI document generates for people and other programs: the HTML
//! documentation at `/asyncapi` and the typed client at `/asyncapi/client.js` (with its
//! TypeScript declarations at `/asyncapi/client.d.ts`).
//!
//! All three are generated at build time from `asyncapi.yaml` (see `room_chat_protocol`), so
//! what is served always matches the protocol the server speaks; this module only picks the
//! headers.

use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use room_chat_protocol::{DOCS_HTML, DOCS_SERVER_SLOT};

/// The docs page has no scripts and loads nothing: a policy that says so means even a mistake
/// in the generator's escaping could not run script on this origin.
const DOCS_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; base-uri 'none'; form-action 'none'";

/// `GET /asyncapi`: the HTML documentation of the contract, with a line saying where this
/// server is, as the reader reached it (the document only names `localhost:8000`).
pub async fn docs_page(headers: HeaderMap) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, DOCS_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        DOCS_HTML.replacen(DOCS_SERVER_SLOT, &this_server(&headers), 1),
    )
        .into_response()
}

/// `<p>` naming this server's WebSocket address, or nothing when the request's `Host` is not
/// a plain host name or address (it is echoed into HTML, so only harmless characters pass).
/// Behind a TLS-terminating proxy, `X-Forwarded-Proto: https` makes it `wss://`.
fn this_server(headers: &HeaderMap) -> String {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return String::new();
    };
    let plain = !host.is_empty()
        && host.len() <= 255
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if !plain {
        return String::new();
    }
    let secure = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    let scheme = if secure { "wss" } else { "ws" };
    format!(
        "<p>This server: <code>{scheme}://{host}</code> — join a room at <code>{scheme}://{host}/ws/room/{{room_name}}</code>.</p>"
    )
}

/// `GET /asyncapi/client.js`: the generated client, an ES module browsers can import directly.
pub async fn client_module() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        room_chat_protocol::CLIENT_JS,
    )
        .into_response()
}

/// `GET /asyncapi/client.d.ts`: the client's TypeScript declarations. Served as plain text
/// (TypeScript has no registered media type) so a browser shows it rather than downloading it.
pub async fn client_declarations() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        room_chat_protocol::CLIENT_DTS,
    )
        .into_response()
}
