//! Pipelines of a node: their definitions under `<data>/pipelines/<id>/`
//! (`pipeline.json`: the spec as sent, whether it should run, and the plugin
//! version each operator runs now), their checkpoints beside them
//! (`<data>/pipelines/<id>/state` unless the spec says otherwise), and one
//! supervisor thread per running pipeline (see `supervisor.rs`).
//!
//! A pipeline's id is its spec's `name`. Operators reference plugins of the
//! registry as `name@version`. Pipelines that should run are started again
//! when the node starts, and resume from their latest checkpoints; finished
//! ones stay finished. A swap in probation is kept in `pipeline.json`, so a
//! node that stopped during it says, once started again, that it was rolled
//! back. A `pipeline.json` that cannot be read is skipped (listed as
//! `damaged`) and left as it is.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use weir_engine::{now_ms, JobControl, Ticket};
use weir_spec::{BuildEnv, PipelineSpec, PlannedNode};

use crate::error::ApiError;
use crate::model::{
    CheckpointEntry, CheckpointStatus, Checkpoints, Deleted, FailureKind, Graph, GraphNode, LastCheckpoint, NodeStatus, PipelineDetail,
    PipelineStatus, PipelineSummary, RetryInfo, SwapInfo, SwapStatus,
};

/// How many past swaps a pipeline's status lists.
const SWAP_HISTORY: usize = 50;
use crate::registry::Registry;

/// What is stored of a pipeline (`pipeline.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct StoredPipeline {
    pub id: String,
    /// The spec as sent (YAML or JSON).
    pub spec: String,
    /// Whether the pipeline should run (it is started when the node starts).
    pub running: bool,
    /// Operator -> `name@version` it runs now (swaps change it).
    pub plugins: BTreeMap<String, String>,
    pub created_ms: i64,
    /// Its bounded run completed: it is not started again with the node.
    #[serde(default)]
    pub finished: bool,
    /// A swap that switched and is not confirmed yet (in probation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swap: Option<SwapInfo>,
}

/// A swap being followed.
pub(crate) struct ActiveSwap {
    pub info: SwapInfo,
    pub ticket: Option<Arc<Ticket>>,
    pub digest: String,
}

/// What runs now.
pub(crate) struct Running {
    pub control: JobControl,
    pub storage: Option<Arc<weir_checkpoint::Storage>>,
    /// Every node as planned (what a swap needs of an operator).
    pub nodes: Vec<PlannedNode>,
    /// Where they were built.
    pub env: BuildEnv,
    pub spec: Arc<PipelineSpec>,
    pub started: Instant,
    /// Its dataflow as planned (the plugins of operators as they started).
    pub graph: Vec<GraphNode>,
}

pub(crate) struct Live {
    pub status: PipelineStatus,
    pub error: Option<String>,
    pub restarts: u64,
    pub running: Option<Running>,
    pub swap: Option<ActiveSwap>,
    /// Swaps by result.
    pub swaps: BTreeMap<SwapStatus, u64>,
    /// Job failures by kind.
    pub failures: BTreeMap<FailureKind, u64>,
    /// The checkpoint or savepoint the current run resumed from.
    pub resumed: Option<String>,
    /// A stop was asked for.
    pub stopping: bool,
    /// While it waits to be started again.
    pub retry: Option<RetryInfo>,
    /// The node stopped during `swap`'s probation: the next start says how
    /// it resumed.
    pub interrupted_swap: bool,
    /// Earlier swaps than `swap`, oldest first (at most [`SWAP_HISTORY`]).
    pub swap_history: std::collections::VecDeque<SwapInfo>,
}

impl Live {
    pub fn new(status: PipelineStatus) -> Self {
        Live {
            status,
            error: None,
            restarts: 0,
            running: None,
            swap: None,
            swaps: BTreeMap::new(),
            failures: BTreeMap::new(),
            resumed: None,
            stopping: false,
            retry: None,
            interrupted_swap: false,
            swap_history: Default::default(),
        }
    }

    /// A new swap (or refusal) to follow; the one before goes to the history.
    pub fn set_swap(&mut self, swap: ActiveSwap) {
        if let Some(old) = self.swap.replace(swap) {
            if self.swap_history.len() + 1 >= SWAP_HISTORY {
                self.swap_history.pop_front();
            }
            self.swap_history.push_back(old.info);
        }
    }
}

