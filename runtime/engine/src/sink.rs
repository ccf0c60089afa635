//! Sinks: the end of a dataflow.

use crate::batch::RecordBatch;
use crate::checkpoint::{NodeRestore, SnapshotWriter};
use crate::error::SinkError;
use crate::operator::TaskContext;

/// One parallel instance of a sink.
pub trait Sink: Send {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError>;

    /// Make everything written so far durable/visible (called on idle input and
    /// at the end). Exactly-once sinks instead stage writes and publish them in
    /// [`Sink::commit`].
    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    /// Stage everything written since the last checkpoint under checkpoint
    /// `epoch` (two-phase commit, first phase). Called when the task snapshots
    /// for `epoch`, and with [`FINAL_EPOCH`](crate::FINAL_EPOCH) when the input
    /// has ended and checkpointing is on.
    fn pre_commit(&mut self, _epoch: u64) -> Result<(), SinkError> {
        self.flush()
    }

    /// State to keep in checkpoint `epoch`, written after
    /// [`Sink::pre_commit`] (files under `dir`, later, on an uploader thread):
    /// what [`SinkFactory::recover`] needs to finish a commit that a crash
    /// cut short. Most sinks keep none.
    fn snapshot(&mut self, _epoch: u64, _dir: &std::path::Path) -> Result<Option<SnapshotWriter>, SinkError> {
        Ok(None)
    }

    /// Checkpoint `epoch` is complete: publish everything staged under epochs up
    /// to `epoch` (second phase).
    fn commit(&mut self, _epoch: u64) -> Result<(), SinkError> {
        Ok(())
    }

    /// The input has ended and checkpointing is off: write out and publish
    /// everything.
    fn finish(&mut self) -> Result<(), SinkError> {
        self.flush()
    }
}

/// Creates the parallel instances of a sink node.
pub trait SinkFactory: Send + Sync {
    fn create(&self, ctx: &TaskContext) -> Result<Box<dyn Sink>, SinkError>;

    /// Called once before any task is created. `restored` is the epoch of the
    /// checkpoint the job resumes from (and whether it was the final one of a
    /// completed run), `None` on a fresh start; `state` is every task's part
    /// of the sink in that checkpoint (its [`Sink::snapshot`] files). An
    /// exactly-once sink publishes what it staged up to that checkpoint and
    /// discards the rest: output of a failed attempt must never become
    /// visible, and output of a completed checkpoint must not be lost.
    fn recover(&self, _restored: Option<(u64, bool)>, _state: Option<&NodeRestore>) -> Result<(), SinkError> {
        Ok(())
    }
}
