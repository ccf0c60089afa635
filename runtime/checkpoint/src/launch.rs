//! From a planned pipeline to a job that checkpoints and resumes: open the
//! checkpoint storage, lock the pipeline's local directory, pick the
//! checkpoint or savepoint to resume from, and wire both into the dataflow.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use weir_engine::CheckpointConfig;
use weir_spec::{PipelineSpec, Planned, SpecError};

use crate::{Loaded, NodeInfo, Storage};

/// How to start.
#[derive(Clone, Debug, Default)]
pub struct LaunchOptions {
    /// Ignore (and delete) existing checkpoints.
    pub fresh: bool,
    /// Start from this savepoint instead of the latest checkpoint.
    pub from_savepoint: Option<String>,
}

/// A pipeline ready to start, with what it resumes from.
pub struct Launch {
    pub planned: Planned,
    pub storage: Option<Arc<Storage>>,
    /// The checkpoint or savepoint the job resumes from.
    pub resumed: Option<Resumed>,
    /// Held while the job runs: one process per state directory.
    _lock: Option<File>,
}

#[derive(Clone, Debug)]
pub struct Resumed {
    pub name: String,
    pub epoch: u64,
    pub bytes: u64,
}

/// The directory `weir savepoint` drops requests into for a job that `weir
/// run` runs in another process (it takes them with `JobControl::savepoint`).
pub fn savepoint_requests_dir(spec: &PipelineSpec) -> PathBuf {
    spec.local_dir().join("savepoint-requests")
}

/// The lock file of a pipeline's local directory.
pub fn lock_path(spec: &PipelineSpec) -> PathBuf {
    spec.local_dir().join("LOCK")
}

/// Open the checkpoint storage of a spec that has `state.dir`.
pub fn open_storage(spec: &PipelineSpec, planned: &Planned) -> Result<Option<Storage>, SpecError> {
    let Some(dir) = &spec.state.dir else { return Ok(None) };
    let nodes = planned
        .nodes
        .iter()
        .map(|n| NodeInfo {
            name: n.name.clone(),
            kind: n.role.name().to_string(),
            parallelism: n.parallelism,
            plugin: n.logic.as_ref().map(|l| l.label.clone()),
            plugin_sha256: n.logic.as_ref().map(|l| l.digest.clone()),
            state_shape: n.state_shape.clone(),
        })
        .collect();
    let retain = spec.checkpoint.as_ref().map_or(3, |c| c.retain);
    Storage::open(dir, &spec.name, nodes, retain).map(Some).map_err(|e| file_err(spec, e))
}

fn file_err(spec: &PipelineSpec, e: impl std::fmt::Display) -> SpecError {
    SpecError::File { file: spec.file.clone(), message: e.to_string() }
}

/// Take the lock of the pipeline's local directory, or say who holds it.
fn lock(spec: &PipelineSpec) -> Result<File, SpecError> {
    let local = spec.local_dir();
    std::fs::create_dir_all(&local).map_err(|e| file_err(spec, format!("cannot create {}: {e}", local.display())))?;
    let path = lock_path(spec);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| file_err(spec, format!("cannot open {}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(_) => Err(file_err(
            spec,
            format!(
                "pipeline '{}' is already running on state directory {} (lock {} is held by another process)",
                spec.name,
                spec.state.dir.as_deref().unwrap_or("?"),
                path.display()
            ),
        )),
    }
}

/// Wire checkpointing and recovery into a planned pipeline.
pub fn launch(spec: &PipelineSpec, mut planned: Planned, opts: &LaunchOptions) -> Result<Launch, SpecError> {
    let Some(config) = &spec.checkpoint else {
        return Ok(Launch { planned, storage: None, resumed: None, _lock: None });
    };
    let lock = lock(spec)?;
    let storage = Arc::new(open_storage(spec, &planned)?.expect("validated: checkpoint needs state.dir"));
    let local = spec.local_dir();
    let restore_dir = local.join("restore");
    let staging = local.join("staging");
    let _ = std::fs::remove_dir_all(&staging);
    let loaded: Option<Loaded> = if let Some(name) = &opts.from_savepoint {
        let l = storage.savepoint(name, &restore_dir).map_err(|e| file_err(spec, e))?;
        // Checkpoints of the run before the savepoint must not be resumed later.
        storage.clear().map_err(|e| file_err(spec, e))?;
        Some(l)
    } else if opts.fresh {
        None
    } else {
        match storage.latest(&restore_dir).map_err(|e| file_err(spec, e))? {
            Some(l) if l.finished => {
                planned.dataflow.publish_finished(&l.plan).map_err(|e| file_err(spec, e))?;
                tracing::info!(
                    "the last run of pipeline '{}' completed ({}); starting a new run",
                    spec.name,
                    l.name
                );
                None
            }
            other => other,
        }
    };
    if loaded.is_none() {
        storage.clear().map_err(|e| file_err(spec, e))?;
    }
    let resumed = loaded.as_ref().map(|l| Resumed { name: l.name.clone(), epoch: l.epoch, bytes: l.bytes });
    let first_epoch = loaded.as_ref().map_or(1, |l| l.epoch + 1);
    if let Some(l) = loaded {
        planned.dataflow.set_restore(l.plan);
    }
    planned.dataflow.set_checkpointing(CheckpointConfig { interval: config.interval, store: storage.clone(), staging_dir: staging, first_epoch });
    Ok(Launch { planned, storage: Some(storage), resumed, _lock: Some(lock) })
}
