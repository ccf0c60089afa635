//! Builds the guest components the tests load, so that a plain `cargo test`
//! finds them (no `make plugins` first):
//!
//! * the Rust guests, every crate under `plugins/` and `tests/guests/` (the
//!   shipped plugins the examples use and the test guests), by a nested
//!   `cargo build --release --target wasm32-wasip2` into `<target>/guests`;
//! * the Python and JavaScript guests, with componentize-py and
//!   componentize-js, when those are installed where the Makefile puts them
//!   (nothing is downloaded here: `make plugins` installs them).
//!
//! All land in `<target>/guests/wasm32-wasip2/release`, which the library gets
//! as `WEIR_GUEST_DIR`. `make plugins` builds into the same directory with the
//! same command lines (so neither redoes the other's work) and then copies the
//! components to `<target>/wasm32-wasip2/release`, where the examples, the
//! README and weir-bench look for them.

use std::env;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const WASM_TARGET: &str = "wasm32-wasip2";
/// Directories whose every crate is a Rust guest the tests use (members of the
/// workspace by its `plugins/*` and `tests/guests/*` globs). `make plugins`
/// also builds `benches/guests/*`, which no test loads.
const RUST_GUEST_DIRS: [&str; 2] = ["plugins", "tests/guests"];
/// Python and JavaScript guests: component name, source directory, WIT
/// package and world it implements (as in the Makefile's PY_GUESTS and
/// JS_GUESTS).
type Guest = (&'static str, &'static str, &'static str, &'static str);
const PY_GUESTS: [Guest; 4] = [
    ("word_count_py", "plugins/word-count-py", "wit/operator@0.1.0", "operator"),
    ("conformance_py", "tests/conformance/python", "wit/operator@0.1.0", "operator"),
    ("changelog_count_py", "tests/conformance/changelog-python", "wit/operator@0.3.0", "changelog-operator"),
    ("sql_functions_py", "plugins/sql-functions-py", "wit/function@0.1.0", "scalar-function"),
];
const JS_GUESTS: [Guest; 4] = [
    ("word_count_js", "plugins/word-count-js", "wit/operator@0.1.0", "operator"),
    ("conformance_js", "tests/conformance/js", "wit/operator@0.1.0", "operator"),
    ("changelog_count_js", "tests/conformance/changelog-js", "wit/operator@0.3.0", "changelog-operator"),
    ("sql_functions_js", "plugins/sql-functions-js", "wit/function@0.1.0", "scalar-function"),
];

fn main() {
    let root = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap()).join("../..").canonicalize().expect("workspace root");
    let target = target_dir();
    let guest_target = target.join("guests");
    let out = guest_target.join(WASM_TARGET).join("release");

    // Rerun only when a guest's inputs change (cargo scans directories
    // recursively). Every path given must exist: a missing one makes cargo rerun
    // this script, and so rebuild every test binary, on every build.
    let rerun = |p: &Path| println!("cargo:rerun-if-changed={}", p.display());
    rerun(Path::new("build.rs"));
    let guests = rust_guests(&root);
    for (_, dir) in &guests {
        rerun(dir);
    }
    for p in ["sdk/rust", "wit", ".cargo/config.toml", "Cargo.toml", "Cargo.lock"] {
        rerun(&root.join(p));
    }
    // The Python and JavaScript sources file by file: componentize-py writes
    // `__pycache__` beside them (whatever PYTHONDONTWRITEBYTECODE says), which
    // would rerun this script after each Python build.
    for (_, dir, _, _) in PY_GUESTS.iter().chain(&JS_GUESTS).chain(&[("", "sdk/python/weir_sdk", "", ""), ("", "sdk/js/src", "", "")]) {
        for file in fs::read_dir(root.join(dir)).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_file()) {
            rerun(&file);
        }
    }
    println!("cargo:rerun-if-env-changed=COMPONENTIZE_PY");
    println!("cargo:rustc-env=WEIR_GUEST_DIR={}", out.display());

    ensure_wasm_target(&root);
    build_rust_guests(&root, &guest_target, &guests);

    let mut unbuilt = Vec::new();
    fs::create_dir_all(&out).unwrap();
    let py = componentize_py(&root, &target);
    let js = componentize_js(&root);
    let (py_bin, js_bin) = (target.join("pytools/bin/componentize-py"), root.join("sdk/js/node_modules/.bin/componentize-js"));
    for (python, guests, tool, name, bin) in [(true, &PY_GUESTS, py, "componentize-py", py_bin), (false, &JS_GUESTS, js, "componentize-js", js_bin)] {
        match tool {
            Some(tool) => {
                for &(guest, dir, wit, world) in guests {
                    build_component(&root, &tool, python, (guest, dir, wit, world), &out);
                }
            }
            None => {
                let names: Vec<&str> = guests.iter().map(|(g, _, _, _)| *g).collect();
                println!(
                    "cargo:warning={name} is not installed ({}): the guests {} are not built and the tests that load them fail; `make plugins` installs it and builds them",
                    bin.display(),
                    names.join(", ")
                );
                unbuilt.extend(names.iter().map(|g| format!("{g}:{name}")));
            }
        }
    }
    println!("cargo:rustc-env=WEIR_UNBUILT_GUESTS={}", unbuilt.join(" "));
}

