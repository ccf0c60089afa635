//! Change data capture: Debezium change events (`format: debezium-json`) on
//! a real Kafka broker, as Debezium's PostgreSQL connector writes them (keys
//! `{"id": N}`, a snapshot of `r` events, then `c`, `u` and `d` with a
//! tombstone after each delete, some in the JSON converter's schema
//! envelope), applied to an Iceberg upsert table through `kill -9`s; DuckDB's
//! iceberg extension reads the table, which must equal the rows the change
//! events leave, row for row. A real PostgreSQL with Debezium, through a
//! changelog operator masking a column, with the lag of every change. An
//! upsert topic through `changelog-normalize` and an updating count. The
//! cdc-lakehouse example. Readers that cannot take a changelog are refused at
//! validation, saying why.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use weir_test_services::KafkaBroker;

use crate::common::{kill, produce, stderr, weir, weir_cmd};
use crate::iceberg::Lake;
use crate::iceberg_upsert::duck_keyed;

const TOPIC: &str = "pg.public.accounts";

/// A seeded workload on a table `accounts (id, name, balance, email)`: the
/// change events Debezium would write for it, and the table it leaves.
struct Workload {
    events: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    table: BTreeMap<i64, Value>,
    lsn: u64,
}

impl Workload {
    fn emit(&mut self, id: i64, op: &str, before: Option<Value>, after: Option<Value>) {
        self.lsn += 1;
        let lsn = self.lsn;
        let payload = json!({
            "before": before, "after": after, "op": op, "ts_ms": 1_760_000_000_000u64 + lsn,
            "source": {"connector": "postgresql", "db": "shop", "schema": "public", "table": "accounts", "lsn": lsn},
        });
        // Every third event in the JSON converter's envelope.
        let value = if lsn % 3 == 0 { json!({"schema": {"type": "struct", "optional": false}, "payload": payload}) } else { payload };
        let key = json!({"id": id}).to_string().into_bytes();
        self.events.push((key.clone(), Some(value.to_string().into_bytes())));
        if op == "d" {
            self.events.push((key, None));
        }
    }

    /// Update the `pick`-th row (modulo the rows there are) to version `v`.
    fn update(&mut self, pick: u64, v: u64) {
        let ids: Vec<i64> = self.table.keys().copied().collect();
        let id = ids[(pick as usize) % ids.len()];
        let (before, after) = (self.table[&id].clone(), row(id, v));
        self.emit(id, "u", Some(before), Some(after.clone()));
        self.table.insert(id, after);
    }
}

fn row(id: i64, v: u64) -> Value {
    json!({"id": id, "name": format!("user-{id}-{v}"), "balance": (v % 10_000) as i64 - 5000, "email": if v % 7 == 0 { Value::Null } else { json!(format!("u{id}@example.com")) }})
}

fn workload(seed: u64, snapshot: i64, changes: usize) -> Workload {
    let mut x = seed;
    let mut next = move |n: u64| {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (x >> 33) % n
    };
    let mut w = Workload { events: Vec::new(), table: BTreeMap::new(), lsn: 0 };
    for id in 0..snapshot {
        let r = row(id, next(1 << 20));
        w.emit(id, "r", None, Some(r.clone()));
        w.table.insert(id, r);
    }
    let mut new_id = snapshot;
    for _ in 0..changes {
        match next(100) {
            // Updates of the same keys, many times over.
            0..50 => w.update(next(1 << 20), next(1 << 20)),
            50..65 if w.table.len() > 10 => {
                let ids: Vec<i64> = w.table.keys().copied().collect();
                let id = ids[next(ids.len() as u64) as usize];
                let before = w.table.remove(&id);
                w.emit(id, "d", before, None);
            }
            65..92 => {
                let r = row(new_id, next(1 << 20));
                w.emit(new_id, "c", None, Some(r.clone()));
                w.table.insert(new_id, r);
                new_id += 1;
            }
            // One transaction updating many rows.
            _ => {
                for _ in 0..25 {
                    w.update(next(1 << 20), next(1 << 20));
                }
            }
        }
    }
    // A delete and a re-insert of one key.
    let id = *w.table.keys().next().unwrap();
    let before = w.table.remove(&id);
    w.emit(id, "d", before, None);
    let r = row(id, 424_242);
    w.emit(id, "c", None, Some(r.clone()));
    w.table.insert(id, r);
    w
}

