//! One behaviour, three SDKs: the Rust, Python and JavaScript word counts and
//! conformance guests (`tests/guests/conformance`, `tests/conformance/{python,js}`)
//! must give byte-identical output, and errors raised by guests must surface
//! naming the plugin. Also `weir new --lang` / `weir build` for Python and JS.


use std::path::Path;
use std::process::Command;

use crate::common::{parts, reference_counts, run_scaffolded_counter, stderr, weir, words_text};
use weir_test_support::{fixture, root};

/// The three word-count pipelines, which differ only in their plugin.
const WORDCOUNT_SPECS: [&str; 3] =
    ["examples/wordcount/pipeline.yaml", "examples/wordcount/pipeline-py.yaml", "examples/wordcount/pipeline-js.yaml"];

/// The three conformance guests.
const GUESTS: [&str; 3] = ["conformance", "conformance_py", "conformance_js"];

/// Run a word-count spec on `input`; its output lines, sorted.
fn wordcount(spec: &str, input: &Path) -> Vec<String> {
    let (out, state) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let o = weir(
        &["run", "--progress", "0", spec],
        &[
            ("WEIR_INPUT", input.to_str().unwrap()),
            ("WEIR_OUTPUT", out.path().to_str().unwrap()),
            ("WEIR_STATE", state.path().to_str().unwrap()),
        ],
    );
    assert!(o.status.success(), "{spec}: {}", stderr(&o));
    let mut lines = parts(out.path()).concat();
    lines.sort();
    lines
}

#[test]
fn word_counts_agree_on_the_example() {
    let input = root().join("examples/wordcount/input.txt");
    let golden = std::fs::read_to_string(root().join("examples/wordcount/expected.jsonl")).unwrap();
    let mut golden: Vec<String> = golden.lines().map(str::to_string).collect();
    golden.sort();
    for spec in WORDCOUNT_SPECS {
        assert_eq!(wordcount(spec, &input), golden, "{spec}");
    }
}

#[test]
fn word_counts_agree_on_a_larger_input() {
    // ~100k words over a skewed vocabulary, with punctuation, case and non-ASCII.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("big.txt");
    let text = words_text(10_000, 7);
    std::fs::write(&input, &text).unwrap();
    let reference = reference_counts(&text);
    for spec in WORDCOUNT_SPECS {
        let got = wordcount(spec, &input);
        assert!(got == reference, "{spec}: {} lines, reference {}", got.len(), reference.len());
    }
}

/// A conformance pipeline over `input` (JSON lines keyed by `$.k`), with the
/// main output in `dir/out` and the side output `large` in `dir/large`.
fn conformance_spec(dir: &Path, guest: &str, input: &Path) -> String {
    let p = dir.join(format!("{guest}.yaml"));
    let body = format!(
        "name: conformance
sources: [{{name: in, type: file, path: '{input}', format: json_lines}}]
operators: [{{name: conf, plugin: '{plugin}', input: in, key_by: '$.k', parallelism: 2}}]
sinks:
  - {{name: out, type: file, path: '{out}', input: conf}}
  - {{name: large, type: file, path: '{large}', input: conf.large}}
",
        input = input.display(),
        plugin = fixture(guest).display(),
        out = dir.join("out").display(),
        large = dir.join("large").display(),
    );
    std::fs::write(&p, body).unwrap();
    p.display().to_string()
}

/// `records` JSON lines over 7 keys with values in 0..=10; the `fail_at`th
/// record, if any, is marked to fail.
fn conformance_input(records: usize, fail_at: Option<usize>) -> String {
    let mut x = 11u64;
    let mut s = String::new();
    for i in 0..records {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let (k, n) = ((x >> 33) % 7, (x >> 40) % 11);
        let fail = if fail_at == Some(i) { ",\"fail\":true" } else { "" };
        s.push_str(&format!("{{\"k\":\"k{k}\",\"n\":{n}{fail}}}\n"));
    }
    s
}

