//! Serves what the AsyncAPI document generates for people and other programs: the HTML
//! documentation at `/asyncapi` and the typed client at `/asyncapi/client.js` (with its
//! TypeScript declarations at `/asyncapi/client.d.ts`).
//!
//! All three are generated at build time from `asyncapi.yaml` (see `room_chat_protocol`), so
//! what is served always matches the protocol the server speaks; this module only picks the
//! headers.

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// The docs page has no scripts and loads nothing: a policy that says so means even a mistake
/// in the generator's escaping could not run script on this origin.
const DOCS_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; base-uri 'none'; form-action 'none'";

/// `GET /asyncapi`: the HTML documentation of the contract.
pub async fn docs_page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, DOCS_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        room_chat_protocol::DOCS_HTML,
    )
        .into_response()
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
