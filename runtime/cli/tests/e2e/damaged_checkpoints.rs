//! `weir run` when every retained checkpoint is damaged: it must not start
//! over silently (which re-runs the pipeline and replaces its published
//! output), but fail naming each checkpoint and why, until `--fresh`.


use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::common::{parts, reference_counts, weir_cmd, words_text};

fn checkpoints(state: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(state.join("checkpoints")) else { return Vec::new() };
    let mut v: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.join("_manifest.json").exists()).collect();
    v.sort();
    v
}

/// Published files and their contents.
fn published(out: &Path) -> Vec<(String, String)> {
    let mut v: Vec<_> = std::fs::read_dir(out)
        .unwrap()
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read_to_string(e.path()).unwrap_or_default()))
        .filter(|(n, _)| n.starts_with("part-"))
        .collect();
    v.sort();
    v
}

#[test]
fn a_run_whose_checkpoints_are_all_damaged_fails_until_started_fresh() {
    let dir = tempfile::tempdir().unwrap();
    let text = words_text(150_000, 21);
    std::fs::write(dir.path().join("in.txt"), &text).unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    let env = [
        ("WEIR_INPUT", p("in.txt")),
        ("WEIR_OUTPUT", p("out")),
        ("WEIR_STATE", p("state")),
        ("WEIR_CHECKPOINT_INTERVAL", "100ms".to_string()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let spawn = |extra: &[&str]| -> Child {
        let mut args = vec!["run", "examples/wordcount/pipeline.yaml", "--progress", "0"];
        args.extend_from_slice(extra);
        weir_cmd(&args, &env).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()
    };
    let state = dir.path().join("state");
    let mut child = spawn(&[]);
    let t = Instant::now();
    while checkpoints(&state).len() < 2 {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before its second checkpoint");
        assert!(t.elapsed() < Duration::from_secs(60), "no second checkpoint within 60 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let out = dir.path().join("out");
    let before = published(&out);
    assert!(!before.is_empty(), "something was published before the kill");

    // Damage every checkpoint's manifest.
    let damaged = checkpoints(&state);
    for c in &damaged {
        std::fs::write(c.join("_manifest.json"), b"{\"format\": tru").unwrap();
    }
    let o = weir_cmd(&["run", "examples/wordcount/pipeline.yaml", "--progress", "0"], &env).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let last = err.lines().last().unwrap_or_default();
    let why = serde_json::from_slice::<serde_json::Value>(b"{\"format\": tru").unwrap_err();
    let mut all: Vec<PathBuf> = std::fs::read_dir(state.join("checkpoints")).unwrap().flatten().map(|e| e.path()).collect();
    all.sort();
    let listed: Vec<String> = all
        .iter()
        .rev()
        .map(|c| {
            let name = c.file_name().unwrap().to_string_lossy().into_owned();
            if damaged.contains(c) { format!("{name}: unreadable manifest: {why}") } else { format!("{name}: incomplete (no manifest)") }
        })
        .collect();
    let expected = format!(
        "none of the checkpoints of pipeline 'wordcount' in {} can be resumed from: {}; \
         starting afresh would run the pipeline from the beginning and replace its published output: \
         to do that, start it with --fresh (weir run --fresh), or on a node POST /api/v1/pipelines/wordcount/start?fresh=true",
        state.display(),
        listed.join("; ")
    );
    assert!(last.starts_with("error: ") && last.ends_with(&expected), "{err}");
    assert_eq!(published(&out), before, "the published output is untouched");

    // With --fresh it starts over and completes.
    let o = spawn(&["--fresh"]).wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut lines = parts(&out).concat();
    lines.sort();
    assert_eq!(lines, reference_counts(&text), "a fresh run publishes the whole count once");
}
