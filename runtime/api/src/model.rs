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
}

/// One node of a running pipeline, its counters summed over its tasks.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct NodeStatus {
    pub name: String,
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
