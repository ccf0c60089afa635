//! What the keyed SQL operators share: one task's keyed state on the
//! pipeline's backend (heap or RocksDB), its event-time timers and its
//! watermark, restored from a checkpoint by key group and snapshotted into it
//! (timers and watermark as files beside the backend's). The watermark is
//! kept so that a row that was late before a restart is late after it too,
//! before the first watermark of the new run arrives.

use std::path::Path;
use std::sync::Arc;

use weir_engine::timers::TimerService;
use weir_engine::{OperatorError, SnapshotFile, SnapshotWriter, TaskContext};
use weir_state::{KeyGroups, KeyedStateBackend, StateBackendFactory, StateError};

/// The name of the timers file in an operator's snapshot.
const TIMERS_FILE: &str = "sql-timers.bin";
/// The name of the watermark file.
const WATERMARK_FILE: &str = "sql-watermark.bin";

/// A task's keyed state and timers.
pub struct Keyed {
    pub state: Box<dyn KeyedStateBackend>,
    pub timers: TimerService,
    /// The watermark the task has seen (restored: the least of the tasks'
    /// it takes state from).
    pub watermark: i64,
    pub node: String,
    pub task: u32,
}

impl Keyed {
    /// The task's state: restored from the checkpoint it resumes from, if any.
    pub fn open(ctx: &TaskContext, factory: &Arc<dyn StateBackendFactory>) -> Result<Keyed, OperatorError> {
        let groups = KeyGroups::of_task(ctx.task_index, ctx.parallelism, ctx.max_parallelism);
        let fail = |e: StateError| OperatorError::new(format!("keyed state of SQL operator '{}' (task {}): {e}", ctx.node, ctx.task_index));
        let mut state = factory.create(&ctx.node, ctx.task_index, groups.clone()).map_err(fail)?;
        let mut timers = TimerService::default();
        let mut watermark = i64::MIN;
        if let Some(r) = &ctx.restore {
            let mut files = Vec::with_capacity(r.files.len());
            let mut restored: Option<i64> = None;
            for task in &r.files {
                let (ours, rest): (Vec<_>, Vec<_>) = task.iter().cloned().partition(|(n, _)| n == TIMERS_FILE || n == WATERMARK_FILE);
                for (name, path) in ours {
                    let file = path.display().to_string();
                    let bytes = std::fs::read(&path).map_err(|e| fail(StateError::Restore { file: file.clone(), message: e.to_string() }))?;
                    if name == TIMERS_FILE {
                        timers.restore(&bytes, &groups, &file).map_err(fail)?;
                    } else {
                        let wm = <[u8; 8]>::try_from(bytes.as_slice())
                            .map(i64::from_le_bytes)
                            .map_err(|_| fail(StateError::Restore { file, message: "not a watermark".into() }))?;
                        restored = Some(restored.map_or(wm, |r| r.min(wm)));
                    }
                }
                files.push(rest);
            }
            state.restore(&files).map_err(fail)?;
            watermark = restored.unwrap_or(i64::MIN);
        }
        Ok(Keyed { state, timers, watermark, node: ctx.node.to_string(), task: ctx.task_index })
    }

    pub fn fail(&self, message: impl std::fmt::Display) -> OperatorError {
        OperatorError::new(format!("SQL operator '{}' (task {}): {message}", self.node, self.task))
    }

    /// Capture state and timers now; write them under `dir` later.
    pub fn snapshot(&mut self, dir: &Path) -> Result<SnapshotWriter, OperatorError> {
        self.state.set_time(weir_engine::now_ms());
        let state = self.state.snapshot(dir).map_err(|e| self.fail(e))?;
        let timers = self.timers.snapshot();
        let watermark = self.watermark.to_le_bytes();
        let (path, wm_path) = (dir.join(TIMERS_FILE), dir.join(WATERMARK_FILE));
        Ok(Box::new(move || {
            let mut files = state()?;
            for (p, bytes, name) in [(&path, &timers[..], TIMERS_FILE), (&wm_path, &watermark[..], WATERMARK_FILE)] {
                std::fs::write(p, bytes).map_err(|e| StateError::storage(format!("cannot write {}", p.display()), e))?;
                files.push(SnapshotFile { path: p.clone(), name: name.into(), shared: false });
            }
            Ok(files)
        }))
    }
}
