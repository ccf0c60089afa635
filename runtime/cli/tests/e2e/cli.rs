//! `weir` end to end, as a user runs it.


use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use crate::common::{parts, reference_counts, run_scaffolded_counter, stderr, weir, words_text};
use weir_test_support::{fixture, root};

#[test]
fn wordcount_example_matches_its_golden_output() {
    let out = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let o = weir(
        &["run", "examples/wordcount/pipeline.yaml"],
        &[("WEIR_OUTPUT", out.path().to_str().unwrap()), ("WEIR_STATE", state.path().to_str().unwrap())],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let files = parts(out.path());
    assert_eq!(files.len(), 2, "one part per parallel count task");
    let mut got: Vec<String> = files.concat();
    got.sort();
    let golden = std::fs::read_to_string(root().join("examples/wordcount/expected.jsonl")).unwrap();
    assert_eq!(got, golden.lines().collect::<Vec<_>>());
    assert_eq!(got, reference_counts(&std::fs::read_to_string(root().join("examples/wordcount/input.txt")).unwrap()));
    assert!(stderr(&o).contains("pipeline 'wordcount' finished in"), "{}", stderr(&o));
}

#[test]
fn every_running_count_appears_exactly_once_on_a_large_input() {
    // 30k lines, ~300k words over a skewed vocabulary, with punctuation and case.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("big.txt");
    let text = words_text(30_000, 42);
    std::fs::write(&input, &text).unwrap();
    let out = dir.path().join("out");
    let o = weir(
        &["run", "examples/wordcount/pipeline.yaml", "--progress", "0"],
        &[
            ("WEIR_INPUT", input.to_str().unwrap()),
            ("WEIR_OUTPUT", out.to_str().unwrap()),
            ("WEIR_STATE", dir.path().join("state").to_str().unwrap()),
            ("WEIR_CHECKPOINT_INTERVAL", "50ms"),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let files = parts(&out);
    let mut got = files.concat();
    got.sort();
    let expected = reference_counts(&text);
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "output differs from the reference word count");
    // Within a part, each word's counts arrive in order (one task owns a word).
    for file in &files {
        let mut last: HashMap<String, u64> = HashMap::new();
        for line in file {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let (w, n) = (v["word"].as_str().unwrap(), v["count"].as_u64().unwrap());
            let prev = last.insert(w.to_string(), n).unwrap_or(0);
            assert_eq!(n, prev + 1, "word {w}");
        }
    }
}

fn write_spec(dir: &Path, body: &str) -> String {
    let p = dir.join("pipeline.yaml");
    std::fs::write(&p, body).unwrap();
    p.display().to_string()
}

#[test]
fn a_panicking_plugin_fails_the_run_with_plugin_operator_and_record() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "fine\nfine\npanic\nfine\n").unwrap();
    let spec = write_spec(
        dir.path(),
        &format!(
            "name: bad\nsources: [{{name: in, type: file, path: {}}}]\noperators: [{{name: m, plugin: {}, input: in}}]\nsinks: [{{name: out, type: stdout, input: m}}]\n",
            input.display(),
            fixture("misbehave").display()
        ),
    );
    let o = weir(&["run", &spec], &[]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    let expected_start = format!(
        "error: pipeline 'bad' failed: operator 'm' (task 0 of 1) failed on the record from source 'in' at line 3 of {}: plugin misbehave@sha256:",
        input.display()
    );
    assert!(err.starts_with(&expected_start), "{err}");
    assert!(err.contains("trapped in operator 'm' (task 0) in process, panicking with 'bad record  (at "), "{err}");
}

#[test]
fn event_time_timers_fire_at_the_watermark_and_a_record_without_a_timestamp_fails_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.jsonl");
    // Out of order by up to 50 ms; each "timer" record asks for a timer 10 ms after it.
    let events = [(100, "timer"), (150, "fine"), (120, "fine"), (400, "fine"), (380, "timer"), (700, "fine")];
    let text: String = events.iter().map(|(t, c)| format!("{{\"ts\":{t},\"cmd\":\"{c}\"}}\n")).collect();
    std::fs::write(&input, &text).unwrap();
    let spec = |path: &Path| {
        write_spec(
            dir.path(),
            &format!(
                "name: et\nbatch: {{size: 1}}\nsources:\n  - {{name: in, type: file, format: json_lines, path: {}, timestamp: $.ts, watermark: {{out_of_orderness: 50ms}}}}\noperators: [{{name: m, plugin: {}, input: in}}]\nsinks: [{{name: out, type: stdout, input: m}}]\n",
                path.display(),
                fixture("misbehave").display()
            ),
        )
    };
    // The misbehave guest takes "cmd" as its command: "timer" registers an
    // event-time timer 10 ms later; others are counted and passed on.
    let o = weir(&["run", &spec(&input)], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let expected = [
        r#"{"ts":150,"cmd":"fine"}"#,
        r#"{"ts":120,"cmd":"fine"}"#,
        r#"{"ts":400,"cmd":"fine"}"#, // the watermark moves to 400 - 50 - 1 = 349 > 110
        "timer 110 n=3",
        r#"{"ts":700,"cmd":"fine"}"#, // 649 > 390
        "timer 390 n=4",
    ];
    assert_eq!(stdout.lines().collect::<Vec<_>>(), expected, "{}", stderr(&o));

    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"ts\":1}\n{\"at\":2}\n").unwrap();
    let o = weir(&["run", &spec(&bad)], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim(),
        format!(
            "error: pipeline 'et' failed: source 'in' (task 0 of 1) failed: cannot take the event time on the record from source 'in' at line 2 of {}: value has no timestamp field 'ts'",
            bad.display()
        )
    );
}

