//! `weir run` and `weir validate`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use weir_engine::{JobMetrics, NodeSnapshot};
use weir_wasm::{LoaderConfig, PluginFiles, PluginLoader, Plugins};

#[derive(clap::Args)]
pub struct CacheArgs {
    /// Where compiled plugins are cached [default: $WEIR_CACHE_DIR, else
    /// $XDG_CACHE_HOME/weir, else ~/.cache/weir].
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Compile plugins every time.
    #[arg(long)]
    no_cache: bool,
}

#[derive(clap::Args)]
pub struct RunArgs {
    /// The pipeline spec (YAML).
    spec: PathBuf,
    #[command(flatten)]
    pub(crate) opts: RunOptions,
}

/// How a job runs, whatever its spec comes from (`weir run`, `weir sql`).
#[derive(clap::Args)]
pub struct RunOptions {
    /// Interval of progress lines on stderr (e.g. 1s, 500ms); 0 turns them off.
    #[arg(long, default_value = "1s")]
    progress: String,
    /// Start afresh: ignore and delete the pipeline's checkpoints.
    #[arg(long, conflicts_with = "from_savepoint")]
    fresh: bool,
    /// Start from this savepoint (see `weir savepoint`); operators may have
    /// another parallelism than when it was taken.
    #[arg(long)]
    from_savepoint: Option<String>,
    #[command(flatten)]
    cache: CacheArgs,
}

impl RunOptions {
    pub(crate) fn cache(&self) -> &CacheArgs {
        &self.cache
    }
}

pub(crate) fn cache_dir(args: &CacheArgs) -> Option<PathBuf> {
    if args.no_cache {
        return None;
    }
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    args.cache_dir
        .clone()
        .or_else(|| env("WEIR_CACHE_DIR"))
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("weir")))
        .or_else(|| env("HOME").map(|h| h.join(".cache").join("weir")))
}

pub(crate) fn prepare(spec_path: &Path, cache: &CacheArgs) -> anyhow::Result<(weir_spec::PipelineSpec, weir_spec::Planned)> {
    let types = crate::types::registry();
    let spec = weir_spec::load_file(spec_path, &types)?;
    plan(spec, &types, cache)
}

/// Plan a checked spec, with plugins from files.
pub(crate) fn plan(
    spec: weir_spec::PipelineSpec,
    types: &weir_spec::Registry,
    cache: &CacheArgs,
) -> anyhow::Result<(weir_spec::PipelineSpec, weir_spec::Planned)> {
    let loader = PluginLoader::new(LoaderConfig { cache_dir: cache_dir(cache) })?;
    let mut extensions = weir_spec::Extensions::default();
    let plugins: Arc<dyn weir_wasm::PluginSource> = Arc::new(PluginFiles::new(loader));
    extensions.insert(weir_sql::udf::Functions(Arc::new(crate::functions::WasmFunctions::new(plugins.clone(), None))));
    extensions.insert(Plugins(plugins));
    let planned = weir_spec::plan(&spec, types, extensions)?;
    Ok((spec, planned))
}

pub fn validate(spec_path: &Path, cache: &CacheArgs) -> anyhow::Result<()> {
    let (spec, planned) = prepare(spec_path, cache)?;
    println!(
        "{}: pipeline '{}' is valid: {} sources, {} operators, {} sinks",
        spec_path.display(),
        spec.name,
        spec.sources.len(),
        spec.operators.len(),
        spec.sinks.len()
    );
    for op in planned.operators() {
        if let Some(l) = &op.logic {
            println!("  operator '{}': plugin {} (sha256 {})", op.name, l.label, l.digest);
        }
    }
    Ok(())
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let (spec, planned) = prepare(&args.spec, args.opts.cache())?;
    run_planned(spec, planned, &args.opts)
}

