//! The checkpoint coordinator: triggers checkpoints at the sources, collects
//! what the tasks' uploaders stored, completes checkpoints (the store writes
//! the manifest) and tells the tasks, so that their sinks commit. It never
//! touches snapshot files itself: those are written and stored where the
//! tasks run (see `uploader.rs`).

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::checkpoint::{CheckpointStore, StoredTask, FINAL_EPOCH};
use crate::swap::SwapBoard;
use crate::uploader::Stored;
use crate::EngineError;

/// How many past checkpoints [`CheckpointSummary::history`] keeps.
const HISTORY: usize = 64;

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
    /// The last checkpoints, oldest first.
    pub history: Vec<CheckpointRecord>,
    /// Bytes of each node's state in the latest completed checkpoint (its
    /// tasks' files, shared ones included), by node.
    pub node_bytes: BTreeMap<String, u64>,
}

/// One checkpoint of a running job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointRecord {
    pub epoch: u64,
    pub triggered_ms: i64,
    pub duration_ms: u64,
    /// Bytes of the files the checkpoint names (shared files included).
    pub bytes: u64,
    /// Bytes it stored that no earlier checkpoint of the run stored: new
    /// files (an incremental RocksDB snapshot shares the rest).
    pub incremental_bytes: u64,
    /// The longest time a task held input back to align its barriers.
    pub alignment_ms: u64,
    /// Why it failed, if it did.
    pub failure: Option<String>,
    /// The savepoint it was kept as, if any.
    pub savepoint: Option<String>,
}

impl CheckpointStats {
    pub fn summary(&self) -> CheckpointSummary {
        self.inner.lock().unwrap().clone()
    }

    fn record(&self, r: CheckpointRecord, node_bytes: Option<BTreeMap<String, u64>>) {
        let mut s = self.inner.lock().unwrap();
        if r.failure.is_some() {
            s.failed += 1;
        } else {
            s.completed += 1;
            s.last_epoch = Some(r.epoch);
            s.last_completed_ms = Some(crate::clock::now_ms());
            s.last_duration_ms = Some(r.duration_ms);
        }
        if let Some(b) = node_bytes {
            s.node_bytes = b;
        }
        if s.history.len() == HISTORY {
            s.history.remove(0);
        }
        s.history.push(r);
    }
}

/// A savepoint asked for through [`JobControl::savepoint`](crate::JobControl::savepoint).
pub(crate) struct SavepointRequest {
    pub name: String,
    /// The epoch of the checkpoint kept as the savepoint, or why there is none.
    pub reply: Sender<Result<u64, String>>,
    /// Stop the job once the savepoint is complete and its output published.
    pub stop: bool,
}

/// What the coordinator tells a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Notice {
    /// Checkpoint `epoch` is complete: sinks publish what it covers.
    Completed(u64),
    /// Stop, after committing what the notices before said (a stop with a
    /// savepoint).
    Stop,
}

/// A task's end of the checkpoint protocol.
pub(crate) struct TaskCheckpointing {
    pub task: usize,
    pub uploaders: crate::uploader::Uploaders,
    /// Completed checkpoints ([`FINAL_EPOCH`] for the final one) and stops.
    pub completed: Receiver<Notice>,
    /// Source tasks: epochs to inject barriers for.
    pub triggers: Option<Receiver<u64>>,
    pub staging: PathBuf,
}

pub(crate) struct Coordinator {
    pub interval: Option<Duration>,
    pub store: Arc<dyn CheckpointStore>,
    pub staging_dir: PathBuf,
    pub first_epoch: u64,
    pub tasks: usize,
    pub stored: Receiver<Stored>,
    /// Per source task.
    pub triggers: Vec<Sender<u64>>,
    /// Per task.
    pub completed: Vec<Sender<Notice>>,
    pub savepoints: Receiver<SavepointRequest>,
    pub cancel: Arc<AtomicBool>,
    pub swaps: Arc<SwapBoard>,
    /// Parallelism by node name (how many tasks switch at a swap).
    pub parallelism: std::collections::HashMap<String, u32>,
    pub stats: Arc<CheckpointStats>,
    /// Shared files stored by earlier checkpoints of the run (for their
    /// incremental size).
    pub shared_seen: HashSet<String>,
}

