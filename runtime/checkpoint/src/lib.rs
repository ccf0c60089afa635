//! Checkpoint storage for Weir, through the `object_store` crate: a local
//! directory by default, or an `s3://bucket/prefix` URL (credentials and
//! endpoint from the usual `AWS_*` environment variables).
//!
//! Layout under the root:
//! - `checkpoints/chk-<epoch>/<node>/<task>/<file>`: a checkpoint's own files;
//! - `checkpoints/chk-<epoch>/_manifest.json`: written last; names every file
//!   with its size and checksum (xxh3-128), each source's position, and the
//!   pipeline's nodes;
//! - `shared/<node>/<file>`: immutable files (RocksDB SST files) stored once
//!   and named by every checkpoint that includes them (incremental checkpoints);
//! - `savepoints/<name>/...`: self-contained copies kept until deleted.
//!
//! The last `retain` complete checkpoints are kept; shared files no kept
//! checkpoint names are deleted. Loading takes the newest complete checkpoint
//! whose files are all present with the recorded sizes and checksums, warning about (and
//! skipping) any that is not.

mod launch;
mod manifest;

use std::collections::{HashMap, HashSet};
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex};

use futures_util::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload};
use weir_engine::{CheckpointStore, NodeRestore, RestorePlan, StoreError, StoredTask, TaskState, FINAL_EPOCH};

pub use launch::{launch, lock_path, open_storage, savepoint_requests_dir, Launch, LaunchOptions, Resumed};
pub use manifest::NodeInfo;
use manifest::{describe_nodes, FileEntry, Manifest, TaskEntry, FORMAT, MANIFEST};

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint storage {location}: {message}")]
    Storage { location: String, message: String },
    /// The stored checkpoints belong to another pipeline.
    #[error("{0}")]
    Incompatible(String),
    #[error("no savepoint '{name}' in {location}")]
    NoSavepoint { name: String, location: String },
    /// Checkpoints are stored, but none can be resumed from: starting afresh
    /// instead would re-run the pipeline and replace what it published, so
    /// that takes an explicit `fresh`.
    #[error(
        "none of the checkpoints of pipeline '{pipeline}' in {location} can be resumed from: {}; \
         starting afresh would run the pipeline from the beginning and replace its published output: \
         to do that, start it with --fresh (weir run --fresh), or on a node POST /api/v1/pipelines/{pipeline}/start?fresh=true",
        problems.iter().map(|(name, why)| format!("{name}: {why}")).collect::<Vec<_>>().join("; ")
    )]
    Unusable { pipeline: String, location: String, problems: Vec<(String, String)> },
}

/// A checkpoint loaded for recovery, its files downloaded and verified.
/// A stored checkpoint, as [`Storage::checkpoints`] lists it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CheckpointInfo {
    pub name: String,
    pub epoch: u64,
    /// It has its manifest.
    pub complete: bool,
    /// The last checkpoint of a bounded run that completed.
    pub finished: bool,
    pub created_ms: Option<i64>,
    pub bytes: u64,
    /// Operator -> plugin (`name@version`) that wrote its state.
    pub plugins: Vec<(String, String)>,
    /// Why it is not usable, if it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

#[derive(Debug)]
pub struct Loaded {
    pub epoch: u64,
    /// The last checkpoint of a run that completed.
    pub finished: bool,
    /// Where it came from, for messages ("chk-0000000007", "savepoint 'v1'").
    pub name: String,
    pub plan: RestorePlan,
    pub nodes: Vec<NodeInfo>,
    pub bytes: u64,
}

/// A pipeline's checkpoint storage.
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    root: Path,
    /// The root directory, when the store is a local directory.
    local_root: Option<PathBuf>,
    rt: tokio::runtime::Runtime,
    location: String,
    pipeline: String,
    nodes: Mutex<Vec<NodeInfo>>,
    retain: usize,
    /// Shared files already stored, by storage path.
    shared: Mutex<HashMap<String, FileEntry>>,
}

fn chk_dir(epoch: u64) -> String {
    format!("checkpoints/chk-{epoch:010}")
}

/// A file's checksum in the manifest: xxh3-128, hex (fast enough to check
/// every byte of every checkpoint; it detects damage, not tampering).
fn checksum(bytes: &[u8]) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(bytes))
}

