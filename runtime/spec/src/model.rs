//! The spec as written: field names and shapes, with source positions.

use std::collections::BTreeMap;

use marked_yaml::Spanned;
use serde::Deserialize;

type S = Spanned<String>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSpec {
    pub name: S,
    pub batch: Option<RawBatch>,
    pub max_parallelism: Option<Spanned<u32>>,
    pub state: Option<RawState>,
    pub checkpoint: Option<RawCheckpoint>,
    #[serde(default)]
    pub sources: Vec<RawSource>,
    #[serde(default)]
    pub operators: Vec<RawOperator>,
    #[serde(default)]
    pub sinks: Vec<RawSink>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBatch {
    pub size: Option<Spanned<usize>>,
    pub timeout: Option<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawState {
    pub backend: Option<S>,
    pub dir: Option<S>,
    pub local_dir: Option<S>,
    pub cache: Option<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCheckpoint {
    pub interval: Option<S>,
    pub retain: Option<Spanned<usize>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSource {
    pub name: S,
    #[serde(rename = "type")]
    pub kind: S,
    pub parallelism: Option<Spanned<u32>>,
    // file
    pub path: Option<S>,
    pub format: Option<S>,
    // generator
    pub seed: Option<Spanned<u64>>,
    pub count: Option<Spanned<u64>>,
    pub rate: Option<Spanned<f64>>,
    pub keys: Option<Spanned<u64>>,
    pub start_ms: Option<Spanned<i64>>,
    // event time
    pub timestamp: Option<S>,
    pub watermark: Option<RawWatermark>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWatermark {
    pub strategy: Option<S>,
    pub out_of_orderness: Option<S>,
    pub idle_timeout: Option<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOperator {
    pub name: S,
    pub plugin: S,
    pub input: Option<S>,
    pub inputs: Option<Vec<S>>,
    pub key_by: Option<S>,
    pub parallelism: Option<Spanned<u32>>,
    pub config: Option<BTreeMap<String, S>>,
    pub limits: Option<RawLimits>,
    pub window: Option<RawWindow>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWindow {
    #[serde(rename = "type")]
    pub kind: S,
    pub size: Option<S>,
    pub slide: Option<S>,
    pub gap: Option<S>,
    pub allowed_lateness: Option<S>,
    pub late_output: Option<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimits {
    pub memory: Option<S>,
    pub call_timeout: Option<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSink {
    pub name: S,
    #[serde(rename = "type")]
    pub kind: S,
    pub input: Option<S>,
    pub inputs: Option<Vec<S>>,
    pub key_by: Option<S>,
    pub parallelism: Option<Spanned<u32>>,
    pub path: Option<S>,
}
