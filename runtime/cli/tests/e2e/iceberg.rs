//! Iceberg end to end: pipelines write tables of a sqlite SQL catalog with a
//! local warehouse, and PyIceberg 0.12 (an independent reader, pip-installed
//! at pinned versions by `weir-test-services`) reads them back: the rows
//! equal those a file sink of the same pipeline wrote, one snapshot per
//! checkpoint stamped with the pipeline, operator, run and checkpoint, and
//! exactly once through `kill -9`s and the fault hooks before and after an
//! Iceberg commit. The Iceberg source reads a snapshot back, split across
//! tasks. Bad input gets errors naming the record and the field.


use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{completed_checkpoints, finish, kill, parts, stderr, weir, weir_cmd};
use serde_json::Value;

pub(crate) const PYICEBERG: &[&str] = &["pyiceberg[sql-sqlite,pyarrow]==0.12.0", "pyarrow==26.0.1", "sqlalchemy==2.1.9"];

pub(crate) struct Lake {
    dir: tempfile::TempDir,
    /// Tables in Iceberg's REST catalog server instead of a sqlite catalog.
    rest: Option<weir_test_services::IcebergRest>,
}

impl Lake {
    pub(crate) fn new() -> Lake {
        Lake { dir: tempfile::tempdir().unwrap(), rest: None }
    }

    /// A lake whose catalog is Iceberg's own REST catalog server, started here.
    pub(crate) fn rest() -> Lake {
        let server = weir_test_services::IcebergRest::start().expect("Iceberg's REST catalog server starts");
        Lake { dir: tempfile::tempdir().unwrap(), rest: Some(server) }
    }

    /// What a reader is given as the catalog: the sqlite file, or the REST URI.
    pub(crate) fn catalog_arg(&self) -> String {
        match &self.rest {
            Some(r) => r.uri(),
            None => self.path("catalog.db").display().to_string(),
        }
    }

    /// The directory the tables lie under.
    pub(crate) fn warehouse(&self) -> PathBuf {
        match &self.rest {
            Some(r) => r.warehouse(),
            None => self.path("warehouse"),
        }
    }

    /// The REST server's log, for a failing test's message.
    pub(crate) fn server_log(&self) -> String {
        self.rest.as_ref().map(|r| r.log_tail(40)).unwrap_or_default()
    }

    pub(crate) fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// Write pipeline spec `name`.yaml, its `@state`, `@catalog` and `@copy`
    /// filled in with this lake's.
    pub(crate) fn spec_file(&self, name: &str, text: &str) -> PathBuf {
        let text = text
            .replace("@state", &self.path("state").display().to_string())
            .replace("@catalog", &self.catalog())
            .replace("@copy", &self.path("copy").display().to_string());
        let p = self.path(&format!("{name}.yaml"));
        std::fs::write(&p, text).unwrap();
        p
    }

    pub(crate) fn catalog(&self) -> String {
        match &self.rest {
            Some(r) => format!("{{type: rest, uri: '{}', warehouse_dir: '{}'}}", r.uri(), r.warehouse().display()),
            None => format!("{{type: sql, uri: 'sqlite://{}', warehouse: '{}'}}", self.path("catalog.db").display(), self.path("warehouse").display()),
        }
    }

    /// The `--catalog` of `weir iceberg` verbs.
    pub(crate) fn catalog_flag(&self) -> String {
        match &self.rest {
            Some(r) => r.uri(),
            None => format!("sqlite://{}", self.path("catalog.db").display()),
        }
    }

    /// `weir iceberg VERB TABLE ARGS --catalog … --warehouse …`, which must
    /// succeed: its stdout lines and stderr.
    pub(crate) fn iceberg(&self, verb: &str, table: &str, args: &[&str]) -> (Vec<String>, String) {
        let c = self.catalog_flag();
        let w = self.warehouse().display().to_string();
        let mut all = vec!["iceberg", verb, table];
        all.extend(args);
        all.extend(["--catalog", &c, "--warehouse", &w]);
        let o = weir(&all, &[]);
        assert!(o.status.success(), "{}", stderr(&o));
        (String::from_utf8_lossy(&o.stdout).lines().map(str::to_string).collect(), stderr(&o))
    }

