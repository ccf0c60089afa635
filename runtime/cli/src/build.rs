//! `weir build`: a plugin directory to a checked WebAssembly component. The
//! language is detected: `Cargo.toml` (Rust, cargo), `pyproject.toml` or
//! `app.py` (Python, componentize-py), `package.json` (JavaScript,
//! componentize-js).

mod componentize;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context as _};
use weir_wasm::{LoaderConfig, PluginLoader};

pub const TARGET: &str = "wasm32-wasip2";

#[derive(clap::Args)]
pub struct BuildArgs {
    /// The plugin's directory.
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Build without optimisations.
    #[arg(long)]
    debug: bool,
}

/// Build the plugin in `args.dir`; returns the component's path.
pub fn build(args: BuildArgs) -> anyhow::Result<PathBuf> {
    let dir = &args.dir;
    let manifest = dir.join("Cargo.toml");
    if !manifest.exists() {
        let wasm = if dir.join("pyproject.toml").exists() || dir.join("app.py").exists() {
            componentize::python(dir)?
        } else if dir.join("package.json").exists() {
            componentize::js(dir)?
        } else {
            bail!(
                "{} has no Cargo.toml, pyproject.toml, app.py or package.json: `weir build` builds Rust, Python \
                 and JavaScript plugins (create one with `weir new NAME [--lang python|js]`)",
                dir.display()
            );
        };
        return check(wasm);
    }
    check_target()?;
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.arg("build")
        .arg("--target")
        .arg(TARGET)
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--message-format=json-render-diagnostics")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if !args.debug {
        cmd.arg("--release");
    }
    let out = cmd.output().context("cannot run cargo")?;
    let wasm = component_path(&String::from_utf8_lossy(&out.stdout), &manifest);
    if !out.status.success() {
        bail!("cargo build of {} failed", dir.display());
    }
    let Some(wasm) = wasm else {
        bail!("cargo built no .wasm for {}: is it a `cdylib` crate (crate-type = [\"cdylib\"])?", manifest.display());
    };
    check(wasm)
}

/// Check what a pipeline would check, a component of the operator world, and
/// print its path.
fn check(wasm: PathBuf) -> anyhow::Result<PathBuf> {
    let engine = PluginLoader::new(LoaderConfig::default())?;
    let plugin = engine.load_file(&wasm)?;
    println!("{}", wasm.display());
    eprintln!("built {} ({}), implementing {}", plugin.meta(), plugin.meta().digest, plugin.meta().world);
    Ok(wasm)
}

fn check_target() -> anyhow::Result<()> {
    let Ok(out) = Command::new("rustup").args(["target", "list", "--installed"]).output() else {
        return Ok(()); // No rustup: let cargo report what is missing.
    };
    if out.status.success() && !String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim() == TARGET) {
        bail!("the Rust target {TARGET} is not installed: run `rustup target add {TARGET}`");
    }
    Ok(())
}

/// The .wasm artifact of the package at `manifest`, from cargo's JSON messages.
fn component_path(messages: &str, manifest: &Path) -> Option<PathBuf> {
    let manifest = manifest.canonicalize().ok()?;
    messages
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| m["manifest_path"].as_str().and_then(|p| Path::new(p).canonicalize().ok()).as_ref() == Some(&manifest))
        .flat_map(|m| m["filenames"].as_array().cloned().unwrap_or_default())
        .filter_map(|f| f.as_str().map(PathBuf::from))
        .find(|f| f.extension().is_some_and(|e| e == "wasm"))
}
