//! Nexmark (`weir-bench --nexmark`): q0–q3 as Wasm operators on the Rust SDK
//! (`benches/guests/nexmark`) over events pre-generated with the `nexmark`
//! crate (92 % bids, 6 % auctions, 2 % persons), so the generator's own cost is
//! not measured. Each query's output is first checked against a plain Rust
//! reference on a prefix of the events; then the whole input is timed.
//! `--nexmark-out FILE` also writes the events as JSON lines for the Flink run
//! (`benches/flink/`).

use std::collections::HashMap;
use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nexmark::event::Event;
use nexmark::config::NexmarkConfig;
use nexmark::EventGenerator;
use serde_json::{json, Value};
use weir_engine::*;
use weir_wasm::{Limits, OperatorSettings, Plugin, WasmOperatorFactory};

use crate::{cpu_time, Null, Replay};

/// An event in the JSON schema of the Flink Nexmark benchmark, with its key
/// (person id, auction seller, bid auction). States are upper-case as in
/// Nexmark's Java generator (the crate writes them in lower case).
fn encode(e: &Event) -> (u64, Value) {
    match e {
        Event::Person(p) => (p.id as u64, json!({ "event_type": 0, "person": {
            "id": p.id, "name": p.name, "emailAddress": p.email_address, "creditCard": p.credit_card,
            "city": p.city, "state": p.state.to_uppercase(), "dateTime": p.date_time, "extra": p.extra } })),
        Event::Auction(a) => (a.seller as u64, json!({ "event_type": 1, "auction": {
            "id": a.id, "itemName": a.item_name, "description": a.description, "initialBid": a.initial_bid,
            "reserve": a.reserve, "dateTime": a.date_time, "expires": a.expires, "seller": a.seller,
            "category": a.category, "extra": a.extra } })),
        Event::Bid(b) => (b.auction as u64, json!({ "event_type": 2, "bid": {
            "auction": b.auction, "bidder": b.bidder, "price": b.price, "channel": b.channel, "url": b.url,
            "dateTime": b.date_time, "extra": b.extra } })),
    }
}

/// The straightforward reference: each query over the event list, outputs
/// canonicalised (sorted JSON text).
fn reference(events: &[Value], query: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut sellers: HashMap<u64, Value> = HashMap::new();
    let mut waiting: HashMap<u64, Vec<u64>> = HashMap::new();
    for e in events {
        let b = &e["bid"];
        match (query, e["event_type"].as_u64()) {
            ("q0", Some(2)) => out.push(json!({ "auction": b["auction"], "bidder": b["bidder"], "price": b["price"], "dateTime": b["dateTime"], "extra": b["extra"] })),
            ("q1", Some(2)) => out.push(json!({ "auction": b["auction"], "bidder": b["bidder"], "price": b["price"].as_u64().unwrap() as f64 * 0.908, "dateTime": b["dateTime"], "extra": b["extra"] })),
            ("q2", Some(2)) if b["auction"].as_u64().unwrap() % 123 == 0 => out.push(json!({ "auction": b["auction"], "price": b["price"] })),
            ("q3", Some(0)) => {
                let p = &e["person"];
                if ["OR", "ID", "CA"].contains(&p["state"].as_str().unwrap()) {
                    let id = p["id"].as_u64().unwrap();
                    for a in waiting.remove(&id).unwrap_or_default() {
                        out.push(json!({ "name": p["name"], "city": p["city"], "state": p["state"], "id": a }));
                    }
                    sellers.insert(id, p.clone());
                }
            }
            ("q3", Some(1)) => {
                let a = &e["auction"];
                if a["category"].as_u64() == Some(10) {
                    let seller = a["seller"].as_u64().unwrap();
                    match sellers.get(&seller) {
                        Some(p) => out.push(json!({ "name": p["name"], "city": p["city"], "state": p["state"], "id": a["id"] })),
                        None => waiting.entry(seller).or_default().push(a["id"].as_u64().unwrap()),
                    }
                }
            }
            _ => {}
        }
    }
    // Through the same text round trip as the operator's outputs (so floats
    // compare alike).
    let mut out: Vec<String> =
        out.iter().map(|v| serde_json::from_str::<Value>(&v.to_string()).expect("json").to_string()).collect();
    out.sort();
    out
}

/// Keeps every output value.
struct Collect(Arc<Mutex<Vec<String>>>);

impl SinkFactory for Collect {
    fn create(&self, _: &TaskContext) -> Result<Box<dyn Sink>, SinkError> {
        Ok(Box::new(Collect(self.0.clone())))
    }
}

impl Sink for Collect {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        let mut v = self.0.lock().expect("collect");
        for r in 0..batch.len() {
            let parsed: Value = serde_json::from_slice(batch.value(r)).map_err(|e| SinkError::msg(e.to_string()))?;
            v.push(parsed.to_string());
        }
        Ok(())
    }
}