/// The size and [`checksum`] of a file, read in pieces.
fn checksum_file(path: &FsPath) -> std::io::Result<(u64, String)> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok((size, format!("{:032x}", hasher.digest128())));
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
}

impl Storage {
    /// Open the storage at `location`: a directory (created if missing) or an
    /// `s3://` / `file://` URL, for pipeline `pipeline` made of `nodes`.
    pub fn open(location: &str, pipeline: &str, nodes: Vec<NodeInfo>, retain: usize) -> Result<Self, CheckpointError> {
        let err = |message: String| CheckpointError::Storage { location: location.to_string(), message };
        let local_root = (!location.contains("://")).then(|| PathBuf::from(location));
        let (store, root): (Arc<dyn ObjectStore>, Path) = if location.contains("://") {
            let url = url::Url::parse(location).map_err(|e| err(format!("not a valid URL: {e}")))?;
            let (store, root) = object_store::parse_url_opts(&url, std::env::vars().filter(|(k, _)| k.starts_with("AWS_")))
                .map_err(|e| err(e.to_string()))?;
            (Arc::from(store), root)
        } else {
            std::fs::create_dir_all(location).map_err(|e| err(format!("cannot create the directory: {e}")))?;
            let fs = LocalFileSystem::new_with_prefix(location).map_err(|e| err(e.to_string()))?;
            (Arc::new(fs), Path::default())
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| err(format!("cannot start an I/O runtime: {e}")))?;
        Ok(Storage {
            store,
            root,
            local_root,
            rt,
            location: location.to_string(),
            pipeline: pipeline.to_string(),
            nodes: Mutex::new(nodes),
            retain: retain.max(1),
            shared: Mutex::default(),
        })
    }

    pub fn location(&self) -> &str {
        &self.location
    }

    fn path(&self, rel: &str) -> Path {
        rel.split('/').fold(self.root.clone(), |p, part| p.child(part))
    }

    fn err(&self, message: impl std::fmt::Display) -> CheckpointError {
        CheckpointError::Storage { location: self.location.clone(), message: message.to_string() }
    }

    fn put(&self, rel: &str, bytes: Vec<u8>) -> Result<(), CheckpointError> {
        let path = self.path(rel);
        self.rt
            .block_on(self.store.put(&path, PutPayload::from(bytes)))
            .map(drop)
            .map_err(|e| self.err(format!("cannot write {rel}: {e}")))
    }

    fn get(&self, rel: &str) -> Result<Option<bytes::Bytes>, CheckpointError> {
        let path = self.path(rel);
        let r = self.rt.block_on(async { self.store.get(&path).await?.bytes().await });
        match r {
            Ok(b) => Ok(Some(b)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(format!("cannot read {rel}: {e}"))),
        }
    }

    /// Paths (relative to the root) of every object under `prefix`.
    fn list(&self, prefix: &str) -> Result<Vec<String>, CheckpointError> {
        let p = self.path(prefix);
        let metas: Vec<_> = self
            .rt
            .block_on(self.store.list(Some(&p)).try_collect())
            .map_err(|e| self.err(format!("cannot list {prefix}: {e}")))?;
        let root = self.root.as_ref();
        Ok(metas
            .into_iter()
            .map(|m| {
                let s = m.location.as_ref();
                s.strip_prefix(root).map(|r| r.trim_start_matches('/')).unwrap_or(s).to_string()
            })
            .collect())
    }

    fn delete_prefix(&self, prefix: &str) -> Result<(), CheckpointError> {
        for rel in self.list(prefix)? {
            self.delete(&rel)?;
        }
        Ok(())
    }