/// The outer build's target directory: `CARGO_TARGET_DIR` when it is absolute
/// (that is also what the Makefile uses), else the directory above `OUT_DIR`,
/// whose layout is `<target>/[<triple>/]<profile>/build/<package>-<hash>/out`.
/// Cargo's `CACHEDIR.TAG` is not relied on: cargo writes it only when it
/// creates the directory itself, and CI creates `target/pytools` first.
fn target_dir() -> PathBuf {
    if let Some(dir) = env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).filter(|d| d.is_absolute()) {
        return dir;
    }
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    let above_profile = out_dir
        .ancestors()
        .nth(4)
        .unwrap_or_else(|| panic!("OUT_DIR {} is not <target>/<profile>/build/<package>/out", out_dir.display()));
    // With an explicit --target the profile directory sits in one named after the triple.
    let triple = env::var_os("TARGET");
    match (above_profile.file_name(), above_profile.parent()) {
        (Some(name), Some(parent)) if Some(name) == triple.as_deref() => parent.to_path_buf(),
        _ => above_profile.to_path_buf(),
    }
}

/// (package name, directory) of every crate in RUST_GUEST_DIRS, sorted.
fn rust_guests(root: &Path) -> Vec<(String, PathBuf)> {
    let mut guests = Vec::new();
    for parent in RUST_GUEST_DIRS {
        for entry in fs::read_dir(root.join(parent)).unwrap() {
            let dir = entry.unwrap().path();
            let Ok(manifest) = fs::read_to_string(dir.join("Cargo.toml")) else { continue };
            guests.push((package_name(&manifest).unwrap_or_else(|| panic!("no package name in {}/Cargo.toml", dir.display())), dir));
        }
    }
    guests.sort();
    guests
}

/// `name = "..."` of a manifest's `[package]` table.
fn package_name(manifest: &str) -> Option<String> {
    let package = manifest.split("\n[").find(|t| t.trim_start_matches('[').starts_with("package]"))?;
    package.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == "name").then(|| v.trim().trim_matches('"').to_string())
    })
}

