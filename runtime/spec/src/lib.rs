//! Weir pipeline specs: YAML with `${VAR}` / `${VAR:default}` environment
//! interpolation, validated before anything runs, with errors that name the
//! file, line, column and field; then planned into an engine dataflow.
//!
//! ```yaml
//! name: wordcount
//! sources:
//!   - name: lines
//!     type: file
//!     path: ${WEIR_INPUT:examples/wordcount/input.txt}
//! operators:
//!   - name: tokenize
//!     plugin: target/wasm32-wasip2/release/word_count.wasm
//!     input: lines
//!     config: { stage: tokenize }
//!   - name: count
//!     plugin: target/wasm32-wasip2/release/word_count.wasm
//!     input: tokenize
//!     key_by: key
//!     parallelism: 2
//! sinks:
//!   - name: out
//!     type: file
//!     path: ${WEIR_OUTPUT:out/wordcount}
//!     input: count
//! ```

mod error;
mod interpolate;
mod launch;
mod model;
mod plan;
mod units;
mod validate;
mod window;

pub use error::SpecError;
pub use launch::{launch, lock_path, open_storage, savepoint_requests_dir, Launch, LaunchOptions, Resumed};
pub use plan::{plan, plan_with, Planned, PlannedOperator};
pub use units::{parse_bytes, parse_duration};
pub use validate::{
    Backend, CheckpointDef, InputRef, OperatorDef, PipelineSpec, PluginRef, SinkDef, SinkKind, SourceDef, SourceKind,
    StateDef,
};

use std::path::Path;

/// Read, interpolate and validate a spec file.
pub fn load_file(path: &Path) -> Result<PipelineSpec, SpecError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| SpecError::File { file: path.display().to_string(), message: format!("cannot read: {e}") })?;
    parse(&text, &path.display().to_string(), &|name| std::env::var(name).ok())
}

/// Parse a spec from text; `file` names it in errors, `env` resolves `${VAR}`.
pub fn parse(text: &str, file: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<PipelineSpec, SpecError> {
    parse_in(text, file, env, None)
}

/// Parse a spec sent to a node whose pipelines live in `pipelines_dir`: no
/// environment, state in `<pipelines_dir>/<name>/state` unless `state.dir`
/// says otherwise, and checkpoints every second unless `checkpoint` says
/// otherwise.
pub fn parse_on_node(text: &str, file: &str, pipelines_dir: &Path) -> Result<PipelineSpec, SpecError> {
    parse_in(text, file, &|_| None, Some(pipelines_dir))
}

fn parse_in(
    text: &str,
    file: &str,
    env: &dyn Fn(&str) -> Option<String>,
    node_dir: Option<&Path>,
) -> Result<PipelineSpec, SpecError> {
    let mut node = marked_yaml::parse_yaml_with_options(
        0,
        text,
        marked_yaml::LoaderOptions::default().error_on_duplicate_keys(true),
    )
    .map_err(|e| SpecError::from_load(file, e))?;
    interpolate::node(&mut node, env).map_err(|(marker, message)| SpecError::at(file, marker.as_ref(), message))?;
    let raw: model::RawSpec = marked_yaml::from_node(&node).map_err(|e| SpecError::from_serde(file, e))?;
    validate::validate(raw, file, node_dir)
}
