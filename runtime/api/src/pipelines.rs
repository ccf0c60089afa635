//! Pipelines of a node: their definitions under `<data>/pipelines/<id>/`
//! (`pipeline.json`: the spec as sent, whether it should run, and the plugin
//! version each operator runs now), their checkpoints beside them
//! (`<data>/pipelines/<id>/state` unless the spec says otherwise), and one
//! supervisor thread per running pipeline (see `supervisor.rs`).
//!
//! A pipeline's id is its spec's `name`. Operators reference plugins of the
//! registry as `name@version`. Pipelines that should run are started again
//! when the node starts, and resume from their latest checkpoints.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use weir_engine::{JobControl, Ticket};
use weir_spec::{BuildEnv, PipelineSpec, PlannedNode};

use crate::error::ApiError;
use crate::registry::Registry;

/// What is stored of a pipeline.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Record {
    pub id: String,
    /// The spec as sent (YAML or JSON).
    pub spec: String,
    /// Whether the pipeline should run (it is started when the node starts).
    pub running: bool,
    /// Operator -> `name@version` it runs now (swaps change it).
    pub plugins: BTreeMap<String, String>,
    pub created_ms: i64,
}

/// Where a swap is, as the API shows it.
#[derive(Clone, Debug, Serialize)]
pub struct SwapInfo {
    pub operator: String,
    pub from: String,
    pub to: String,
    /// "pending", "switched" (in probation), "confirmed", "rolled-back", "refused".
    pub status: String,
    /// The checkpoint at whose barrier the operator switched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
    pub requested_ms: i64,
    /// From the request to every task running the new version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub switch_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
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
    pub spec: PipelineSpec,
    pub started: Instant,
}

#[derive(Default)]
pub(crate) struct Live {
    /// "starting", "running", "restarting", "stopping", "stopped", "finished", "failed".
    pub status: String,
    pub error: Option<String>,
    pub restarts: u64,
    pub running: Option<Running>,
    pub swap: Option<ActiveSwap>,
    pub swaps: BTreeMap<&'static str, u64>,
    /// Job failures by kind: trap, deadline, memory, other.
    pub failures: BTreeMap<&'static str, u64>,
    /// The checkpoint or savepoint the current run resumed from.
    pub resumed: Option<String>,
    /// A stop was asked for.
    pub stopping: bool,
}

pub(crate) struct Entry {
    pub id: String,
    pub dir: PathBuf,
    pub record: Mutex<Record>,
    pub live: Mutex<Live>,
    pub thread: Mutex<Option<JoinHandle<()>>>,
}

impl Entry {
    pub fn save(&self) -> Result<(), ApiError> {
        let record = self.record.lock().unwrap().clone();
        save_record(&self.dir, &record)
    }

    pub fn set_status(&self, status: &str, error: Option<String>) {
        let mut l = self.live.lock().unwrap();
        l.status = status.to_string();
        l.error = error;
    }
}

fn save_record(dir: &std::path::Path, record: &Record) -> Result<(), ApiError> {
    std::fs::create_dir_all(dir).map_err(|e| ApiError::internal(format!("cannot create {}: {e}", dir.display())))?;
    let path = dir.join("pipeline.json");
    let tmp = dir.join(".pipeline.json.tmp");
    let json = serde_json::to_vec_pretty(record).map_err(|e| ApiError::internal(e.to_string()))?;
    std::fs::write(&tmp, json)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| ApiError::internal(format!("cannot write {}: {e}", path.display())))
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
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
    pub(crate) entries: Mutex<BTreeMap<String, Arc<Entry>>>,
}

