//! Windows end to end: the three event-time examples against their golden
//! outputs and against references computed here; tumbling and sliding windows
//! over random out-of-order input with late data (nothing lost); the spec's
//! window errors; and window state surviving `kill -9` with every window's
//! result published exactly once, on the heap and on RocksDB.


use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::common::{parts, stderr, weir, weir_cmd};
use serde_json::{json, Value};
use weir_test_support::root;

const MIN: i64 = 60_000;

/// Lines as normalised JSON, sorted.
fn norm(lines: impl IntoIterator<Item = impl AsRef<str>>) -> Vec<String> {
    let mut v: Vec<String> = lines
        .into_iter()
        .filter(|l| !l.as_ref().trim().is_empty())
        .map(|l| serde_json::from_str::<Value>(l.as_ref()).unwrap_or_else(|e| panic!("{e}: {}", l.as_ref())).to_string())
        .collect();
    v.sort();
    v
}

fn golden(example: &str, file: &str) -> Vec<String> {
    norm(std::fs::read_to_string(root().join("examples").join(example).join(file)).unwrap().lines())
}

fn input(example: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(root().join("examples").join(example).join("input.jsonl")).unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Run a spec with `WEIR_OUTPUT` in a fresh directory; the main and late outputs.
fn run_example(spec: &Path, env: &[(&str, &str)]) -> (tempfile::TempDir, Vec<String>, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut env: Vec<(&str, &str)> = env.to_vec();
    let o = out.to_str().unwrap().to_string();
    env.push(("WEIR_OUTPUT", &o));
    let r = weir(&["run", "--progress", "0", spec.to_str().unwrap()], &env);
    assert!(r.status.success(), "{}", stderr(&r));
    let late_dir = dir.path().join("out-late");
    let late = if late_dir.exists() { norm(parts(&late_dir).concat()) } else { Vec::new() };
    let main = norm(parts(&out).concat());
    (dir, main, late)
}

fn window_line(key: &str, start: i64, end: i64, count: u64) -> String {
    json!({"key": key, "start": start, "end": end, "count": count}).to_string()
}

/// Windows of `ts`: `size`-long windows every `slide` (tumbling: slide = size).
fn windows_of(ts: i64, size: i64, slide: i64) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut start = ts - ts.rem_euclid(slide);
    while start > ts - size {
        out.push((start, start + size));
        start -= slide;
    }
    out
}

/// Flink's semantics for a watermark after every record, written independently
/// of the operator: records in arrival order, watermark max(ts) - ooo - 1, a
/// window fires when the watermark reaches its last millisecond, a record for
/// a fired window within `lateness` fires it again, a record all of whose
/// windows are past end + lateness is late. Returns (results, late records).
fn reference_windows(records: &[(String, i64, Value)], size: i64, slide: i64, ooo: i64, lateness: i64) -> (Vec<String>, Vec<String>) {
    let mut counts: BTreeMap<(i64, String, i64), u64> = BTreeMap::new(); // (end, key, start)
    let mut fired: HashMap<(String, i64), bool> = HashMap::new();
    let (mut out, mut late) = (Vec::new(), Vec::new());
    let mut wm = i64::MIN;
    for (key, ts, raw) in records {
        let live: Vec<(i64, i64)> = windows_of(*ts, size, slide).into_iter().filter(|(_, e)| e - 1 + lateness > wm).collect();
        if live.is_empty() {
            late.push(raw.to_string());
        }
        for (s, e) in live {
            let c = counts.entry((e, key.clone(), s)).or_default();
            *c += 1;
            if e - 1 <= wm {
                // Past its end but within the lateness: fires now (again, or
                // for the first time if this is its first record).
                fired.insert((key.clone(), s), true);
                out.push(window_line(key, s, e, *c));
            }
        }
        wm = wm.max(ts - ooo - 1);
        for ((e, k, s), c) in &counts {
            if e - 1 <= wm && !fired.contains_key(&(k.clone(), *s)) {
                fired.insert((k.clone(), *s), true);
                out.push(window_line(k, *s, *e, *c));
            }
        }
    }
    for ((e, k, s), c) in &counts {
        if !fired.contains_key(&(k.clone(), *s)) {
            out.push(window_line(k, *s, *e, *c));
        }
    }
    (norm(out), norm(late))
}

