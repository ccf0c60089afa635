//! `on_error: skip | dead-letter` end to end: records an operator fails on
//! (a guest error, a panic, a deadline, the memory limit) and lines a source
//! cannot decode go to `<node>.dead-letter` with the error, while state is as
//! if they had never come; a budget turns a storm back into a failure; the
//! spec checks; and, killed with SIGKILL again and again, every record ends up
//! exactly once in either the output or the dead letters.


use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::common::{finish, kill, parts, stderr, weir, weir_cmd};
use weir_test_support::fixture;

fn write(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p.display().to_string()
}

fn json(lines: &[String]) -> Vec<serde_json::Value> {
    lines.iter().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"))).collect()
}

/// The pipeline of these tests: a JSON lines file keyed by `k` into the
/// misbehave guest (it counts a key's records in state; `cmd` names a
/// misdeed), its output, its dead letters and the source's in three file sinks.
fn spec(dir: &Path, input: &str, extra_source: &str, extra_op: &str, checkpoints: bool) -> String {
    let p = |n: &str| dir.join(n).display().to_string();
    let ck = if checkpoints { format!("state: {{dir: '{}'}}\ncheckpoint: {{interval: 100ms}}\n", p("state")) } else { String::new() };
    write(
        dir,
        "pipeline.yaml",
        &format!(
            "name: dl\n{ck}sources:\n  - {{name: in, type: file, format: json_lines, path: '{input}', on_error: dead-letter{extra_source}}}\n\
             operators:\n  - {{name: m, plugin: '{}', input: in, key_by: $.k, on_error: dead-letter, limits: {{call_timeout: 500ms, memory: 32MiB}}{extra_op}}}\n\
             sinks:\n  - {{name: out, type: file, path: '{}', input: m}}\n  - {{name: bad, type: file, path: '{}', input: m.dead-letter}}\n  - {{name: unreadable, type: file, path: '{}', input: in.dead-letter}}\n",
            fixture("misbehave").display(),
            p("out"),
            p("bad"),
            p("unreadable"),
        ),
    )
}

