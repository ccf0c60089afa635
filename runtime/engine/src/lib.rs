//! Weir's dataflow engine.
//!
//! A pipeline is a DAG of sources, operators and sinks ([`Dataflow`]). Every node
//! runs as `parallelism` tasks on threads; nodes joined by a forward edge with the
//! same parallelism are chained into one task, other edges become bounded
//! channels (so a slow sink back-pressures the sources) with forward, key-group
//! or round-robin partitioning. Records travel as columnar [`RecordBatch`]es that
//! sources close at `batch_size` records or `batch_timeout`, whichever comes first.

mod batch;
mod checkpoint;
mod coordinator;
mod dataflow;
mod error;
mod event_time;
mod exchange;
mod executor;
mod metrics;
mod operator;
mod sink;
mod source;
mod swap;
mod task;

pub use batch::{Header, Origin, RecordBatch, RecordRef, NO_TIMESTAMP};
pub use checkpoint::{CheckpointConfig, CheckpointStore, NodeRestore, RestoreFiles, RestorePlan, SnapshotFile, SnapshotWriter, TaskState, FINAL_EPOCH};
pub use dataflow::{Dataflow, Edge, EngineOptions, KeySelector, NodeId, Partitioning};
pub use event_time::EventTime;
pub use error::{EngineError, OperatorError, SinkError, SourceError};
pub use coordinator::CheckpointSummary;
pub use executor::{Job, JobControl, JobMetrics, JobReport};
pub use swap::{Replacement, SwapState, Ticket};
pub use weir_state::keys::{key_group, key_group_range, key_hash, task_for_key_group, DEFAULT_MAX_PARALLELISM};
pub use metrics::{NodeMetrics, NodeSnapshot};
pub use operator::{Emitter, Operator, OperatorFactory, TaskContext};
pub use sink::{Sink, SinkFactory};
pub use source::{Source, SourceFactory, SourcePoll};
