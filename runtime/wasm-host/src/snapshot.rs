//! What a task's snapshot holds for every kind of Wasm operator: its keyed
//! state (the backend's files) and its timers (`timers.bin`).

use std::path::Path;

use weir_engine::{SnapshotFile, SnapshotWriter};
use weir_state::{KeyGroups, RestoreFiles};

use crate::host::{now_ms, HostState};

/// The name of the timers file in an operator's snapshot.
pub(crate) const TIMERS_FILE: &str = "timers.bin";

/// Capture a task's state and timers now; the writer puts them into files
/// under `dir` later, on another thread.
pub(crate) fn snapshot(host: &mut HostState, dir: &Path) -> Result<SnapshotWriter, String> {
    host.state.set_time(now_ms());
    let state = host.state.snapshot(dir).map_err(|e| e.to_string())?;
    let timers = host.timers.snapshot();
    let path = dir.join(TIMERS_FILE);
    Ok(Box::new(move || {
        let mut files = state().map_err(|e| e.to_string())?;
        std::fs::write(&path, timers).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        files.push(SnapshotFile { path, name: TIMERS_FILE.into(), shared: false });
        Ok(files)
    }))
}

/// Load the state and timers of `groups` from every task's snapshot.
pub(crate) fn restore(host: &mut HostState, snapshots: &[RestoreFiles], groups: &KeyGroups) -> Result<(), String> {
    let mut state = Vec::with_capacity(snapshots.len());
    for files in snapshots {
        let (timers, rest): (Vec<_>, Vec<_>) = files.iter().cloned().partition(|(n, _)| n == TIMERS_FILE);
        for (_, path) in timers {
            let bytes = std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            host.timers.restore(&bytes, groups).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        state.push(rest);
    }
    host.state.restore(&state).map_err(|e| e.to_string())
}
