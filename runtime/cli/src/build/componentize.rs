//! Python (componentize-py) and JavaScript (componentize-js) plugins.
//!
//! Both build `<dir>/target/<name>.wasm` (`name`: the directory's name with
//! `-` as `_`) against the WIT of the source tree this `weir` was built from
//! (or `$WEIR_WIT_PATH`, the directory holding `operator@0.1.0`, ...), for the
//! world the plugin names: `world = "..."` under `[tool.weir]` in
//! pyproject.toml, or `"weir": {"world": "..."}` in package.json;
//! `weir:operator/operator@0.1.0` when it names none. The tools are found at `$WEIR_COMPONENTIZE_PY` /
//! `$WEIR_COMPONENTIZE_JS`, else where `make plugins` installs them in that
//! tree (`target/pytools` or `$CARGO_TARGET_DIR/pytools`, as set now or when
//! `weir` was built; `sdk/js/node_modules`), else on `PATH`. A Python
//! plugin's sources are compiled by `python3` first, so that a syntax error is
//! reported as one, with its file and line.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};

const SOURCE_TREE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// The worlds a Python or JavaScript plugin may implement (stream operators,
/// scalar SQL functions), with the WIT package directory and the world's
/// name in it.
const WORLDS: [(&str, &str, &str); 3] = [
    ("weir:operator/operator@0.1.0", "operator@0.1.0", "operator"),
    ("weir:operator/changelog-operator@0.3.0", "operator@0.3.0", "changelog-operator"),
    ("weir:function/scalar-function@0.1.0", "function@0.1.0", "scalar-function"),
];

/// The WIT package directory and world name of the world a plugin names.
fn wit(world: &str, named_in: &Path) -> anyhow::Result<(PathBuf, &'static str)> {
    let Some((_, package, name)) = WORLDS.iter().find(|(w, _, _)| *w == world) else {
        let known: Vec<&str> = WORLDS.iter().map(|(w, _, _)| *w).collect();
        bail!("{}: world \"{world}\" is not a world of this weir that a Python or JavaScript plugin can implement (one of: {})", named_in.display(), known.join(", "));
    };
    let root = std::env::var_os("WEIR_WIT_PATH").map(PathBuf::from).unwrap_or_else(|| Path::new(SOURCE_TREE).join("wit"));
    Ok((root.join(package), name))
}

/// `world = "..."` of pyproject.toml's `[tool.weir]` table.
fn python_world(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("pyproject.toml")).ok()?;
    let mut in_weir = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_weir = line == "[tool.weir]";
            continue;
        }
        if let Some(v) = line.strip_prefix("world").map(str::trim_start).and_then(|r| r.strip_prefix('='))
            && in_weir
        {
            return serde_json::from_str::<String>(v.trim()).ok();
        }
    }
    None
}

/// `weir.world` of package.json.
fn js_world(dir: &Path) -> anyhow::Result<Option<String>> {
    let path = dir.join("package.json");
    let Ok(text) = std::fs::read_to_string(&path) else { return Ok(None) };
    let v: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    match &v["weir"]["world"] {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::String(s) => Ok(Some(s.clone())),
        other => bail!("{}: weir.world must be a string naming a world, not {other}", path.display()),
    }
}

const DEFAULT_WORLD: &str = "weir:operator/operator@0.1.0";

/// `<dir>/target/<name>.wasm`, its directory created.
fn output(dir: &Path) -> anyhow::Result<PathBuf> {
    let dir = dir.canonicalize().with_context(|| format!("cannot find {}", dir.display()))?;
    let name = dir.file_name().map(|n| n.to_string_lossy().replace('-', "_")).unwrap_or_else(|| "plugin".into());
    std::fs::create_dir_all(dir.join("target"))?;
    Ok(dir.join("target").join(format!("{name}.wasm")))
}

/// Run a component builder. `tool` names it, `install` says how to get it.
fn run(mut cmd: Command, tool: &str, install: &str, dir: &Path) -> anyhow::Result<()> {
    // Tool chatter goes to stderr: stdout is for the path of the component.
    let out = match cmd.stdout(std::io::stderr()).stderr(std::process::Stdio::piped()).output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!("{tool} is not installed: {install}"),
        Err(e) => return Err(e).with_context(|| format!("cannot run {tool}")),
    };
    let err = String::from_utf8_lossy(&out.stderr);
    eprint!("{err}");
    if !out.status.success() {
        let tail: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = tail[tail.len().saturating_sub(12)..].join("\n");
        bail!("{tool} failed to build {}:\n{tail}", dir.display());
    }
    Ok(())
}

/// Compile the plugin's Python files, so that a syntax error is named as one
/// (componentize-py's own report of it is a long trace).
fn check_python(dir: &Path) -> anyhow::Result<()> {
    let dir = dir.canonicalize()?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "py"))
        .collect();
    files.sort();
    let script = "import sys\nfor f in sys.argv[1:]:\n    try:\n        compile(open(f, encoding='utf-8').read(), f, 'exec')\n    except SyntaxError as e:\n        print(f'{e.filename}, line {e.lineno}: {e.msg}' + (f': {e.text.strip()}' if e.text else ''))\n        sys.exit(1)\n";
    let out = match Command::new("python3").arg("-c").arg(script).args(&files).output() {
        Ok(out) => out,
        // No python3 here: componentize-py will say what is wrong.
        Err(_) => return Ok(()),
    };
    if !out.status.success() {
        bail!("syntax error in {}", String::from_utf8_lossy(&out.stdout).trim());
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
    let targets = [
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from),
        option_env!("CARGO_TARGET_DIR").map(PathBuf::from),
        Some(Path::new(SOURCE_TREE).join("target")),
    ];
    for tools in targets.into_iter().flatten().map(|t| t.join("pytools")) {
        if tools.join("bin/componentize-py").exists() {
            let mut cmd = Command::new(tools.join("bin/componentize-py"));
            cmd.env("PYTHONPATH", &tools);
            return cmd;
        }
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
    check_python(dir)?;
    let world = python_world(dir).unwrap_or_else(|| DEFAULT_WORLD.into());
    let (wit, world) = wit(&world, &dir.join("pyproject.toml"))?;
    let mut cmd = componentize_py();
    cmd.arg("-d").arg(wit).args(["-w", world, "componentize", "-p"]).arg(dir).arg("-p").arg(&sdk);
    cmd.arg("app").arg("-o").arg(&wasm);
    run(cmd, "componentize-py", "install it with `pip install componentize-py==0.25.1` (or run `make plugins` in the Weir tree)", dir)?;
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
    let world = js_world(dir)?.unwrap_or_else(|| DEFAULT_WORLD.into());
    let (wit, world) = wit(&world, &dir.join("package.json"))?;
    // componentize-js resolves imports inside its working directory only.
    let mut cmd = Command::new(tool);
    cmd.current_dir(dir.canonicalize()?).arg("app.js").arg("--wit").arg(wit).args(["--world-name", world]);
    // The operator world imports no HTTP: keep the component's imports to WASI's basics.
    cmd.args(["-d", "http", "fetch-event", "-o"]).arg(&wasm);
    run(cmd, "componentize-js", "run `npm ci` in sdk/js of the Weir tree", dir)?;
    Ok(wasm)
}
