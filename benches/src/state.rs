//! State and checkpoint benchmarks (`weir-bench --state`): keyed count on the
//! heap vs RocksDB, checkpoint time and size of a large RocksDB state (full,
//! then incremental), recovery time, and throughput with checkpoints running
//! vs without.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use weir_checkpoint::{NodeInfo, Storage};
use weir_engine::*;
use weir_state::{HeapBackendFactory, KeyGroups, KeyedStateBackend, StateBackendFactory, StateDescriptor, StateKind};
use weir_state_rocksdb::{RocksBackend, RocksBackendFactory, RocksOptions};
use weir_wasm::{Limits, OperatorSettings, Plugin, WasmOperatorFactory};

use crate::{cpu_time, generate, Null, Replay};

fn dir_size(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else { return 0 };
    rd.flatten()
        .map(|e| {
            let m = e.metadata().expect("metadata");
            if m.is_dir() { dir_size(&e.path()) } else { m.len() }
        })
        .sum()
}

/// The small record cache of the keyed count on RocksDB.
const SMALL_CACHE: usize = 4 << 20;

fn count_factory(plugin: &Plugin, state: Arc<dyn StateBackendFactory>) -> Arc<dyn OperatorFactory> {
    Arc::new(WasmOperatorFactory {
        plugin: plugin.clone(),
        settings: OperatorSettings {
            config: vec![("op".into(), "count".into())],
            limits: Limits { memory: 1 << 30, call_timeout: Duration::from_secs(60), ..Default::default() },
            state,
            changelog: false,
        },
    })
}

