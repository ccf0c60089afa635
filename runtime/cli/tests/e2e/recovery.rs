//! Checkpoints, crashes and recovery, end to end: `weir run` killed with
//! SIGKILL at random moments and run again until it completes must publish
//! every running word count exactly once; savepoints restore at another
//! parallelism; damaged checkpoints are skipped; foreign state is refused.


use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::common::{finish, kill, parts, reference_counts, stderr, weir, weir_cmd, words_text};

struct Run {
    dir: tempfile::TempDir,
    text: String,
}

impl Run {
    /// A word-count input of `lines` lines (ten words each) in a fresh directory.
    fn new(lines: usize, seed: u64) -> Run {
        let dir = tempfile::tempdir().unwrap();
        let text = words_text(lines, seed);
        std::fs::write(dir.path().join("in.txt"), &text).unwrap();
        Run { dir, text }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn env(&self, backend: &str, parallelism: &str) -> Vec<(String, String)> {
        let p = |n: &str| self.path(n).display().to_string();
        vec![
            ("WEIR_INPUT".into(), p("in.txt")),
            ("WEIR_OUTPUT".into(), p("out")),
            ("WEIR_STATE".into(), p("state")),
            ("WEIR_STATE_BACKEND".into(), backend.into()),
            ("WEIR_CHECKPOINT_INTERVAL".into(), "100ms".into()),
            ("WEIR_PARALLELISM".into(), parallelism.into()),
            ("WEIR_LOG".into(), "info".into()),
        ]
    }

    fn spawn(&self, env: &[(String, String)], extra: &[&str]) -> Child {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut args = vec!["run", "examples/wordcount/pipeline.yaml", "--progress", "0"];
        args.extend_from_slice(extra);
        weir_cmd(&args, &env).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("weir starts")
    }

    /// Complete checkpoints in the state directory.
    fn checkpoints(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(self.path("state/checkpoints")) else { return Vec::new() };
        let mut v: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.join("_manifest.json").exists()).collect();
        v.sort();
        v
    }

    /// Wait until a checkpoint newer than `after` is complete (or the run ends).
    fn await_checkpoint(&self, child: &mut Child, after: Option<&PathBuf>) -> bool {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if child.try_wait().unwrap().is_some() {
                return false;
            }
            if self.checkpoints().last().is_some_and(|c| Some(c) != after) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("no checkpoint completed within 60 s");
    }

    /// The published output equals the reference word count: every running
    /// count (word, n) for n = 1..N(word) exactly once, none missing; and no
    /// staged file is left behind.
    fn assert_exactly_once(&self) {
        let out = self.path("out");
        let mut got = parts(&out).concat();
        got.sort();
        let expected = reference_counts(&self.text);
        let dups = got.windows(2).filter(|w| w[0] == w[1]).count();
        assert_eq!(dups, 0, "duplicated output records");
        assert_eq!(got.len(), expected.len(), "published records vs expected");
        assert!(got == expected, "output differs from the reference word count");
        let hidden: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(hidden.is_empty(), "staged files left: {hidden:?}");
    }
}

