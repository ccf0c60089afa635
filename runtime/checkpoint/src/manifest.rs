//! The manifest: the last object written for a checkpoint, naming every file
//! with its size and checksum. A checkpoint without a manifest is incomplete.

use serde::{Deserialize, Serialize};

pub(crate) const FORMAT: u32 = 1;
pub(crate) const MANIFEST: &str = "_manifest.json";

/// A node of the pipeline, as recorded in each checkpoint: restoring into a
/// pipeline with other nodes is refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub name: String,
    /// "source", "operator" or "sink".
    pub kind: String,
    pub parallelism: u32,
    /// An operator's plugin (`name@version`) and the SHA-256 of its component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin_sha256: Option<String>,
    /// What the node's keyed state layout depends on (a window operator's
    /// windows): state written under another shape is not restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_shape: Option<String>,
}

/// A stored file: its name in the task's snapshot, where it is relative to
/// the storage root, its size and xxh3-128 checksum (hex), and whether it is
/// shared between checkpoints.
pub(crate) type FileEntry = weir_engine::StoredFile;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct TaskEntry {
    pub node: String,
    pub task: u32,
    pub parallelism: u32,
    /// A source's position, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<String>,
    /// A source's greatest event timestamp so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<i64>,
    #[serde(default)]
    pub files: Vec<FileEntry>,
    /// Its part is the task's final snapshot (its input had ended).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub finished: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub format: u32,
    pub pipeline: String,
    pub epoch: u64,
    /// The last checkpoint of a bounded run that completed.
    pub finished: bool,
    pub created_ms: i64,
    pub nodes: Vec<NodeInfo>,
    pub tasks: Vec<TaskEntry>,
}

impl From<&weir_engine::StoredTask> for TaskEntry {
    fn from(t: &weir_engine::StoredTask) -> Self {
        TaskEntry {
            node: t.node.clone(),
            task: t.task,
            parallelism: t.parallelism,
            position: t.position.as_ref().map(hex::encode),
            watermark: t.watermark,
            files: t.files.clone(),
            finished: t.finished,
        }
    }
}

impl Manifest {
    pub fn total_bytes(&self) -> u64 {
        self.tasks.iter().flat_map(|t| &t.files).map(|f| f.size).sum()
    }
}

/// "a (source), b (operator)": for messages.
pub(crate) fn describe_nodes(nodes: &[NodeInfo]) -> String {
    nodes.iter().map(|n| format!("{} ({})", n.name, n.kind)).collect::<Vec<_>>().join(", ")
}
