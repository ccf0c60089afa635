//! The spec as written: the top level, and the fields every source,
//! operator and sink has, with source positions. The rest of an entry is its
//! type's config (see `registry.rs`).

use marked_yaml::types::MarkedMappingNode;
use marked_yaml::{Node, Spanned};
use serde::de::IgnoredAny;
use serde::Deserialize;

use crate::SpecError;

pub(crate) type S = Spanned<String>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSpec {
    pub name: S,
    pub batch: Option<RawBatch>,
    pub max_parallelism: Option<Spanned<u64>>,
    pub checkpoint: Option<RawCheckpoint>,
    // Read from the node itself (their entries are split by type); named
    // here so that an unknown top-level field lists them.
    #[serde(rename = "state")]
    _state: Option<IgnoredAny>,
    #[serde(rename = "sources")]
    _sources: Option<IgnoredAny>,
    #[serde(rename = "operators")]
    _operators: Option<IgnoredAny>,
    #[serde(rename = "sinks")]
    _sinks: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBatch {
    pub size: Option<Spanned<u64>>,
    pub timeout: Option<S>,
}

/// `state:` besides the backend's own settings.
pub(crate) const STATE_COMMON: &[&str] = &["backend", "dir", "local_dir"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawState {
    pub backend: Option<S>,
    pub dir: Option<S>,
    pub local_dir: Option<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCheckpoint {
    pub interval: Option<S>,
    pub retain: Option<Spanned<u64>>,
}

pub(crate) const SOURCE_COMMON: &[&str] =
    &["name", "type", "parallelism", "timestamp", "timestamp_unit", "watermark", "on_error", "max_dead_letters_per_minute"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSource {
    pub name: S,
    #[serde(rename = "type")]
    pub kind: S,
    pub parallelism: Option<Spanned<u64>>,
    pub timestamp: Option<S>,
    pub timestamp_unit: Option<S>,
    pub watermark: Option<RawWatermark>,
    pub on_error: Option<S>,
    pub max_dead_letters_per_minute: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWatermark {
    pub strategy: Option<S>,
    pub out_of_orderness: Option<S>,
    pub idle_timeout: Option<S>,
}

pub(crate) const OPERATOR_COMMON: &[&str] =
    &["name", "type", "input", "inputs", "key_by", "parallelism", "on_error", "max_dead_letters_per_minute"];
pub(crate) const SINK_COMMON: &[&str] = &["name", "type", "input", "inputs", "key_by", "parallelism"];

/// The common fields of an operator or a sink.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNode {
    pub name: S,
    #[serde(rename = "type")]
    pub kind: Option<S>,
    pub input: Option<S>,
    pub inputs: Option<Vec<S>>,
    pub key_by: Option<S>,
    pub parallelism: Option<Spanned<u64>>,
    /// Operators only (sinks do not split it off).
    pub on_error: Option<S>,
    pub max_dead_letters_per_minute: Option<Spanned<u64>>,
}

/// An entry split into its common fields (as `T`) and the rest (its type's
/// config), both with their positions.
pub(crate) struct Entry<T> {
    pub common: T,
    pub rest: Node,
    /// The whole entry, for errors at any of its fields.
    pub node: Node,
}

/// Split a mapping node into the fields named in `common` and the others.
pub(crate) fn split<T: for<'de> Deserialize<'de>>(
    file: &str,
    field: &str,
    node: &Node,
    common: &[&str],
) -> Result<Entry<T>, SpecError> {
    let Some(map) = node.as_mapping() else {
        return Err(SpecError::at(file, node.span().start(), format!("{field}: expected a mapping (name: ..., type: ...)")));
    };
    let mut ours = MarkedMappingNode::new_empty(*map.span());
    let mut rest = MarkedMappingNode::new_empty(*map.span());
    for (k, v) in map.iter() {
        if common.contains(&k.as_str()) {
            ours.insert(k.clone(), v.clone());
        } else {
            rest.insert(k.clone(), v.clone());
        }
    }
    let ours = Node::from(ours);
    let common_fields: T = marked_yaml::from_node(&ours).map_err(|e| SpecError::from_serde_in(file, field, &[], e))?;
    Ok(Entry { common: common_fields, rest: Node::from(rest), node: node.clone() })
}

/// The entries of a top-level list (`sources:`, ...), if it is there.
pub(crate) fn entries<'a>(file: &str, root: &'a Node, key: &str) -> Result<Vec<&'a Node>, SpecError> {
    let Some(n) = root.as_mapping().and_then(|m| m.get_node(key)) else { return Ok(Vec::new()) };
    match n.as_sequence() {
        Some(seq) => Ok(seq.iter().collect()),
        None => Err(SpecError::at(file, n.span().start(), format!("{key}: expected a list"))),
    }
}