impl Pipelines {
    /// Open `<data>/pipelines` and start the pipelines that should run.
    pub fn open(data_dir: &std::path::Path, registry: Arc<Registry>, types: Arc<weir_spec::Registry>) -> Result<Arc<Pipelines>, ApiError> {
        let dir = data_dir.join("pipelines");
        std::fs::create_dir_all(&dir).map_err(|e| ApiError::internal(format!("cannot create {}: {e}", dir.display())))?;
        let p = Arc::new(Pipelines { dir: dir.clone(), registry, types, entries: Mutex::default() });
        let listing = std::fs::read_dir(&dir).map_err(|e| ApiError::internal(format!("cannot list {}: {e}", dir.display())))?;
        for e in listing.flatten() {
            let path = e.path().join("pipeline.json");
            let Ok(bytes) = std::fs::read(&path) else { continue };
            let record: Record = serde_json::from_slice(&bytes)
                .map_err(|err| ApiError::internal(format!("{} is damaged: {err}", path.display())))?;
            let running = record.running;
            let entry = Arc::new(Entry {
                id: record.id.clone(),
                dir: e.path(),
                record: Mutex::new(record),
                live: Mutex::new(Live { status: "stopped".into(), ..Default::default() }),
                thread: Mutex::default(),
            });
            p.entries.lock().unwrap().insert(entry.id.clone(), entry.clone());
            if running {
                tracing::info!("resuming pipeline '{}'", entry.id);
                crate::supervisor::spawn(&p, &entry, None);
            }
        }
        Ok(p)
    }

    /// What builds of this node's pipelines get: its plugin registry as the
    /// source of Wasm operators' plugins.
    pub(crate) fn extensions(&self) -> weir_spec::Extensions {
        let mut x = weir_spec::Extensions::default();
        x.insert(weir_wasm::Plugins(self.registry.clone()));
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
            weir_spec::parse_on_node(text, "spec", &self.dir, &self.types).map_err(|e| ApiError::bad_request(format!("{e:#}")))?;
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
    pub fn create(self: &Arc<Self>, text: &str) -> Result<serde_json::Value, ApiError> {
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
            let record = Record { id: id.clone(), spec: text.to_string(), running: true, plugins, created_ms: now_ms() };
            let entry = Arc::new(Entry {
                id: id.clone(),
                dir: self.dir.join(&id),
                record: Mutex::new(record),
                live: Mutex::new(Live { status: "starting".into(), ..Default::default() }),
                thread: Mutex::default(),
            });
            entries.insert(id.clone(), entry.clone());
            entry
        };
        let started = self.start_and_wait(&entry);
        if let Err(e) = started {
            self.entries.lock().unwrap().remove(&id);
            let _ = std::fs::remove_dir_all(&entry.dir);
            return Err(e);
        }
        Ok(self.describe(&entry))
    }