/// Installs the wasm32-wasip2 standard library with rustup when the compiler's
/// sysroot lacks it (`rustup target add` is idempotent).
fn ensure_wasm_target(root: &Path) {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(&rustc).args(["--print", "sysroot"]).output().expect("rustc --print sysroot");
    assert!(sysroot.status.success(), "rustc --print sysroot failed");
    let lib = PathBuf::from(String::from_utf8(sysroot.stdout).unwrap().trim()).join("lib/rustlib").join(WASM_TARGET);
    if lib.is_dir() {
        return;
    }
    // Under rustup, RUSTUP_TOOLCHAIN names the toolchain this build uses.
    match Command::new("rustup").args(["target", "add", WASM_TARGET]).current_dir(root).stdout(Stdio::from(io::stderr())).status() {
        Ok(s) if s.success() && lib.is_dir() => {}
        Ok(_) => panic!("`rustup target add {WASM_TARGET}` did not install {}", lib.display()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => panic!(
            "the {WASM_TARGET} target is not installed ({} is missing) and rustup is not on PATH to add it: \
             install the {WASM_TARGET} standard library for this Rust toolchain (with rustup: `rustup target add {WASM_TARGET}`)",
            lib.display()
        ),
        Err(e) => panic!("cannot run rustup: {e}"),
    }
}

/// `cargo build --release --target wasm32-wasip2 -p <guests>` in its own
/// target directory: the outer cargo holds the lock of its target (and build)
/// directory until this script ends, so a nested build there would wait forever.
fn build_rust_guests(root: &Path, guest_target: &Path, guests: &[(String, PathBuf)]) {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "--release", "--locked", "--target", WASM_TARGET, "--target-dir"])
        .arg(guest_target)
        .args(["-j", &env::var("NUM_JOBS").unwrap_or_else(|_| "1".into())]);
    for (name, _) in guests {
        cmd.args(["-p", name]);
    }
    // Cargo gives this script the environment of a build script for the host,
    // and the nested cargo would read it as configuration:
    // * CARGO_ENCODED_RUSTFLAGS (the host's flags, usually empty) and RUSTFLAGS
    //   override `[target.wasm32-wasip2] rustflags` of .cargo/config.toml, which
    //   the nested cargo reads by itself (it runs in the workspace root): the
    //   guests would lose simd128 and codegen-units=1 and differ from `make
    //   plugins`' build of the same guests, so each would rebuild them;
    // * CARGO_TARGET_DIR, CARGO_BUILD_TARGET_DIR and CARGO_BUILD_BUILD_DIR name
    //   the outer, locked, directories (the build dir is set to ours below);
    //   CARGO_BUILD_TARGET the host;
    // * CARGO_MAKEFLAGS, MAKEFLAGS and MFLAGS carry the jobserver of the outer
    //   cargo or make (the nested cargo would join it, or fail to when its
    //   descriptors are gone) and make's own flags: `-j NUM_JOBS` instead;
    // * RUSTC, RUSTDOC, RUSTC_WRAPPER, RUSTC_WORKSPACE_WRAPPER and RUSTC_LINKER
    //   are the outer's tools: `cargo clippy`, `cargo fix`, cargo-llvm-cov or
    //   miri put host-only wrappers there; the nested cargo finds the compiler
    //   and any wrapper of the user's config.toml itself, as `make plugins` does;
    // * TARGET, HOST, PROFILE, OPT_LEVEL, DEBUG, NUM_JOBS, OUT_DIR and the
    //   CARGO_CFG_*, CARGO_FEATURE_*, CARGO_PKG_*, CARGO_MANIFEST_* and DEP_*
    //   families describe this package built for the host. Cargo sets them
    //   again for the nested build scripts, but only the names that apply, so a
    //   leftover CARGO_CFG_UNIX or CARGO_CFG_TARGET_ENV=gnu would tell a wasm32
    //   build script it builds for Unix, and OUT_DIR would reach crates without
    //   a build script.
    // Kept: CARGO (the same cargo), RUSTUP_TOOLCHAIN (the same toolchain),
    // CARGO_HOME and the user's other CARGO_* configuration.
    const CLEARED: [&str; 22] = [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "MFLAGS",
        "RUSTC",
        "RUSTDOC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_LINKER",
        "TARGET",
        "HOST",
        "PROFILE",
        "OPT_LEVEL",
        "DEBUG",
        "NUM_JOBS",
        "OUT_DIR",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_CRATE_NAME",
    ];
    const CLEARED_PREFIXES: [&str; 6] = ["CARGO_CFG_", "CARGO_FEATURE_", "CARGO_PKG_", "CARGO_MANIFEST_", "DEP_", "__CARGO"];
    for (key, _) in env::vars_os() {
        let k = key.to_string_lossy();
        if CLEARED.contains(&&*k) || CLEARED_PREFIXES.iter().any(|p| k.starts_with(p)) {
            cmd.env_remove(&key);
        }
    }
    cmd.env("CARGO_BUILD_BUILD_DIR", guest_target);
    // Our stdout is read by cargo as build script directives; cargo shows our
    // stderr when this script fails (and live with `-vv`).
    cmd.stdout(Stdio::from(io::stderr()));
    let status = cmd.status().expect("run the nested cargo");
    assert!(status.success(), "building the Rust guest components failed ({status}): {cmd:?}");
}

