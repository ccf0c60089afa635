//! The sandbox against the `adversary` guest (tests/guests/adversary): call
//! deadlines that hold while a guest waits in WASI, per-task quotas on what a
//! guest makes the host keep or log, errors that name the input row, and the
//! authenticated compiled-plugin cache.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use weir_engine::{Emitter, Operator, OperatorError, Origin, RecordBatch, TaskContext};
use weir_test_support::fixture;
use weir_wasm::{Limits, LoaderConfig, OperatorSettings, PluginLoader, WasmError, WasmOperator};

fn ctx() -> TaskContext {
    TaskContext {
        pipeline: "test".into(),
        node: "a".into(),
        task_index: 0,
        parallelism: 1,
        max_parallelism: 128,
        side_outputs: Vec::new().into(),
        restore: None,
        on_error: Default::default(),
    }
}

fn limits() -> Limits {
    Limits { memory: 32 << 20, call_timeout: Duration::from_secs(1), ..Limits::default() }
}

fn adversary(limits: Limits) -> WasmOperator {
    let loader = PluginLoader::new(LoaderConfig::default()).unwrap();
    let settings = OperatorSettings { limits, ..Default::default() };
    loader.load_file(&fixture("adversary")).unwrap().instantiate(&ctx(), &settings).unwrap()
}

/// Rows `k0`, `k1`, ... with the given commands as values, at offsets 100, 101, ...
fn run(op: &mut WasmOperator, commands: &[&str]) -> Result<Vec<String>, OperatorError> {
    let mut b = RecordBatch::default();
    for (i, c) in commands.iter().enumerate() {
        b.push(format!("k{i}").as_bytes(), c.as_bytes(), 0, Origin::at(100 + i as u64));
    }
    let mut out = Emitter::new(1);
    op.process(b, &mut out)?;
    Ok(out.port(0).rows().map(|r| String::from_utf8_lossy(r.value).into_owned()).collect())
}

fn offset(e: &OperatorError) -> Option<u64> {
    e.origin.map(|o| o.offset)
}

fn wasm_error(e: &OperatorError) -> &WasmError {
    e.source.downcast_ref::<WasmError>().expect("a WasmError")
}

/// Run `f` with the log captured; returns what it logged.
fn logged(f: impl FnOnce()) -> String {
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
    let cap = Capture::default();
    let writer = cap.clone();
    let sub = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
    tracing::subscriber::with_default(sub, f);
    String::from_utf8(cap.0.lock().unwrap().clone()).unwrap()
}

// 1. Deadlines hold while a guest waits in WASI.

/// A guest that waits in WASI (`what`) under a 1 s limit fails after about a
/// second with the deadline error a CPU loop gets, and the thread is free.
fn stopped_while_waiting(what: &str) {
    let mut op = adversary(limits());
    let t0 = Instant::now();
    let err = run(&mut op, &["ok", what]).unwrap_err();
    let elapsed = t0.elapsed();
    assert!(elapsed < Duration::from_secs(5), "{what} stopped after {elapsed:?}");
    assert!(matches!(wasm_error(&err), WasmError::Deadline { .. }), "{err}");
    let looped = run(&mut adversary(limits()), &["ok", "touch-loop"]).unwrap_err();
    assert_eq!(err.to_string(), looped.to_string(), "the same message as a CPU deadline");
    assert!(
        err.to_string().ends_with(
            "in operator 'a' (task 0) exceeded its CPU deadline of 1s per call and was stopped (limits.call_timeout)"
        ),
        "{err}"
    );
    // The thread is free: a new instance runs at once.
    let t0 = Instant::now();
    assert_eq!(run(&mut adversary(limits()), &["ok"]).unwrap(), ["ok"]);
    assert!(t0.elapsed() < Duration::from_secs(2));
}

#[test]
fn a_guest_sleeping_in_wasi_is_stopped_at_the_call_deadline() {
    stopped_while_waiting("sleep");
}

#[test]
fn a_guest_polling_in_wasi_is_stopped_at_the_call_deadline() {
    stopped_while_waiting("poll");
}

#[test]
fn stdin_is_closed_so_reading_it_ends_at_once() {
    let t0 = Instant::now();
    assert_eq!(run(&mut adversary(limits()), &["stdin"]).unwrap(), ["0"]);
    assert!(t0.elapsed() < Duration::from_millis(900), "{:?}", t0.elapsed());
}

// 4. Errors name the row being processed.

