//! Weir's dataflow engine, the light core every other crate builds on (no
//! RocksDB, wasmtime or object store in it).
//!
//! A pipeline is a DAG of sources, operators and sinks. Its
//! [`LogicalDataflow`] is a plain, serialisable value whose nodes hold
//! [`Descriptor`]s (a registered type name and its config); a [`Dataflow`] is
//! that with each node's factory, ready to [`start`](Dataflow::start). The
//! [`PhysicalPlan`] says which tasks run: every node runs as `parallelism`
//! tasks, nodes joined by a forward edge with the same parallelism are chained
//! into one task, other edges become bounded channels of a [`Transport`] (so a
//! slow sink back-pressures the sources) with forward, key-group or
//! round-robin partitioning. Records travel as columnar [`RecordBatch`]es
//! that sources close at `batch_size` records or `batch_timeout`, whichever
//! comes first.
//!
//! Checkpoints are Flink's asynchronous barrier snapshots (`checkpoint`,
//! `align`, `coordinator`, `uploader`); event time, timers and windows
//! (`event_time`, [`TimerService`], [`window`]) are here so that every kind of
//! operator (Wasm, SQL, built in) shares them.

mod align;
mod batch;
mod checkpoint;
mod clock;
mod coordinator;
mod dataflow;
mod dead_letter;
mod emitted;
mod error;
mod event_time;
mod exchange;
mod isolate;
mod executor;
mod metrics;
mod operator;
mod plan;
mod sink;
mod source;
mod swap;
mod task;
pub mod timers;
mod transport;
mod uploader;
pub mod window;

pub use batch::{Born, Header, Origin, RecordBatch, RecordRef, RowKind, NO_TIMESTAMP};
pub use checkpoint::{
    covers, CheckpointConfig, CheckpointStore, NodeRestore, RestoreFiles, RestorePlan, SnapshotFile, SnapshotWriter, StoreError,
    StoredFile, StoredTask, TaskState, FINAL_EPOCH,
};
pub use clock::now_ms;
pub use coordinator::{CheckpointRecord, CheckpointSummary};
pub use dataflow::{
    Dataflow, Descriptor, Edge, EngineOptions, KeySelector, LogicalDataflow, LogicalNode, NodeId, Partitioning, Resolver, Role,
};
pub use dead_letter::{ErrorPolicy, OnError, Rejected, DEAD_LETTER_OUTPUT};
pub use emitted::{fuzz_emitted, BadReply, Emitted};
pub use error::{EngineError, OperatorError, SinkError, SourceError};
pub use event_time::{parse_rfc3339, EventTime, TimeUnit};
pub use executor::{Job, JobControl, JobMetrics, JobReport};
pub use metrics::{NodeMetrics, NodeSnapshot};
pub use operator::{Emitter, Operator, OperatorFactory, TaskContext};
pub use plan::{ChannelPlan, ExchangePlan, MemberPlan, PhysicalPlan, Target, TaskInput, TaskPlan};
pub use sink::{Sink, SinkFactory};
pub use source::{Source, SourceFactory, SourcePoll};
pub use swap::{Replacement, SwapState, Ticket};
pub use timers::{Domain, TimerService};
pub use transport::{Body, Inbox, LocalTransport, Message, Outbox, RecvError, SendError, Transport};
pub use weir_state::keys::{key_group, key_group_range, key_hash, task_for_key_group, DEFAULT_MAX_PARALLELISM};