fn keyed(records: &[Value], key: &str) -> Vec<(String, i64, Value)> {
    records.iter().map(|v| (v[key].as_str().unwrap().to_string(), v["ts"].as_i64().unwrap(), v.clone())).collect()
}

#[test]
fn tumbling_example_matches_its_golden_output_and_the_reference() {
    let (_d, main, late) = run_example(&root().join("examples/tumbling/pipeline.yaml"), &[]);
    assert_eq!(main, golden("tumbling", "expected.jsonl"));
    assert_eq!(late, golden("tumbling", "expected-late.jsonl"));
    let records = input("tumbling");
    let (ref_main, ref_late) = reference_windows(&keyed(&records, "user"), MIN, MIN, 10_000, 30_000);
    assert_eq!(main, ref_main);
    assert_eq!(late, ref_late);
    // Two late firings (higher counts for a window that already fired) and one late record.
    assert_eq!(main.len(), 7);
    assert_eq!(late.len(), 1);
    // Nothing lost: every record is in a window's final count or in the late output.
    let mut last: HashMap<(String, i64), u64> = HashMap::new();
    for l in &main {
        let v: Value = serde_json::from_str(l).unwrap();
        let e = last.entry((v["key"].as_str().unwrap().into(), v["start"].as_i64().unwrap())).or_default();
        *e = (*e).max(v["count"].as_u64().unwrap());
    }
    assert_eq!(last.values().sum::<u64>() + late.len() as u64, records.len() as u64);
}

/// Sessions per key as Flink defines them (windows [ts, ts + gap) merged
/// when they touch), for input without late records.
fn reference_sessions(records: &[(String, i64, Value)], gap: i64) -> Vec<String> {
    let mut per: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (k, ts, _) in records {
        per.entry(k.clone()).or_default().push(*ts);
    }
    let mut out = Vec::new();
    for (k, mut ts) in per {
        ts.sort();
        let (mut start, mut end, mut n) = (ts[0], ts[0] + gap, 0u64);
        for t in ts {
            if t > end {
                out.push(window_line(&k, start, end, n));
                (start, n) = (t, 0);
            }
            end = end.max(t + gap);
            n += 1;
        }
        out.push(window_line(&k, start, end, n));
    }
    norm(out)
}

#[test]
fn sessions_example_merges_a_bridging_out_of_order_click() {
    let (_d, main, late) = run_example(&root().join("examples/sessions/pipeline.yaml"), &[]);
    assert_eq!(main, golden("sessions", "expected.jsonl"));
    assert_eq!(late, golden("sessions", "expected-late.jsonl"));
    let records = input("sessions");
    // The last click (u2 at +10m) arrives after its session's time has passed:
    // it is late. Everything else makes the sessions.
    let (on_time, late_ref) = records.split_at(records.len() - 1);
    assert_eq!(late, norm(late_ref.iter().map(|v| v.to_string())));
    assert_eq!(main, reference_sessions(&keyed(on_time, "user"), 30 * MIN));
    // u1's clicks at +0, +10 and +50 minutes are two sessions until the click
    // at +30 arrives out of order and bridges them: one session of 4.
    let base = 1_767_225_600_000;
    assert!(main.contains(&window_line("u1", base, base + 80 * MIN, 4)), "{main:?}");
}

