//! The control plane of `weir serve`: a REST API under `/api/v1` (axum), its
//! OpenAPI document at `/api/v1/openapi.json`, and Prometheus metrics at
//! `/metrics`: the plugin registry (components uploaded over HTTP, validated
//! before they are stored, content-addressed) and the node's pipelines (run,
//! stopped with a savepoint, started again, resumed when the node restarts,
//! and operators hot-swapped to new plugin versions while they run), with
//! live server-sent event streams and plugin log lines; and the web
//! dashboard at `/` (`dashboard.rs`, `docs/dashboard.md`).
//!
//! With a token set, every request needs `Authorization: Bearer <token>`
//! (401 otherwise), except `/metrics` on a node with public metrics. Every
//! error is `{"error": "..."}` with its status, unknown routes and methods
//! included. `server.rs` serves the router (TLS, timeouts, connection cap).

mod dashboard;
mod error;
mod graph;
mod live_routes;
mod logs;
mod metrics;
mod model;
mod openapi;
mod pipeline_routes;
mod pipelines;
mod plugin_routes;
mod registry;
mod server;
mod sql;
mod supervisor;
mod swap;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use weir_wasm::PluginLoader;

pub use error::ApiError;
pub use logs::{PluginLogLayer, PluginLogs};
pub use model::{FailureKind, PipelineDetail, PipelineStatus, PipelineSummary, SwapInfo, SwapStatus};
pub use pipelines::Pipelines;
pub use registry::{PluginVersion, Registry};
pub use server::{serve, tls_config, ServeOptions};
pub use sql::{SqlCompileError, SqlCompiler};

use pipeline_routes::*;
use plugin_routes::*;

/// Settings of a node.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    pub data_dir: std::path::PathBuf,
    /// Directories besides `data_dir` whose files specs may read and write.
    pub allowed_paths: Vec<std::path::PathBuf>,
    /// Required bearer token of every request.
    pub token: Option<String>,
    /// `/metrics` needs no token.
    pub public_metrics: bool,
    /// Largest accepted upload, in bytes.
    pub max_upload: usize,
    /// A request's body must arrive within this.
    pub body_timeout: std::time::Duration,
}

pub struct AppState {
    config: ApiConfig,
    registry: Arc<Registry>,
    pipelines: Arc<Pipelines>,
    metrics: metrics::NodeMetrics,
    /// Compiles SQL jobs (`Content-Type: application/sql`); none: refused.
    sql: Option<Arc<dyn SqlCompiler>>,
}

impl AppState {
    /// A node over `config.data_dir`: plugins loaded with `loader`, specs
    /// checked and built with `types` (every connector and operator kind the
    /// binary has), SQL jobs compiled with `sql`.
    pub fn new(
        config: ApiConfig,
        loader: PluginLoader,
        types: Arc<weir_spec::Registry>,
        sql: Option<Arc<dyn SqlCompiler>>,
    ) -> Result<Arc<AppState>, ApiError> {
        let registry = Arc::new(Registry::open(&config.data_dir, loader)?);
        let pipelines = Pipelines::open(&config.data_dir, &config.allowed_paths, registry.clone(), types, sql.clone())?;
        let metrics = metrics::NodeMetrics::new(pipelines.clone(), registry.clone());
        Ok(Arc::new(AppState { config, registry, pipelines, metrics, sql }))
    }

    /// The request has the node's token, if it has one. Compared in constant
    /// time (as sha256 digests, so that not even the length shows).
    fn authorize(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        use sha2::{Digest, Sha256};
        use subtle::ConstantTimeEq;
        let Some(token) = &self.config.token else { return Ok(()) };
        let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        let matches = given.is_some_and(|g| bool::from(Sha256::digest(g).ct_eq(&Sha256::digest(token))));
        if matches {
            Ok(())
        } else {
            Err(ApiError::new(StatusCode::UNAUTHORIZED, "this request needs the node's token: Authorization: Bearer <token>"))
        }
    }
}

/// Every request but public metrics and the dashboard's files needs the token.
async fn require_token(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let public = (state.config.public_metrics && path == "/metrics") || dashboard::is_public(path);
    if !public && let Err(e) = state.authorize(request.headers()) {
        let mut r = e.into_response();
        r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        return r;
    }
    next.run(request).await
}

/// Read the whole body within the node's body timeout (a client that sends
/// it slowly or never gets a 408), and at most `max_upload` bytes (413).
async fn read_body(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let (limit, timeout) = (state.config.max_upload, state.config.body_timeout);
    let failed = match tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => return next.run(Request::from_parts(parts, axum::body::Body::from(bytes))).await,
        Ok(Err(e)) if std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>()) => {
            plugin_routes::too_large(&state)
        }
        Ok(Err(e)) => ApiError::bad_request(format!("cannot read the request body: {e}")),
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!("the request body did not arrive within {} s (weir serve --body-timeout)", timeout.as_secs_f64()),
        ),
    };
    if parts.method == Method::POST && parts.uri.path() == "/api/v1/plugins" {
        state.metrics.rejected.inc();
    }
    failed.into_response()
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("no route {method} {}; see /api/v1/openapi.json", uri.path()))
}

async fn no_method(method: Method, uri: Uri) -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, format!("{} does not take {method}; see /api/v1/openapi.json", uri.path()))
}

/// The node's routes.
pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.config.max_upload;
    Router::new()
        .route("/api/v1/openapi.json", get(|| async { Json(openapi::document()) }))
        .route("/api/v1/plugins", get(list_plugins).post(upload_plugin))
        .route("/api/v1/plugins/{name}", get(plugin_versions))
        .route("/api/v1/plugins/{name}/{version}", delete(delete_plugin))
        .route("/api/v1/pipelines", get(list_pipelines).post(create_pipeline))
        .route("/api/v1/pipelines/{id}", get(show_pipeline).delete(delete_pipeline))
        .route("/api/v1/pipelines/{id}/stop", post(stop_pipeline))
        .route("/api/v1/pipelines/{id}/start", post(start_pipeline))
        .route("/api/v1/pipelines/{id}/checkpoints", get(pipeline_checkpoints))
        .route("/api/v1/pipelines/{id}/operators/{op}/swap", post(swap_operator))
        .route("/api/v1/pipelines/{id}/logs", get(live_routes::pipeline_logs))
        .route("/api/v1/pipelines/{id}/events", get(live_routes::pipeline_events))
        .route("/api/v1/events", get(live_routes::node_events))
        .route("/metrics", get(metrics))
        .route("/", get(dashboard::index))
        .route("/assets/{file}", get(dashboard::file))
        .fallback(no_route)
        .method_not_allowed_fallback(no_method)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), read_body))
        .layer(axum::middleware::from_fn_with_state(state.clone(), require_token))
        .with_state(state)
}

/// The node's metrics in the Prometheus (OpenMetrics) text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "node",
    responses((status = 200, description = "metrics", body = String, content_type = "application/openmetrics-text"))
)]
pub(crate) async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], state.metrics.encode())
}