#[test]
fn deadline_and_memory_errors_name_the_row_being_processed() {
    let err = run(&mut adversary(limits()), &["ok", "touch-loop"]).unwrap_err();
    assert!(matches!(wasm_error(&err), WasmError::Deadline { .. }), "{err}");
    assert_eq!(offset(&err), Some(101));
    let err = run(&mut adversary(limits()), &["ok", "ok", "touch-sleep"]).unwrap_err();
    assert!(matches!(wasm_error(&err), WasmError::Deadline { .. }), "{err}");
    assert_eq!(offset(&err), Some(102));
    let err = run(&mut adversary(limits()), &["ok", "touch-oom"]).unwrap_err();
    assert!(
        err.to_string().ends_with(&format!("over its limit of {} bytes, and was stopped (limits.memory)", 32 << 20)),
        "{err}"
    );
    assert_eq!(offset(&err), Some(101));
    // A guest that made no state or timer call for the row: the batch's first.
    let err = run(&mut adversary(limits()), &["ok", "sleep"]).unwrap_err();
    assert_eq!(offset(&err), Some(100));
}

#[test]
fn contract_errors_name_the_input_row_when_known() {
    let err = run(&mut adversary(limits()), &["ok", "bad-ends"]).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("broke the operator contract: it emitted a malformed batch (an output of input row 1): key end of row 1 (0) is before the previous one (2)"), "{msg}");
    assert_eq!(offset(&err), Some(101));

    let err = run(&mut adversary(limits()), &["ok", "bad-output"]).unwrap_err();
    let msg = err.to_string();
    assert!(msg.ends_with("its emitted record 1 (an output of input row 1) goes to output 7, but it declared only 0 side outputs"), "{msg}");
    assert_eq!(offset(&err), Some(101));

    // The cause is out of range, so no input row is known: the output row and key are.
    let err = run(&mut adversary(limits()), &["ok", "bad-cause"]).unwrap_err();
    let msg = err.to_string();
    assert!(msg.ends_with("its emitted record 1 (key \"k1\") names input row 99 as its cause, of a 2-row input"), "{msg}");
    assert_eq!(offset(&err), None);
}

// 3. Quotas on host memory and log volume.

#[test]
fn registered_timers_are_capped_per_task() {
    let mut op = adversary(Limits { timers: 100, ..limits() });
    // Registering timers that exist already costs nothing.
    run(&mut op, &["timers:60", "timers:40"]).unwrap();
    run(&mut op, &["timers:60", "timers:40"]).unwrap();
    let err = run(&mut op, &["ok", "timers:41"]).unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("plugin adversary@sha256:"), "{msg}");
    assert!(
        msg.ends_with(
            "in operator 'a' (task 0) tried to register more than 100 timers and was stopped: delete timers it no longer needs, or raise its limit (limits.timers)"
        ),
        "{msg}"
    );
    assert_eq!(offset(&err), Some(101), "names the row that registered it");
    assert_eq!(Limits::default().timers, 1_000_000);
}

#[test]
fn log_lines_are_cut_to_the_line_limit() {
    let log = logged(|| {
        let mut op = adversary(limits());
        run(&mut op, &["log:100000", "print:100000"]).unwrap();
    });
    let cut = format!("… ({} bytes cut)", 100_000 - 8192);
    let line = log.lines().find(|l| l.contains("xxx")).unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains(&format!("{}{cut}", "x".repeat(100))), "{}", &line[line.len() - 200..]);
    assert!(line.len() < 8192 + 300, "{} bytes", line.len());
    assert!(line.contains("adversary@") && line.contains("/a[0]"), "tagged with plugin and operator");
    let line = log.lines().find(|l| l.contains("yyy")).unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains("stream=\"stdout\"") && line.contains(&format!("y{cut}")), "{}", &line[line.len() - 200..]);
    assert!(line.len() < 8192 + 300, "{} bytes", line.len());
}

#[test]
fn log_volume_is_rate_limited_and_drops_are_reported() {
    let log = logged(|| {
        let mut op = adversary(Limits { log_rate: 10_000, ..limits() });
        run(&mut op, &["logs:100"]).unwrap();
        // Dropping the instance reports what its last second dropped.
    });
    // A line of 1000 bytes costs 1001: 9 fit in 10 000 bytes, 91 do not.
    assert_eq!(log.lines().filter(|l| l.contains("zzz")).count(), 9, "{log}");
    let warning = "in operator 'a' (task 0) logged more than 10000 bytes in a second: 91 lines (91091 bytes) dropped (limits.log_rate)";
    let line = log.lines().find(|l| l.contains(warning)).unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains("WARN") && line.contains("plugin adversary@sha256:"), "{line}");
}

