//! The plugin registry: components stored by content (sha256) under
//! `<data>/plugins/sha256/<digest>.wasm`, and an index `<data>/plugins/index.json`
//! of name -> version -> digest. A component is validated (a component, not a
//! core module, implementing the operator world) before anything is stored,
//! and the index is replaced atomically, so a failed upload stores nothing.
//! An index that cannot be read is moved aside (`index.json.damaged-<ms>`)
//! and the registry starts empty.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use weir_wasm::{PluginLoader, PluginSource, WasmError};

use crate::error::ApiError;

/// One stored version of a plugin.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct PluginVersion {
    pub name: String,
    pub version: String,
    /// sha256 of the component, hex.
    pub digest: String,
    /// The WIT world it implements.
    pub world: String,
    pub size: u64,
    pub uploaded_ms: i64,
    /// `pipeline/operator` of every operator running it (in listings).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub used_by: Vec<String>,
}

type Index = BTreeMap<String, BTreeMap<String, PluginVersion>>;

pub struct Registry {
    dir: PathBuf,
    engine: PluginLoader,
    index: Mutex<Index>,
}

fn valid(what: &str, s: &str, extra: &[char]) -> Result<(), ApiError> {
    let ok = !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || extra.contains(&c));
    if ok {
        Ok(())
    } else {
        let allowed: String = extra.iter().map(|c| format!(" '{c}'")).collect();
        Err(ApiError::bad_request(format!("{what} '{s}': use 1 to 64 letters, digits or{allowed}")))
    }
}

