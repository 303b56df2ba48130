//! The HTTP side: routes, handshake checks, and the listener with graceful shutdown.
//!
//! | path | what |
//! |---|---|
//! | `/ws/room/{room_name}` | the room chat WebSocket |
//! | `/` | the chat web page (built on the generated client) |
//! | `/asyncapi.yaml`, `/asyncapi.json` | the contract |
//! | `/asyncapi.client.yaml` | the contract from the client's point of view |
//! | `/asyncapi` | HTML documentation generated from the contract |
//! | `/asyncapi/client.js`, `/asyncapi/client.d.ts` | the generated client module and its types |
//! | `/healthz` | 200 while every layer's backend is reachable, 503 otherwise |
//! | `/metrics` | Prometheus text |
//!
//! Handshake checks happen before the upgrade so a refused client gets an HTTP status and a
//! plain-text reason it can show, instead of a socket that opens and dies.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::Router;
use room_chat_layers::{ChannelLayer, LayerHealth, LayerRegistry};
use room_chat_protocol::room_chat::Params;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::consumer::{self, ConnectionSettings, Consumer as _};
use crate::metrics::{Metrics, Refusal};
use crate::room_chat::RoomChatConsumer;
use crate::shutdown::Shutdown;

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The layer alias the room chat needs is not registered.
    #[error("no channel layer is registered as `{0}`")]
    MissingLayer(String),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The served document could not be converted to JSON.
    #[error("the embedded AsyncAPI document is not valid YAML: {0}")]
    Spec(#[from] serde_yaml::Error),
    /// I/O while serving.
    #[error("serving: {0}")]
    Io(#[from] std::io::Error),
}

/// Everything a request handler needs.
#[derive(Clone)]
pub struct AppState {
    config: Arc<Config>,
    layers: Arc<LayerRegistry>,
    chat_layer: Arc<dyn ChannelLayer>,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
    settings: Arc<ConnectionSettings>,
    /// Connections admitted and not yet finished (reserved before the upgrade, so the cap
    /// holds even while many handshakes race).
    admitted: Arc<AtomicUsize>,
    /// Rendered once at start-up; each request clones the handle, not the text.
    spec_json: bytes::Bytes,
    client_spec_yaml: bytes::Bytes,
}

impl AppState {
    /// Builds the state for `config` over the registered `layers`.
    pub fn new(config: Config, layers: LayerRegistry) -> Result<Self, ServerError> {
        let chat_layer = layers
            .get(&config.chat_layer)
            .ok_or_else(|| ServerError::MissingLayer(config.chat_layer.clone()))?;
        let spec: serde_json::Value = serde_yaml::from_str(room_chat_protocol::SPEC_YAML)?;
        let spec_json = serde_json::to_string_pretty(&spec).map_err(std::io::Error::other)?;
        let client_spec_yaml = client_view(room_chat_protocol::SPEC_YAML)?;
        let settings = ConnectionSettings {
            outbound_queue: config.outbound_queue,
            ping_interval: config.ping_interval(),
            idle_timeout: config.idle_timeout(),
            write_timeout: config.write_timeout(),
            send_completion: config.send_completion,
            max_frame_bytes: config.max_frame_bytes,
            group_refresh: config.group_refresh(),
            close_linger: config.close_linger(),
        };
        Ok(Self {
            config: Arc::new(config),
            layers: Arc::new(layers),
            chat_layer,
            metrics: Arc::new(Metrics::default()),
            shutdown: Shutdown::new(),
            settings: Arc::new(settings),
            admitted: Arc::new(AtomicUsize::new(0)),
            spec_json: bytes::Bytes::from(spec_json),
            client_spec_yaml: bytes::Bytes::from(client_spec_yaml),
        })
    }

    /// The service's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The shutdown handle.
    pub fn shutdown(&self) -> &Shutdown {
        &self.shutdown
    }

    /// The layer registry.
    pub fn layers(&self) -> &Arc<LayerRegistry> {
        &self.layers
    }
}

/// The service's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/ws/room/{room_name}", get(room_chat_socket))
        .route("/ws/room/", get(empty_room_name))
        .route("/ws/room/{room_name}/", get(slash_in_room_name))
        .route("/ws/room/{room_name}/{*rest}", get(slash_in_room_name))
        .route("/asyncapi.yaml", get(spec_yaml))
        .route("/asyncapi.json", get(spec_json))
        .route("/asyncapi.client.yaml", get(client_spec_yaml))
        .route("/asyncapi", get(crate::docs::docs_page))
        .route("/asyncapi/client.js", get(crate::docs::client_module))
        .route(
            "/asyncapi/client.d.ts",
            get(crate::docs::client_declarations),
        )
        .route("/", get(crate::web::chat_page))
        .route("/assets/chat.js", get(crate::web::chat_script))
        .route("/assets/chat.css", get(crate::web::chat_stylesheet))
        .route("/healthz", get(health))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Why a room name is refused, in words a client can show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomNameError {
    /// Nothing between the slashes.
    #[error("room name must not be empty")]
    Empty,
    /// Longer than the configured maximum.
    #[error("room name is longer than {max} characters")]
    TooLong {
        /// The limit.
        max: usize,
    },
    /// Contains `/` (it would be another path).
    #[error("room name must not contain '/'")]
    Slash,
    /// Contains a control character.
    #[error("room name must not contain control characters")]
    Control,
    /// Starts or ends with whitespace.
    #[error("room name must not start or end with whitespace")]
    Whitespace,
}

/// The room-name rule (also stated in the spec's `room_name` parameter): 1 to `max` characters
/// of printable text, non-ASCII included, without `/`, control characters, or surrounding
/// whitespace. Layers that need ASCII group names get a safe mapping of it.
pub fn check_room_name(name: &str, max: usize) -> Result<(), RoomNameError> {
    if name.is_empty() {
        return Err(RoomNameError::Empty);
    }
    if name.chars().count() > max {
        return Err(RoomNameError::TooLong { max });
    }
    if name.contains('/') {
        return Err(RoomNameError::Slash);
    }
    if name.chars().any(char::is_control) {
        return Err(RoomNameError::Control);
    }
    if name.starts_with(char::is_whitespace) || name.ends_with(char::is_whitespace) {
        return Err(RoomNameError::Whitespace);
    }
    Ok(())
}

async fn empty_room_name(State(state): State<AppState>) -> Response {
    state.metrics.refused(Refusal::RoomName);
    (StatusCode::FORBIDDEN, RoomNameError::Empty.to_string()).into_response()
}

/// `/ws/room/a/b` (a literal `/`, or a trailing one): the router would answer 404, but the
/// client asked for a room whose name has a `/`, so it gets the room-name refusal.
async fn slash_in_room_name(State(state): State<AppState>) -> Response {
    state.metrics.refused(Refusal::RoomName);
    (StatusCode::FORBIDDEN, RoomNameError::Slash.to_string()).into_response()
}

/// Releases an admitted connection's slot when the connection ends (or its upgrade fails).
struct Admission(Arc<AtomicUsize>);

impl Drop for Admission {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn room_chat_socket(
    State(state): State<AppState>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    // The generated parser reads the parameters the way the contract's address declares them
    // (one percent-decoded UTF-8 segment each); the room-name rule then applies to the text.
    let room_name = match Params::from_path(uri.path()) {
        Ok(params) => params.room_name,
        Err(e) => {
            state.metrics.refused(Refusal::RoomName);
            return (StatusCode::BAD_REQUEST, e.to_string()).into_response();
        }
    };
    if let Err(reason) = check_room_name(&room_name, state.config.max_room_name_chars) {
        state.metrics.refused(Refusal::RoomName);
        return (StatusCode::FORBIDDEN, reason.to_string()).into_response();
    }
    if !state.config.allowed_origins.is_empty() {
        let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
        if !origin.is_some_and(|o| state.config.allowed_origins.iter().any(|a| a == o)) {
            state.metrics.refused(Refusal::Origin);
            return (StatusCode::FORBIDDEN, "origin not allowed").into_response();
        }
    }
    if state.shutdown.is_shutting_down() {
        return (StatusCode::SERVICE_UNAVAILABLE, "server shutting down").into_response();
    }
    let previous = state.admitted.fetch_add(1, Ordering::AcqRel);
    let admission = Admission(state.admitted.clone());
    if previous >= state.config.max_connections {
        state.metrics.refused(Refusal::Capacity);
        return (StatusCode::SERVICE_UNAVAILABLE, "too many connections").into_response();
    }
    let consumer = RoomChatConsumer::new(Params { room_name });
    let handshake = consumer::Handshake {
        headers: &headers,
        path: uri.path(),
    };
    if let Err(reason) = consumer.authenticate(&handshake) {
        state.metrics.refused(Refusal::Unauthenticated);
        return (StatusCode::FORBIDDEN, reason).into_response();
    }
    let config = &state.config;
    upgrade
        .read_buffer_size(config.read_buffer_bytes)
        .write_buffer_size(config.write_buffer_bytes)
        .max_message_size(config.max_frame_bytes)
        .max_frame_size(config.max_frame_bytes)
        .on_upgrade(move |socket| {
            let task = consumer::serve(
                socket,
                consumer,
                state.chat_layer.clone(),
                state.settings.clone(),
                state.metrics.clone(),
                state.shutdown.clone(),
            );
            // A span per connection, entered only while its task runs (an entered guard held
            // across `.await` would leak it into whatever else runs on the thread).
            let span = tracing::debug_span!("connection", channel = tracing::field::Empty);
            let tracked = state
                .shutdown
                .tracker()
                .track_future(tracing::Instrument::instrument(task, span));
            async move {
                tracked.await;
                drop(admission);
            }
        })
}

async fn spec_yaml() -> Response {
    (
        [(header::CONTENT_TYPE, "application/yaml; charset=utf-8")],
        room_chat_protocol::SPEC_YAML,
    )
        .into_response()
}

async fn spec_json(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.spec_json,
    )
        .into_response()
}

async fn client_spec_yaml(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/yaml; charset=utf-8")],
        state.client_spec_yaml,
    )
        .into_response()
}

