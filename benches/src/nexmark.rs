//! Nexmark (`weir-bench --nexmark`): q0–q3, q5, q7 and q8 as Wasm operators on the Rust SDK
//! (`benches/guests/nexmark`) over events pre-generated with the `nexmark`
//! crate (92 % bids, 6 % auctions, 2 % persons), so the generator's own cost is
//! not measured. Each query's output is first checked against a plain Rust
//! reference on a prefix of the events; then the whole input is timed.
//! `--nexmark-out FILE` also writes the events as JSON lines for the Flink run
//! (`benches/flink/`).
//!
//! The windowed queries (q5, q7, q8) run on event time: the source's records
//! carry the events' `dateTime` as timestamps and the source emits watermarks
//! (the engine's [`EventTime`], as a job spec's `watermark:` does), with
//! [`OUT_OF_ORDERNESS`]; at the end of input the watermark is the end of time,
//! so every window closes.

use std::collections::{BTreeMap, HashMap, HashSet};
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

/// Bounded out-of-orderness of the windowed queries' watermarks (the events
/// are in time order; see `run`).
const OUT_OF_ORDERNESS: Duration = Duration::from_millis(100);

/// The operators of a query, in order: (config.query, partitioning of its
/// input). Keys: the events' keys (see [`encode`]), then the window end the
/// first stage emits.
fn stages(query: &str) -> Vec<(&'static str, Partitioning)> {
    let key = || Partitioning::KeyBy(KeySelector::RecordKey);
    match query {
        "q0" => vec![("q0", Partitioning::Rebalance)],
        "q1" => vec![("q1", Partitioning::Rebalance)],
        "q2" => vec![("q2", Partitioning::Rebalance)],
        "q3" => vec![("q3", key())],
        "q5" => vec![("q5-count", key()), ("q5", key())],
        "q7" => vec![("q7-local", key()), ("q7", key())],
        "q8" => vec![("q8", key())],
        _ => Vec::new(),
    }
}

fn windowed(query: &str) -> bool {
    matches!(query, "q5" | "q7" | "q8")
}

fn ts(v: &Value) -> i64 {
    v["dateTime"].as_i64().expect("dateTime")
}

/// q5 by hand: bids per (auction, sliding window of 10 s every 2 s), then per
/// window the auctions with the greatest count.
fn reference_q5(events: &[Value]) -> Vec<Value> {
    let mut counts: BTreeMap<i64, HashMap<u64, u64>> = BTreeMap::new();
    for b in events.iter().filter(|e| e["event_type"] == 2).map(|e| &e["bid"]) {
        let t = ts(b);
        // The windows [start, start + 10 s), start a multiple of 2 s, holding t.
        let mut start = t.div_euclid(2_000) * 2_000;
        while start > t - 10_000 {
            *counts.entry(start + 10_000).or_default().entry(b["auction"].as_u64().unwrap()).or_default() += 1;
            start -= 2_000;
        }
    }
    let mut out = Vec::new();
    for (end, per_auction) in counts {
        let max = per_auction.values().copied().max().unwrap_or(0);
        for (auction, num) in per_auction {
            if num == max {
                out.push(json!({ "auction": auction, "num": num, "window_end": end }));
            }
        }
    }
    out
}

/// q7 by hand: per tumbling window of 10 s, the bids at the window's highest price.
fn reference_q7(events: &[Value]) -> Vec<Value> {
    let bids: Vec<&Value> = events.iter().filter(|e| e["event_type"] == 2).map(|e| &e["bid"]).collect();
    let mut max: HashMap<i64, u64> = HashMap::new();
    for b in &bids {
        let m = max.entry(ts(b).div_euclid(10_000)).or_default();
        *m = (*m).max(b["price"].as_u64().unwrap());
    }
    bids.iter()
        .filter(|b| b["price"].as_u64() == Some(max[&ts(b).div_euclid(10_000)]))
        .map(|b| json!({ "auction": b["auction"], "bidder": b["bidder"], "price": b["price"], "dateTime": b["dateTime"], "extra": b["extra"] }))
        .collect()
}

/// q8 by hand: persons with an auction of theirs in the tumbling window of
/// 10 s they registered in, once per person and window.
fn reference_q8(events: &[Value]) -> Vec<Value> {
    let mut persons: BTreeMap<(i64, u64), &Value> = BTreeMap::new();
    let mut sellers: HashSet<(i64, u64)> = HashSet::new();
    for e in events {
        match e["event_type"].as_u64() {
            Some(0) => {
                let p = &e["person"];
                persons.insert((ts(p).div_euclid(10_000) * 10_000, p["id"].as_u64().unwrap()), p);
            }
            Some(1) => {
                let a = &e["auction"];
                sellers.insert((ts(a).div_euclid(10_000) * 10_000, a["seller"].as_u64().unwrap()));
            }
            _ => {}
        }
    }
    persons
        .into_iter()
        .filter(|(k, _)| sellers.contains(k))
        .map(|((start, id), p)| json!({ "id": id, "name": p["name"], "starttime": start }))
        .collect()
}

/// The straightforward reference: each query over the event list, outputs
/// canonicalised (sorted JSON text).
fn reference(events: &[Value], query: &str) -> Vec<String> {
    let mut out = match query {
        "q5" => reference_q5(events),
        "q7" => reference_q7(events),
        "q8" => reference_q8(events),
        _ => Vec::new(),
    };
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
    if windowed(query) {
        // The records' timestamps are the events' dateTime already.
        df.set_event_time(src, EventTime { field: None, out_of_orderness: OUT_OF_ORDERNESS, idle_timeout: None, unit: None })?;
    }
    // The stateless queries spread the events round-robin; the others key them.
    let stages = stages(query);
    anyhow::ensure!(!stages.is_empty(), "unknown Nexmark query {query} (q0, q1, q2, q3, q5, q7 or q8)");
    let mut from = src;
    for (stage, partitioning) in stages {
        let op = Arc::new(WasmOperatorFactory {
            plugin: plugin.clone(),
            settings: OperatorSettings {
                config: vec![("query".into(), stage.into())],
                limits: Limits { memory: 1 << 30, call_timeout: Duration::from_secs(60), ..Default::default() },
                ..Default::default()
            },
        });
        from = df.add_operator(stage, parallelism, op, vec![Edge { from, port: 0, partitioning }], vec![])?;
    }
    df.add_sink("sink", parallelism, sink, vec![Edge::forward(from)])?;
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
    // The windowed queries rely on the events coming in time order (up to
    // the watermark's out-of-orderness); count those that do not.
    let (mut first_ts, mut max_ts, mut out_of_order) = (0u64, 0u64, 0usize);
    for (n, e) in EventGenerator::new(NexmarkConfig::default()).take(events).enumerate() {
        let (key, v) = encode(&e);
        if n == 0 {
            first_ts = e.timestamp();
        }
        out_of_order += usize::from(e.timestamp() < max_ts);
        max_ts = max_ts.max(e.timestamp());
        kinds[v["event_type"].as_u64().unwrap_or(0) as usize] += 1;
        let text = v.to_string();
        if let Some(w) = file.as_mut() {
            writeln!(w, "{text}")?;
        }
        b.push(key.to_string().as_bytes(), text.as_bytes(), e.timestamp() as i64, Origin::at(n as u64));
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
    println!(
        "Event time: {:.1} s of events, {out_of_order} events older than an earlier one; windowed queries (q5, q7, q8) with watermarks of {OUT_OF_ORDERNESS:?} out-of-orderness",
        (max_ts.saturating_sub(first_ts)) as f64 / 1e3
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
