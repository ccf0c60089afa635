//! Runs a [`Dataflow`]: its physical plan's tasks on threads of this process,
//! channels from a [`Transport`], the checkpoint coordinator and the
//! uploaders; and watches them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, unbounded, Receiver, Sender};

use crate::coordinator::{CheckpointStats, CheckpointSummary, Coordinator, SavepointRequest, TaskCheckpointing};
use crate::dataflow::{Dataflow, Factory};
use crate::event_time::WatermarkGenerator;
use crate::exchange::ExchangeWriter;
use crate::metrics::{NodeMetrics, NodeSnapshot};
use crate::operator::{Emitter, TaskContext};
use crate::plan::{self, PhysicalPlan};
use crate::swap::{Replacement, SwapBoard, Ticket};
use crate::task::{NodeImpl, SourceNames, Task, TaskInput, TaskNode};
use crate::transport::{Inbox, Outbox, Transport};
use crate::uploader::Uploaders;
use crate::EngineError;

/// Live counters of a running job, readable from any thread.
#[derive(Clone)]
pub struct JobMetrics {
    nodes: Arc<Vec<(String, Vec<Arc<NodeMetrics>>)>>,
}

impl JobMetrics {
    pub fn snapshot(&self) -> Vec<NodeSnapshot> {
        self.nodes.iter().map(|(name, tasks)| NodeSnapshot::sum(name, tasks)).collect()
    }

    /// Per node, each parallel task's counters (`parallelism` 1 each).
    pub fn tasks(&self) -> Vec<Vec<NodeSnapshot>> {
        self.nodes.iter().map(|(name, tasks)| tasks.iter().map(|t| NodeSnapshot::sum(name, std::slice::from_ref(t))).collect()).collect()
    }
}

/// What a finished job did.
#[derive(Clone, Debug)]
pub struct JobReport {
    pub elapsed: Duration,
    pub nodes: Vec<NodeSnapshot>,
}

/// A running dataflow.
pub struct Job {
    done: Receiver<Result<(), EngineError>>,
    handles: Vec<JoinHandle<()>>,
    control: JobControl,
    started: Instant,
}

/// Controls a running job from any thread: metrics, cancel, swaps, checkpoints.
#[derive(Clone)]
pub struct JobControl {
    cancel: Arc<AtomicBool>,
    metrics: JobMetrics,
    /// Savepoint requests to the coordinator; `None` without checkpointing.
    savepoints: Option<Sender<SavepointRequest>>,
    operators: Arc<[String]>,
    swaps: Arc<SwapBoard>,
    stats: Arc<CheckpointStats>,
}

impl JobControl {
    pub fn metrics(&self) -> JobMetrics {
        self.metrics.clone()
    }

    /// Ask every task to stop; `wait` then returns [`EngineError::Cancelled`].
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// Hot swap: from the next checkpoint's barrier on, operator `node` runs
    /// `replacement` (which its operators' [`Operator::swap`](crate::Operator::swap)
    /// understands) instead of its logic, keeping its state. The next
    /// checkpoint starts at once; the one after waits at least `probation`.
    /// The job must checkpoint.
    pub fn swap(&self, node: &str, replacement: Replacement, probation: Duration) -> Result<Arc<Ticket>, EngineError> {
        if self.savepoints.is_none() {
            return Err(EngineError::Plan("a swap happens at a checkpoint barrier, but this job does not checkpoint".into()));
        }
        if !self.operators.iter().any(|o| o == node) {
            return Err(EngineError::Plan(format!(
                "the job has no operator '{node}' (operators: {})",
                self.operators.join(", ")
            )));
        }
        Ok(self.swaps.request(node, replacement, probation))
    }

    /// The job's checkpoints so far.
    pub fn checkpoints(&self) -> CheckpointSummary {
        self.stats.summary()
    }

    /// Take a checkpoint now and keep it as savepoint `name`; returns its
    /// epoch once it is complete, or why it is not (waiting at most `timeout`).
    pub fn savepoint(&self, name: &str, timeout: Duration) -> Result<u64, EngineError> {
        self.request_savepoint(name, timeout, false)
    }

    /// Stop with a savepoint, as Flink's stop: take savepoint `name`, let
    /// every sink publish what it covers, then stop the job (its `wait`
    /// returns [`EngineError::Stopped`]). Returns the savepoint's epoch. If
    /// the savepoint fails the job keeps running.
    pub fn stop_with_savepoint(&self, name: &str, timeout: Duration) -> Result<u64, EngineError> {
        self.request_savepoint(name, timeout, true)
    }