#[test]
fn failing_records_become_dead_letters_and_leave_state_as_if_they_never_came() {
    let dir = tempfile::tempdir().unwrap();
    let lines = [
        r#"{"k":"a","cmd":"count"}"#,
        r#"{"k":"a","cmd":"count"}"#,
        r#"{"k":"a","cmd":"panic"}"#,
        r#"{"k":"a","cmd":"count"}"#,
        r#"not json"#,
        r#"{"k":"b","cmd":"count"}"#,
        r#"{"k":"b","cmd":"error"}"#,
        r#"{"k":"b","cmd":"count"}"#,
        r#"{"k":"c","cmd":"count"}"#,
        r#"{"k":"c","cmd":"loop"}"#,
        r#"{"k":"c","cmd":"count"}"#,
        r#"{"k":"a","cmd":"oom"}"#,
        r#"{"k":"a","cmd":"count"}"#,
    ];
    let input = write(dir.path(), "in.jsonl", &(lines.join("\n") + "\n"));
    let o = weir(&["run", &spec(dir.path(), &input, "", "", false)], &[]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");

    // Counts per key as if the four failing records had never come: a call
    // that failed half way was undone before its batch ran again in parts.
    let out = parts(&dir.path().join("out")).concat();
    assert_eq!(out, ["1", "2", "3", "1", "2", "1", "2", "4"], "{err}");

    let bad = json(&parts(&dir.path().join("bad")).concat());
    let at = |line: u64| format!("line {line} of {input}");
    let summary: Vec<(u64, &str)> = bad.iter().map(|d| (d["offset"].as_u64().unwrap(), d["value"]["cmd"].as_str().unwrap())).collect();
    assert_eq!(summary, [(3, "panic"), (7, "error"), (10, "loop"), (12, "oom")]);
    for d in &bad {
        assert_eq!(d["node"], "m");
        assert_eq!(d["task"], 0);
        assert_eq!(d["source"], "in");
        assert_eq!(d["position"], at(d["offset"].as_u64().unwrap()));
        assert!(d["plugin"].as_str().unwrap().starts_with("misbehave@sha256:"), "{d}");
        assert_eq!(d["value"]["k"], d["key"], "{d}");
    }
    let errors: Vec<&str> = bad.iter().map(|d| d["error"].as_str().unwrap()).collect();
    assert!(errors[0].contains("trapped in operator 'm' (task 0) in process, panicking with 'bad record"), "{}", errors[0]);
    assert!(errors[1].contains("returned an error from process: cannot handle record"), "{}", errors[1]);
    assert!(errors[2].contains("exceeded its CPU deadline of 500ms per call and was stopped (limits.call_timeout)"), "{}", errors[2]);
    assert!(errors[3].contains("over its limit of 33554432 bytes"), "{}", errors[3]);

    let unreadable = json(&parts(&dir.path().join("unreadable")).concat());
    assert_eq!(unreadable.len(), 1);
    let u = &unreadable[0];
    assert_eq!((u["node"].as_str(), u["source"].as_str(), u["offset"].as_u64()), (Some("in"), Some("in"), Some(5)));
    assert_eq!(u["value_text"], "not json");
    assert!(u["error"].as_str().unwrap().starts_with("not a JSON value: expected ident at line 1 column 2"), "{u}");
    assert!(u.get("plugin").is_none());

    assert!(err.contains(" in in 12 out 13 dead letters 1;"), "{err}");
    assert!(err.contains(" m in 12 out 12 dead letters 4;"), "{err}");
}

#[test]
fn skip_counts_without_output_and_a_storm_fails_the_run_naming_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<String> = (1..=6).map(|i| format!(r#"{{"k":"x","cmd":"{}"}}"#, if i % 2 == 0 { "error" } else { "count" })).collect();
    let input = write(dir.path(), "in.jsonl", &(lines.join("\n") + "\n"));
    let spec = |max: u32| {
        write(
            dir.path(),
            "skip.yaml",
            &format!(
                "name: sk\nsources: [{{name: in, type: file, format: json_lines, path: '{input}'}}]\n\
                 operators: [{{name: m, plugin: '{}', input: in, key_by: $.k, on_error: skip, max_dead_letters_per_minute: {max}}}]\n\
                 sinks: [{{name: out, type: stdout, input: m}}]\n",
                fixture("misbehave").display()
            ),
        )
    };
    let o = weir(&["run", &spec(3)], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().collect::<Vec<_>>(), ["1", "2", "3"]);
    assert!(stderr(&o).contains(" m in 6 out 3 dead letters 3;"), "{}", stderr(&o));

    let o = weir(&["run", &spec(2)], &[]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    let err = err[err.find("error: pipeline").expect("an error line")..].to_string();
    let expected = format!(
        "error: pipeline 'sk' failed: operator 'm' (task 0 of 1) failed on the record from source 'in' at line 6 of {input}: \
         more than 2 records failed within a minute (max_dead_letters_per_minute), so on_error: skip gives up; \
         the last: plugin misbehave@sha256:"
    );
    assert!(err.starts_with(&expected), "{err}");
    assert!(err.trim_end().ends_with("returned an error from process: cannot handle record x"), "{err}");
}

#[test]
fn validate_checks_on_error_and_who_reads_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "in.jsonl", "{\"k\":\"a\",\"ts\":1}\n");
    let plugin = fixture("misbehave").display().to_string();
    let validate = |name: &str, body: String| {
        let p = write(dir.path(), name, &body);
        let o = weir(&["validate", &p], &[]);
        assert!(!o.status.success(), "{name} validates");
        (p, stderr(&o).trim().to_string())
    };
    let src = format!("sources: [{{name: in, type: file, format: json_lines, path: '{input}'}}]\n");

    let (p, err) = validate("unread.yaml", format!("name: u\n{src}operators: [{{name: m, plugin: '{plugin}', input: in, on_error: dead-letter}}]\nsinks: [{{name: out, type: stdout, input: m}}]\n"));
    assert_eq!(err, format!("error: {p}:3:1: operator 'm' has on_error: dead-letter, but nothing reads 'm.dead-letter' (add a sink with input: m.dead-letter, or use on_error: skip)"));

    let (p, err) = validate("failing.yaml", format!("name: f\n{src}operators: [{{name: m, plugin: '{plugin}', input: in}}]\nsinks: [{{name: out, type: stdout, input: m.dead-letter}}]\n"));
    assert_eq!(err, format!("error: {p}:4:1: sink 'out' reads 'm.dead-letter', but 'm' has on_error: fail (set on_error: dead-letter on it)"));

    let (p, err) = validate("choice.yaml", format!("name: c\n{src}operators: [{{name: m, plugin: '{plugin}', input: in, on_error: retry}}]\nsinks: [{{name: out, type: stdout, input: m}}]\n"));
    assert!(err.starts_with(&format!("error: {p}:3:")), "{err}");
    assert!(err.ends_with("operators[0].on_error: 'retry' is not a choice (fail, skip, dead-letter)"), "{err}");

    let (_, err) = validate("budget.yaml", format!("name: b\n{src}operators: [{{name: m, plugin: '{plugin}', input: in, max_dead_letters_per_minute: 5}}]\nsinks: [{{name: out, type: stdout, input: m}}]\n"));
    assert!(err.ends_with("operators[0].max_dead_letters_per_minute: set with on_error: skip or dead-letter"), "{err}");
    let (_, err) = validate("range.yaml", format!("name: r\n{src}operators: [{{name: m, plugin: '{plugin}', input: in, on_error: skip, max_dead_letters_per_minute: 0}}]\nsinks: [{{name: out, type: stdout, input: m}}]\n"));
    assert!(err.ends_with("operators[0].max_dead_letters_per_minute: must be between 1 and 1000000, not 0"), "{err}");

    let (_, err) = validate("source.yaml", format!("name: s\n{src}operators: [{{name: m, plugin: '{plugin}', input: in.oops}}]\nsinks: [{{name: out, type: stdout, input: m}}]\n"));
    assert!(err.ends_with("operators[0].input: source 'in' has no side outputs but 'dead-letter' (with on_error: dead-letter)"), "{err}");

    let window = format!(
        "name: w\nsources: [{{name: in, type: file, format: json_lines, path: '{input}', timestamp: $.ts}}]\noperators:\n  - {{name: win, plugin: '${{WEIR_PLUGINS}}/window_count.wasm', input: in, key_by: $.k, on_error: skip, window: {{type: tumbling, size: 1m}}}}\nsinks: [{{name: out, type: stdout, input: win}}]\n"
    );
    let (_, err) = validate("window.yaml", window);
    assert!(err.ends_with("operators[0].on_error: a window operator cannot undo a failed call, so it takes only on_error: fail"), "{err}");

    let (_, err) = validate("sink.yaml", format!("name: k\n{src}sinks: [{{name: out, type: stdout, input: in, on_error: skip}}]\n"));
    assert!(err.ends_with("sinks[0].on_error: unknown field 'on_error', expected one of: name, type, input, inputs, key_by, parallelism"), "{err}");
}

/// Line `i` (1-based) of the exactly-once input: what the guest does with it.
fn kind(i: u64) -> &'static str {
    match i {
        _ if i % 997 == 0 => "unreadable",
        _ if i % 331 == 0 => "panic",
        _ if i % 97 == 0 => "error",
        _ => "go",
    }
}