struct Pending {
    epoch: u64,
    /// What each task stored for it (finished tasks: their final snapshot).
    stored: BTreeMap<usize, Vec<StoredTask>>,
    failed: Option<String>,
    started: Instant,
    triggered_ms: i64,
    savepoint: Option<SavepointRequest>,
    /// The longest alignment of its tasks so far.
    alignment: Duration,
}

const POLL: Duration = Duration::from_millis(50);

impl Coordinator {
    pub fn run(mut self) -> Result<(), EngineError> {
        let mut epoch = self.first_epoch.max(1);
        let mut pending: Option<Pending> = None;
        // Final snapshots of tasks whose input ended, by task.
        let mut finished: BTreeMap<usize, Vec<StoredTask>> = BTreeMap::new();
        let mut savepoints: VecDeque<SavepointRequest> = VecDeque::new();
        let mut next_trigger = self.interval.map(|i| Instant::now() + i);
        let result = loop {
            if self.cancel.load(Ordering::Relaxed) {
                break Ok(());
            }
            savepoints.extend(self.savepoints.try_iter());
            let now = Instant::now();
            let due = next_trigger.is_some_and(|t| now >= t) || !savepoints.is_empty() || self.swaps.has_requests();
            if pending.is_none() && due && finished.len() < self.tasks {
                // Swaps happen at this checkpoint's barrier; the next one waits
                // for their probation.
                let probation = self.swaps.schedule(epoch, |n| self.parallelism.get(n).copied().unwrap_or(0));
                tracing::debug!(epoch, "triggering checkpoint");
                for t in &self.triggers {
                    let _ = t.send(epoch);
                }
                pending = Some(Pending {
                    epoch,
                    stored: finished.clone(),
                    failed: None,
                    started: now,
                    triggered_ms: crate::clock::now_ms(),
                    savepoint: savepoints.pop_front(),
                    alignment: Duration::ZERO,
                });
                epoch += 1;
                next_trigger = match (self.interval, probation) {
                    (Some(i), Some(p)) => Some(now + i.max(p)),
                    (i, _) => i.map(|i| now + i),
                };
            }
            let wait = next_trigger.map_or(POLL, |t| t.saturating_duration_since(now)).min(POLL);
            match self.stored.recv_timeout(wait) {
                Ok(Stored { task, epoch: Some(e), result, alignment }) => match pending.as_mut() {
                    Some(p) if p.epoch == e => {
                        p.alignment = p.alignment.max(alignment);
                        let stored = result.unwrap_or_else(|err| {
                            p.failed.get_or_insert(err.to_string());
                            Vec::new()
                        });
                        p.stored.insert(task, stored);
                    }
                    _ => tracing::warn!(epoch = e, "a task stored its part of a checkpoint that is not pending"),
                },
                Ok(Stored { task, epoch: None, result: Ok(stored), .. }) => {
                    if let Some(p) = pending.as_mut() {
                        // It stands for the task if the task ended before its barrier.
                        p.stored.entry(task).or_insert_with(|| stored.clone());
                    }
                    finished.insert(task, stored);
                }
                Ok(Stored { epoch: None, result: Err(err), .. }) => {
                    break Err(EngineError::Checkpoint(format!("the final snapshot failed: {err}")));
                }
                Err(RecvTimeoutError::Timeout) => {}
                // Every task (and so every uploader) has exited.
                Err(RecvTimeoutError::Disconnected) => break Ok(()),
            }
            if let Some(p) = pending.take_if(|p| p.stored.len() >= self.tasks)
                && self.complete(p)
            {
                tracing::info!("stopped with a savepoint");
                break Ok(());
            }
            if finished.len() == self.tasks && pending.is_none() {
                // The final checkpoint: every task's input has ended.
                let tasks: Vec<StoredTask> = finished.values().flatten().cloned().collect();
                if let Err(e) = self.store.complete(epoch, true, &tasks) {
                    break Err(EngineError::Checkpoint(format!("cannot complete the final checkpoint {epoch}: {e}")));
                }
                tracing::info!(epoch, "final checkpoint complete");
                for c in &self.completed {
                    let _ = c.send(Notice::Completed(FINAL_EPOCH));
                }
                break Ok(());
            }
        };
        let why = "the job stopped before every task of the operator reached the swap's checkpoint barrier";
        self.swaps.abandon(why);
        for s in pending.into_iter().filter_map(|p| p.savepoint).chain(savepoints) {
            let _ = s.reply.send(Err(format!("the job stopped before savepoint '{}' was taken", s.name)));
        }
        result
    }

