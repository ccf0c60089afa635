//! `/api/v1/pipelines`: creating, inspecting, stopping, starting and
//! deleting pipelines, their checkpoints, and hot swaps of their operators.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;

use crate::model::{Checkpoints, Deleted, ErrorBody, PipelineDetail, PipelineSummary, SwapRequest};
use crate::{ApiError, AppState};

/// The pipeline's id (its spec's name).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub(crate) struct Id {
    #[param(pattern = r"^[A-Za-z0-9_-]{1,64}$")]
    id: String,
}

/// Run blocking control-plane work (job start and stop, compiling plugins) off
/// the async workers.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, ApiError> + Send + 'static) -> Result<Json<T>, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError::internal(format!("the request failed: {e}")))?.map(Json)
}

type Answer = Result<Json<PipelineDetail>, ApiError>;

/// The node's pipelines.
#[utoipa::path(get, path = "/api/v1/pipelines", tag = "pipelines", responses((status = 200, body = Vec<PipelineSummary>)))]
pub(crate) async fn list_pipelines(State(state): State<Arc<AppState>>) -> Json<Vec<PipelineSummary>> {
    Json(state.pipelines.list())
}

/// Create a pipeline from a spec (YAML or JSON; operators name registry
/// plugins as NAME@VERSION), or from a SQL script (`Content-Type:
/// application/sql`, naming itself with `SET 'pipeline.name' = '...'`), and
/// start it; it is stored only if it starts.
#[utoipa::path(
    post,
    path = "/api/v1/pipelines",
    tag = "pipelines",
    request_body(
        description = "the pipeline spec (application/yaml or application/json), or a SQL job (application/sql)",
        content(
            (String = "application/yaml"),
            (String = "application/json"),
            (String = "application/sql"),
        )
    ),
    responses(
        (status = 201, description = "created and running", body = PipelineDetail),
        (status = 400, description = "an invalid spec (the message names line and field), SQL that does not compile (the message names line and column), or a plugin not in the registry", body = ErrorBody),
        (status = 401, description = "missing or wrong token", body = ErrorBody),
        (status = 409, description = "a pipeline with this name exists", body = ErrorBody),
        (status = 422, description = "the job failed to start (a plugin's open failed, say)", body = ErrorBody),
    ),
    security(("token" = []))
)]
pub(crate) async fn create_pipeline(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    body: Result<String, axum::extract::rejection::StringRejection>,
) -> Result<(StatusCode, Json<PipelineDetail>), ApiError> {
    let text = body.map_err(|e| ApiError::bad_request(format!("cannot read the spec: {e}")))?;
    if text.trim().is_empty() {
        return Err(ApiError::bad_request("the request body is empty: send the pipeline spec (YAML or JSON) or a SQL job (application/sql)"));
    }
    let p = state.pipelines.clone();
    let sql = crate::sql::is_sql(&headers).then(|| state.sql.clone());
    blocking(move || {
        let spec = match sql {
            None => text,
            Some(None) => return Err(ApiError::bad_request("this node takes no SQL jobs (it was built without a SQL compiler)")),
            Some(Some(compiler)) => {
                let check = |spec: &str| p.parse(spec, None).map(drop).map_err(|e| e.message);
                compiler.compile(&text, p.registry.clone(), &check).map_err(|e| ApiError::bad_request(e.to_string()))?
            }
        };
        p.create(&spec)
    })
    .await
    .map(|j| (StatusCode::CREATED, j))
}

/// A pipeline's status: per node records in and out and plugin version, the
/// last checkpoint, the last swap.
#[utoipa::path(
    get,
    path = "/api/v1/pipelines/{id}",
    tag = "pipelines",
    params(Id),
    responses((status = 200, body = PipelineDetail), (status = 404, description = "no such pipeline", body = ErrorBody))
)]
pub(crate) async fn show_pipeline(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Answer {
    let p = state.pipelines.clone();
    blocking(move || p.get(&id).map(|e| p.describe(&e))).await
}

/// Stop the pipeline (no savepoint) and delete it with its checkpoints.
#[utoipa::path(
    delete,
    path = "/api/v1/pipelines/{id}",
    tag = "pipelines",
    params(Id),
    responses(
        (status = 200, description = "deleted", body = Deleted),
        (status = 401, description = "missing or wrong token", body = ErrorBody),
        (status = 404, description = "no such pipeline", body = ErrorBody),
    ),
    security(("token" = []))
)]
pub(crate) async fn delete_pipeline(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Result<Json<Deleted>, ApiError> {
    let p = state.pipelines.clone();
    blocking(move || p.delete(&id)).await
}

/// Take a savepoint, then stop; it stays stopped across node restarts until
/// started.
#[utoipa::path(
    post,
    path = "/api/v1/pipelines/{id}/stop",
    tag = "pipelines",
    params(Id),
    responses(
        (status = 200, description = "stopped; `savepoint` names the savepoint taken", body = PipelineDetail),
        (status = 401, description = "missing or wrong token", body = ErrorBody),
        (status = 404, description = "no such pipeline", body = ErrorBody),
    ),
    security(("token" = []))
)]
pub(crate) async fn stop_pipeline(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Answer {
    let p = state.pipelines.clone();
    blocking(move || p.stop(&id)).await
}

/// `POST .../start` options.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct StartOptions {
    /// Start afresh: delete the pipeline's checkpoints (when none of them can
    /// be resumed from, say) and run it from the beginning.
    #[serde(default)]
    fresh: bool,
}