pub(crate) struct Entry {
    pub id: String,
    pub dir: PathBuf,
    /// Why its `pipeline.json` cannot be read (it is never written then).
    pub damaged: Option<String>,
    pub record: Mutex<StoredPipeline>,
    pub live: Mutex<Live>,
    pub thread: Mutex<Option<JoinHandle<()>>>,
}

impl Entry {
    fn new(id: String, dir: PathBuf, record: StoredPipeline, status: PipelineStatus) -> Arc<Entry> {
        Arc::new(Entry {
            id,
            dir,
            damaged: None,
            record: Mutex::new(record),
            live: Mutex::new(Live::new(status)),
            thread: Mutex::default(),
        })
    }

    pub fn save(&self) -> Result<(), ApiError> {
        self.usable()?;
        let record = self.record.lock().unwrap().clone();
        save_record(&self.dir, &record)
    }

    /// Refuse what a damaged pipeline cannot do (all but show and delete).
    pub fn usable(&self) -> Result<(), ApiError> {
        match &self.damaged {
            Some(why) => Err(ApiError::conflict(format!(
                "pipeline '{}' is damaged: {why}; fix the file and restart the node, or delete the pipeline",
                self.id
            ))),
            None => Ok(()),
        }
    }

    /// Keep (or forget) the swap in probation in `pipeline.json`.
    pub fn persist_swap(&self, swap: Option<SwapInfo>) {
        {
            let l = self.live.lock().unwrap();
            // Kept only while in probation: a confirmation may have come between.
            let in_probation = l.swap.as_ref().is_some_and(|s| s.ticket.is_some() && s.info.status == SwapStatus::Switched);
            if swap.is_some() && !in_probation {
                return;
            }
            self.record.lock().unwrap().swap = swap;
        }
        if let Err(err) = self.save() {
            tracing::error!("pipeline '{}': cannot record its swap: {}", self.id, err.message);
        }
    }

    pub fn set_status(&self, status: PipelineStatus, error: Option<String>) {
        let mut l = self.live.lock().unwrap();
        l.status = status;
        l.error = error;
    }
}

fn save_record(dir: &std::path::Path, record: &StoredPipeline) -> Result<(), ApiError> {
    std::fs::create_dir_all(dir).map_err(|e| ApiError::internal(format!("cannot create {}: {e}", dir.display())))?;
    let path = dir.join("pipeline.json");
    let tmp = dir.join(".pipeline.json.tmp");
    let json = serde_json::to_vec_pretty(record).map_err(|e| ApiError::internal(e.to_string()))?;
    std::fs::write(&tmp, json)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| ApiError::internal(format!("cannot write {}: {e}", path.display())))
}

/// Split `name@version`.
pub(crate) fn plugin_ref(s: &str) -> Option<(&str, &str)> {
    let (n, v) = s.split_once('@')?;
    (!n.is_empty() && !v.is_empty() && !s.contains('/')).then_some((n, v))
}

/// The pipelines of a node.
pub struct Pipelines {
    pub(crate) dir: PathBuf,
    pub(crate) registry: Arc<Registry>,
    /// The connectors and operator kinds specs may name.
    pub(crate) types: Arc<weir_spec::Registry>,
    /// Where specs may read and write files.
    pub(crate) paths: weir_spec::PathPolicy,
    pub(crate) entries: Mutex<BTreeMap<String, Arc<Entry>>>,
    /// The SQL compiler, which adds what SQL jobs' operators need to builds.
    pub(crate) sql: Option<Arc<dyn crate::SqlCompiler>>,
}

