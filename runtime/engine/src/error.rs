//! Engine errors. Each names the node, the parallel task and, where the failure
//! concerns a record, the source record behind it.

use crate::batch::Origin;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What an operator reports when it fails on its input.
#[derive(Debug)]
pub struct OperatorError {
    /// The origin of the input record being handled, if known.
    pub origin: Option<Origin>,
    /// The row of the input batch being handled, if known: the record that
    /// `on_error: skip | dead-letter` takes out.
    pub row: Option<usize>,
    pub source: BoxError,
}

impl OperatorError {
    pub fn new(source: impl Into<BoxError>) -> Self {
        OperatorError { origin: None, row: None, source: source.into() }
    }

    pub fn at(mut self, origin: Option<Origin>) -> Self {
        self.origin = origin;
        self
    }

    /// The failing record is row `row` of the input batch.
    pub fn in_row(mut self, row: Option<usize>) -> Self {
        self.row = row;
        self
    }
}

impl std::fmt::Display for OperatorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.source.fmt(f)
    }
}

impl std::error::Error for OperatorError {
    /// The operator's own error (a Wasm host's `WasmError`, say): callers
    /// downcast it to tell failures apart. Its message is this error's.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

/// A source's failure.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct SourceError(pub BoxError);

/// A sink's failure.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct SinkError(pub BoxError);

impl SourceError {
    pub fn msg(message: impl Into<String>) -> Self {
        SourceError(message.into().into())
    }
}

impl SinkError {
    pub fn msg(message: impl Into<String>) -> Self {
        SinkError(message.into().into())
    }

    /// A failure caused by row `row` of the batch given to `Sink::write`:
    /// the engine names that record's origin instead of the batch's first.
    pub fn in_row(row: usize, e: impl Into<BoxError>) -> Self {
        SinkError(Box::new(RowError { row, source: e.into() }))
    }

    /// The row of the batch this failure names, if it names one.
    pub fn row(&self) -> Option<usize> {
        self.0.downcast_ref::<RowError>().map(|r| r.row)
    }
}

/// A sink's failure on one row of a batch (see [`SinkError::in_row`]).
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub struct RowError {
    pub row: usize,
    pub source: BoxError,
}

impl From<std::io::Error> for SourceError {
    fn from(e: std::io::Error) -> Self {
        SourceError(Box::new(e))
    }
}

impl From<std::io::Error> for SinkError {
    fn from(e: std::io::Error) -> Self {
        SinkError(Box::new(e))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("invalid dataflow: {0}")]
    Plan(String),
    #[error("operator '{node}' (task {task} of {parallelism}) failed{at}: {source}")]
    Operator {
        node: String,
        task: u32,
        parallelism: u32,
        /// " on <source record>" or empty.
        at: String,
        #[source]
        source: OperatorError,
    },
    #[error("source '{node}' (task {task} of {parallelism}) failed: {source}")]
    Source {
        node: String,
        task: u32,
        parallelism: u32,
        #[source]
        source: SourceError,
    },
    #[error("sink '{node}' (task {task} of {parallelism}) failed{at}: {source}")]
    Sink {
        node: String,
        task: u32,
        parallelism: u32,
        at: String,
        #[source]
        source: SinkError,
    },
    #[error("'{node}' (task {task}) panicked: {message}")]
    Panicked { node: String, task: u32, message: String },
    /// The checkpoint protocol broke (a barrier out of order), or a final
    /// checkpoint or savepoint could not be taken.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// Storing a snapshot failed in a way the job cannot go on from.
    #[error("checkpoint: {0}")]
    Store(#[from] crate::checkpoint::StoreError),
    /// A task could not switch to an operator's new logic at a checkpoint
    /// barrier (hot swap); checkpoint `epoch` holds the state before it.
    #[error("operator '{node}' (task {task}) could not swap its logic at checkpoint {epoch}: {message}")]
    Swap { node: String, task: u32, epoch: u64, message: String },
    /// The task stopped because another task failed or the job was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// The job stopped with a savepoint, its output published.
    #[error("stopped with a savepoint")]
    Stopped,
}
