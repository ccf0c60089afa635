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
mod model;
mod openapi;
mod pipeline_routes;
mod pipelines;
mod plugin_routes;
mod registry;
mod supervisor;
mod swap;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use weir_wasm::PluginLoader;

pub use error::ApiError;
pub use model::{FailureKind, PipelineDetail, PipelineStatus, PipelineSummary, SwapInfo, SwapStatus};
pub use pipelines::Pipelines;
pub use registry::{PluginVersion, Registry};

use pipeline_routes::*;
use plugin_routes::*;

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
    metrics: metrics::NodeMetrics,
}

impl AppState {
    /// A node over `config.data_dir`: plugins loaded with `loader`, specs
    /// checked and built with `types` (every connector and operator kind the
    /// binary has).
    pub fn new(config: ApiConfig, loader: PluginLoader, types: Arc<weir_spec::Registry>) -> Result<Arc<AppState>, ApiError> {
        let registry = Arc::new(Registry::open(&config.data_dir, loader)?);
        let pipelines = Pipelines::open(&config.data_dir, registry.clone(), types)?;
        let metrics = metrics::NodeMetrics::new(pipelines.clone(), registry.clone());
        Ok(Arc::new(AppState { config, registry, pipelines, metrics }))
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