#[test]
fn an_endless_loop_is_stopped_by_the_call_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "fine\nloop\n").unwrap();
    let spec = write_spec(
        dir.path(),
        &format!(
            "name: spin\nsources: [{{name: in, type: file, path: {}}}]\noperators:\n  - {{name: m, plugin: {}, input: in, limits: {{call_timeout: 200ms}}}}\nsinks: [{{name: out, type: stdout, input: m}}]\n",
            input.display(),
            fixture("misbehave").display()
        ),
    );
    let o = weir(&["run", &spec], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("exceeded its CPU deadline of 200ms per call and was stopped (limits.call_timeout)"), "{}", stderr(&o));
}

#[test]
fn an_invalid_spec_fails_before_running_and_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let spec = write_spec(
        dir.path(),
        &format!(
            "name: x\nsources: [{{name: g, type: generator}}]\nsinks:\n  - name: out\n    type: file\n    path: {}\n    input: nope\n",
            out.display()
        ),
    );
    let o = weir(&["run", &spec], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o).trim(), format!("error: {spec}:7:12: sinks[0].input: no source or operator is named 'nope' (there are: g)"));
    assert!(!out.exists(), "nothing ran");
    let o = weir(&["run", "/nonexistent.yaml"], &[]);
    assert!(stderr(&o).starts_with("error: /nonexistent.yaml: cannot read:"), "{}", stderr(&o));
}

#[test]
fn validate_and_progress() {
    let o = weir(&["validate", "examples/wordcount/pipeline.yaml"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.starts_with("examples/wordcount/pipeline.yaml: pipeline 'wordcount' is valid: 1 sources, 2 operators, 1 sinks"), "{stdout}");
    assert!(stdout.contains("operator 'count': plugin word_count@sha256:"), "{stdout}");

    // A rate-limited generator for ~1.2 s prints progress lines.
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(
        dir.path(),
        &format!(
            "name: slow\nsources: [{{name: gen, type: generator, count: 600, rate: 500}}]\noperators: [{{name: c, plugin: {}, input: gen, key_by: key}}]\nsinks: [{{name: out, type: file, path: {}, input: c}}]\n",
            fixture("word_count").display(),
            dir.path().join("out").display()
        ),
    );
    let o = weir(&["run", &spec, "--progress", "300ms"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    let progress: Vec<_> = err.lines().filter(|l| l.starts_with('[') && l.contains("gen: in")).collect();
    assert!(progress.len() >= 2, "{err}");
    assert!(progress[0].contains("| c: in ") && progress[0].contains("| out: in "), "{}", progress[0]);
    assert_eq!(parts(&dir.path().join("out")).concat().len(), 600);
}

#[test]
fn new_build_run_a_scaffolded_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_weir")).args(["new", "hello-op"]).current_dir(dir.path()).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let plugin_dir = dir.path().join("hello-op");
    assert!(plugin_dir.join("src/lib.rs").exists());
    // Share the workspace's target dir so the guest's dependencies build once.
    let o = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["build", plugin_dir.to_str().unwrap()])
        .env("CARGO_TARGET_DIR", root().join("target"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let wasm = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(wasm.ends_with("wasm32-wasip2/release/hello_op.wasm"), "{wasm}");
    assert!(stderr(&o).contains("implementing weir:operator/operator@0.1.0"), "{}", stderr(&o));

    run_scaffolded_counter(dir.path(), &wasm);

    let o = Command::new(env!("CARGO_BIN_EXE_weir")).args(["new", "hello-op"]).current_dir(dir.path()).output().unwrap();
    assert!(stderr(&o).contains("hello-op already exists"), "{}", stderr(&o));
    let o = Command::new(env!("CARGO_BIN_EXE_weir")).args(["build", dir.path().to_str().unwrap()]).output().unwrap();
    assert!(stderr(&o).contains("has no Cargo.toml"), "{}", stderr(&o));
}