#[test]
fn killed_runs_put_every_record_exactly_once_in_the_output_or_the_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    // Enough input that a run killed within 40 ms of each new checkpoint
    // (100 ms apart) is killed at least three times on a fast machine too.
    let n: u64 = 600_000;
    let text: String = (1..=n)
        .map(|i| match kind(i) {
            "unreadable" => format!("{{\"k\":\"k{}\",broken {i}\n", i % 50),
            k => format!("{{\"k\":\"k{}\",\"cmd\":\"{k}\",\"id\":{i}}}\n", i % 50),
        })
        .collect();
    let input = write(dir.path(), "in.jsonl", &text);
    let budget = ", max_dead_letters_per_minute: 1000000";
    let spec = spec(dir.path(), &input, budget, &format!(", parallelism: 2{budget}"), true);
    let checkpoints = || crate::common::completed_checkpoints(&dir.path().join("state"));
    let mut seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    let first_seed = seed;
    let (mut kills, mut resumed) = (0, 0);
    loop {
        let mut child = weir_cmd(&["run", &spec, "--progress", "0"], &[("WEIR_LOG", "info")])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if kills == 6 {
            resumed += usize::from(finish(child).contains("resuming from chk-"));
            break;
        }
        // Kill somewhere in the interval after a new checkpoint completes.
        let before = checkpoints().last().cloned();
        let start = std::time::Instant::now();
        let mut ended = false;
        while checkpoints().last() == before.as_ref() {
            assert!(start.elapsed() < Duration::from_secs(60), "no checkpoint within 60 s (seed {first_seed})");
            if child.try_wait().unwrap().is_some() {
                ended = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        if !ended {
            std::thread::sleep(Duration::from_millis(seed % 40));
        }
        if ended || child.try_wait().unwrap().is_some() {
            resumed += usize::from(finish(child).contains("resuming from chk-"));
            break;
        }
        let err = kill(child);
        resumed += usize::from(err.contains("resuming from chk-"));
        kills += 1;
    }
    assert!(kills >= 3 && resumed >= 3, "{kills} kills, {resumed} resumed runs (seed {first_seed})");
    eprintln!("{kills} kills, {resumed} resumed runs");

    let mut seen: BTreeMap<u64, &str> = BTreeMap::new();
    for v in json(&parts(&dir.path().join("out")).concat()) {
        let id = v["id"].as_u64().unwrap();
        assert!(seen.insert(id, "go").is_none(), "record {id} twice in the output (seed {first_seed})");
    }
    for d in json(&parts(&dir.path().join("bad")).concat()) {
        let id = d["offset"].as_u64().unwrap();
        assert_eq!(d["value"]["id"], id, "{d}");
        let k = d["value"]["cmd"].as_str().unwrap();
        assert!(seen.insert(id, if k == "panic" { "panic" } else { "error" }).is_none(), "dead letter {id} twice (seed {first_seed})");
    }
    for u in json(&parts(&dir.path().join("unreadable")).concat()) {
        let id = u["offset"].as_u64().unwrap();
        assert!(seen.insert(id, "unreadable").is_none(), "unreadable line {id} twice (seed {first_seed})");
    }
    assert_eq!(seen.len() as u64, n, "every line once (seed {first_seed})");
    for (id, got) in seen {
        assert_eq!(got, kind(id), "line {id} (seed {first_seed})");
    }
}
