//! On-disk cache of compiled components, keyed by the component's sha256 and the
//! engine's compatibility hash (wasmtime version and settings).

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::component::Component;
use wasmtime::Engine;

pub(crate) fn engine_key(engine: &Engine) -> String {
    let mut h = std::hash::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    format!("{:016x}", h.finish())
}

pub(crate) fn path(dir: &Path, digest: &str, engine_key: &str) -> PathBuf {
    dir.join(format!("{digest}-{engine_key}.cwasm"))
}

/// A cached compilation, if there is a usable one.
pub(crate) fn load(engine: &Engine, path: &Path) -> Option<Component> {
    // Read, not mmap: a file changed in place under a mapping would crash the host.
    let bytes = std::fs::read(path).ok()?;
    // SAFETY: the file was written by `store` below from `Component::serialize`
    // of this engine configuration (the key includes its compatibility hash);
    // wasmtime also checks the header and refuses mismatching artifacts.
    match unsafe { Component::deserialize(engine, &bytes) } {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(path = %path.display(), "ignoring unusable compiled plugin cache entry: {e}");
            None
        }
    }
}

/// Store a compilation atomically (write then rename). Failures only cost a
/// recompile next time, so they are logged, not returned.
pub(crate) fn store(component: &Component, path: &Path) {
    let result = (|| -> std::io::Result<()> {
        let bytes = component.serialize().map_err(std::io::Error::other)?;
        let dir = path.parent().expect("cache path has a parent");
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(".{}.tmp{}", path.file_name().unwrap().to_string_lossy(), std::process::id()));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        tracing::warn!(path = %path.display(), "cannot cache compiled plugin: {e}");
    }
}