/// componentize-py: `COMPONENTIZE_PY` (a shell command, as for the Makefile) or
/// `<target>/pytools/bin/componentize-py`, where `make plugins` installs it.
fn componentize_py(root: &Path, target: &Path) -> Option<Tool> {
    if let Some(cmd) = env::var_os("COMPONENTIZE_PY") {
        let mut script = OsString::from("exec ");
        script.push(cmd);
        script.push(" \"$@\"");
        return Some(Tool { program: "sh".into(), args: vec!["-c".into(), script, "componentize-py".into()], env: vec![], root: root.into() });
    }
    let pytools = target.join("pytools");
    let bin = pytools.join("bin/componentize-py");
    if bin.is_file() {
        println!("cargo:rerun-if-changed={}", bin.display());
        return Some(Tool { program: bin.into(), args: vec![], env: vec![("PYTHONPATH".into(), pytools.into())], root: root.into() });
    }
    // Watch the directory pip installs it into (created empty if need be), so
    // that installing it reruns this script.
    fs::create_dir_all(&pytools).unwrap();
    println!("cargo:rerun-if-changed={}", pytools.display());
    None
}

/// componentize-js from `sdk/js/node_modules` (`npm ci` in sdk/js).
fn componentize_js(root: &Path) -> Option<Tool> {
    let bin = root.join("sdk/js/node_modules/.bin/componentize-js");
    if bin.is_file() {
        println!("cargo:rerun-if-changed={}", bin.display());
        return Some(Tool { program: bin.into(), args: vec![], env: vec![], root: root.into() });
    }
    // Without node_modules, sdk/js is a few files; `npm ci` changes it.
    println!("cargo:rerun-if-changed={}", root.join("sdk/js").display());
    None
}

struct Tool {
    program: OsString,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    root: PathBuf,
}

impl Tool {
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args).envs(self.env.iter().map(|(k, v)| (k, v))).current_dir(&self.root).stdout(Stdio::from(io::stderr()));
        cmd
    }
}

/// `<out>/<guest>.wasm` from `dir` with the Makefile's command line, unless it
/// is newer than every source of `dir`, of the SDK and of the WIT (the
/// Makefile's rule, so that either reuses the other's build).
fn build_component(root: &Path, tool: &Tool, python: bool, (guest, dir, wit, world): Guest, out: &Path) {
    let (ext, sdk) = if python { ("py", "sdk/python/weir_sdk") } else { ("js", "sdk/js/src") };
    let target = out.join(format!("{guest}.wasm"));
    let mut inputs = files(&root.join(dir), ext);
    inputs.extend(files(&root.join(sdk), ext));
    // Every WIT package: a world of 0.3.0 includes 0.1.0's interfaces.
    for package in fs::read_dir(root.join("wit")).unwrap().map(|e| e.unwrap().path()) {
        inputs.extend(files(&package, "wit"));
    }
    if let Ok(built) = fs::metadata(&target).and_then(|m| m.modified())
        && inputs.iter().all(|i| fs::metadata(i).and_then(|m| m.modified()).is_ok_and(|t| t <= built))
    {
        return;
    }
    // Written aside and renamed, so that an interrupted build leaves no
    // component that looks up to date (a dot file: not one of `*.wasm`).
    let partial = out.join(format!(".{guest}.{}.partial.wasm", std::process::id()));
    let mut cmd = tool.command();
    if python {
        cmd.args(["-d", wit, "-w", world, "componentize", "-p", dir, "-p", "sdk/python", "app", "-o"]);
    } else {
        cmd.arg(format!("{dir}/app.js")).args(["--wit", wit, "--world-name", world, "-d", "http", "fetch-event", "-o"]);
    }
    cmd.arg(&partial);
    let status = cmd.status().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if !status.success() {
        let _ = fs::remove_file(&partial);
        panic!("building {guest} failed ({status}): {cmd:?}");
    }
    fs::rename(&partial, &target).unwrap();
}

/// The files `*.<ext>` directly in `dir`.
fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
    entries.map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == ext)).collect()
}