    /// The table as PyIceberg reads it (at `snapshot`, or the current one).
    pub(crate) fn read(&self, table: &str, snapshot: Option<i64>) -> Value {
        let site = weir_test_services::python_packages("pyiceberg", PYICEBERG).expect("PyIceberg installs");
        let mut cmd = Command::new("python3");
        cmd.arg(weir_test_support::root().join("tests/iceberg/read.py"))
            .arg(self.catalog_arg())
            .arg(self.warehouse())
            .args(["weir", table])
            .env("PYTHONPATH", site);
        if let Some(s) = snapshot {
            cmd.arg(s.to_string());
        }
        let o = cmd.output().unwrap();
        assert!(o.status.success(), "PyIceberg failed: {}{}", String::from_utf8_lossy(&o.stderr), self.server_log());
        serde_json::from_slice(&o.stdout).unwrap()
    }
}

/// Rows as sorted JSON texts.
pub(crate) fn rows(v: &Value) -> Vec<String> {
    let mut r: Vec<String> = v["rows"].as_array().unwrap().iter().map(|r| r.to_string()).collect();
    r.sort();
    r
}

/// The file sink's lines, as the same sorted JSON texts (keys sorted by serde_json).
pub(crate) fn file_rows(dir: &Path) -> Vec<String> {
    let mut r: Vec<String> = parts(dir).concat().iter().map(|l| serde_json::from_str::<Value>(l).unwrap().to_string()).collect();
    r.sort();
    r
}

