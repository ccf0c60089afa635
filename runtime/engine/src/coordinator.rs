//! The checkpoint coordinator: triggers checkpoints at the sources, collects the
//! tasks' acknowledgements, stores their snapshots (on its own thread, so tasks
//! never wait for storage) and completes checkpoints.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::checkpoint::{CheckpointConfig, SnapshotWriter, TaskState, FINAL_EPOCH};
use crate::swap::SwapBoard;
use crate::EngineError;

/// What a running job's checkpoints did, readable from any thread.
#[derive(Debug, Default)]
pub struct CheckpointStats {
    inner: Mutex<CheckpointSummary>,
}

/// See [`CheckpointStats`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckpointSummary {
    pub completed: u64,
    pub failed: u64,
    /// The latest completed checkpoint: epoch, when (ms since the Unix epoch)
    /// and how long it took from trigger to completion.
    pub last_epoch: Option<u64>,
    pub last_completed_ms: Option<i64>,
    pub last_duration_ms: Option<u64>,
}

impl CheckpointStats {
    pub fn summary(&self) -> CheckpointSummary {
        self.inner.lock().unwrap().clone()
    }
}

/// A task's message to the coordinator.
pub(crate) struct Ack {
    pub task: usize,
    /// `None`: the task's input ended and this is its final snapshot, which
    /// stands for it in every later checkpoint.
    pub epoch: Option<u64>,
    pub states: Vec<TaskState>,
    /// Writers of `states[i].files`, run here before storing.
    pub writers: Vec<(usize, SnapshotWriter)>,
    /// The staging directory holding the snapshot's files.
    pub staging: Option<PathBuf>,
}

impl Ack {
    /// The task's states with their files written.
    fn written(mut self) -> Result<Vec<TaskState>, String> {
        for (i, w) in self.writers {
            let s = &mut self.states[i];
            s.files = w().map_err(|e| format!("snapshot of '{}' (task {}): {e}", s.node, s.task))?;
        }
        Ok(self.states)
    }
}

/// A task's end of the checkpoint protocol.
pub(crate) struct TaskCheckpointing {
    pub task: usize,
    pub acks: Sender<Ack>,
    /// Epochs of completed checkpoints ([`FINAL_EPOCH`] for the final one).
    pub completed: Receiver<u64>,
    /// Source tasks: epochs to inject barriers for.
    pub triggers: Option<Receiver<u64>>,
    pub staging: PathBuf,
}

pub(crate) struct Coordinator {
    pub config: CheckpointConfig,
    pub tasks: usize,
    pub acks: Receiver<Ack>,
    /// Per source task.
    pub triggers: Vec<Sender<u64>>,
    /// Per task.
    pub completed: Vec<Sender<u64>>,
    pub cancel: Arc<AtomicBool>,
    pub swaps: Arc<SwapBoard>,
    /// Parallelism by node name (how many tasks switch at a swap).
    pub parallelism: HashMap<String, u32>,
    pub stats: Arc<CheckpointStats>,
}

struct Pending {
    epoch: u64,
    acked: HashSet<usize>,
    failed: Option<String>,
    started: Instant,
    savepoint: Option<String>,
}

const POLL: Duration = Duration::from_millis(50);

