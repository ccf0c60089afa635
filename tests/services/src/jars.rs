//! Fetching a service's jars once: `mvn dependency:copy-dependencies` on the
//! service's pinned pom (`tests/services/poms/<service>/pom.xml`) into
//! `<target>/services/<service>/libs`, under a file lock so that concurrent test
//! processes fetch it once, with a marker (a copy of the pom) written on success.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::proc::ctx;

/// The workspace root.
fn workspace_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` (a relative one taken from the
/// workspace root) or `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) if Path::new(&t).is_absolute() => PathBuf::from(t),
        Some(t) => workspace_root().join(t),
        None => workspace_root().join("target"),
    }
}

/// The directory holding the jars of `service` (`"kafka"` or `"connect"`),
/// fetched with Maven on first use. Safe to call from concurrent processes.
pub fn libs(service: &str) -> io::Result<PathBuf> {
    let pom_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("poms").join(service).join("pom.xml");
    let pom = fs::read(&pom_path).map_err(|e| ctx(e, format!("reading {}", pom_path.display())))?;
    let dir = target_dir().join("services").join(service);
    let libs = dir.join("libs");
    once(&dir, &libs, &pom, "fetched-pom.xml", || {
        let mut cmd = Command::new("mvn");
        cmd.args(["-q", "-B", "-f"])
            .arg(&pom_path)
            .arg("dependency:copy-dependencies")
            .arg(format!("-DoutputDirectory={}", libs.display()))
            .arg("-DincludeScope=runtime");
        let out = cmd.output().map_err(|e| ctx(e, format!("running mvn to fetch the {service} jars (is Maven installed?)")))?;
        if !out.status.success() {
            let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
            let tail: Vec<&str> = text.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect();
            return Err(io::Error::other(format!("fetching the {service} jars failed: {cmd:?} exited with {}:\n{}", out.status, tail.join("\n"))));
        }
        Ok(())
    })?;
    Ok(libs)
}

/// Make `out` in `dir` once for `want` (a pom, a requirement list): under a
/// file lock, so that concurrent test processes make it once; a marker file
/// holding `want` is written on success, and a stale `out` is removed first.
pub(crate) fn once(dir: &Path, out: &Path, want: &[u8], marker: &str, make: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
    let marker = dir.join(marker);
    if fs::read(&marker).is_ok_and(|m| m == want) {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(|e| ctx(e, format!("creating {}", dir.display())))?;
    let lock = File::create(dir.join(".lock"))?;
    lock.lock().map_err(|e| ctx(e, format!("locking {}", dir.display())))?;
    // Another process may have made it while this one waited for the lock.
    if fs::read(&marker).is_ok_and(|m| m == want) {
        return Ok(());
    }
    let _ = fs::remove_file(&marker);
    if out.exists() {
        fs::remove_dir_all(out).map_err(|e| ctx(e, format!("removing stale {}", out.display())))?;
    }
    make()?;
    fs::write(&marker, want).map_err(|e| ctx(e, format!("writing {}", marker.display())))
}