/// The contract from the client's point of view: every operation's `action` flipped (`receive`
/// becomes `send` and back), so generic client generators that read a document as their own see
/// "the client sends `room_chat`". Replies keep their place: the server still answers a ping.
pub fn client_view(spec_yaml: &str) -> Result<String, serde_yaml::Error> {
    let mut doc: serde_yaml::Value = serde_yaml::from_str(spec_yaml)?;
    if let Some(operations) = doc
        .get_mut("operations")
        .and_then(serde_yaml::Value::as_mapping_mut)
    {
        for (_, operation) in operations.iter_mut() {
            if let Some(action) = operation.get_mut("action") {
                let flipped = match action.as_str() {
                    Some("receive") => "send",
                    Some("send") => "receive",
                    _ => continue,
                };
                *action = serde_yaml::Value::from(flipped);
            }
        }
    }
    if let Some(info) = doc
        .get_mut("info")
        .and_then(serde_yaml::Value::as_mapping_mut)
    {
        if let Some(serde_yaml::Value::String(title)) = info.get_mut("title") {
            title.push_str(" (client view)");
        }
    }
    serde_yaml::to_string(&doc)
}

async fn health(State(state): State<AppState>) -> Response {
    let mut all_up = true;
    let mut layers = serde_json::Map::new();
    for (alias, layer) in state.layers.iter() {
        let health = layer.health().borrow().clone();
        let entry = match &health {
            LayerHealth::Up => serde_json::json!({ "kind": layer.kind(), "status": "up" }),
            down => {
                all_up = false;
                serde_json::json!({ "kind": layer.kind(), "status": "down", "detail": format!("{down:?}") })
            }
        };
        layers.insert(alias.to_owned(), entry);
    }
    let status = if all_up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({
        "status": if all_up { "ok" } else { "degraded" },
        "connections": state.metrics.connections_open(),
        "layers": layers,
    });
    (status, axum::Json(body)).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(&state.layers),
    )
        .into_response()
}

