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
use axum::extract::{FromRef, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use room_chat_layers::{ChannelLayer, LayerHealth, LayerRegistry};
use tokio::net::TcpListener;

use room_chat_runtime::{Consumer, Handshake, SessionSettings, Shutdown};

use crate::config::Config;
use crate::metrics::{EdgeRefusal, Metrics};
use crate::room_chat::RoomChatConsumer;

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
    /// The room store (presence, history) could not be set up.
    #[error("room store: {0}")]
    Store(#[from] crate::rooms::StoreError),
}

/// What every route needs, whatever app the WebSocket route serves.
#[derive(Clone)]
pub struct Core {
    config: Arc<Config>,
    layers: Arc<LayerRegistry>,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
    /// Rendered once at start-up; each request clones the handle, not the text.
    spec_json: bytes::Bytes,
    client_spec_yaml: bytes::Bytes,
}

/// The server's state for an app served by consumer `C`: the [`Core`], and what its
/// WebSocket route needs.
pub struct AppState<C: Consumer> {
    core: Core,
    /// The layer `C` runs on (`config.chat_layer`).
    layer: Arc<dyn ChannelLayer>,
    settings: Arc<SessionSettings>,
    /// Connections admitted and not yet finished (reserved before the upgrade, so the cap
    /// holds even while many handshakes race).
    admitted: Arc<AtomicUsize>,
    app: Arc<C::Settings>,
}

impl<C: Consumer> Clone for AppState<C> {
    fn clone(&self) -> Self {
        Self {
            core: self.core.clone(),
            layer: self.layer.clone(),
            settings: self.settings.clone(),
            admitted: self.admitted.clone(),
            app: self.app.clone(),
        }
    }
}

impl<C: Consumer> FromRef<AppState<C>> for Core {
    fn from_ref(state: &AppState<C>) -> Core {
        state.core.clone()
    }
}

impl<C: Consumer> std::ops::Deref for AppState<C> {
    type Target = Core;

    fn deref(&self) -> &Core {
        &self.core
    }
}

impl<C: Consumer> AppState<C> {
    /// Builds the state for `config` over the registered `layers`, with the app's settings.
    pub fn new(
        config: Config,
        layers: LayerRegistry,
        app: C::Settings,
    ) -> Result<Self, ServerError> {
        let layers = Arc::new(layers);
        let layer = layers
            .get(&config.chat_layer)
            .ok_or_else(|| ServerError::MissingLayer(config.chat_layer.clone()))?;
        let spec: serde_json::Value = serde_yaml::from_str(room_chat_protocol::SPEC_YAML)?;
        let spec_json = serde_json::to_string_pretty(&spec).map_err(std::io::Error::other)?;
        let client_spec_yaml = client_view(room_chat_protocol::SPEC_YAML)?;
        let settings = config.session.clone();
        Ok(Self {
            core: Core {
                config: Arc::new(config),
                metrics: Arc::new(Metrics::new(layers.clone())),
                layers,
                shutdown: Shutdown::new(),
                spec_json: bytes::Bytes::from(spec_json),
                client_spec_yaml: bytes::Bytes::from(client_spec_yaml),
            },
            layer,
            settings: Arc::new(settings),
            admitted: Arc::new(AtomicUsize::new(0)),
            app: Arc::new(app),
        })
    }
}

impl Core {
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

/// The service's routes, with consumer `C` on its WebSocket address: every path under the
/// address's fixed part (`/ws/room/` for `/ws/room/{room_name}`) goes to `C`, so that a name
/// with a `/`, or none, gets the app's refusal rather than a 404.
pub fn router<C: Consumer>(state: AppState<C>) -> Router {
    let prefix = C::ADDRESS.split('{').next().unwrap_or(C::ADDRESS);
    let prefix = if prefix.ends_with('/') {
        prefix.to_owned()
    } else {
        format!("{prefix}/")
    };
    Router::new()
        .route(&prefix, get(consumer_socket::<C>))
        .route(&format!("{prefix}{{*rest}}"), get(consumer_socket::<C>))
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

/// The origin policy: a handshake without `Origin` (not from a browser) is allowed; one from a
/// browser must come from the service's own origin (its `Origin` names the `Host` the request
/// went to), or from an origin in `allowed` (`*` allows all). An `Origin` that is not text, or
/// the opaque `null` of sandboxed pages, is refused unless `*` is listed.
pub fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    if allowed.iter().any(|a| a == "*") {
        return true;
    }
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    if allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)) {
        return true;
    }
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h))
}

