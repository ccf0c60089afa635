//! The OpenAPI 3.1 document of the API, generated from the handlers'
//! annotations and the body types, so that it cannot drift from them.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::model::{
    CheckpointEntry, CheckpointStatus, Checkpoints, Deleted, ErrorBody, Graph, GraphEdge, GraphNode, LastCheckpoint, LogLine, Logs,
    NodeStatus, PipelineDetail, PipelineStatus, PipelineSummary, RetryInfo, StoredCheckpoint, SwapInfo, SwapRequest, SwapStatus,
};
use crate::PluginVersion;

#[derive(OpenApi)]
#[openapi(
    info(title = "Weir node API", description = "Plugins, pipelines, checkpoints and hot swaps of a Weir node. With a token, requests need `Authorization: Bearer <token>`."),
    paths(
        crate::plugin_routes::upload_plugin,
        crate::plugin_routes::list_plugins,
        crate::plugin_routes::plugin_versions,
        crate::plugin_routes::delete_plugin,
        crate::pipeline_routes::list_pipelines,
        crate::pipeline_routes::create_pipeline,
        crate::pipeline_routes::show_pipeline,
        crate::pipeline_routes::delete_pipeline,
        crate::pipeline_routes::stop_pipeline,
        crate::pipeline_routes::start_pipeline,
        crate::pipeline_routes::pipeline_checkpoints,
        crate::pipeline_routes::swap_operator,
        crate::live_routes::pipeline_logs,
        crate::live_routes::pipeline_events,
        crate::live_routes::node_events,
        crate::metrics,
    ),
    components(schemas(
        PluginVersion, PipelineSummary, PipelineDetail, PipelineStatus, NodeStatus, CheckpointStatus, LastCheckpoint, SwapInfo,
        SwapStatus, SwapRequest, RetryInfo, Deleted, Checkpoints, StoredCheckpoint, ErrorBody, Graph, GraphNode, GraphEdge,
        CheckpointEntry, LogLine, Logs
    )),
    modifiers(&Token),
    tags((name = "plugins", description = "The plugin registry"), (name = "pipelines", description = "Pipelines and hot swaps"), (name = "node", description = "The node itself"))
)]
pub(crate) struct ApiDoc;

/// The bearer token as a security scheme, required by every operation (a
/// node with `--public-metrics` serves `/metrics` without it): each one
/// says so, and that it answers 401 without it.
struct Token;

impl Modify for Token {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme("token", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()));
        let unauthorized = ResponseBuilder::new()
            .description("missing or wrong token")
            .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build())
            .build();
        for item in doc.paths.paths.values_mut() {
            let ops = [&mut item.get, &mut item.post, &mut item.put, &mut item.delete, &mut item.patch, &mut item.head];
            for op in ops.into_iter().flatten() {
                op.security = Some(vec![SecurityRequirement::new("token", Vec::<String>::new())]);
                op.responses.responses.entry("401".into()).or_insert_with(|| unauthorized.clone().into());
            }
        }
    }
}

/// The document as served at `/api/v1/openapi.json`.
pub(crate) fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
