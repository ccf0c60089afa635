//! Iceberg upsert sinks end to end: a change stream (the generator with
//! `deletes:`, Debezium's `__deleted` flag) written with `mode: upsert`, read
//! back by DuckDB's iceberg extension (an independent reader that applies
//! equality and position deletes): the table holds, for every key, the last
//! change of the key unless it was a delete, as a model computed from the
//! exactly-once file sink's copy of the same stream says; no snapshot holds a
//! key twice; across a second run, through `kill -9`s and the fault hooks
//! before and after a commit. Bad keys and routing get errors naming them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::common::{parts, stderr, weir};
use crate::iceberg::{Lake, compact, crash_fault_then_kill_5_times, pipeline, refused_sink, remove_orphans, run_ok, summaries};

pub(crate) const DUCKDB: &[&str] = &["duckdb==1.5.5", "duckdb-extension-iceberg==1.5.5", "duckdb-extension-avro==1.5.5"];
/// Spark 3.5 with Iceberg's Java runtime 1.10.2 (its jar is in that PyPI
/// package; 1.0.3's is broken).
const SPARK: &[&str] = &["pyspark==3.5.9", "snowpark-connect-deps-iceberg==1.0.2"];

/// The table as Spark reads it, with the keys each snapshot holds twice.
fn spark(lake: &Lake, table: &str) -> Value {
    let site = weir_test_services::python_packages("spark", SPARK).expect("PySpark installs");
    let o = Command::new("python3")
        .arg(weir_test_support::root().join("tests/iceberg/read_spark.py"))
        .arg(lake.catalog_arg())
        .args(["weir", table, "--key", "key"])
        .env("PYTHONPATH", site)
        .output()
        .unwrap();
    assert!(o.status.success(), "Spark failed: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// The table as DuckDB reads it (the current snapshot), with the keys that
/// each snapshot holds more than one row of.
fn duck(lake: &Lake, table: &str) -> Value {
    duck_keyed(lake, table, "key")
}

/// The table as DuckDB reads it, with the values of column `key` that each
/// snapshot holds more than one row of.
pub(crate) fn duck_keyed(lake: &Lake, table: &str, key: &str) -> Value {
    let site = weir_test_services::python_packages("duckdb", DUCKDB).expect("DuckDB installs");
    let mut cmd = Command::new("python3");
    cmd.arg(weir_test_support::root().join("tests/iceberg/read_duckdb.py"))
        .arg(lake.catalog_arg())
        .args(["weir", table, "--key", key])
        .env("PYTHONPATH", site);
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "DuckDB failed: {}{}", String::from_utf8_lossy(&o.stderr), lake.server_log());
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Key → row: `base` with the changes in `copy` (a file sink's output)
/// applied in the order the generator made them.
fn model(copy: &Path, mut base: BTreeMap<String, Value>) -> BTreeMap<String, Value> {
    let mut changes: Vec<Value> = parts(copy).concat().iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    changes.sort_by_key(|c| c["id"].as_u64().unwrap());
    for mut c in changes {
        let key = c["key"].as_str().unwrap().to_string();
        let deleted = c.as_object_mut().unwrap().remove("__deleted").unwrap();
        if deleted == "true" {
            base.remove(&key);
        } else {
            base.insert(key, c);
        }
    }
    base
}

/// The rows of a DuckDB read, by key; no key twice, in this snapshot or any
/// earlier one.
fn by_key(t: &Value) -> BTreeMap<String, Value> {
    for (snapshot, keys) in t["duplicates_by_snapshot"].as_object().unwrap() {
        assert!(keys.as_array().unwrap().is_empty(), "snapshot {snapshot} holds more than one row of keys {keys}");
    }
    let mut out = BTreeMap::new();
    for r in t["rows"].as_array().unwrap() {
        let k = r["key"].as_str().unwrap().to_string();
        if let Some(old) = out.insert(k.clone(), r.clone()) {
            panic!("key {k} twice in the table: {old} and {r}");
        }
    }
    out
}

/// `db.accounts` as Weir's Iceberg source reads it (at `parallelism`), by key;
/// no key twice.
fn read_back(lake: &Lake, parallelism: u32) -> BTreeMap<String, Value> {
    let read = lake.path("read.yaml");
    std::fs::write(
        &read,
        format!(
            "name: back\nsources: [{{name: t, type: iceberg, parallelism: {parallelism}, catalog: {}, table: db.accounts}}]\nsinks: [{{name: out, type: file, input: t, path: '{}'}}]\n",
            lake.catalog(),
            lake.path("back").display()
        ),
    )
    .unwrap();
    run_ok(&read);
    let mut out = BTreeMap::new();
    for l in parts(&lake.path("back")).concat() {
        let v: Value = serde_json::from_str(&l).unwrap();
        let k = v["key"].as_str().unwrap().to_string();
        assert!(out.insert(k.clone(), v).is_none(), "key {k} twice in what the source read");
    }
    out
}

const SCHEMA: &str = "[{name: id, type: long, required: true}, {name: key, type: string, required: true}, {name: amount, type: long}, {name: ts, type: long}]";

/// A change-stream generator → (upsert Iceberg sink, file sink) pipeline.
fn spec(lake: &Lake, name: &str, generator: &str, checkpoint: &str) -> PathBuf {
    let sink = [
        "key_by: $.key",
        "table: db.accounts",
        "mode: upsert",
        "key: [key]",
        "deleted_field: __deleted",
        &format!("schema: {SCHEMA}"),
        "partition: ['bucket(4, key)']",
    ];
    pipeline(lake, name, generator, checkpoint, &sink.map(String::from))
}

#[test]
fn upsert_sink_keeps_the_last_change_of_each_key_as_duckdb_reads_it() {
    let lake = Lake::new();
    let p = spec(&lake, "cdc", "count: 6000, rate: 12000, keys: 40, seed: 5, deletes: 0.15", "100ms");
    run_ok(&p);
    let want = model(&lake.path("copy"), BTreeMap::new());
    let t = duck(&lake, "db.accounts");
    assert_eq!(by_key(&t), want, "each key's last change, deletes applied");
    assert!(want.len() > 20 && want.len() < 40, "some keys end deleted: {} of 40 remain", want.len());
    assert_eq!(t["identifier_fields"], serde_json::json!(["key"]), "the created table's identifier fields are the key");
    let kinds: std::collections::BTreeSet<String> = t["files"].as_array().unwrap().iter().map(|f| f[0].as_str().unwrap().to_string()).collect();
    let all: std::collections::BTreeSet<String> = ["DATA", "EQUALITY_DELETES", "POSITION_DELETES"].map(String::from).into();
    assert_eq!(kinds, all, "data, equality-delete and position-delete files are all live");

    // One snapshot per checkpoint, stamped (and by_key checked that every
    // snapshot holds each key at most once).
    let sums = summaries(&t);
    assert!(sums.len() >= 3, "a run of ~0.5 s checkpointing every 100 ms commits several snapshots: {sums:?}");
    let mut last = None;
    for s in &sums {
        assert!(["overwrite", "delete", "append"].contains(&s["operation"].as_str()), "{s:?}");
        assert_eq!((s["weir.pipeline"].as_str(), s["weir.operator"].as_str()), ("cdc", "lake"));
        let c: u64 = s["weir.checkpoint-id"].parse().unwrap();
        assert!(last < Some(c), "checkpoint ids increase: {sums:?}");
        last = Some(c);
    }
    assert!(sums.iter().any(|s| s["operation"] == "overwrite"), "{sums:?}");
    assert!(sums.iter().any(|s| s.contains_key("added-equality-deletes")), "keys of earlier snapshots changed: {sums:?}");
    assert!(sums.iter().any(|s| s.contains_key("added-position-deletes")), "some key changed twice within a checkpoint: {sums:?}");

    // Weir's own Iceberg source applies the deletes too.
    assert_eq!(read_back(&lake, 2), want, "the Iceberg source reads the upsert table as DuckDB does");

    // A second run (a fresh start, other changes) upserts into what the
    // first left: its equality deletes reach the first run's rows.
    std::fs::remove_dir_all(lake.path("state")).unwrap();
    std::fs::remove_dir_all(lake.path("copy")).unwrap();
    let p = spec(&lake, "cdc", "count: 3000, rate: 12000, keys: 60, seed: 6, deletes: 0.3", "100ms");
    run_ok(&p);
    let want = model(&lake.path("copy"), want);
    let t = duck(&lake, "db.accounts");
    assert_eq!(by_key(&t), want);
    let runs: std::collections::BTreeSet<String> = summaries(&t).iter().map(|s| s["weir.run-id"].clone()).collect();
    assert_eq!(runs.len(), 2);
}

#[test]
fn upsert_exactly_once_through_kill_9_and_crashes_around_the_iceberg_commit() {
    for fault in ["iceberg-before-commit:3", "iceberg-after-commit:4"] {
        let lake = Lake::new();
        let p = spec(&lake, "crashy", "count: 20000, rate: 4000, keys: 300, seed: 12, deletes: 0.1", "150ms");
        crash_fault_then_kill_5_times(&lake, &p, fault, 104729);
        let t = duck(&lake, "db.accounts");
        let want = model(&lake.path("copy"), BTreeMap::new());
        assert_eq!(by_key(&t), want, "{fault}: each key's last change, exactly once");
        let mut seen = std::collections::HashSet::new();
        for s in summaries(&t) {
            assert!(seen.insert((s["weir.run-id"].clone(), s["weir.checkpoint-id"].clone())), "checkpoint committed twice: {s:?}");
        }
        assert!(seen.len() >= 4);
        // Data and delete files of the killed attempts: none is in the table;
        // listed, then removed, and the table reads the same.
        let live: Vec<&str> = t["files"].as_array().unwrap().iter().map(|f| f[1].as_str().unwrap()).collect();
        let removed = remove_orphans(&lake, "db.accounts", &live);
        assert_eq!(by_key(&duck(&lake, "db.accounts")), want, "removing orphans leaves the table as it was");
        eprintln!("{fault}: {} keys, {} snapshots, {removed} orphan files removed", want.len(), seen.len());
    }
}

#[test]
fn upsert_through_a_rest_catalog_exactly_once_as_duckdb_reads_it() {
    // Row deltas through Iceberg's own REST catalog server: its commit
    // endpoint checks the main branch's head (the compare-and-swap), through
    // a crash right after a commit and five kill -9s.
    let lake = Lake::rest();
    let p = spec(&lake, "restcdc", "count: 24000, rate: 4000, keys: 200, seed: 13, deletes: 0.1", "150ms");
    crash_fault_then_kill_5_times(&lake, &p, "iceberg-after-commit:3", 7);
    let t = duck(&lake, "db.accounts");
    let want = model(&lake.path("copy"), BTreeMap::new());
    assert_eq!(by_key(&t), want, "each key's last change, exactly once");
    let sums = summaries(&t);
    let mut seen = std::collections::HashSet::new();
    for s in &sums {
        assert!(seen.insert((s["weir.run-id"].clone(), s["weir.checkpoint-id"].clone())), "checkpoint committed twice: {s:?}");
    }
    assert!(sums.iter().any(|s| s.contains_key("added-equality-deletes")), "{sums:?}");
    let live: Vec<&str> = t["files"].as_array().unwrap().iter().map(|f| f[1].as_str().unwrap()).collect();
    remove_orphans(&lake, "db.accounts", &live);
    // Weir's Iceberg source reads it back through the REST catalog.
    assert_eq!(read_back(&lake, 1), want);
}

#[test]
fn compaction_folds_an_upsert_tables_deletes_into_its_data_files_as_duckdb_and_spark_read_it() {
    let lake = Lake::new();
    let p = spec(&lake, "fold", "count: 6000, rate: 12000, keys: 80, seed: 9, deletes: 0.2", "60ms");
    run_ok(&p);
    let want = model(&lake.path("copy"), BTreeMap::new());
    let kinds = |t: &Value| -> std::collections::BTreeSet<String> { t["files"].as_array().unwrap().iter().map(|f| f[0].as_str().unwrap().to_string()).collect() };
    assert_eq!(kinds(&duck(&lake, "db.accounts")).len(), 3, "data, equality and position deletes before");
    let (parts, err) = compact(&lake, "db.accounts", &[], &[]);
    assert_eq!(parts.len(), 4, "every bucket had deletes: {err}");
    let t = duck(&lake, "db.accounts");
    assert_eq!(by_key(&t), want, "the same rows, deletes applied once and for all");
    assert_eq!(kinds(&t), ["DATA".to_string()].into(), "no delete file is left: {err}");
    assert_eq!(t["files"].as_array().unwrap().len(), 4, "one data file per bucket");
    let last = summaries(&t).pop().unwrap();
    assert_eq!((last["operation"].as_str(), last["total-delete-files"].as_str()), ("replace", "0"), "{last:?}");
    assert_eq!(last["total-records"], want.len().to_string(), "{last:?}");
    // Iceberg's Java reader agrees, at every snapshot.
    assert_eq!(by_key(&spark(&lake, "db.accounts")), want, "Spark reads the compacted table as DuckDB does");
    // The sink goes on upserting into the compacted table: its equality
    // deletes reach the rewritten rows.
    std::fs::remove_dir_all(lake.path("state")).unwrap();
    std::fs::remove_dir_all(lake.path("copy")).unwrap();
    let p = spec(&lake, "fold", "count: 2000, rate: 12000, keys: 80, seed: 10, deletes: 0.2", "60ms");
    run_ok(&p);
    let want = model(&lake.path("copy"), want);
    assert_eq!(by_key(&duck(&lake, "db.accounts")), want);
}

#[test]
fn compaction_beside_a_streaming_upsert_loses_no_change_committed_meanwhile() {
    // The rewritten files keep the starting snapshot's sequence number, so
    // that the equality deletes the sink commits while the compaction runs
    // reach the rows it rewrote; it commits on top of the sink's snapshots.
    let lake = Lake::new();
    // 3000 keys: many change again after the compaction read them, many do
    // not (their rows in the table are the rewritten ones).
    let p = spec(&lake, "busy", "count: 16000, rate: 4000, keys: 3000, seed: 14, deletes: 0.1", "100ms");
    let child = crate::common::weir_cmd(&["run", "--progress", "0", p.to_str().unwrap()], &[])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let (_, err) = compact(&lake, "db.accounts", &[], &[("WEIR_FAULT", "iceberg-compact-pause:1000")]);
    assert!(err.contains("committed on top of"), "the sink committed while the compaction paused: {err}");
    assert!(!err.contains(" 0 rows)"), "the compaction rewrote rows: {err}");
    eprintln!("{err}");
    crate::common::finish(child);
    let t = duck(&lake, "db.accounts");
    assert_eq!(by_key(&t), model(&lake.path("copy"), BTreeMap::new()), "every change once, in order");
    let ops: Vec<String> = summaries(&t).iter().map(|s| s["operation"].clone()).collect();
    assert_eq!(ops.iter().filter(|o| *o == "replace").count(), 1, "{ops:?}");
}

#[test]
fn checkpoints_every_few_milliseconds_at_full_speed_keep_one_row_per_key() {
    // Checkpoints overtake each other and epochs share snapshots: a key
    // written in one epoch and changed in the next, committed together,
    // must not keep both rows (an equality delete does not reach a row of its
    // own snapshot).
    // Every third snapshot of a sink task fails (and its checkpoint with it),
    // so that many epochs' files land together.
    let lake = Lake::new();
    let p = spec(&lake, "fast", "count: 200000, keys: 50, seed: 4, deletes: 0.1", "15ms");
    let o = weir(&["run", "--progress", "0", p.to_str().unwrap()], &[("WEIR_FAULT", "iceberg-fail-every-snapshot:3")]);
    let log = stderr(&o);
    assert!(o.status.success(), "{log}");
    assert!(log.contains("fault injection: failing this Iceberg sink snapshot"), "checkpoints failed: {log}");
    let t = duck(&lake, "db.accounts");
    let want = model(&lake.path("copy"), BTreeMap::new());
    assert_eq!(by_key(&t), want);
    // Iceberg's own (Java) reader agrees, snapshot by snapshot.
    assert_eq!(by_key(&spark(&lake, "db.accounts")), want, "Spark reads the table as DuckDB does");
}

#[test]
fn upsert_specs_and_records_get_errors_naming_what_and_where() {
    let lake = Lake::new();
    let p = lake.path("v.yaml");
    let cols = "[{name: id, type: long, required: true}, {name: key, type: string}, {name: score, type: double, required: true}]";
    let cases = [
        ("mode: upsert", "sinks[0].key: mode: upsert needs key: [columns]"),
        ("mode: upsert, key: [key]", "sinks[0].key.0: key column 'key' must be required"),
        ("mode: upsert, key: [score]", "sinks[0].key.0: key column 'score' is double: a key cannot be floating point"),
        ("mode: upsert, key: [nope]", "sinks[0].key.0: the table has no column 'nope'"),
        ("mode: upsert, key: [id, id]", "sinks[0].key.1: 'id' is named twice"),
        ("mode: upsert, key: [id], partition: [key]", "sinks[0].partition.0: mode: upsert partitions by key columns only ('key' is not in key: [id])"),
        ("mode: upsert, key: [id], key_by: $.key, parallelism: 2", "sinks[0].key_by: mode: upsert sends every change of a key to one task: key_by $.key is not a key column (key: [id]); write key_by: $.id"),
        ("mode: upsert, key: [id], parallelism: 2", "sinks[0].parallelism: mode: upsert with parallelism 2 needs key_by: $.id"),
        ("key: [id]", "sinks[0].key: a key is for mode: upsert"),
    ];
    for (extra, want) in cases {
        let out = refused_sink(&lake, cols, extra);
        assert!(out.contains(want), "{extra}: {out}");
    }
    // The sink's parallelism follows its input's: keyed routing is still needed.
    let text = format!(
        "name: v\nsources: [{{name: in, type: generator, count: 10, parallelism: 2}}]\nsinks:\n  - {{name: lake, type: iceberg, input: in, catalog: {}, table: db.t, schema: {cols}, mode: upsert, key: [id]}}\n",
        lake.catalog()
    );
    std::fs::write(&p, text).unwrap();
    let o = weir(&["run", "--progress", "0", p.to_str().unwrap()], &[]);
    assert!(!o.status.success() && stderr(&o).contains("mode: upsert with parallelism 2 needs key_by: $.id"), "{}", stderr(&o));

    // Existing tables: a format 1 table has no delete files; a table's own
    // identifier fields are the key. (Created by PyIceberg.)
    let site = weir_test_services::python_packages("pyiceberg", crate::iceberg::PYICEBERG).expect("PyIceberg installs");
    let create = format!(
        r#"
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.schema import Schema
from pyiceberg.types import NestedField, LongType, StringType
c = SqlCatalog("weir", uri="sqlite:///{db}", warehouse="file://{wh}")
c.create_namespace("old")
s = Schema(NestedField(1, "id", LongType(), required=True), NestedField(2, "key", StringType(), required=True), identifier_field_ids=[1])
c.create_table("old.v1", s, properties={{"format-version": "1"}})
c.create_table("old.v2", s)
"#,
        db = lake.path("catalog.db").display(),
        wh = lake.path("warehouse").display()
    );
    let o = Command::new("python3").args(["-c", &create]).env("PYTHONPATH", site).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for (table, key, want) in [
        ("old.v1", "id", "table old.v1 is an Iceberg v1 table, which has no delete files: mode: upsert needs format version 2"),
        ("old.v2", "key", "table old.v2's identifier fields are [id], but the sink's key is [key]"),
    ] {
        let text = format!(
            "name: v\nsources: [{{name: in, type: generator, count: 10}}]\nsinks: [{{name: lake, type: iceberg, input: in, catalog: {}, table: {table}, mode: upsert, key: [{key}]}}]\n",
            lake.catalog()
        );
        std::fs::write(&p, text).unwrap();
        let o = weir(&["run", "--progress", "0", p.to_str().unwrap()], &[]);
        assert!(!o.status.success() && stderr(&o).contains(want), "{table}: {}", stderr(&o));
    }

    // A record without its key, and an upsert without a required column, are
    // named with their line; a delete needs its key only.
    let input = lake.path("in.jsonl");
    std::fs::write(&input, "{\"id\": 1, \"score\": 0.5}\n{\"id\": 2, \"gone\": true}\n{\"id\": 3}\n").unwrap();
    let text = format!(
        "name: bad\nsources: [{{name: in, type: file, format: json_lines, path: '{}'}}]\nsinks: [{{name: lake, type: iceberg, input: in, catalog: {}, table: db.u, schema: {cols}, mode: upsert, key: [id], deleted_field: gone}}]\n",
        input.display(),
        lake.catalog()
    );
    std::fs::write(&p, text).unwrap();
    let o = weir(&["run", "--progress", "0", p.to_str().unwrap()], &[]);
    let e = stderr(&o);
    assert!(!o.status.success(), "{e}");
    assert!(e.contains(&format!("line 3 of {}", input.display())), "{e}");
    assert!(e.contains(r#"Iceberg table db.u: the record has no value for required column 'score' (the record is {"id": 3})"#), "{e}");
    std::fs::write(&input, "{\"key\": \"a\", \"score\": 0.5}\n").unwrap();
    let o = weir(&["run", "--progress", "0", p.to_str().unwrap()], &[]);
    let e = stderr(&o);
    assert!(!o.status.success() && e.contains(&format!("line 1 of {}", input.display())) && e.contains("db.u"), "{e}");
}
