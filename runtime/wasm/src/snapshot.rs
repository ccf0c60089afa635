//! What a task's snapshot holds for every kind of Wasm operator: its keyed
//! state (the backend's files) and its timers (`timers.bin`).

use std::path::Path;

use weir_engine::{now_ms, SnapshotFile, SnapshotWriter};
use weir_state::{KeyGroups, RestoreFiles, StateError};

use crate::host::HostState;

/// The name of the timers file in an operator's snapshot.
pub(crate) const TIMERS_FILE: &str = "timers.bin";

/// Capture a task's state and timers now; the writer puts them into files
/// under `dir` later, on another thread.
pub(crate) fn snapshot(host: &mut HostState, dir: &Path) -> Result<SnapshotWriter, StateError> {
    host.state.set_time(now_ms());
    let state = host.state.snapshot(dir)?;
    let timers = host.timers.snapshot();
    let path = dir.join(TIMERS_FILE);
    Ok(Box::new(move || {
        let mut files = state()?;
        std::fs::write(&path, timers).map_err(|e| StateError::storage(format!("cannot write {}", path.display()), e))?;
        files.push(SnapshotFile { path, name: TIMERS_FILE.into(), shared: false });
        Ok(files)
    }))
}

/// Load the state and timers of `groups` from every task's snapshot.
pub(crate) fn restore(host: &mut HostState, snapshots: &[RestoreFiles], groups: &KeyGroups) -> Result<(), StateError> {
    let mut state = Vec::with_capacity(snapshots.len());
    for files in snapshots {
        let (timers, rest): (Vec<_>, Vec<_>) = files.iter().cloned().partition(|(n, _)| n == TIMERS_FILE);
        for (_, path) in timers {
            let file = path.display().to_string();
            let bytes = std::fs::read(&path).map_err(|e| StateError::Restore { file: file.clone(), message: e.to_string() })?;
            host.timers.restore(&bytes, groups, &file)?;
        }
        state.push(rest);
    }
    host.state.restore(&state)
}