/// Start a stopped (finished, failed) pipeline; it resumes from its latest
/// checkpoint, or starts afresh with `fresh=true`.
#[utoipa::path(
    post,
    path = "/api/v1/pipelines/{id}/start",
    tag = "pipelines",
    params(Id, StartOptions),
    responses(
        (status = 200, description = "running", body = PipelineDetail),
        (status = 400, description = "a bad `fresh`, or it cannot start: a spec that no longer parses, a plugin not in the registry, checkpoints of which none can be resumed from (start it with fresh=true)", body = ErrorBody),
        (status = 401, description = "missing or wrong token", body = ErrorBody),
        (status = 404, description = "no such pipeline", body = ErrorBody),
        (status = 409, description = "it is running or restarting, or it is damaged", body = ErrorBody),
        (status = 422, description = "the job failed to start", body = ErrorBody),
    ),
    security(("token" = []))
)]
pub(crate) async fn start_pipeline(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    options: Result<Query<StartOptions>, QueryRejection>,
) -> Answer {
    let Query(options) = options.map_err(|e| ApiError::bad_request(format!("{} (start?fresh=true or start?fresh=false)", e.body_text())))?;
    let p = state.pipelines.clone();
    blocking(move || p.start(&id, options.fresh)).await
}

/// The pipeline's stored checkpoints (newest first) and savepoints.
#[utoipa::path(
    get,
    path = "/api/v1/pipelines/{id}/checkpoints",
    tag = "pipelines",
    params(Id),
    responses((status = 200, body = Checkpoints), (status = 404, description = "no such pipeline", body = ErrorBody))
)]
pub(crate) async fn pipeline_checkpoints(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Result<Json<Checkpoints>, ApiError> {
    let p = state.pipelines.clone();
    blocking(move || p.checkpoints(&id)).await
}

/// Hot swap: replace the operator's plugin while the pipeline runs, keeping
/// its state; tried out first, switched at a checkpoint barrier, confirmed
/// after its probation or rolled back.
#[utoipa::path(
    post,
    path = "/api/v1/pipelines/{id}/operators/{op}/swap",
    tag = "pipelines",
    params(Id, ("op" = String, Path, description = "the operator")),
    request_body = SwapRequest,
    responses(
        (status = 200, description = "every task switched (`swap.status`: switched)", body = PipelineDetail),
        (status = 400, description = "a bad request or probation", body = ErrorBody),
        (status = 401, description = "missing or wrong token", body = ErrorBody),
        (status = 404, description = "no such pipeline, operator or plugin", body = ErrorBody),
        (status = 409, description = "not running, already swapping, or it runs that version", body = ErrorBody),
        (status = 422, description = "the new version failed its trial; nothing changed", body = ErrorBody),
    ),
    security(("token" = []))
)]
pub(crate) async fn swap_operator(
    State(state): State<Arc<AppState>>,
    Path((id, op)): Path<(String, String)>,
    body: Result<Json<SwapRequest>, axum::extract::rejection::JsonRejection>,
) -> Answer {
    let Json(req) = body.map_err(|e| ApiError::bad_request(format!("swap request: {} (send {{\"plugin\": \"NAME@VERSION\"}})", e.body_text())))?;
    let probation = match &req.probation {
        Some(p) => weir_spec::parse_duration(p)
            .and_then(|d| weir_spec::units::duration_in_range(d, std::time::Duration::ZERO, MAX_PROBATION))
            .map_err(|e| ApiError::bad_request(format!("probation: {e}")))?,
        None => DEFAULT_PROBATION,
    };
    let p = state.pipelines.clone();
    blocking(move || p.swap(&id, &op, &req.plugin, probation)).await
}

/// A swapped version runs at least this long before the checkpoint that confirms it.
const DEFAULT_PROBATION: std::time::Duration = std::time::Duration::from_secs(5);
/// The longest probation: checkpoints (and so publishing) wait for it.
const MAX_PROBATION: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

