//! Python packages a test reads results with (PyIceberg, DuckDB), installed
//! once with pip at pinned versions into `<target>/services/py-<name>` (pip
//! `--target`: Debian's Python is externally managed), under a file lock so
//! that concurrent test processes install once, with a marker (the
//! requirement list) written on success.

use std::io;
use std::path::PathBuf;
use std::process::Command;

use crate::jars::{once, target_dir};
use crate::proc::ctx;

/// The directory to put on `PYTHONPATH` for `requirements` (pinned, as pip
/// writes them: `pyiceberg[sql-sqlite,pyarrow]==0.12.0`).
pub fn python_packages(name: &str, requirements: &[&str]) -> io::Result<PathBuf> {
    let dir = target_dir().join("services").join(format!("py-{name}"));
    let site = dir.join("site");
    once(&dir, &site, requirements.join("\n").as_bytes(), "installed.txt", || {
        let mut cmd = Command::new("python3");
        cmd.args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-warn-script-location", "--target"])
            .arg(&site)
            .args(requirements);
        let out = cmd.output().map_err(|e| ctx(e, "running pip (is python3 with pip installed?)".to_string()))?;
        if !out.status.success() {
            let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
            return Err(io::Error::other(format!("installing {requirements:?} failed: {cmd:?} exited with {}:\n{text}", out.status)));
        }
        Ok(())
    })?;
    Ok(site)
}