impl Registry {
    /// Open (or create) the registry under `data_dir/plugins`.
    pub fn open(data_dir: &Path, engine: PluginLoader) -> Result<Registry, ApiError> {
        let dir = data_dir.join("plugins");
        std::fs::create_dir_all(dir.join("sha256")).map_err(|e| ApiError::internal(format!("cannot create {}: {e}", dir.display())))?;
        let index_path = dir.join("index.json");
        let index = match std::fs::read(&index_path) {
            Ok(b) => match serde_json::from_slice(&b) {
                Ok(index) => index,
                Err(e) => {
                    // Kept aside, not overwritten: its components stay under sha256/.
                    let kept = dir.join(format!("index.json.damaged-{}", weir_engine::now_ms()));
                    std::fs::rename(&index_path, &kept)
                        .map_err(|err| ApiError::internal(format!("cannot move the damaged {} aside: {err}", index_path.display())))?;
                    tracing::error!(
                        "the plugin index {} cannot be read ({e}); it was moved to {} and the registry starts empty",
                        index_path.display(),
                        kept.display()
                    );
                    Index::new()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Index::new(),
            Err(e) => return Err(ApiError::internal(format!("cannot read {}: {e}", index_path.display()))),
        };
        Ok(Registry { dir, engine, index: Mutex::new(index) })
    }

    fn blob(&self, digest: &str) -> PathBuf {
        self.dir.join("sha256").join(format!("{digest}.wasm"))
    }

    fn save(&self, index: &Index) -> Result<(), ApiError> {
        let path = self.dir.join("index.json");
        let tmp = self.dir.join(".index.json.tmp");
        let json = serde_json::to_vec_pretty(index).map_err(|e| ApiError::internal(e.to_string()))?;
        std::fs::write(&tmp, json)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| ApiError::internal(format!("cannot write {}: {e}", path.display())))
    }

    /// Validate and store a component as `name@version`. The same content
    /// again is a no-op; other content under a stored version is a conflict.
    pub fn upload(&self, name: &str, version: &str, bytes: &[u8]) -> Result<PluginVersion, ApiError> {
        valid("plugin name", name, &['-', '_'])?;
        valid("version", version, &['.', '-', '_', '+'])?;
        let plugin = self.engine.load(name, Some(version), bytes).map_err(|e| ApiError::bad_request(e.to_string()))?;
        let meta = plugin.meta();
        let mut index = self.index.lock().expect("index lock");
        if let Some(existing) = index.get(name).and_then(|v| v.get(version)) {
            if existing.digest == meta.digest {
                return Ok(existing.clone());
            }
            return Err(ApiError::conflict(format!(
                "plugin {name}@{version} is already stored with other content (sha256 {}); upload it as a new version",
                existing.digest
            )));
        }
        let blob = self.blob(&meta.digest);
        let fresh_blob = !blob.exists();
        if fresh_blob {
            let tmp = blob.with_extension("tmp");
            std::fs::write(&tmp, bytes)
                .and_then(|()| std::fs::rename(&tmp, &blob))
                .map_err(|e| ApiError::internal(format!("cannot store the component: {e}")))?;
        }
        let uploaded_ms = weir_engine::now_ms();
        let v = PluginVersion {
            name: name.into(),
            version: version.into(),
            digest: meta.digest.clone(),
            world: meta.world.to_string(),
            size: bytes.len() as u64,
            uploaded_ms,
            used_by: Vec::new(),
        };
        let mut next = index.clone();
        next.entry(name.into()).or_default().insert(version.into(), v.clone());
        if let Err(e) = self.save(&next) {
            if fresh_blob {
                let _ = std::fs::remove_file(&blob);
            }
            return Err(e);
        }
        *index = next;
        Ok(v)
    }

    /// Every plugin with its versions.
    pub fn list(&self) -> Vec<PluginVersion> {
        self.index.lock().expect("index lock").values().flat_map(|v| v.values().cloned()).collect()
    }

    /// The versions of one plugin.
    pub fn versions(&self, name: &str) -> Result<Vec<PluginVersion>, ApiError> {
        let index = self.index.lock().expect("index lock");
        let v = index.get(name).ok_or_else(|| ApiError::not_found(format!("no plugin named '{name}'")))?;
        Ok(v.values().cloned().collect())
    }

    /// Remove `name@version` (its component too, unless another version has
    /// the same content).
    pub fn delete(&self, name: &str, version: &str) -> Result<PluginVersion, ApiError> {
        let mut index = self.index.lock().expect("index lock");
        let mut next = index.clone();
        let versions = next.get_mut(name).ok_or_else(|| ApiError::not_found(format!("no plugin named '{name}'")))?;
        let removed = versions
            .remove(version)
            .ok_or_else(|| ApiError::not_found(format!("plugin '{name}' has no version '{version}'")))?;
        if versions.is_empty() {
            next.remove(name);
        }
        self.save(&next)?;
        *index = next;
        if !index.values().flat_map(|v| v.values()).any(|v| v.digest == removed.digest) {
            let _ = std::fs::remove_file(self.blob(&removed.digest));
        }
        Ok(removed)
    }

    /// The stored `name@version`, if any.
    pub fn get(&self, name: &str, version: &str) -> Option<PluginVersion> {
        self.index.lock().expect("index lock").get(name)?.get(version).cloned()
    }

    /// What `name` has, for messages: "versions 1, 2" or "no versions".
    pub fn describe_versions(&self, name: &str) -> String {
        match self.index.lock().expect("index lock").get(name) {
            Some(v) => format!("versions {}", v.keys().cloned().collect::<Vec<_>>().join(", ")),
            None => "no versions".into(),
        }
    }

    /// Load `name@version` (compiled, or from the compile cache).
    pub fn load(&self, name: &str, version: &str) -> Result<weir_wasm::Plugin, ApiError> {
        let v = self.get(name, version).ok_or_else(|| {
            ApiError::not_found(format!("plugin {name}@{version} is not in this node's registry ({})", self.describe_versions(name)))
        })?;
        let bytes = std::fs::read(self.blob(&v.digest))
            .map_err(|e| ApiError::internal(format!("cannot read the component of {name}@{version}: {e}")))?;
        self.engine.load(name, Some(version), &bytes).map_err(|e| ApiError::internal(e.to_string()))
    }

    pub fn count(&self) -> usize {
        self.index.lock().expect("index lock").values().map(BTreeMap::len).sum()
    }
}

/// Operators of a node's pipelines name plugins of its registry, `name@version`.
impl PluginSource for Registry {
    fn load(&self, reference: &str) -> Result<weir_wasm::Plugin, WasmError> {
        let failed = |message: String| WasmError::Compile { plugin: reference.to_string(), message };
        let (name, version) = crate::pipelines::plugin_ref(reference)
            .ok_or_else(|| failed("not NAME@VERSION of a plugin in the registry".into()))?;
        Registry::load(self, name, version).map_err(|e| failed(e.message))
    }
}