    fn delete(&self, rel: &str) -> Result<(), CheckpointError> {
        match self.rt.block_on(self.store.delete(&self.path(rel))) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(format!("cannot delete {rel}: {e}"))),
        }
    }

    /// Epochs of stored checkpoint directories, newest first.
    fn epochs(&self) -> Result<Vec<u64>, CheckpointError> {
        let mut epochs: Vec<u64> = self
            .list("checkpoints")?
            .iter()
            .filter_map(|rel| rel.strip_prefix("checkpoints/chk-")?.split('/').next()?.parse().ok())
            .collect::<HashSet<u64>>()
            .into_iter()
            .collect();
        epochs.sort_unstable_by(|a, b| b.cmp(a));
        Ok(epochs)
    }

    fn read_manifest(&self, dir: &str) -> Result<Option<Manifest>, String> {
        let Some(bytes) = self.get(&format!("{dir}/{MANIFEST}")).map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        let m: Manifest = serde_json::from_slice(&bytes).map_err(|e| format!("unreadable manifest: {e}"))?;
        if m.format != FORMAT {
            return Err(format!("manifest format {} (this version reads {FORMAT})", m.format));
        }
        Ok(Some(m))
    }

    /// Delete every checkpoint (not savepoints): a fresh start.
    pub fn clear(&self) -> Result<(), CheckpointError> {
        self.clear_with(|_| true)
    }

    /// `clear`, calling `go_on` with each path before deleting it (false:
    /// stop there, as a crash would). A process may die anywhere in here, so
    /// the manifests go first, oldest first: at every point the newest
    /// manifest left is the newest there was, and every checkpoint older than
    /// it has none, so the next start finds what this one found (the
    /// completed last run: a new run again; nothing: a fresh start), never
    /// an older checkpoint of a run that has since gone on or ended.
    fn clear_with(&self, mut go_on: impl FnMut(&str) -> bool) -> Result<(), CheckpointError> {
        let mut epochs = self.epochs()?;
        epochs.reverse();
        let manifests = epochs.iter().map(|e| format!("{}/{MANIFEST}", chk_dir(*e)));
        let rest = self.list("checkpoints")?.into_iter().chain(self.list("shared")?);
        for rel in manifests.chain(rest) {
            if !go_on(&rel) {
                return Ok(());
            }
            self.delete(&rel)?;
        }
        self.shared.lock().expect("lock").clear();
        Ok(())
    }

    /// The newest complete, intact checkpoint, downloaded under `local`.
    /// Incomplete or damaged ones are skipped with a warning naming them; a
    /// checkpoint of another pipeline is an error, and so is having complete
    /// (or damaged) checkpoints of which none is usable ([`CheckpointError::Unusable`]).
    /// Only incomplete ones (a first checkpoint cut short) mean a fresh start.
    pub fn latest(&self, local: &FsPath) -> Result<Option<Loaded>, CheckpointError> {
        let mut problems = Vec::new();
        let mut damaged = false;
        for epoch in self.epochs()? {
            let dir = chk_dir(epoch);
            let name = format!("chk-{epoch:010}");
            let manifest = match self.read_manifest(&dir) {
                Ok(Some(m)) => m,
                Ok(None) => {
                    tracing::warn!("skipping checkpoint {name} in {}: incomplete (no manifest)", self.location);
                    problems.push((name, "incomplete (no manifest)".to_string()));
                    continue;
                }
                Err(e) => {
                    tracing::warn!("skipping checkpoint {name} in {}: {e}", self.location);
                    problems.push((name, e));
                    damaged = true;
                    continue;
                }
            };
            self.check_compatible(&manifest, &name)?;
            match self.download(&manifest, &local.join(&name)) {
                Ok(plan) => {
                    self.remember_shared(&manifest);
                    return Ok(Some(self.loaded(manifest, name, plan)));
                }
                Err(e) => {
                    tracing::warn!("skipping checkpoint {name} in {}: {e}; trying an older one", self.location);
                    problems.push((name, e));
                    damaged = true;
                }
            }
        }
        if damaged {
            return Err(CheckpointError::Unusable { pipeline: self.pipeline.clone(), location: self.location.clone(), problems });
        }
        Ok(None)
    }

    /// Savepoint `name`, downloaded under `local`.
    pub fn savepoint(&self, name: &str, local: &FsPath) -> Result<Loaded, CheckpointError> {
        let dir = format!("savepoints/{name}");
        let no = || CheckpointError::NoSavepoint { name: name.to_string(), location: self.location.clone() };
        let manifest = self.read_manifest(&dir).map_err(|e| self.err(format!("savepoint '{name}': {e}")))?.ok_or_else(no)?;
        let label = format!("savepoint '{name}'");
        self.check_compatible(&manifest, &label)?;
        let plan = self.download(&manifest, &local.join("savepoint")).map_err(|e| self.err(format!("{label}: {e}")))?;
        Ok(self.loaded(manifest, label, plan))
    }

    /// The stored checkpoints, newest first, as their manifests describe them
    /// (incomplete ones say so).
    pub fn checkpoints(&self) -> Result<Vec<CheckpointInfo>, CheckpointError> {
        let mut out = Vec::new();
        for epoch in self.epochs()? {
            let name = format!("chk-{epoch:010}");
            out.push(match self.read_manifest(&chk_dir(epoch)) {
                Ok(Some(m)) => CheckpointInfo {
                    name,
                    epoch,
                    complete: true,
                    finished: m.finished,
                    created_ms: Some(m.created_ms),
                    bytes: m.total_bytes(),
                    plugins: m.nodes.iter().filter_map(|n| Some((n.name.clone(), n.plugin.clone()?))).collect(),
                    problem: None,
                },
                other => CheckpointInfo {
                    name,
                    epoch,
                    complete: false,
                    finished: false,
                    created_ms: None,
                    bytes: 0,
                    plugins: Vec::new(),
                    problem: Some(match other {
                        Err(e) => e,
                        _ => "incomplete (no manifest)".into(),
                    }),
                },
            });
        }
        Ok(out)
    }

    /// Record that operator `node` now runs `plugin` (hot swap): later
    /// manifests name it.
    pub fn set_plugin(&self, node: &str, plugin: &str, sha256: &str) {
        let mut nodes = self.nodes.lock().expect("lock");
        if let Some(n) = nodes.iter_mut().find(|n| n.name == node) {
            n.plugin = Some(plugin.to_string());
            n.plugin_sha256 = Some(sha256.to_string());
        }
    }

    /// Names of the stored savepoints.
    pub fn savepoints(&self) -> Result<Vec<String>, CheckpointError> {
        let mut names: Vec<String> = self
            .list("savepoints")?
            .iter()
            .filter_map(|rel| rel.strip_prefix("savepoints/")?.strip_suffix(&format!("/{MANIFEST}")).map(String::from))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Keep the newest complete checkpoint as savepoint `name` (for a pipeline
    /// that is not running).
    pub fn savepoint_from_latest(&self, name: &str) -> Result<u64, CheckpointError> {
        for epoch in self.epochs()? {
            if let Ok(Some(m)) = self.read_manifest(&chk_dir(epoch)) {
                self.copy_to_savepoint(m, name)?;
                return Ok(epoch);
            }
        }
        Err(self.err("there is no complete checkpoint to take a savepoint from"))
    }

    fn loaded(&self, m: Manifest, name: String, plan: RestorePlan) -> Loaded {
        Loaded { epoch: m.epoch, finished: m.finished, name, plan, bytes: m.total_bytes(), nodes: m.nodes }
    }

    fn check_compatible(&self, m: &Manifest, name: &str) -> Result<(), CheckpointError> {
        let shape = |n: &[NodeInfo]| n.iter().map(|n| (n.name.clone(), n.kind.clone())).collect::<Vec<_>>();
        let nodes = self.nodes.lock().expect("lock").clone();
        if m.pipeline != self.pipeline || shape(&m.nodes) != shape(&nodes) {
            return Err(CheckpointError::Incompatible(format!(
                "{} holds {name} of pipeline '{}' with nodes [{}], but this is pipeline '{}' with nodes [{}]; \
                 refusing to mix their state: use another state directory, or delete this one to start afresh",
                self.location,
                m.pipeline,
                describe_nodes(&m.nodes),
                self.pipeline,
                describe_nodes(&nodes)
            )));
        }
        for (old, new) in m.nodes.iter().zip(&nodes) {
            if let (Some(was), Some(is)) = (&old.state_shape, &new.state_shape)
                && was != is
            {
                return Err(CheckpointError::Incompatible(format!(
                    "{} holds {name}, in which operator '{}' keeps state of the shape {was}, but the spec now says {is}; \
                     restoring would mix the two (windows of the old size with the new): start afresh (--fresh), or \
                     run it with its old settings",
                    self.location, new.name
                )));
            }
            if old.plugin_sha256 != new.plugin_sha256 && old.plugin_sha256.is_some() {
                tracing::info!(
                    "operator '{}' restores state written by plugin {} (sha256 {}) into {} (sha256 {})",
                    new.name,
                    old.plugin.as_deref().unwrap_or("?"),
                    old.plugin_sha256.as_deref().unwrap_or("?"),
                    new.plugin.as_deref().unwrap_or("?"),
                    new.plugin_sha256.as_deref().unwrap_or("?"),
                );
            }
        }
        Ok(())
    }

    /// Fetch and verify every file of a manifest into `local`.
    fn download(&self, m: &Manifest, local: &FsPath) -> Result<RestorePlan, String> {
        let _ = std::fs::remove_dir_all(local);
        let mut nodes: HashMap<String, NodeRestore> = HashMap::new();
        for t in &m.tasks {
            let node = nodes.entry(t.node.clone()).or_default();
            node.parallelism = t.parallelism;
            let i = t.task as usize;
            if node.positions.len() <= i {
                node.positions.resize(i + 1, None);
                node.watermarks.resize(i + 1, None);
                node.files.resize(i + 1, Vec::new());
                node.finished.resize(i + 1, false);
            }
            node.finished[i] = t.finished;
            node.watermarks[i] = t.watermark;
            node.positions[i] = match &t.position {
                Some(p) => Some(hex::decode(p).map_err(|e| format!("bad position of {} task {}: {e}", t.node, t.task))?),
                None => None,
            };
            let dir = local.join(&t.node).join(t.task.to_string());
            std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            for f in &t.files {
                let to = dir.join(&f.name);
                let damaged = |size: u64, sum: &str| {
                    format!(
                        "file {} is damaged ({size} bytes, checksum {sum}; the manifest says {} bytes, checksum {})",
                        f.path, f.size, f.checksum
                    )
                };
                if let Some(root) = &self.local_root {
                    // A local store: check the file where it is and take a
                    // hard link to it (restores never write into their files).
                    let from = root.join(&f.path);
                    let (size, sum) = match checksum_file(&from) {
                        Ok(s) => s,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(format!("file {} is missing", f.path)),
                        Err(e) => return Err(format!("cannot read {}: {e}", from.display())),
                    };
                    if size != f.size || sum != f.checksum {
                        return Err(damaged(size, &sum));
                    }
                    if std::fs::hard_link(&from, &to).is_err() {
                        std::fs::copy(&from, &to).map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), to.display()))?;
                    }
                } else {
                    let bytes = self.get(&f.path).map_err(|e| e.to_string())?.ok_or_else(|| format!("file {} is missing", f.path))?;
                    if bytes.len() as u64 != f.size || checksum(&bytes) != f.checksum {
                        return Err(damaged(bytes.len() as u64, &checksum(&bytes)));
                    }
                    std::fs::write(&to, &bytes).map_err(|e| format!("cannot write {}: {e}", to.display()))?;
                }
                node.files[i].push((f.name.clone(), to));
            }
        }
        Ok(RestorePlan { epoch: m.epoch, finished: m.finished, nodes })
    }

    fn remember_shared(&self, m: &Manifest) {
        let mut shared = self.shared.lock().expect("lock");
        for f in m.tasks.iter().flat_map(|t| &t.files).filter(|f| f.shared) {
            shared.insert(f.path.clone(), f.clone());
        }
    }

    fn copy_to_savepoint(&self, mut m: Manifest, name: &str) -> Result<(), CheckpointError> {
        let dir = format!("savepoints/{name}");
        self.delete_prefix(&dir)?;
        for t in &mut m.tasks {
            for f in &mut t.files {
                let to = format!("{dir}/{}/{}/{}", t.node, t.task, f.name);
                self.rt
                    .block_on(self.store.copy(&self.path(&f.path), &self.path(&to)))
                    .map_err(|e| self.err(format!("cannot copy {} to {to}: {e}", f.path)))?;
                f.path = to;
                f.shared = false;
            }
        }
        let json = serde_json::to_vec_pretty(&m).map_err(|e| self.err(e))?;
        self.put(&format!("{dir}/{MANIFEST}"), json)
    }

    /// Keep the newest `retain` complete checkpoints; drop older ones, failed
    /// attempts, and shared files no kept checkpoint names.
    fn retain(&self, newest: u64) -> Result<(), CheckpointError> {
        let mut kept = 0;
        let mut referenced = HashSet::new();
        for epoch in self.epochs()? {
            let dir = chk_dir(epoch);
            if epoch > newest {
                continue;
            }
            let manifest = self.read_manifest(&dir).ok().flatten();
            match manifest {
                Some(m) if kept < self.retain => {
                    kept += 1;
                    referenced.extend(m.tasks.iter().flat_map(|t| &t.files).filter(|f| f.shared).map(|f| f.path.clone()));
                }
                _ => self.delete_prefix(&dir)?,
            }
        }
        for rel in self.list("shared")? {
            if !referenced.contains(&rel) {
                self.delete(&rel)?;
                self.shared.lock().expect("lock").remove(&rel);
            }
        }
        Ok(())
    }

    /// Store one file of a task's snapshot. A final snapshot's files (dir
    /// `None`) are stored as shared, under names of their own, since every
    /// later checkpoint of the run names them.
    fn store_file(&self, dir: Option<&str>, state: &TaskState, file: &weir_engine::SnapshotFile) -> Result<FileEntry, CheckpointError> {
        let (rel, shared) = match dir {
            _ if file.shared => (format!("shared/{}/{}", state.node, file.name), true),
            Some(dir) => (format!("{dir}/{}/{}/{}", state.node, state.task, file.name), false),
            None => (format!("shared/{}/final-{}-{}-{}", state.node, state.task, unique(), file.name), true),
        };
        if file.shared
            && let Some(known) = self.shared.lock().expect("lock").get(&rel)
        {
            return Ok(known.clone());
        }
        let bytes = std::fs::read(&file.path).map_err(|e| self.err(format!("cannot read {}: {e}", file.path.display())))?;
        let entry = FileEntry { name: file.name.clone(), path: rel.clone(), size: bytes.len() as u64, checksum: checksum(&bytes), shared };
        // A local store takes a hard link to the staged file (no copy).
        let linked = self.local_root.as_ref().is_some_and(|root| {
            let to = root.join(&rel);
            to.parent().is_some_and(|p| std::fs::create_dir_all(p).is_ok())
                && (std::fs::hard_link(&file.path, &to).is_ok()
                    || std::fs::remove_file(&to).is_ok() && std::fs::hard_link(&file.path, &to).is_ok())
        });
        if !linked {
            self.put(&rel, bytes)?;
        }
        if shared {
            self.shared.lock().expect("lock").insert(rel, entry.clone());
        }
        Ok(entry)
    }
}