impl Pipelines {
    /// Open `<data>/pipelines` and start the pipelines that should run; specs
    /// may use files under `allowed` and the data directory only.
    pub fn open(
        data_dir: &std::path::Path,
        allowed: &[PathBuf],
        registry: Arc<Registry>,
        types: Arc<weir_spec::Registry>,
        sql: Option<Arc<dyn crate::SqlCompiler>>,
    ) -> Result<Arc<Pipelines>, ApiError> {
        let dir = data_dir.join("pipelines");
        std::fs::create_dir_all(&dir).map_err(|e| ApiError::internal(format!("cannot create {}: {e}", dir.display())))?;
        let roots = std::iter::once(data_dir.to_path_buf()).chain(allowed.iter().cloned());
        let paths = weir_spec::PathPolicy::new(roots).map_err(ApiError::internal)?;
        let p = Arc::new(Pipelines { dir: dir.clone(), registry, types, paths, entries: Mutex::default(), sql });
        let listing = std::fs::read_dir(&dir).map_err(|e| ApiError::internal(format!("cannot list {}: {e}", dir.display())))?;
        let mut dirs: Vec<_> = listing.flatten().map(|e| e.path()).collect();
        dirs.sort();
        for dir in dirs {
            let path = dir.join("pipeline.json");
            let Ok(bytes) = std::fs::read(&path) else { continue };
            let record: StoredPipeline = match serde_json::from_slice(&bytes) {
                Ok(r) => r,
                Err(err) => {
                    let why = format!("{} cannot be read: {err}", path.display());
                    tracing::error!("skipping a pipeline: {why}");
                    let id = dir.file_name().unwrap_or_default().to_string_lossy().into_owned();
                    let record = StoredPipeline {
                        id: id.clone(),
                        spec: String::new(),
                        running: false,
                        plugins: BTreeMap::new(),
                        created_ms: 0,
                        finished: false,
                        swap: None,
                    };
                    let mut entry = Entry::new(id.clone(), dir, record, PipelineStatus::Damaged);
                    Arc::get_mut(&mut entry).expect("not shared yet").damaged = Some(why.clone());
                    entry.live.lock().unwrap().error = Some(why);
                    p.entries.lock().unwrap().insert(id, entry);
                    continue;
                }
            };
            let (running, finished) = (record.running, record.finished);
            let swap = record.swap.clone();
            let status = if finished { PipelineStatus::Finished } else { PipelineStatus::Stopped };
            let entry = Entry::new(record.id.clone(), dir, record, status);
            if let Some(mut info) = swap {
                // It was not confirmed: the pipeline runs the old version (its
                // record names it), from a checkpoint the old version wrote.
                info.status = SwapStatus::RolledBack;
                info.reason = Some("the node stopped during the swap's probation".into());
                let mut l = entry.live.lock().unwrap();
                l.set_swap(ActiveSwap { info, ticket: None, digest: String::new() });
                l.interrupted_swap = true;
            }
            p.entries.lock().unwrap().insert(entry.id.clone(), entry.clone());
            if running {
                tracing::info!("resuming pipeline '{}'", entry.id);
                crate::supervisor::spawn(&p, &entry, None, false);
            }
        }
        Ok(p)
    }

    /// What builds of this node's pipelines get: its plugin registry as the
    /// source of Wasm operators' plugins (and of SQL functions').
    pub(crate) fn extensions(&self) -> weir_spec::Extensions {
        let mut x = weir_spec::Extensions::default();
        x.insert(weir_wasm::Plugins(self.registry.clone()));
        if let Some(sql) = &self.sql {
            sql.extend(&mut x, self.registry.clone());
        }
        x
    }

    pub(crate) fn get(&self, id: &str) -> Result<Arc<Entry>, ApiError> {
        self.entries.lock().unwrap().get(id).cloned().ok_or_else(|| ApiError::not_found(format!("no pipeline '{id}'")))
    }

    /// Parse a spec sent to the node: no environment interpolation (the node's
    /// environment is not the client's), plugins from the registry, checkpoints
    /// beside the definition unless the spec puts them elsewhere.
    pub(crate) fn parse(&self, text: &str, plugins: Option<&BTreeMap<String, String>>) -> Result<PipelineSpec, ApiError> {
        let mut spec =
            weir_spec::parse_on_node(text, "spec", &self.dir, &self.paths, &self.types).map_err(|e| ApiError::bad_request(format!("{e:#}")))?;
        let ok = !spec.name.is_empty() && spec.name.len() <= 64 && spec.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok {
            return Err(ApiError::bad_request(format!(
                "spec: name '{}': a pipeline name (its id on the node) has 1 to 64 letters, digits, '-' or '_'",
                spec.name
            )));
        }
        for (i, o) in spec.operators.iter_mut().enumerate() {
            let Some(given) = o.plugin.clone() else { continue };
            let reference = plugins.and_then(|p| p.get(&o.name)).cloned().unwrap_or(given.reference);
            let Some((name, version)) = plugin_ref(&reference) else {
                return Err(ApiError::bad_request(format!(
                    "spec:{}: operators[{i}].plugin: '{reference}' is not a plugin of the registry; \
                     a node runs uploaded plugins, named NAME@VERSION (see GET /api/v1/plugins)",
                    given.line
                )));
            };
            if self.registry.get(name, version).is_none() {
                return Err(ApiError::bad_request(format!(
                    "spec:{}: operators[{i}].plugin: plugin {name}@{version} is not in this node's registry ({}); \
                     upload it first: POST /api/v1/plugins?name={name}&version={version}",
                    given.line,
                    self.registry.describe_versions(name)
                )));
            }
            o.descriptor = self.types.with_plugin(&o.descriptor, &reference).expect("a node with a plugin has a plugin field");
            o.plugin = Some(weir_spec::PluginRef { reference, line: given.line });
        }
        Ok(spec)
    }