#[test]
fn fraud_example_alerts_above_k_times_the_30_day_average() {
    let (_d, main, _) = run_example(&root().join("examples/fraud/pipeline.yaml"), &[]);
    assert_eq!(main, golden("fraud", "expected.jsonl"));
    // The reference: for each transaction, the customer's earlier ones of the 30 days before it.
    let day = 86_400_000i64;
    let mut seen: HashMap<String, Vec<(i64, i64)>> = HashMap::new();
    let mut alerts = Vec::new();
    for t in input("fraud") {
        let (c, ts, amount) = (t["customer"].as_str().unwrap().to_string(), t["ts"].as_i64().unwrap(), t["amount"].as_i64().unwrap());
        let hist = seen.entry(c.clone()).or_default();
        let recent: Vec<i64> = hist.iter().filter(|(t0, _)| *t0 >= ts - 30 * day && *t0 < ts).map(|(_, a)| *a).collect();
        let (n, sum) = (recent.len() as i64, recent.iter().sum::<i64>());
        if n >= 3 && amount * n > 3 * sum {
            alerts.push(json!({"customer": c, "ts": ts, "amount": amount, "count_30d": n, "sum_30d": sum, "k": 3}).to_string());
        }
        hist.push((ts, amount));
    }
    assert_eq!(main, norm(alerts));
    assert_eq!(main.len(), 3);
}

/// Random keyed clicks: time moves forward with jumps back of up to `back` ms.
fn random_clicks(n: usize, keys: u64, back: i64, seed: u64) -> Vec<(String, i64, Value)> {
    let mut x = seed;
    let mut t = 1_767_225_600_000i64;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            t += (x % 4000) as i64;
            let ts = t - ((x >> 20) % back as u64) as i64;
            let key = format!("k{}", (x >> 40) % keys);
            let v = json!({"user": key, "ts": ts, "n": i});
            (key, ts, v)
        })
        .collect()
}

fn write_spec(dir: &Path, window: &str, records: &[(String, i64, Value)], extra: &str) -> std::path::PathBuf {
    let text: String = records.iter().map(|(_, _, v)| format!("{v}\n")).collect();
    std::fs::write(dir.join("in.jsonl"), text).unwrap();
    let spec = format!(
        "name: w\n{extra}batch: {{size: 1}}\nsources:\n  - {{name: in, type: file, path: '{}', format: json_lines, timestamp: $.ts, watermark: {{out_of_orderness: 5s}}}}\noperators:\n  - name: win\n    plugin: ${{WEIR_PLUGINS}}/window_count.wasm\n    input: in\n    key_by: $.user\n    parallelism: 2\n    window: {window}\nsinks:\n  - {{name: out, type: file, path: '${{WEIR_OUTPUT}}', input: win}}\n  - {{name: late, type: file, path: '${{WEIR_OUTPUT}}-late', input: win.late}}\n",
        dir.join("in.jsonl").display()
    );
    let path = dir.join("w.yaml");
    std::fs::write(&path, spec).unwrap();
    path
}

fn random_windows(window: &str, size: i64, slide: i64, lateness: i64, backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let records = random_clicks(3000, 7, 40_000, 0x9e37_79b9_7f4a_7c15);
    let extra = format!("state: {{backend: {backend}, dir: '{}'}}\n", dir.path().join("state").display());
    let spec = write_spec(dir.path(), window, &records, &extra);
    let (_d, main, late) = run_example(&spec, &[]);
    let (ref_main, ref_late) = reference_windows(&records, size, slide, 5_000, lateness);
    assert!(!ref_late.is_empty() && ref_main.len() > 100, "the input has late data and many windows");
    assert_eq!(late.len(), ref_late.len(), "late records");
    assert_eq!(late, ref_late);
    assert_eq!(main.len(), ref_main.len(), "window results");
    assert!(main == ref_main, "window results differ from the reference");
}

#[test]
fn tumbling_windows_with_late_firings_and_late_records_on_heap() {
    random_windows("{type: tumbling, size: 1m, allowed_lateness: 10s}", MIN, MIN, 10_000, "heap");
}

#[test]
fn sliding_windows_with_late_firings_and_late_records_on_rocksdb() {
    random_windows("{type: sliding, size: 30s, slide: 10s, allowed_lateness: 5s}", 30_000, 10_000, 5_000, "rocksdb");
}

