//! Sinks: the end of a dataflow.

use crate::batch::RecordBatch;
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

    /// Stage everything written up to checkpoint `epoch` (two-phase commit, first phase).
    fn pre_commit(&mut self, _epoch: u64) -> Result<(), SinkError> {
        self.flush()
    }

    /// Publish what `pre_commit(epoch)` staged, once the checkpoint is complete.
    fn commit(&mut self, _epoch: u64) -> Result<(), SinkError> {
        Ok(())
    }

    /// The input has ended: write out and publish everything.
    fn finish(&mut self) -> Result<(), SinkError> {
        self.flush()
    }
}

/// Creates the parallel instances of a sink node.
pub trait SinkFactory: Send + Sync {
    fn create(&self, ctx: &TaskContext) -> Result<Box<dyn Sink>, SinkError>;
}