    /// Create a pipeline and start it; it is stored only if it starts.
    pub fn create(self: &Arc<Self>, text: &str) -> Result<PipelineDetail, ApiError> {
        let spec = self.parse(text, None)?;
        let id = spec.name.clone();
        let plugins: BTreeMap<String, String> =
            spec.operators.iter().filter_map(|o| Some((o.name.clone(), o.plugin.as_ref()?.reference.clone()))).collect();
        let entry = {
            let mut entries = self.entries.lock().unwrap();
            if entries.contains_key(&id) {
                return Err(ApiError::conflict(format!(
                    "a pipeline '{id}' already exists; delete it first (DELETE /api/v1/pipelines/{id}) or use another name"
                )));
            }
            let record = StoredPipeline {
                id: id.clone(),
                spec: text.to_string(),
                running: true,
                plugins,
                created_ms: now_ms(),
                finished: false,
                swap: None,
            };
            let entry = Entry::new(id.clone(), self.dir.join(&id), record, PipelineStatus::Starting);
            entries.insert(id.clone(), entry.clone());
            entry
        };
        let started = self.start_and_wait(&entry, false);
        if let Err(e) = started {
            self.entries.lock().unwrap().remove(&id);
            let _ = std::fs::remove_dir_all(&entry.dir);
            return Err(e);
        }
        Ok(self.describe(&entry))
    }