    fn request_savepoint(&self, name: &str, timeout: Duration, stop: bool) -> Result<u64, EngineError> {
        let Some(tx) = &self.savepoints else {
            return Err(EngineError::Plan("a savepoint is a checkpoint, but this job does not checkpoint".into()));
        };
        let (reply, answer) = bounded(1);
        let gone = || EngineError::Checkpoint(format!("the job stopped before savepoint '{name}' was taken"));
        tx.send(SavepointRequest { name: name.to_string(), reply, stop }).map_err(|_| gone())?;
        match answer.recv_timeout(timeout) {
            Ok(Ok(epoch)) => Ok(epoch),
            Ok(Err(why)) => Err(EngineError::Checkpoint(format!("savepoint '{name}': {why}"))),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                Err(EngineError::Checkpoint(format!("savepoint '{name}' was not taken within {timeout:?}")))
            }
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => Err(gone()),
        }
    }
}

impl Job {
    pub fn metrics(&self) -> JobMetrics {
        self.control.metrics()
    }

    /// Ask every task to stop; `wait` then returns [`EngineError::Cancelled`].
    pub fn cancel(&self) {
        self.control.cancel()
    }

    /// A handle to control the job while another thread waits for it.
    pub fn control(&self) -> JobControl {
        self.control.clone()
    }

    /// Wait for every task. The first task failure cancels the others and is
    /// returned (a failure rather than the cancellation or stop it caused).
    pub fn wait(self) -> Result<JobReport, EngineError> {
        let rank = |e: &EngineError| match e {
            EngineError::Cancelled => 0,
            EngineError::Stopped => 1,
            _ => 2,
        };
        let mut first: Option<EngineError> = None;
        for _ in 0..self.handles.len() {
            let r = self.done.recv().unwrap_or(Err(EngineError::Cancelled));
            if let Err(e) = r {
                if !matches!(e, EngineError::Stopped) {
                    self.control.cancel();
                }
                if first.as_ref().is_none_or(|f| rank(&e) > rank(f)) {
                    first = Some(e);
                }
            }
        }
        for h in self.handles {
            let _ = h.join();
        }
        match first {
            Some(e) => Err(e),
            None => Ok(JobReport { elapsed: self.started.elapsed(), nodes: self.control.metrics.snapshot() }),
        }
    }
}

pub(crate) fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

