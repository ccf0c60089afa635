//! Turns a [`Dataflow`] into running tasks and watches them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, unbounded, Receiver, Sender};

use crate::coordinator::{CheckpointStats, CheckpointSummary, Coordinator, TaskCheckpointing};
use crate::swap::{Replacement, SwapBoard, Ticket};
use crate::dataflow::{Dataflow, NodeKind, Partitioning};
use crate::event_time::WatermarkGenerator;
use crate::exchange::{ExchangeWriter, Message};
use crate::metrics::{NodeMetrics, NodeSnapshot};
use crate::operator::{Emitter, TaskContext};
use crate::task::{NodeImpl, SourceNames, Target, Task, TaskInput, TaskNode};
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
    checkpointing: bool,
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
        if !self.checkpointing {
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
    /// returned.
    pub fn wait(self) -> Result<JobReport, EngineError> {
        let mut first: Option<EngineError> = None;
        for _ in 0..self.handles.len() {
            let r = self.done.recv().unwrap_or(Err(EngineError::Cancelled));
            if let Err(e) = r {
                self.control.cancel();
                match (&first, &e) {
                    (None, _) | (Some(EngineError::Cancelled), _) => first = Some(e),
                    _ => {}
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

/// The sender into a task and, until the task takes it, its receiver.
type Channel = (Sender<Message>, Option<Receiver<Message>>);

pub(crate) fn start(df: Dataflow) -> Result<Job, EngineError> {
    let n = df.nodes.len();
    if !df.nodes.iter().any(|d| matches!(d.kind, NodeKind::Source(_))) {
        return Err(EngineError::Plan("the dataflow has no source".into()));
    }
    let opts = &df.options;
    let parent: Vec<Option<usize>> = (0..n).map(|i| df.chain_parent(i)).collect();
    let root = |mut i: usize| {
        while let Some(p) = parent[i] {
            i = p;
        }
        i
    };
    let par = |i: usize| df.nodes[i].parallelism;

    // Channels into every task of every node that heads a task (other than sources).
    let mut channels: HashMap<usize, Vec<Channel>> = HashMap::new();
    for (i, p) in parent.iter().enumerate() {
        if p.is_none() && !df.nodes[i].inputs.is_empty() {
            let chans = (0..par(i))
                .map(|_| {
                    let (tx, rx) = bounded(opts.channel_capacity);
                    (tx, Some(rx))
                })
                .collect();
            channels.insert(i, chans);
        }
    }

    let mut sources = Vec::new();
    let mut source_index = HashMap::new();
    for (i, d) in df.nodes.iter().enumerate() {
        if let NodeKind::Source(f) = &d.kind {
            source_index.insert(i, sources.len() as u16);
            sources.push((d.name.clone(), f.clone()));
        }
    }
    let sources = Arc::new(SourceNames(sources));
    let restore = df.restore.as_ref();
    // Sinks publish what the restored checkpoint covers and drop the rest.
    for d in &df.nodes {
        if let NodeKind::Sink(f) = &d.kind {
            f.recover(restore.map(|r| (r.epoch, r.finished))).map_err(|source| EngineError::Sink {
                node: d.name.clone(),
                task: 0,
                parallelism: d.parallelism,
                at: String::new(),
                source,
            })?;
        }
    }
    let node_restore: Vec<Option<Arc<crate::NodeRestore>>> =
        df.nodes.iter().map(|d| restore.and_then(|r| r.nodes.get(&d.name)).map(|n| Arc::new(n.clone()))).collect();
    // Producer numbers at each consumer: its input edges' tasks, in order.
    let producer_base = |consumer: usize, edge: usize| -> u32 {
        df.nodes[consumer].inputs[..edge].iter().map(|e| par(e.from.0)).sum()
    };
    let metrics: Vec<Vec<Arc<NodeMetrics>>> =
        df.nodes.iter().map(|d| (0..d.parallelism).map(|_| Arc::default()).collect()).collect();
    let cancel = Arc::new(AtomicBool::new(false));
    let pipeline: Arc<str> = opts.pipeline.as_str().into();

    let mut tasks = Vec::new();
    let (ack_tx, ack_rx) = unbounded();
    let (mut triggers, mut completed) = (Vec::new(), Vec::new());
    for r in (0..n).filter(|&i| parent[i].is_none()) {
        let members: Vec<usize> = (0..n).filter(|&i| root(i) == r).collect();
        let local: HashMap<usize, usize> = members.iter().enumerate().map(|(l, &g)| (g, l)).collect();
        for t in 0..par(r) {
            let mut exchanges = Vec::new();
            let mut nodes = Vec::new();
            let mut input = None;
            for &m in &members {
                let def = &df.nodes[m];
                let ports = 1 + def.side_outputs.len();
                let mut outputs: Vec<Vec<Target>> = vec![Vec::new(); ports];
                for (c, cdef) in df.nodes.iter().enumerate() {
                    for (ei, e) in cdef.inputs.iter().enumerate().filter(|(_, e)| e.from.0 == m) {
                        let target = if parent[c] == Some(m) {
                            Target::Chained(local[&c])
                        } else {
                            let chans = &channels[&c];
                            let same = par(c) == def.parallelism;
                            let (partitioning, senders) = match &e.partitioning {
                                Partitioning::Forward if same => {
                                    (Partitioning::Forward, vec![chans[t as usize].0.clone()])
                                }
                                Partitioning::Forward => {
                                    (Partitioning::Rebalance, chans.iter().map(|c| c.0.clone()).collect())
                                }
                                p => (p.clone(), chans.iter().map(|c| c.0.clone()).collect()),
                            };
                            // Spread round-robin starting points over producer tasks.
                            let next = t as usize;
                            exchanges.push(ExchangeWriter {
                                partitioning,
                                senders,
                                max_parallelism: opts.max_parallelism,
                                next,
                                from: producer_base(c, ei) + t,
                            });
                            Target::Exchange(exchanges.len() - 1)
                        };
                        outputs[e.port as usize].push(target);
                    }
                }
                let ctx = TaskContext {
                    pipeline: pipeline.clone(),
                    node: def.name.as_str().into(),
                    task_index: t,
                    parallelism: def.parallelism,
                    max_parallelism: opts.max_parallelism,
                    side_outputs: def.side_outputs.clone().into(),
                    restore: node_restore[m].clone(),
                };
                let imp = match &def.kind {
                    NodeKind::Source(f) => {
                        let fail = |source| EngineError::Source {
                            node: def.name.clone(),
                            task: t,
                            parallelism: def.parallelism,
                            source,
                        };
                        let mut source = f.create(&ctx).map_err(fail)?;
                        if let Some(r) = &node_restore[m] {
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
                    NodeKind::Operator(f) => {
                        NodeImpl::Operator(f.create(&ctx).map_err(|source| EngineError::Operator {
                            node: def.name.clone(),
                            task: t,
                            parallelism: def.parallelism,
                            at: String::new(),
                            source,
                        })?)
                    }
                    NodeKind::Sink(f) => NodeImpl::Sink(f.create(&ctx).map_err(|source| EngineError::Sink {
                        node: def.name.clone(),
                        task: t,
                        parallelism: def.parallelism,
                        at: String::new(),
                        source,
                    })?),
                };
                if m == r && input.is_none() {
                    let producers = def.inputs.iter().map(|e| par(e.from.0) as usize).sum::<usize>();
                    let rx = channels.get_mut(&r).expect("channel")[t as usize].1.take().expect("receiver");
                    input = Some(TaskInput::Channel { rx, producers });
                }
                nodes.push(TaskNode {
                    ctx,
                    imp,
                    outputs,
                    metrics: metrics[m][t as usize].clone(),
                    emitter: Emitter::new(ports),
                });
            }
            let name = format!("{}-{}", df.nodes[r].name, t);
            let input = input.expect("task input");
            let checkpointing = df.checkpoint.as_ref().map(|c| {
                let (trigger_tx, trigger_rx) = unbounded();
                let (done_tx, done_rx) = unbounded();
                let is_source = matches!(input, TaskInput::Source { .. });
                if is_source {
                    triggers.push(trigger_tx);
                }
                completed.push(done_tx);
                TaskCheckpointing {
                    task: tasks.len(),
                    acks: ack_tx.clone(),
                    completed: done_rx,
                    triggers: is_source.then_some(trigger_rx),
                    staging: c.staging_dir.clone(),
                }
            });
            let task = Task {
                cancel: cancel.clone(),
                nodes,
                exchanges,
                batch_size: opts.batch_size.max(1),
                batch_timeout: opts.batch_timeout,
                sources: sources.clone(),
                name: name.clone(),
                checkpointing,
                watermarks: None,
                last_tick: Instant::now(),
                swaps: Default::default(),
            };
            tasks.push((name, task, input));
        }
    }
    // Only the exchange writers hold senders now: a task that exits disconnects.
    drop(channels);
    drop(ack_tx);
    let swaps = Arc::new(SwapBoard::default());
    let stats = Arc::new(CheckpointStats::default());
    for (_, task, _) in &mut tasks {
        task.swaps = swaps.clone();
    }
    let coordinator = df.checkpoint.clone().map(|config| Coordinator {
        config,
        tasks: tasks.len(),
        acks: ack_rx,
        triggers,
        completed,
        cancel: cancel.clone(),
        swaps: swaps.clone(),
        parallelism: df.nodes.iter().map(|n| (n.name.clone(), n.parallelism)).collect(),
        stats: stats.clone(),
    });

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
            .spawn(move || {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| task.run(input)))
                    .unwrap_or_else(|p| Err(EngineError::Panicked { node, task: index, message: panic_message(&*p) }));
                let _ = done_tx.send(r);
            })
            .map_err(|e| EngineError::Plan(format!("cannot start a task thread: {e}")))?;
        handles.push(h);
    }
    let names = df.nodes.iter().map(|d| d.name.clone());
    let control = JobControl {
        cancel,
        metrics: JobMetrics { nodes: Arc::new(names.zip(metrics).collect()) },
        checkpointing: df.checkpoint.is_some(),
        operators: df
            .nodes
            .iter()
            .filter(|n| matches!(n.kind, NodeKind::Operator(_)))
            .map(|n| n.name.clone())
            .collect(),
        swaps,
        stats,
    };
    Ok(Job { done, handles, control, started: Instant::now() })
}
