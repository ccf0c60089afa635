//! The plugin loader: one wasmtime engine per process, compiled-component
//! cache, world validation, and the epoch ticker behind CPU deadlines.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine};

use crate::bindings::v0_2::WindowOperatorPre;
use crate::bindings::function::ScalarFunctionPre;
use crate::bindings::v0_3::ChangelogOperatorPre;
use crate::bindings::{Operator, OperatorPre};
use crate::host::HostState;
use crate::{cache, WasmError, CHANGELOG_WORLD, FUNCTION_WORLD, WINDOW_WORLD, WORLD};

/// How often the epoch advances; CPU deadlines are rounded up to it.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Settings of the plugin loader.
#[derive(Clone, Debug, Default)]
pub struct LoaderConfig {
    /// Where compiled components are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
}

/// Identity of a loaded plugin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginMeta {
    pub name: String,
    pub version: String,
    /// sha256 of the component, hex.
    pub digest: String,
    /// The world it implements: [`WORLD`](crate::WORLD) (a stream operator),
    /// [`CHANGELOG_WORLD`](crate::CHANGELOG_WORLD) (a stream operator that
    /// reads and writes row kinds) or [`WINDOW_WORLD`](crate::WINDOW_WORLD)
    /// (a window function).
    pub world: &'static str,
}

impl fmt::Display for PluginMeta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.version)
    }
}

