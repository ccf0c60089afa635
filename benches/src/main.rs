//! `weir-bench`: per-record cost of operators as native Rust and as Wasm
//! components, in the same engine, in one run, on pre-generated input.
//!
//! Each case runs `source -> operator -> null sink`, chained into one thread, so
//! what differs between a native case and its Wasm twin is the operator alone.
//! Reports events/s of wall time, events per CPU-second (getrusage), ns per
//! event, and the Wasm/native throughput ratio.

mod latency;
mod native;
mod nexmark;
mod state;
mod swap;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use weir_engine::*;
use weir_wasm::{Limits, LoaderConfig, OperatorSettings, PluginLoader, WasmOperatorFactory};

#[derive(Parser)]
struct Args {
    /// Records per case.
    #[arg(long, default_value_t = 2_000_000)]
    records: usize,
    /// Distinct keys.
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
    /// Records per batch (and per Wasm call).
    #[arg(long, default_value_t = 1024)]
    batch: usize,
    /// Runs per case; the best is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// The bench-ops component.
    #[arg(long, default_value = "target/wasm32-wasip2/release/bench_ops.wasm")]
    plugin: PathBuf,
    /// Run only these cases (identity, map, filter, count, count-reducing).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Skip the native twins.
    #[arg(long)]
    wasm_only: bool,
    /// Also run the Wasm map with one record per call (the cost of not batching).
    #[arg(long)]
    per_record: bool,
    /// Measure end-to-end latency at these input rates (events/s), e.g. 100000,1000000.
    #[arg(long, value_delimiter = ',')]
    latency: Vec<f64>,
    /// Batch timeout of the latency cases, in microseconds (default: the engine's).
    #[arg(long)]
    batch_timeout_us: Option<u64>,
    /// Seconds of input per latency case.
    #[arg(long, default_value_t = 3.0)]
    latency_seconds: f64,
    /// Run the state and checkpoint benchmarks instead (keyed count with
    /// `--keys` distinct keys on heap vs RocksDB, checkpoints, recovery).
    #[arg(long)]
    state: bool,
    /// Run Nexmark instead (see benches/README.md): the queries listed.
    #[arg(long, value_delimiter = ',', num_args = 0.., default_missing_value = "q0,q1,q2,q3,q5,q7,q8")]
    nexmark: Option<Vec<String>>,
    /// Nexmark: events generated.
    #[arg(long, default_value_t = 2_000_000)]
    events: usize,
    /// Nexmark: events of the prefix whose outputs are checked against the reference.
    #[arg(long, default_value_t = 200_000)]
    check: usize,
    /// Nexmark: parallelism of the query operator.
    #[arg(long, default_value_t = 2)]
    parallelism: u32,
    /// Nexmark: also write the events as JSON lines here (for benches/flink).
    #[arg(long)]
    nexmark_out: Option<PathBuf>,
    /// Run the hot-swap benchmark instead: swap a counting operator between
    /// two versions while it runs (see benches/README.md).
    #[arg(long)]
    swap: bool,
    /// The two versions the swap benchmark alternates between.
    #[arg(long, default_value = "target/wasm32-wasip2/release/counter_v1.wasm")]
    swap_v1: PathBuf,
    #[arg(long, default_value = "target/wasm32-wasip2/release/counter_v2.wasm")]
    swap_v2: PathBuf,
    /// Swaps in the swap benchmark.
    #[arg(long, default_value_t = 4)]
    swaps: usize,
    /// Keys of the large RocksDB state in the checkpoint benchmark (1 KiB each).
    #[arg(long, default_value_t = 1_000_000)]
    big_state_keys: u64,
    /// Which parts of `--state` to run (all by default): `heap`, `rocksdb`,
    /// `rocksdb-small` (the keyed count on each), `checkpoints`, `big`.
    #[arg(long, value_delimiter = ',', default_value = "heap,rocksdb,rocksdb-small,checkpoints,big")]
    state_cases: Vec<String>,
}

/// Replays pre-generated batches.
pub(crate) struct Replay(pub Arc<Vec<RecordBatch>>);

impl SourceFactory for Replay {
    fn create(&self, _: &TaskContext) -> Result<Box<dyn Source>, SourceError> {
        Ok(Box::new(ReplayIter(self.0.clone(), 0)))
    }
}

