//! Checkpoints as the engine sees them: what a task's snapshot holds, where
//! snapshots go ([`CheckpointStore`], implemented by `weir-checkpoint`), and
//! what a restored run starts from ([`RestorePlan`]).
//!
//! The protocol is Flink's (asynchronous barrier snapshots, a variant of
//! Chandy-Lamport): the coordinator asks every source task to inject a barrier
//! for epoch `n`; a task that has a barrier `n` from every live input snapshots
//! its chain (source positions, operator state, sink pre-commit), forwards the
//! barrier and acknowledges; state files are stored on the coordinator's
//! uploader thread while processing goes on. When every task has acknowledged
//! and its files are stored, the manifest makes the checkpoint complete and
//! sinks commit what they staged up to `n` (two-phase commit).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use weir_state::{RestoreFiles, SnapshotFile};

/// The epoch a sink stages its last output under when its input has ended;
/// `Sink::commit(FINAL_EPOCH)` publishes everything.
pub const FINAL_EPOCH: u64 = u64::MAX;

/// Writes an operator's snapshot files; runs on the coordinator's thread, so
/// the task goes on processing meanwhile.
pub type SnapshotWriter = Box<dyn FnOnce() -> Result<Vec<SnapshotFile>, String> + Send>;

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

/// Where checkpoints are stored.
pub trait CheckpointStore: Send + Sync {
    /// Store the snapshots one task took for checkpoint `epoch` (called on the
    /// coordinator's uploader thread, never on a task's).
    fn store_task(&self, epoch: u64, states: &[TaskState]) -> Result<(), String>;

    /// Every task's part of `epoch` is stored: make the checkpoint complete (the
    /// manifest goes last). `finished` marks the last checkpoint of a bounded run.
    fn complete(&self, epoch: u64, finished: bool) -> Result<(), String>;

    /// Forget what was stored for an epoch that will not complete.
    fn abort(&self, _epoch: u64) {}

    /// A savepoint was asked for (see [`CheckpointConfig::savepoints`]): the
    /// next checkpoint is retained under this name as well.
    fn keep_as_savepoint(&self, _epoch: u64, _name: &str) -> Result<(), String> {
        Ok(())
    }
}

/// Checkpointing settings of a job.
#[derive(Clone)]
pub struct CheckpointConfig {
    /// How often the coordinator starts a checkpoint; `None`: only the final
    /// checkpoint at the end of a bounded run.
    pub interval: Option<Duration>,
    pub store: Arc<dyn CheckpointStore>,
    /// Local scratch space for snapshot files before they are stored.
    pub staging_dir: PathBuf,
    /// The first epoch to use (one past the restored checkpoint's).
    pub first_epoch: u64,
    /// Names of savepoints asked for while the job runs; the coordinator polls
    /// this and takes one checkpoint per name, kept as that savepoint.
    pub savepoints: Option<Arc<dyn Fn() -> Vec<String> + Send + Sync>>,
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

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
