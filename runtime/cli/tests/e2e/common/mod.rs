//! Helpers shared by the modules of the CLI's end-to-end tests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Output};

use weir_test_support::{plugin_dir, root};

/// A `weir` command run from the repository root, with the test plugins.
pub fn weir_cmd(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weir"));
    cmd.args(args).current_dir(root()).env("WEIR_PLUGINS", plugin_dir()).env("WEIR_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

pub fn weir(args: &[&str], env: &[(&str, &str)]) -> Output {
    weir_cmd(args, env).output().expect("weir runs")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The lines of the published part files in `dir`, per sink task (a task's
/// parts `part-<task>-<epoch>.jsonl` concatenated in name order).
pub fn parts(dir: &Path) -> Vec<Vec<String>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("part-"))
        .collect();
    files.sort();
    let mut tasks: Vec<(String, Vec<String>)> = Vec::new();
    for f in files {
        let task = f[..9].to_string();
        let lines = std::fs::read_to_string(dir.join(&f)).unwrap().lines().map(str::to_string).collect::<Vec<_>>();
        match tasks.last_mut() {
            Some((t, v)) if *t == task => v.extend(lines),
            _ => tasks.push((task, lines)),
        }
    }
    tasks.into_iter().map(|(_, v)| v).collect()
}

/// Word count as the issue defines it, written independently of the plugin.
pub fn reference_counts(text: &str) -> Vec<String> {
    let mut counts: HashMap<String, u64> = HashMap::new();
    let mut out = Vec::new();
    for word in text.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()) {
        let w = word.to_ascii_lowercase();
        let n = counts.entry(w.clone()).or_default();
        *n += 1;
        out.push(format!(r#"{{"word":"{w}","count":{n}}}"#));
    }
    out.sort();
    out
}


/// `lines` lines of ten words each over a skewed vocabulary, with punctuation
/// and case, seeded.
pub fn words_text(lines: usize, seed: u64) -> String {
    let mut text = String::new();
    let mut x: u64 = seed;
    for line in 0..lines {
        for w in 0..10 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let id = (x >> 33) % (1 + (x >> 20) % 5000);
            text.push_str(if w % 3 == 0 { "Word" } else { "w" });
            text.push_str(&id.to_string());
            text.push_str(if w % 4 == 0 { ", " } else { " " });
        }
        if line % 7 == 0 {
            text.push_str("-- ÄÖ!");
        }
        text.push('\n');
    }
    text
}

/// Run a scaffolded counting plugin (`weir new`'s template) at `wasm` over
/// 1000 generated records of 10 keys with parallelism 2, and check that the
/// final count per key adds up to every record.
pub fn run_scaffolded_counter(dir: &Path, wasm: &str) {
    let spec = dir.join("hello.yaml");
    std::fs::write(
        &spec,
        format!(
            "name: hello\nsources: [{{name: gen, type: generator, count: 1000, keys: 10, seed: 3}}]\noperators: [{{name: hello, plugin: '{wasm}', input: gen, key_by: key, parallelism: 2}}]\nsinks: [{{name: out, type: file, path: '{}', input: hello}}]\n",
            dir.join("out").display()
        ),
    )
    .unwrap();
    let o = weir(&["run", "--progress", "0", spec.to_str().unwrap()], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines = parts(&dir.join("out")).concat();
    assert_eq!(lines.len(), 1000);
    let mut max: HashMap<String, u64> = HashMap::new();
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let e = max.entry(v["key"].as_str().unwrap().to_string()).or_default();
        *e = (*e).max(v["count"].as_u64().unwrap());
    }
    assert_eq!(max.values().sum::<u64>(), 1000, "final counts add up to every record");
}

/// The completed checkpoints (`chk-N` with a manifest) under `state_dir`, in
/// name order.
pub fn completed_checkpoints(state_dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(state_dir.join("checkpoints")) else { return Vec::new() };
    let mut v: Vec<String> =
        entries.flatten().filter(|e| e.path().join("_manifest.json").exists()).map(|e| e.file_name().into_string().unwrap()).collect();
    v.sort();
    v
}

/// Wait for a `weir` run to end; it must succeed. Its stderr.
pub fn finish(child: Child) -> String {
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "the run failed: {err}");
    err
}

/// SIGKILL a `weir` run. Its stderr.
pub fn kill(mut child: Child) -> String {
    child.kill().unwrap();
    let o = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Produce `records` (key, value; no value: a tombstone) into `topic`,
/// idempotently, and wait until all are acknowledged.
pub fn produce(kafka: &weir_test_services::KafkaBroker, topic: &str, records: impl Iterator<Item = (Option<Vec<u8>>, Option<Vec<u8>>)>) {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let p: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka.bootstrap())
        .set("linger.ms", "5")
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    for (k, v) in records {
        let mut rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic);
        if let Some(k) = &k {
            rec = rec.key(&k[..]);
        }
        if let Some(v) = &v {
            rec = rec.payload(&v[..]);
        }
        let mut rec = Some(rec);
        while let Some(r) = rec.take() {
            if let Err((e, back)) = p.send(r) {
                assert_eq!(e.rdkafka_error_code(), Some(rdkafka::types::RDKafkaErrorCode::QueueFull), "{e}");
                p.poll(std::time::Duration::from_millis(20));
                rec = Some(back);
            }
        }
        p.poll(std::time::Duration::ZERO);
    }
    p.flush(std::time::Duration::from_secs(60)).unwrap();
}