/// A small deterministic generator for kill moments (seed printed on failure).
fn next(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

fn killed_runs_count_every_word_exactly_once(backend: &str) {
    // 300k lines: 3 M words.
    let run = Run::new(300_000, 7);
    let env = run.env(backend, "2");
    let mut seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    let start_seed = seed;
    let (mut kills, mut resumed) = (0, 0);
    loop {
        let mut child = run.spawn(&env, &[]);
        if kills == 4 {
            let err = finish(child);
            resumed += usize::from(err.contains("resuming from chk-"));
            break;
        }
        let before = run.checkpoints().last().cloned();
        if !run.await_checkpoint(&mut child, before.as_ref()) {
            let err = finish(child);
            resumed += usize::from(err.contains("resuming from chk-"));
            break;
        }
        // Somewhere in the checkpoint interval that follows (longer waits let
        // a fast machine finish the job before four kills).
        std::thread::sleep(Duration::from_millis(next(&mut seed) % 100));
        if child.try_wait().unwrap().is_some() {
            // It completed during the wait (it resumed all the same).
            let err = finish(child);
            resumed += usize::from(err.contains("resuming from chk-"));
            break;
        }
        let err = kill(child);
        kills += 1;
        resumed += usize::from(err.contains("resuming from chk-"));
    }
    assert!(kills >= 2, "only {kills} runs were killed mid-run (seed {start_seed})");
    assert!(resumed >= 2, "only {resumed} runs resumed from a checkpoint (seed {start_seed})");
    run.assert_exactly_once();
}

#[test]
fn killed_runs_count_every_word_exactly_once_on_heap() {
    killed_runs_count_every_word_exactly_once("heap");
}

#[test]
fn killed_runs_count_every_word_exactly_once_on_rocksdb() {
    killed_runs_count_every_word_exactly_once("rocksdb");
}

#[test]
fn a_savepoint_restores_at_another_parallelism() {
    let run = Run::new(150_000, 11);
    let mut child = run.spawn(&run.env("heap", "2"), &[]);
    assert!(run.await_checkpoint(&mut child, None), "the run ended before its first checkpoint");
    kill(child);
    let state = run.path("state");
    let env: Vec<(&str, &str)> = vec![("WEIR_STATE", state.to_str().unwrap())];
    let o = weir(&["savepoint", "examples/wordcount/pipeline.yaml", "before-rescale"], &env);
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.starts_with("savepoint 'before-rescale' of pipeline 'wordcount' taken from checkpoint "), "{stdout}");

    let err = finish(run.spawn(&run.env("heap", "3"), &["--from-savepoint", "before-rescale"]));
    assert!(err.contains("resuming from savepoint 'before-rescale'"), "{err}");
    run.assert_exactly_once();
    let names: Vec<String> = std::fs::read_dir(run.path("out")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert!(names.iter().any(|n| n.starts_with("part-0002-")), "three count tasks wrote: {names:?}");

    let o = weir(&["run", "examples/wordcount/pipeline.yaml", "--from-savepoint", "nope"], &env);
    assert!(stderr(&o).contains("no savepoint 'nope' in "), "{}", stderr(&o));
}

#[test]
fn a_damaged_checkpoint_is_skipped_for_the_previous_one() {
    let run = Run::new(150_000, 13);
    let env = run.env("heap", "2");
    let mut child = run.spawn(&env, &[]);
    assert!(run.await_checkpoint(&mut child, None));
    let first = run.checkpoints().last().cloned();
    assert!(run.await_checkpoint(&mut child, first.as_ref()), "the run ended before its second checkpoint");
    kill(child);
    let newest = run.checkpoints().last().cloned().unwrap();
    // Damage one state file of the newest checkpoint.
    let state = newest.join("count/0/heap.state");
    let mut bytes = std::fs::read(&state).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&state, bytes).unwrap();

    let err = finish(run.spawn(&env, &[]));
    let name = newest.file_name().unwrap().to_string_lossy().into_owned();
    assert!(err.contains(&format!("skipping checkpoint {name} in ")), "{err}");
    assert!(err.contains("count/0/heap.state is damaged"), "{err}");
    assert!(err.contains("resuming from chk-"), "{err}");
    run.assert_exactly_once();
}

#[test]
fn a_state_directory_of_another_pipeline_is_refused() {
    let run = Run::new(1_000, 17);
    let env = run.env("heap", "2");
    finish(run.spawn(&env, &[]));
    let spec = std::fs::read_to_string(weir_test_support::root().join("examples/wordcount/pipeline.yaml")).unwrap();
    let other = run.path("other.yaml");
    std::fs::write(&other, spec.replace("- name: count", "- name: total").replace("input: count", "input: total")).unwrap();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let o = weir(&["run", other.to_str().unwrap()], &env);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("of pipeline 'wordcount' with nodes [lines (source), tokenize (operator), count (operator), out (sink)], but this is pipeline 'wordcount' with nodes [lines (source), tokenize (operator), total (operator), out (sink)]; refusing to mix their state"),
        "{err}"
    );
}