    /// Start the supervisor and wait for the job to start (or fail to).
    fn start_and_wait(self: &Arc<Self>, entry: &Arc<Entry>) -> Result<(), ApiError> {
        let (tx, rx) = std::sync::mpsc::channel();
        crate::supervisor::spawn(self, entry, Some(tx));
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

    pub fn list(&self) -> Vec<serde_json::Value> {
        let entries: Vec<_> = self.entries.lock().unwrap().values().cloned().collect();
        entries.iter().map(|e| self.summary(e)).collect()
    }

    fn summary(&self, e: &Entry) -> serde_json::Value {
        let l = e.live.lock().unwrap();
        let r = e.record.lock().unwrap();
        serde_json::json!({
            "id": e.id,
            "status": l.status,
            "plugins": r.plugins,
            "restarts": l.restarts,
            "error": l.error,
        })
    }

    /// Status of a pipeline: per operator records in and out, plugin version,
    /// the last checkpoint, the last swap.
    pub(crate) fn describe(&self, e: &Entry) -> serde_json::Value {
        let mut v = self.summary(e);
        let l = e.live.lock().unwrap();
        let plugins = e.record.lock().unwrap().plugins.clone();
        if let Some(run) = &l.running {
            let nodes = run.control.metrics().snapshot();
            let uptime = run.started.elapsed().as_secs_f64();
            v["uptime_s"] = uptime.into();
            v["nodes"] = nodes
                .iter()
                .map(|n| {
                    serde_json::json!({
                        "name": n.node,
                        "parallelism": n.parallelism,
                        "records_in": n.records_in,
                        "records_out": n.records_out,
                        "bytes_in": n.bytes_in,
                        "bytes_out": n.bytes_out,
                        "backlog": backlog(&run.spec, &nodes, &n.node),
                        "busy_s": n.busy_nanos as f64 / 1e9,
                        "plugin": plugins.get(&n.node),
                    })
                })
                .collect();
            let c = run.control.checkpoints();
            v["checkpoints"] = serde_json::json!({
                "completed": c.completed,
                "failed": c.failed,
                "last": c.last_epoch.map(|epoch| serde_json::json!({
                    "epoch": epoch,
                    "completed_ms": c.last_completed_ms,
                    "duration_ms": c.last_duration_ms,
                })),
            });
        }
        v["resumed_from"] = l.resumed.clone().into();
        if let Some(s) = &l.swap {
            v["swap"] = serde_json::to_value(&s.info).unwrap_or_default();
        }
        v
    }

    /// The stored checkpoints and savepoints of a pipeline.
    pub fn checkpoints(&self, id: &str) -> Result<serde_json::Value, ApiError> {
        let e = self.get(id)?;
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
        Ok(serde_json::json!({ "id": id, "location": storage.location(), "checkpoints": checkpoints, "savepoints": savepoints }))
    }

    /// Stop a pipeline: take a savepoint, then stop its job. It stays stopped
    /// (also across node restarts) until started.
    pub fn stop(&self, id: &str) -> Result<serde_json::Value, ApiError> {
        let e = self.get(id)?;
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
                match control.savepoint(&savepoint, Duration::from_secs(60)) {
                    Ok(_) => taken = Some(savepoint.clone()),
                    Err(err) => tracing::warn!("pipeline '{id}': no savepoint at stop: {err}"),
                }
            }
            control.cancel();
        }
        if let Some(h) = e.thread.lock().unwrap().take() {
            let _ = h.join();
        }
        let mut v = self.describe(&e);
        v["savepoint"] = taken.into();
        Ok(v)
    }

    /// Start a stopped pipeline; it resumes from its latest checkpoint.
    pub fn start(self: &Arc<Self>, id: &str) -> Result<serde_json::Value, ApiError> {
        let e = self.get(id)?;
        if e.live.lock().unwrap().running.is_some() {
            return Err(ApiError::conflict(format!("pipeline '{id}' is running")));
        }
        if let Some(h) = e.thread.lock().unwrap().take() {
            let _ = h.join();
        }
        {
            let mut l = e.live.lock().unwrap();
            l.stopping = false;
            l.status = "starting".into();
            l.error = None;
        }
        e.record.lock().unwrap().running = true;
        if let Err(err) = self.start_and_wait(&e) {
            e.record.lock().unwrap().running = false;
            return Err(err);
        }
        Ok(self.describe(&e))
    }

    /// Stop a pipeline (without a savepoint) and delete it with its checkpoints.
    pub fn delete(&self, id: &str) -> Result<serde_json::Value, ApiError> {
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
        std::fs::remove_dir_all(&e.dir).map_err(|err| ApiError::internal(format!("cannot delete {}: {err}", e.dir.display())))?;
        Ok(serde_json::json!({ "id": id, "deleted": true }))
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

    /// Hot swap operator `op` of pipeline `id` to `plugin` (`name@version`).
    pub fn swap(&self, id: &str, op: &str, plugin: &str, probation: Duration) -> Result<serde_json::Value, ApiError> {
        let e = self.get(id)?;
        crate::swap::swap(self, &e, op, plugin, probation)?;
        Ok(self.describe(&e))
    }

    /// Metrics of every pipeline, in Prometheus text.
    pub fn metrics(&self, out: &mut String) {
        crate::metrics::pipelines(self, out)
    }
}

/// Records sent to `node` that it has not taken yet (in its input channels),
/// where that is known: every input is the main output of a node that feeds
/// only `node`.
fn backlog(spec: &PipelineSpec, nodes: &[weir_engine::NodeSnapshot], node: &str) -> Option<u64> {
    let inputs = |n: &str| {
        spec.operators.iter().find(|o| o.name == n).map(|o| &o.inputs).or_else(|| spec.sinks.iter().find(|s| s.name == n).map(|s| &s.inputs))
    };
    let all_inputs: Vec<&weir_spec::InputRef> = spec.operators.iter().flat_map(|o| &o.inputs).chain(spec.sinks.iter().flat_map(|s| &s.inputs)).collect();
    let mut sent = 0;
    for i in inputs(node)? {
        let consumers = all_inputs.iter().filter(|j| j.node == i.node).count();
        if i.output.is_some() || consumers != 1 {
            return None;
        }
        sent += nodes.iter().find(|n| n.node == i.node)?.records_out;
    }
    let taken = nodes.iter().find(|n| n.node == node)?.records_in;
    Some(sent.saturating_sub(taken))
}

/// Counts a swap result.
pub(crate) fn count_swap(l: &mut Live, result: &'static str) {
    *l.swaps.entry(result).or_default() += 1;
}
