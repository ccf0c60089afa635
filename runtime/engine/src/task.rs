//! One parallel task: a chain of nodes fed by a source or by a channel.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};

use crate::batch::{Origin, RecordBatch};
use crate::exchange::{ExchangeFailure, ExchangeWriter, Message};
use crate::metrics::NodeMetrics;
use crate::operator::{Emitter, Operator, TaskContext};
use crate::{EngineError, OperatorError, Sink, Source, SourceFactory, SourcePoll};

const POLL: Duration = Duration::from_millis(50);
/// A source batch closes at this many bytes even below `batch_size` records.
const MAX_BATCH_BYTES: usize = 16 << 20;

pub(crate) enum NodeImpl {
    Source,
    Operator(Box<dyn Operator>),
    Sink(Box<dyn Sink>),
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Target {
    /// A node later in this task's chain.
    Chained(usize),
    /// An exchange of this task.
    Exchange(usize),
}

pub(crate) struct TaskNode {
    pub ctx: TaskContext,
    pub imp: NodeImpl,
    /// Targets per output port.
    pub outputs: Vec<Vec<Target>>,
    pub metrics: Arc<NodeMetrics>,
    pub emitter: Emitter,
}

pub(crate) enum TaskInput {
    Source { source: Box<dyn Source>, index: u16 },
    Channel { rx: Receiver<Message>, producers: usize },
}

/// Names sources and their offsets in error messages.
pub(crate) struct SourceNames(pub Vec<(String, Arc<dyn SourceFactory>)>);

impl SourceNames {
    pub fn describe(&self, origin: Option<Origin>) -> String {
        match origin.and_then(|o| self.0.get(o.source as usize).map(|(n, f)| (n, f.describe_offset(o.offset)))) {
            Some((name, offset)) => format!(" on the record from source '{name}' at {offset}"),
            None => String::new(),
        }
    }
}

/// Run a node's code; a panic in it fails the task with an error naming the node.
fn guard<R>(ctx: &TaskContext, f: impl FnOnce() -> R) -> Result<R, EngineError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|p| EngineError::Panicked {
        node: ctx.node.to_string(),
        task: ctx.task_index,
        message: crate::executor::panic_message(&*p),
    })
}

pub(crate) struct Task {
    pub cancel: Arc<AtomicBool>,
    /// Chain members in topological order; `nodes[0]` is the head.
    pub nodes: Vec<TaskNode>,
    pub exchanges: Vec<ExchangeWriter>,
    pub batch_size: usize,
    pub batch_timeout: Duration,
    pub sources: Arc<SourceNames>,
}

impl Task {
    pub fn run(mut self, input: TaskInput) -> Result<(), EngineError> {
        match input {
            TaskInput::Source { source, index } => self.run_source(source, index)?,
            TaskInput::Channel { rx, producers } => self.run_channel(rx, producers)?,
        }
        self.finish()
    }

    fn cancelled(&self) -> Result<(), EngineError> {
        if self.cancel.load(Ordering::Relaxed) { Err(EngineError::Cancelled) } else { Ok(()) }
    }

    fn run_source(&mut self, mut source: Box<dyn Source>, index: u16) -> Result<(), EngineError> {
        let bs = self.batch_size;
        let mut exhausted = false;
        while !exhausted {
            self.cancelled()?;
            let mut batch = RecordBatch::with_capacity(bs);
            let mut first: Option<Instant> = None;
            loop {
                let before = batch.len();
                let t0 = Instant::now();
                let room = bs - batch.len();
                let poll = source.poll(&mut batch, room).map_err(|source| {
                    let ctx = &self.nodes[0].ctx;
                    EngineError::Source { node: ctx.node.to_string(), task: ctx.task_index, parallelism: ctx.parallelism, source }
                })?;
                self.nodes[0].metrics.add_busy(t0.elapsed().as_nanos() as u64);
                if batch.len() > before && first.is_none() {
                    first = Some(Instant::now());
                }
                let full = batch.len() >= bs || batch.byte_size() >= MAX_BATCH_BYTES;
                let left = first.map(|f| self.batch_timeout.saturating_sub(f.elapsed()));
                match poll {
                    SourcePoll::Exhausted => {
                        exhausted = true;
                        break;
                    }
                    SourcePoll::Ready if full || left == Some(Duration::ZERO) => break,
                    SourcePoll::Ready => {}
                    SourcePoll::Pending(_) if full || left == Some(Duration::ZERO) => break,
                    SourcePoll::Pending(wait) => {
                        std::thread::sleep(wait.min(left.unwrap_or(POLL)));
                        if first.is_none() {
                            self.cancelled()?;
                        }
                    }
                }
            }
            if !batch.is_empty() {
                for o in &mut batch.origins {
                    o.source = index;
                }
                self.push(0, batch)?;
            }
        }
        Ok(())
    }