    /// Start the supervisor and wait for the job to start (or fail to).
    fn start_and_wait(self: &Arc<Self>, entry: &Arc<Entry>, fresh: bool) -> Result<(), ApiError> {
        let (tx, rx) = std::sync::mpsc::channel();
        crate::supervisor::spawn(self, entry, Some(tx), fresh);
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(Ok(())) => entry.save(),
            Ok(Err(e)) => {
                if let Some(h) = entry.thread.lock().unwrap().take() {
                    let _ = h.join();
                }
                Err(e)
            }
            Err(_) => Err(ApiError::internal(format!("pipeline '{}' did not start within 120 s", entry.id))),
        }
    }

    pub fn list(&self) -> Vec<PipelineSummary> {
        let entries: Vec<_> = self.entries.lock().unwrap().values().cloned().collect();
        entries.iter().map(|e| self.summary(e)).collect()
    }

    fn summary(&self, e: &Entry) -> PipelineSummary {
        let (status, restarts, error, run) = {
            let l = e.live.lock().unwrap();
            let run = l.running.as_ref().map(|r| (r.control.clone(), r.spec.clone()));
            (l.status, l.restarts, l.error.clone(), run)
        };
        let plugins = e.record.lock().unwrap().plugins.clone();
        let mut s = PipelineSummary {
            id: e.id.clone(),
            status,
            plugins,
            restarts,
            error,
            records_in: None,
            records_out: None,
            backlog: None,
            last_checkpoint_ms: None,
            at_ms: now_ms(),
        };
        if let Some((control, spec)) = run {
            let nodes = control.metrics().snapshot();
            let role = |n: &weir_engine::NodeSnapshot| spec.nodes().find(|d| d.name == n.node).map(|d| d.role);
            s.records_in = Some(nodes.iter().filter(|n| role(n) == Some(weir_engine::Role::Source)).map(|n| n.records_out).sum());
            s.records_out = Some(nodes.iter().filter(|n| role(n) == Some(weir_engine::Role::Sink)).map(|n| n.records_in).sum());
            let spec_nodes: Vec<_> = spec.nodes().map(|n| (n.name.as_str(), n.inputs.as_slice())).collect();
            s.backlog = backlogs(&spec_nodes, &nodes).into_iter().flatten().reduce(|a, b| a + b);
            s.last_checkpoint_ms = control.checkpoints().last_completed_ms;
        }
        s
    }

    /// Status of a pipeline: per operator records in and out, plugin version,
    /// the last checkpoint, the last swap.
    /// No lock is held while the nodes are summed up (linear in the spec's
    /// size, but a spec may be large: the API calls this on a blocking thread).
    pub(crate) fn describe(&self, e: &Entry) -> PipelineDetail {
        let summary = self.summary(e);
        let (mut d, run) = {
            let l = e.live.lock().unwrap();
            let d = PipelineDetail {
                summary,
                uptime_s: None,
                nodes: None,
                checkpoints: None,
                resumed_from: l.resumed.clone(),
                swap: l.swap.as_ref().map(|s| s.info.clone()),
                savepoint: None,
                retry: l.retry.clone(),
                graph: None,
                swaps: l.swap_history.iter().cloned().chain(l.swap.as_ref().map(|s| s.info.clone())).collect(),
            };
            (d, l.running.as_ref().map(|r| (r.control.clone(), r.spec.clone(), r.started, r.graph.clone())))
        };
        if let Some((control, spec, started, graph)) = run {
            let nodes = control.metrics().snapshot();
            let spec_nodes: Vec<_> = spec.nodes().map(|n| (n.name.as_str(), n.inputs.as_slice())).collect();
            let backlogs = backlogs(&spec_nodes, &nodes);
            let c = control.checkpoints();
            let roles: std::collections::HashMap<&str, &str> = graph.iter().map(|g| (g.name.as_str(), g.role.as_str())).collect();
            d.uptime_s = Some(started.elapsed().as_secs_f64());
            d.nodes = Some(
                nodes
                    .iter()
                    .zip(backlogs)
                    .map(|(n, backlog)| NodeStatus {
                        name: n.node.clone(),
                        role: roles.get(n.node.as_str()).copied().unwrap_or("operator").to_string(),
                        parallelism: n.parallelism,
                        records_in: n.records_in,
                        records_out: n.records_out,
                        bytes_in: n.bytes_in,
                        bytes_out: n.bytes_out,
                        backlog,
                        busy_s: n.busy_nanos as f64 / 1e9,
                        dead_letters: n.dead_letters,
                        plugin: d.summary.plugins.get(&n.node).cloned(),
                        blocked_s: n.blocked_nanos as f64 / 1e9,
                        watermark_ms: n.watermark,
                        state_bytes: c.node_bytes.get(&n.node).copied(),
                        latency_sum_s: n.latency_nanos as f64 / 1e9,
                        latency_count: n.latency_batches,
                    })
                    .collect(),
            );
            let history = c
                .history
                .iter()
                .map(|h| CheckpointEntry {
                    epoch: h.epoch,
                    triggered_ms: h.triggered_ms,
                    duration_ms: h.duration_ms,
                    alignment_ms: h.alignment_ms,
                    bytes: h.bytes,
                    incremental_bytes: h.incremental_bytes,
                    failure: h.failure.clone(),
                    savepoint: h.savepoint.clone(),
                })
                .collect();
            d.checkpoints = Some(CheckpointStatus {
                completed: c.completed,
                failed: c.failed,
                last: c.last_epoch.map(|epoch| LastCheckpoint { epoch, completed_ms: c.last_completed_ms, duration_ms: c.last_duration_ms }),
                history,
            });
            // Operators run the plugin versions the record names (swaps change them).
            let nodes = graph.into_iter().map(|g| GraphNode { plugin: d.summary.plugins.get(&g.name).cloned().or(g.plugin), ..g }).collect();
            d.graph = Some(Graph { nodes });
        }
        d
    }

    /// The stored checkpoints and savepoints of a pipeline.
    pub fn checkpoints(&self, id: &str) -> Result<Checkpoints, ApiError> {
        let e = self.get(id)?;
        e.usable()?;
        let storage = {
            let l = e.live.lock().unwrap();
            l.running.as_ref().and_then(|r| r.storage.clone())
        };
        let storage = match storage {
            Some(s) => s,
            None => {
                let text = e.record.lock().unwrap().spec.clone();
                let spec = self.parse(&text, None)?;
                let dir = spec.state.dir.clone().unwrap_or_default();
                Arc::new(weir_checkpoint::Storage::open(&dir, &spec.name, Vec::new(), 3).map_err(|e| ApiError::internal(e.to_string()))?)
            }
        };
        let checkpoints = storage.checkpoints().map_err(|e| ApiError::internal(e.to_string()))?;
        let savepoints = storage.savepoints().map_err(|e| ApiError::internal(e.to_string()))?;
        Ok(Checkpoints {
            id: id.to_string(),
            location: storage.location().to_string(),
            checkpoints: checkpoints.into_iter().map(Into::into).collect(),
            savepoints,
        })
    }

    /// Stop a pipeline: take a savepoint, then stop its job. It stays stopped
    /// (also across node restarts) until started.
    pub fn stop(&self, id: &str) -> Result<PipelineDetail, ApiError> {
        let e = self.get(id)?;
        e.usable()?;
        let savepoint = format!("stop-{}", now_ms());
        let target = {
            let mut l = e.live.lock().unwrap();
            l.stopping = true;
            l.running.as_ref().map(|r| (r.control.clone(), r.storage.is_some()))
        };
        e.record.lock().unwrap().running = false;
        e.save()?;
        let mut taken = None;
        if let Some((control, checkpoints)) = target {
            if checkpoints {
                // Flink's stop: the savepoint's output is published before the job ends.
                match control.stop_with_savepoint(&savepoint, Duration::from_secs(60)) {
                    Ok(_) => taken = Some(savepoint.clone()),
                    Err(err) => tracing::warn!("pipeline '{id}': no savepoint at stop: {err}"),
                }
            }
            if taken.is_none() {
                control.cancel();
            }
        }
        if let Some(h) = e.thread.lock().unwrap().take() {
            let _ = h.join();
        }
        let mut d = self.describe(&e);
        d.savepoint = taken;
        Ok(d)
    }

    /// Start a stopped (finished, failed) pipeline; it resumes from its
    /// latest checkpoint, or starts afresh with `fresh` (deleting them).
    pub fn start(self: &Arc<Self>, id: &str, fresh: bool) -> Result<PipelineDetail, ApiError> {
        let e = self.get(id)?;
        e.usable()?;
        {
            let l = e.live.lock().unwrap();
            if l.running.is_some() || matches!(l.status, PipelineStatus::Starting | PipelineStatus::Restarting) {
                let retry = match &l.retry {
                    Some(r) => format!(" (attempt {} failed; the next starts in {:.1} s)", r.attempt, (r.next_retry_ms - now_ms()).max(0) as f64 / 1e3),
                    None => String::new(),
                };
                return Err(ApiError::conflict(format!("pipeline '{id}' is {}{retry}; stop it first to start it again", l.status)));
            }
        }
        if let Some(h) = e.thread.lock().unwrap().take() {
            let _ = h.join();
        }
        {
            let mut l = e.live.lock().unwrap();
            l.stopping = false;
            l.status = PipelineStatus::Starting;
            l.error = None;
        }
        {
            let mut r = e.record.lock().unwrap();
            r.running = true;
            r.finished = false;
        }
        if let Err(err) = self.start_and_wait(&e, fresh) {
            e.record.lock().unwrap().running = false;
            return Err(err);
        }
        Ok(self.describe(&e))
    }

    /// Stop a pipeline (without a savepoint) and delete it with its checkpoints.
    pub fn delete(&self, id: &str) -> Result<Deleted, ApiError> {
        let e = self.get(id)?;
        let control = {
            let mut l = e.live.lock().unwrap();
            l.stopping = true;
            l.running.as_ref().map(|r| r.control.clone())
        };
        if let Some(c) = control {
            c.cancel();
        }
        if let Some(h) = e.thread.lock().unwrap().take() {
            let _ = h.join();
        }
        self.entries.lock().unwrap().remove(id);
        crate::logs::PluginLogs::global().forget(id);
        std::fs::remove_dir_all(&e.dir).map_err(|err| ApiError::internal(format!("cannot delete {}: {err}", e.dir.display())))?;
        Ok(Deleted { id: id.to_string(), deleted: true })
    }

    /// Pipelines whose operators run `name@version`.
    pub fn using(&self, name: &str, version: &str) -> Vec<String> {
        let wanted = format!("{name}@{version}");
        let entries: Vec<_> = self.entries.lock().unwrap().values().cloned().collect();
        entries
            .iter()
            .filter(|e| {
                // One lock at a time (elsewhere `live` is taken before `record`).
                let runs = e.record.lock().unwrap().plugins.values().any(|p| *p == wanted);
                runs || e.live.lock().unwrap().swap.as_ref().is_some_and(|s| s.info.to == wanted && s.ticket.is_some())
            })
            .map(|e| e.id.clone())
            .collect()
    }

    /// `pipeline/operator` of every operator, by the plugin (`name@version`)
    /// it runs.
    pub fn plugin_users(&self) -> BTreeMap<String, Vec<String>> {
        let entries: Vec<_> = self.entries.lock().unwrap().values().cloned().collect();
        let mut users: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for e in &entries {
            for (op, plugin) in &e.record.lock().unwrap().plugins {
                users.entry(plugin.clone()).or_default().push(format!("{}/{op}", e.id));
            }
        }
        users
    }

    /// Hot swap operator `op` of pipeline `id` to `plugin` (`name@version`).
    pub fn swap(&self, id: &str, op: &str, plugin: &str, probation: Duration) -> Result<PipelineDetail, ApiError> {
        let e = self.get(id)?;
        e.usable()?;
        crate::swap::swap(self, &e, op, plugin, probation)?;
        Ok(self.describe(&e))
    }

}