struct ReplayIter(Arc<Vec<RecordBatch>>, usize);

impl Source for ReplayIter {
    fn poll(&mut self, out: &mut RecordBatch, _max: usize) -> Result<SourcePoll, SourceError> {
        match self.0.get(self.1) {
            Some(b) => {
                out.append(b);
                self.1 += 1;
                Ok(SourcePoll::Ready)
            }
            None => Ok(SourcePoll::Exhausted),
        }
    }
    /// The next batch's index: replayable, so checkpoints can include it.
    fn position(&self) -> Option<Vec<u8>> {
        Some((self.1 as u64).to_le_bytes().to_vec())
    }
}

/// Counts what reaches it.
pub(crate) struct Null(pub Arc<AtomicU64>);

impl SinkFactory for Null {
    fn create(&self, _: &TaskContext) -> Result<Box<dyn Sink>, SinkError> {
        Ok(Box::new(Null(self.0.clone())))
    }
}

impl Sink for Null {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        self.0.fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

pub(crate) fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

pub(crate) fn generate(records: usize, keys: u64, batch: usize) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    let mut b = RecordBatch::with_capacity(batch);
    for n in 0..records as u64 {
        let r = splitmix64(n);
        let key = format!("key-{}", r % keys);
        let value = format!("event payload of record number {n}");
        b.push(key.as_bytes(), value.as_bytes(), 1_700_000_000_000 + n as i64, Origin::at(n));
        if b.len() == batch {
            out.push(b.take());
        }
    }
    if !b.is_empty() {
        out.push(b);
    }
    out
}

pub(crate) fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes the struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

struct Measured {
    wall: Duration,
    cpu: Duration,
    out: u64,
}

fn run_case(input: &Arc<Vec<RecordBatch>>, batch: usize, op: Arc<dyn OperatorFactory>) -> anyhow::Result<Measured> {
    let count = Arc::new(AtomicU64::new(0));
    let mut df = Dataflow::new(EngineOptions { pipeline: "bench".into(), batch_size: batch, ..Default::default() });
    let src = df.add_source("src", 1, Arc::new(Replay(input.clone())))?;
    let op = df.add_operator("op", 1, op, vec![Edge::forward(src)], vec![])?;
    df.add_sink("null", 1, Arc::new(Null(count.clone())), vec![Edge::forward(op)])?;
    let job = df.start()?;
    let (t0, c0) = (Instant::now(), cpu_time());
    job.wait()?;
    Ok(Measured { wall: t0.elapsed(), cpu: cpu_time() - c0, out: count.load(Ordering::Relaxed) })
}