pub(crate) fn summaries(v: &Value) -> Vec<BTreeMap<String, String>> {
    v["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["summary"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string())).collect())
        .collect()
}

const SCHEMA: &str = "[{name: id, type: long, required: true}, {name: key, type: string}, {name: amount, type: long}, {name: ts, type: long}]";

/// A generator → (Iceberg sink `lake` at parallelism 2, file sink `copy`)
/// pipeline, checkpointing every `checkpoint`; `sink`: the Iceberg sink's
/// own fields, one per line.
pub(crate) fn pipeline(lake: &Lake, name: &str, generator: &str, checkpoint: &str, sink: &[String]) -> PathBuf {
    let fields: String = sink.iter().map(|f| format!("    {f}\n")).collect();
    let text = format!(
        "name: {name}\nstate: {{dir: '@state'}}\ncheckpoint: {{interval: {checkpoint}}}\nsources: [{{name: gen, type: generator, {generator}}}]\nsinks:\n  - name: lake\n    type: iceberg\n    input: gen\n    parallelism: 2\n    catalog: @catalog\n    target_file_size: 1 MiB\n{fields}  - {{name: copy, type: file, input: gen, path: '@copy'}}\n"
    );
    lake.spec_file(name, &text)
}

/// An append pipeline into `db.events`.
pub(crate) fn spec(lake: &Lake, name: &str, generator: &str, checkpoint: &str, partition: &str) -> PathBuf {
    pipeline(lake, name, generator, checkpoint, &["table: db.events".into(), format!("schema: {SCHEMA}"), format!("partition: {partition}")])
}

/// What `weir validate` says of spec `text` (written to `p`), which it must refuse.
fn refused(p: &Path, text: &str) -> String {
    std::fs::write(p, text).unwrap();
    let o = weir(&["validate", p.to_str().unwrap()], &[]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned() + &stderr(&o);
    assert!(!o.status.success(), "{text} validated: {out}");
    out
}

/// What `weir validate` says of a generator → Iceberg sink (`db.t`, `schema`,
/// and the sink's fields `extra`) spec, which it must refuse.
pub(crate) fn refused_sink(lake: &Lake, schema: &str, extra: &str) -> String {
    let text = format!(
        "name: v\nsources: [{{name: in, type: generator, count: 1}}]\nsinks:\n  - {{name: lake, type: iceberg, input: in, catalog: {}, table: db.t, schema: {schema}, {extra}}}\n",
        lake.catalog()
    );
    let text = if extra.starts_with("table:") { text.replace("table: db.t, ", "") } else { text };
    refused(&lake.path("v.yaml"), &text)
}

/// `weir run` of `spec`, which must succeed.
pub(crate) fn run_ok(spec: &Path) {
    let o = weir(&["run", "--progress", "0", spec.to_str().unwrap()], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn append_sink_commits_one_snapshot_per_checkpoint_that_pyiceberg_reads() {
    let lake = Lake::new();
    let p = spec(&lake, "ice", "count: 3000, rate: 6000, keys: 50, seed: 7", "200ms", "['bucket(4, id)', key]");
    run_ok(&p);
    let t = lake.read("db.events", None);
    let expected = file_rows(&lake.path("copy"));
    assert_eq!(expected.len(), 3000);
    assert_eq!(rows(&t), expected, "the table holds exactly the records, once each");
    assert_eq!(t["partition_fields"], serde_json::json!(["bucket[4]:id_bucket", "identity:key"]));
    let sums = summaries(&t);
    assert!(sums.len() >= 2, "a run of ~0.5 s checkpointing every 200 ms commits several snapshots: {sums:?}");
    let mut last = None;
    let run = sums[0]["weir.run-id"].clone();
    for s in &sums {
        assert_eq!(s["operation"], "append");
        assert_eq!(s["weir.pipeline"], "ice");
        assert_eq!(s["weir.operator"], "lake");
        assert_eq!(s["weir.run-id"], run, "one run");
        let c: u64 = s["weir.checkpoint-id"].parse().unwrap();
        assert!(last < Some(c), "checkpoint ids increase: {sums:?}");
        last = Some(c);
    }
    // Every snapshot is readable on its own and holds a prefix of the input.
    let first: i64 = t["snapshots"][0]["id"].as_i64().unwrap();
    let early = rows(&lake.read("db.events", Some(first)));
    assert!(!early.is_empty() && early.len() < 3000);
    assert!(early.iter().all(|r| expected.binary_search(r).is_ok()));

    // A second run (a fresh start) appends under a new run id.
    std::fs::remove_dir_all(lake.path("state")).unwrap();
    std::fs::remove_dir_all(lake.path("copy")).unwrap();
    run_ok(&p);
    let t = lake.read("db.events", None);
    assert_eq!(rows(&t).len(), 6000);
    let runs: std::collections::BTreeSet<String> = summaries(&t).iter().map(|s| s["weir.run-id"].clone()).collect();
    assert_eq!(runs.len(), 2);

    // Expiring every old snapshot keeps each run's latest checkpoint (which
    // recovery reads) and the table's rows.
    let mut latest = BTreeMap::new();
    for s in summaries(&t) {
        let c: u64 = s["weir.checkpoint-id"].parse().unwrap();
        let e = latest.entry(s["weir.run-id"].clone()).or_insert(c);
        *e = (*e).max(c);
    }
    let (expired, err) = lake.iceberg("expire-snapshots", "db.events", &["--older-than", "0s"]);
    assert_eq!(expired.len(), summaries(&t).len() - 2, "{err}");
    assert!(err.contains(&format!("expired {} snapshots", expired.len())), "{err}");
    let after = lake.read("db.events", None);
    assert_eq!(rows(&after), rows(&t));
    let kept: BTreeMap<String, u64> =
        summaries(&after).iter().map(|s| (s["weir.run-id"].clone(), s["weir.checkpoint-id"].parse().unwrap())).collect();
    assert_eq!(kept, latest, "one snapshot per run stays: its latest checkpoint");
}

/// Run to completion, killed with `kill -9` after each of `kills` delays (ms)
/// and restarted each time; `fault` for the first start.
fn run_through_kills(lake: &Lake, p: &Path, kills: &[u64], fault: Option<&str>) -> String {
    let mut log = String::new();
    let args = ["run", "--progress", "0", p.to_str().unwrap()];
    if let Some(f) = fault {
        let o = weir(&args, &[("WEIR_FAULT", f)]);
        log += &stderr(&o);
        assert!(!o.status.success() && log.contains("fault injection"), "the fault hook {f} stops the run: {log}");
    }
    for ms in kills {
        let mut child = weir_cmd(&args, &[]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(*ms));
        if child.try_wait().unwrap().is_some() {
            // It completed before the kill: running it again would be a new run.
            log += &finish(child);
            return log;
        }
        log += &kill(child);
        log += "\n[test: killed with SIGKILL]\n";
    }
    let child = weir_cmd(&args, &[]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    log += &finish(child);
    assert!(!completed_checkpoints(&lake.path("state")).is_empty());
    log
}

/// A run stopped by the fault hook `fault` (`iceberg-before-commit:N` or
/// `iceberg-after-commit:N`), then five runs killed with `kill -9` after
/// 600–1500 ms drawn from `seed`, and a last run to the end.
pub(crate) fn crash_fault_then_kill_5_times(lake: &Lake, p: &Path, fault: &str, seed: u64) {
    let mut x = fault.len() as u64 * seed;
    let kills: Vec<u64> = (0..5)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            600 + (x >> 33) % 900
        })
        .collect();
    let log = run_through_kills(lake, p, &kills, Some(fault));
    assert_eq!(log.matches("[test: killed with SIGKILL]").count(), 5, "five kill -9s landed while the job ran");
    if fault.starts_with("iceberg-before") {
        assert!(log.contains("committing it now"), "recovery commits the completed checkpoint the crash left uncommitted: {log}");
    }
}

/// `weir iceberg orphans` of `table` lists files that none of `live` (the
/// files the table's snapshots reference) is, then removes them: how many.
pub(crate) fn remove_orphans(lake: &Lake, table: &str, live: &[&str]) -> usize {
    let live: Vec<&str> = live.iter().map(|f| f.trim_start_matches("file://")).collect();
    let orphans = |delete: bool| {
        let (files, err) = lake.iceberg("orphans", table, if delete { &["--older-than", "0s", "--delete"] } else { &["--older-than", "0s"] });
        assert!(err.contains(&format!("{} orphan data files", files.len())), "{err}");
        files
    };
    let listed = orphans(false);
    assert!(listed.iter().all(|f| !live.contains(&f.as_str())), "an orphan is a file no snapshot references");
    assert!(listed.iter().all(|f| f.contains("/data/") && f.ends_with(".parquet")), "{listed:?}");
    assert_eq!(orphans(true), listed);
    assert!(orphans(false).is_empty());
    listed.len()
}

pub(crate) fn assert_exactly_once(lake: &Lake, count: u64) -> Value {
    let t = lake.read("db.events", None);
    let got = rows(&t);
    let mut ids: Vec<u64> = t["rows"].as_array().unwrap().iter().map(|r| r["id"].as_u64().unwrap()).collect();
    ids.sort();
    let dups = ids.windows(2).filter(|w| w[0] == w[1]).count();
    assert_eq!(dups, 0, "no record twice");
    assert_eq!(ids, (0..count).collect::<Vec<_>>(), "every record once");
    // The values are the generator's (the file sink's exactly-once copy).
    assert_eq!(got, file_rows(&lake.path("copy")));
    // Each checkpoint committed once.
    let mut seen = std::collections::HashSet::new();
    for s in summaries(&t) {
        // (A compaction's snapshot is no checkpoint's.)
        let (Some(run), Some(c)) = (s.get("weir.run-id"), s.get("weir.checkpoint-id")) else { continue };
        assert!(seen.insert((run.clone(), c.clone())), "checkpoint committed twice: {s:?}");
    }
    t
}

#[test]
fn exactly_once_through_kill_9_and_crashes_around_the_iceberg_commit() {
    for fault in ["iceberg-before-commit:3", "iceberg-after-commit:3"] {
        let lake = Lake::new();
        let p = spec(&lake, "crashy", "count: 24000, rate: 4000, keys: 100, seed: 11", "150ms", "['bucket(2, key)', 'truncate(1000, id)']");
        crash_fault_then_kill_5_times(&lake, &p, fault, 7919);
        let t = assert_exactly_once(&lake, 24000);
        assert!(summaries(&t).len() >= 4);
        // Files of the killed attempts: none is in the table; listed, then removed.
        let live: Vec<&str> = t["files"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
        let removed = remove_orphans(&lake, "db.events", &live);
        assert_eq!(rows(&lake.read("db.events", None)), rows(&t), "removing orphans leaves the table as it was");
        eprintln!("{fault}: {removed} orphan files of killed attempts removed");
    }
}

#[test]
fn a_crash_between_the_last_checkpoint_and_its_commit_loses_nothing_of_that_run() {
    let lake = Lake::new();
    let p = spec(&lake, "ice-last", "count: 3000, rate: 6000, keys: 50, seed: 5", "200ms", "[key]");
    let args = ["run", "--progress", "0", p.to_str().unwrap()];
    let o = weir(&args, &[("WEIR_FAULT", "before-final-commit")]);
    let err = stderr(&o);
    assert!(!o.status.success() && err.contains("fault injection"), "the fault hook did not fire: {err}");
    let committed = rows(&lake.read("db.events", None)).len();
    assert!(committed < 3000, "the last checkpoint's files are not committed yet ({committed} rows)");
    // The next start commits them (as the crashed run's last snapshot), then
    // runs anew: every event twice, once per run.
    let o = weir(&args, &[("WEIR_LOG", "info")]);
    let err = stderr(&o);
    assert!(o.status.success() && err.contains("starting a new run"), "{err}");
    let t = lake.read("db.events", None);
    let mut ids: BTreeMap<i64, usize> = BTreeMap::new();
    for r in t["rows"].as_array().unwrap() {
        *ids.entry(r["id"].as_i64().unwrap()).or_default() += 1;
    }
    assert_eq!(ids.len(), 3000, "every event is in the table");
    assert!(ids.values().all(|&n| n == 2), "each event once per run: {:?}", ids.iter().filter(|(_, n)| **n != 2).take(5).collect::<Vec<_>>());
    let last: Vec<BTreeMap<String, String>> =
        summaries(&t).into_iter().filter(|s| s["weir.checkpoint-id"] == u64::MAX.to_string()).collect();
    assert_eq!(last.len(), 2, "each run's last snapshot is stamped as its final checkpoint: {last:?}");
}

#[test]
fn source_reads_a_snapshot_split_across_tasks() {
    let lake = Lake::new();
    let p = spec(&lake, "fill", "count: 2000, rate: 4000, keys: 20, seed: 5", "100ms", "['bucket(3, id)']");
    run_ok(&p);
    let before = lake.read("db.events", None);
    assert!(before["files"].as_array().unwrap().len() >= 3);
    // More rows after the snapshot the source reads must not show.
    let first = before["snapshots"].as_array().unwrap().last().unwrap()["id"].as_i64().unwrap();
    let read = lake.path("read.yaml");
    std::fs::write(
        &read,
        format!(
            "name: back\nsources: [{{name: t, type: iceberg, parallelism: 2, catalog: {}, table: db.events, snapshot_id: {first}, batch_size: 100}}]\nsinks: [{{name: out, type: file, input: t, path: '{}'}}]\n",
            lake.catalog(),
            lake.path("back").display()
        ),
    )
    .unwrap();
    std::fs::remove_dir_all(lake.path("state")).unwrap();
    run_ok(&p);
    run_ok(&read);
    let back = file_rows(&lake.path("back"));
    assert_eq!(back, rows(&before), "the source reads the snapshot's rows, once each");
    assert_eq!(parts(&lake.path("back")).len(), 2, "two tasks read");

    // as_of: the snapshot current at a time (the newest as old as it).
    let all = lake.read("db.events", None);
    let snaps = all["snapshots"].as_array().unwrap();
    let at = snaps[1]["timestamp_ms"].as_i64().unwrap();
    let chosen = snaps.iter().filter(|s| s["timestamp_ms"].as_i64().unwrap() <= at).last().unwrap()["id"].as_i64().unwrap();
    let asof = lake.path("asof.yaml");
    let asof_spec = |at: i64| {
        format!(
            "name: asof\nsources: [{{name: t, type: iceberg, catalog: {}, table: db.events, as_of: '{at}'}}]\nsinks: [{{name: out, type: file, input: t, path: '{}'}}]\n",
            lake.catalog(),
            lake.path("asof").display()
        )
    };
    std::fs::write(&asof, asof_spec(at)).unwrap();
    run_ok(&asof);
    let expected = rows(&lake.read("db.events", Some(chosen)));
    assert!(!expected.is_empty() && expected.len() < rows(&all).len());
    assert_eq!(file_rows(&lake.path("asof")), expected, "as_of {at} reads snapshot {chosen}");
    let first_ms = snaps[0]["timestamp_ms"].as_i64().unwrap();
    std::fs::write(&asof, asof_spec(first_ms - 1)).unwrap();
    let o = weir(&["run", "--progress", "0", asof.to_str().unwrap()], &[]);
    assert!(!o.status.success() && stderr(&o).contains(&format!("table db.events has no snapshot as old as {}", first_ms - 1)), "{}", stderr(&o));
}

#[test]
fn bad_records_and_specs_get_errors_naming_what_and_where() {
    let lake = Lake::new();
    std::fs::write(lake.path("in.jsonl"), "{\"id\": 1, \"key\": \"a\"}\n{\"id\": \"two\", \"key\": \"b\"}\n").unwrap();
    let p = lake.path("bad.yaml");
    std::fs::write(
        &p,
        format!(
            "name: bad\nsources: [{{name: in, type: file, format: json_lines, path: '{}'}}]\nsinks: [{{name: lake, type: iceberg, input: in, catalog: {}, table: db.t, schema: [{{name: id, type: long, required: true}}, {{name: key, type: string}}]}}]\n",
            lake.path("in.jsonl").display(),
            lake.catalog()
        ),
    )
    .unwrap();
    let o = weir(&["run", "--progress", "0", p.to_str().unwrap()], &[]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("sink 'lake'") && e.contains(&format!("line 2 of {}", lake.path("in.jsonl").display())), "{e}");
    assert!(e.contains("Iceberg table db.t: the record does not fit the table's schema"), "{e}");
    assert!(e.contains(r#"(the record is {"id": "two", "key": "b"})"#), "{e}");

    let cases = [
        ("table: nodots", "sinks[0].table: 'nodots' is not namespace.table"),
        ("partition: ['week(ts)']", "sinks[0].partition.0: 'week(ts)' is not a partition field"),
        ("partition: ['day(key)']", "day does not apply to column 'key' of type string"),
    ];
    for (extra, want) in cases {
        let out = refused_sink(&lake, "[{name: id, type: long}, {name: key, type: string}]", extra);
        assert!(out.contains(want), "{extra}: {out}");
    }
    let text = format!(
        "name: v\nsources: [{{name: in, type: generator, count: 1}}]\nsinks: [{{name: lake, type: iceberg, input: in, catalog: {{type: sql, uri: 'postgres://x', warehouse: /tmp}}, table: db.t}}]\n"
    );
    std::fs::write(&p, text).unwrap();
    let o = weir(&["validate", p.to_str().unwrap()], &[]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned() + &stderr(&o);
    assert!(out.contains("sinks[0].catalog.uri: 'postgres://x' is not a sqlite database file"), "{out}");
    // A missing table and no schema to create it.
    std::fs::write(
        &p,
        format!("name: v\nsources: [{{name: in, type: generator, count: 1}}]\nsinks: [{{name: lake, type: iceberg, input: in, catalog: {}, table: db.missing}}]\n", lake.catalog()),
    )
    .unwrap();
    let o = weir(&["run", "--progress", "0", p.to_str().unwrap()], &[]);
    assert!(!o.status.success() && stderr(&o).contains("table db.missing does not exist in the catalog; declare its schema:"), "{}", stderr(&o));
}

#[test]
fn checkpoints_every_few_milliseconds_at_full_speed_lose_and_repeat_nothing() {
    // Sources of two tasks end at different moments; checkpoints overtake
    // each other: every staged file must reach exactly one snapshot.
    let lake = Lake::new();
    let p = spec(&lake, "fast", "count: 300000, keys: 1000, seed: 3, parallelism: 2", "20ms", "['bucket(4, id)']");
    for _ in 0..2 {
        let _ = std::fs::remove_dir_all(lake.path("state"));
        let _ = std::fs::remove_dir_all(lake.path("copy"));
        run_ok(&p);
    }
    let t = lake.read("db.events", None);
    let mut ids: Vec<u64> = t["rows"].as_array().unwrap().iter().map(|r| r["id"].as_u64().unwrap()).collect();
    ids.sort();
    let expected: Vec<u64> = (0..300000u64).flat_map(|i| [i, i]).collect();
    assert!(ids == expected, "two runs of 300000 events: each id exactly twice ({} rows)", ids.len());
}

#[test]
fn the_source_resumes_mid_scan_after_kill_9_exactly_once() {
    let lake = Lake::new();
    let n = 1_000_000u64;
    let p = spec(&lake, "big", &format!("count: {n}, keys: 1000, seed: 9, parallelism: 2"), "1s", "['bucket(4, id)']");
    run_ok(&p);
    let read = lake.path("read.yaml");
    std::fs::write(
        &read,
        format!(
            "name: back\nstate: {{dir: '{}'}}\ncheckpoint: {{interval: 20ms}}\nsources: [{{name: t, type: iceberg, parallelism: 2, catalog: {}, table: db.events, batch_size: 500}}]\nsinks: [{{name: out, type: file, input: t, parallelism: 2, path: '{}'}}]\n",
            lake.path("state-back").display(),
            lake.catalog(),
            lake.path("back").display()
        ),
    )
    .unwrap();
    let args = ["run", "--progress", "0", read.to_str().unwrap()];
    // Kill -9 as soon as a checkpoint of the scan has completed (the scan of
    // 1 M rows outlasts a few 20 ms checkpoints, on a fast machine too).
    let mut child = weir_cmd(&args, &[]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    while completed_checkpoints(&lake.path("state-back")).is_empty() {
        if child.try_wait().unwrap().is_some() {
            panic!("the scan ended before a checkpoint completed: {}", kill(child));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    kill(child);
    let log = finish(weir_cmd(&args, &[("WEIR_LOG", "info")]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap());
    assert!(log.contains("resuming from chk-"), "the last run resumed the scan from a checkpoint: {log}");
    let back = file_rows(&lake.path("back"));
    let copy = file_rows(&lake.path("copy"));
    assert_eq!(copy.len() as u64, n, "the file sink's copy of what the table was written with");
    if back.len() as u64 != n {
        // Say which rows, by file of the table, to tell a lost file from lost rows.
        let id = |r: &String| serde_json::from_str::<Value>(r).unwrap()["id"].as_u64().unwrap();
        let have: std::collections::HashSet<u64> = back.iter().map(id).collect();
        let missing: Vec<u64> = copy.iter().map(id).filter(|i| !have.contains(i)).collect();
        let parts: Vec<usize> = parts(&lake.path("back")).iter().map(Vec::len).collect();
        panic!(
            "{} of {n} rows read back ({} missing, e.g. ids {:?}; rows per task part {parts:?}); the last run's log:\n{log}",
            back.len(),
            missing.len(),
            &missing[..missing.len().min(10)]
        );
    }
    assert_eq!(back, copy, "the rows the table was written with");
}

#[test]
fn rest_catalog_tables_are_written_exactly_once_and_read_by_pyiceberg() {
    // Iceberg's own REST catalog server holds the table; the sink creates it,
    // commits through the catalog's commit endpoint, and recovers from a
    // crash before a commit and five kill -9s by the snapshot history the
    // catalog serves.
    let lake = Lake::rest();
    let p = spec(&lake, "rest", "count: 24000, rate: 4000, keys: 100, seed: 21", "150ms", "['bucket(2, key)']");
    crash_fault_then_kill_5_times(&lake, &p, "iceberg-before-commit:3", 31);
    let t = assert_exactly_once(&lake, 24000);
    let sums = summaries(&t);
    assert!(sums.len() >= 4, "{sums:?}");
    assert!(sums.iter().all(|s| s["operation"] == "append" && s["weir.pipeline"] == "rest"), "{sums:?}");
    let live: Vec<&str> = t["files"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
    let removed = remove_orphans(&lake, "db.events", &live);
    assert_eq!(rows(&lake.read("db.events", None)), rows(&t), "removing orphans leaves the table as it was");
    // Expiry through the REST catalog keeps the run's latest checkpoint.
    let (expired, err) = lake.iceberg("expire-snapshots", "db.events", &["--older-than", "0s"]);
    assert_eq!(expired.len(), sums.len() - 1, "{err}");
    let after = lake.read("db.events", None);
    assert_eq!(rows(&after), rows(&t));
    let last = sums.iter().map(|s| s["weir.checkpoint-id"].parse::<u64>().unwrap()).max().unwrap();
    assert_eq!(summaries(&after).iter().map(|s| s["weir.checkpoint-id"].parse::<u64>().unwrap()).collect::<Vec<_>>(), vec![last]);
    eprintln!("{} snapshots, {removed} orphan files removed", sums.len());
}

#[test]
fn rest_catalog_specs_and_failures_get_errors_naming_the_catalog() {
    let lake = Lake::new();
    let schema = "[{name: id, type: long}]";
    let cases = [
        ("thrift://hms:9083", "/w", "sinks[0].catalog.uri: 'thrift://hms:9083' is not an http:// or https:// URI"),
        ("http://u:p@host:8181", "/w", "sinks[0].catalog.uri: 'http://u:p@host:8181' names no host (or carries credentials; use token_env)"),
        ("http://127.0.0.1:8181", "w", "sinks[0].catalog.warehouse_dir: 'w' is not an absolute path"),
    ];
    for (uri, dir, want) in cases {
        let text = format!(
            "name: v\nsources: [{{name: in, type: generator, count: 1}}]\nsinks:\n  - {{name: lake, type: iceberg, input: in, catalog: {{type: rest, uri: '{uri}', warehouse_dir: '{dir}'}}, table: db.t, schema: {schema}}}\n"
        );
        let out = refused(&lake.path("v.yaml"), &text);
        assert!(out.contains(want), "{uri}: {out}");
    }
    // Nothing listens there: the run fails naming the catalog and the table.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let text = format!(
        "name: v\nsources: [{{name: in, type: generator, count: 1}}]\nsinks:\n  - {{name: lake, type: iceberg, input: in, catalog: {{type: rest, uri: 'http://127.0.0.1:{port}', warehouse_dir: '{}'}}, table: db.t, schema: {schema}}}\n",
        lake.path("w").display()
    );
    let p = lake.path("down.yaml");
    std::fs::write(&p, text).unwrap();
    let o = weir(&["run", "--progress", "0", p.to_str().unwrap()], &[]);
    let e = stderr(&o);
    assert!(!o.status.success(), "{e}");
    assert!(e.contains("Iceberg table db.t") && e.contains(&format!("127.0.0.1:{port}")), "{e}");
    // A token variable that is not set.
    let text = std::fs::read_to_string(&p).unwrap().replace("warehouse_dir:", "token_env: WEIR_TEST_NO_SUCH_TOKEN, warehouse_dir:");
    std::fs::write(&p, text).unwrap();
    let o = weir(&["run", "--progress", "0", p.to_str().unwrap()], &[]);
    let e = stderr(&o);
    assert!(e.contains(&format!("REST catalog http://127.0.0.1:{port}: environment variable WEIR_TEST_NO_SUCH_TOKEN (token_env) is not set")), "{e}");
}

/// `weir iceberg compact TABLE ARGS` with environment `env`: the partitions
/// it printed and its summary line.
pub(crate) fn compact(lake: &Lake, table: &str, args: &[&str], env: &[(&str, &str)]) -> (Vec<String>, String) {
    let c = lake.catalog_flag();
    let w = lake.warehouse().display().to_string();
    let mut all = vec!["iceberg", "compact", table];
    all.extend(args);
    all.extend(["--catalog", &c, "--warehouse", &w]);
    let o = weir(&all, env);
    assert!(o.status.success(), "{}", stderr(&o));
    (String::from_utf8_lossy(&o.stdout).lines().map(str::to_string).collect(), stderr(&o))
}

#[test]
fn compaction_rewrites_small_files_into_one_replace_snapshot_that_pyiceberg_reads_alike() {
    let lake = Lake::new();
    let p = spec(&lake, "small", "count: 4000, rate: 8000, keys: 20, seed: 3", "50ms", "['bucket(2, id)']");
    run_ok(&p);
    let before = lake.read("db.events", None);
    let files_before = before["files"].as_array().unwrap().len();
    assert!(files_before > 6, "checkpoints every 50 ms leave many small files: {files_before}");
    let (parts, err) = compact(&lake, "db.events", &[], &[]);
    assert_eq!(parts, ["id_bucket=0", "id_bucket=1"], "{err}");
    assert!(err.contains(&format!("rewrote {files_before} data files")) && err.contains("of 2 partitions into 2 files"), "{err}");
    assert!(err.contains("4000 rows"), "{err}");
    let after = lake.read("db.events", None);
    assert_eq!(rows(&after), rows(&before), "the same rows");
    assert_eq!(rows(&after), file_rows(&lake.path("copy")));
    assert_eq!(after["files"].as_array().unwrap().len(), 2, "one file per partition");
    let sums = summaries(&after);
    let last = sums.last().unwrap();
    assert_eq!(last["operation"], "replace");
    assert_eq!(last["deleted-data-files"], files_before.to_string());
    assert_eq!(last["total-data-files"], "2");
    assert_eq!(last["total-records"], "4000");
    // The snapshot before the compaction still reads as it did.
    let prev = after["snapshots"].as_array().unwrap()[sums.len() - 2]["id"].as_i64().unwrap();
    assert_eq!(rows(&lake.read("db.events", Some(prev))), rows(&before));
    // Nothing is left to do; one partition alone is accepted, an unknown one does nothing.
    let (parts, err) = compact(&lake, "db.events", &[], &[]);
    assert!(parts.is_empty() && err.contains("nothing to compact"), "{err}");
    let (parts, err) = compact(&lake, "db.events", &["--partition", "id_bucket=7", "--min-files", "1"], &[]);
    assert!(parts.is_empty() && err.contains("nothing to compact"), "{err}");
    // A bad size is named.
    let o = weir(&["iceberg", "compact", "db.events", "--target-file-size", "12 parsecs", "--catalog", "sqlite:///x.db", "--warehouse", "/x"], &[]);
    assert!(!o.status.success() && stderr(&o).contains("--target-file-size"), "{}", stderr(&o));
}

#[test]
fn compaction_beside_a_streaming_append_keeps_every_commit_of_both() {
    // The compaction pauses between its rewrite and its commit while the
    // sink goes on committing checkpoints: it commits on top of them, and the
    // table ends with every record once.
    let lake = Lake::new();
    let p = spec(&lake, "busy", "count: 16000, rate: 4000, keys: 50, seed: 8", "100ms", "['bucket(2, id)']");
    let child = weir_cmd(&["run", "--progress", "0", p.to_str().unwrap()], &[]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let (_, err) = compact(&lake, "db.events", &[], &[("WEIR_FAULT", "iceberg-compact-pause:1000")]);
    assert!(err.contains("committed on top of"), "the sink committed while the compaction paused: {err}");
    let log = finish(child);
    let t = assert_exactly_once(&lake, 16000);
    let ops: Vec<String> = summaries(&t).iter().map(|s| s["operation"].clone()).collect();
    assert_eq!(ops.iter().filter(|o| *o == "replace").count(), 1, "{ops:?}");
    assert_ne!(ops.last().map(String::as_str), Some("replace"), "the sink committed after the compaction: {ops:?}\n{log}");
}
