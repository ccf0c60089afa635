//! The operator trait: one required method, defaults for the rest.

use std::path::Path;
use std::sync::Arc;

use crate::batch::RecordBatch;
use crate::checkpoint::{NodeRestore, SnapshotWriter};
use crate::error::OperatorError;

/// Where a parallel instance of a node runs.
#[derive(Clone, Debug)]
pub struct TaskContext {
    pub pipeline: Arc<str>,
    pub node: Arc<str>,
    pub task_index: u32,
    pub parallelism: u32,
    pub max_parallelism: u32,
    /// Names of the node's side outputs that the dataflow consumes; side output
    /// `side_outputs[i]` is output port `i + 1` (port 0 is the main output).
    pub side_outputs: Arc<[String]>,
    /// The node's state in the checkpoint the job resumes from (every task's
    /// part, whatever the parallelism was): an operator takes the key groups it
    /// owns now. `None` on a fresh start.
    pub restore: Option<Arc<NodeRestore>>,
    /// What the node does with a record it fails on: a source that decodes
    /// records leaves out (see [`crate::Source::rejected`]) instead of failing
    /// when it isolates.
    pub on_error: crate::OnError,
}

impl TaskContext {
    /// The context of task `task_index` of `parallelism` of a node, with 128 key
    /// groups, no side outputs and nothing to restore.
    pub fn new(pipeline: &str, node: &str, task_index: u32, parallelism: u32) -> Self {
        TaskContext {
            pipeline: pipeline.into(),
            node: node.into(),
            task_index,
            parallelism,
            max_parallelism: crate::DEFAULT_MAX_PARALLELISM,
            side_outputs: Arc::new([]),
            restore: None,
            on_error: crate::OnError::Fail,
        }
    }
}

/// Output ports of one operator call: port 0 is the main output, port `n` the
/// side output `ctx.side_outputs[n - 1]`.
#[derive(Debug)]
pub struct Emitter {
    ports: Vec<RecordBatch>,
}

impl Emitter {
    pub fn new(ports: usize) -> Self {
        Emitter { ports: (0..ports.max(1)).map(|_| RecordBatch::default()).collect() }
    }

    pub fn port_count(&self) -> usize {
        self.ports.len()
    }

    /// The batch of an output port. Panics on a port the node does not have.
    pub fn port(&mut self, port: usize) -> &mut RecordBatch {
        &mut self.ports[port]
    }

    pub fn main(&mut self) -> &mut RecordBatch {
        &mut self.ports[0]
    }
}

/// A stream operator instance (one per parallel task).
pub trait Operator: Send {
    /// Handle a batch of input records, emitting into `out`.
    fn process(&mut self, input: RecordBatch, out: &mut Emitter) -> Result<(), OperatorError>;

    /// Called once when every input has ended (a bounded run): emit what state
    /// still holds back.
    fn finish(&mut self, _out: &mut Emitter) -> Result<(), OperatorError> {
        Ok(())
    }

    /// The event-time watermark advanced to `watermark`: no record older than
    /// it is expected any more (event-time timers up to it fire).
    fn on_watermark(&mut self, _watermark: i64, _out: &mut Emitter) -> Result<(), OperatorError> {
        Ok(())
    }

    /// Called regularly with the processing time (ms since the Unix epoch):
    /// processing-time timers up to it fire.
    fn on_processing_time(&mut self, _now_ms: i64, _out: &mut Emitter) -> Result<(), OperatorError> {
        Ok(())
    }

    /// Snapshot the operator's state for a checkpoint: capture it now (the
    /// task waits for this part) and return a writer that puts it into files
    /// under `dir` (an empty directory) later, on another thread, while the task
    /// goes on. Stateless operators keep the default (no files). State comes
    /// back through [`TaskContext::restore`] when the factory creates the
    /// operator.
    fn snapshot(&mut self, _dir: &Path) -> Result<Option<SnapshotWriter>, OperatorError> {
        Ok(None)
    }

    /// Hot swap: go on with the logic of `replacement` (see [`crate::Job::swap`]),
    /// keeping this task's state and timers. Called right after a checkpoint's
    /// snapshot, between two records. On an error the operator must be as
    /// before. Operators that cannot swap keep the default.
    fn swap(&mut self, _replacement: &(dyn std::any::Any + Send + Sync)) -> Result<(), OperatorError> {
        Err(OperatorError::new("this operator cannot swap its logic"))
    }

    /// `on_error: skip | dead-letter`: called once, before any record, on
    /// a node that isolates failing records. From then on every `process`
    /// call must be undoable ([`Operator::undo`]). False: this operator
    /// cannot, and the job does not start.
    fn isolate_failures(&mut self) -> bool {
        false
    }

    /// Undo what the `process` call that just failed did to state and timers,
    /// and repair what the failure broke (a trapped Wasm instance is replaced),
    /// so that the batch can run again without the failing record.
    fn undo(&mut self) -> Result<(), OperatorError> {
        Err(OperatorError::new("this operator cannot undo a failed call"))
    }

    /// What it runs, for dead letters (`name@version` of a plugin).
    fn logic(&self) -> Option<String> {
        None
    }
}

/// Creates the parallel instances of an operator node.
pub trait OperatorFactory: Send + Sync {
    fn create(&self, ctx: &TaskContext) -> Result<Box<dyn Operator>, OperatorError>;
}

impl<F> OperatorFactory for F
where
    F: Fn(&TaskContext) -> Result<Box<dyn Operator>, OperatorError> + Send + Sync,
{
    fn create(&self, ctx: &TaskContext) -> Result<Box<dyn Operator>, OperatorError> {
        self(ctx)
    }
}
