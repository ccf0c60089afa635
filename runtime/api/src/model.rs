//! The bodies the API sends and takes. The OpenAPI document is generated
//! from these types and the handlers' annotations (`openapi.rs`), so it
//! says what the handlers do.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where a pipeline is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PipelineStatus {
    Starting,
    Running,
    Restarting,
    Stopping,
    Stopped,
    Finished,
    Failed,
    /// Its `pipeline.json` cannot be read: the node skipped it (`error` says
    /// why); fix the file and restart the node, or delete the pipeline.
    Damaged,
}

impl PipelineStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PipelineStatus::Starting => "starting",
            PipelineStatus::Running => "running",
            PipelineStatus::Restarting => "restarting",
            PipelineStatus::Stopping => "stopping",
            PipelineStatus::Stopped => "stopped",
            PipelineStatus::Finished => "finished",
            PipelineStatus::Failed => "failed",
            PipelineStatus::Damaged => "damaged",
        }
    }
}

impl std::fmt::Display for PipelineStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a hot swap is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SwapStatus {
    /// Asked for; waiting for its checkpoint barrier.
    Pending,
    /// Every task runs the new version; in probation.
    Switched,
    /// A checkpoint after the switch completed: the new version stays.
    Confirmed,
    /// The job failed before confirmation; the old version runs again.
    RolledBack,
    /// The new version failed its trial; nothing changed.
    Refused,
}

impl SwapStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SwapStatus::Pending => "pending",
            SwapStatus::Switched => "switched",
            SwapStatus::Confirmed => "confirmed",
            SwapStatus::RolledBack => "rolled-back",
            SwapStatus::Refused => "refused",
        }
    }
}

/// What a job failure was, for `/metrics`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FailureKind {
    /// A plugin trapped or panicked.
    Trap,
    /// A call into a plugin ran over its deadline.
    Deadline,
    /// A plugin went over its memory limit.
    Memory,
    Other,
}

impl FailureKind {
    /// The kind of a job's failure: the plugin error behind it, if any.
    pub fn of(e: &weir_engine::EngineError) -> Self {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(c) = cause {
            if let Some(w) = c.downcast_ref::<weir_wasm::WasmError>() {
                return match w {
                    weir_wasm::WasmError::Trap { .. } => FailureKind::Trap,
                    weir_wasm::WasmError::Deadline { .. } => FailureKind::Deadline,
                    weir_wasm::WasmError::Memory { .. } => FailureKind::Memory,
                    _ => FailureKind::Other,
                };
            }
            cause = c.source();
        }
        FailureKind::Other
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Trap => "trap",
            FailureKind::Deadline => "deadline",
            FailureKind::Memory => "memory",
            FailureKind::Other => "other",
        }
    }
}

/// `{"error": "..."}`, with the status saying what kind.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, naming the field, line, plugin or pipeline concerned.
    pub error: String,
}

/// A swap of one operator, as the API shows it (and `pipeline.json` keeps it
/// while it is in probation).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SwapInfo {
    pub operator: String,
    /// `name@version` before and after.
    pub from: String,
    pub to: String,
    pub status: SwapStatus,
    /// The checkpoint at whose barrier the operator switched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
    pub requested_ms: i64,
    /// From the request to every task running the new version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub switch_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The probation asked for, in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probation_ms: Option<u64>,
    /// When every task ran the new version (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switched_at_ms: Option<i64>,
}

/// `POST .../operators/{op}/swap`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SwapRequest {
    /// `name@version` of a plugin in the registry.
    #[schema(example = "counter@2")]
    pub plugin: String,
    /// How long at least the new version runs before the checkpoint that
    /// confirms it (e.g. "5s"); a failure before that rolls it back.
    #[schema(example = "5s")]
    pub probation: Option<String>,
}

/// A pipeline in a list.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PipelineSummary {
    /// Its spec's name.
    pub id: String,
    pub status: PipelineStatus,
    /// Operator -> `name@version` it runs.
    pub plugins: BTreeMap<String, String>,
    pub restarts: u64,
    /// The last failure, if it failed.
    pub error: Option<String>,
    /// Records its sources read in the current run (while it runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub records_in: Option<u64>,
    /// Records its sinks wrote in the current run (while it runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub records_out: Option<u64>,
    /// Records sent to its nodes not taken yet, where known (while it runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backlog: Option<u64>,
    /// When its last checkpoint completed (ms since the epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_checkpoint_ms: Option<i64>,
    /// When this was read (ms since the epoch): rates are differences of
    /// counters over differences of this.
    pub at_ms: i64,
}

/// One node of a running pipeline, its counters summed over its tasks.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct NodeStatus {
    pub name: String,
    /// source, operator or sink.
    pub role: String,
    pub parallelism: u32,
    pub records_in: u64,
    pub records_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Records sent to it not taken yet, where that is known.
    pub backlog: Option<u64>,
    /// Seconds spent in its code.
    pub busy_s: f64,
    /// Records it failed on and skipped or sent to its dead-letter output.
    pub dead_letters: u64,
    /// The plugin it runs, for an operator.
    pub plugin: Option<String>,
    /// Seconds its tasks waited for room downstream (back-pressure).
    pub blocked_s: f64,
    /// Its event-time watermark (ms since the epoch): the least of its
    /// tasks' that have one.
    pub watermark_ms: Option<i64>,
    /// Bytes of its keyed state in the last completed checkpoint.
    pub state_bytes: Option<u64>,
    /// At sinks: for each batch written, the seconds since its first record
    /// was read by a source, summed; and the batches (the mean latency over
    /// an interval is the difference of the one over that of the other).
    pub latency_sum_s: f64,
    pub latency_count: u64,
}

