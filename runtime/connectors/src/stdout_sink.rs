//! Record values on standard output, one per line.

use std::io::Write;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use weir_engine::{RecordBatch, Sink, SinkError, SinkFactory, TaskContext};
use weir_spec::{BuildContext, BuildError, SinkConnector};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutSink {}

impl SinkConnector for StdoutSink {
    type Config = StdoutSink;
    const TYPE: &'static str = "stdout";

    fn build(&self, c: StdoutSink, _: &BuildContext<'_>) -> Result<Arc<dyn SinkFactory>, BuildError> {
        Ok(Arc::new(c))
    }
}

impl SinkFactory for StdoutSink {
    fn create(&self, _ctx: &TaskContext) -> Result<Box<dyn Sink>, SinkError> {
        Ok(Box::new(StdoutWriter))
    }
}

struct StdoutWriter;

impl Sink for StdoutWriter {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        // One lock per batch keeps lines of parallel tasks whole.
        let mut out = std::io::stdout().lock();
        for r in batch.rows() {
            out.write_all(r.value)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(std::io::stdout().flush()?)
    }
}