struct Ticker {
    stop: Arc<AtomicBool>,
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

pub(crate) struct Shared {
    pub engine: Engine,
    linker: Linker<HostState>,
    cache: Option<cache::Cache>,
    _ticker: Ticker,
}

/// Loads plugins. Cheap to clone; plugins keep what they need alive.
#[derive(Clone)]
pub struct PluginLoader {
    shared: Arc<Shared>,
}

/// A compiled, validated and pre-instantiated plugin.
#[derive(Clone)]
pub struct Plugin {
    pub(crate) meta: Arc<PluginMeta>,
    /// Set for a stream operator (`WORLD`).
    pub(crate) pre: Option<OperatorPre<HostState>>,
    /// Set for a changelog stream operator (`CHANGELOG_WORLD`).
    pub(crate) changelog_pre: Option<ChangelogOperatorPre<HostState>>,
    /// Set for a window function (`WINDOW_WORLD`).
    pub(crate) window_pre: Option<WindowOperatorPre<HostState>>,
    /// Set for a component of SQL functions (`FUNCTION_WORLD`).
    pub(crate) function_pre: Option<ScalarFunctionPre<HostState>>,
    pub(crate) shared: Arc<Shared>,
}

impl Plugin {
    pub fn meta(&self) -> &PluginMeta {
        &self.meta
    }
}

impl PluginLoader {
    pub fn new(config: LoaderConfig) -> Result<Self, WasmError> {
        let mut c = Config::new();
        c.wasm_component_model(true);
        // Synchronous calls only: 3x cheaper component calls.
        c.concurrency_support(false);
        c.epoch_interruption(true);
        c.max_wasm_stack(1 << 20);
        // `WEIR_WASM_PROFILE=perfmap`: name the guests' compiled functions in
        // /tmp/perf-<pid>.map, so that `perf report` shows them.
        if std::env::var("WEIR_WASM_PROFILE").as_deref() == Ok("perfmap") {
            c.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&c).map_err(|e| WasmError::Engine(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| WasmError::Engine(format!("{e:#}")))?;
        crate::wait::add_to_linker(&mut linker).map_err(|e| WasmError::Engine(format!("{e:#}")))?;
        Operator::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(|e| WasmError::Engine(format!("{e:#}")))?;

        let stop = Arc::new(AtomicBool::new(false));
        let (e, s) = (engine.clone(), stop.clone());
        std::thread::Builder::new()
            .name("weir-epoch".into())
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    e.increment_epoch();
                }
            })
            .map_err(|e| WasmError::Engine(format!("cannot start the epoch thread: {e}")))?;
        let cache = config.cache_dir.and_then(|d| cache::Cache::open(d, &engine));
        Ok(PluginLoader { shared: Arc::new(Shared { engine, linker, cache, _ticker: Ticker { stop } }) })
    }

    /// Load a plugin from a `.wasm` file. Its name is the file's stem and its
    /// version `sha256:` and the first 12 hex digits of its digest.
    pub fn load_file(&self, path: &Path) -> Result<Plugin, WasmError> {
        let bytes = std::fs::read(path).map_err(|source| WasmError::Read { path: path.into(), source })?;
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "plugin".into());
        self.load(&name, None, &bytes)
    }

    /// Load a plugin from its bytes. `version` defaults to a digest prefix.
    pub fn load(&self, name: &str, version: Option<&str>, bytes: &[u8]) -> Result<Plugin, WasmError> {
        let digest = hex::encode(Sha256::digest(bytes));
        let meta = PluginMeta {
            name: name.to_string(),
            version: version.map(str::to_string).unwrap_or_else(|| format!("sha256:{}", &digest[..12])),
            digest,
            world: WORLD,
        };
        let plugin = meta.to_string();
        check_header(bytes, &plugin)?;
        let component = self.compile(bytes, &meta)?;
        let instance_pre = self.shared.linker.instantiate_pre(&component).map_err(|e| WasmError::World {
            plugin: plugin.clone(),
            world: WORLD,
            message: format!("{e:#}"),
        })?;
        // A stream operator exports `handler` (0.1.0, or 0.3.0 with row
        // kinds); a window function (0.2.0) exports `window`; SQL functions
        // export `functions`.
        let mut plugin_of =
            Plugin { meta: Arc::new(meta), pre: None, changelog_pre: None, window_pre: None, function_pre: None, shared: self.shared.clone() };
        let world = match OperatorPre::new(instance_pre.clone()) {
            Ok(pre) => {
                plugin_of.pre = Some(pre);
                WORLD
            }
            Err(e) => {
                if let Ok(c) = ChangelogOperatorPre::new(instance_pre.clone()) {
                    plugin_of.changelog_pre = Some(c);
                    CHANGELOG_WORLD
                } else if let Ok(w) = WindowOperatorPre::new(instance_pre.clone()) {
                    plugin_of.window_pre = Some(w);
                    WINDOW_WORLD
                } else if let Ok(f) = ScalarFunctionPre::new(instance_pre) {
                    plugin_of.function_pre = Some(f);
                    FUNCTION_WORLD
                } else {
                    return Err(WasmError::World { plugin: plugin.clone(), world: WORLD, message: format!("{e:#}") });
                }
            }
        };
        plugin_of.meta = Arc::new(PluginMeta { world, ..(*plugin_of.meta).clone() });
        Ok(plugin_of)
    }

    fn compile(&self, bytes: &[u8], meta: &PluginMeta) -> Result<Component, WasmError> {
        let cache = self.shared.cache.as_ref();
        if let Some(c) = cache.and_then(|c| c.load(&self.shared.engine, &meta.digest)) {
            tracing::debug!(plugin = %meta, "loaded compiled plugin from cache");
            return Ok(c);
        }
        let t0 = std::time::Instant::now();
        let component = Component::new(&self.shared.engine, bytes)
            .map_err(|e| WasmError::Compile { plugin: meta.to_string(), message: format!("{e:#}") })?;
        tracing::debug!(plugin = %meta, elapsed = ?t0.elapsed(), "compiled plugin");
        if let Some(c) = cache {
            c.store(&component, &meta.digest);
        }
        Ok(component)
    }
}

fn check_header(bytes: &[u8], plugin: &str) -> Result<(), WasmError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(WasmError::NotWasm { plugin: plugin.into() });
    }
    // Bytes 4..8: version and layer; layer 0 is a core module, 1 a component.
    if bytes[6..8] == [0, 0] {
        return Err(WasmError::CoreModule { plugin: plugin.into() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        assert!(matches!(check_header(b"hello world", "p"), Err(WasmError::NotWasm { .. })));
        assert!(matches!(check_header(b"\0asm\x01\0\0\0", "p"), Err(WasmError::CoreModule { .. })));
        assert!(check_header(b"\0asm\x0d\0\x01\0", "p").is_ok());
    }
}