/// Per node (in `nodes`' order), the records sent to it that it has not
/// taken yet (in its input channels), where that is known: every input is the
/// main output of a node that feeds only it. `spec` is every node of the spec
/// with its inputs. Linear in the spec's size.
fn backlogs(spec: &[(&str, &[weir_spec::InputRef])], nodes: &[weir_engine::NodeSnapshot]) -> Vec<Option<u64>> {
    let out: std::collections::HashMap<&str, u64> = nodes.iter().map(|n| (n.node.as_str(), n.records_out)).collect();
    let inputs_of: std::collections::HashMap<&str, &[weir_spec::InputRef]> = spec.iter().copied().collect();
    let mut readers: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for i in spec.iter().flat_map(|(_, inputs)| inputs.iter()) {
        *readers.entry(i.node.as_str()).or_default() += 1;
    }
    nodes
        .iter()
        .map(|n| {
            let inputs = inputs_of.get(n.node.as_str())?;
            if inputs.is_empty() {
                return None;
            }
            let mut sent = 0;
            for i in inputs.iter() {
                if i.output.is_some() || readers.get(i.node.as_str()) != Some(&1) {
                    return None;
                }
                sent += out.get(i.node.as_str())?;
            }
            Some(sent.saturating_sub(n.records_in))
        })
        .collect()
}

