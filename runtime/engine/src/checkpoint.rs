//! Checkpoints as the engine sees them: what a task's snapshot holds, where
//! snapshots go ([`CheckpointStore`], implemented by `weir-checkpoint`), and
//! what a restored run starts from ([`RestorePlan`]).
//!
//! The protocol is Flink's (asynchronous barrier snapshots, a variant of
//! Chandy-Lamport): the coordinator asks every source task to inject a barrier
//! for epoch `n`; a task that has a barrier `n` from every live input snapshots
//! its chain (source positions, operator state, sink pre-commit), forwards the
//! barrier and hands the snapshot to an uploader thread of its own process,
//! which writes and stores the files while the task goes on and then tells
//! the coordinator what it stored. When every task's part is stored, the
//! coordinator completes the checkpoint (its manifest goes last) and sinks
//! commit what they staged up to `n` (two-phase commit).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use weir_state::StateError;

pub use weir_state::{RestoreFiles, SnapshotFile};

/// The epoch a sink stages its last output under when its input has ended;
/// `Sink::commit(FINAL_EPOCH)` publishes everything. Stored task snapshots
/// under this epoch are final: they stand for their task in every later
/// checkpoint of the run.
pub const FINAL_EPOCH: u64 = u64::MAX;

/// Writes an operator's snapshot files; runs on an uploader thread, so the
/// task goes on processing meanwhile.
pub type SnapshotWriter = Box<dyn FnOnce() -> Result<Vec<SnapshotFile>, StateError> + Send>;

/// One parallel task's part of a checkpoint, for one node of its chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskState {
    pub node: String,
    pub task: u32,
    pub parallelism: u32,
    /// A source's replay position.
    pub position: Option<Vec<u8>>,
    /// A source's greatest event timestamp so far (its watermark's basis).
    pub watermark: Option<i64>,
    /// An operator's state files, in the task's local staging directory until
    /// stored.
    pub files: Vec<SnapshotFile>,
}

/// A snapshot file as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredFile {
    /// Its name within the task's snapshot.
    pub name: String,
    /// Where it is, relative to the storage's root.
    pub path: String,
    pub size: u64,
    /// xxh3-128 of the contents, hex.
    pub checksum: String,
    /// Immutable and referenced by several checkpoints (incremental).
    #[serde(default)]
    pub shared: bool,
}

/// One node's part of one task's snapshot, stored: what the task's process
/// tells the coordinator, and what the checkpoint's manifest lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredTask {
    pub node: String,
    pub task: u32,
    pub parallelism: u32,
    pub position: Option<Vec<u8>>,
    pub watermark: Option<i64>,
    pub files: Vec<StoredFile>,
    /// The task's final snapshot, taken when its input ended: it stands for
    /// the task in every later checkpoint of the run, and covers what a sink
    /// of the task staged under [`FINAL_EPOCH`].
    pub finished: bool,
}

/// A failure of checkpoint storage or of writing a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("checkpoint storage {location}: {message}")]
    Storage { location: String, message: String },
    #[error("snapshot of '{node}' (task {task}): {source}")]
    Snapshot {
        node: String,
        task: u32,
        #[source]
        source: StateError,
    },
    #[error("cannot prepare the snapshot's staging directory {path}: {source}")]
    Staging {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A checkpoint named for a savepoint is not there.
    #[error("checkpoint {epoch} has no manifest, so it cannot be kept as savepoint '{name}'")]
    NoManifest { epoch: u64, name: String },
}

/// Where checkpoints are stored.
pub trait CheckpointStore: Send + Sync {
    /// Store the snapshots one task took for checkpoint `epoch`
    /// ([`FINAL_EPOCH`]: its final snapshot, which later checkpoints name
    /// again). Called on an uploader thread of the process the task runs in,
    /// never on a task's own thread or the coordinator's.
    fn store_task(&self, epoch: u64, states: &[TaskState]) -> Result<Vec<StoredTask>, StoreError>;

    /// Every task's part of `epoch` is stored: make the checkpoint complete
    /// (its manifest, naming `tasks`, goes last). `finished` marks the last
    /// checkpoint of a bounded run.
    fn complete(&self, epoch: u64, finished: bool, tasks: &[StoredTask]) -> Result<(), StoreError>;

    /// Forget what was stored for an epoch that will not complete.
    fn abort(&self, _epoch: u64) {}

    /// Keep complete checkpoint `epoch` as savepoint `name` as well.
    fn keep_as_savepoint(&self, _epoch: u64, _name: &str) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Checkpointing settings of a job.
#[derive(Clone)]
pub struct CheckpointConfig {
    /// How often the coordinator starts a checkpoint; `None`: only the final
    /// checkpoint at the end of a bounded run (and those asked for).
    pub interval: Option<Duration>,
    pub store: Arc<dyn CheckpointStore>,
    /// Local scratch space for snapshot files before they are stored.
    pub staging_dir: PathBuf,
    /// The first epoch to use (one past the restored checkpoint's).
    pub first_epoch: u64,
}

impl std::fmt::Debug for CheckpointConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointConfig")
            .field("interval", &self.interval)
            .field("staging_dir", &self.staging_dir)
            .field("first_epoch", &self.first_epoch)
            .finish_non_exhaustive()
    }
}

/// What a node restores from: every task's part of the node in the checkpoint.
#[derive(Clone, Debug, Default)]
pub struct NodeRestore {
    /// The node's parallelism when the checkpoint was taken.
    pub parallelism: u32,
    /// Per task of that parallelism: the source position and greatest event
    /// timestamp...
    pub positions: Vec<Option<Vec<u8>>>,
    pub watermarks: Vec<Option<i64>>,
    /// ...and the operator's state files, downloaded to local paths.
    pub files: Vec<RestoreFiles>,
    /// Per task: its input had ended when the checkpoint was taken (its part
    /// is its final snapshot).
    pub finished: Vec<bool>,
}

/// Whether the checkpoint a job resumes from (`restored`: its epoch and
/// whether it is the last of a completed run; `state`: the sink node's part of
/// it) covers the output sink task `task` staged under `epoch`: epochs up to
/// the checkpoint's, and the [`FINAL_EPOCH`] of a task whose final snapshot
/// the checkpoint holds (every task's, for the last checkpoint of a completed
/// run). A sink's `recover` publishes staged output that is covered, and
/// discards the rest.
pub fn covers(restored: Option<(u64, bool)>, state: Option<&NodeRestore>, task: u32, epoch: u64) -> bool {
    let Some((at, finished)) = restored else { return false };
    if epoch != FINAL_EPOCH {
        return epoch <= at;
    }
    finished || state.is_some_and(|s| s.finished.get(task as usize).copied().unwrap_or(false))
}

/// The checkpoint a job resumes from.
#[derive(Clone, Debug, Default)]
pub struct RestorePlan {
    pub epoch: u64,
    /// The checkpoint is the last one of a bounded run that completed.
    pub finished: bool,
    /// By node name.
    pub nodes: HashMap<String, NodeRestore>,
}
