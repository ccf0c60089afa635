//! Shared by the integration tests of the runtime crates.

use std::path::PathBuf;

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

/// The directory the guest components are built into:
/// `<target>/guests/wasm32-wasip2/release`, by this crate's build script (the
/// Rust guests always, the Python and JavaScript ones when their tools are
/// installed) and by `make plugins`.
pub fn plugin_dir() -> PathBuf {
    PathBuf::from(env!("WEIR_GUEST_DIR"))
}

/// A built guest component, e.g. `fixture("word_count")`. Panics with the
/// command to run when it has not been built.
pub fn fixture(name: &str) -> PathBuf {
    let p = plugin_dir().join(format!("{name}.wasm"));
    if !p.exists() {
        // "guest:tool ..." of the guests the build script could not build.
        let tool = env!("WEIR_UNBUILT_GUESTS").split(' ').find_map(|g| g.strip_prefix(name)?.strip_prefix(':'));
        match tool {
            Some(tool) => panic!(
                "{} is missing: {tool} was not installed when weir-test-support was built; `make plugins` installs it and builds the guest",
                p.display()
            ),
            None => panic!(
                "{} is missing: no guest crate under plugins/ or tests/guests/ builds it (or it was deleted: `make plugins` rebuilds the guests)",
                p.display()
            ),
        }
    }
    p
}
