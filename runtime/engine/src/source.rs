//! Sources. A source fills batches on demand; its position can be recorded and
//! restored, which is what replay after a failure (checkpoints) builds on.

use std::time::Duration;

use crate::batch::{Origin, RecordBatch};
use crate::error::SourceError;
use crate::operator::TaskContext;

/// What one poll of a source produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourcePoll {
    /// Records may have been appended; poll again.
    Ready,
    /// Nothing is available now; poll again after at most this long.
    Pending(Duration),
    /// The source is bounded and has nothing more.
    Exhausted,
}

/// One parallel instance of a source.
pub trait Source: Send {
    /// Append at most `max_records` records to `out`. Records' `origin.offset`
    /// is the source's offset of the record (the engine fills `origin.source`).
    fn poll(&mut self, out: &mut RecordBatch, max_records: usize) -> Result<SourcePoll, SourceError>;

    /// The position after the last record returned, to resume from on replay;
    /// `None` for a source that cannot be replayed.
    fn position(&self) -> Option<Vec<u8>> {
        None
    }

    /// Resume from a position returned by [`Source::position`].
    fn seek(&mut self, _position: &[u8]) -> Result<(), SourceError> {
        Err(SourceError::msg("this source cannot be replayed"))
    }

    /// The splits (`Origin::split`) this task reads now, if it reads several:
    /// the watermark waits for each one that is not idle.
    fn splits(&self) -> Option<&[u32]> {
        None
    }

    /// Checkpoint `epoch` is complete (everything before its barrier is
    /// safely processed): a source may acknowledge its input up to there (a
    /// Kafka source commits its group's offsets).
    fn checkpoint_complete(&mut self, _epoch: u64) -> Result<(), SourceError> {
        Ok(())
    }

    /// Records the last polls left out because they could not be decoded,
    /// moved into `out`. Only a source whose [`TaskContext::on_error`]
    /// isolates leaves records out (and moves past them); otherwise a bad
    /// record is a poll's error.
    fn rejected(&mut self, _out: &mut Vec<crate::Rejected>) {}
}

/// Creates the parallel instances of a source node.
pub trait SourceFactory: Send + Sync {
    fn create(&self, ctx: &TaskContext) -> Result<Box<dyn Source>, SourceError>;

    /// How to name a record's offset in messages ("line 42 of input.txt").
    fn describe_offset(&self, offset: u64) -> String {
        format!("offset {offset}")
    }

    /// How to name a record in messages; sources of several splits name the
    /// split too ("topic clicks partition 3 offset 1234").
    fn describe_origin(&self, origin: Origin) -> String {
        self.describe_offset(origin.offset)
    }

    /// Whether its tasks take their positions from every task's part of a
    /// checkpoint themselves (`TaskContext::restore`), so that it can resume
    /// at another parallelism; otherwise task `i` seeks to task `i`'s position.
    fn rescalable(&self) -> bool {
        false
    }
}