fn best(runs: usize, mut f: impl FnMut() -> anyhow::Result<Measured>) -> anyhow::Result<Measured> {
    let mut best: Option<Measured> = None;
    for _ in 0..runs.max(1) {
        let m = f()?;
        if best.as_ref().is_none_or(|b| m.wall < b.wall) {
            best = Some(m);
        }
    }
    Ok(best.expect("one run"))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let engine = PluginLoader::new(LoaderConfig::default())?;
    if args.swap {
        return swap::run(&engine, &args.swap_v1, &args.swap_v2, args.swaps);
    }
    let plugin = engine
        .load_file(&args.plugin)
        .with_context(|| format!("build it first: make plugins ({})", args.plugin.display()))?;
    if let Some(queries) = &args.nexmark {
        let plugin = engine.load_file(&args.plugin.with_file_name("nexmark_queries.wasm")).context("build it first: make plugins")?;
        return nexmark::run(&plugin, args.events, args.check, args.parallelism, queries, args.nexmark_out.as_deref());
    }
    if args.state {
        return state::run(&plugin, args.records, args.keys, args.batch, args.big_state_keys, &args.state_cases);
    }
    let input = Arc::new(generate(args.records, args.keys, args.batch));
    let n = args.records as f64;
    println!(
        "weir-bench: {} records, {} keys, batch {}, best of {} runs; source -> operator -> null sink in one thread",
        args.records, args.keys, args.batch, args.runs
    );
    println!();
    println!("| case | native M ev/s | Wasm M ev/s | native ns/ev | Wasm ns/ev | Wasm CPU ns/ev | Wasm / native |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let wasm_factory = |op: &str| -> Arc<dyn OperatorFactory> {
        Arc::new(WasmOperatorFactory {
            plugin: plugin.clone(),
            settings: OperatorSettings {
                config: vec![("op".into(), op.into())],
                limits: Limits { memory: 1 << 30, call_timeout: Duration::from_secs(60), ..Default::default() },
                ..Default::default()
            },
        })
    };
    for op in ["identity", "map", "filter", "count", "count-reducing"] {
        if !args.only.is_empty() && !args.only.iter().any(|o| o == op) {
            continue;
        }
        let op_name = op.to_string();
        let wasm = best(args.runs, || run_case(&input, args.batch, wasm_factory(op)))?;
        if args.wasm_only {
            println!("| {op} | - | {:.2} | - | {:.0} | {:.0} | - |", n / wasm.wall.as_secs_f64() / 1e6, wasm.wall.as_nanos() as f64 / n, wasm.cpu.as_nanos() as f64 / n);
            continue;
        }
        let native = best(args.runs, || {
            let name = op_name.clone();
            run_case(&input, args.batch, Arc::new(move |_: &TaskContext| {
                Ok(Box::new(native::Native::new(&name)) as Box<dyn Operator>)
            }))
        })?;
        anyhow::ensure!(native.out == wasm.out, "{op}: native emitted {} records, Wasm {}", native.out, wasm.out);
        let rate = |m: &Measured| n / m.wall.as_secs_f64() / 1e6;
        let ns = |d: Duration| d.as_nanos() as f64 / n;
        println!(
            "| {op} | {:.2} | {:.2} | {:.0} | {:.0} | {:.0} | {:.2} |",
            rate(&native),
            rate(&wasm),
            ns(native.wall),
            ns(wasm.wall),
            ns(wasm.cpu),
            rate(&wasm) / rate(&native)
        );
    }
    if !args.latency.is_empty() {
        println!();
        let timeout = args.batch_timeout_us.map_or(EngineOptions::default().batch_timeout, Duration::from_micros);
        println!("End-to-end latency: paced source -> key_by -> Wasm identity (parallelism 2) -> sink; batch timeout {timeout:?}");
        println!();
        println!("| input rate ev/s | records | p50 µs | p99 µs | max µs |");
        println!("|---:|---:|---:|---:|---:|");
        for &rate in &args.latency {
            let base = Instant::now();
            let samples = Arc::new(std::sync::Mutex::new(Vec::new()));
            let count = (rate * args.latency_seconds) as u64;
            let mut df = Dataflow::new(EngineOptions {
                pipeline: "latency".into(),
                batch_size: args.batch,
                batch_timeout: timeout,
                ..Default::default()
            });
            let src = df.add_source("src", 1, Arc::new(latency::Paced { rate, count, keys: args.keys, base }))?;
            let op = df.add_operator("op", 2, wasm_factory("identity"), vec![Edge::key_by(src, KeySelector::RecordKey)], vec![])?;
            df.add_sink("sink", 2, Arc::new(latency::Latencies { base, samples: samples.clone() }), vec![Edge::forward(op)])?;
            df.start()?.wait()?;
            let samples = std::mem::take(&mut *samples.lock().expect("samples"));
            anyhow::ensure!(samples.len() as u64 == count, "latency: {} of {count} records arrived", samples.len());
            let (p50, p99, max) = latency::percentiles(samples);
            println!("| {rate:.0} | {count} | {p50:.0} | {p99:.0} | {max:.0} |");
        }
    }
    if args.per_record {
        let single = Arc::new(generate(args.records.min(200_000), args.keys, 1));
        let m = run_case(&single, 1, wasm_factory("map"))?;
        let b = run_case(&Arc::new(generate(args.records.min(200_000), args.keys, args.batch)), args.batch, wasm_factory("map"))?;
        let k = args.records.min(200_000) as f64;
        println!();
        println!(
            "Wasm map, one record per call: {:.0} ns/ev; batches of {}: {:.0} ns/ev ({:.1}x)",
            m.wall.as_nanos() as f64 / k,
            args.batch,
            b.wall.as_nanos() as f64 / k,
            m.wall.as_secs_f64() / b.wall.as_secs_f64()
        );
    }
    Ok(())
}