fn run_query(
    plugin: &Plugin,
    input: &Arc<Vec<RecordBatch>>,
    query: &str,
    parallelism: u32,
    sink: Arc<dyn SinkFactory>,
) -> anyhow::Result<(Duration, Duration)> {
    let mut df = Dataflow::new(EngineOptions { pipeline: "nexmark".into(), ..Default::default() });
    let src = df.add_source("events", 1, Arc::new(Replay(input.clone())))?;
    let op = Arc::new(WasmOperatorFactory {
        plugin: plugin.clone(),
        settings: OperatorSettings {
            config: vec![("query".into(), query.into())],
            limits: Limits { memory: 1 << 30, call_timeout: Duration::from_secs(60) },
            ..Default::default()
        },
    });
    // q3 joins by key; the stateless queries spread the events round-robin.
    let edge = if query == "q3" { Edge::key_by(src, KeySelector::RecordKey) } else { Edge { from: src, port: 0, partitioning: Partitioning::Rebalance } };
    let op = df.add_operator(query, parallelism, op, vec![edge], vec![])?;
    df.add_sink("sink", parallelism, sink, vec![Edge::forward(op)])?;
    let (t0, c0) = (Instant::now(), cpu_time());
    df.start()?.wait()?;
    Ok((t0.elapsed(), cpu_time() - c0))
}

/// Peak resident set size since the last reset, in MiB (Linux).
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()).unwrap_or(0.0);
    kb / 1024.0
}

fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

pub fn run(plugin: &Plugin, events: usize, check: usize, parallelism: u32, queries: &[String], out_file: Option<&Path>) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let mut kinds = [0usize; 3];
    let mut file = match out_file {
        Some(path) => Some(std::io::BufWriter::new(std::fs::File::create(path)?)),
        None => None,
    };
    // Straight into batches (and the file); only the checked prefix is kept
    // as JSON values.
    let mut values: Vec<Value> = Vec::with_capacity(check.min(events));
    let mut all = Vec::new();
    let mut prefix = Vec::new();
    let mut b = RecordBatch::with_capacity(1024);
    for (n, e) in EventGenerator::new(NexmarkConfig::default()).take(events).enumerate() {
        let (key, v) = encode(&e);
        kinds[v["event_type"].as_u64().unwrap_or(0) as usize] += 1;
        let text = v.to_string();
        if let Some(w) = file.as_mut() {
            writeln!(w, "{text}")?;
        }
        b.push(key.to_string().as_bytes(), text.as_bytes(), e.timestamp() as i64, Origin { source: 0, offset: n as u64 });
        if n < check {
            values.push(v);
        }
        if b.len() == 1024 || n + 1 == check.min(events) || n + 1 == events {
            let full = b.take();
            if n < check {
                prefix.push(full.clone());
            }
            all.push(full);
        }
    }
    if let Some(mut w) = file {
        w.flush()?;
    }
    let input = Arc::new(all);
    let prefix = Arc::new(prefix);
    // Give freed memory back, so the peak RSS below is the engine's and its input's.
    // SAFETY: malloc_trim has no preconditions.
    unsafe { libc::malloc_trim(0) };
    let bytes: usize = input.iter().map(|b| b.values.len()).sum();
    println!(
        "Nexmark: {events} events ({} persons, {} auctions, {} bids; {:.0} MB of JSON), generated in {:.1?}; Wasm queries at parallelism {parallelism}",
        kinds[0], kinds[1], kinds[2], bytes as f64 / 1e6, t0.elapsed()
    );
    println!();
    println!("Peak RSS: the whole process during the query's timed run, with the pre-generated input ({:.0} MB) in memory.", bytes as f64 / 1e6);
    println!();
    println!("| query | outputs | checked against the reference | wall s | M ev/s | CPU s | M ev/s per CPU-second | peak RSS MiB |");
    println!("|---|---:|---|---:|---:|---:|---:|---:|");
    for q in queries {
        let got = Arc::new(Mutex::new(Vec::new()));
        run_query(plugin, &prefix, q, parallelism, Arc::new(Collect(got.clone())))?;
        let mut got = std::mem::take(&mut *got.lock().expect("collect"));
        got.sort();
        let want = reference(&values, q);
        anyhow::ensure!(got == want, "{q}: {} outputs on the first {check} events, the reference has {}; first difference: {:?}",
            got.len(), want.len(), got.iter().zip(&want).find(|(a, b)| a != b));
        // SAFETY: malloc_trim has no preconditions.
        unsafe { libc::malloc_trim(0) };
        reset_peak_rss();
        let count = Arc::new(AtomicU64::new(0));
        let (wall, cpu) = run_query(plugin, &input, q, parallelism, Arc::new(Null(count.clone())))?;
        let n = events as f64;
        println!(
            "| {q} | {} | {} equal outputs on {} events | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} |",
            count.load(Ordering::Relaxed),
            want.len(),
            check.min(events),
            wall.as_secs_f64(),
            n / wall.as_secs_f64() / 1e6,
            cpu.as_secs_f64(),
            n / cpu.as_secs_f64() / 1e6,
            peak_rss_mib()
        );
    }
    Ok(())
}