/// A server running in the background (what `main` and the tests use).
pub struct RunningServer {
    /// Where it listens.
    pub addr: SocketAddr,
    state: AppState,
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<Result<(), ServerError>>,
}

impl RunningServer {
    /// Binds `config.host:config.port` and serves in a background task.
    pub async fn start(config: Config, layers: LayerRegistry) -> Result<Self, ServerError> {
        let addr = SocketAddr::new(config.host, config.port);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        let addr = listener.local_addr()?;
        let state = AppState::new(config, layers)?;
        let stop = tokio_util::sync::CancellationToken::new();
        let app = router(state.clone());
        let stopped = stop.clone();
        // Nagle's algorithm would hold small chat frames back for up to 40 ms waiting for more.
        let listener = listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY");
            }
        });
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { stopped.cancelled().await })
                .await
                .map_err(ServerError::Io)
        });
        Ok(Self {
            addr,
            state,
            stop,
            task,
        })
    }

    /// The server's state (metrics, layers, shutdown).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Graceful shutdown: stop accepting, leave notices, drain, close frames, close the layers.
    /// Returns whether every connection finished within the shutdown timeout.
    pub async fn shutdown(self) -> bool {
        self.stop.cancel();
        let config = &self.state.config;
        // One deadline for everything, so the documented maximum is the real one.
        let deadline = tokio::time::Instant::now() + config.shutdown_timeout();
        let clean = self
            .state
            .shutdown
            .run(config.shutdown_drain(), deadline)
            .await;
        if !clean {
            tracing::warn!("some connections did not finish within the shutdown timeout");
        }
        match tokio::time::timeout_at(deadline, self.task).await {
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "server ended with an error"),
            Ok(Err(e)) => tracing::warn!(error = %e, "server task failed"),
            Err(_) => tracing::warn!("HTTP server did not stop in time"),
            Ok(Ok(Ok(()))) => {}
        }
        match tokio::time::timeout_at(deadline, self.state.layers.close_all()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "closing layers"),
            Err(_) => tracing::warn!("layers did not close before the shutdown deadline"),
        }
        clean
    }
}