/// A name no other process or run of this machine uses.
fn unique() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{:x}-{}-{n}", weir_engine::now_ms(), std::process::id())
}

impl From<CheckpointError> for StoreError {
    fn from(e: CheckpointError) -> Self {
        match e {
            CheckpointError::Storage { location, message } => StoreError::Storage { location, message },
            other => StoreError::Storage { location: String::new(), message: other.to_string() },
        }
    }
}

impl CheckpointStore for Storage {
    fn store_task(&self, epoch: u64, states: &[TaskState]) -> Result<Vec<StoredTask>, StoreError> {
        let dir = (epoch != FINAL_EPOCH).then(|| chk_dir(epoch));
        let mut stored = Vec::with_capacity(states.len());
        for s in states {
            let files = s.files.iter().map(|f| self.store_file(dir.as_deref(), s, f)).collect::<Result<Vec<_>, _>>()?;
            stored.push(StoredTask {
                node: s.node.clone(),
                task: s.task,
                parallelism: s.parallelism,
                position: s.position.clone(),
                watermark: s.watermark,
                files,
                finished: epoch == FINAL_EPOCH,
            });
        }
        Ok(stored)
    }

    fn complete(&self, epoch: u64, finished: bool, tasks: &[StoredTask]) -> Result<(), StoreError> {
        let mut tasks: Vec<TaskEntry> = tasks.iter().map(TaskEntry::from).collect();
        tasks.sort_by(|a, b| (&a.node, a.task).cmp(&(&b.node, b.task)));
        let m = Manifest {
            format: FORMAT,
            pipeline: self.pipeline.clone(),
            epoch,
            finished,
            created_ms: weir_engine::now_ms(),
            nodes: self.nodes.lock().expect("lock").clone(),
            tasks,
        };
        let json = serde_json::to_vec_pretty(&m).map_err(|e| self.err(e))?;
        self.put(&format!("{}/{MANIFEST}", chk_dir(epoch)), json)?;
        if let Err(e) = self.retain(epoch) {
            tracing::warn!("cannot delete old checkpoints: {e}");
        }
        Ok(())
    }