#[test]
fn guest_error_and_panic_messages_are_cut() {
    let big = Limits { memory: 128 << 20, ..limits() };
    let err = run(&mut adversary(big.clone()), &["ok", "error:10000000"]).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("returned an error from process: eee"), "{}", &msg[..300]);
    assert!(msg.ends_with(&format!("{}… (9995904 bytes cut)", "e".repeat(100))), "{}", &msg[msg.len() - 200..]);
    assert!(msg.len() < 4096 + 300, "{} bytes", msg.len());
    assert_eq!(offset(&err), Some(101));

    let err = run(&mut adversary(big), &["ok", "panic:10000000"]).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("in process, panicking with 'ppp"), "{}", &msg[..300]);
    assert!(msg.contains(&format!("{}… (9995904 bytes cut)'", "p".repeat(100))), "{}", &msg[msg.len() - 300..]);
    assert!(msg.len() < 4096 + 400, "{} bytes", msg.len());
    assert_eq!(offset(&err), Some(101));
}

// 2. The compiled-plugin cache is authenticated.

fn cache_entries(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|d| d.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    v.sort();
    v
}

#[test]
fn a_corrupted_cache_entry_is_deleted_and_recompiled_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let loader = PluginLoader::new(LoaderConfig { cache_dir: Some(dir.path().into()) }).unwrap();
    loader.load_file(&fixture("adversary")).unwrap();
    let [entry] = &cache_entries(dir.path())[..] else { panic!("one entry") };
    let good = std::fs::read(entry).unwrap();
    // Flip bytes in the middle (in the machine code, likely), many times over.
    for round in 0..5 {
        let mut bad = good.clone();
        let mid = bad.len() / 2 + round * 997;
        bad[mid..mid + 64].iter_mut().for_each(|b| *b ^= 0xa5);
        std::fs::write(entry, &bad).unwrap();
        let log = logged(|| {
            let p = loader.load_file(&fixture("adversary")).unwrap();
            let mut op = p.instantiate(&ctx(), &OperatorSettings { limits: limits(), ..Default::default() }).unwrap();
            assert_eq!(run(&mut op, &["ok", "ok"]).unwrap(), ["ok", "ok"]);
        });
        assert_ne!(std::fs::read(entry).unwrap(), bad, "the entry was replaced");
        assert!(log.contains("compiled plugin cache entry does not verify"), "{log}");
    }
    // The rewritten entry is used as it is.
    let log = logged(|| {
        loader.load_file(&fixture("adversary")).unwrap();
    });
    assert!(!log.contains("does not verify"), "{log}");
}

#[test]
fn a_cache_entry_under_another_plugins_name_is_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let loader = PluginLoader::new(LoaderConfig { cache_dir: Some(dir.path().into()) }).unwrap();
    let misbehave = loader.load_file(&fixture("misbehave")).unwrap();
    let adversary = loader.load_file(&fixture("adversary")).unwrap();
    let entry = |digest: &str| cache_entries(dir.path()).into_iter().find(|p| p.to_string_lossy().contains(digest)).unwrap();
    // Put misbehave's (valid) compilation where adversary's belongs.
    std::fs::copy(entry(&misbehave.meta().digest), entry(&adversary.meta().digest)).unwrap();
    let p = loader.load_file(&fixture("adversary")).unwrap();
    let mut op = p.instantiate(&ctx(), &OperatorSettings { limits: limits(), ..Default::default() }).unwrap();
    assert_eq!(run(&mut op, &["stdin"]).unwrap(), ["0"], "runs adversary, not misbehave");
}

#[cfg(unix)]
#[test]
fn the_cache_key_is_private_and_a_readable_one_is_replaced() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("cache.key");
    PluginLoader::new(LoaderConfig { cache_dir: Some(dir.path().into()) }).unwrap();
    let meta = std::fs::metadata(&key).unwrap();
    assert_eq!((meta.permissions().mode() & 0o777, meta.len()), (0o600, 32));
    let first = std::fs::read(&key).unwrap();
    PluginLoader::new(LoaderConfig { cache_dir: Some(dir.path().into()) }).unwrap();
    assert_eq!(std::fs::read(&key).unwrap(), first, "kept");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    PluginLoader::new(LoaderConfig { cache_dir: Some(dir.path().into()) }).unwrap();
    assert_ne!(std::fs::read(&key).unwrap(), first, "replaced");
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
}