const SCHEMA: &str = "[{name: id, type: long, required: true}, {name: name, type: string}, {name: balance, type: long}, {name: email, type: string}]";

fn spec(lake: &Lake, kafka: &KafkaBroker, sink: &str) -> String {
    format!(
        "name: cdc\nstate: {{dir: '@state'}}\ncheckpoint: {{interval: 100ms}}\nsources:\n  - {{name: pg, type: kafka, bootstrap: '{}', topic: {TOPIC}, format: debezium-json, key_format: json, until: latest}}\n{sink}",
        kafka.bootstrap()
    )
    .replace("@catalog", &lake.catalog())
}

fn upsert_sink() -> String {
    format!(
        "sinks:\n  - {{name: lake, type: iceberg, input: pg, key_by: $.id, parallelism: 2, catalog: @catalog, table: db.accounts, mode: upsert, key: [id], schema: {SCHEMA}}}\n"
    )
}

#[test]
fn debezium_changes_through_kill_9_leave_the_iceberg_table_equal_to_the_database() {
    let kafka = KafkaBroker::start().unwrap();
    kafka.create_topic(TOPIC, 3).unwrap();
    let w = workload(17, 300, 40_000);
    produce(&kafka, TOPIC, w.events.iter().map(|(k, v)| (Some(k.clone()), v.clone())));
    let lake = Lake::new();
    let p = lake.spec_file("cdc", &spec(&lake, &kafka, &upsert_sink()));
    let args = ["run", "--progress", "0", p.to_str().unwrap()];
    let kills = crate::common::run_killed_after_checkpoints(&args, &lake.path("state"), 3);
    assert!(kills >= 2, "the job was killed while it ran ({kills} kills)");
    let t = duck_keyed(&lake, "db.accounts", "id");
    for (snapshot, keys) in t["duplicates_by_snapshot"].as_object().unwrap() {
        assert!(keys.as_array().unwrap().is_empty(), "snapshot {snapshot} holds more than one row of ids {keys}");
    }
    let got: BTreeMap<i64, Value> = t["rows"].as_array().unwrap().iter().map(|r| (r["id"].as_i64().unwrap(), r.clone())).collect();
    assert_eq!(got.len(), t["rows"].as_array().unwrap().len(), "no id twice");
    let missing: Vec<_> = w.table.keys().filter(|k| !got.contains_key(k)).collect();
    let extra: Vec<_> = got.keys().filter(|k| !w.table.contains_key(k)).collect();
    assert!(missing.is_empty() && extra.is_empty(), "ids missing {missing:?}, ids that should be gone {extra:?}");
    for (id, want) in &w.table {
        assert_eq!(&got[id], want, "row {id}");
    }

    // An update without its old row (a table without REPLICA IDENTITY FULL)
    // stops the job, naming the record and what to do.
    kafka.create_topic("pg.public.plain", 1).unwrap();
    let bad = br#"{"before":null,"after":{"id":1,"name":"x"},"op":"u","source":{"schema":"public","table":"plain"}}"#;
    let ok = br#"{"before":null,"after":{"id":1,"name":"x"},"op":"c","source":{"schema":"public","table":"plain"}}"#;
    produce(&kafka, "pg.public.plain", [ok, bad].into_iter().map(|v| (Some(b"{\"id\":1}".to_vec()), Some(v.to_vec()))));
    let p = lake.spec_file("plain", &spec(&lake, &kafka, &upsert_sink()).replace(TOPIC, "pg.public.plain").replace("db.accounts", "db.plain"));
    let o = weir(&["run", "--progress", "0", p.to_str().unwrap()], &[]);
    let err = stderr(&o);
    assert!(!o.status.success());
    assert!(err.contains("topic pg.public.plain partition 0 offset 1: a Debezium update event (op 'u') of public.plain has no 'before' row"), "{err}");
    assert!(err.contains("ALTER TABLE public.plain REPLICA IDENTITY FULL"), "{err}");
}

