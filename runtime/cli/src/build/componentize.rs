//! Python (componentize-py) and JavaScript (componentize-js) plugins.
//!
//! Both build `<dir>/target/<name>.wasm` (`name`: the directory's name with
//! `-` as `_`) against the WIT of the source tree this `weir` was built from
//! (or `$WEIR_WIT_PATH`). The tools are found at `$WEIR_COMPONENTIZE_PY` /
//! `$WEIR_COMPONENTIZE_JS`, else where `make plugins` installs them in that
//! tree (`target/pytools`, `sdk/js/node_modules`), else on `PATH`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};

const SOURCE_TREE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn wit() -> PathBuf {
    std::env::var_os("WEIR_WIT_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(SOURCE_TREE).join("wit/operator@0.1.0"))
}

/// `<dir>/target/<name>.wasm`, its directory created.
fn output(dir: &Path) -> anyhow::Result<PathBuf> {
    let dir = dir.canonicalize().with_context(|| format!("cannot find {}", dir.display()))?;
    let name = dir.file_name().map(|n| n.to_string_lossy().replace('-', "_")).unwrap_or_else(|| "plugin".into());
    std::fs::create_dir_all(dir.join("target"))?;
    Ok(dir.join("target").join(format!("{name}.wasm")))
}

fn run(mut cmd: Command, tool: &str, dir: &Path) -> anyhow::Result<()> {
    // Tool chatter goes to stderr: stdout is for the path of the component.
    let status = cmd.stdout(std::io::stderr()).status().with_context(|| format!("cannot run {tool}"))?;
    if !status.success() {
        bail!("{tool} failed to build {}", dir.display());
    }
    Ok(())
}

/// The SDK named in pyproject.toml's `[tool.weir] sdk = "..."`, else the
/// source tree's sdk/python.
fn python_sdk(dir: &Path) -> PathBuf {
    let named = std::fs::read_to_string(dir.join("pyproject.toml")).ok().and_then(|t| {
        t.lines()
            .filter_map(|l| l.trim().strip_prefix("sdk"))
            .filter_map(|r| r.trim_start().strip_prefix('='))
            .find_map(|v| serde_json::from_str::<String>(v.trim()).ok())
    });
    named.map(PathBuf::from).unwrap_or_else(|| Path::new(SOURCE_TREE).join("sdk/python"))
}

fn componentize_py() -> Command {
    if let Some(p) = std::env::var_os("WEIR_COMPONENTIZE_PY") {
        return Command::new(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(SOURCE_TREE).join("target"));
    let tools = target.join("pytools");
    if tools.join("bin/componentize-py").exists() {
        let mut cmd = Command::new(tools.join("bin/componentize-py"));
        cmd.env("PYTHONPATH", &tools);
        return cmd;
    }
    Command::new("componentize-py")
}

/// Build the Python plugin in `dir` (module `app`, exporting `Handler`).
pub fn python(dir: &Path) -> anyhow::Result<PathBuf> {
    let wasm = output(dir)?;
    let sdk = python_sdk(dir);
    if !sdk.join("weir_sdk/__init__.py").exists() {
        bail!("{} is not the Weir Python SDK (no weir_sdk/__init__.py)", sdk.display());
    }
    let mut cmd = componentize_py();
    cmd.arg("-d").arg(wit()).args(["-w", "operator", "componentize", "-p"]).arg(dir).arg("-p").arg(&sdk);
    cmd.arg("app").arg("-o").arg(&wasm);
    run(cmd, "componentize-py (install it with `pip install componentize-py==0.25.1`)", dir)?;
    Ok(wasm)
}

/// Build the JavaScript plugin in `dir` (module app.js, exporting `handler`).
pub fn js(dir: &Path) -> anyhow::Result<PathBuf> {
    let wasm = output(dir)?;
    let tool = std::env::var_os("WEIR_COMPONENTIZE_JS").map(PathBuf::from).unwrap_or_else(|| {
        [Path::new(SOURCE_TREE).join("sdk/js"), dir.to_path_buf()]
            .into_iter()
            .map(|d| d.join("node_modules/.bin/componentize-js"))
            .find(|p| p.exists())
            .and_then(|p| p.canonicalize().ok())
            .unwrap_or_else(|| PathBuf::from("componentize-js"))
    });
    // componentize-js resolves imports inside its working directory only.
    let mut cmd = Command::new(tool);
    cmd.current_dir(dir.canonicalize()?).arg("app.js").arg("--wit").arg(wit()).args(["--world-name", "operator"]);
    // The operator world imports no HTTP: keep the component's imports to WASI's basics.
    cmd.args(["-d", "http", "fetch-event", "-o"]).arg(&wasm);
    run(cmd, "componentize-js (run `npm ci` in sdk/js)", dir)?;
    Ok(wasm)
}
