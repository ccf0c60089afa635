//! `/api/v1/plugins`: uploading, listing and deleting plugin versions.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;

use crate::model::ErrorBody;
use crate::{ApiError, AppState, PluginVersion};

/// The name and version of an upload (query parameters, or multipart fields).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(crate) struct Upload {
    /// 1 to 64 letters, digits, '-' or '_'.
    #[param(pattern = r"^[A-Za-z0-9_-]{1,64}$")]
    name: String,
    /// 1 to 64 letters, digits, '.', '-', '_' or '+'.
    #[param(pattern = r"^[A-Za-z0-9._+-]{1,64}$")]
    version: String,
}

/// A plugin's name in a path.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub(crate) struct PluginName {
    /// 1 to 64 letters, digits, '-' or '_'.
    #[param(pattern = r"^[A-Za-z0-9_-]{1,64}$")]
    name: String,
}

/// A plugin's version in a path.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path, names("version"))]
#[allow(dead_code)]
pub(crate) struct PluginVersionParam(#[param(pattern = r"^[A-Za-z0-9._+-]{1,64}$")] String);

/// Upload a plugin version: the component as the body (or a multipart form
/// with `name`, `version` and `file`). It is checked to be a component of a
/// known world before anything is stored, and stored once by sha256.
#[utoipa::path(
    post,
    path = "/api/v1/plugins",
    tag = "plugins",
    params(Upload),
    request_body(content = Vec<u8>, description = "the component's bytes (any content type, e.g. application/wasm), or multipart/form-data with fields name, version and file", content_type = "application/octet-stream"),
    responses(
        (status = 201, description = "stored", body = PluginVersion),
        (status = 400, description = "not a component, a core module, another world, or a bad name or version", body = ErrorBody),
        (status = 401, description = "missing or wrong token", body = ErrorBody),
        (status = 409, description = "this version is stored with other content", body = ErrorBody),
        (status = 413, description = "larger than the node's --max-upload", body = ErrorBody),
    ),
    security(("token" = []))
)]
pub(crate) async fn upload_plugin(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
    request: axum::extract::Request,
) -> Result<(StatusCode, Json<PluginVersion>), ApiError> {
    let r = upload(&state, &headers, params, request).await;
    let counter = if r.is_ok() { &state.metrics.uploads } else { &state.metrics.rejected };
    counter.inc();
    r.map(|v| (StatusCode::CREATED, Json(v)))
}

pub(crate) fn too_large(state: &AppState) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the upload is larger than this node's limit of {} bytes (weir serve --max-upload)", state.config.max_upload),
    )
}

/// A multipart upload: fields `name` and `version` (or the query
/// parameters) and `file` with the component.
pub(crate) async fn read_multipart(
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

pub(crate) async fn upload(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    mut params: HashMap<String, String>,
    request: axum::extract::Request,
) -> Result<PluginVersion, ApiError> {
    use axum::extract::FromRequest;
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

/// Every plugin version in the registry.
#[utoipa::path(get, path = "/api/v1/plugins", tag = "plugins", responses((status = 200, body = Vec<PluginVersion>)))]
pub(crate) async fn list_plugins(State(state): State<Arc<AppState>>) -> Json<Vec<PluginVersion>> {
    let users = state.pipelines.plugin_users();
    let mut list = state.registry.list();
    for v in &mut list {
        v.used_by = users.get(&format!("{}@{}", v.name, v.version)).cloned().unwrap_or_default();
    }
    Json(list)
}

/// The versions of one plugin.
#[utoipa::path(
    get,
    path = "/api/v1/plugins/{name}",
    tag = "plugins",
    params(PluginName),
    responses((status = 200, body = Vec<PluginVersion>), (status = 404, description = "no such plugin", body = ErrorBody))
)]
pub(crate) async fn plugin_versions(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Result<Json<Vec<PluginVersion>>, ApiError> {
    state.registry.versions(&name).map(Json)
}

/// Delete a plugin version (refused while a pipeline runs it).
#[utoipa::path(
    delete,
    path = "/api/v1/plugins/{name}/{version}",
    tag = "plugins",
    params(PluginName, PluginVersionParam),
    responses(
        (status = 200, description = "deleted", body = PluginVersion),
        (status = 401, description = "missing or wrong token", body = ErrorBody),
        (status = 404, description = "no such plugin or version", body = ErrorBody),
        (status = 409, description = "a pipeline uses it", body = ErrorBody),
    ),
    security(("token" = []))
)]
pub(crate) async fn delete_plugin(
    State(state): State<Arc<AppState>>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<PluginVersion>, ApiError> {
    let users = state.pipelines.using(&name, &version);
    if !users.is_empty() {
        return Err(ApiError::conflict(format!(
            "plugin {name}@{version} is used by pipeline(s) {}; swap or delete them first",
            users.join(", ")
        )));
    }
    state.registry.delete(&name, &version).map(Json)
}

