//! Weir pipeline specs: YAML with `${VAR}` / `${VAR:default}` environment
//! interpolation, validated before anything runs, with errors that name the
//! file, line, column and field; then planned into an engine dataflow.
//!
//! The spec itself knows only what every pipeline has (name, batching, key
//! groups, state, checkpoints) and the common fields of its nodes; sources,
//! operators, sinks and state backends are types registered in a
//! [`Registry`] by the crates that implement them, each with its own typed
//! config and checks.
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
mod heap;
mod interpolate;
mod model;
mod paths;
mod plan;
mod registry;
pub mod units;
mod validate;

pub use error::SpecError;
pub use paths::PathPolicy;
pub use plan::{build_env, plan, Planned, PlannedNode, RegistryResolver};
pub use registry::{
    BuildContext, BuildEnv, BuildError, BuiltOperator, Changelog, Check, Extensions, Logic, OperatorKind, RecordShape, Registry,
    SinkConnector, SourceConnector, StateBackend, DEFAULT_OPERATOR,
};
pub use units::{parse_bytes, parse_duration};
pub use validate::{CheckpointDef, InputRef, NodeDef, PipelineSpec, PluginRef, StateDef};

use std::path::Path;

/// Read, interpolate and validate a spec file.
pub fn load_file(path: &Path, registry: &Registry) -> Result<PipelineSpec, SpecError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| SpecError::File { file: path.display().to_string(), message: format!("cannot read: {e}") })?;
    parse(&text, &path.display().to_string(), &|name| std::env::var(name).ok(), registry)
}

/// Parse a spec from text; `file` names it in errors, `env` resolves `${VAR}`.
pub fn parse(text: &str, file: &str, env: &dyn Fn(&str) -> Option<String>, registry: &Registry) -> Result<PipelineSpec, SpecError> {
    parse_in(text, file, env, None, registry)
}

/// Fuzzing entry (the `spec` target of `fuzz/` and the bounded runs of the
/// tests): any bytes are a spec that validates or an error, never a panic, a
/// hang or an overflowed stack.
#[doc(hidden)]
pub fn fuzz_spec(data: &[u8], registry: &Registry) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let env = |name: &str| (name == "X").then(|| "1".to_string());
    if let Err(e) = parse(text, "fuzz.yaml", &env, registry) {
        let _ = e.to_string();
    }
    let node = Path::new("/nonexistent/weir-fuzz");
    if let Ok(paths) = PathPolicy::new([node.to_path_buf()]) {
        let _ = parse_on_node(text, "fuzz.yaml", &node.join("pipelines"), &paths, registry);
    }
}

/// Parse a spec sent to a node whose pipelines live in `pipelines_dir`: no
/// environment, state in `<pipelines_dir>/<name>/state` unless `state.dir`
/// says otherwise, and checkpoints every second unless `checkpoint` says
/// otherwise; files it reads and writes (and its state) only under the roots
/// of `paths`.
pub fn parse_on_node(
    text: &str,
    file: &str,
    pipelines_dir: &Path,
    paths: &PathPolicy,
    registry: &Registry,
) -> Result<PipelineSpec, SpecError> {
    parse_in(text, file, &|_| None, Some((pipelines_dir, paths)), registry)
}

fn parse_in(
    text: &str,
    file: &str,
    env: &dyn Fn(&str) -> Option<String>,
    node: Option<(&Path, &PathPolicy)>,
    registry: &Registry,
) -> Result<PipelineSpec, SpecError> {
    let mut root = marked_yaml::parse_yaml_with_options(
        0,
        text,
        marked_yaml::LoaderOptions::default().error_on_duplicate_keys(true),
    )
    .map_err(|e| SpecError::from_load(file, e))?;
    interpolate::node(&mut root, env).map_err(|(marker, message)| SpecError::at(file, marker.as_ref(), message))?;
    validate::validate(&root, file, node, registry)
}