/// One node of a pipeline's dataflow, as planned.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct GraphNode {
    pub name: String,
    /// source, operator or sink.
    pub role: String,
    /// Its registered type (`generator`, `wasm`, `kafka`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    pub parallelism: u32,
    /// The plugin it runs now, for an operator that runs one.
    pub plugin: Option<String>,
    /// Nodes with the same number run chained, in one task per parallel instance.
    pub chain: u32,
    pub inputs: Vec<GraphEdge>,
}

/// An edge into a graph node.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct GraphEdge {
    pub from: String,
    /// The side output of `from` it reads, if not the main output.
    pub output: Option<String>,
    /// forward, key_by or rebalance.
    pub partitioning: String,
}

/// A pipeline's dataflow.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Graph {
    pub nodes: Vec<GraphNode>,
}

/// One checkpoint of the running job.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct CheckpointEntry {
    pub epoch: u64,
    pub triggered_ms: i64,
    pub duration_ms: u64,
    /// The longest time a task held input back aligning the barriers.
    pub alignment_ms: u64,
    /// Bytes of the files it names (shared files included).
    pub bytes: u64,
    /// Bytes it stored that no earlier checkpoint of the run stored.
    pub incremental_bytes: u64,
    /// Why it failed, if it did.
    pub failure: Option<String>,
    /// The savepoint it was kept as, if any.
    pub savepoint: Option<String>,
}

/// One line a plugin logged (its `log` calls, stdout and stderr).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct LogLine {
    /// Increasing within the node.
    pub seq: u64,
    pub at_ms: i64,
    /// trace, debug, info, warn or error.
    pub level: String,
    /// `plugin@version/operator[task]`.
    pub plugin: String,
    /// stdout or stderr, for a line the guest printed.
    pub stream: Option<String>,
    pub message: String,
}

/// The last plugin log lines of a pipeline.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Logs {
    pub lines: Vec<LogLine>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct LastCheckpoint {
    pub epoch: u64,
    pub completed_ms: Option<i64>,
    pub duration_ms: Option<u64>,
}

/// The checkpoints of the running job.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct CheckpointStatus {
    pub completed: u64,
    pub failed: u64,
    pub last: Option<LastCheckpoint>,
    /// The last checkpoints of the running job, oldest first.
    pub history: Vec<CheckpointEntry>,
}

/// When a failed pipeline is started again (it backs off: 0.5 s, doubling
/// up to 60 s between attempts).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RetryInfo {
    /// Failed attempts in a row.
    pub attempt: u32,
    /// When the next attempt starts (ms since the epoch).
    pub next_retry_ms: i64,
    /// The wait before it, in seconds.
    pub backoff_s: f64,
}

/// A pipeline's status.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PipelineDetail {
    #[serde(flatten)]
    pub summary: PipelineSummary,
    /// Seconds since the current run started (while it runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uptime_s: Option<f64>,
    /// Per node records in and out (while it runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodes: Option<Vec<NodeStatus>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoints: Option<CheckpointStatus>,
    /// The checkpoint or savepoint the current run resumed from.
    pub resumed_from: Option<String>,
    /// The last swap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swap: Option<SwapInfo>,
    /// The savepoint a stop took.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub savepoint: Option<String>,
    /// While it waits to be started again after a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryInfo>,
    /// Its dataflow as planned (while it runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub graph: Option<Graph>,
    /// The swaps since the node started, oldest first (the last is `swap`).
    pub swaps: Vec<SwapInfo>,
}

/// A deleted pipeline.
#[derive(Serialize, ToSchema)]
pub struct Deleted {
    pub id: String,
    pub deleted: bool,
}

/// A stored checkpoint.
#[derive(Serialize, ToSchema)]
pub struct StoredCheckpoint {
    pub name: String,
    pub epoch: u64,
    /// It has its manifest.
    pub complete: bool,
    /// The last checkpoint of a bounded run that completed.
    pub finished: bool,
    pub created_ms: Option<i64>,
    pub bytes: u64,
    /// Operator and the plugin (`name@version`) that wrote its state.
    pub plugins: Vec<(String, String)>,
    /// Why it is not usable, if it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl From<weir_checkpoint::CheckpointInfo> for StoredCheckpoint {
    fn from(c: weir_checkpoint::CheckpointInfo) -> Self {
        let weir_checkpoint::CheckpointInfo { name, epoch, complete, finished, created_ms, bytes, plugins, problem } = c;
        StoredCheckpoint { name, epoch, complete, finished, created_ms, bytes, plugins, problem }
    }
}

/// A pipeline's stored checkpoints (newest first) and savepoints.
#[derive(Serialize, ToSchema)]
pub struct Checkpoints {
    pub id: String,
    /// Where they are (a directory or an `s3://` URL).
    pub location: String,
    pub checkpoints: Vec<StoredCheckpoint>,
    pub savepoints: Vec<String>,
}