    fn abort(&self, epoch: u64) {
        let _ = self.delete_prefix(&chk_dir(epoch));
    }

    fn keep_as_savepoint(&self, epoch: u64, name: &str) -> Result<(), StoreError> {
        let m = self
            .read_manifest(&chk_dir(epoch))
            .map_err(|message| StoreError::Storage { location: self.location.clone(), message })?
            .ok_or_else(|| StoreError::NoManifest { epoch, name: name.to_string() })?;
        Ok(self.copy_to_savepoint(m, name)?)
    }
}

/// The staging and restore directories of a job under a local work directory.
pub fn local_dirs(work: &FsPath) -> (PathBuf, PathBuf) {
    (work.join("staging"), work.join("restore"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage(dir: &FsPath) -> Storage {
        Storage::open(dir.to_str().unwrap(), "p", Vec::new(), 3).unwrap()
    }

    #[test]
    fn only_incomplete_checkpoints_mean_a_fresh_start() {
        let dir = tempfile::tempdir().unwrap();
        let s = storage(dir.path());
        assert!(s.latest(&dir.path().join("restore")).unwrap().is_none(), "nothing stored");
        s.put("checkpoints/chk-0000000001/src/0/data", b"x".to_vec()).unwrap();
        assert!(s.latest(&dir.path().join("restore")).unwrap().is_none(), "cut short before its manifest");
    }

    #[test]
    fn a_clear_cut_short_anywhere_never_leaves_an_older_checkpoint_to_resume() {
        let files = |n: u64| (0..3).map(move |i| (n, format!("checkpoints/chk-{n:010}/src/{i}/data")));
        let mut deleted: u32 = 0;
        loop {
            let dir = tempfile::tempdir().unwrap();
            let s = storage(dir.path());
            for (n, f) in files(1).chain(files(2)).chain(files(3)) {
                s.put(&f, vec![n as u8]).unwrap();
            }
            let task = |n: u64| StoredTask {
                node: "src".into(),
                task: 0,
                parallelism: 1,
                position: None,
                watermark: None,
                files: vec![weir_engine::StoredFile { name: "data".into(), path: format!("checkpoints/chk-{n:010}/src/0/data"), size: 1, checksum: checksum(&[n as u8]), shared: false }],
                finished: false,
            };
            s.complete(1, false, &[task(1)]).unwrap();
            s.complete(2, false, &[task(2)]).unwrap();
            s.complete(3, true, &[task(3)]).unwrap();
            // A crash after `deleted` deletions.
            let mut left: u32 = deleted;
            let done = std::cell::Cell::new(true);
            s.clear_with(|_| {
                let go = left > 0;
                left = left.saturating_sub(1);
                if !go {
                    done.set(false);
                }
                go
            })
            .unwrap();
            let restore = dir.path().join("restore");
            match s.latest(&restore) {
                Ok(None) => {}
                Ok(Some(l)) => assert!(l.epoch == 3 && l.finished, "after {deleted} deletions the start finds chk-{}", l.epoch),
                Err(e) => panic!("after {deleted} deletions: {e}"),
            }
            if done.get() {
                assert!(s.latest(&restore).unwrap().is_none());
                break;
            }
            deleted += 1;
        }
        assert!(deleted > 10, "every point of the clear was tried ({deleted})");
    }

    #[test]
    fn checkpoints_of_which_none_is_usable_fail_the_start_naming_each() {
        let dir = tempfile::tempdir().unwrap();
        let s = storage(dir.path());
        s.complete(1, false, &[]).unwrap();
        s.complete(2, false, &[]).unwrap();
        s.put("checkpoints/chk-0000000003/src/0/data", b"x".to_vec()).unwrap();
        let restore = dir.path().join("restore");
        assert_eq!(s.latest(&restore).unwrap().unwrap().epoch, 2);
        s.put("checkpoints/chk-0000000002/_manifest.json", b"{".to_vec()).unwrap();
        assert_eq!(s.latest(&restore).unwrap().unwrap().epoch, 1, "an older intact one is used");
        s.put("checkpoints/chk-0000000001/_manifest.json", b"not json".to_vec()).unwrap();
        let e = s.latest(&restore).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "none of the checkpoints of pipeline 'p' in {} can be resumed from: \
                 chk-0000000003: incomplete (no manifest); \
                 chk-0000000002: unreadable manifest: EOF while parsing an object at line 1 column 1; \
                 chk-0000000001: unreadable manifest: expected ident at line 1 column 2; \
                 starting afresh would run the pipeline from the beginning and replace its published output: \
                 to do that, start it with --fresh (weir run --fresh), or on a node POST /api/v1/pipelines/p/start?fresh=true",
                dir.path().display()
            )
        );
    }
}