pub(crate) fn start(df: Dataflow, transport: &dyn Transport) -> Result<Job, EngineError> {
    let Dataflow { logical, factories, checkpoint, restore, .. } = df;
    let nodes = &logical.nodes;
    if !factories.iter().any(|f| matches!(f, Factory::Source(_))) {
        return Err(EngineError::Plan("the dataflow has no source".into()));
    }
    let opts = &logical.options;
    let plan = PhysicalPlan::of(&logical);
    let mut outboxes: Vec<Arc<dyn Outbox>> = Vec::with_capacity(plan.channels.len());
    let mut inboxes: Vec<Option<Box<dyn Inbox>>> = Vec::with_capacity(plan.channels.len());
    for _ in &plan.channels {
        let (tx, rx) = transport.channel(opts.channel_capacity);
        outboxes.push(tx);
        inboxes.push(Some(rx));
    }

    let mut sources = Vec::new();
    let mut source_index = HashMap::new();
    for (i, f) in factories.iter().enumerate() {
        if let Factory::Source(f) = f {
            source_index.insert(i, sources.len() as u16);
            sources.push((nodes[i].name.clone(), f.clone()));
        }
    }
    let sources = Arc::new(SourceNames(sources));
    // Sinks publish what the restored checkpoint covers and drop the rest.
    for (i, f) in factories.iter().enumerate() {
        if let Factory::Sink(f) = f {
            let state = restore.as_ref().and_then(|r| r.nodes.get(&nodes[i].name));
            f.recover(restore.as_ref().map(|r| (r.epoch, r.finished)), state).map_err(|source| EngineError::Sink {
                node: nodes[i].name.clone(),
                task: 0,
                parallelism: nodes[i].parallelism,
                at: String::new(),
                source,
            })?;
        }
    }
    let node_restore: Vec<Option<Arc<crate::NodeRestore>>> =
        nodes.iter().map(|d| restore.as_ref().and_then(|r| r.nodes.get(&d.name)).map(|n| Arc::new(n.clone()))).collect();
    let metrics: Vec<Vec<Arc<NodeMetrics>>> =
        nodes.iter().map(|d| (0..d.parallelism).map(|_| Arc::default()).collect()).collect();
    let cancel = Arc::new(AtomicBool::new(false));
    let pipeline: Arc<str> = opts.pipeline.as_str().into();

    // Checkpointing: uploaders report to the coordinator, which triggers the
    // sources and tells every task about completed checkpoints.
    let (stored_tx, stored_rx) = unbounded();
    let uploaders = match &checkpoint {
        Some(c) => Some(
            Uploaders::start(uploader_threads(plan.tasks.len()), c.store.clone(), stored_tx)
                .map_err(|e| EngineError::Plan(format!("cannot start the checkpoint uploaders: {e}")))?,
        ),
        None => None,
    };
    let (mut triggers, mut completed) = (Vec::new(), Vec::new());
    let mut tasks = Vec::new();
    for tp in &plan.tasks {
        let t = tp.index;
        // The member writing to each exchange: its counters take the exchange's back-pressure.
        let mut producer = vec![tp.members[0].node; tp.exchanges.len()];
        for mp in &tp.members {
            for target in mp.outputs.iter().flatten() {
                if let plan::Target::Exchange(x) = target {
                    producer[*x] = mp.node;
                }
            }
        }
        let exchanges = tp
            .exchanges
            .iter()
            .enumerate()
            .map(|(i, x)| ExchangeWriter {
                partitioning: x.partitioning.clone(),
                senders: x.channels.iter().map(|&c| outboxes[c].clone()).collect(),
                max_parallelism: opts.max_parallelism,
                next: x.first,
                from: x.from,
                metrics: metrics[producer[i]][t as usize].clone(),
            })
            .collect();
        let mut members = Vec::with_capacity(tp.members.len());
        let mut input = None;
        for mp in &tp.members {
            let m = mp.node;
            let def = &nodes[m];
            let ctx = TaskContext {
                pipeline: pipeline.clone(),
                node: def.name.as_str().into(),
                task_index: t,
                parallelism: def.parallelism,
                max_parallelism: opts.max_parallelism,
                side_outputs: def.side_outputs.clone().into(),
                restore: node_restore[m].clone(),
                on_error: def.on_error.on_error,
            };
            let imp = match &factories[m] {
                Factory::Source(f) => {
                    let fail = |source| EngineError::Source { node: def.name.clone(), task: t, parallelism: def.parallelism, source };
                    let mut source = f.create(&ctx).map_err(fail)?;
                    if let Some(r) = &node_restore[m]
                        && !f.rescalable()
                    {
                        if r.parallelism != def.parallelism {
                            return Err(fail(crate::SourceError::msg(format!(
                                "the checkpoint was taken with this source at parallelism {}; a source must keep its parallelism (keyed operators may change theirs)",
                                r.parallelism
                            ))));
                        }
                        if let Some(Some(position)) = r.positions.get(t as usize) {
                            source.seek(position).map_err(fail)?;
                        }
                    }
                    let restored_max = node_restore[m].as_ref().and_then(|r| r.watermarks.get(t as usize).copied().flatten());
                    let watermarks = def.event_time.clone().map(|e| WatermarkGenerator::new(e, restored_max));
                    input = Some(TaskInput::Source { source, index: source_index[&m], watermarks });
                    NodeImpl::Source
                }
                Factory::Operator(f) => {
                    let fail = |source| EngineError::Operator {
                        node: def.name.clone(),
                        task: t,
                        parallelism: def.parallelism,
                        at: String::new(),
                        source,
                    };
                    let mut op = f.create(&ctx).map_err(fail)?;
                    if def.on_error.on_error.isolates() && !op.isolate_failures() {
                        return Err(fail(crate::OperatorError::new(format!(
                            "on_error: {} needs an operator that can undo a failed call, and this one cannot (use on_error: fail)",
                            def.on_error.on_error.name()
                        ))));
                    }
                    NodeImpl::Operator(op)
                }
                Factory::Sink(f) => NodeImpl::Sink(f.create(&ctx).map_err(|source| EngineError::Sink {
                    node: def.name.clone(),
                    task: t,
                    parallelism: def.parallelism,
                    at: String::new(),
                    source,
                })?),
            };
            let ports = 1 + def.side_outputs.len();
            let dead_letters = crate::task::DeadLetters::new(def.on_error, &def.side_outputs);
            members.push(TaskNode {
                ctx,
                imp,
                outputs: mp.outputs.clone(),
                metrics: metrics[m][t as usize].clone(),
                emitter: Emitter::new(ports),
                dead_letters,
            });
        }
        if let plan::TaskInput::Channel { channel, producers } = tp.input {
            let rx = inboxes[channel].take().expect("one task per channel");
            input = Some(TaskInput::Channel { rx, producers });
        }
        let input = input.expect("task input");
        let checkpointing = checkpoint.as_ref().zip(uploaders.as_ref()).map(|(c, uploaders)| {
            let (trigger_tx, trigger_rx) = unbounded();
            let (done_tx, done_rx) = unbounded();
            let is_source = matches!(input, TaskInput::Source { .. });
            if is_source {
                triggers.push(trigger_tx);
            }
            completed.push(done_tx);
            TaskCheckpointing {
                task: tasks.len(),
                uploaders: uploaders.clone(),
                completed: done_rx,
                triggers: is_source.then_some(trigger_rx),
                staging: c.staging_dir.clone(),
            }
        });
        let task = Task {
            cancel: cancel.clone(),
            nodes: members,
            exchanges,
            batch_size: opts.batch_size.max(1),
            batch_timeout: opts.batch_timeout,
            sources: sources.clone(),
            name: tp.name.clone(),
            checkpointing,
            watermarks: None,
            last_tick: Instant::now(),
            swaps: Default::default(),
            work: Vec::new(),
            alignment: Duration::ZERO,
        };
        tasks.push((tp.name.clone(), task, input));
    }
    // Only the exchange writers hold senders now: a task that exits
    // disconnects; only tasks hold uploaders now: when every task is gone, the
    // uploaders end and the coordinator hears it.
    drop(outboxes);
    drop(uploaders);
    let swaps = Arc::new(SwapBoard::default());
    let stats = Arc::new(CheckpointStats::default());
    for (_, task, _) in &mut tasks {
        task.swaps = swaps.clone();
    }
    let (savepoint_tx, savepoint_rx) = unbounded();
    let coordinator = checkpoint.map(|config| Coordinator {
        interval: config.interval,
        store: config.store,
        staging_dir: config.staging_dir,
        first_epoch: config.first_epoch,
        tasks: tasks.len(),
        stored: stored_rx,
        triggers,
        completed,
        savepoints: savepoint_rx,
        cancel: cancel.clone(),
        swaps: swaps.clone(),
        parallelism: nodes.iter().map(|n| (n.name.clone(), n.parallelism)).collect(),
        stats: stats.clone(),
        shared_seen: Default::default(),
    });
    let checkpointing = coordinator.is_some();

    let (done_tx, done) = bounded(tasks.len() + 1);
    let mut handles = Vec::new();
    if let Some(c) = coordinator {
        let done_tx = done_tx.clone();
        let h = std::thread::Builder::new()
            .name("checkpoint-coordinator".into())
            .spawn(move || {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.run())).unwrap_or_else(|p| {
                    Err(EngineError::Panicked { node: "checkpoint coordinator".into(), task: 0, message: panic_message(&*p) })
                });
                let _ = done_tx.send(r);
            })
            .map_err(|e| EngineError::Plan(format!("cannot start the checkpoint coordinator: {e}")))?;
        handles.push(h);
    }
    for (name, task, input) in tasks {
        let done_tx = done_tx.clone();
        let (node, index) = (task.nodes[0].ctx.node.to_string(), task.nodes[0].ctx.task_index);
        let h = std::thread::Builder::new()
            .name(name)
            .stack_size(TASK_STACK)
            .spawn(move || {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| task.run(input)))
                    .unwrap_or_else(|p| Err(EngineError::Panicked { node, task: index, message: panic_message(&*p) }));
                let _ = done_tx.send(r);
            })
            .map_err(|e| EngineError::Plan(format!("cannot start a task thread: {e}")))?;
        handles.push(h);
    }
    let control = JobControl {
        cancel,
        metrics: JobMetrics { nodes: Arc::new(nodes.iter().map(|d| d.name.clone()).zip(metrics).collect()) },
        savepoints: checkpointing.then_some(savepoint_tx),
        operators: nodes.iter().filter(|n| n.role == crate::Role::Operator).map(|n| n.name.clone()).collect(),
        swaps,
        stats,
    };
    Ok(Job { done, handles, control, started: Instant::now() })
}

/// A task thread's stack: operators (Wasm calls) run on it, so more than the
/// default, but its depth never depends on the dataflow's size.
const TASK_STACK: usize = 4 << 20;

/// Uploader threads of a job with `tasks` tasks.
fn uploader_threads(tasks: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    tasks.clamp(1, cores.max(2))
}
