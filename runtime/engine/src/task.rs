//! One parallel task: a chain of nodes fed by a source or by a channel.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::RecvTimeoutError;

use crate::align::{Aligner, Step};
use crate::batch::{Origin, RecordBatch};
use crate::checkpoint::{TaskState, FINAL_EPOCH};
use crate::coordinator::{Notice, TaskCheckpointing};
use crate::event_time::{WatermarkEvent, WatermarkGenerator};
use crate::exchange::{ExchangeFailure, ExchangeWriter};
use crate::metrics::NodeMetrics;
use crate::operator::{Emitter, Operator, TaskContext};
use crate::plan::Target;
use crate::transport::{Body, Inbox, Message, RecvError};
use crate::uploader::Ack;
use crate::{EngineError, OperatorError, Sink, Source, SourceFactory, SourcePoll};

const POLL: Duration = Duration::from_millis(50);
/// A source batch closes at this many bytes even below `batch_size` records.
const MAX_BATCH_BYTES: usize = 16 << 20;

pub(crate) enum NodeImpl {
    Source,
    Operator(Box<dyn Operator>),
    Sink(Box<dyn Sink>),
}

pub(crate) struct TaskNode {
    pub ctx: TaskContext,
    pub imp: NodeImpl,
    /// Targets per output port.
    pub outputs: Vec<Vec<Target>>,
    pub metrics: Arc<NodeMetrics>,
    pub emitter: Emitter,
    /// Its `on_error` (see `isolate.rs`).
    pub dead_letters: crate::isolate::DeadLetters,
}

pub(crate) use crate::isolate::DeadLetters;

pub(crate) enum TaskInput {
    Source { source: Box<dyn Source>, index: u16, watermarks: Option<WatermarkGenerator> },
    Channel { rx: Box<dyn Inbox>, producers: usize },
}

/// Names sources and their offsets in error messages.
pub(crate) struct SourceNames(pub Vec<(String, Arc<dyn SourceFactory>)>);

impl SourceNames {
    pub fn describe(&self, origin: Option<Origin>) -> String {
        match origin.and_then(|o| self.0.get(o.source as usize).map(|(n, f)| (n, f.describe_origin(o)))) {
            Some((name, offset)) => format!(" on the record from source '{name}' at {offset}"),
            None => String::new(),
        }
    }

    /// The source of a record and its position there ("line 3 of in.txt").
    pub fn locate(&self, origin: Origin) -> Option<(String, String)> {
        self.0.get(origin.source as usize).map(|(n, f)| (n.clone(), f.describe_origin(origin)))
    }
}

/// Run a node's code; a panic in it fails the task with an error naming the node.
pub(crate) fn guard<R>(ctx: &TaskContext, f: impl FnOnce() -> R) -> Result<R, EngineError> {
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
    /// The task's name ("node-index"), for staging directories.
    pub name: String,
    pub checkpointing: Option<TaskCheckpointing>,
    /// A source task's watermark generator.
    pub watermarks: Option<WatermarkGenerator>,
    /// When operators last saw the processing time.
    pub last_tick: Instant,
    /// Hot swaps due at checkpoint barriers.
    pub swaps: Arc<crate::swap::SwapBoard>,
    /// Batches waiting for chain members (reused between pushes).
    pub work: Vec<(usize, RecordBatch)>,
    /// How long the checkpoint being taken waited for its barriers' alignment.
    pub alignment: Duration,
}

/// How often operators see the processing time (their processing-time timers'
/// resolution).
const TICK: Duration = Duration::from_millis(10);

impl Task {
    pub fn run(mut self, input: TaskInput) -> Result<(), EngineError> {
        let r = self.run_input(input);
        if matches!(r, Err(EngineError::Cancelled)) {
            // Whatever completed before the cancellation is published: a
            // stop's last checkpoint must not stay staged because this task
            // saw its input disconnect before it read the notice.
            if let Err(e) = self.poll_completed(None) {
                tracing::warn!(task = self.name, "cannot publish completed checkpoints while stopping: {e}");
            }
        }
        r
    }

    fn run_input(&mut self, input: TaskInput) -> Result<(), EngineError> {
        let position = match input {
            TaskInput::Source { source, index, watermarks } => {
                self.watermarks = watermarks;
                self.run_source(source, index)?
            }
            TaskInput::Channel { rx, producers } => {
                self.run_channel(rx, producers)?;
                None
            }
        };
        self.finish(position)
    }