#[test]
fn window_spec_errors_name_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let check = |window: &str, key_by: &str, expected: &str| {
        let spec = format!(
            "name: w\nsources: [{{name: in, type: file, path: x, format: json_lines, timestamp: $.ts}}]\noperators:\n  - name: win\n    plugin: ${{WEIR_PLUGINS}}/window_count.wasm\n    input: in\n{key_by}    window: {window}\nsinks: [{{name: out, type: stdout, input: win}}]\n"
        );
        let p = dir.path().join("bad.yaml");
        std::fs::write(&p, spec).unwrap();
        let o = weir(&["validate", p.to_str().unwrap()], &[]);
        assert!(!o.status.success());
        let err = stderr(&o);
        assert!(err.contains(expected), "expected {expected:?} in: {err}");
        assert!(err.contains("bad.yaml:"), "{err}");
    };
    let kb = "    key_by: $.user\n";
    check("{type: tumbling, size: 1m}", "", "bad.yaml:7:20: operators[0].window: a window operator needs key_by");
    check("{type: rolling, size: 1m}", kb, "bad.yaml:8:20: operators[0].window.type: 'rolling' is not a window type (tumbling, sliding, session)");
    check("{type: tumbling}", kb, "operators[0].window.size: a tumbling window needs a size");
    check("{type: sliding, size: 1m, slide: 2m}", kb, "operators[0].window.slide: must not exceed the size");
    check("{type: session, gap: 1m, size: 1m}", kb, "operators[0].window.size: not a setting of a session window");
    check("{type: session, gap: 0s}", kb, "operators[0].window.gap: must be at least 1ms");
    check("{type: tumbling, size: 1m, late_output: 'a b'}", kb, "operators[0].window.late_output: 'a b' is not a valid name");
}

#[test]
fn plugins_must_match_the_window_block() {
    let dir = tempfile::tempdir().unwrap();
    let run = |plugin: &str, window: &str| {
        let spec = format!(
            "name: w\nsources: [{{name: in, type: file, path: x, format: json_lines, timestamp: $.ts}}]\noperators:\n  - name: win\n    plugin: ${{WEIR_PLUGINS}}/{plugin}\n    input: in\n    key_by: $.user\n{window}sinks: [{{name: out, type: stdout, input: win}}]\n"
        );
        let p = dir.path().join("p.yaml");
        std::fs::write(&p, spec).unwrap();
        stderr(&weir(&["validate", p.to_str().unwrap()], &[]))
    };
    let err = run("word_count.wasm", "    window: {type: tumbling, size: 1m}\n");
    assert!(
        err.contains("p.yaml:5: operator 'win': plugin word_count@sha256:")
            && err.contains("implements weir:operator/operator@0.1.0, but its `window:` block needs a window function")
            && err.contains("weir:operator/window-operator@0.2.0"),
        "{err}"
    );
    let err = run("window_count.wasm", "");
    assert!(
        err.contains("p.yaml:5: operator 'win': plugin window_count@sha256:")
            && err.contains("implements weir:operator/window-operator@0.2.0, but an operator without a `window:` block runs a stream operator"),
        "{err}"
    );
    // A window operator's only side output is its late output.
    let spec = "name: w\nsources: [{name: in, type: file, path: x, format: json_lines, timestamp: $.ts}]\noperators:\n  - name: win\n    plugin: p.wasm\n    input: in\n    key_by: $.user\n    window: {type: session, gap: 1m}\nsinks: [{name: out, type: stdout, input: win.dupes}]\n";
    let p = dir.path().join("s.yaml");
    std::fs::write(&p, spec).unwrap();
    let err = stderr(&weir(&["validate", p.to_str().unwrap()], &[]));
    assert!(err.contains("s.yaml:9:1: sink 'out' reads 'win.dupes', but window operator 'win' has one side output, its late output 'late'"), "{err}");
}

/// A checkpointed window job over clicks never late for a 10 s bound (jitter
/// up to 5 s), with a one-minute pause every 1000 clicks (so sessions end).
struct WindowJob {
    dir: tempfile::TempDir,
    spec: std::path::PathBuf,
    /// Every window's final result: no click is late, so each fires once.
    expected: Vec<String>,
}