#[test]
fn a_running_job_takes_a_savepoint_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n).display().to_string();
    let spec = dir.path().join("gen.yaml");
    std::fs::write(
        &spec,
        format!(
            "name: gen\nstate: {{dir: {}}}\ncheckpoint: {{interval: 100ms}}\nsources: [{{name: gen, type: generator, count: 12000, rate: 6000, keys: 50, seed: 5}}]\noperators: [{{name: c, plugin: {}, input: gen, key_by: key, parallelism: 2}}]\nsinks: [{{name: out, type: file, path: {}, input: c}}]\n",
            d("state"),
            weir_test_support::fixture("word_count").display(),
            d("out")
        ),
    )
    .unwrap();
    let spec = spec.to_str().unwrap();
    let child = weir_cmd(&["run", spec, "--progress", "0"], &[]).stderr(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let o = weir(&["savepoint", spec, "live"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("savepoint 'live' of running pipeline 'gen' taken in"));
    finish(child);
    // Run again from the savepoint: the output is again every count once.
    let o = weir(&["run", spec, "--from-savepoint", "live", "--progress", "0"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines = parts(Path::new(&d("out"))).concat();
    assert_eq!(lines.len(), 12_000);
    let mut seen: HashMap<String, Vec<u64>> = HashMap::new();
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        seen.entry(v["word"].as_str().unwrap().to_string()).or_default().push(v["count"].as_u64().unwrap());
    }
    for (k, mut counts) in seen {
        counts.sort_unstable();
        assert!(counts.iter().enumerate().all(|(i, &c)| c == i as u64 + 1), "key {k}: {counts:?}");
    }
}

#[test]
fn event_time_timers_survive_kill_9_and_fire_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n).display().to_string();
    // A million events, 10 ms apart, in small batches; each asks for a timer
    // 10 ms after it (the misbehave guest's "timer" command). The watermark
    // lags 50 s behind, so every checkpoint holds ~5000 pending timers.
    let n = 1_000_000u64;
    let text: String = (0..n).map(|i| format!("{{\"ts\":{},\"cmd\":\"timer\"}}\n", i * 10)).collect();
    std::fs::write(d("events.jsonl"), text).unwrap();
    let spec = dir.path().join("timers.yaml");
    std::fs::write(
        &spec,
        format!(
            "name: timers\nbatch: {{size: 128}}\nstate: {{dir: {}}}\ncheckpoint: {{interval: 100ms}}\nsources:\n  - {{name: in, type: file, format: json_lines, path: {}, timestamp: $.ts, watermark: {{out_of_orderness: 50s}}}}\noperators: [{{name: t, plugin: {}, input: in}}]\nsinks: [{{name: out, type: file, path: {}, input: t}}]\n",
            d("state"),
            d("events.jsonl"),
            weir_test_support::fixture("misbehave").display(),
            d("out")
        ),
    )
    .unwrap();
    let spec = spec.to_str().unwrap();
    let checkpoints = || {
        std::fs::read_dir(d("state/checkpoints"))
            .map(|r| r.flatten().filter(|e| e.path().join("_manifest.json").exists()).count())
            .unwrap_or(0)
    };
    let (mut kills, mut resumed, mut seed) = (0, 0, 0x9e37_79b9_u64);
    loop {
        let mut child = weir_cmd(&["run", spec, "--progress", "0"], &[("WEIR_LOG", "info")])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let before = checkpoints();
        let start = Instant::now();
        while child.try_wait().unwrap().is_none() && checkpoints() <= before && start.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(next(&mut seed) % 200));
        if kills == 3 || child.try_wait().unwrap().is_some() {
            resumed += usize::from(finish(child).contains("resuming from chk-"));
            break;
        }
        resumed += usize::from(kill(child).contains("resuming from chk-"));
        kills += 1;
    }
    assert!(kills >= 2, "only {kills} runs were killed mid-run");
    assert!(resumed >= 2, "only {resumed} runs resumed from a checkpoint");
    let mut fired: Vec<u64> = parts(Path::new(&d("out")))
        .concat()
        .iter()
        .map(|l| {
            let t = l.trim_matches('"').strip_prefix("timer ").and_then(|r| r.split(' ').next()).unwrap_or_else(|| panic!("{l}"));
            t.parse().unwrap()
        })
        .collect();
    fired.sort_unstable();
    let expected: Vec<u64> = (0..n).map(|i| i * 10 + 10).collect();
    let dups = fired.windows(2).filter(|w| w[0] == w[1]).count();
    assert_eq!(dups, 0, "timers fired twice");
    assert_eq!(fired.len(), expected.len(), "timers fired vs registered");
    assert!(fired == expected);
}