    /// A checkpoint barrier the coordinator asked this source task to inject.
    fn triggered(&self) -> Option<u64> {
        self.checkpointing.as_ref()?.triggers.as_ref()?.try_recv().ok()
    }

    /// Commit sinks (and tell a source task's source) for the checkpoints
    /// completed since the last look; a stop ends the task (after those
    /// commits).
    fn poll_completed(&mut self, mut source: Option<&mut dyn Source>) -> Result<(), EngineError> {
        let Some(ck) = &self.checkpointing else { return Ok(()) };
        let notices: Vec<Notice> = ck.completed.try_iter().collect();
        for n in notices {
            match n {
                Notice::Completed(e) => {
                    if let Some(s) = source.as_deref_mut() {
                        s.checkpoint_complete(e).map_err(|err| self.source_error(err))?;
                    }
                    self.commit(e)?
                }
                Notice::Stop => return Err(EngineError::Stopped),
            }
        }
        Ok(())
    }

    pub(crate) fn source_error(&self, source: crate::SourceError) -> EngineError {
        let ctx = &self.nodes[0].ctx;
        EngineError::Source { node: ctx.node.to_string(), task: ctx.task_index, parallelism: ctx.parallelism, source }
    }

    fn commit(&mut self, epoch: u64) -> Result<(), EngineError> {
        for i in 0..self.nodes.len() {
            let node = &mut self.nodes[i];
            if let NodeImpl::Sink(sink) = &mut node.imp {
                let r = guard(&node.ctx, || sink.commit(epoch))?;
                r.map_err(|e| self.sink_error(i, e, None))?;
            }
        }
        Ok(())
    }

    /// Snapshot every node of the chain for checkpoint `epoch` (`None`: the
    /// final snapshot after the input ended), pass the barrier on and
    /// acknowledge.
    fn checkpoint(&mut self, epoch: Option<u64>, position: Option<Vec<u8>>) -> Result<(), EngineError> {
        let Some(ck) = &self.checkpointing else { return Ok(()) };
        let staging = ck.staging.join(epoch.map_or("final".into(), |e| e.to_string())).join(&self.name);
        let mut states = Vec::with_capacity(self.nodes.len());
        let mut writers = Vec::new();
        for i in 0..self.nodes.len() {
            let node = &mut self.nodes[i];
            let ctx = &node.ctx;
            let mut state = TaskState {
                node: ctx.node.to_string(),
                task: ctx.task_index,
                parallelism: ctx.parallelism,
                position: None,
                watermark: None,
                files: Vec::new(),
            };
            let mut swap_to = None;
            match &mut node.imp {
                NodeImpl::Source => {
                    state.position = position.clone();
                    state.watermark = self.watermarks.as_ref().map(|w| w.max_ts).filter(|&t| t != crate::NO_TIMESTAMP);
                }
                NodeImpl::Operator(op) => {
                    let dir = staging.join(&*ctx.node);
                    std::fs::create_dir_all(&dir).map_err(|source| {
                        EngineError::Store(crate::StoreError::Staging { path: dir.clone(), source })
                    })?;
                    swap_to = epoch.and_then(|e| self.swaps.due(&ctx.node, e));
                    let r = guard(ctx, || op.snapshot(&dir))?;
                    if let Some(w) = r.map_err(|e| self.op_error(i, e))? {
                        writers.push((i, w));
                    }
                }
                NodeImpl::Sink(sink) => {
                    let e = epoch.unwrap_or(FINAL_EPOCH);
                    let dir = staging.join(&*ctx.node);
                    let r = guard(ctx, || {
                        sink.pre_commit(e)?;
                        std::fs::create_dir_all(&dir).map_err(|err| {
                            crate::SinkError::msg(format!("cannot create the staging directory {}: {err}", dir.display()))
                        })?;
                        sink.snapshot(e, &dir)
                    })?;
                    if let Some(w) = r.map_err(|err| self.sink_error(i, err, None))? {
                        writers.push((i, w));
                    }
                }
            }
            states.push(state);
            if let (Some(next), Some(e)) = (swap_to, epoch) {
                self.swap(i, e, &*next)?;
            }
        }
        if let Some(e) = epoch {
            for x in &self.exchanges {
                x.broadcast(|| Body::Barrier(e), &self.cancel)?;
            }
        }
        let ck = self.checkpointing.as_ref().expect("checked above");
        let alignment = std::mem::take(&mut self.alignment);
        let ack = Ack { task: ck.task, epoch, states, writers, staging, alignment };
        if ck.uploaders.send(ack) { Ok(()) } else { Err(EngineError::Cancelled) }
    }