    fn run_channel(&mut self, rx: Receiver<Message>, producers: usize) -> Result<(), EngineError> {
        let mut ended = 0;
        while ended < producers {
            let msg = match rx.recv_timeout(POLL) {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => {
                    self.cancelled()?;
                    self.idle()?;
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return Err(EngineError::Cancelled),
            };
            match msg {
                Message::End => ended += 1,
                Message::Data(mut batch) => {
                    // Coalesce what is already queued, up to a full batch.
                    while batch.len() < self.batch_size {
                        match rx.try_recv() {
                            Ok(Message::Data(more)) => batch.append(&more),
                            Ok(Message::End) => ended += 1,
                            Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                        }
                    }
                    self.push(0, batch)?;
                }
            }
        }
        Ok(())
    }

    /// Input is idle: let sinks make what they hold visible.
    fn idle(&mut self) -> Result<(), EngineError> {
        for i in 0..self.nodes.len() {
            if let NodeImpl::Sink(sink) = &mut self.nodes[i].imp {
                let r = sink.flush();
                r.map_err(|e| self.sink_error(i, e, None))?;
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), EngineError> {
        for i in 0..self.nodes.len() {
            let node = &mut self.nodes[i];
            match &mut node.imp {
                NodeImpl::Source => {}
                NodeImpl::Operator(op) => {
                    let r = guard(&node.ctx, || op.finish(&mut node.emitter))?;
                    r.map_err(|e| self.op_error(i, e))?;
                    self.route(i)?;
                }
                NodeImpl::Sink(sink) => {
                    let r = guard(&node.ctx, || sink.finish())?;
                    r.map_err(|e| self.sink_error(i, e, None))?;
                }
            }
        }
        for x in &self.exchanges {
            x.end(&self.cancel)?;
        }
        Ok(())
    }

    fn push(&mut self, i: usize, batch: RecordBatch) -> Result<(), EngineError> {
        let node = &mut self.nodes[i];
        node.metrics.add_in(batch.len());
        let t0 = Instant::now();
        match &mut node.imp {
            NodeImpl::Source => *node.emitter.main() = batch,
            NodeImpl::Operator(op) => {
                let r = guard(&node.ctx, || op.process(batch, &mut node.emitter))?;
                node.metrics.add_busy(t0.elapsed().as_nanos() as u64);
                r.map_err(|e| self.op_error(i, e))?;
            }
            NodeImpl::Sink(sink) => {
                let r = guard(&node.ctx, || sink.write(&batch))?;
                node.metrics.add_busy(t0.elapsed().as_nanos() as u64);
                return r.map_err(|e| self.sink_error(i, e, batch.origins.first().copied()));
            }
        }
        self.route(i)
    }

    /// Hand node `i`'s emitted batches to their targets.
    fn route(&mut self, i: usize) -> Result<(), EngineError> {
        for port in 0..self.nodes[i].emitter.port_count() {
            let node = &mut self.nodes[i];
            if node.emitter.port(port).is_empty() {
                continue;
            }
            let batch = std::mem::take(node.emitter.port(port));
            node.metrics.add_out(batch.len());
            let targets = node.outputs.get(port).map_or(0, Vec::len);
            let mut batch = Some(batch);
            for n in 0..targets {
                let target = self.nodes[i].outputs[port][n];
                let b = if n + 1 == targets { batch.take().expect("batch") } else { batch.clone().expect("batch") };
                match target {
                    Target::Chained(c) => self.push(c, b)?,
                    Target::Exchange(x) => match self.exchanges[x].write(b, &self.cancel) {
                        Ok(()) => {}
                        Err(ExchangeFailure::Engine(e)) => return Err(e),
                        Err(ExchangeFailure::Key { row, message, origin }) => {
                            let e = OperatorError::new(format!("cannot key output row {row}: {message}"));
                            return Err(self.op_error(i, e.at(Some(origin))));
                        }
                    },
                }
            }
        }
        Ok(())
    }

    fn op_error(&self, i: usize, e: OperatorError) -> EngineError {
        let ctx = &self.nodes[i].ctx;
        EngineError::Operator {
            node: ctx.node.to_string(),
            task: ctx.task_index,
            parallelism: ctx.parallelism,
            at: self.sources.describe(e.origin),
            source: e,
        }
    }

    fn sink_error(&self, i: usize, e: crate::SinkError, origin: Option<Origin>) -> EngineError {
        let ctx = &self.nodes[i].ctx;
        EngineError::Sink {
            node: ctx.node.to_string(),
            task: ctx.task_index,
            parallelism: ctx.parallelism,
            at: self.sources.describe(origin),
            source: e,
        }
    }
}