/// The process's resident memory now, in bytes (after returning what malloc
/// holds free to the system, so earlier runs' freed memory does not hide this
/// one's).
fn rss_bytes() -> u64 {
    // SAFETY: malloc_trim only releases free memory.
    unsafe { libc::malloc_trim(0) };
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// What one keyed-count run measured.
struct Run {
    wall: Duration,
    cpu: Duration,
    /// Checkpoints completed.
    checkpoints: usize,
    /// Resident memory grown from the job's start to the sink having every
    /// record (the state, the record cache, RocksDB's memtables and caches).
    rss_growth: u64,
    /// Bytes in the checkpoint store at the end.
    stored: u64,
}

/// Replay -> key_by -> Wasm count -> null sink. Wall and CPU time run until
/// the sink has every record, so the final checkpoint of the bounded run is
/// not counted.
fn run_count(
    input: &Arc<Vec<RecordBatch>>,
    batch: usize,
    op: Arc<dyn OperatorFactory>,
    checkpoint: Option<(Duration, &Path)>,
) -> anyhow::Result<Run> {
    let count = Arc::new(AtomicU64::new(0));
    let mut df = Dataflow::new(EngineOptions { pipeline: "state-bench".into(), batch_size: batch, ..Default::default() });
    let src = df.add_source("src", 1, Arc::new(Replay(input.clone())))?;
    let op = df.add_operator("count", 1, op, vec![Edge::key_by(src, KeySelector::RecordKey)], vec![])?;
    df.add_sink("null", 1, Arc::new(Null(count.clone())), vec![Edge::forward(op)])?;
    let mut store_dir = None;
    if let Some((interval, dir)) = checkpoint {
        let nodes = df
            .node_names()
            .into_iter()
            .map(|(n, k, p)| NodeInfo { name: n.into(), kind: k.name().into(), parallelism: p, plugin: None, plugin_sha256: None, state_shape: None })
            .collect();
        let storage = Arc::new(Storage::open(dir.join("store").to_str().expect("utf-8"), "state-bench", nodes, 1000)?);
        df.set_checkpointing(CheckpointConfig { interval: Some(interval), store: storage, staging_dir: dir.join("staging"), first_epoch: 1 });
        store_dir = Some(dir.join("store"));
    }
    let n: usize = input.iter().map(RecordBatch::len).sum();
    let rss0 = rss_bytes();
    let job = df.start()?;
    let (t0, c0) = (Instant::now(), cpu_time());
    while (count.load(Ordering::Relaxed) as usize) < n && t0.elapsed() < Duration::from_secs(600) {
        std::thread::sleep(Duration::from_micros(200));
    }
    let (wall, cpu) = (t0.elapsed(), cpu_time() - c0);
    let rss_growth = rss_bytes().saturating_sub(rss0);
    job.wait()?;
    anyhow::ensure!(count.load(Ordering::Relaxed) as usize == n, "count emitted {} of {n}", count.load(Ordering::Relaxed));
    let checkpoints = store_dir.as_ref().map_or(0, |d| {
        std::fs::read_dir(d.join("checkpoints"))
            .map(|r| r.flatten().filter(|e| e.path().join("_manifest.json").exists()).count())
            .unwrap_or(0)
    });
    let stored = store_dir.as_ref().map_or(0, |d| dir_size(d));
    Ok(Run { wall, cpu, checkpoints, rss_growth, stored })
}

pub fn run(plugin: &Plugin, records: usize, keys: u64, batch: usize, big_keys: u64, cases: &[String]) -> anyhow::Result<()> {
    const CASES: [&str; 5] = ["heap", "rocksdb", "rocksdb-small", "checkpoints", "big"];
    if let Some(bad) = cases.iter().find(|c| !CASES.contains(&c.as_str())) {
        anyhow::bail!("--state-cases: unknown case {bad:?}; the cases are {}", CASES.join(", "));
    }
    let case = |c: &str| cases.iter().any(|x| x == c);
    let tmp = tempfile::tempdir()?;
    let input = Arc::new(generate(records, keys, batch));
    let n = records as f64;
    println!("Keyed count (Wasm, ValueState) over {records} records with {keys} distinct keys, parallelism 1:");
    println!();
    println!("| backend | record cache per task | M ev/s | CPU ns/ev | M ev/s per CPU-second | vs heap | memory grown per M keys |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    let per_m_keys = |b: u64| format!("{:.0} MB", b as f64 / 1e6 / (keys as f64 / 1e6));
    let rate = |d: Duration| n / d.as_secs_f64() / 1e6;
    let ns = |d: Duration| d.as_nanos() as f64 / n;
    let mut heap_wall = None;
    if case("heap") {
        let r = run_count(&input, batch, count_factory(plugin, Arc::new(HeapBackendFactory)), None)?;
        println!("| heap | - | {:.2} | {:.0} | {:.2} | 1.00 | {} |", rate(r.wall), ns(r.cpu), rate(r.cpu), per_m_keys(r.rss_growth));
        heap_wall = Some(r.wall);
    }
    // The default record cache, then one that holds a small part of the keys
    // (most accesses go to RocksDB).
    let mib = |b: usize| format!("{} MiB", b >> 20);
    for (i, (cache, label)) in [
        (None, format!("{} (default)", mib(RocksOptions::DEFAULT_CACHE_BYTES))),
        (Some(SMALL_CACHE), mib(SMALL_CACHE)),
    ]
    .into_iter()
    .enumerate()
    .filter(|(i, _)| case(["rocksdb", "rocksdb-small"][*i]))
    {
        let mut rocks = RocksBackendFactory::new(tmp.path().join(format!("rocks-count-{i}")));
        rocks.cache_bytes = cache.unwrap_or(rocks.cache_bytes);
        let rocks: Arc<dyn StateBackendFactory> = Arc::new(rocks);
        let r = run_count(&input, batch, count_factory(plugin, rocks), None)?;
        let vs_heap = heap_wall.map_or("-".to_string(), |h| format!("{:.2}", rate(r.wall) / rate(h)));
        println!(
            "| rocksdb | {label} | {:.2} | {:.0} | {:.2} | {vs_heap} | {} |",
            rate(r.wall),
            ns(r.cpu),
            rate(r.cpu),
            per_m_keys(r.rss_growth)
        );
    }
    if case("checkpoints") {
        checkpoint_ratios(plugin, &input, batch, tmp.path())?;
    }
    if case("big") {
        big_rocksdb_checkpoint(tmp.path(), big_keys)?;
    }
    Ok(())
}

/// Throughput of the keyed count with checkpoints running against without,
/// on the heap (every 1 s and 3 s) and RocksDB (every 1 s).
fn checkpoint_ratios(plugin: &Plugin, input: &Arc<Vec<RecordBatch>>, batch: usize, tmp: &Path) -> anyhow::Result<()> {
    let n: usize = input.iter().map(RecordBatch::len).sum();
    let rate = |d: Duration| n as f64 / d.as_secs_f64() / 1e6;
    println!();
    println!("Throughput with checkpoints vs none (same keyed count, heap and RocksDB):");
    println!();
    println!("| backend | interval | no checkpoints M ev/s | checkpointing M ev/s | checkpoints taken | ratio | stored per checkpoint |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    // Each case against a baseline run just before it; best of two of each,
    // so warm-up and the machine's noise hit both sides alike.
    for (name, secs) in [("heap", 1), ("heap", 3), ("rocksdb", 1)] {
        let kind = |dir: &Path| -> Arc<dyn StateBackendFactory> {
            match name {
                "heap" => Arc::new(HeapBackendFactory),
                _ => Arc::new(RocksBackendFactory::new(dir.join("rocks"))),
            }
        };
        let (mut without, mut with, mut taken, mut per_checkpoint) = (Duration::MAX, Duration::MAX, 0, 0);
        for round in 0..2 {
            let dir = tmp.join(format!("ck-{name}-{secs}-{round}"));
            let plain = run_count(input, batch, count_factory(plugin, kind(&dir.join("plain"))), None)?;
            without = without.min(plain.wall);
            let r = run_count(input, batch, count_factory(plugin, kind(&dir)), Some((Duration::from_secs(secs), &dir)))?;
            with = with.min(r.wall);
            taken = taken.max(r.checkpoints);
            // Every checkpoint of the run is kept (and the final one of the
            // bounded run): the store's bytes over them.
            per_checkpoint = per_checkpoint.max(r.stored / (r.checkpoints.max(1) as u64));
        }
        println!(
            "| {name} | {secs} s | {:.2} | {:.2} | {taken} | {:.2} | {:.0} MB |",
            rate(without),
            rate(with),
            rate(with) / rate(without),
            per_checkpoint as f64 / 1e6
        );
    }

    Ok(())
}

/// A large RocksDB state: write it, checkpoint it (full), change 1% of it,
/// checkpoint again (incremental), then restore it.
fn big_rocksdb_checkpoint(tmp: &Path, keys: u64) -> anyhow::Result<()> {
    const VALUE: usize = 1024;
    let groups = KeyGroups::all(128);
    let mut db = RocksBackend::open(RocksOptions::new(tmp.join("big")), groups.clone())?;
    let s = db.declare(StateDescriptor { name: "blob".into(), kind: StateKind::Value, ttl: None })?;
    let mut value = vec![0u8; VALUE];
    let t = Instant::now();
    for k in 0..keys {
        let x = crate::splitmix64(k);
        value[..8].copy_from_slice(&x.to_le_bytes());
        value[VALUE - 8..].copy_from_slice(&k.to_le_bytes());
        for (i, b) in value[8..VALUE - 8].iter_mut().enumerate() {
            *b = (x >> (i % 57)) as u8 ^ i as u8;
        }
        db.value_set(s, &k.to_be_bytes(), &value)?;
    }
    db.len(s)?; // writes the cache back
    let write = t.elapsed();
    let logical = keys * (VALUE as u64 + 8);
    let nodes = vec![NodeInfo { name: "big".into(), kind: "operator".into(), parallelism: 1, plugin: None, plugin_sha256: None, state_shape: None }];
    let store_dir = tmp.join("big-store");
    let storage = Storage::open(store_dir.to_str().expect("utf-8"), "big", nodes, 2)?;
    let checkpoint = |epoch: u64, db: &mut RocksBackend| -> anyhow::Result<(Duration, Duration, u64)> {
        let before = dir_size(&store_dir);
        let staging = tmp.join(format!("big-staging-{epoch}"));
        std::fs::create_dir_all(&staging)?;
        let t = Instant::now();
        let writer = db.snapshot(&staging)?;
        let sync = t.elapsed();
        let files = writer()?;
        let state = TaskState { node: "big".into(), task: 0, parallelism: 1, position: None, watermark: None, files };
        let stored = storage.store_task(epoch, &[state])?;
        storage.complete(epoch, false, &stored)?;
        let total = t.elapsed();
        std::fs::remove_dir_all(&staging)?;
        Ok((sync, total, dir_size(&store_dir).saturating_sub(before)))
    };
    let (sync1, total1, bytes1) = checkpoint(1, &mut db)?;
    for k in (0..keys).step_by(100) {
        value[VALUE - 8..].copy_from_slice(&(k + 1).to_le_bytes());
        db.value_set(s, &k.to_be_bytes(), &value)?;
    }
    let (sync2, total2, bytes2) = checkpoint(2, &mut db)?;
    drop(db);
    let t = Instant::now();
    let loaded = storage.latest(&tmp.join("big-restore"))?.expect("a checkpoint");
    let download = t.elapsed();
    let files = loaded.plan.nodes["big"].files.clone();
    let mut restored = RocksBackend::open(RocksOptions::new(tmp.join("big-restored")), groups)?;
    restored.restore(&files)?;
    let s2 = restored.declare(StateDescriptor { name: "blob".into(), kind: StateKind::Value, ttl: None })?;
    let restore = t.elapsed();
    anyhow::ensure!(restored.len(s2)? as u64 == keys, "restored {} of {keys} keys", restored.len(s2)?);
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    println!();
    println!(
        "RocksDB state of {keys} keys x {VALUE} B ({:.2} GiB logical), written in {:.1} s; checkpoints into a local directory:",
        gib(logical),
        write.as_secs_f64()
    );
    println!();
    println!("| checkpoint | snapshot (task pauses) | snapshot + store | bytes stored |");
    println!("|---|---:|---:|---:|");
    println!("| 1: full | {:.0} ms | {:.1} s | {:.2} GiB |", sync1.as_secs_f64() * 1e3, total1.as_secs_f64(), gib(bytes1));
    println!(
        "| 2: incremental, after changing 1% of keys | {:.0} ms | {:.1} s | {:.3} GiB |",
        sync2.as_secs_f64() * 1e3,
        total2.as_secs_f64(),
        gib(bytes2)
    );
    println!();
    println!(
        "Recovery of checkpoint 2: download and verify {:.1} s, restore into a new RocksDB: {:.1} s in all",
        download.as_secs_f64(),
        restore.as_secs_f64()
    );
    Ok(())
}
