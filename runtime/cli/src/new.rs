//! `weir new`: scaffold a plugin (Rust, Python or JavaScript) that builds as is.

use std::path::PathBuf;

use anyhow::{bail, Context as _};

#[derive(clap::Args)]
pub struct NewArgs {
    /// The plugin's name; also the directory created.
    name: String,
    /// The plugin's language.
    #[arg(long, value_enum, default_value_t = Lang::Rust)]
    lang: Lang,
    /// What it is: a stream operator, or scalar SQL functions (`CREATE
    /// FUNCTION name AS 'plugin.wasm'`).
    #[arg(long, value_enum, default_value_t = Kind::Operator)]
    kind: Kind,
    /// Path of the Weir SDK for the language [default: $WEIR_SDK_PATH, else
    /// sdk/rust, sdk/python or sdk/js of the source tree this `weir` was built from].
    #[arg(long, env = "WEIR_SDK_PATH")]
    sdk_path: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, clap::ValueEnum)]
pub enum Kind {
    Operator,
    Function,
}

#[derive(Clone, Copy, PartialEq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
}

const CARGO_TOML: &str = include_str!("../template/Cargo.toml.tmpl");
const LIB_RS: &str = include_str!("../template/lib.rs.tmpl");
const CARGO_CONFIG: &str = include_str!("../template/cargo-config.toml.tmpl");
const APP_PY: &str = include_str!("templates/app.py.tmpl");
const PYPROJECT_TOML: &str = include_str!("templates/pyproject.toml.tmpl");
const APP_JS: &str = include_str!("templates/app.js.tmpl");
const PACKAGE_JSON: &str = include_str!("templates/package.json.tmpl");
const LIB_FUNCTION_RS: &str = include_str!("../template/lib-function.rs.tmpl");
const APP_FUNCTION_PY: &str = include_str!("templates/app-function.py.tmpl");
const PYPROJECT_FUNCTION_TOML: &str = include_str!("templates/pyproject-function.toml.tmpl");
const APP_FUNCTION_JS: &str = include_str!("templates/app-function.js.tmpl");
const PACKAGE_FUNCTION_JSON: &str = include_str!("templates/package-function.json.tmpl");

pub fn new(args: NewArgs) -> anyhow::Result<()> {
    let dir = PathBuf::from(&args.name);
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if name.is_empty()
        || !name.starts_with(|c: char| c.is_ascii_alphabetic())
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!("'{name}' is not a valid plugin name: start with a letter; use letters, digits, '-' and '_'");
    }
    if dir.exists() {
        bail!("{} already exists", dir.display());
    }
    let (sdk_dir, what, marker) = match args.lang {
        Lang::Rust => ("rust", "Rust", "Cargo.toml"),
        Lang::Python => ("python", "Python", "weir_sdk/__init__.py"),
        Lang::Js => ("js", "JavaScript", "src/index.js"),
    };
    let sdk = match args.sdk_path {
        Some(p) => p,
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../sdk")).join(sdk_dir),
    };
    let sdk = sdk
        .canonicalize()
        .with_context(|| format!("cannot find the Weir {what} SDK at {} (pass --sdk-path)", sdk.display()))?;
    if !sdk.join(marker).exists() {
        bail!("{} is not the Weir {what} SDK (no {marker})", sdk.display());
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let fill = |t: &str, sdk: &str| t.replace("{{name}}", &name).replace("{{sdk}}", sdk);
    let function = args.kind == Kind::Function;
    let pick = |operator: &'static str, functions: &'static str| if function { functions } else { operator };
    match args.lang {
        Lang::Rust => {
            let sdk = sdk.display().to_string();
            std::fs::create_dir_all(dir.join("src"))?;
            std::fs::write(dir.join("Cargo.toml"), fill(CARGO_TOML, &sdk))?;
            std::fs::write(dir.join("src/lib.rs"), fill(pick(LIB_RS, LIB_FUNCTION_RS), &sdk))?;
            std::fs::create_dir_all(dir.join(".cargo"))?;
            std::fs::write(dir.join(".cargo/config.toml"), CARGO_CONFIG)?;
        }
        Lang::Python => {
            // TOML basic strings escape backslashes and quotes like JSON.
            let sdk = serde_json::to_string(&sdk.display().to_string())?;
            std::fs::write(dir.join("pyproject.toml"), fill(pick(PYPROJECT_TOML, PYPROJECT_FUNCTION_TOML), sdk.trim_matches('"')))?;
            std::fs::write(dir.join("app.py"), fill(pick(APP_PY, APP_FUNCTION_PY), ""))?;
        }
        Lang::Js => {
            // componentize-js resolves imports within the plugin's directory
            // only: the plugin gets a copy of the SDK's modules.
            std::fs::create_dir_all(dir.join("weir-sdk"))?;
            for entry in std::fs::read_dir(sdk.join("src"))? {
                let path = entry?.path();
                if path.extension().is_some_and(|e| e == "js") {
                    std::fs::copy(&path, dir.join("weir-sdk").join(path.file_name().unwrap()))?;
                }
            }
            std::fs::write(dir.join("package.json"), fill(pick(PACKAGE_JSON, PACKAGE_FUNCTION_JSON), ""))?;
            let app = if function { fill(APP_FUNCTION_JS, "./weir-sdk/functions.js") } else { fill(APP_JS, "./weir-sdk/index.js") };
            std::fs::write(dir.join("app.js"), app)?;
        }
    }
    std::fs::write(dir.join(".gitignore"), "/target\n")?;
    eprintln!("created plugin '{name}' in {}; build it with `weir build {}`", dir.display(), dir.display());
    if function {
        eprintln!("then use its functions in SQL: CREATE FUNCTION slug AS '<the .wasm file weir build prints>';");
    }
    Ok(())
}