#[test]
fn readers_that_cannot_take_a_changelog_are_refused_saying_why() {
    let lake = Lake::new();
    let kafka_spec = |rest: &str| {
        format!("name: cdc\nsources:\n  - {{name: pg, type: kafka, bootstrap: '127.0.0.1:1', topic: t, format: debezium-json}}\n{rest}")
            .replace("@catalog", &lake.catalog())
    };
    let refused = |text: String| {
        let p = lake.path("v.yaml");
        std::fs::write(&p, text).unwrap();
        let o = weir(&["validate", p.to_str().unwrap()], &[]);
        assert!(!o.status.success());
        String::from_utf8_lossy(&o.stdout).into_owned() + &stderr(&o)
    };
    let plugin = weir_test_support::plugin_dir().join("word_count.wasm");
    let err = refused(kafka_spec(&format!(
        "operators:\n  - {{name: mask, plugin: '{}', input: pg}}\nsinks:\n  - {{name: out, type: file, input: mask, path: /tmp/x, format: changelog-json}}\n",
        plugin.display()
    )));
    assert!(err.contains("v.yaml:5:"), "{err}");
    assert!(err.contains("implements weir:operator/operator@0.1.0, but operator 'mask' reads a changelog of inserts, updates and deletes, and that world sees every record as an insert"), "{err}");
    assert!(err.contains("build the plugin for weir:operator/changelog-operator@0.3.0, which carries row kinds (Rust: weir_sdk::export_changelog_operator!"), "{err}");
    // A changelog operator's output is a changelog too.
    let mask = weir_test_support::fixture("mask").display().to_string();
    let err = refused(kafka_spec(&format!(
        "operators:\n  - {{name: mask, plugin: '{mask}', input: pg, config: {{fields: email}}}}\nsinks:\n  - {{name: out, type: stdout, input: mask}}\n"
    )));
    assert!(err.contains("sink 'out' reads 'mask', a changelog of inserts, updates and deletes (made from 'pg'), but a 'stdout' sink writes every row as a new record"), "{err}");
    // An upsert changelog has no rows to retract: normalise it first.
    let upserts = |rest: &str| kafka_spec(rest).replace("format: debezium-json", "format: upsert, key_format: json");
    let err = refused(upserts(&format!(
        "operators:\n  - {{name: mask, plugin: '{mask}', input: pg, config: {{fields: email}}}}\nsinks:\n  - {{name: out, type: file, input: mask, path: /tmp/x, format: changelog-json}}\n"
    )));
    assert!(err.contains("operator 'mask' reads 'pg', an upsert changelog (updates and deletes by key, without the rows they replace)"), "{err}");
    assert!(err.contains("put a `type: changelog-normalize` operator (key_by the key) before it"), "{err}");
    let err = refused(upserts("operators:\n  - {name: n, type: changelog-normalize, input: pg}\nsinks:\n  - {name: out, type: stdout, input: n}\n"));
    assert!(err.contains("operators[0].key_by: a changelog-normalize operator needs key_by: the key whose last row it keeps"), "{err}");
    // A window function cannot take a record back out of its accumulator.
    let windowed = weir_test_support::fixture("window_count").display().to_string();
    let err = refused(kafka_spec(&format!(
        "operators:\n  - {{name: w, plugin: '{windowed}', input: pg, key_by: $.id, window: {{type: tumbling, size: 1s}}}}\nsinks:\n  - {{name: out, type: stdout, input: w}}\n"
    )));
    assert!(err.contains("operator 'w' reads 'pg'") && err.contains("a window operator adds records to its windows' accumulators and has no way to take one back out"), "{err}");
    // What a changelog operator makes can go to a file with its kinds.
    let p = lake.path("ok.yaml");
    std::fs::write(
        &p,
        upserts(&format!(
            "operators:\n  - {{name: n, type: changelog-normalize, input: pg, key_by: $.id}}\n  - {{name: mask, plugin: '{mask}', input: n, config: {{fields: email}}}}\nsinks:\n  - {{name: out, type: file, input: mask, path: '{}', format: changelog-json}}\n",
            lake.path("out").display()
        )),
    )
    .unwrap();
    let o = weir(&["validate", p.to_str().unwrap()], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = refused(kafka_spec("sinks:\n  - {name: out, type: kafka, input: pg, bootstrap: 'b:1', topic: o, format: json}\n"));
    assert!(err.contains("give it format: upsert (deletes as tombstones) or format: debezium-json"), "{err}");
    let err = refused(kafka_spec("sinks:\n  - {name: out, type: file, input: pg, path: /tmp/x}\n"));
    assert!(err.contains("sink 'out' reads 'pg', a changelog") && err.contains("a 'file' sink writes every row as a new record"), "{err}");
    let err = refused(kafka_spec(&format!("sinks:\n  - {{name: lake, type: iceberg, input: pg, catalog: @catalog, table: db.t, schema: {SCHEMA}}}\n")));
    assert!(err.contains("an Iceberg sink in append mode would keep every version of every row: give it mode: upsert"), "{err}");
    let err = refused(
        "name: x\nsources:\n  - {name: pg, type: kafka, bootstrap: 'b:1', topic: t, key_format: debezium-json}\nsinks:\n  - {name: out, type: stdout, input: pg}\n".into(),
    );
    assert!(err.contains("debezium-json describes values"), "{err}");
}

/// A seeded round of transactions on `accounts`: inserts of new ids, updates
/// of the same few ids many times, deletes, a delete and re-insert of one id
/// in one transaction, and one transaction updating many rows.
fn round(pg: &weir_test_services::Postgres, seed: u64, next_id: &mut i64) {
    let mut x = seed;
    let mut next = move |n: u64| {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (x >> 33) % n
    };
    for t in 0..60 {
        let sql = match next(10) {
            0..=3 => {
                let id = next(40);
                format!("update accounts set balance = balance + {}, name = 'hot-{id}-{seed}-{t}' where id = {id}", next(100))
            }
            4 | 5 => {
                let id = *next_id;
                *next_id += 1;
                format!("insert into accounts values ({id}, 'new-{id}', {}, 'n{id}@example.com')", next(1000))
            }
            6 => format!("delete from accounts where id = {}", next(*next_id as u64)),
            7 => {
                let id = next(40);
                format!("delete from accounts where id = {id}; insert into accounts values ({id}, 'again-{seed}-{t}', -1, null)")
            }
            8 => format!("update accounts set email = null, balance = balance - 1 where id % 7 = {}", next(7)),
            _ => format!("update accounts set name = name || '+' where id between {0} and {0} + 30", next(*next_id as u64)),
        };
        pg.psql(&sql).unwrap();
    }
}

/// `accounts` as PostgreSQL has it, by id, with `email` masked as the
/// pipeline's mask operator masks it.
fn database(pg: &weir_test_services::Postgres) -> BTreeMap<i64, Value> {
    let text = pg.psql("select coalesce(json_agg(a order by id), '[]') from accounts a").unwrap();
    let rows: Vec<Value> = serde_json::from_str(&text).unwrap();
    rows.into_iter()
        .map(|mut r| {
            if !r["email"].is_null() {
                r["email"] = "***".into();
            }
            (r["id"].as_i64().unwrap(), r)
        })
        .collect()
}

/// The Iceberg table as DuckDB reads it, by id, asserting no snapshot holds an id twice.
fn lake_rows(lake: &Lake) -> BTreeMap<i64, Value> {
    let t = duck_keyed(lake, "db.accounts", "id");
    for (snapshot, keys) in t["duplicates_by_snapshot"].as_object().unwrap() {
        assert!(keys.as_array().unwrap().is_empty(), "snapshot {snapshot} holds more than one row of ids {keys}");
    }
    t["rows"].as_array().unwrap().iter().map(|r| (r["id"].as_i64().unwrap(), r.clone())).collect()
}

/// Wait until the table DuckDB reads equals `want` (at most `limit`, and
/// while `child` runs); what it read last.
fn caught_up(lake: &Lake, want: &BTreeMap<i64, Value>, child: &mut std::process::Child, limit: Duration) -> BTreeMap<i64, Value> {
    let start = Instant::now();
    loop {
        let got = lake_rows(lake);
        if &got == want || start.elapsed() > limit || child.try_wait().unwrap().is_some() {
            return got;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The lag of every row version written to the table since `since` (ms since
/// the epoch): from `changed_at` (stamped by PostgreSQL when the row changed)
/// to the commit of the Iceberg snapshot that added its data file, as DuckDB
/// reads them; (changed_at, lag) in ms.
fn lags(lake: &Lake, since: i64) -> Vec<(i64, i64)> {
    let site = weir_test_services::python_packages("duckdb", crate::iceberg_upsert::DUCKDB).expect("DuckDB installs");
    let o = std::process::Command::new("python3")
        .arg(weir_test_support::root().join("tests/iceberg/lag_duckdb.py"))
        .arg(lake.catalog_arg())
        .args(["weir", "db.accounts", "--key", "id", "--changed", "changed_at", "--since", &since.to_string()])
        .env("PYTHONPATH", site)
        .output()
        .unwrap();
    assert!(o.status.success(), "DuckDB failed: {}", String::from_utf8_lossy(&o.stderr));
    let rows: Vec<Value> = serde_json::from_slice(&o.stdout).unwrap();
    rows.iter().map(|r| (r["changed_at"].as_i64().unwrap(), r["lag_ms"].as_i64().unwrap())).collect()
}

/// The `q`-quantile of sorted `v` (nearest rank).
fn quantile(v: &[i64], q: f64) -> i64 {
    v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1]
}

#[test]
fn a_postgres_table_through_real_debezium_a_mask_and_kill_9_lands_in_iceberg_row_for_row() {
    let pg = weir_test_services::Postgres::start().unwrap();
    // `changed_at`: when each row last changed, for the lag to the table.
    pg.psql(
        "create table accounts(id int primary key, name text not null, balance bigint, email text, changed_at bigint); \
         alter table accounts replica identity full; \
         create function stamp() returns trigger language plpgsql as $$ begin \
           new.changed_at := (extract(epoch from clock_timestamp()) * 1000)::bigint; return new; end $$; \
         create trigger stamp before insert or update on accounts for each row execute function stamp(); \
         insert into accounts select i, 'initial-' || i, i * 10, 'a' || i || '@example.com' from generate_series(0, 199) i",
    )
    .unwrap();
    let kafka = KafkaBroker::start().unwrap();
    kafka.create_topic("cdc.public.accounts", 3).unwrap();
    let connect = weir_test_services::KafkaConnect::debezium_postgres(&kafka.bootstrap(), &pg, "public.accounts", "weir_cdc").unwrap();
    let lake = Lake::new();
    let schema = "[{name: id, type: int, required: true}, {name: name, type: string}, {name: balance, type: long}, {name: email, type: string}, {name: changed_at, type: long}]";
    // Debezium -> a keyed changelog operator masking emails (weir:operator@0.3.0) -> Iceberg upsert.
    let text = format!(
        "name: cdc\nstate: {{dir: '@state'}}\ncheckpoint: {{interval: 200ms}}\nsources:\n  - {{name: pg, type: kafka, bootstrap: '{}', topic: cdc.public.accounts, format: debezium-json, key_format: json}}\n\
         operators:\n  - {{name: mask, plugin: '{}', input: pg, key_by: $.id, parallelism: 2, config: {{fields: email}}}}\n\
         sinks:\n  - {{name: lake, type: iceberg, input: mask, key_by: $.id, parallelism: 2, catalog: @catalog, table: db.accounts, mode: upsert, key: [id], schema: {schema}}}\n",
        kafka.bootstrap(),
        weir_test_support::fixture("mask").display()
    );
    let p = lake.spec_file("cdc", &text);
    let args = ["run", "--progress", "0", p.to_str().unwrap()];
    let mut next_id = 200;
    // Four rounds of changes, Weir killed with kill -9 in each at a seeded moment.
    for r in 0..4u64 {
        let mut child = weir_cmd(&args, &[]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        round(&pg, 100 + r, &mut next_id);
        std::thread::sleep(Duration::from_millis(300 + (r * 7919) % 900));
        assert!(child.try_wait().unwrap().is_none(), "an unbounded job runs until stopped");
        kill(child);
    }
    let mut child = weir_cmd(&args, &[]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    // Caught up with what happened while it was down; then changes while it runs.
    let mut got = caught_up(&lake, &database(&pg), &mut child, Duration::from_secs(120));
    let steady = weir_engine::now_ms();
    if got == database(&pg) {
        for r in 0..4 {
            round(&pg, 999 + r, &mut next_id);
            std::thread::sleep(Duration::from_millis(400));
        }
        got = caught_up(&lake, &database(&pg), &mut child, Duration::from_secs(60));
    }
    let want = database(&pg);
    let log = kill(child);
    let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(k)).collect();
    let extra: Vec<_> = got.keys().filter(|k| !want.contains_key(k)).collect();
    assert!(missing.is_empty() && extra.is_empty(), "ids missing {missing:?}, ids that should be gone {extra:?}\n{log}\nconnect:\n{}", connect.log_tail(20));
    for (id, row) in &want {
        assert_eq!(&got[id], row, "row {id}");
    }
    assert!(got.values().any(|r| r["email"] == "***") && got.values().all(|r| r["email"] == "***" || r["email"].is_null()));
    // Lag from PostgreSQL to an Iceberg snapshot of the row versions changed
    // while the job ran undisturbed.
    let mut lag: Vec<i64> = lags(&lake, steady).into_iter().filter(|(at, _)| *at >= steady).map(|(_, l)| l).collect();
    lag.sort();
    assert!(lag.len() >= 100, "{} row versions changed while the job ran", lag.len());
    let (p50, p99, max) = (quantile(&lag, 0.5), quantile(&lag, 0.99), lag[lag.len() - 1]);
    eprintln!("lag from PostgreSQL to the Iceberg snapshot over {} row versions: p50 {p50} ms, p99 {p99} ms, max {max} ms", lag.len());
    assert!(lag[0] >= 0, "a row reached the table before it changed: {lag:?}");
    assert!(max < 30_000, "a change took {max} ms to reach the table");
}

/// Every committed record of `topic` (read_committed), in partition order:
/// (key, value; `None` a tombstone).
fn committed(kafka: &KafkaBroker, topic: &str) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    let c: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka.bootstrap())
        .set("group.id", "cdc-check")
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let md = c.fetch_metadata(Some(topic), Duration::from_secs(10)).unwrap();
    let parts: Vec<i32> = md.topics()[0].partitions().iter().map(|p| p.id()).collect();
    let mut tpl = rdkafka::TopicPartitionList::new();
    let mut ends = BTreeMap::new();
    for &p in &parts {
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning).unwrap();
        ends.insert(p, c.fetch_watermarks(topic, p, Duration::from_secs(10)).unwrap().1);
    }
    c.assign(&tpl).unwrap();
    let mut out: BTreeMap<i32, Vec<(Vec<u8>, Option<Vec<u8>>)>> = BTreeMap::new();
    let start = Instant::now();
    loop {
        let pos = c.position().unwrap();
        let done = ends.iter().all(|(p, end)| match pos.find_partition(topic, *p).map(|e| e.offset()) {
            Some(rdkafka::Offset::Offset(o)) => o >= *end,
            _ => *end == 0,
        });
        if done {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "reading {topic} back took over 60 s");
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            let m = m.unwrap();
            out.entry(m.partition()).or_default().push((m.key().unwrap_or_default().to_vec(), m.payload().map(<[u8]>::to_vec)));
        }
    }
    out.into_values().flatten().collect()
}

#[test]
fn a_changelog_goes_out_to_kafka_as_upserts_and_debezium_events_and_comes_back_alike() {
    let kafka = KafkaBroker::start().unwrap();
    for t in [TOPIC, "accounts-upserts", "accounts-changes"] {
        kafka.create_topic(t, 3).unwrap();
    }
    let w = workload(23, 200, 3000);
    produce(&kafka, TOPIC, w.events.iter().map(|(k, v)| (Some(k.clone()), v.clone())));
    let lake = Lake::new();
    // Debezium events in; upserts and Debezium events out, exactly once.
    let out = "sinks:\n  - {name: upserts, type: kafka, input: pg, bootstrap: 'B', topic: accounts-upserts, format: upsert}\n  - {name: changes, type: kafka, input: pg, bootstrap: 'B', topic: accounts-changes, format: debezium-json}\n"
        .replace('B', &kafka.bootstrap());
    let p = lake.spec_file("out", &spec(&lake, &kafka, &out));
    let o = weir(&["run", "--progress", "0", p.to_str().unwrap()], &[]);
    assert!(o.status.success(), "{}", stderr(&o));

    // The upsert topic's last record of each key is its row, or a tombstone.
    let mut last: BTreeMap<i64, Option<Value>> = BTreeMap::new();
    for (k, v) in committed(&kafka, "accounts-upserts") {
        let key: Value = serde_json::from_slice(&k).unwrap();
        last.insert(key["id"].as_i64().unwrap(), v.map(|v| serde_json::from_slice(&v).unwrap()));
    }
    let live: BTreeMap<i64, Value> = last.into_iter().filter_map(|(k, v)| Some((k, v?))).collect();
    assert_eq!(live, w.table, "the upsert topic compacts to the table");

    // Both topics, read back as changelogs into upsert tables, give the table.
    for (topic, format, table) in [("accounts-upserts", "upsert", "db.from_upserts"), ("accounts-changes", "debezium-json", "db.from_changes")] {
        let _ = std::fs::remove_dir_all(lake.path("state"));
        let text = spec(&lake, &kafka, &upsert_sink()).replace(TOPIC, topic).replace("format: debezium-json", &format!("format: {format}")).replace("db.accounts", table);
        let p = lake.spec_file(format, &text);
        let o = weir(&["run", "--progress", "0", p.to_str().unwrap()], &[]);
        assert!(o.status.success(), "{}", stderr(&o));
        let t = duck_keyed(&lake, table, "id");
        let got: BTreeMap<i64, Value> = t["rows"].as_array().unwrap().iter().map(|r| (r["id"].as_i64().unwrap(), r.clone())).collect();
        assert_eq!(got.len(), t["rows"].as_array().unwrap().len(), "no id twice in {table}");
        assert_eq!(got, w.table, "{table} (read as {format})");
    }
}

/// Upserts of a table `accounts (id, g, amount)` keyed `{"id": N}`, as an
/// upsert topic (Flink's upsert-kafka) holds them: rows replaced many times,
/// some by themselves again, tombstones, some of ids that have no row; and the
/// rows it leaves.
fn upserts(seed: u64, records: usize) -> (Vec<(Vec<u8>, Option<Vec<u8>>)>, BTreeMap<i64, Value>) {
    let mut x = seed;
    let mut next = move |n: u64| {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (x >> 33) % n
    };
    let (mut out, mut table) = (Vec::new(), BTreeMap::<i64, Value>::new());
    for _ in 0..records {
        let id = next(400) as i64;
        let key = json!({"id": id}).to_string().into_bytes();
        match next(10) {
            0 | 1 => {
                out.push((key, None));
                table.remove(&id);
            }
            2 if table.contains_key(&id) => out.push((key, Some(table[&id].to_string().into_bytes()))),
            _ => {
                let row = json!({"id": id, "g": format!("g{}", next(7)), "amount": next(1000)});
                out.push((key, Some(row.to_string().into_bytes())));
                table.insert(id, row);
            }
        }
    }
    (out, table)
}

#[test]
fn an_upsert_topic_normalized_then_counted_through_kill_9_equals_the_group_by() {
    let kafka = KafkaBroker::start().unwrap();
    kafka.create_topic("upserts", 3).unwrap();
    let (records, table) = upserts(31, 60_000);
    produce(&kafka, "upserts", records.into_iter().map(|(k, v)| (Some(k), v)));
    let dir = tempfile::tempdir().unwrap();
    let (out, state) = (dir.path().join("out"), dir.path().join("state"));
    let spec = dir.path().join("normalize.yaml");
    std::fs::write(
        &spec,
        format!(
            "name: normalize\nstate: {{dir: '{state}'}}\ncheckpoint: {{interval: 100ms}}\n\
             sources: [{{name: accounts, type: kafka, bootstrap: '{bootstrap}', topic: upserts, format: upsert, key_format: json, until: latest}}]\n\
             operators:\n  - {{name: rows, type: changelog-normalize, input: accounts, key_by: $.id, parallelism: 2}}\n\
             \x20 - {{name: count, plugin: '{count}', input: rows, key_by: $.g, parallelism: 2}}\n\
             sinks: [{{name: out, type: file, path: '{out}', input: count, format: changelog-json}}]\n",
            state = state.display(),
            bootstrap = kafka.bootstrap(),
            count = weir_test_support::fixture("changelog_count").display(),
            out = out.display(),
        ),
    )
    .unwrap();
    let kills = crate::common::run_killed_after_checkpoints(&["run", "--progress", "0", spec.to_str().unwrap()], &state, 3);
    assert!(kills >= 2, "the job was killed while it ran ({kills} kills)");
    // The normalised changelog retracted exactly the rows it had put in, so the
    // counts' changelog applies cleanly and ends at the GROUP BY of the table.
    let applied = crate::common::apply_changelog(&crate::common::parts(&out).concat());
    assert_eq!(applied, crate::common::count_by_group(table.values()));
}

#[test]
fn the_cdc_lakehouse_example_runs_and_catches_up() {
    // The script's own checks: after each round of transactions the Iceberg
    // table (read by DuckDB) equals the database, within 120 s, across a kill -9.
    weir_test_services::python_packages("duckdb", crate::iceberg_upsert::DUCKDB).expect("DuckDB installs");
    let target = weir_test_services::target_dir();
    let o = std::process::Command::new("bash")
        .arg(weir_test_support::root().join("examples/cdc-lakehouse/run.sh"))
        .arg("2")
        .env("WEIR", env!("CARGO_BIN_EXE_weir"))
        .env("WEIR_SERVICES", target.join("release/weir-services"))
        .env("WEIR_PLUGINS", weir_test_support::plugin_dir())
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}{}", stderr(&o));
    assert_eq!(out.matches("the Iceberg table equals SELECT * FROM accounts (emails masked)").count(), 3, "{out}");
    assert!(out.contains("kill -9 of the job") && out.contains(r#""email": "***""#) && out.contains("p99"), "{out}");
}