impl WindowJob {
    fn new(backend: &str, window: &str, clicks: i64) -> WindowJob {
        let dir = tempfile::tempdir().unwrap();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let base = 1_767_225_600_000i64;
        let mut text = String::new();
        let mut records = Vec::new();
        for i in 0..clicks {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let ts = base + i * 100 + (i / 1000) * MIN + (x % 5000) as i64;
            let key = format!("k{}", (x >> 32) % 20);
            text.push_str(&format!("{{\"user\":\"{key}\",\"ts\":{ts}}}\n"));
            records.push((key, ts, Value::Null));
        }
        std::fs::write(dir.path().join("in.jsonl"), text).unwrap();
        let expected = if window.contains("session") {
            reference_sessions(&records, 30_000)
        } else {
            let mut counts: BTreeMap<(&str, i64), u64> = BTreeMap::new();
            for (k, ts, _) in &records {
                *counts.entry((k.as_str(), ts - ts.rem_euclid(MIN))).or_default() += 1;
            }
            norm(counts.iter().map(|((k, s), c)| window_line(k, *s, s + MIN, *c)))
        };
        let spec = format!(
            "name: wk\nstate: {{backend: {backend}, dir: '{}'}}\ncheckpoint: {{interval: 100ms}}\nsources:\n  - {{name: in, type: file, path: '{}', format: json_lines, timestamp: $.ts, watermark: {{out_of_orderness: 10s}}}}\noperators:\n  - {{name: win, plugin: '${{WEIR_PLUGINS}}/window_count.wasm', input: in, key_by: $.user, parallelism: '${{P:2}}', window: {window}}}\nsinks:\n  - {{name: out, type: file, path: '{}', input: win}}\n",
            dir.path().join("state").display(),
            dir.path().join("in.jsonl").display(),
            dir.path().join("out").display()
        );
        let spec_path = dir.path().join("wk.yaml");
        std::fs::write(&spec_path, spec).unwrap();
        WindowJob { dir, spec: spec_path, expected }
    }