impl Coordinator {
    pub fn run(self) -> Result<(), EngineError> {
        let store = self.config.store.clone();
        let mut epoch = self.config.first_epoch.max(1);
        let mut pending: Option<Pending> = None;
        let mut finished: BTreeMap<usize, (Vec<TaskState>, Option<PathBuf>)> = BTreeMap::new();
        let mut savepoints: Vec<String> = Vec::new();
        let mut next_trigger = self.config.interval.map(|i| Instant::now() + i);
        let result = loop {
            if self.cancel.load(Ordering::Relaxed) {
                break Ok(());
            }
            if let Some(poll) = &self.config.savepoints {
                savepoints.extend(poll());
            }
            let now = Instant::now();
            let due = next_trigger.is_some_and(|t| now >= t) || !savepoints.is_empty() || self.swaps.has_requests();
            if pending.is_none() && due && finished.len() < self.tasks {
                let savepoint = (!savepoints.is_empty()).then(|| savepoints.remove(0));
                // Swaps happen at this checkpoint's barrier; the next one waits
                // for their probation.
                let probation = self.swaps.schedule(epoch, |n| self.parallelism.get(n).copied().unwrap_or(0));
                tracing::debug!(epoch, "triggering checkpoint");
                for t in &self.triggers {
                    let _ = t.send(epoch);
                }
                let mut p = Pending { epoch, acked: HashSet::new(), failed: None, started: now, savepoint };
                // Finished tasks take part with their final snapshot.
                for (&task, (states, _)) in &finished {
                    self.store(&mut p, task, states);
                }
                pending = Some(p);
                epoch += 1;
                next_trigger = match (self.config.interval, probation) {
                    (Some(i), Some(p)) => Some(now + i.max(p)),
                    (i, _) => i.map(|i| now + i),
                };
            }
            let wait = next_trigger.map_or(POLL, |t| t.saturating_duration_since(now)).min(POLL);
            match self.acks.recv_timeout(wait) {
                Ok(ack) => {
                    let (task, epoch, staging) = (ack.task, ack.epoch, ack.staging.clone());
                    let states = ack.written();
                    match (epoch, states) {
                        (Some(e), states) => {
                            match (pending.as_mut(), states) {
                                (Some(p), Ok(states)) if p.epoch == e => self.store(p, task, &states),
                                (Some(p), Err(err)) if p.epoch == e => {
                                    p.acked.insert(task);
                                    p.failed.get_or_insert(err);
                                }
                                _ => tracing::warn!(epoch = e, "acknowledgement of no pending checkpoint"),
                            }
                            remove_staging(staging.as_ref());
                        }
                        (None, Ok(states)) => {
                            if let Some(p) = pending.as_mut() {
                                self.store(p, task, &states);
                            }
                            finished.insert(task, (states, staging));
                        }
                        (None, Err(err)) => {
                            break Err(EngineError::Checkpoint(format!("the final snapshot failed: {err}")));
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                // Every task has exited.
                Err(RecvTimeoutError::Disconnected) => break Ok(()),
            }
            if let Some(p) = pending.take_if(|p| p.acked.len() + self.finished_not_acked(p, &finished) >= self.tasks) {
                self.complete(p);
            }
            if finished.len() == self.tasks && pending.is_none() {
                // The final checkpoint: every task's input has ended.
                let mut p = Pending { epoch, acked: HashSet::new(), failed: None, started: Instant::now(), savepoint: None };
                for (&task, (states, _)) in &finished {
                    self.store(&mut p, task, states);
                }
                if let Some(e) = p.failed {
                    store.abort(epoch);
                    break Err(EngineError::Checkpoint(format!("the final checkpoint {epoch} failed: {e}")));
                }
                if let Err(e) = store.complete(epoch, true) {
                    break Err(EngineError::Checkpoint(format!("cannot complete the final checkpoint {epoch}: {e}")));
                }
                tracing::info!(epoch, "final checkpoint complete");
                for c in &self.completed {
                    let _ = c.send(FINAL_EPOCH);
                }
                break Ok(());
            }
        };
        for (_, staging) in finished.values() {
            remove_staging(staging.as_ref());
        }
        self.swaps.abandon("the job stopped before every task of the operator reached the swap's checkpoint barrier");
        result
    }

    /// Finished tasks that count for `p` without having acknowledged it.
    fn finished_not_acked(&self, p: &Pending, finished: &BTreeMap<usize, (Vec<TaskState>, Option<PathBuf>)>) -> usize {
        finished.keys().filter(|t| !p.acked.contains(t)).count()
    }

    fn store(&self, p: &mut Pending, task: usize, states: &[TaskState]) {
        if !p.acked.insert(task) || p.failed.is_some() {
            return;
        }
        if let Err(e) = self.config.store.store_task(p.epoch, states) {
            p.failed = Some(e);
        }
    }

    fn complete(&self, p: Pending) {
        // Every task has acknowledged: the epoch's staging directory is done.
        let _ = std::fs::remove_dir_all(self.config.staging_dir.join(p.epoch.to_string()));
        let store = &self.config.store;
        if let Some(e) = p.failed {
            tracing::warn!(epoch = p.epoch, "checkpoint {} failed: {e}", p.epoch);
            store.abort(p.epoch);
            self.stats.inner.lock().unwrap().failed += 1;
            return;
        }
        if let Err(e) = store.complete(p.epoch, false) {
            tracing::warn!(epoch = p.epoch, "cannot complete checkpoint {}: {e}", p.epoch);
            self.stats.inner.lock().unwrap().failed += 1;
            return;
        }
        {
            let mut s = self.stats.inner.lock().unwrap();
            s.completed += 1;
            s.last_epoch = Some(p.epoch);
            s.last_completed_ms = Some(crate::checkpoint::now_ms());
            s.last_duration_ms = Some(p.started.elapsed().as_millis() as u64);
        }
        if let Some(name) = &p.savepoint {
            match store.keep_as_savepoint(p.epoch, name) {
                Ok(()) => tracing::info!(epoch = p.epoch, "savepoint '{name}' taken"),
                Err(e) => tracing::warn!("savepoint '{name}' failed: {e}"),
            }
        }
        tracing::debug!(epoch = p.epoch, took_ms = p.started.elapsed().as_millis() as u64, "checkpoint complete");
        for c in &self.completed {
            let _ = c.send(p.epoch);
        }
    }
}

fn remove_staging(dir: Option<&PathBuf>) {
    if let Some(d) = dir {
        let _ = std::fs::remove_dir_all(d);
    }
}
