//! The Wasm host against real components (built by `make plugins`).

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use weir_engine::{Emitter, Operator, OperatorError, Origin, RecordBatch, TaskContext, NO_TIMESTAMP};
use weir_test_support::fixture;
use weir_wasm::{Limits, LoaderConfig, OperatorSettings, PluginLoader, WasmError, WasmOperator};

fn engine() -> PluginLoader {
    PluginLoader::new(LoaderConfig::default()).unwrap()
}

fn ctx(node: &str, side_outputs: &[&str]) -> TaskContext {
    TaskContext {
        pipeline: "test".into(),
        node: node.into(),
        task_index: 0,
        parallelism: 1,
        max_parallelism: 128,
        side_outputs: side_outputs.iter().map(|s| s.to_string()).collect::<Vec<_>>().into(),
        restore: None,
        on_error: Default::default(),
    }
}

fn settings(config: &[(&str, &str)]) -> OperatorSettings {
    OperatorSettings {
        config: config.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        limits: Limits { memory: 32 << 20, call_timeout: Duration::from_millis(300), ..Default::default() },
        ..Default::default()
    }
}

fn instance(plugin: &str, node: &str, config: &[(&str, &str)], side: &[&str]) -> Result<WasmOperator, WasmError> {
    engine().load_file(&fixture(plugin)).unwrap().instantiate(&ctx(node, side), &settings(config))
}

/// Rows (key, value, timestamp) with origins at offsets 100, 101, ...
fn batch(rows: &[(&str, &str, i64)]) -> RecordBatch {
    let mut b = RecordBatch::default();
    for (i, (k, v, t)) in rows.iter().enumerate() {
        b.push(k.as_bytes(), v.as_bytes(), *t, Origin::at(100 + i as u64));
    }
    b
}

fn run(op: &mut WasmOperator, rows: &[(&str, &str, i64)], ports: usize) -> Result<Emitter, OperatorError> {
    let mut out = Emitter::new(ports);
    op.process(batch(rows), &mut out)?;
    Ok(out)
}

fn port(out: &mut Emitter, p: usize) -> Vec<(String, String, u64)> {
    out.port(p)
        .rows()
        .map(|r| (String::from_utf8_lossy(r.key).into(), String::from_utf8_lossy(r.value).into(), r.origin.offset))
        .collect()
}

fn s(k: &str, v: &str, o: u64) -> (String, String, u64) {
    (k.into(), v.into(), o)
}