/// Apply a changelog of group rows (`{"op","data":{"g","n","sum"}}` lines, as
/// a file sink with `format: changelog-json` writes them) to a table by
/// group, checking that every -U and -D removes the row the table holds and
/// that every +I and +U finds none.
pub fn apply_changelog(lines: &[String]) -> std::collections::BTreeMap<String, serde_json::Value> {
    let mut groups = std::collections::BTreeMap::new();
    for l in lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let row = v["data"].clone();
        let g = row["g"].as_str().unwrap().to_string();
        match v["op"].as_str().unwrap() {
            "+I" => assert!(groups.insert(g, row).is_none(), "+I of a group that has a row: {l}"),
            "+U" => assert!(groups.insert(g, row).is_none(), "+U without its -U: {l}"),
            "-U" | "-D" => assert_eq!(groups.remove(&g), Some(row), "{l} retracts a row the table does not hold"),
            other => panic!("unknown op {other} in {l}"),
        }
    }
    groups
}

/// `SELECT g, COUNT(*) AS n, SUM(amount) AS sum FROM rows GROUP BY g`, as
/// rows `{"g","n","sum"}` by group.
pub fn count_by_group<'a>(rows: impl Iterator<Item = &'a serde_json::Value>) -> std::collections::BTreeMap<String, serde_json::Value> {
    let mut out = std::collections::BTreeMap::new();
    for row in rows {
        let g = row["g"].as_str().unwrap().to_string();
        let e = out.entry(g.clone()).or_insert_with(|| serde_json::json!({"g": g, "n": 0, "sum": 0}));
        e["n"] = (e["n"].as_i64().unwrap() + 1).into();
        e["sum"] = (e["sum"].as_i64().unwrap() + row["amount"].as_i64().unwrap()).into();
    }
    out
}

/// The highest completed checkpoint id under `state`.
pub fn last_checkpoint(state: &std::path::Path) -> u64 {
    completed_checkpoints(state).iter().filter_map(|c| c.strip_prefix("chk-")?.parse().ok()).max().unwrap_or(0)
}

/// Run a bounded job to its end, killing it with kill -9 soon after each of
/// its first `kills` new checkpoints and restarting it (a kill may also land
/// after the run completed, before it exited: the next start then begins a
/// new run, which must not resume anything of the last). How many kills
/// landed while it ran.
pub fn run_killed_after_checkpoints(args: &[&str], state: &std::path::Path, kills: usize) -> usize {
    let mut landed = 0;
    for _ in 0..kills {
        let mut child = weir_cmd(args, &[]).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).spawn().unwrap();
        let (before, start) = (last_checkpoint(state), std::time::Instant::now());
        while last_checkpoint(state) == before && child.try_wait().unwrap().is_none() && start.elapsed() < std::time::Duration::from_secs(120) {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        if child.try_wait().unwrap().is_some() {
            finish(child);
            return landed;
        }
        kill(child);
        landed += 1;
    }
    finish(weir_cmd(args, &[]).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).spawn().unwrap());
    landed
}
