//! The control plane of `weir serve`: a REST API under `/api/v1` (axum), its
//! OpenAPI document at `/api/v1/openapi.json`, and Prometheus metrics at
//! `/metrics`: the plugin registry (components uploaded over HTTP, validated
//! before they are stored, content-addressed) and the node's pipelines (run,
//! stopped with a savepoint, started again, resumed when the node restarts,
//! and operators hot-swapped to new plugin versions while they run).
//!
//! With a token set, every mutating request needs `Authorization: Bearer
//! <token>` (401 otherwise). Every error is `{"error": "..."}` with its status.

mod error;
mod metrics;
mod openapi;
mod pipelines;
mod registry;
mod supervisor;
mod swap;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use weir_wasm::PluginLoader;

pub use error::ApiError;
pub use pipelines::{Pipelines, SwapInfo};
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
    registry: Arc<Registry>,
    pipelines: Arc<Pipelines>,
    uploads: AtomicU64,
    rejected: AtomicU64,
}

impl AppState {
    /// A node over `config.data_dir`: plugins loaded with `loader`, specs
    /// checked and built with `types` (every connector and operator kind the
    /// binary has).
    pub fn new(config: ApiConfig, loader: PluginLoader, types: Arc<weir_spec::Registry>) -> Result<Arc<AppState>, ApiError> {
        let registry = Arc::new(Registry::open(&config.data_dir, loader)?);
        let pipelines = Pipelines::open(&config.data_dir, registry.clone(), types)?;
        Ok(Arc::new(AppState { config, registry, pipelines, uploads: AtomicU64::new(0), rejected: AtomicU64::new(0) }))
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
        .route("/api/v1/pipelines", get(list_pipelines).post(create_pipeline))
        .route("/api/v1/pipelines/{id}", get(show_pipeline).delete(delete_pipeline))
        .route("/api/v1/pipelines/{id}/stop", post(stop_pipeline))
        .route("/api/v1/pipelines/{id}/start", post(start_pipeline))
        .route("/api/v1/pipelines/{id}/checkpoints", get(pipeline_checkpoints))
        .route("/api/v1/pipelines/{id}/operators/{op}/swap", post(swap_operator))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

async fn upload_plugin(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
    request: axum::extract::Request,
) -> Result<(StatusCode, Json<PluginVersion>), ApiError> {
    let r = upload(&state, &headers, params, request).await;
    let counter = if r.is_ok() { &state.uploads } else { &state.rejected };
    counter.fetch_add(1, Ordering::Relaxed);
    r.map(|v| (StatusCode::CREATED, Json(v)))
}

fn too_large(state: &AppState) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the upload is larger than this node's limit of {} bytes (weir serve --max-upload)", state.config.max_upload),
    )
}

/// A multipart upload: fields `name` and `version` (or the query
/// parameters) and `file` with the component.
async fn read_multipart(
    state: &AppState,
    request: axum::extract::Request,
    params: &mut HashMap<String, String>,
) -> Result<Bytes, ApiError> {
    use axum::extract::FromRequest;
    let err = |e: axum::extract::multipart::MultipartError| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => too_large(state),
        status => ApiError::new(status, format!("cannot read the multipart upload: {}", e.body_text())),
    };
    let mut form = axum::extract::Multipart::from_request(request, &())
        .await
        .map_err(|e| ApiError::bad_request(format!("cannot read the multipart upload: {}", e.body_text())))?;
    let mut file = None;
    while let Some(field) = form.next_field().await.map_err(err)? {
        match field.name().unwrap_or_default().to_string().as_str() {
            k @ ("name" | "version") => {
                let v = field.text().await.map_err(err)?;
                params.insert(k.to_string(), v);
            }
            "file" => file = Some(field.bytes().await.map_err(err)?),
            other => {
                return Err(ApiError::bad_request(format!(
                    "multipart upload: unknown field '{other}' (expected 'file', 'name' and 'version')"
                )))
            }
        }
    }
    file.ok_or_else(|| ApiError::bad_request("multipart upload: no 'file' field with the component"))
}