    /// Switch node `i` to new logic at the barrier of `epoch` (hot swap).
    fn swap(&mut self, i: usize, epoch: u64, next: &(dyn std::any::Any + Send + Sync)) -> Result<(), EngineError> {
        let node = &mut self.nodes[i];
        let NodeImpl::Operator(op) = &mut node.imp else { return Ok(()) };
        let ctx = &node.ctx;
        let r = guard(ctx, || op.swap(next)).and_then(|r| r.map_err(|e| EngineError::Swap {
            node: ctx.node.to_string(),
            task: ctx.task_index,
            epoch,
            message: format!("{e:#}"),
        }));
        self.swaps.report(&ctx.node, epoch, r.as_ref().map(|_| ()).map_err(|e| e.to_string()));
        if r.is_ok() {
            tracing::info!(node = &*ctx.node, task = ctx.task_index, epoch, "operator switched to its new logic");
        }
        r
    }

    /// After the final snapshot: a task with sinks waits until the final
    /// checkpoint is complete and publishes its output.
    fn await_final_commit(&mut self) -> Result<(), EngineError> {
        if !self.nodes.iter().any(|n| matches!(n.imp, NodeImpl::Sink(_))) {
            return Ok(());
        }
        loop {
            self.cancelled()?;
            let Some(ck) = &self.checkpointing else { return Ok(()) };
            match ck.completed.recv_timeout(POLL) {
                Ok(Notice::Completed(e)) => {
                    if e == FINAL_EPOCH && std::env::var("WEIR_FAULT").is_ok_and(|f| f == "before-final-commit") {
                        // Fault injection for tests: the process dies between
                        // the final checkpoint's completion and the sinks'
                        // commit of their last output.
                        tracing::error!("fault injection: stopping between the final checkpoint and the commit of the sinks' last output");
                        std::process::abort();
                    }
                    self.commit(e)?;
                    if e == FINAL_EPOCH {
                        return Ok(());
                    }
                }
                Ok(Notice::Stop) => return Err(EngineError::Stopped),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(EngineError::Checkpoint(
                        "the final checkpoint did not complete, so the output of this run stays unpublished".into(),
                    ));
                }
            }
        }
    }

    fn cancelled(&self) -> Result<(), EngineError> {
        if self.cancel.load(Ordering::Relaxed) { Err(EngineError::Cancelled) } else { Ok(()) }
    }

    /// Returns the source's position after its last record.
    fn run_source(&mut self, mut source: Box<dyn Source>, index: u16) -> Result<Option<Vec<u8>>, EngineError> {
        if self.checkpointing.is_some() && source.position().is_none() {
            let ctx = &self.nodes[0].ctx;
            let source = crate::SourceError::msg("this source cannot be replayed, so it cannot take part in checkpoints");
            return Err(EngineError::Source { node: ctx.node.to_string(), task: ctx.task_index, parallelism: ctx.parallelism, source });
        }
        let bs = self.batch_size;
        let mut exhausted = false;
        while !exhausted {
            self.cancelled()?;
            self.poll_completed(Some(&mut *source))?;
            let mut batch = RecordBatch::with_capacity(bs);
            let mut first: Option<Instant> = None;
            let mut barrier = None;
            loop {
                if let Some(epoch) = self.triggered() {
                    barrier = Some(epoch);
                    break;
                }
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
                            // Nothing at all: go round the outer loop (idleness,
                            // timers, cancellation, completed checkpoints).
                            break;
                        }
                    }
                }
            }
            for o in &mut batch.origins {
                o.source = index;
            }
            batch.born = crate::batch::Born(first);
            self.isolate_source_rows(&mut *source, index, &mut batch)?;
            let mut events = Vec::new();
            if let Some(g) = &mut self.watermarks {
                g.after_batch(&batch, source.splits(), &mut events);
            }
            if !batch.is_empty() {
                self.push(0, batch)?;
            } else if (0..self.nodes[0].emitter.port_count()).any(|p| !self.nodes[0].emitter.port(p).is_empty()) {
                // Dead letters only.
                self.route(0)?;
            }
            for e in events {
                match e {
                    WatermarkEvent::Watermark(wm) => self.advance_watermark(wm)?,
                    WatermarkEvent::Idle(idle) => {
                        for x in &self.exchanges {
                            x.broadcast(|| Body::Idle(idle), &self.cancel)?;
                        }
                    }
                }
            }
            self.tick()?;
            if let Some(epoch) = barrier {
                self.poll_completed(Some(&mut *source))?;
                self.checkpoint(Some(epoch), source.position())?;
            }
        }
        if self.watermarks.is_some() {
            // The end of input: every event-time timer is due.
            self.advance_watermark(i64::MAX)?;
        }
        Ok(source.position())
    }

    /// The task's watermark advanced: operators of the chain see it in order
    /// (what they emit goes on first), then it goes downstream.
    fn advance_watermark(&mut self, wm: i64) -> Result<(), EngineError> {
        for node in &self.nodes {
            node.metrics.set_watermark(wm);
        }
        for i in 0..self.nodes.len() {
            let node = &mut self.nodes[i];
            if let NodeImpl::Operator(op) = &mut node.imp {
                let r = guard(&node.ctx, || op.on_watermark(wm, &mut node.emitter))?;
                r.map_err(|e| self.op_error(i, e))?;
                self.route(i)?;
            }
        }
        for x in &self.exchanges {
            x.broadcast(|| Body::Watermark(wm), &self.cancel)?;
        }
        Ok(())
    }

    /// Let operators see the processing time, at most every [`TICK`].
    fn tick(&mut self) -> Result<(), EngineError> {
        if self.last_tick.elapsed() < TICK {
            return Ok(());
        }
        self.last_tick = Instant::now();
        let now = crate::clock::now_ms();
        for i in 0..self.nodes.len() {
            let node = &mut self.nodes[i];
            if let NodeImpl::Operator(op) = &mut node.imp {
                let r = guard(&node.ctx, || op.on_processing_time(now, &mut node.emitter))?;
                r.map_err(|e| self.op_error(i, e))?;
                self.route(i)?;
            }
        }
        Ok(())
    }

    /// Process the channel until every producer has ended, aligning
    /// checkpoint barriers (see `align.rs`).
    fn run_channel(&mut self, rx: Box<dyn Inbox>, producers: usize) -> Result<(), EngineError> {
        let mut aligner = Aligner::new(producers);
        while aligner.live() {
            let msg = match aligner.replayed() {
                Some(m) => m,
                None => match rx.recv_timeout(POLL) {
                    Ok(m) => m,
                    Err(RecvError::Timeout) => {
                        self.cancelled()?;
                        self.poll_completed(None)?;
                        self.tick()?;
                        self.idle()?;
                        continue;
                    }
                    Err(RecvError::Disconnected) => return Err(EngineError::Cancelled),
                },
            };
            let coalesce = aligner.may_coalesce();
            match aligner.accept(msg)? {
                Step::Process(mut batch) => {
                    if coalesce {
                        // Merge what is already queued, up to a full batch.
                        while batch.len() < self.batch_size {
                            match rx.try_recv() {
                                Some(Message { body: Body::Data(more), .. }) => batch.append(&more),
                                Some(other) => {
                                    aligner.put_back(other);
                                    break;
                                }
                                None => break,
                            }
                        }
                    }
                    self.push(0, batch)?;
                    self.tick()?;
                }
                Step::Watermark(wm) => self.advance_watermark(wm)?,
                Step::Nothing => {}
            }
            if let Some(epoch) = aligner.aligned() {
                // Earlier checkpoints' commits first: a sink then holds at
                // most the epochs still pending when it snapshots.
                self.poll_completed(None)?;
                self.alignment = aligner.alignment();
                self.checkpoint(Some(epoch), None)?;
                self.poll_completed(None)?;
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

    /// Every input has ended: operators emit what they hold back, then (with
    /// checkpointing) the task takes its final snapshot, and the end is passed on.
    fn finish(&mut self, position: Option<Vec<u8>>) -> Result<(), EngineError> {
        let checkpointing = self.checkpointing.is_some();
        for i in 0..self.nodes.len() {
            let node = &mut self.nodes[i];
            match &mut node.imp {
                NodeImpl::Source => {}
                NodeImpl::Operator(op) => {
                    let r = guard(&node.ctx, || op.finish(&mut node.emitter))?;
                    r.map_err(|e| self.op_error(i, e))?;
                    self.route(i)?;
                }
                NodeImpl::Sink(_) if checkpointing => {}
                NodeImpl::Sink(sink) => {
                    let r = guard(&node.ctx, || sink.finish())?;
                    r.map_err(|e| self.sink_error(i, e, None))?;
                }
            }
        }
        self.checkpoint(None, position)?;
        for x in &self.exchanges {
            x.broadcast(|| Body::End, &self.cancel)?;
        }
        if checkpointing {
            self.await_final_commit()?;
        }
        Ok(())
    }

    /// Hand `batch` to chain member `i`, and what it emits on down the
    /// chain. Iterative (depth first, as calls would be), so a chain of any
    /// length runs in a bounded stack.
    fn push(&mut self, i: usize, batch: RecordBatch) -> Result<(), EngineError> {
        let mut work = std::mem::take(&mut self.work);
        work.push((i, batch));
        let r = self.drain(&mut work);
        work.clear();
        self.work = work;
        r
    }

    /// Route what member `i` emitted (after a watermark, a tick, `finish`).
    fn route(&mut self, i: usize) -> Result<(), EngineError> {
        let mut work = std::mem::take(&mut self.work);
        let r = self.route_into(i, &mut work).and_then(|()| self.drain(&mut work));
        work.clear();
        self.work = work;
        r
    }

    fn drain(&mut self, work: &mut Vec<(usize, RecordBatch)>) -> Result<(), EngineError> {
        while let Some((i, batch)) = work.pop() {
            if self.process(i, batch)? {
                self.route_into(i, work)?;
            }
        }
        Ok(())
    }

    /// Run member `i` on a batch; true if it may have emitted something.
    fn process(&mut self, i: usize, batch: RecordBatch) -> Result<bool, EngineError> {
        let node = &mut self.nodes[i];
        node.metrics.add_in(batch.len(), batch.keys.len() + batch.values.len());
        let t0 = Instant::now();
        match &mut node.imp {
            NodeImpl::Source => {
                *node.emitter.main() = batch;
                Ok(true)
            }
            NodeImpl::Operator(_) if node.dead_letters.isolates() => {
                let born = batch.born;
                self.process_isolating(i, batch)?;
                self.nodes[i].metrics.add_busy(t0.elapsed().as_nanos() as u64);
                stamp(&mut self.nodes[i].emitter, born);
                Ok(true)
            }
            NodeImpl::Operator(op) => {
                let born = batch.born;
                let r = guard(&node.ctx, || op.process(batch, &mut node.emitter))?;
                node.metrics.add_busy(t0.elapsed().as_nanos() as u64);
                r.map_err(|e| self.op_error(i, e))?;
                stamp(&mut self.nodes[i].emitter, born);
                Ok(true)
            }
            NodeImpl::Sink(sink) => {
                let r = guard(&node.ctx, || sink.write(&batch))?;
                node.metrics.add_busy(t0.elapsed().as_nanos() as u64);
                if let (Ok(()), Some(b)) = (&r, batch.born.0) {
                    node.metrics.add_latency(b.elapsed());
                }
                r.map_err(|e| {
                    let at = e.row().and_then(|r| batch.origins.get(r)).or(batch.origins.first()).copied();
                    self.sink_error(i, e, at)
                })?;
                Ok(false)
            }
        }
    }

    /// Send member `i`'s emitted batches to their exchanges, and queue those
    /// for chained members on `work` (so that they run in emission order:
    /// the stack is popped from the end).
    fn route_into(&mut self, i: usize, work: &mut Vec<(usize, RecordBatch)>) -> Result<(), EngineError> {
        let mark = work.len();
        for port in 0..self.nodes[i].emitter.port_count() {
            let node = &mut self.nodes[i];
            if node.emitter.port(port).is_empty() {
                continue;
            }
            let batch = std::mem::take(node.emitter.port(port));
            node.metrics.add_out(batch.len(), batch.keys.len() + batch.values.len());
            let targets = node.outputs.get(port).map_or(0, Vec::len);
            let mut batch = Some(batch);
            for n in 0..targets {
                let target = self.nodes[i].outputs[port][n];
                let b = if n + 1 == targets { batch.take().expect("batch") } else { batch.clone().expect("batch") };
                match target {
                    Target::Chained(c) => work.push((c, b)),
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
        // Chained members run in the order they were emitted to.
        work[mark..].reverse();
        Ok(())
    }

    pub(crate) fn op_error(&self, i: usize, e: OperatorError) -> EngineError {
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

/// What an operator emitted for an input batch is as old as that batch (its
/// latency counts from when the input was read).
fn stamp(emitter: &mut Emitter, born: crate::batch::Born) {
    for p in 0..emitter.port_count() {
        let port = emitter.port(p);
        if !port.is_empty() && port.born.0.is_none() {
            port.born = born;
        }
    }
}
