//! Uploaders: threads of the process the tasks run in that write a task's
//! snapshot files and store them (so neither the task nor the coordinator
//! waits for storage), then tell the coordinator what was stored. A task's
//! snapshots always go to the same uploader, so they are stored in the order
//! the task took them.

use std::path::PathBuf;
use std::sync::Arc;

use crossbeam_channel::{unbounded, Sender};

use crate::checkpoint::{CheckpointStore, SnapshotWriter, StoreError, StoredTask, TaskState, FINAL_EPOCH};

/// A task's snapshot for one checkpoint.
pub(crate) struct Ack {
    pub task: usize,
    /// `None`: the task's input ended and this is its final snapshot, which
    /// stands for it in every later checkpoint.
    pub epoch: Option<u64>,
    pub states: Vec<TaskState>,
    /// Writers of `states[i].files`, run by the uploader before storing.
    pub writers: Vec<(usize, SnapshotWriter)>,
    /// The staging directory holding the snapshot's files (removed once stored).
    pub staging: PathBuf,
    /// How long the task held input back to align the checkpoint's barriers.
    pub alignment: std::time::Duration,
}

/// What an uploader tells the coordinator.
pub(crate) struct Stored {
    pub task: usize,
    pub epoch: Option<u64>,
    pub result: Result<Vec<StoredTask>, StoreError>,
    pub alignment: std::time::Duration,
}

impl Ack {
    fn store(mut self, store: &dyn CheckpointStore) -> Stored {
        let (task, epoch, alignment) = (self.task, self.epoch, self.alignment);
        let result = (|| {
            for (i, w) in std::mem::take(&mut self.writers) {
                let s = &mut self.states[i];
                s.files = w().map_err(|source| StoreError::Snapshot { node: s.node.clone(), task: s.task, source })?;
            }
            let mut stored = store.store_task(epoch.unwrap_or(FINAL_EPOCH), &self.states)?;
            for s in &mut stored {
                s.finished = epoch.is_none();
            }
            Ok(stored)
        })();
        let _ = std::fs::remove_dir_all(&self.staging);
        Stored { task, epoch, result, alignment }
    }
}

/// The uploader threads of a job; cloned into every task.
#[derive(Clone)]
pub(crate) struct Uploaders {
    queues: Arc<Vec<Sender<Ack>>>,
}

impl Uploaders {
    /// `threads` uploaders storing into `store` and reporting to `coordinator`.
    /// They stop when every clone of the returned value is dropped.
    pub fn start(threads: usize, store: Arc<dyn CheckpointStore>, coordinator: Sender<Stored>) -> std::io::Result<Self> {
        let mut queues = Vec::with_capacity(threads.max(1));
        for i in 0..threads.max(1) {
            let (tx, rx) = unbounded::<Ack>();
            let (store, coordinator) = (store.clone(), coordinator.clone());
            std::thread::Builder::new().name(format!("checkpoint-uploader-{i}")).spawn(move || {
                for ack in rx {
                    if coordinator.send(ack.store(&*store)).is_err() {
                        return;
                    }
                }
            })?;
            queues.push(tx);
        }
        Ok(Uploaders { queues: Arc::new(queues) })
    }

    /// Hand a snapshot over; false if the uploaders are gone.
    pub fn send(&self, ack: Ack) -> bool {
        self.queues[ack.task % self.queues.len()].send(ack).is_ok()
    }
}