async fn upload(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    mut params: HashMap<String, String>,
    request: axum::extract::Request,
) -> Result<PluginVersion, ApiError> {
    use axum::extract::FromRequest;
    state.authorize(headers)?;
    let multipart = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let body = if multipart {
        read_multipart(state, request, &mut params).await?
    } else {
        Bytes::from_request(request, &()).await.map_err(|e: BytesRejection| match e.status() {
            StatusCode::PAYLOAD_TOO_LARGE => too_large(state),
            status => ApiError::new(status, format!("cannot read the upload: {e}")),
        })?
    };
    let param = |k: &str| {
        params.get(k).cloned().ok_or_else(|| {
            ApiError::bad_request(format!(
                "missing query parameter '{k}' (POST /api/v1/plugins?name=N&version=V, or multipart fields name, version and file)"
            ))
        })
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
    let users = state.pipelines.using(&name, &version);
    if !users.is_empty() {
        return Err(ApiError::conflict(format!(
            "plugin {name}@{version} is used by pipeline(s) {}; swap or delete them first",
            users.join(", ")
        )));
    }
    state.registry.delete(&name, &version).map(Json)
}

/// Run blocking control-plane work (job start and stop, compiling plugins) off
/// the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, ApiError> + Send + 'static) -> Result<Json<T>, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError::internal(format!("the request failed: {e}")))?.map(Json)
}

type Answer = Result<Json<serde_json::Value>, ApiError>;

async fn list_pipelines(State(state): State<Arc<AppState>>) -> Json<Vec<serde_json::Value>> {
    Json(state.pipelines.list())
}

async fn create_pipeline(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<String, axum::extract::rejection::StringRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    state.authorize(&headers)?;
    let text = body.map_err(|e| ApiError::bad_request(format!("cannot read the spec: {e}")))?;
    if text.trim().is_empty() {
        return Err(ApiError::bad_request("the request body is empty: send the pipeline spec (YAML or JSON)"));
    }
    let p = state.pipelines.clone();
    blocking(move || p.create(&text)).await.map(|j| (StatusCode::CREATED, j))
}

async fn show_pipeline(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Answer {
    let e = state.pipelines.get(&id)?;
    Ok(Json(state.pipelines.describe(&e)))
}

async fn delete_pipeline(State(state): State<Arc<AppState>>, headers: HeaderMap, Path(id): Path<String>) -> Answer {
    state.authorize(&headers)?;
    let p = state.pipelines.clone();
    blocking(move || p.delete(&id)).await
}

async fn stop_pipeline(State(state): State<Arc<AppState>>, headers: HeaderMap, Path(id): Path<String>) -> Answer {
    state.authorize(&headers)?;
    let p = state.pipelines.clone();
    blocking(move || p.stop(&id)).await
}

async fn start_pipeline(State(state): State<Arc<AppState>>, headers: HeaderMap, Path(id): Path<String>) -> Answer {
    state.authorize(&headers)?;
    let p = state.pipelines.clone();
    blocking(move || p.start(&id)).await
}

async fn pipeline_checkpoints(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Answer {
    let p = state.pipelines.clone();
    blocking(move || p.checkpoints(&id)).await
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SwapRequest {
    /// `name@version` of a plugin in the registry.
    plugin: String,
    /// How long at least the new version runs before the checkpoint that
    /// confirms it (e.g. "5s"); a failure before that rolls it back.
    probation: Option<String>,
}

async fn swap_operator(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((id, op)): Path<(String, String)>,
    body: Result<Json<SwapRequest>, axum::extract::rejection::JsonRejection>,
) -> Answer {
    state.authorize(&headers)?;
    let Json(req) = body.map_err(|e| ApiError::bad_request(format!("swap request: {} (send {{\"plugin\": \"NAME@VERSION\"}})", e.body_text())))?;
    let probation = match &req.probation {
        Some(p) => weir_spec::parse_duration(p).map_err(|e| ApiError::bad_request(format!("probation: {e}")))?,
        None => DEFAULT_PROBATION,
    };
    let p = state.pipelines.clone();
    blocking(move || p.swap(&id, &op, &req.plugin, probation)).await
}

/// A swapped version runs at least this long before the checkpoint that confirms it.
const DEFAULT_PROBATION: std::time::Duration = std::time::Duration::from_secs(5);

async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let mut body = format!(
        "# HELP weir_plugins Plugin versions in the registry.\n# TYPE weir_plugins gauge\nweir_plugins {}\n\
         # HELP weir_plugin_uploads_total Plugin uploads accepted.\n# TYPE weir_plugin_uploads_total counter\nweir_plugin_uploads_total {}\n\
         # HELP weir_plugin_upload_rejections_total Plugin uploads refused.\n# TYPE weir_plugin_upload_rejections_total counter\nweir_plugin_upload_rejections_total {}\n",
        state.registry.count(),
        state.uploads.load(Ordering::Relaxed),
        state.rejected.load(Ordering::Relaxed),
    );
    state.pipelines.metrics(&mut body);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}