/// Releases an admitted connection's slot when the connection ends (or its upgrade fails).
struct Admission(Arc<AtomicUsize>);

impl Drop for Admission {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The WebSocket handshake of consumer `C`: the server's checks (origin, shutdown, connection
/// cap), then the app's ([`Consumer::accept`]), then the upgrade into a runtime session.
async fn consumer_socket<C: Consumer>(
    State(state): State<AppState<C>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let handshake = Handshake {
        headers: &headers,
        path: uri.path(),
        query: uri.query(),
    };
    let consumer = match C::accept(&state.app, &handshake) {
        Ok(consumer) => consumer,
        Err(refusal) => {
            state.metrics.refused_as(refusal.label);
            return (refusal.status, refusal.reason).into_response();
        }
    };
    if !origin_allowed(&headers, &state.config.edge.allowed_origins) {
        state.metrics.refused(EdgeRefusal::Origin);
        return (StatusCode::FORBIDDEN, "origin not allowed").into_response();
    }
    if state.shutdown.is_shutting_down() {
        state.metrics.refused(EdgeRefusal::ShuttingDown);
        return (StatusCode::SERVICE_UNAVAILABLE, "server shutting down").into_response();
    }
    // While the layer is down the connection could join nothing: say so before the upgrade,
    // rather than upgrading and closing with 1011 a moment later.
    if !state.layer.health().borrow().is_up() {
        state.metrics.refused(EdgeRefusal::LayerDown);
        return (StatusCode::SERVICE_UNAVAILABLE, "channel layer unavailable").into_response();
    }
    let previous = state.admitted.fetch_add(1, Ordering::AcqRel);
    let admission = Admission(state.admitted.clone());
    if previous >= state.config.edge.max_connections {
        state.metrics.refused(EdgeRefusal::Capacity);
        return (StatusCode::SERVICE_UNAVAILABLE, "too many connections").into_response();
    }
    let config = &state.config;
    upgrade
        .read_buffer_size(config.edge.read_buffer_bytes)
        .write_buffer_size(config.edge.write_buffer_bytes)
        .max_message_size(config.session.max_frame_bytes)
        .max_frame_size(config.session.max_frame_bytes)
        .on_upgrade(move |socket| {
            let task = room_chat_runtime::serve(
                socket,
                consumer,
                state.layer.clone(),
                state.settings.clone(),
                state.metrics.runtime().clone(),
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

async fn spec_json(State(state): State<Core>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.spec_json,
    )
        .into_response()
}

async fn client_spec_yaml(State(state): State<Core>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/yaml; charset=utf-8")],
        state.client_spec_yaml,
    )
        .into_response()
}

/// The title of the client view: generators name their client class after `info.title` with
/// the spaces removed (the AsyncAPI CLI's Python and JavaScript clients), so it must read as an
/// identifier once they are gone.
pub const CLIENT_VIEW_TITLE: &str = "Room Chat Client";

/// The client view's `id`: a document of its own, not the service's contract.
pub const CLIENT_VIEW_ID: &str = "urn:room-chat:client";

/// The contract from the client's point of view, for generic client generators that read a
/// document as their own:
/// - every operation's `action` is flipped (`receive` becomes `send` and back), so they see
///   "the client sends `room_chat`"; replies keep their place (the server still answers a ping);
/// - operation ids say what the client does, since generators turn them into method names: the
///   server's verb prefix (`handle_`, `send_`, `receive_`, `on_`) gives way to the client's
///   (`handle_ping` becomes `send_ping`, `send_error` becomes `receive_error`), unless that
///   would clash with another id;
/// - `info.title` and `id` are the client's own ([`CLIENT_VIEW_TITLE`], [`CLIENT_VIEW_ID`]), so
///   the two views are never taken for one document.
pub fn client_view(spec_yaml: &str) -> Result<String, serde_yaml::Error> {
    let mut doc: serde_yaml::Value = serde_yaml::from_str(spec_yaml)?;
    if let Some(operations) = doc
        .get_mut("operations")
        .and_then(serde_yaml::Value::as_mapping_mut)
    {
        let taken: Vec<String> = operations
            .keys()
            .filter_map(|k| k.as_str().map(str::to_owned))
            .collect();
        let mut renamed = serde_yaml::Mapping::new();
        for (id, mut operation) in std::mem::take(operations) {
            let mut client_verb = None;
            if let Some(action) = operation.get_mut("action") {
                let flipped = match action.as_str() {
                    Some("receive") => Some("send"),
                    Some("send") => Some("receive"),
                    _ => None,
                };
                if let Some(flipped) = flipped {
                    *action = serde_yaml::Value::from(flipped);
                    client_verb = Some(flipped);
                }
            }
            let client_id = match (id.as_str(), client_verb) {
                (Some(server_id), Some(verb)) => {
                    let candidate = client_operation_id(server_id, verb);
                    let clashes = candidate != server_id
                        && (taken.contains(&candidate) || renamed.contains_key(candidate.as_str()));
                    if clashes {
                        id
                    } else {
                        serde_yaml::Value::from(candidate)
                    }
                }
                _ => id,
            };
            renamed.insert(client_id, operation);
        }
        *operations = renamed;
    }
    if let Some(mapping) = doc.as_mapping_mut() {
        if mapping.contains_key("id") {
            mapping.insert("id".into(), CLIENT_VIEW_ID.into());
        }
    }
    if let Some(info) = doc
        .get_mut("info")
        .and_then(serde_yaml::Value::as_mapping_mut)
    {
        info.insert("title".into(), CLIENT_VIEW_TITLE.into());
    }
    serde_yaml::to_string(&doc)
}

/// `handle_ping` seen by a client that sends it: `send_ping`. The server's verb prefix, if any,
/// is replaced by the client's `verb`.
fn client_operation_id(server_id: &str, verb: &str) -> String {
    let rest = ["handle_", "send_", "receive_", "on_"]
        .iter()
        .find_map(|prefix| server_id.strip_prefix(prefix))
        .filter(|rest| !rest.is_empty())
        .unwrap_or(server_id);
    format!("{verb}_{rest}")
}

async fn health(State(state): State<Core>) -> Response {
    let mut all_up = true;
    let mut layers = serde_json::Map::new();
    for (alias, layer) in state.layers.iter() {
        let health = layer.health().borrow().clone();
        let mut entry = match &health {
            LayerHealth::Up => serde_json::json!({ "kind": layer.kind(), "status": "up" }),
            down => {
                all_up = false;
                serde_json::json!({ "kind": layer.kind(), "status": "down", "detail": format!("{down:?}") })
            }
        };
        // Which host (ring member, Sentinel master, Cluster partition) is down, not only that
        // one is.
        let targets: Vec<serde_json::Value> = layer
            .targets()
            .into_iter()
            .map(|t| match t.health {
                LayerHealth::Up => serde_json::json!({ "target": t.target, "status": "up" }),
                down => serde_json::json!({ "target": t.target, "status": "down", "detail": format!("{down:?}") }),
            })
            .collect();
        if !targets.is_empty() {
            entry["targets"] = serde_json::Value::Array(targets);
        }
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

async fn metrics(State(state): State<Core>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// Accepts TCP connections and serves HTTP on them until `stop`, then lets the connections in
/// progress finish (graceful shutdown; upgraded WebSockets are the runtime's, see [`Shutdown`]).
///
/// Our own loop rather than `axum::serve`, for the limits at the edge:
/// - **a cap before the upgrade** (`MAX_PENDING_CONNECTIONS`): a permit per TCP connection,
///   held until it is upgraded or closed; without a permit the loop stops accepting, and new
///   connections wait in the kernel's backlog instead of taking a file descriptor each;
/// - **a header-read timeout** (`HEADER_READ_TIMEOUT`), which hyper also applies while a
///   kept-alive connection waits for its next request, so silent sockets are closed;
/// - `TCP_NODELAY` on every socket (Nagle's algorithm would hold small frames back ~40 ms);
/// - accept errors (out of file descriptors) are logged and retried after a pause, never fatal.
async fn accept_loop(
    listener: TcpListener,
    app: Router,
    config: Arc<Config>,
    stop: tokio_util::sync::CancellationToken,
) -> Result<(), ServerError> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    use tower::ServiceExt as _;

    let pending = Arc::new(tokio::sync::Semaphore::new(
        config.edge.max_pending_connections.max(1),
    ));
    let connections = tokio_util::task::TaskTracker::new();
    // HTTP/1.1 only: WebSockets need it, browsers speak nothing else over plain HTTP, and the
    // header-read timer then runs from the first byte awaited (an HTTP/2 sniffing step first
    // would wait for a silent socket with no timer at all).
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.edge.header_read_timeout);
    let service = TowerToHyperService::new(app.map_request(
        |request: axum::http::Request<hyper::body::Incoming>| request.map(axum::body::Body::new),
    ));
    loop {
        let permit = tokio::select! {
            () = stop.cancelled() => break,
            permit = pending.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed; retrying shortly");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let connection = builder
            .serve_connection(TokioIo::new(tcp), service.clone())
            .with_upgrades();
        let stop = stop.clone();
        connections.spawn(async move {
            // Ends when the client goes, the header timeout fires, or the connection is
            // upgraded (the WebSocket then lives on in its own task, counted elsewhere). At
            // shutdown a request in progress is finished, then the connection closes.
            let mut connection = std::pin::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                () = stop.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(error = %e, "HTTP connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
    Ok(())
}

/// A server running in the background (what `main` and the tests use), serving consumer `C`
/// on its WebSocket address.
pub struct RunningServer<C: Consumer = RoomChatConsumer> {
    /// Where it listens.
    pub addr: SocketAddr,
    state: AppState<C>,
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<Result<(), ServerError>>,
}

impl RunningServer<RoomChatConsumer> {
    /// Binds `config.host:config.port` and serves the room chat in a background task.
    pub async fn start(config: Config, layers: LayerRegistry) -> Result<Self, ServerError> {
        let app = config.room_chat_settings()?;
        Self::serve(config, layers, app).await
    }
}

impl<C: Consumer> RunningServer<C> {
    /// Binds `config.host:config.port` and serves `C` (with its settings `app`) in a
    /// background task.
    pub async fn serve(
        config: Config,
        layers: LayerRegistry,
        app: C::Settings,
    ) -> Result<Self, ServerError> {
        let addr = SocketAddr::new(config.host, config.port);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        let addr = listener.local_addr()?;
        let state = AppState::<C>::new(config, layers, app)?;
        let stop = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn(accept_loop(
            listener,
            router(state.clone()),
            state.config.clone(),
            stop.clone(),
        ));
        Ok(Self {
            addr,
            state,
            stop,
            task,
        })
    }

    /// The server's state (metrics, layers, shutdown).
    pub fn state(&self) -> &Core {
        &self.state.core
    }

    /// Graceful shutdown: stop accepting, leave notices, drain, close frames, close the layers.
    /// Returns whether every connection finished within the shutdown timeout.
    pub async fn shutdown(self) -> bool {
        self.stop.cancel();
        let config = &self.state.config;
        // One deadline for everything, so the documented maximum is the real one.
        let deadline = tokio::time::Instant::now() + config.edge.shutdown_timeout;
        let clean = self
            .state
            .shutdown
            .run(config.edge.shutdown_drain, deadline)
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