/// Run a planned spec to its end (or until it fails), with progress lines.
pub(crate) fn run_planned(spec: weir_spec::PipelineSpec, planned: weir_spec::Planned, args: &RunOptions) -> anyhow::Result<()> {
    let interval = match args.progress.as_str() {
        "0" => None,
        p => Some(weir_spec::parse_duration(p).map_err(|e| anyhow::anyhow!("--progress: {e}"))?),
    };
    for op in planned.operators() {
        if let Some(l) = &op.logic {
            tracing::info!("operator '{}' runs plugin {}", op.name, l.label);
        }
    }
    let opts = weir_checkpoint::LaunchOptions { fresh: args.fresh, from_savepoint: args.from_savepoint.clone() };
    let launch = weir_checkpoint::launch(&spec, planned, &opts)?;
    match (&launch.resumed, &launch.storage) {
        (Some(r), Some(s)) => {
            tracing::info!("resuming from {} ({} bytes of state) in {}", r.name, r.bytes, s.location())
        }
        (None, Some(s)) => tracing::info!("starting afresh; checkpoints go to {}", s.location()),
        _ => {}
    }
    let job = launch.planned.dataflow.start().with_context(|| format!("pipeline '{}' failed to start", spec.name))?;
    let done = Arc::new(AtomicBool::new(false));
    // `weir savepoint` from another process drops its requests here.
    let requests = launch.storage.as_ref().map(|_| {
        let (control, done, dir) = (job.control(), done.clone(), weir_checkpoint::savepoint_requests_dir(&spec));
        std::thread::spawn(move || serve_savepoint_requests(&control, &dir, &done))
    });
    let reporter = interval.map(|every| {
        let (metrics, done) = (job.metrics(), done.clone());
        std::thread::spawn(move || report_progress(metrics, every, &done))
    });
    let result = job.wait();
    done.store(true, Ordering::Relaxed);
    for h in reporter.into_iter().chain(requests) {
        let _ = h.join();
    }
    let report = result.with_context(|| format!("pipeline '{}' failed", spec.name))?;
    let mut summary = format!("pipeline '{}' finished in {:.2?}:", spec.name, report.elapsed);
    for n in &report.nodes {
        let _ = write!(summary, " {} in {} out {}", n.node, n.records_in, n.records_out);
        if n.dead_letters > 0 {
            let _ = write!(summary, " dead letters {}", n.dead_letters);
        }
        summary.push(';');
    }
    eprintln!("{}", summary.trim_end_matches(';'));
    Ok(())
}

/// Take the savepoints asked for by files dropped in `dir` (each file is
/// removed; its name is the savepoint's), until `done`.
fn serve_savepoint_requests(control: &weir_engine::JobControl, dir: &Path, done: &AtomicBool) {
    let _ = std::fs::create_dir_all(dir);
    while !done.load(Ordering::Relaxed) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if std::fs::remove_file(e.path()).is_err() || name.starts_with('.') {
                continue;
            }
            if let Err(err) = control.savepoint(&name, Duration::from_secs(600)) {
                tracing::warn!("savepoint '{name}' was not taken: {err}");
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn rate(n: u64, secs: f64) -> String {
    let r = n as f64 / secs.max(1e-9);
    match r {
        r if r >= 1e6 => format!("{:.2}M/s", r / 1e6),
        r if r >= 1e3 => format!("{:.1}k/s", r / 1e3),
        r => format!("{r:.0}/s"),
    }
}

fn report_progress(metrics: JobMetrics, every: Duration, done: &AtomicBool) {
    let start = Instant::now();
    let mut last: Vec<NodeSnapshot> = metrics.snapshot();
    let mut last_at = Instant::now();
    loop {
        // Sleep in small steps so a finished job does not wait a whole interval.
        let wake = last_at + every;
        while Instant::now() < wake {
            if done.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20).min(wake.saturating_duration_since(Instant::now())));
        }
        let now = metrics.snapshot();
        let secs = last_at.elapsed().as_secs_f64();
        let mut line = format!("[{:>7.1}s]", start.elapsed().as_secs_f64());
        for (n, l) in now.iter().zip(&last) {
            let _ = write!(
                line,
                " {}: in {} out {} |",
                n.node,
                rate(n.records_in - l.records_in, secs),
                rate(n.records_out - l.records_out, secs)
            );
        }
        eprintln!("{}", line.trim_end_matches(" |"));
        last = now;
        last_at = Instant::now();
    }
}
