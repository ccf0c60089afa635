//! Hot-swap benchmark (`weir-bench --swap`): an unbounded generator, keyed by
//! key, into the test counter (`counter-v1`, parallelism 2) and a sink, as
//! fast as the machine goes, checkpointing every second. Every few seconds the
//! counter is swapped (v1 -> v2 -> v1 ...) while it runs. Reported per swap:
//! the time from the request to every task running the new version, to the
//! first record of the new version at the sink, and the throughput in the
//! second around the swap against the steady throughput before it.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use weir_checkpoint::{NodeInfo, Storage};
use weir_connectors::{GeneratorSource, GeneratorSpec};
use weir_engine::*;
use weir_wasm::{Limits, OperatorSettings, PluginLoader, WasmOperatorFactory};

/// Throughput buckets.
const BUCKET: Duration = Duration::from_millis(100);
const BUCKETS: usize = 1200;

struct Watch {
    base: Instant,
    buckets: Vec<AtomicU64>,
    /// The version the sink looks for, and when (ns after `base`) it first saw it.
    wanted: AtomicU64,
    first: AtomicU64,
}

struct WatchSink(Arc<Watch>);

impl SinkFactory for WatchSink {
    fn create(&self, _: &TaskContext) -> Result<Box<dyn Sink>, SinkError> {
        Ok(Box::new(WatchSink(self.0.clone())))
    }
}

impl Sink for WatchSink {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        let w = &self.0;
        let now = w.base.elapsed();
        let i = ((now.as_nanos() / BUCKET.as_nanos()) as usize).min(BUCKETS - 1);
        w.buckets[i].fetch_add(batch.len() as u64, Ordering::Relaxed);
        let wanted = w.wanted.load(Ordering::Relaxed);
        if wanted != 0 && w.first.load(Ordering::Relaxed) == 0 {
            let tag = format!("\"v\":{wanted}}}");
            if (0..batch.len()).any(|r| batch.value(r).ends_with(tag.as_bytes())) {
                let _ = w.first.compare_exchange(0, now.as_nanos() as u64, Ordering::Relaxed, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}

fn factory(engine: &PluginLoader, path: &Path, version: &str) -> anyhow::Result<WasmOperatorFactory> {
    let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e} (build it: make plugins)", path.display()))?;
    Ok(WasmOperatorFactory {
        plugin: engine.load("counter", Some(version), &bytes)?,
        settings: OperatorSettings { limits: Limits { memory: 1 << 30, call_timeout: Duration::from_secs(60), ..Default::default() }, ..Default::default() },
    })
}

fn rate(w: &Watch, from: Duration, to: Duration) -> f64 {
    let (a, b) = ((from.as_nanos() / BUCKET.as_nanos()) as usize, (to.as_nanos() / BUCKET.as_nanos()) as usize);
    let n: u64 = w.buckets[a..b.min(BUCKETS)].iter().map(|c| c.load(Ordering::Relaxed)).sum();
    n as f64 / (to - from).as_secs_f64()
}

pub fn run(engine: &PluginLoader, v1: &Path, v2: &Path, swaps: usize) -> anyhow::Result<()> {
    let versions = [factory(engine, v1, "1")?, factory(engine, v2, "2")?];
    let tmp = tempfile::tempdir()?;
    let watch = Arc::new(Watch {
        base: Instant::now(),
        buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        wanted: AtomicU64::new(0),
        first: AtomicU64::new(0),
    });
    let mut df = Dataflow::new(EngineOptions { pipeline: "swap-bench".into(), ..Default::default() });
    let spec = GeneratorSpec { seed: 1, count: None, rate: None, keys: 10_000, start_ms: 1_700_000_000_000, deletes: 0.0 };
    let src = df.add_source("events", 1, Arc::new(GeneratorSource(Arc::new(spec))))?;
    let first = WasmOperatorFactory { plugin: versions[0].plugin.clone(), settings: versions[0].settings.clone() };
    let op = df.add_operator("count", 2, Arc::new(first), vec![Edge::key_by(src, KeySelector::RecordKey)], vec![])?;
    df.add_sink("sink", 2, Arc::new(WatchSink(watch.clone())), vec![Edge::forward(op)])?;
    let nodes = df
        .node_names()
        .into_iter()
        .map(|(n, k, p)| NodeInfo { name: n.into(), kind: k.name().into(), parallelism: p, plugin: None, plugin_sha256: None, state_shape: None })
        .collect();
    let storage = Arc::new(Storage::open(tmp.path().join("store").to_str().expect("utf-8"), "swap-bench", nodes, 3)?);
    df.set_checkpointing(CheckpointConfig {
        interval: Some(Duration::from_secs(1)),
        store: storage,
        staging_dir: tmp.path().join("staging"),
        first_epoch: 1,
    });
    let job = df.start()?;
    let control = job.control();
    println!("Hot swap under load: generator -> key_by -> counter (Wasm, parallelism 2, heap) -> sink, 1 s checkpoints");
    println!();
    println!("| swap | to every task switched | to first new-version output | steady M ev/s | M ev/s in the second around the swap | ratio |");
    println!("|---|---:|---:|---:|---:|---:|");
    let spacing = Duration::from_secs(4);
    std::thread::sleep(spacing);
    for i in 0..swaps {
        let to = (i + 1) % 2;
        let next = WasmOperatorFactory { plugin: versions[to].plugin.clone(), settings: versions[to].settings.clone() };
        watch.first.store(0, Ordering::Relaxed);
        watch.wanted.store(to as u64 + 1, Ordering::Relaxed);
        let at = watch.base.elapsed();
        let ticket = control.swap("count", Arc::new(next), Duration::from_secs(1))?;
        let state = ticket.wait(Duration::from_secs(30));
        anyhow::ensure!(matches!(state, SwapState::Switched { .. }), "swap {i}: {state:?}");
        let switched = ticket.switched_at().expect("switched").duration_since(ticket.requested);
        std::thread::sleep(spacing);
        let first = Duration::from_nanos(watch.first.load(Ordering::Relaxed)).saturating_sub(at);
        let steady = rate(&watch, at.saturating_sub(Duration::from_millis(3000)), at.saturating_sub(Duration::from_millis(500)));
        let around = rate(&watch, at.saturating_sub(Duration::from_millis(500)), at + Duration::from_millis(500));
        println!(
            "| v{} -> v{} | {:.1} ms | {:.1} ms | {:.2} | {:.2} | {:.2} |",
            2 - to,
            to + 1,
            switched.as_secs_f64() * 1e3,
            first.as_secs_f64() * 1e3,
            steady / 1e6,
            around / 1e6,
            around / steady
        );
    }
    control.cancel();
    let _ = job.wait();
    // What a switch costs the task itself: a new instance of the compiled
    // component, opened (declares its state).
    let ctx = TaskContext::new("swap-bench", "count", 0, 2);
    let n = 200;
    let t0 = Instant::now();
    for _ in 0..n {
        drop(versions[1].plugin.instantiate(&ctx, &versions[1].settings)?);
    }
    println!();
    println!("Instantiating and opening the compiled v2 for one task: {:.0} µs (mean of {n})", t0.elapsed().as_secs_f64() * 1e6 / n as f64);
    Ok(())
}