#[test]
fn conformance_guests_agree_on_state_timers_and_side_outputs() {
    let input_dir = tempfile::tempdir().unwrap();
    let input = input_dir.path().join("in.jsonl");
    std::fs::write(&input, conformance_input(500, None)).unwrap();
    let mut results = Vec::new();
    for guest in GUESTS {
        let dir = tempfile::tempdir().unwrap();
        let o = weir(&["run", "--progress", "0", &conformance_spec(dir.path(), guest, &input)], &[]);
        assert!(o.status.success(), "{guest}: {}", stderr(&o));
        let mut out = parts(&dir.path().join("out")).concat();
        let mut neg = parts(&dir.path().join("large")).concat();
        out.sort();
        neg.sort();
        results.push((guest, out, neg));
    }
    let (_, out, neg) = &results[0];
    // Sanity of the reference: every record, one timer per key, the large ones.
    assert_eq!(out.len(), 500 + 7, "{out:?}");
    assert_eq!(out.iter().filter(|l| l.contains("\"timer\":1000")).count(), 7);
    assert!(out.iter().any(|l| l.contains("\"prev\":null")) && out.iter().any(|l| l.contains("\"n\":0,")));
    assert!(out.iter().all(|l| !l.contains("\"timer\"") || l.contains("\"last\":")));
    let large = |l: &&String| ["\"n\":8,", "\"n\":9,", "\"n\":10,"].iter().any(|n| l.contains(n));
    assert_eq!(neg.len(), out.iter().filter(large).count());
    assert!(!neg.is_empty());
    for (guest, o, n) in &results[1..] {
        assert!(o == out, "{guest}: main output differs from Rust's:\n{}", first_difference(out, o));
        assert!(n == neg, "{guest}: side output differs from Rust's:\n{}", first_difference(neg, n));
    }
}

fn first_difference(a: &[String], b: &[String]) -> String {
    let i = a.iter().zip(b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()));
    format!("line {i}: rust {:?}, other {:?} ({} vs {} lines)", a.get(i), b.get(i), a.len(), b.len())
}

#[test]
fn an_error_raised_by_a_guest_names_the_plugin_and_its_message() {
    let input_dir = tempfile::tempdir().unwrap();
    let input = input_dir.path().join("in.jsonl");
    let text = conformance_input(40, Some(17));
    std::fs::write(&input, &text).unwrap();
    let marked = text.lines().nth(17).unwrap();
    let v: serde_json::Value = serde_json::from_str(marked).unwrap();
    let message = format!("conformance failure on key {} (n={})", v["k"].as_str().unwrap(), v["n"]);
    for guest in GUESTS {
        let dir = tempfile::tempdir().unwrap();
        let o = weir(&["run", "--progress", "0", &conformance_spec(dir.path(), guest, &input)], &[]);
        assert_eq!(o.status.code(), Some(1), "{guest}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains(&format!("plugin {guest}@sha256:")), "{guest}: {err}");
        assert!(err.contains(&message), "{guest}: {err}");
        assert!(err.contains("at line 18 of"), "{guest}: {err}");
    }
}

/// `weir new NAME --lang LANG`, `weir build`, and a run of the built plugin
/// counting generated records per key.
fn new_build_run(lang: &str) {
    let dir = tempfile::tempdir().unwrap();
    let weir_bin = env!("CARGO_BIN_EXE_weir");
    let o = Command::new(weir_bin).args(["new", "hello-op", "--lang", lang]).current_dir(dir.path()).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let plugin_dir = dir.path().join("hello-op");
    // A CARGO_TARGET_DIR of another project must not hide the component builders.
    let other = tempfile::tempdir().unwrap();
    let o = Command::new(weir_bin).args(["build", plugin_dir.to_str().unwrap()]).env("CARGO_TARGET_DIR", other.path()).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let wasm = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(wasm.ends_with("hello_op.wasm") && Path::new(&wasm).exists(), "{wasm}");
    assert!(stderr(&o).contains("implementing weir:operator/operator@0.1.0"), "{}", stderr(&o));

    run_scaffolded_counter(dir.path(), &wasm);
}

#[test]
fn new_build_run_a_scaffolded_python_plugin() {
    new_build_run("python");
}

#[test]
fn a_python_syntax_error_is_reported_with_its_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let weir_bin = env!("CARGO_BIN_EXE_weir");
    let o = Command::new(weir_bin).args(["new", "broken", "--lang", "python"]).current_dir(dir.path()).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let app = dir.path().join("broken/app.py");
    let mut text = std::fs::read_to_string(&app).unwrap();
    text.push_str("\ndef oops(:\n    pass\n");
    let line = text.lines().position(|l| l == "def oops(:").unwrap() + 1;
    std::fs::write(&app, text).unwrap();
    let o = Command::new(weir_bin).args(["build", dir.path().join("broken").to_str().unwrap()]).output().unwrap();
    assert!(!o.status.success());
    let err = stderr(&o);
    let expected = format!("error: syntax error in {}, line {line}: ", app.canonicalize().unwrap().display());
    assert!(err.trim().starts_with(&expected), "{err}");
    assert!(!err.contains("install"), "{err}");
}

#[test]
fn new_build_run_a_scaffolded_js_plugin() {
    new_build_run("js");
}
