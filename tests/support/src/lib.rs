//! Shared by the integration tests of the runtime crates.

use std::path::PathBuf;

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

/// The directory `make plugins` builds guest components into.
pub fn plugin_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"));
    let target = if target.is_relative() { root().join(target) } else { target };
    target.join("wasm32-wasip2/release")
}

/// A built guest component, e.g. `fixture("word_count")`. Panics with the
/// command to run when it has not been built.
pub fn fixture(name: &str) -> PathBuf {
    let p = plugin_dir().join(format!("{name}.wasm"));
    assert!(p.exists(), "{} is missing: build the guest components first with `make plugins`", p.display());
    p
}