#[test]
fn word_count_tokenizes_and_counts_across_batches() {
    let mut tok = instance("word_count", "tokenize", &[("stage", "tokenize")], &[]).unwrap();
    let mut out = run(&mut tok, &[("", "Hello, hello WORLD!", 5), ("", "", 6), ("", "x1-y2", 7)], 1).unwrap();
    assert_eq!(
        port(&mut out, 0),
        vec![s("hello", "", 100), s("hello", "", 100), s("world", "", 100), s("x1", "", 102), s("y2", "", 102)]
    );
    assert_eq!(out.port(0).timestamps, vec![5, 5, 5, 7, 7], "outputs keep their input's event time");

    let mut count = instance("word_count", "count", &[], &[]).unwrap();
    let mut out = run(&mut count, &[("a", "", 0), ("b", "", 0), ("a", "", 0)], 1).unwrap();
    assert_eq!(
        port(&mut out, 0),
        vec![
            s("a", r#"{"word":"a","count":1}"#, 100),
            s("b", r#"{"word":"b","count":1}"#, 101),
            s("a", r#"{"word":"a","count":2}"#, 102)
        ]
    );
    let mut out = run(&mut count, &[("b", "", 0), ("say \"hi\"", "", 0)], 1).unwrap();
    assert_eq!(
        port(&mut out, 0),
        vec![s("b", r#"{"word":"b","count":2}"#, 100), s("say \"hi\"", r#"{"word":"say \"hi\"","count":1}"#, 101)]
    );
}

#[test]
fn value_state_is_per_key_within_and_across_batches() {
    let mut op = instance("misbehave", "m", &[], &[]).unwrap();
    let rows = [("a", "count", 0), ("b", "count", 0), ("a", "count", 0), ("a", "reset", 0), ("b", "count", 0), ("a", "count", 0)];
    let got: Vec<_> = port(&mut run(&mut op, &rows, 1).unwrap(), 0).into_iter().map(|(k, v, _)| (k, v)).collect();
    let want = [("a", "1"), ("b", "1"), ("a", "2"), ("a", "reset"), ("b", "2"), ("a", "1")];
    assert_eq!(got, want.map(|(k, v)| (k.to_string(), v.to_string())));
    // Written back at the end of the batch; a cleared key stays cleared.
    let got: Vec<_> = port(&mut run(&mut op, &[("b", "count", 0), ("a", "count", 0), ("c", "reset", 0), ("c", "count", 0)], 1).unwrap(), 0)
        .into_iter()
        .map(|(k, v, _)| (k, v))
        .collect();
    let want = [("b", "3"), ("a", "2"), ("c", "reset"), ("c", "1")];
    assert_eq!(got, want.map(|(k, v)| (k.to_string(), v.to_string())));
}

#[test]
fn dedup_uses_map_state_a_side_output_and_a_counter() {
    let mut op = instance("dedup", "dedup", &[], &["duplicates"]).unwrap();
    let mut out = run(&mut op, &[("u1", "x", 0), ("u2", "x", 0), ("u1", "x", 0), ("u1", "y", 0), ("u1", "x", 0)], 2).unwrap();
    assert_eq!(port(&mut out, 0), vec![s("u1", "x", 100), s("u2", "x", 101), s("u1", "y", 103)]);
    assert_eq!(
        port(&mut out, 1),
        vec![
            s("u1", r#"{"key":"u1","seen":2,"value":"x"}"#, 102),
            s("u1", r#"{"key":"u1","seen":3,"value":"x"}"#, 104)
        ]
    );
    assert_eq!(op.counters(), vec![("duplicates".to_string(), 2)]);

    // Nobody reads the side output: its records are counted, not delivered.
    let mut op = instance("dedup", "dedup", &[], &[]).unwrap();
    let mut out = run(&mut op, &[("u", "x", 0), ("u", "x", 0)], 1).unwrap();
    assert_eq!(port(&mut out, 0), vec![s("u", "x", 100)]);
    assert_eq!(op.unconsumed, 1);
}

#[test]
fn state_ttl_expires_entries() {
    let mut op = instance("dedup", "dedup", &[("ttl_ms", "100")], &["duplicates"]).unwrap();
    let mut out = run(&mut op, &[("u", "x", 0), ("u", "x", 0)], 2).unwrap();
    assert_eq!((out.port(0).len(), out.port(1).len()), (1, 1));
    std::thread::sleep(Duration::from_millis(250));
    let mut out = run(&mut op, &[("u", "x", 0)], 2).unwrap();
    assert_eq!(port(&mut out, 0), vec![s("u", "x", 100)], "the remembered value expired");
}

#[test]
fn a_side_output_the_plugin_does_not_declare_fails_open() {
    let err = instance("dedup", "dd", &[], &["late"]).err().unwrap().to_string();
    assert_eq!(
        err,
        format!(
            "plugin {} failed to open operator 'dd' (task 0): the pipeline reads side output 'late', but the plugin declares these side outputs: duplicates",
            engine().load_file(&fixture("dedup")).unwrap().meta()
        )
    );
}

#[test]
fn an_infinite_loop_is_stopped_at_the_deadline_and_the_host_goes_on() {
    let mut op = instance("misbehave", "m", &[], &[]).unwrap();
    let t0 = std::time::Instant::now();
    let err = run(&mut op, &[("k", "fine", 0), ("k", "loop", 0)], 1).unwrap_err();
    let elapsed = t0.elapsed();
    let msg = err.to_string();
    assert!(msg.starts_with("plugin misbehave@sha256:"), "{msg}");
    assert!(
        msg.ends_with("in operator 'm' (task 0) exceeded its CPU deadline of 300ms per call and was stopped (limits.call_timeout)"),
        "{msg}"
    );
    assert!(elapsed < Duration::from_secs(5), "stopped after {elapsed:?}");
    assert_eq!(err.origin, Some(Origin::at(100)), "no state or timer call for the looping row: names the batch");
    // A new instance works.
    let mut op = instance("misbehave", "m", &[], &[]).unwrap();
    assert_eq!(port(&mut run(&mut op, &[("k", "fine", 0)], 1).unwrap(), 0), vec![s("k", "fine", 100)]);
}

#[test]
fn memory_is_capped() {
    let mut op = instance("misbehave", "m", &[], &[]).unwrap();
    let msg = run(&mut op, &[("k", "oom", 0)], 1).unwrap_err().to_string();
    assert!(msg.contains("in operator 'm' (task 0) tried to grow its memory to"), "{msg}");
    assert!(msg.ends_with(&format!("over its limit of {} bytes, and was stopped (limits.memory)", 32 << 20)), "{msg}");
}

#[test]
fn a_panic_names_the_record_and_the_message() {
    let mut op = instance("misbehave", "m", &[], &[]).unwrap();
    let err = run(&mut op, &[("k1", "fine", 0), ("k2", "fine", 0), ("k3", "panic", 0)], 1).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("trapped in operator 'm' (task 0) in process, panicking with 'bad record k3 (at "), "{msg}");
    assert_eq!(err.origin, Some(Origin::at(102)));
}

#[test]
fn a_guest_error_names_the_record() {
    let mut op = instance("misbehave", "m", &[], &[]).unwrap();
    let err = run(&mut op, &[("k1", "fine", 0), ("k2", "error", 0)], 1).unwrap_err();
    assert!(err.to_string().ends_with("in operator 'm' (task 0) returned an error from process: cannot handle record k2"), "{err}");
    assert_eq!(err.origin, Some(Origin::at(101)));
}

#[test]
fn open_errors_and_no_capabilities() {
    let err = instance("misbehave", "m", &[("fail_open", "missing setting 'x'")], &[]).err().unwrap().to_string();
    assert!(err.ends_with("failed to open operator 'm' (task 0): missing setting 'x'"), "{err}");
    let err = instance("misbehave", "m", &[("read_file", "1")], &[]).err().unwrap().to_string();
    assert!(err.contains("failed to open operator 'm' (task 0): no file access:"), "{err}");
    // The environment is empty.
    instance("misbehave", "m", &[("read_env", "1")], &[]).unwrap();
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn guest_stdout_and_stderr_go_to_the_log_tagged_with_the_plugin() {
    let cap = Capture::default();
    let writer = cap.clone();
    let sub = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
    tracing::subscriber::with_default(sub, || {
        instance("misbehave", "talker", &[("print", "hello from the guest")], &[]).unwrap();
    });
    let log = String::from_utf8(cap.0.lock().unwrap().clone()).unwrap();
    let line = log.lines().find(|l| l.contains("stream=\"stdout\"")).unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains("hello from the guest") && line.contains("/talker[0]") && line.contains("misbehave@"), "{line}");
    assert!(log.lines().any(|l| l.contains("stream=\"stderr\"") && l.contains("stderr: hello from the guest")), "{log}");
}

#[test]
fn event_time_timers_fire_in_order_at_the_end_of_input() {
    let mut op = instance("misbehave", "m", &[], &[]).unwrap();
    run(&mut op, &[("a", "fine", 0), ("b", "timer", 200), ("a", "timer", 100), ("a", "timer", 100)], 1).unwrap();
    let mut out = Emitter::new(1);
    op.finish(&mut out).unwrap();
    let fired: Vec<_> = out.port(0).rows().map(|r| (String::from_utf8_lossy(r.key).into_owned(), String::from_utf8_lossy(r.value).into_owned(), r.timestamp)).collect();
    assert_eq!(
        fired,
        vec![("a".into(), "timer 110 n=1".into(), 110), ("b".into(), "timer 210 n=0".into(), 210)],
        "deduplicated per key and time, with the key's state in scope"
    );
}

#[test]
fn event_time_timers_fire_when_the_watermark_passes_them() {
    let mut op = instance("misbehave", "m", &[], &[]).unwrap();
    run(&mut op, &[("b", "timer", 200), ("a", "timer", 100)], 1).unwrap();
    let fired = |op: &mut WasmOperator, wm: i64| {
        let mut out = Emitter::new(1);
        op.on_watermark(wm, &mut out).unwrap();
        out.port(0).rows().map(|r| String::from_utf8_lossy(r.value).into_owned()).collect::<Vec<_>>()
    };
    assert_eq!(fired(&mut op, 109), Vec::<String>::new(), "a's timer is at 110");
    assert_eq!(fired(&mut op, 110), vec!["timer 110 n=0"]);
    assert_eq!(fired(&mut op, 150), Vec::<String>::new(), "each timer fires once");
    run(&mut op, &[("c", "timer", 120)], 1).unwrap(); // 130: already due at the next watermark
    assert_eq!(fired(&mut op, 151), vec!["timer 130 n=0"]);
    assert_eq!(fired(&mut op, 1000), vec!["timer 210 n=0"]);
    let mut out = Emitter::new(1);
    op.finish(&mut out).unwrap();
    assert!(out.port(0).is_empty(), "nothing left for the end of input");
}

#[test]
fn loading_refuses_what_is_not_an_operator_component() {
    let e = engine();
    let err = e.load("junk", Some("1.0"), b"definitely not wasm").err().unwrap().to_string();
    assert_eq!(err, "plugin junk@1.0 is not a WebAssembly binary (it does not start with \"\\0asm\")");
    let err = e.load("core", Some("1.0"), b"\0asm\x01\0\0\0").err().unwrap().to_string();
    assert!(err.starts_with("plugin core@1.0 is a core WebAssembly module, not a component"), "{err}");
    let err = e.load_file(&fixture("not-an-operator")).err().unwrap().to_string();
    assert!(err.starts_with("plugin not-an-operator@sha256:"), "{err}");
    assert!(err.contains("does not implement the weir:operator/operator@0.1.0 world"), "{err}");
    assert!(err.contains("weir:operator/handler@0.1.0"), "names the missing export: {err}");
    let err = e.load_file(std::path::Path::new("/nonexistent/x.wasm")).err().unwrap().to_string();
    assert!(err.starts_with("cannot read plugin file /nonexistent/x.wasm:"), "{err}");
    let _ = NO_TIMESTAMP;
}

#[test]
fn compiled_components_are_cached_by_content_and_a_bad_cache_entry_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let e = PluginLoader::new(LoaderConfig { cache_dir: Some(dir.path().into()) }).unwrap();
    let p = e.load_file(&fixture("word_count")).unwrap();
    let entries: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|d| d.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    assert_eq!(entries.len(), 1);
    let cached = &entries[0];
    assert!(cached.file_name().unwrap().to_string_lossy().starts_with(&p.meta().digest));
    let size = std::fs::metadata(cached).unwrap().len();
    // Loaded from the cache: instantiating and running it works.
    let p2 = e.load_file(&fixture("word_count")).unwrap();
    let mut op = p2.instantiate(&ctx("c", &[]), &settings(&[])).unwrap();
    assert_eq!(run(&mut op, &[("w", "", 0)], 1).unwrap().port(0).len(), 1);
    // A corrupt entry is ignored and rewritten.
    std::fs::write(cached, b"garbage").unwrap();
    e.load_file(&fixture("word_count")).unwrap();
    assert_eq!(std::fs::metadata(cached).unwrap().len(), size);
}