    fn spawn(&self, parallelism: &str, extra: &[&str]) -> Child {
        let mut args = vec!["run", "--progress", "0", self.spec.to_str().unwrap()];
        args.extend_from_slice(extra);
        weir_cmd(&args, &[("WEIR_LOG", "info"), ("P", parallelism)]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()
    }

    fn checkpoints(&self) -> Vec<String> {
        crate::common::completed_checkpoints(&self.dir.path().join("state"))
    }

    /// Wait for a checkpoint newer than the current newest; false if the run ended first.
    fn await_checkpoint(&self, child: &mut Child) -> bool {
        let before = self.checkpoints().last().cloned();
        let start = Instant::now();
        while self.checkpoints().last().is_none() || self.checkpoints().last() == before.as_ref() {
            if child.try_wait().unwrap().is_some() {
                return false;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "no checkpoint within 60 s");
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    /// Every window's result published exactly once.
    fn assert_exactly_once(&self, seed: u64) {
        let got = norm(parts(&self.dir.path().join("out")).concat());
        let dups = got.windows(2).filter(|w| w[0] == w[1]).count();
        assert_eq!(dups, 0, "windows published twice (seed {seed})");
        assert_eq!(got.len(), self.expected.len(), "window results (seed {seed})");
        assert!(got == self.expected, "window results differ from the reference (seed {seed})");
    }
}

fn finish(child: Child) -> String {
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "the run failed: {err}");
    err
}

/// Killed (SIGKILL) at random moments and rerun until it completes, a window
/// job publishes each window's result exactly once.
fn killed_window_runs_publish_each_window_once(backend: &str, window: &str) {
    let job = WindowJob::new(backend, window, 1_000_000);
    let mut seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    let start_seed = seed;
    let (mut kills, mut resumed) = (0, 0);
    loop {
        let mut child = job.spawn("2", &[]);
        if kills == 3 || !job.await_checkpoint(&mut child) {
            resumed += usize::from(finish(child).contains("resuming from chk-"));
            break;
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(seed % 150));
        child.kill().unwrap(); // SIGKILL
        let o = child.wait_with_output().unwrap();
        kills += 1;
        resumed += usize::from(String::from_utf8_lossy(&o.stderr).contains("resuming from chk-"));
    }
    assert!(kills >= 2, "only {kills} runs were killed mid-run (seed {start_seed})");
    assert!(resumed >= 2, "only {resumed} runs resumed from a checkpoint (seed {start_seed})");
    job.assert_exactly_once(start_seed);
}

/// Windows and their timers are keyed state: a savepoint of 2 tasks resumes
/// on 3, each taking its key groups' windows.
#[test]
fn a_window_savepoint_restores_at_another_parallelism() {
    let job = WindowJob::new("rocksdb", "{type: session, gap: 30s}", 400_000);
    let mut child = job.spawn("2", &[]);
    assert!(job.await_checkpoint(&mut child), "the run ended before its first checkpoint");
    child.kill().unwrap();
    child.wait().unwrap();
    let o = weir(&["savepoint", job.spec.to_str().unwrap(), "rescale"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = finish(job.spawn("3", &["--from-savepoint", "rescale"]));
    assert!(err.contains("resuming from savepoint 'rescale'"), "{err}");
    job.assert_exactly_once(0);
    let names: Vec<String> =
        std::fs::read_dir(job.dir.path().join("out")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert!(names.iter().any(|n| n.starts_with("part-0002-")), "three window tasks wrote: {names:?}");
}

#[test]
fn a_window_operator_needs_event_time() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.jsonl"), "{\"user\":\"a\"}\n").unwrap();
    let spec = format!(
        "name: w\nsources: [{{name: in, type: file, path: '{}', format: json_lines}}]\noperators: [{{name: win, plugin: '${{WEIR_PLUGINS}}/window_count.wasm', input: in, key_by: $.user, window: {{type: tumbling, size: 1m}}}}]\nsinks: [{{name: out, type: stdout, input: win}}]\n",
        dir.path().join("in.jsonl").display()
    );
    let p = dir.path().join("w.yaml");
    std::fs::write(&p, spec).unwrap();
    let o = weir(&["run", "--progress", "0", p.to_str().unwrap()], &[]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("plugin window_count@sha256:")
            && err.contains("got a record without an event time: a window operator needs timestamps: give its source `timestamp: $.field`")
            && err.contains("line 1 of"),
        "{err}"
    );
}

#[test]
fn killed_tumbling_runs_publish_each_window_once_on_heap() {
    killed_window_runs_publish_each_window_once("heap", "{type: tumbling, size: 1m}");
}

#[test]
fn killed_tumbling_runs_publish_each_window_once_on_rocksdb() {
    killed_window_runs_publish_each_window_once("rocksdb", "{type: tumbling, size: 1m}");
}

#[test]
fn killed_session_runs_publish_each_session_once_on_heap() {
    killed_window_runs_publish_each_window_once("heap", "{type: session, gap: 30s}");
}

#[test]
fn killed_session_runs_publish_each_session_once_on_rocksdb() {
    killed_window_runs_publish_each_window_once("rocksdb", "{type: session, gap: 30s}");
}

/// Without a reader for the late output, late records are counted and a
/// warning names the operator and the side output: never silently dropped.
#[test]
fn unread_late_records_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let spec = std::fs::read_to_string(root().join("examples/tumbling/pipeline.yaml")).unwrap();
    let cut = spec.find("  - name: late\n").expect("the example's late sink");
    let spec = spec[..cut].replace("examples/tumbling/input.jsonl", &root().join("examples/tumbling/input.jsonl").display().to_string());
    let p = dir.path().join("t.yaml");
    std::fs::write(&p, spec).unwrap();
    let out = dir.path().join("out");
    let o = weir(&["run", "--progress", "0", p.to_str().unwrap()], &[("WEIR_OUTPUT", out.to_str().unwrap())]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("records later than the allowed lateness go to side output 'late', which no node reads: they are counted, not kept")
            && err.contains("operator 'per-minute' (task 0): 1 record(s) later than the allowed lateness were not kept: nothing reads its side output 'late'"),
        "{err}"
    );
    assert_eq!(norm(parts(&out).concat()), golden("tumbling", "expected.jsonl"));
}

/// What would fail at start fails `weir validate`: a side output the plugin
/// does not declare, key_by on records that have no such key, and a window
/// whose shape changed under restored state.
#[test]
fn validate_finds_what_would_fail_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, "{\"user\":\"a\",\"ts\":1767225600000}\n{\"user\":\"b\",\"ts\":1767225660000}\n").unwrap();
    let validate = |name: &str, spec: String| {
        let p = dir.path().join(name);
        std::fs::write(&p, spec).unwrap();
        let o = weir(&["validate", p.to_str().unwrap()], &[]);
        assert!(!o.status.success(), "{name} validates");
        stderr(&o)
    };
    // word_count declares no side output.
    let err = validate(
        "side.yaml",
        format!(
            "name: s\nsources: [{{name: in, type: file, path: '{}'}}]\noperators:\n  - {{name: count, plugin: '${{WEIR_PLUGINS}}/word_count.wasm', input: in, config: {{stage: tokenize}}}}\nsinks: [{{name: out, type: stdout, input: count.oops}}]\n",
            input.display()
        ),
    );
    assert!(err.contains("the pipeline reads side output 'oops', but the plugin declares these side outputs: none"), "{err}");
    let lines = |key_by: &str| {
        format!(
            "name: k\nsources: [{{name: in, type: file, path: '{}'}}]\noperators:\n  - {{name: count, plugin: '${{WEIR_PLUGINS}}/word_count.wasm', input: in, key_by: '{key_by}'}}\nsinks: [{{name: out, type: stdout, input: count}}]\n",
            input.display()
        )
    };
    let err = validate("key.yaml", lines("key"));
    assert!(
        err.contains("key.yaml:4:1: operator 'count': key_by: key, but source 'in' reads lines of text (format: lines) without keys, so every record would be under one empty key"),
        "{err}"
    );
    let err = validate("field.yaml", lines("$.user"));
    assert!(err.contains("operator 'count': key_by: $.user, but source 'in' reads lines of text (format: lines), not JSON values, so they have no fields"), "{err}");

    // A window run to its end, kept as a savepoint; then the window's size changes.
    let state = dir.path().join("state");
    let out = dir.path().join("out");
    let window = |size: &str| {
        format!(
            "name: w\nstate: {{dir: '{}'}}\ncheckpoint: {{interval: 1s}}\nsources: [{{name: in, type: file, path: '{}', format: json_lines, timestamp: $.ts}}]\noperators:\n  - {{name: win, plugin: '${{WEIR_PLUGINS}}/window_count.wasm', input: in, key_by: $.user, window: {{type: tumbling, size: {size}}}}}\nsinks: [{{name: out, type: file, path: '{}', input: win}}]\n",
            state.display(),
            input.display(),
            out.display()
        )
    };
    let p = dir.path().join("w.yaml");
    std::fs::write(&p, window("1m")).unwrap();
    let o = weir(&["run", p.to_str().unwrap(), "--progress", "0"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = weir(&["savepoint", p.to_str().unwrap(), "before"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::write(&p, window("5m")).unwrap();
    let o = weir(&["run", p.to_str().unwrap(), "--progress", "0", "--from-savepoint", "before"], &[]);
    let err = stderr(&o);
    assert!(!o.status.success(), "a changed window resumed: {err}");
    assert!(
        err.contains("operator 'win' keeps state of the shape") && err.contains("\"size\":60000") && err.contains("\"size\":300000")
            && err.contains("start afresh (--fresh)"),
        "{err}"
    );
}
