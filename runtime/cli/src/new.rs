//! `weir new`: scaffold a Rust plugin that builds as is.

use std::path::PathBuf;

use anyhow::{bail, Context as _};

#[derive(clap::Args)]
pub struct NewArgs {
    /// The plugin's name; also the directory created.
    name: String,
    /// Path of the Weir Rust SDK [default: $WEIR_SDK_PATH, else the SDK of the
    /// source tree this `weir` was built from].
    #[arg(long, env = "WEIR_SDK_PATH")]
    sdk_path: Option<PathBuf>,
}

const CARGO_TOML: &str = include_str!("../template/Cargo.toml.tmpl");
const LIB_RS: &str = include_str!("../template/lib.rs.tmpl");
const CARGO_CONFIG: &str = include_str!("../template/cargo-config.toml.tmpl");

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
    let sdk = match args.sdk_path {
        Some(p) => p,
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../sdk/rust")),
    };
    let sdk = sdk
        .canonicalize()
        .with_context(|| format!("cannot find the Weir Rust SDK at {} (pass --sdk-path)", sdk.display()))?;
    if !sdk.join("Cargo.toml").exists() {
        bail!("{} is not the Weir Rust SDK (no Cargo.toml)", sdk.display());
    }
    let fill = |t: &str| t.replace("{{name}}", &name).replace("{{sdk}}", &sdk.display().to_string());
    std::fs::create_dir_all(dir.join("src")).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(dir.join("Cargo.toml"), fill(CARGO_TOML))?;
    std::fs::write(dir.join("src/lib.rs"), fill(LIB_RS))?;
    std::fs::create_dir_all(dir.join(".cargo"))?;
    std::fs::write(dir.join(".cargo/config.toml"), CARGO_CONFIG)?;
    std::fs::write(dir.join(".gitignore"), "/target\n")?;
    eprintln!("created plugin '{name}' in {}; build it with `weir build {}`", dir.display(), dir.display());
    Ok(())
}
