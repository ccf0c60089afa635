//! `weir savepoint SPEC NAME`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::run::{prepare, CacheArgs};

#[derive(clap::Args)]
pub struct SavepointArgs {
    /// The pipeline spec (YAML); its `state.dir` holds the savepoints.
    spec: PathBuf,
    /// The savepoint's name (letters, digits, `-`, `_`).
    name: String,
    /// How long to wait for a running job's savepoint.
    #[arg(long, default_value = "60s")]
    timeout: String,
    #[command(flatten)]
    cache: CacheArgs,
}

pub fn savepoint(args: SavepointArgs) -> anyhow::Result<()> {
    if args.name.is_empty() || !args.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        bail!("savepoint name '{}': use letters, digits, '-' and '_'", args.name);
    }
    let timeout = weir_spec::parse_duration(&args.timeout).map_err(|e| anyhow::anyhow!("--timeout: {e}"))?;
    let (spec, planned) = prepare(&args.spec, &args.cache)?;
    let storage = weir_checkpoint::open_storage(&spec, &planned)?
        .with_context(|| format!("pipeline '{}' has no state.dir, so it has no checkpoints to take a savepoint of", spec.name))?;
    let lock = std::fs::File::options().create(true).truncate(false).write(true).open(weir_checkpoint::lock_path(&spec));
    let running = match &lock {
        Ok(f) => f.try_lock().is_err(),
        Err(_) => false,
    };
    if !running {
        drop(lock);
        let epoch = storage.savepoint_from_latest(&args.name)?;
        println!("savepoint '{}' of pipeline '{}' taken from checkpoint {epoch} (the pipeline is not running)", args.name, spec.name);
        return Ok(());
    }
    let before = storage.savepoints()?.contains(&args.name);
    if before {
        bail!("savepoint '{}' already exists in {}", args.name, storage.location());
    }
    let dir = weir_checkpoint::savepoint_requests_dir(&spec);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(&args.name), b"")?;
    let start = Instant::now();
    while start.elapsed() < timeout {
        if storage.savepoints()?.contains(&args.name) {
            println!("savepoint '{}' of running pipeline '{}' taken in {:.2?}", args.name, spec.name, start.elapsed());
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("the running pipeline '{}' did not take savepoint '{}' within {timeout:?}", spec.name, args.name)
}