/// Counts a swap result.
pub(crate) fn count_swap(l: &mut Live, result: SwapStatus) {
    *l.swaps.entry(result).or_default() += 1;
}

#[cfg(test)]
mod tests {
    use weir_engine::NodeSnapshot;
    use weir_spec::InputRef;

    /// A chain of `n` nodes, each reading the one before.
    fn chain(n: usize) -> (Vec<(String, Vec<InputRef>)>, Vec<NodeSnapshot>) {
        let names: Vec<String> = (0..n).map(|i| format!("node-{i}")).collect();
        let spec = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let inputs = if i == 0 { vec![] } else { vec![InputRef { node: names[i - 1].clone(), output: None, line: i }] };
                (name.clone(), inputs)
            })
            .collect();
        let nodes = names
            .iter()
            .enumerate()
            .map(|(i, name)| NodeSnapshot { node: name.clone(), records_in: 1_000_000 - i as u64, records_out: 1_000_000 - i as u64, ..Default::default() })
            .collect();
        (spec, nodes)
    }

    /// `GET /api/v1/pipelines/{id}` of a 10 000-node pipeline took 1.7 s of
    /// CPU when the backlogs were quadratic; they are computed through hash
    /// maps of the nodes now (one pass each). Checked for what they say, not
    /// timed (a timed test fails on a loaded machine).
    #[test]
    fn backlogs_of_a_long_chain() {
        let (spec, nodes) = chain(40_000);
        let spec: Vec<_> = spec.iter().map(|(n, i)| (n.as_str(), i.as_slice())).collect();
        let b = super::backlogs(&spec, &nodes);
        assert_eq!(b.len(), 40_000);
        assert_eq!(b[0], None, "a source has no backlog");
        assert!(b[1..].iter().all(|b| *b == Some(1)), "each node has one record waiting");
    }
}
