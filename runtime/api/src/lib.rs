//! The control plane of `weir serve`: a REST API under `/api/v1` (axum), its
//! OpenAPI document at `/api/v1/openapi.json`, and Prometheus metrics at
//! `/metrics`. This first part is the plugin registry: components uploaded
//! over HTTP, validated before they are stored, content-addressed.
//!
//! With a token set, every mutating request needs `Authorization: Bearer
//! <token>` (401 otherwise). Every error is `{"error": "..."}` with its status.

mod error;
mod openapi;
mod registry;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{delete, get};
use axum::{Json, Router};
use weir_wasm::PluginEngine;

pub use error::ApiError;
pub use registry::{PluginVersion, Registry};

/// Settings of a node.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    pub data_dir: std::path::PathBuf,
    /// Required bearer token of mutating requests.
    pub token: Option<String>,
    /// Largest accepted upload, in bytes.
    pub max_upload: usize,
}

pub struct AppState {
    config: ApiConfig,
    registry: Registry,
    uploads: AtomicU64,
    rejected: AtomicU64,
}

impl AppState {
    pub fn new(config: ApiConfig, engine: PluginEngine) -> Result<Arc<AppState>, ApiError> {
        let registry = Registry::open(&config.data_dir, engine)?;
        Ok(Arc::new(AppState { config, registry, uploads: AtomicU64::new(0), rejected: AtomicU64::new(0) }))
    }

    fn authorize(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(token) = &self.config.token else { return Ok(()) };
        let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        if given == Some(token.as_str()) {
            Ok(())
        } else {
            Err(ApiError::new(StatusCode::UNAUTHORIZED, "this request needs the node's token: Authorization: Bearer <token>"))
        }
    }
}

/// The node's routes.
pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.config.max_upload;
    Router::new()
        .route("/api/v1/openapi.json", get(|| async { Json(openapi::document()) }))
        .route("/api/v1/plugins", get(list_plugins).post(upload_plugin))
        .route("/api/v1/plugins/{name}", get(plugin_versions))
        .route("/api/v1/plugins/{name}/{version}", delete(delete_plugin))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

async fn upload_plugin(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<PluginVersion>), ApiError> {
    let r = upload(&state, &headers, &params, body).await;
    let counter = if r.is_ok() { &state.uploads } else { &state.rejected };
    counter.fetch_add(1, Ordering::Relaxed);
    r.map(|v| (StatusCode::CREATED, Json(v)))
}

async fn upload(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<PluginVersion, ApiError> {
    state.authorize(headers)?;
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the upload is larger than this node's limit of {} bytes (weir serve --max-upload)", state.config.max_upload),
        ),
        status => ApiError::new(status, format!("cannot read the upload: {e}")),
    })?;
    let param = |k: &str| {
        params.get(k).cloned().ok_or_else(|| ApiError::bad_request(format!("missing query parameter '{k}' (POST /api/v1/plugins?name=N&version=V)")))
    };
    let (name, version) = (param("name")?, param("version")?);
    if body.is_empty() {
        return Err(ApiError::bad_request("the upload is empty: send the component's bytes as the request body"));
    }
    let state = state.clone();
    // Validation compiles the component: off the async workers.
    tokio::task::spawn_blocking(move || state.registry.upload(&name, &version, &body))
        .await
        .map_err(|e| ApiError::internal(format!("the upload failed: {e}")))?
}

async fn list_plugins(State(state): State<Arc<AppState>>) -> Json<Vec<PluginVersion>> {
    Json(state.registry.list())
}

async fn plugin_versions(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Result<Json<Vec<PluginVersion>>, ApiError> {
    state.registry.versions(&name).map(Json)
}

async fn delete_plugin(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<PluginVersion>, ApiError> {
    state.authorize(&headers)?;
    state.registry.delete(&name, &version).map(Json)
}

async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let body = format!(
        "# HELP weir_plugins Plugin versions in the registry.\n# TYPE weir_plugins gauge\nweir_plugins {}\n\
         # HELP weir_plugin_uploads_total Plugin uploads accepted.\n# TYPE weir_plugin_uploads_total counter\nweir_plugin_uploads_total {}\n\
         # HELP weir_plugin_upload_rejections_total Plugin uploads refused.\n# TYPE weir_plugin_upload_rejections_total counter\nweir_plugin_upload_rejections_total {}\n",
        state.registry.count(),
        state.uploads.load(Ordering::Relaxed),
        state.rejected.load(Ordering::Relaxed),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}