    /// Complete checkpoint `p`; true if the job stops now (a stop with a
    /// savepoint succeeded: every task has been told to commit, then stop).
    fn complete(&mut self, p: Pending) -> bool {
        // Every task's part is stored: the epoch's staging directory is done.
        let _ = std::fs::remove_dir_all(self.staging_dir.join(p.epoch.to_string()));
        let duration_ms = p.started.elapsed().as_millis() as u64;
        let tasks: Vec<StoredTask> = p.stored.into_values().flatten().collect();
        let bytes = tasks.iter().flat_map(|t| &t.files).map(|f| f.size).sum();
        let mut node_bytes: BTreeMap<String, u64> = BTreeMap::new();
        for t in &tasks {
            *node_bytes.entry(t.node.clone()).or_default() += t.files.iter().map(|f| f.size).sum::<u64>();
        }
        let fresh = |f: &&crate::checkpoint::StoredFile| !f.shared || !self.shared_seen.contains(&f.path);
        let incremental_bytes = tasks.iter().flat_map(|t| &t.files).filter(fresh).map(|f| f.size).sum();
        let mut record = CheckpointRecord {
            epoch: p.epoch,
            triggered_ms: p.triggered_ms,
            duration_ms,
            bytes,
            incremental_bytes,
            alignment_ms: p.alignment.as_millis() as u64,
            failure: None,
            savepoint: None,
        };
        let completed = match p.failed {
            Some(e) => Err(e),
            None => self.store.complete(p.epoch, false, &tasks).map_err(|e| format!("cannot complete it: {e}")),
        };
        if let Err(e) = completed {
            tracing::warn!(epoch = p.epoch, "checkpoint {} failed: {e}", p.epoch);
            self.store.abort(p.epoch);
            if let Some(s) = p.savepoint {
                let _ = s.reply.send(Err(format!("checkpoint {} failed: {e}", p.epoch)));
            }
            record.failure = Some(e);
            self.stats.record(record, None);
            return false;
        }
        self.shared_seen.extend(tasks.iter().flat_map(|t| &t.files).filter(|f| f.shared).map(|f| f.path.clone()));
        let mut stop = false;
        let mut answer = None;
        if let Some(s) = p.savepoint {
            let kept = self.store.keep_as_savepoint(p.epoch, &s.name);
            match &kept {
                Ok(()) => {
                    tracing::info!(epoch = p.epoch, "savepoint '{}' taken", s.name);
                    record.savepoint = Some(s.name.clone());
                    stop = s.stop;
                }
                Err(e) => tracing::warn!("savepoint '{}' failed: {e}", s.name),
            }
            answer = Some((s.reply, kept.map(|()| p.epoch).map_err(|e| e.to_string())));
        }
        tracing::debug!(epoch = p.epoch, took_ms = duration_ms, "checkpoint complete");
        self.stats.record(record, Some(node_bytes));
        for c in &self.completed {
            let _ = c.send(Notice::Completed(p.epoch));
            if stop {
                let _ = c.send(Notice::Stop);
            }
        }
        // Answer once every task has been told, so that a stop's caller
        // finds the output published when the job has ended.
        if let Some((reply, r)) = answer {
            let _ = reply.send(r);
        }
        stop
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{StoreError, StoredFile};
    use crossbeam_channel::{bounded, unbounded};
    use std::thread::JoinHandle;

    /// Records what the coordinator asks of the store.
    #[derive(Default)]
    struct Recorder {
        completed: Mutex<Vec<(u64, bool, Vec<(String, u32)>)>>,
        aborted: Mutex<Vec<u64>>,
        savepoints: Mutex<Vec<(u64, String)>>,
        fail_complete: AtomicBool,
    }

    impl CheckpointStore for Recorder {
        fn store_task(&self, _: u64, _: &[crate::TaskState]) -> Result<Vec<StoredTask>, StoreError> {
            unreachable!("uploaders store, not the coordinator")
        }
        fn complete(&self, epoch: u64, finished: bool, tasks: &[StoredTask]) -> Result<(), StoreError> {
            if self.fail_complete.load(Ordering::Relaxed) {
                return Err(StoreError::Storage { location: "test".into(), message: "disk full".into() });
            }
            let tasks = tasks.iter().map(|t| (t.node.clone(), t.task)).collect();
            self.completed.lock().unwrap().push((epoch, finished, tasks));
            Ok(())
        }
        fn abort(&self, epoch: u64) {
            self.aborted.lock().unwrap().push(epoch);
        }
        fn keep_as_savepoint(&self, epoch: u64, name: &str) -> Result<(), StoreError> {
            self.savepoints.lock().unwrap().push((epoch, name.into()));
            Ok(())
        }
    }

    struct Harness {
        store: Arc<Recorder>,
        stored: Sender<Stored>,
        triggers: Vec<Receiver<u64>>,
        completed: Vec<Receiver<Notice>>,
        savepoints: Sender<SavepointRequest>,
        stats: Arc<CheckpointStats>,
        cancel: Arc<AtomicBool>,
        run: JoinHandle<Result<(), EngineError>>,
    }

    /// A coordinator of `tasks` tasks, the first `sources` of them sources,
    /// checkpointing every `interval` (`None`: only on request).
    fn harness(tasks: usize, sources: usize, interval: Option<Duration>) -> Harness {
        let store = Arc::new(Recorder::default());
        let (stored_tx, stored_rx) = unbounded();
        let (sp_tx, sp_rx) = unbounded();
        let (mut triggers, mut trigger_rx) = (Vec::new(), Vec::new());
        for _ in 0..sources {
            let (t, r) = unbounded();
            triggers.push(t);
            trigger_rx.push(r);
        }
        let (mut completed, mut completed_rx) = (Vec::new(), Vec::new());
        for _ in 0..tasks {
            let (t, r) = unbounded();
            completed.push(t);
            completed_rx.push(r);
        }
        let stats = Arc::new(CheckpointStats::default());
        let cancel = Arc::new(AtomicBool::new(false));
        let c = Coordinator {
            interval,
            store: store.clone(),
            staging_dir: std::env::temp_dir().join("weir-coordinator-test-nothing-here"),
            first_epoch: 5,
            tasks,
            stored: stored_rx,
            triggers,
            completed,
            savepoints: sp_rx,
            cancel: cancel.clone(),
            swaps: Arc::default(),
            parallelism: Default::default(),
            stats: stats.clone(),
            shared_seen: Default::default(),
        };
        let run = std::thread::spawn(move || c.run());
        Harness { store, stored: stored_tx, triggers: trigger_rx, completed: completed_rx, savepoints: sp_tx, stats, cancel, run }
    }

    fn part(task: usize, bytes: u64) -> Vec<StoredTask> {
        let file = StoredFile { name: "f".into(), path: format!("p{task}"), size: bytes, checksum: "0".into(), shared: false };
        vec![StoredTask { node: format!("n{task}"), task: 0, parallelism: 1, position: None, watermark: None, files: vec![file], finished: false }]
    }

    fn ack(h: &Harness, task: usize, epoch: Option<u64>) {
        h.stored.send(Stored { task, epoch, result: Ok(part(task, 10)), alignment: Duration::from_millis(task as u64) }).unwrap();
    }

    #[test]
    fn incremental_bytes_leave_out_shared_files_an_earlier_checkpoint_stored() {
        let h = harness(1, 1, Some(Duration::from_millis(10)));
        let file = |path: &str, size, shared| StoredFile { name: path.into(), path: path.into(), size, checksum: "0".into(), shared };
        let send = |epoch, files| {
            let part = vec![StoredTask { node: "n".into(), task: 0, parallelism: 1, position: None, watermark: None, files, finished: false }];
            h.stored.send(Stored { task: 0, epoch: Some(epoch), result: Ok(part), alignment: Duration::ZERO }).unwrap();
        };
        assert_eq!(recv(&h.triggers[0]), 5);
        send(5, vec![file("sst-1", 100, true), file("meta-5", 1, false)]);
        assert_eq!(recv(&h.completed[0]), Notice::Completed(5));
        assert_eq!(recv(&h.triggers[0]), 6);
        send(6, vec![file("sst-1", 100, true), file("sst-2", 40, true), file("meta-6", 1, false)]);
        assert_eq!(recv(&h.completed[0]), Notice::Completed(6));
        let s = h.stats.summary();
        let sizes: Vec<(u64, u64)> = s.history.iter().map(|r| (r.bytes, r.incremental_bytes)).collect();
        assert_eq!(sizes, [(101, 101), (141, 41)]);
        h.cancel.store(true, Ordering::Relaxed);
        h.run.join().unwrap().unwrap();
    }

    fn recv<T>(r: &Receiver<T>) -> T {
        r.recv_timeout(Duration::from_secs(5)).expect("within 5 s")
    }

    #[test]
    fn a_checkpoint_completes_when_every_task_has_stored_its_part() {
        let h = harness(3, 2, Some(Duration::from_millis(10)));
        assert_eq!(recv(&h.triggers[0]), 5, "epochs start at first_epoch");
        assert_eq!(recv(&h.triggers[1]), 5);
        ack(&h, 0, Some(5));
        ack(&h, 2, Some(5));
        std::thread::sleep(Duration::from_millis(50));
        assert!(h.completed[0].try_recv().is_err(), "task 1 has not stored yet");
        assert!(h.triggers[0].try_recv().is_err(), "no second checkpoint while one is pending");
        ack(&h, 1, Some(5));
        for c in &h.completed {
            assert_eq!(recv(c), Notice::Completed(5));
        }
        let done = h.store.completed.lock().unwrap().clone();
        assert_eq!(done, vec![(5, false, vec![("n0".into(), 0), ("n1".into(), 0), ("n2".into(), 0)])]);
        let s = h.stats.summary();
        assert_eq!((s.completed, s.failed, s.last_epoch), (1, 0, Some(5)));
        assert_eq!(s.history[0].bytes, 30);
        assert_eq!((s.history[0].incremental_bytes, s.history[0].alignment_ms), (30, 2), "the slowest task's alignment");
        assert_eq!(s.node_bytes, [("n0".to_string(), 10), ("n1".into(), 10), ("n2".into(), 10)].into_iter().collect());
        assert_eq!(recv(&h.triggers[0]), 6, "the next one is triggered after the interval");
        h.cancel.store(true, Ordering::Relaxed);
        h.run.join().unwrap().unwrap();
    }

    #[test]
    fn a_failed_part_or_store_fails_the_checkpoint_and_tasks_hear_nothing() {
        let h = harness(2, 1, Some(Duration::from_millis(10)));
        assert_eq!(recv(&h.triggers[0]), 5);
        let err = StoreError::Storage { location: "s3://b".into(), message: "timeout".into() };
        h.stored.send(Stored { task: 0, epoch: Some(5), result: Err(err), alignment: Duration::ZERO }).unwrap();
        ack(&h, 1, Some(5));
        assert_eq!(recv(&h.triggers[0]), 6);
        assert_eq!(*h.store.aborted.lock().unwrap(), vec![5]);
        assert!(h.completed[0].try_recv().is_err());
        let s = h.stats.summary();
        assert_eq!((s.completed, s.failed), (0, 1));
        assert!(s.history[0].failure.as_deref().unwrap().contains("s3://b: timeout"), "{:?}", s.history);
        h.store.fail_complete.store(true, Ordering::Relaxed);
        ack(&h, 0, Some(6));
        ack(&h, 1, Some(6));
        assert_eq!(recv(&h.triggers[0]), 7);
        assert_eq!(*h.store.aborted.lock().unwrap(), vec![5, 6]);
        assert!(h.stats.summary().history[1].failure.as_deref().unwrap().contains("disk full"));
        h.cancel.store(true, Ordering::Relaxed);
        h.run.join().unwrap().unwrap();
    }

    #[test]
    fn finished_tasks_stand_in_later_checkpoints_and_the_final_one_publishes_everything() {
        let h = harness(2, 1, None);
        // The source finishes first: its final snapshot, then a savepoint is asked for.
        ack(&h, 0, None);
        let (reply, answer) = bounded(1);
        h.savepoints.send(SavepointRequest { name: "sp".into(), reply, stop: false }).unwrap();
        // Only the running task is asked (finished sources get no trigger)...
        assert_eq!(recv(&h.triggers[0]), 5, "the trigger still goes out");
        ack(&h, 1, Some(5));
        assert_eq!(answer.recv_timeout(Duration::from_secs(5)).unwrap(), Ok(5));
        assert_eq!(*h.store.savepoints.lock().unwrap(), vec![(5, "sp".to_string())]);
        for c in &h.completed {
            assert_eq!(recv(c), Notice::Completed(5));
        }
        // ...and the last task ends: the final checkpoint names both final snapshots.
        ack(&h, 1, None);
        for c in &h.completed {
            assert_eq!(recv(c), Notice::Completed(FINAL_EPOCH));
        }
        h.run.join().unwrap().unwrap();
        let done = h.store.completed.lock().unwrap().clone();
        assert_eq!(done.len(), 2);
        assert_eq!(done[1], (6, true, vec![("n0".into(), 0), ("n1".into(), 0)]));
    }

    #[test]
    fn a_stop_with_savepoint_tells_every_task_to_commit_then_stop() {
        let h = harness(2, 1, None);
        let (reply, answer) = bounded(1);
        h.savepoints.send(SavepointRequest { name: "stop-1".into(), reply, stop: true }).unwrap();
        assert_eq!(recv(&h.triggers[0]), 5);
        ack(&h, 0, Some(5));
        ack(&h, 1, Some(5));
        assert_eq!(answer.recv_timeout(Duration::from_secs(5)).unwrap(), Ok(5));
        for c in &h.completed {
            // The answer came after both notices were sent.
            assert_eq!(c.try_recv().unwrap(), Notice::Completed(5));
            assert_eq!(c.try_recv().unwrap(), Notice::Stop);
        }
        h.run.join().unwrap().unwrap();
        assert_eq!(h.stats.summary().history[0].savepoint.as_deref(), Some("stop-1"));
    }

    #[test]
    fn a_savepoint_asked_for_when_the_job_stops_gets_an_answer() {
        let h = harness(1, 1, None);
        let (reply, answer) = bounded(1);
        h.savepoints.send(SavepointRequest { name: "late".into(), reply, stop: false }).unwrap();
        assert_eq!(recv(&h.triggers[0]), 5);
        h.cancel.store(true, Ordering::Relaxed);
        h.run.join().unwrap().unwrap();
        let e = answer.recv_timeout(Duration::from_secs(5)).unwrap().unwrap_err();
        assert!(e.contains("stopped before savepoint 'late'"), "{e}");
    }
}
