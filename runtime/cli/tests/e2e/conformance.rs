//! One behaviour, three SDKs: the Rust, Python and JavaScript word counts and
//! conformance guests (`tests/guests/conformance`, `tests/conformance/{python,js}`)
//! must give byte-identical output, and errors raised by guests must surface
//! naming the plugin. Also `weir new --lang` / `weir build` for Python and JS.
//! The changelog guests (`weir:operator@0.3.0`: `tests/guests/changelog-count`,
//! `tests/conformance/changelog-{python,js}`) read Debezium changes with their
//! row kinds and write an updating aggregate's changelog, byte-identical too.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use crate::common::{apply_changelog, count_by_group, parts, reference_counts, run_scaffolded_counter, stderr, weir, words_text};
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

/// The three changelog conformance guests (`weir:operator@0.3.0`).
const CHANGELOG_GUESTS: [&str; 3] = ["changelog_count", "changelog_count_py", "changelog_count_js"];

/// Seeded Debezium change events (one per line) of a table `t (id, g,
/// amount)`: snapshot reads, inserts, updates within a group and across
/// groups, deletes; and the table they leave, by id.
fn table_changes(seed: u64, changes: usize) -> (String, BTreeMap<i64, serde_json::Value>) {
    let mut x = seed;
    let mut next = move |n: u64| {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (x >> 33) % n
    };
    let mut lines = String::new();
    let mut table: BTreeMap<i64, serde_json::Value> = BTreeMap::new();
    let mut event = |op: &str, before: Option<&serde_json::Value>, after: Option<&serde_json::Value>| {
        let e = serde_json::json!({"before": before, "after": after, "op": op, "source": {"schema": "public", "table": "t"}});
        lines.push_str(&e.to_string());
        lines.push('\n');
    };
    let mut new_id = 0;
    for i in 0..changes {
        let pick = |table: &BTreeMap<i64, serde_json::Value>, n: u64| *table.keys().nth(n as usize % table.len()).unwrap();
        // About as many inserts as deletes over 40 groups: groups come and go.
        match if i < 30 { 0 } else { next(20) } {
            0..5 => {
                let row = serde_json::json!({"id": new_id, "g": format!("g{}", next(40)), "amount": next(100)});
                event(if i < 30 { "r" } else { "c" }, None, Some(&row));
                table.insert(new_id, row);
                new_id += 1;
            }
            5..15 => {
                let id = pick(&table, next(1 << 20));
                let before = table[&id].clone();
                // Half the updates move the row to another group.
                let g = if next(2) == 0 { before["g"].clone() } else { format!("g{}", next(40)).into() };
                let after = serde_json::json!({"id": id, "g": g, "amount": next(100)});
                event("u", Some(&before), Some(&after));
                table.insert(id, after);
            }
            _ if table.len() > 5 => {
                let id = pick(&table, next(1 << 20));
                let before = table.remove(&id).unwrap();
                event("d", Some(&before), None);
            }
            _ => {}
        }
    }
    (lines, table)
}

#[test]
fn changelog_guests_agree_and_their_changelog_applies_to_the_group_by() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("changes.jsonl");
    let (text, table) = table_changes(7, 3000);
    std::fs::write(&input, &text).unwrap();
    let want = count_by_group(table.values());
    let mut reference: Option<Vec<Vec<String>>> = None;
    for guest in CHANGELOG_GUESTS {
        let out = dir.path().join(guest);
        let spec = dir.path().join(format!("{guest}.yaml"));
        std::fs::write(
            &spec,
            format!(
                "name: changelog\nsources: [{{name: t, type: file, path: '{}', format: debezium-json}}]\n\
                 operators: [{{name: count, plugin: '{}', input: t, key_by: $.g, parallelism: 2}}]\n\
                 sinks: [{{name: out, type: file, path: '{}', input: count, format: changelog-json}}]\n",
                input.display(),
                fixture(guest).display(),
                out.display()
            ),
        )
        .unwrap();
        let o = weir(&["run", "--progress", "0", spec.to_str().unwrap()], &[]);
        assert!(o.status.success(), "{guest}: {}", stderr(&o));
        let got = parts(&out);
        let applied = apply_changelog(&got.concat());
        assert_eq!(applied, want, "{guest}: the changelog applied to a table is not the GROUP BY");
        match &reference {
            None => {
                let all = got.concat();
                for op in ["+I", "-U", "+U", "-D"] {
                    assert!(all.iter().any(|l| l.contains(&format!("\"op\":\"{op}\""))), "no {op} row");
                }
                reference = Some(got);
            }
            Some(r) => assert!(&got == r, "{guest}: output differs from Rust's:\n{}", first_difference(&r.concat(), &got.concat())),
        }
    }
}

#[test]
fn weir_build_takes_the_world_a_python_or_js_plugin_names() {
    let weir_bin = env!("CARGO_BIN_EXE_weir");
    let dir = tempfile::tempdir().unwrap();
    for (src, name) in [("tests/conformance/changelog-python", "count-py"), ("tests/conformance/changelog-js", "count-js")] {
        let to = dir.path().join(name);
        std::fs::create_dir_all(&to).unwrap();
        for f in ["app.py", "pyproject.toml", "app.js", "package.json"] {
            let from = root().join(src).join(f);
            if from.exists() {
                // componentize-js reads modules inside the plugin's directory
                // only: a JS plugin gets a copy of the SDK, as `weir new` does.
                let text = std::fs::read_to_string(&from).unwrap().replace("../../../sdk/js/src/index.js", "./weir-sdk/index.js");
                std::fs::write(to.join(f), text).unwrap();
            }
        }
        if name.ends_with("js") {
            std::fs::create_dir_all(to.join("weir-sdk")).unwrap();
            for e in std::fs::read_dir(root().join("sdk/js/src")).unwrap() {
                let p = e.unwrap().path();
                std::fs::copy(&p, to.join("weir-sdk").join(p.file_name().unwrap())).unwrap();
            }
        }
        let o = Command::new(weir_bin).args(["build", to.to_str().unwrap()]).output().unwrap();
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        assert!(stderr(&o).contains("implementing weir:operator/changelog-operator@0.3.0"), "{name}: {}", stderr(&o));
        // A world this weir does not have is named as such.
        let manifest = if name.ends_with("py") { "pyproject.toml" } else { "package.json" };
        let text = std::fs::read_to_string(to.join(manifest)).unwrap().replace("operator@0.3.0", "operator@9.9.9");
        std::fs::write(to.join(manifest), text).unwrap();
        let o = Command::new(weir_bin).args(["build", to.to_str().unwrap()]).output().unwrap();
        assert!(!o.status.success());
        let err = stderr(&o);
        assert!(err.contains(&format!("{manifest}: world \"weir:operator/changelog-operator@9.9.9\" is not a world of this weir that a Python or JavaScript plugin can implement")), "{name}: {err}");
    }
}
