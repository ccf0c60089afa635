//! Streaming SQL (`weir sql`): Nexmark-style queries over a bounded file of
//! bids give exactly what DuckDB (an independent engine, batch SQL over the
//! same rows) computes: projections and filters (q0, q1, q2), TUMBLE and HOP
//! window aggregations (every window closes at the end of the input), and an
//! updating GROUP BY whose changelog, applied to a table, is DuckDB's GROUP
//! BY, also through `kill -9`s. EXPLAIN, and errors that name the construct
//! and where it is.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::common::{parts, run_killed_after_checkpoints, stderr, weir};

/// Seeded bids as JSON lines: `{auction, bidder, price, channel, dateTime}`,
/// event time in ms increasing with a little disorder (at most 80 ms back).
fn bids(n: usize, seed: u64) -> String {
    let mut x = seed;
    let mut next = move |m: u64| {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (x >> 33) % m
    };
    let mut t: i64 = 1_767_225_600_000;
    let mut out = String::new();
    for _ in 0..n {
        t += next(40) as i64;
        let ts = t - next(80) as i64;
        let (auction, bidder, price) = (1000 + next(300), next(500), 1 + next(10_000));
        let channel = ["Google", "Facebook", "Baidu", "Apple"][next(4) as usize];
        let row = json!({
            "auction": auction, "bidder": bidder, "price": price, "channel": channel, "dateTime": ts,
        });
        out.push_str(&row.to_string());
        out.push('\n');
    }
    out
}

pub(crate) const BID: &str = "CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, dateTime TIMESTAMP(3),\n  WATERMARK FOR dateTime AS dateTime - INTERVAL '0.1' SECOND\n) WITH ('connector' = 'file', 'path' = '@BIDS');\n";

/// Run DuckDB over the bids (table `bid`, dateTime in ms), and the persons
/// and auctions beside them if there are (`person`, `auction`), and return
/// the rows of `query`.
pub(crate) fn duckdb(bids: &Path, query: &str) -> Vec<Value> {
    let site = weir_test_services::python_packages("duckdb", crate::iceberg_upsert::DUCKDB).expect("DuckDB installs");
    let script = r#"
import duckdb, json, sys
con = duckdb.connect()
# A long query would print a progress bar on stdout, before the rows.
con.execute("SET enable_progress_bar = false")
con.execute("CREATE TABLE bid AS SELECT * FROM read_json(?, format = 'newline_delimited', columns = {'auction': 'BIGINT', 'bidder': 'BIGINT', 'price': 'BIGINT', 'channel': 'VARCHAR', 'dateTime': 'BIGINT'})", [sys.argv[1]])
import os
d = os.path.dirname(sys.argv[1])
if os.path.exists(os.path.join(d, "person.jsonl")):
    con.execute("CREATE TABLE person AS SELECT * FROM read_json(?, format = 'newline_delimited', columns = {'id': 'BIGINT', 'name': 'VARCHAR', 'city': 'VARCHAR', 'state': 'VARCHAR', 'dateTime': 'BIGINT'})", [os.path.join(d, "person.jsonl")])
    con.execute("CREATE TABLE auction AS SELECT * FROM read_json(?, format = 'newline_delimited', columns = {'id': 'BIGINT', 'seller': 'BIGINT', 'category': 'BIGINT', 'reserve': 'BIGINT', 'dateTime': 'BIGINT'})", [os.path.join(d, "auction.jsonl")])
cur = con.execute(sys.argv[2])
cols = [d[0] for d in cur.description]
print(json.dumps([dict(zip(cols, r)) for r in cur.fetchall()], default=str))
"#;
    let o = Command::new("python3").arg("-c").arg(script).arg(bids).arg(query).env("PYTHONPATH", site).output().unwrap();
    assert!(o.status.success(), "DuckDB failed: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// A work directory with the bids and a script in it.
pub(crate) struct Work {
    pub(crate) dir: tempfile::TempDir,
}

impl Work {
    pub(crate) fn new(n: usize) -> Work {
        let w = Work { dir: tempfile::tempdir().unwrap() };
        std::fs::write(w.bids(), bids(n, 7)).unwrap();
        w
    }

    pub(crate) fn bids(&self) -> PathBuf {
        self.dir.path().join("bids.jsonl")
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Write `text` (with `@BIDS` and `@OUT/x` placed) as a script.
    pub(crate) fn script(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        let text = text.replace("@BIDS", self.bids().to_str().unwrap()).replace("@OUT", self.dir.path().to_str().unwrap());
        std::fs::write(&p, text).unwrap();
        p
    }

    /// The rows a file sink wrote under `@OUT/name`, as JSON.
    pub(crate) fn rows(&self, name: &str) -> Vec<Value> {
        parts(&self.path(name)).concat().iter().map(|l| serde_json::from_str(l).unwrap()).collect()
    }
}

/// Rows as a sorted list of their JSON texts, floats rounded to 6 places.
fn canonical(rows: &[Value]) -> Vec<String> {
    fn round(v: &Value) -> Value {
        match v {
            Value::Number(n) if n.is_f64() => json!((n.as_f64().unwrap() * 1e6).round() / 1e6),
            Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), round(v))).collect()),
            other => other.clone(),
        }
    }
    let mut out: Vec<String> = rows.iter().map(|r| round(r).to_string()).collect();
    out.sort();
    out
}

pub(crate) fn assert_same(name: &str, got: &[Value], want: &[Value]) {
    let (g, w) = (canonical(got), canonical(want));
    if g != w {
        let missing: Vec<_> = w.iter().filter(|r| !g.contains(r)).take(5).collect();
        let extra: Vec<_> = g.iter().filter(|r| !w.contains(r)).take(5).collect();
        panic!("{name}: {} rows, DuckDB {}; missing {missing:?}; extra {extra:?}", g.len(), w.len());
    }
    assert!(!w.is_empty(), "{name}: no rows to compare");
}

pub(crate) fn run_sql(script: &Path) -> String {
    let o = weir(&["sql", "--progress", "0", script.to_str().unwrap()], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    stderr(&o)
}

#[test]
fn nexmark_q0_q1_q2_give_what_duckdb_gives() {
    let w = Work::new(20_000);
    let script = w.script(
        "q.sql",
        &format!(
            "{BID}\
             CREATE TABLE q0 (auction BIGINT, bidder BIGINT, price BIGINT, dateTime BIGINT) WITH ('connector' = 'file', 'path' = '@OUT/q0');\n\
             CREATE TABLE q1 (auction BIGINT, bidder BIGINT, price DOUBLE, dateTime BIGINT) WITH ('connector' = 'file', 'path' = '@OUT/q1');\n\
             CREATE TABLE q2 (auction BIGINT, price BIGINT) WITH ('connector' = 'file', 'path' = '@OUT/q2');\n\
             -- q0: pass-through\n\
             INSERT INTO q0 SELECT auction, bidder, price, dateTime FROM bid;\n\
             -- q1: currency conversion\n\
             INSERT INTO q1 SELECT auction, bidder, 0.908 * price, dateTime FROM bid;\n\
             -- q2: selection (MOD(auction, 123) = 0 in Flink's Nexmark)\n\
             INSERT INTO q2 SELECT auction, price FROM bid WHERE auction % 123 = 0 OR (channel = 'Apple' AND price > 9900);\n"
        ),
    );
    let log = run_sql(&script);
    assert!(log.contains(": bid in 20000 out 20000;") && !log.contains("bid-2 in"), "one source for the three statements: {log}");
    let bids = w.bids();
    assert_same("q0", &w.rows("q0"), &duckdb(&bids, "SELECT auction, bidder, price, dateTime FROM bid"));
    assert_same("q1", &w.rows("q1"), &duckdb(&bids, "SELECT auction, bidder, CAST(0.908 * price AS DOUBLE) AS price, dateTime FROM bid"));
    assert_same(
        "q2",
        &w.rows("q2"),
        &duckdb(&bids, "SELECT auction, price FROM bid WHERE auction % 123 = 0 OR (channel = 'Apple' AND price > 9900)"),
    );
}

#[test]
fn tumble_hop_cumulate_and_session_window_aggregations_give_what_duckdb_gives() {
    let w = Work::new(30_000);
    let script = w.script(
        "w.sql",
        &format!(
            "{BID}\
             SET 'parallelism.default' = '2';\n\
             CREATE TABLE hot (auction BIGINT, num BIGINT, window_start BIGINT, window_end BIGINT) WITH ('connector' = 'file', 'path' = '@OUT/hot');\n\
             CREATE TABLE highest (maxprice BIGINT, bidders BIGINT, avg_price DOUBLE, window_start BIGINT, window_end BIGINT) WITH ('connector' = 'file', 'path' = '@OUT/highest');\n\
             -- q5's inner query: bids per auction per sliding window\n\
             INSERT INTO hot\n\
             SELECT auction, COUNT(*) AS num, window_start, window_end\n\
             FROM TABLE(HOP(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '2' SECOND, INTERVAL '10' SECOND))\n\
             GROUP BY auction, window_start, window_end;\n\
             -- q7's inner query, and more aggregates per tumbling window\n\
             INSERT INTO highest\n\
             SELECT MAX(price), COUNT(DISTINCT bidder), AVG(price), window_start, window_end\n\
             FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))\n\
             WHERE channel <> 'Baidu'\n\
             GROUP BY window_start, window_end;\n\
             CREATE TABLE cum (channel STRING, num BIGINT, total BIGINT, window_start BIGINT, window_end BIGINT) WITH ('connector' = 'file', 'path' = '@OUT/cum');\n\
             -- running totals within each 10-second period, every 2 seconds\n\
             INSERT INTO cum\n\
             SELECT channel, COUNT(*), SUM(price), window_start, window_end\n\
             FROM TABLE(CUMULATE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '2' SECOND, INTERVAL '10' SECOND))\n\
             GROUP BY channel, window_start, window_end;\n\
             CREATE TABLE sess (bidder BIGINT, num BIGINT, top BIGINT, window_start BIGINT, window_end BIGINT) WITH ('connector' = 'file', 'path' = '@OUT/sess');\n\
             -- each bidder's sessions: bids at most 10 seconds apart\n\
             INSERT INTO sess\n\
             SELECT bidder, COUNT(*), MAX(price), window_start, window_end\n\
             FROM TABLE(SESSION(TABLE bid PARTITION BY bidder, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))\n\
             GROUP BY bidder, window_start, window_end;\n"
        ),
    );
    run_sql(&script);
    let bids = w.bids();
    let hop = "SELECT auction, count(*) AS num, ws AS window_start, ws + 10000 AS window_end FROM (\
               SELECT auction, dateTime AS dt, unnest(range(dateTime - dateTime % 2000 - 8000, dateTime - dateTime % 2000 + 1, 2000)) AS ws FROM bid\
               ) WHERE ws > dt - 10000 GROUP BY auction, ws";
    assert_same("HOP count per auction", &w.rows("hot"), &duckdb(&bids, hop));
    let tumble = "SELECT max(price) AS maxprice, count(DISTINCT bidder) AS bidders, avg(price) AS avg_price, \
                  dateTime - dateTime % 10000 AS window_start, dateTime - dateTime % 10000 + 10000 AS window_end \
                  FROM bid WHERE channel <> 'Baidu' GROUP BY dateTime - dateTime % 10000";
    assert_same("TUMBLE max, count distinct, avg", &w.rows("highest"), &duckdb(&bids, tumble));
    let cumulate = "SELECT channel, count(*) AS num, sum(price) AS total, p AS window_start, e AS window_end FROM (\
                    SELECT channel, price, dateTime AS dt, dateTime - dateTime % 10000 AS p, \
                    unnest(range(dateTime - dateTime % 10000 + 2000, dateTime - dateTime % 10000 + 10001, 2000)) AS e FROM bid\
                    ) WHERE e > dt GROUP BY channel, p, e";
    assert_same("CUMULATE count and sum per channel", &w.rows("cum"), &duckdb(&bids, cumulate));
    // Sessions: a bid more than 10 s after the bidder's previous one starts a new one.
    let session = "WITH o AS (SELECT bidder, price, dateTime, CASE WHEN dateTime - lag(dateTime) OVER (PARTITION BY bidder ORDER BY dateTime) <= 10000 THEN 0 ELSE 1 END AS new FROM bid), \
                   s AS (SELECT *, sum(new) OVER (PARTITION BY bidder ORDER BY dateTime ROWS UNBOUNDED PRECEDING) AS sid FROM o) \
                   SELECT bidder, count(*) AS num, max(price) AS top, min(dateTime) AS window_start, max(dateTime) + 10000 AS window_end FROM s GROUP BY bidder, sid";
    let (got, want) = (w.rows("sess"), duckdb(&bids, session));
    assert!(want.iter().filter(|r| r["num"].as_i64() > Some(1)).count() > 100, "sessions of several bids: {}", want.len());
    assert_same("SESSION count and max per bidder", &got, &want);
}

/// Apply a changelog of rows keyed by `key` (`{"op","data"}` lines) to a table.
pub(crate) fn apply(lines: &[Value], key: &str) -> BTreeMap<String, Value> {
    apply_by(lines, &[key])
}

/// Apply a changelog of rows keyed by the columns `key` to a table: every
/// retraction must take out exactly the row the table holds.
pub(crate) fn apply_by(lines: &[Value], key: &[&str]) -> BTreeMap<String, Value> {
    let mut table = BTreeMap::new();
    for l in lines {
        let row = l["data"].clone();
        let k = key.iter().map(|c| row[c].to_string()).collect::<Vec<_>>().join(",");
        match l["op"].as_str().unwrap() {
            "+I" | "+U" => assert!(table.insert(k, row).is_none(), "{l} inserts a row the table holds"),
            "-U" | "-D" => assert_eq!(table.remove(&k).as_ref(), Some(&row), "{l} retracts a row the table does not hold"),
            op => panic!("op {op}"),
        }
    }
    table
}

const PER_AUCTION: &str = "SET 'checkpoint.interval' = '100ms';\nSET 'state.dir' = '@OUT/state';\nSET 'parallelism.default' = '2';\n\
     CREATE TABLE per_auction (auction BIGINT, bids BIGINT, total BIGINT, top BIGINT, avg_price DOUBLE, bidders BIGINT,\n  PRIMARY KEY (auction) NOT ENFORCED\n) WITH ('connector' = 'file', 'path' = '@OUT/per_auction');\n\
     INSERT INTO per_auction\n\
     SELECT auction, COUNT(*), SUM(price), MAX(price), AVG(price), COUNT(DISTINCT bidder) FROM bid GROUP BY auction;\n";

const PER_AUCTION_DUCKDB: &str =
    "SELECT auction, count(*) AS bids, sum(price) AS total, max(price) AS top, avg(price) AS avg_price, count(DISTINCT bidder) AS bidders FROM bid GROUP BY auction";

#[test]
fn an_updating_aggregate_emits_a_changelog_that_applies_to_duckdbs_group_by() {
    let w = Work::new(20_000);
    let script = w.script("agg.sql", &format!("{BID}{PER_AUCTION}"));
    run_sql(&script);
    let lines = w.rows("per_auction");
    for op in ["+I", "-U", "+U"] {
        assert!(lines.iter().any(|l| l["op"] == op), "the changelog has {op} rows");
    }
    let got: Vec<Value> = apply(&lines, "auction").into_values().collect();
    assert_same("GROUP BY auction", &got, &duckdb(&w.bids(), PER_AUCTION_DUCKDB));
}

#[test]
fn a_sql_job_killed_with_kill_9_resumes_to_the_same_results() {
    let w = Work::new(400_000);
    let script = w.script(
        "k.sql",
        &format!(
            "{BID}{PER_AUCTION}\
             CREATE TABLE per_window (auction BIGINT, num BIGINT, window_start BIGINT) WITH ('connector' = 'file', 'path' = '@OUT/per_window');\n\
             INSERT INTO per_window SELECT auction, COUNT(*), window_start FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '1' SECOND)) GROUP BY auction, window_start, window_end;\n"
        ),
    );
    let kills = run_killed_after_checkpoints(&["sql", "--progress", "0", script.to_str().unwrap()], &w.path("state"), 3);
    assert!(kills >= 2, "the job was killed while it ran ({kills} kills)");
    let got: Vec<Value> = apply(&w.rows("per_auction"), "auction").into_values().collect();
    assert_same("GROUP BY auction through kill -9", &got, &duckdb(&w.bids(), PER_AUCTION_DUCKDB));
    let windows = "SELECT auction, count(*) AS num, dateTime - dateTime % 1000 AS window_start FROM bid GROUP BY auction, dateTime - dateTime % 1000";
    assert_same("TUMBLE through kill -9 (each window once)", &w.rows("per_window"), &duckdb(&w.bids(), windows));
}

#[test]
fn explain_prints_each_operator_and_its_state() {
    let w = Work::new(10);
    let script = w.script("e.sql", &format!("{BID}{PER_AUCTION}"));
    let o = weir(&["sql", "--explain", script.to_str().unwrap()], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("bid: source bid (file), watermark dateTime - 100 ms"), "{text}");
    assert!(text.contains("--key_by--> s1-aggregate x2: updating aggregate (emits a changelog): GROUP BY auction"), "{text}");
    assert!(text.contains("state: per group key: its accumulators and the row it last emitted"), "{text}");
    assert!(text.contains("per_auction: sink per_auction (file, applies the changelog by key)"), "{text}");
    let o = weir(&["sql", "--print-spec", script.to_str().unwrap()], &[]);
    let spec: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(spec["sinks"][0]["format"], "changelog-json");
    assert_eq!(spec["operators"][1]["type"], "sql-aggregate");
}

#[test]
fn bad_sql_gets_errors_naming_the_construct_and_where() {
    let w = Work::new(10);
    let fails = |name: &str, text: &str| {
        let script = w.script(name, text);
        let o = weir(&["sql", "--explain", script.to_str().unwrap()], &[]);
        assert!(!o.status.success(), "{name} fails");
        stderr(&o)
    };
    let sink = "CREATE TABLE out (a BIGINT) WITH ('connector' = 'file', 'path' = '@OUT/o');\n";
    let err = fails("join.sql", &format!("{BID}{sink}INSERT INTO out SELECT b.auction FROM bid b LEFT JOIN bid c ON b.auction = c.auction AND b.price > c.price;\n"));
    assert!(err.contains("join.sql:5:1: a LEFT JOIN's ON condition other than equalities between the sides is not supported yet"), "{err}");
    let err = fails("cross.sql", &format!("{BID}{sink}INSERT INTO out SELECT b.auction FROM bid b, bid c WHERE b.price > c.price;\n"));
    assert!(err.contains("cross.sql:5:1: a join needs an equality between columns of its two sides"), "{err}");
    let err = fails("col.sql", &format!("{BID}{sink}INSERT INTO out SELECT nope FROM bid;\n"));
    assert!(err.contains("col.sql:5:1:") && err.contains("nope"), "{err}");
    let err = fails("syntax.sql", &format!("{BID}{sink}INSERT INTO out SELEC auction FROM bid;\n"));
    assert!(err.contains("syntax.sql:5:"), "{err}");
    let err = fails("conn.sql", "CREATE TABLE t (a BIGINT);\n");
    assert!(err.contains("conn.sql:1:14: table t has no connector: WITH ('connector' = 'kafka' | 'file' | 'generator' | 'iceberg', ...)"), "{err}");
    let err = fails("count.sql", &format!("{BID}{sink}INSERT INTO out SELECT auction, price FROM bid;\n"));
    assert!(err.contains("count.sql:5:1: INSERT INTO out: the query gives 2 columns, the table has 1 (a)"), "{err}");
    let err = fails(
        "desc.sql",
        &format!("{BID}{sink}INSERT INTO out SELECT COUNT(*) FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(price), INTERVAL '1' SECOND)) GROUP BY window_start, window_end;\n"),
    );
    assert!(err.contains("desc.sql:5:1:") && err.contains("DESCRIPTOR(price) is Int64, not a TIMESTAMP"), "{err}");
    let kafka = "CREATE TABLE counts (n BIGINT) WITH ('connector' = 'kafka', 'bootstrap' = '127.0.0.1:1', 'topic' = 'counts');\n";
    let err = fails(
        "session.sql",
        &format!("{BID}{sink}INSERT INTO out SELECT COUNT(*) FROM TABLE(SESSION(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '1' SECOND)) GROUP BY bidder, window_start, window_end;\n"),
    );
    assert!(
        err.contains("session.sql:5:1: SESSION: sessions are formed per PARTITION BY column () and the GROUP BY has besides the window (bidder): they must be the same"),
        "{err}"
    );
    let err = fails(
        "tpart.sql",
        &format!("{BID}{sink}INSERT INTO out SELECT COUNT(*) FROM TABLE(TUMBLE(TABLE bid PARTITION BY bidder, DESCRIPTOR(dateTime), INTERVAL '1' SECOND)) GROUP BY window_start, window_end;\n"),
    );
    assert!(err.contains("tpart.sql:5:") && err.contains("TUMBLE: PARTITION BY is for SESSION windows"), "{err}");
    let err = fails(
        "cum.sql",
        &format!("{BID}{sink}INSERT INTO out SELECT COUNT(*) FROM TABLE(CUMULATE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '3' SECOND, INTERVAL '10' SECOND)) GROUP BY window_start, window_end;\n"),
    );
    assert!(err.contains("CUMULATE: the size (10000 ms) must be a whole number of steps (3000 ms)"), "{err}");
    let err = fails("upd.sql", &format!("{BID}{kafka}INSERT INTO counts SELECT COUNT(*) FROM bid GROUP BY auction;\n"));
    assert!(err.contains("the query updates the rows it emitted") && err.contains("needs a PRIMARY KEY"), "{err}");
    let err = fails("sel.sql", &format!("{BID}SELECT * FROM bid;\n"));
    assert!(err.contains("sel.sql:4:1: a SELECT on its own has nowhere to go"), "{err}");
    let err = fails(
        "opt.sql",
        "CREATE TABLE k (a BIGINT) WITH ('connector' = 'kafka', 'bootstrap' = '127.0.0.1:1');\nCREATE TABLE out (a BIGINT) WITH ('connector' = 'file', 'path' = '/tmp/x');\nINSERT INTO out SELECT a FROM k;\n",
    );
    assert!(err.contains("opt.sql:1:") && err.contains("table k") && err.contains("topic"), "{err}");
}

#[test]
fn the_sql_windows_example_counts_every_generated_event() {
    let dir = tempfile::tempdir().unwrap();
    let (out, state) = (dir.path().join("out"), dir.path().join("state"));
    let env = [("WEIR_OUTPUT", out.to_str().unwrap()), ("WEIR_STATE", state.to_str().unwrap())];
    let o = weir(&["sql", "--progress", "0", "examples/sql-windows/job.sql"], &env);
    assert!(o.status.success(), "{}", stderr(&o));
    // The same events, from the generator itself.
    let g = weir_connectors::GeneratorSpec { seed: 7, count: Some(200_000), keys: 20, start_ms: 1_767_225_600_000, ..Default::default() };
    let (mut key, mut value) = (Vec::new(), Vec::new());
    let mut windows: BTreeMap<(String, i64), (i64, i64, i64)> = BTreeMap::new();
    let mut totals: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for n in 0..200_000 {
        let ts = g.event(n, &mut key, &mut value);
        let v: Value = serde_json::from_slice(&value).unwrap();
        let (k, amount) = (v["key"].as_str().unwrap().to_string(), v["amount"].as_i64().unwrap());
        let t = totals.entry(k.clone()).or_default();
        *t = (t.0 + 1, t.1 + amount);
        if amount > 0 {
            let w = windows.entry((k, ts - ts % 60_000)).or_default();
            *w = (w.0 + 1, w.1 + amount, w.2.max(amount));
        }
    }
    let got: BTreeMap<(String, i64), (i64, i64, i64)> = parts(&out.join("per_minute"))
        .concat()
        .iter()
        .map(|l| {
            let r: Value = serde_json::from_str(l).unwrap();
            let start = r["window_start"].as_str().unwrap();
            let ms = weir_engine::parse_rfc3339(&format!("{start}Z")).unwrap_or_else(|| panic!("window_start {start}"));
            ((r["key"].as_str().unwrap().to_string(), ms), (r["events"].as_i64().unwrap(), r["total"].as_i64().unwrap(), r["biggest"].as_i64().unwrap()))
        })
        .collect();
    assert_eq!(got, windows);
    let lines: Vec<Value> = parts(&out.join("totals")).concat().iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    let applied: BTreeMap<String, (i64, i64)> = apply(&lines, "key")
        .into_values()
        .map(|r| (r["key"].as_str().unwrap().to_string(), (r["events"].as_i64().unwrap(), r["total"].as_i64().unwrap())))
        .collect();
    assert_eq!(applied, totals);
}

#[test]
fn a_sql_job_sent_to_a_node_runs_there_as_a_pipeline() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let bids_path = dir.path().join("bids.jsonl");
    std::fs::write(&bids_path, bids(20_000, 7)).unwrap();
    let node = crate::node::Node::start_in(dir.clone(), &["--token", "t0k"]);
    let send_sql = |text: &str| {
        let text = text.replace("@BIDS", bids_path.to_str().unwrap()).replace("@OUT", dir.path().to_str().unwrap());
        node.send(node.http().post(format!("{}/api/v1/pipelines", node.url)).header("content-type", "application/sql").body(text))
    };
    let job = format!(
        "SET 'pipeline.name' = 'per-auction';\nSET 'checkpoint.interval' = '100ms';\nSET 'parallelism.default' = '2';\n{BID}\
         CREATE TABLE per_auction (auction BIGINT, bids BIGINT, total BIGINT, top BIGINT, avg_price DOUBLE, bidders BIGINT,\n  PRIMARY KEY (auction) NOT ENFORCED\n) WITH ('connector' = 'file', 'path' = '@OUT/per_auction');\n\
         INSERT INTO per_auction\n\
         SELECT auction, COUNT(*), SUM(price), MAX(price), AVG(price), COUNT(DISTINCT bidder) FROM bid GROUP BY auction;\n"
    );
    let (status, body) = send_sql(&job);
    assert_eq!(status, 201, "{body}");
    node.wait_for("/api/v1/pipelines/per-auction", "the SQL job to finish", |v| v["status"] == "finished");
    let stored = std::fs::read_to_string(dir.path().join("data/pipelines/per-auction/pipeline.json")).unwrap();
    assert!(stored.contains("sql-aggregate"), "the node keeps the compiled spec: {stored}");
    let lines: Vec<Value> =
        parts(&dir.path().join("per_auction")).concat().iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    let got: Vec<Value> = apply(&lines, "auction").into_values().collect();
    assert_same("GROUP BY auction on a node", &got, &duckdb(&bids_path, PER_AUCTION_DUCKDB));

    // Errors name where in the script.
    let (status, body) = send_sql(&job.replace("SET 'pipeline.name' = 'per-auction';\n", ""));
    assert_eq!((status, body["error"].as_str().unwrap()), (400, "sql: a SQL job sent to a node names itself (its id there): SET 'pipeline.name' = 'my-job';"));
    let (status, body) = send_sql(&job.replace("'per-auction'", "'other'").replace("SUM(price)", "SUM(prize)"));
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().starts_with("sql:10:1: "), "{body}");
    assert!(body["error"].as_str().unwrap().contains("prize"), "{body}");
    // The node's own checks, placed at the table option they are about.
    let (status, body) = send_sql(&job.replace("'per-auction'", "'other'").replace("'@OUT/per_auction'", "'/etc/weir-out'"));
    assert_eq!(status, 400);
    let err = body["error"].as_str().unwrap();
    assert!(err.starts_with("sql:9:") && err.contains("table per_auction, option 'path'") && err.contains("/etc/weir-out"), "{err}");
    // Without the SQL content type, the body is read as a spec.
    let (status, _) = node.post("/api/v1/pipelines", job.clone());
    assert_eq!(status, 400);
    assert_eq!(node.json("/api/v1/pipelines").as_array().unwrap().len(), 1, "only the good job was stored");
}

/// Seeded persons and auctions beside the bids (`person.jsonl`,
/// `auction.jsonl`): sellers are persons 0..600 of which 0..500 exist, so
/// some auctions meet no person.
fn people_and_auctions(dir: &Path, persons: u64, auctions: u64) {
    let mut x = 99u64;
    let mut next = move |m: u64| {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (x >> 33) % m
    };
    let t0: u64 = 1_767_225_600_000;
    let mut out = String::new();
    for id in 0..persons {
        let state = ["OR", "ID", "CA", "WA", "NY"][next(5) as usize];
        let row = json!({"id": id, "name": format!("p{id}"), "city": format!("c{}", next(20)), "state": state, "dateTime": t0 + id * 10});
        out.push_str(&format!("{row}\n"));
    }
    std::fs::write(dir.join("person.jsonl"), out).unwrap();
    let mut out = String::new();
    for id in 0..auctions {
        let (seller, category, reserve) = (next(persons + persons / 5), next(15), next(1000));
        let row = json!({"id": 1000 + id, "seller": seller, "category": category, "reserve": reserve, "dateTime": t0 + next(persons * 10)});
        out.push_str(&format!("{row}\n"));
    }
    std::fs::write(dir.join("auction.jsonl"), out).unwrap();
}

const PEOPLE: &str = "CREATE TABLE person (id BIGINT, name STRING, city STRING, state STRING, dateTime BIGINT) WITH ('connector' = 'file', 'path' = '@OUT/person.jsonl');\n\
     CREATE TABLE auction (id BIGINT, seller BIGINT, category BIGINT, reserve BIGINT, dateTime BIGINT) WITH ('connector' = 'file', 'path' = '@OUT/auction.jsonl');\n";

#[test]
fn inner_joins_give_what_duckdb_gives() {
    let w = Work::new(20_000);
    people_and_auctions(w.dir.path(), 500, 4_000);
    let script = w.script(
        "j.sql",
        &format!(
            "SET 'parallelism.default' = '2';\n{BID}{PEOPLE}\
             CREATE TABLE q3 (name STRING, city STRING, state STRING, id BIGINT, pid BIGINT) WITH ('connector' = 'file', 'path' = '@OUT/q3');\n\
             CREATE TABLE late (id BIGINT, seller BIGINT, waited BIGINT) WITH ('connector' = 'file', 'path' = '@OUT/late');\n\
             CREATE TABLE bids_of_sellers (auction BIGINT, price BIGINT, seller BIGINT, category BIGINT) WITH ('connector' = 'file', 'path' = '@OUT/bids_of_sellers');\n\
             -- Nexmark q3: local item suggestion (both sides have a column id)\n\
             INSERT INTO q3\n\
             SELECT P.name, P.city, P.state, A.id, P.id AS pid\n\
             FROM auction AS A INNER JOIN person AS P ON A.seller = P.id\n\
             WHERE A.category = 10 AND (P.state = 'OR' OR P.state = 'ID' OR P.state = 'CA');\n\
             -- a condition that is not an equality, and the comma syntax\n\
             INSERT INTO late SELECT a.id, a.seller, a.dateTime - p.dateTime FROM auction a, person p WHERE a.seller = p.id AND a.dateTime > p.dateTime + 1000;\n\
             -- a join on an expression of each side, many rows per key on both sides\n\
             INSERT INTO bids_of_sellers SELECT b.auction, b.price, a.seller, a.category FROM bid b JOIN auction a ON b.auction = a.id AND b.price % 7 = a.reserve % 7;\n"
        ),
    );
    let log = run_sql(&script);
    assert!(log.contains("s1-join"), "{log}");
    let bids = w.bids();
    let q3 = "SELECT P.name, P.city, P.state, A.id, P.id AS pid FROM auction AS A INNER JOIN person AS P ON A.seller = P.id \
              WHERE A.category = 10 AND (P.state = 'OR' OR P.state = 'ID' OR P.state = 'CA')";
    assert_same("Nexmark q3", &w.rows("q3"), &duckdb(&bids, q3));
    let late = "SELECT a.id, a.seller, a.dateTime - p.dateTime AS waited FROM auction a, person p WHERE a.seller = p.id AND a.dateTime > p.dateTime + 1000";
    assert_same("join with a residual condition", &w.rows("late"), &duckdb(&bids, late));
    let bs = "SELECT b.auction, b.price, a.seller, a.category FROM bid b JOIN auction a ON b.auction = a.id AND b.price % 7 = a.reserve % 7";
    assert_same("join on expressions", &w.rows("bids_of_sellers"), &duckdb(&bids, bs));
    let o = weir(&["sql", "--explain", script.to_str().unwrap()], &[]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("--key_by--> s1-join x2: inner join ON"), "{text}");
    assert!(text.contains("state: per join key: every row of each side (map state: row -> count), kept forever"), "{text}");
}

/// Bids outbid on the same auction within 2 s, and bids of two bidders on
/// one auction within 300 ms of each other (strict bounds, the sides the
/// other way round).
const INTERVAL_JOINS: &str = "CREATE TABLE outbid (auction BIGINT, first BIGINT, second BIGINT, waited BIGINT) WITH ('connector' = 'file', 'path' = '@OUT/outbid');\n\
     CREATE TABLE near (auction BIGINT, one BIGINT, other BIGINT) WITH ('connector' = 'file', 'path' = '@OUT/near');\n\
     INSERT INTO outbid SELECT a.auction, a.price, b.price, CAST(b.dateTime AS BIGINT) - CAST(a.dateTime AS BIGINT)\n\
     FROM bid a JOIN bid b ON a.auction = b.auction AND b.dateTime BETWEEN a.dateTime AND a.dateTime + INTERVAL '2' SECOND AND b.price > a.price;\n\
     INSERT INTO near SELECT a.auction, a.bidder, b.bidder FROM bid a, bid b\n\
     WHERE a.auction = b.auction AND a.bidder < b.bidder AND a.dateTime > b.dateTime - INTERVAL '300' MILLISECOND AND a.dateTime < b.dateTime + INTERVAL '300' MILLISECOND;\n";

const OUTBID: &str = "SELECT a.auction, a.price AS first, b.price AS second, b.dateTime - a.dateTime AS waited \
     FROM bid a JOIN bid b ON a.auction = b.auction AND b.dateTime BETWEEN a.dateTime AND a.dateTime + 2000 AND b.price > a.price";
const NEAR: &str = "SELECT a.auction, a.bidder AS one, b.bidder AS other FROM bid a, bid b \
     WHERE a.auction = b.auction AND a.bidder < b.bidder AND a.dateTime > b.dateTime - 300 AND a.dateTime < b.dateTime + 300";

#[test]
fn interval_joins_give_what_duckdb_gives_and_explain_says_how_long_rows_stay() {
    let w = Work::new(20_000);
    let script = w.script("ij.sql", &format!("SET 'parallelism.default' = '2';\n{BID}{INTERVAL_JOINS}"));
    run_sql(&script);
    assert_same("outbid within 2 s", &w.rows("outbid"), &duckdb(&w.bids(), OUTBID));
    assert_same("bids within 300 ms", &w.rows("near"), &duckdb(&w.bids(), NEAR));
    let o = weir(&["sql", "--explain", script.to_str().unwrap()], &[]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("s1-join x2: interval join ON a.auction = b.auction (b.dateTime - a.dateTime between 0 and 2000 ms)"), "{text}");
    assert!(text.contains("s2-join x2: interval join ON a.auction = b.auction (b.dateTime - a.dateTime between -300 and 300 ms)"), "{text}");
    assert!(text.contains("state: per join key: each side's rows (map state: row -> count and time) until the watermark passes"), "{text}");
    // Without a bound above, the rows would have to stay forever: a regular join.
    let open = w.script(
        "open.sql",
        &format!("{BID}CREATE TABLE o (a BIGINT) WITH ('connector' = 'file', 'path' = '@OUT/o');\nINSERT INTO o SELECT a.auction FROM bid a JOIN bid b ON a.auction = b.auction AND b.dateTime >= a.dateTime;\n"),
    );
    let o = weir(&["sql", "--explain", open.to_str().unwrap()], &[]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("inner join ON a.auction = b.auction") && text.contains("kept forever"), "{text}");
}

/// Outer joins of auctions and persons (some sellers are nobody, some
/// persons sell nothing), and an aggregate over one's changelog.
const OUTER_JOINS: &str = "CREATE TABLE sellers (id BIGINT, seller BIGINT, name STRING) WITH ('connector' = 'file', 'path' = '@OUT/sellers');\n\
     CREATE TABLE people_auctions (pid BIGINT, name STRING, aid BIGINT) WITH ('connector' = 'file', 'path' = '@OUT/people_auctions');\n\
     CREATE TABLE everyone (aid BIGINT, pid BIGINT) WITH ('connector' = 'file', 'path' = '@OUT/everyone');\n\
     CREATE TABLE per_state (state STRING, auctions BIGINT, PRIMARY KEY (state) NOT ENFORCED) WITH ('connector' = 'file', 'path' = '@OUT/per_state');\n\
     INSERT INTO sellers SELECT A.id, A.seller, P.name FROM auction A LEFT JOIN person P ON A.seller = P.id;\n\
     INSERT INTO people_auctions SELECT P.id, P.name, A.id FROM auction A RIGHT OUTER JOIN person P ON A.seller = P.id;\n\
     INSERT INTO everyone SELECT A.id, P.id FROM auction A FULL JOIN person P ON A.seller = P.id;\n\
     INSERT INTO per_state SELECT COALESCE(P.state, '?'), COUNT(*) FROM auction A LEFT JOIN person P ON A.seller = P.id GROUP BY COALESCE(P.state, '?');\n";

const OUTER_DUCKDB: [(&str, &str); 3] = [
    ("sellers", "SELECT A.id, A.seller, P.name FROM auction A LEFT JOIN person P ON A.seller = P.id"),
    ("people_auctions", "SELECT P.id AS pid, P.name, A.id AS aid FROM auction A RIGHT OUTER JOIN person P ON A.seller = P.id"),
    ("everyone", "SELECT A.id AS aid, P.id AS pid FROM auction A FULL JOIN person P ON A.seller = P.id"),
];
const PER_STATE_DUCKDB: &str = "SELECT COALESCE(P.state, '?') AS state, COUNT(*) AS auctions FROM auction A LEFT JOIN person P ON A.seller = P.id GROUP BY 1";

/// Apply a changelog of rows without a key (`{"op","data"}` lines) to a
/// bag of rows: every retraction must take out a row the bag holds.
pub(crate) fn apply_bag(lines: &[Value]) -> Vec<Value> {
    let mut bag: BTreeMap<String, (Value, usize)> = BTreeMap::new();
    for l in lines {
        let row = l["data"].clone();
        let e = bag.entry(row.to_string()).or_insert((row, 0));
        match l["op"].as_str().unwrap() {
            "+I" | "+U" => e.1 += 1,
            "-U" | "-D" => {
                assert!(e.1 > 0, "{l} retracts a row the table does not hold");
                e.1 -= 1;
            }
            op => panic!("op {op}"),
        }
    }
    bag.into_values().flat_map(|(row, n)| std::iter::repeat_n(row, n)).collect()
}

fn check_outer_joins(w: &Work, what: &str) -> usize {
    let mut retractions = 0;
    for (table, query) in OUTER_DUCKDB {
        let lines = w.rows(table);
        retractions += lines.iter().filter(|l| l["op"] == "-D").count();
        assert_same(&format!("{table}{what}"), &apply_bag(&lines), &duckdb(&w.bids(), query));
    }
    let got: Vec<Value> = apply(&w.rows("per_state"), "state").into_values().collect();
    assert_same(&format!("per_state{what}"), &got, &duckdb(&w.bids(), PER_STATE_DUCKDB));
    retractions
}

#[test]
fn outer_joins_give_what_duckdb_gives() {
    let w = Work::new(100);
    people_and_auctions(w.dir.path(), 500, 1_000);
    let script = w.script("outer.sql", &format!("SET 'parallelism.default' = '2';\n{BID}{PEOPLE}{OUTER_JOINS}"));
    run_sql(&script);
    let retractions = check_outer_joins(&w, "");
    assert!(retractions > 0, "rows padded with nulls were taken back when their match came");
    let o = weir(&["sql", "--explain", script.to_str().unwrap()], &[]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("s1-join x2: left outer join ON A.seller = P.id (emits a changelog)"), "{text}");
    assert!(text.contains("s2-join x2: right outer join ON A.seller = P.id (emits a changelog)"), "{text}");
    assert!(text.contains("s3-join x2: full outer join ON A.seller = P.id (emits a changelog)"), "{text}");
    assert!(text.contains("state: per join key: every row of each side (map state: row -> count, and whether an outer side's row met one), kept forever"), "{text}");
}

/// Debezium change events of two tables: `item` (id, g, amount: rows come,
/// change, move to other groups and go) and `grp` (g, label: labels change,
/// groups go and come back), and each table's rows at the end.
fn item_and_group_changes(seed: u64, changes: usize) -> [(String, BTreeMap<String, Value>); 2] {
    let mut x = seed;
    let mut next = move |n: u64| {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (x >> 33) % n
    };
    let event = |lines: &mut String, op: &str, before: Option<&Value>, after: Option<&Value>| {
        lines.push_str(&json!({"before": before, "after": after, "op": op}).to_string());
        lines.push('\n');
    };
    let (mut items, mut item_lines, mut groups, mut group_lines) = (BTreeMap::new(), String::new(), BTreeMap::new(), String::new());
    for g in 0..10 {
        let row = json!({"g": format!("g{g}"), "label": format!("first {g}")});
        event(&mut group_lines, "r", None, Some(&row));
        groups.insert(format!("g{g}"), row);
    }
    let mut new_id = 0;
    for i in 0..changes {
        match if i < 30 { 0 } else { next(24) } {
            0..6 => {
                let row = json!({"id": new_id, "g": format!("g{}", next(14)), "amount": next(100)});
                event(&mut item_lines, "c", None, Some(&row));
                items.insert(new_id.to_string(), row);
                new_id += 1;
            }
            6..14 => {
                let id = items.keys().nth(next(1 << 20) as usize % items.len()).unwrap().clone();
                let before = items[&id].clone();
                let g = if next(2) == 0 { before["g"].clone() } else { format!("g{}", next(14)).into() };
                let after = json!({"id": before["id"], "g": g, "amount": next(100)});
                event(&mut item_lines, "u", Some(&before), Some(&after));
                items.insert(id, after);
            }
            14..18 if items.len() > 5 => {
                let id = items.keys().nth(next(1 << 20) as usize % items.len()).unwrap().clone();
                let before = items.remove(&id).unwrap();
                event(&mut item_lines, "d", Some(&before), None);
            }
            18..22 => {
                // A group's label changes, or it goes, or it comes back.
                let g = format!("g{}", next(12));
                match groups.get(&g).cloned() {
                    Some(before) if next(3) == 0 => {
                        event(&mut group_lines, "d", Some(&before), None);
                        groups.remove(&g);
                    }
                    Some(before) => {
                        let after = json!({"g": g, "label": format!("label {i}")});
                        event(&mut group_lines, "u", Some(&before), Some(&after));
                        groups.insert(g, after);
                    }
                    None => {
                        let row = json!({"g": g, "label": format!("again {i}")});
                        event(&mut group_lines, "c", None, Some(&row));
                        groups.insert(g, row);
                    }
                }
            }
            _ => {}
        }
    }
    [(item_lines, items), (group_lines, groups)]
}

#[test]
fn joins_of_changelogs_apply_to_the_join_of_the_tables_they_end_as() {
    let w = Work::new(10);
    let [(item_lines, items), (group_lines, groups)] = item_and_group_changes(11, 6_000);
    std::fs::write(w.path("item.jsonl"), item_lines).unwrap();
    std::fs::write(w.path("grp.jsonl"), group_lines).unwrap();
    let script = w.script(
        "cdc-join.sql",
        "SET 'parallelism.default' = '2';\n\
         CREATE TABLE item (id BIGINT, g STRING, amount BIGINT) WITH ('connector' = 'file', 'path' = '@OUT/item.jsonl', 'format' = 'debezium-json');\n\
         CREATE TABLE grp (g STRING, label STRING) WITH ('connector' = 'file', 'path' = '@OUT/grp.jsonl', 'format' = 'debezium-json');\n\
         CREATE TABLE labelled (id BIGINT, amount BIGINT, label STRING) WITH ('connector' = 'file', 'path' = '@OUT/labelled');\n\
         CREATE TABLE maybe_labelled (id BIGINT, label STRING) WITH ('connector' = 'file', 'path' = '@OUT/maybe_labelled');\n\
         CREATE TABLE per_label (label STRING, total BIGINT, PRIMARY KEY (label) NOT ENFORCED) WITH ('connector' = 'file', 'path' = '@OUT/per_label');\n\
         INSERT INTO labelled SELECT i.id, i.amount, l.label FROM item i JOIN grp l ON i.g = l.g;\n\
         INSERT INTO maybe_labelled SELECT i.id, l.label FROM item i LEFT JOIN grp l ON i.g = l.g;\n\
         INSERT INTO per_label SELECT l.label, SUM(i.amount) FROM item i JOIN grp l ON i.g = l.g GROUP BY l.label;\n",
    );
    run_sql(&script);
    // The joins of the tables as they end.
    let (mut inner, mut left, mut totals) = (Vec::new(), Vec::new(), BTreeMap::<String, i64>::new());
    for i in items.values() {
        let label = groups.get(i["g"].as_str().unwrap()).map(|g| g["label"].clone());
        if let Some(label) = &label {
            inner.push(json!({"id": i["id"], "amount": i["amount"], "label": label}));
            *totals.entry(label.as_str().unwrap().to_string()).or_default() += i["amount"].as_i64().unwrap();
        }
        left.push(json!({"id": i["id"], "label": label.unwrap_or(Value::Null)}));
    }
    let lines = w.rows("labelled");
    assert!(lines.iter().any(|l| l["op"] == "-D"), "rows taken back take their joined rows back");
    assert_same("item JOIN grp", &apply_bag(&lines), &inner);
    assert_same("item LEFT JOIN grp", &apply_bag(&w.rows("maybe_labelled")), &left);
    let want: Vec<Value> = totals.into_iter().map(|(label, total)| json!({"label": label, "total": total})).collect();
    let got: Vec<Value> = apply(&w.rows("per_label"), "label").into_values().collect();
    assert_same("SUM over item JOIN grp", &got, &want);
    let o = weir(&["sql", "--explain", script.to_str().unwrap()], &[]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("s1-join x2: inner join ON i.g = l.g (of a changelog: takes back what a row taken back was joined into)"), "{text}");
}

#[test]
fn union_and_distinct_give_what_duckdb_gives() {
    let w = Work::new(20_000);
    people_and_auctions(w.dir.path(), 500, 2_000);
    let script = w.script(
        "union.sql",
        &format!(
            "SET 'parallelism.default' = '2';\n{BID}{PEOPLE}\
             CREATE TABLE mixed (auction BIGINT, who BIGINT, what STRING) WITH ('connector' = 'file', 'path' = '@OUT/mixed');\n\
             CREATE TABLE pairs (auction BIGINT, channel STRING, PRIMARY KEY (auction, channel) NOT ENFORCED) WITH ('connector' = 'file', 'path' = '@OUT/pairs');\n\
             CREATE TABLE ids (id BIGINT, PRIMARY KEY (id) NOT ENFORCED) WITH ('connector' = 'file', 'path' = '@OUT/ids');\n\
             CREATE TABLE per_what (what STRING, n BIGINT, PRIMARY KEY (what) NOT ENFORCED) WITH ('connector' = 'file', 'path' = '@OUT/per_what');\n\
             INSERT INTO mixed SELECT auction, bidder, 'bid' FROM bid WHERE price > 9000\n\
               UNION ALL SELECT id, seller, 'auction' FROM auction WHERE reserve > 900\n\
               UNION ALL SELECT auction, price, channel FROM bid WHERE price < 50;\n\
             INSERT INTO pairs SELECT DISTINCT auction, channel FROM bid;\n\
             INSERT INTO ids SELECT auction FROM bid WHERE price > 9900 UNION SELECT id FROM auction WHERE category = 3;\n\
             INSERT INTO per_what SELECT what, COUNT(*) FROM (SELECT 'high' AS what FROM bid WHERE price > 5000 UNION ALL SELECT 'cheap' FROM auction WHERE reserve < 100) t GROUP BY what;\n"
        ),
    );
    run_sql(&script);
    let bids = w.bids();
    let mixed = "SELECT auction, bidder AS who, 'bid' AS what FROM bid WHERE price > 9000 \
                 UNION ALL SELECT id, seller, 'auction' FROM auction WHERE reserve > 900 UNION ALL SELECT auction, price, channel FROM bid WHERE price < 50";
    assert_same("UNION ALL of three", &w.rows("mixed"), &duckdb(&bids, mixed));
    let pairs = w.rows("pairs");
    assert!(pairs.iter().all(|l| l["op"] == "+I"), "each pair once, never taken back");
    assert_same("SELECT DISTINCT", &apply_bag(&pairs), &duckdb(&bids, "SELECT DISTINCT auction, channel FROM bid"));
    let ids = "SELECT auction AS id FROM bid WHERE price > 9900 UNION SELECT id FROM auction WHERE category = 3";
    assert_same("UNION", &apply_bag(&w.rows("ids")), &duckdb(&bids, ids));
    let per_what = "SELECT what, COUNT(*) AS n FROM (SELECT 'high' AS what FROM bid WHERE price > 5000 UNION ALL SELECT 'cheap' FROM auction WHERE reserve < 100) t GROUP BY what";
    let got: Vec<Value> = apply(&w.rows("per_what"), "what").into_values().collect();
    assert_same("GROUP BY over UNION ALL", &got, &duckdb(&bids, per_what));
    let o = weir(&["sql", "--explain", script.to_str().unwrap()], &[]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("s1-union x2: UNION ALL: the rows of both, as they come"), "{text}");
    assert!(text.contains("calc: branch 3 of the UNION ALL, with its columns"), "{text}");
}

#[test]
fn state_ttl_hints_bound_the_state_of_the_sides_and_groups_they_name() {
    let w = Work::new(2_000);
    people_and_auctions(w.dir.path(), 50, 100);
    let script = w.script(
        "ttl.sql",
        &format!(
            "SET 'parallelism.default' = '2';\nSET 'table.exec.state.ttl' = '2 h';\n{BID}{PEOPLE}\
             CREATE TABLE out (auction BIGINT, seller BIGINT) WITH ('connector' = 'file', 'path' = '@OUT/out');\n\
             CREATE TABLE per_auction (auction BIGINT, n BIGINT, PRIMARY KEY (auction) NOT ENFORCED) WITH ('connector' = 'file', 'path' = '@OUT/per_auction');\n\
             INSERT INTO out SELECT /*+ STATE_TTL('b' = '10 min', 'auction' = '1 d') */ b.auction, a.seller FROM bid b JOIN auction a ON b.auction = a.id;\n\
             INSERT INTO per_auction SELECT /*+ STATE_TTL('bid' = '30 s') */ auction, COUNT(*) FROM bid GROUP BY auction;\n"
        ),
    );
    run_sql(&script);
    let want = duckdb(&w.bids(), "SELECT b.auction, a.seller FROM bid b JOIN auction a ON b.auction = a.id");
    assert_same("a join with STATE_TTL (nothing expires in a run this short)", &w.rows("out"), &want);
    let o = weir(&["sql", "--explain", script.to_str().unwrap()], &[]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("the left's rows each dropped 600000 ms after it came, the right's dropped 86400000 ms after it came"), "{text}");
    assert!(text.contains("its accumulators and the row it last emitted (value state), dropped 30000 ms after its last change"), "{text}");
    let fails = |name: &str, sql: &str| {
        let script = w.script(name, &format!("{BID}{PEOPLE}CREATE TABLE o (a BIGINT) WITH ('connector' = 'file', 'path' = '@OUT/o');\n{sql}\n"));
        let o = weir(&["sql", "--explain", script.to_str().unwrap()], &[]);
        assert!(!o.status.success(), "{name} fails");
        stderr(&o)
    };
    let err = fails("unused.sql", "INSERT INTO o SELECT /*+ STATE_TTL('c' = '1 h') */ b.auction FROM bid b JOIN auction a ON b.auction = a.id;");
    assert!(err.contains("unused.sql:7:22: STATE_TTL names c, which no join or GROUP BY of the statement reads"), "{err}");
    let err = fails("view.sql", "CREATE VIEW v AS SELECT /*+ STATE_TTL('bid' = '1 h') */ auction FROM bid;");
    assert!(err.contains("view.sql:7:25: a STATE_TTL hint goes in the SELECT of an INSERT INTO"), "{err}");
}

/// Orders (append-only, a little out of order) and the changes of currency
/// rates as Debezium events (inserts, then updates), each with its event
/// time; and each order's rate as of its time, by definition (`None`: no
/// rate yet, or a currency without rates).
fn orders_and_rates(orders: usize) -> (String, String, Vec<(i64, String, i64, Option<i64>)>) {
    let mut x = 5u64;
    let mut next = move |m: u64| {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (x >> 33) % m
    };
    let t0: i64 = 1_767_225_600_000;
    let currencies = ["EUR", "USD", "JPY", "GBP", "CHF", "XXX"];
    // Rates of the first five, changing every 0-2 s each, from 1 s in; the
    // changes in the order of their times (the watermark follows them).
    let (mut events, mut versions) = (Vec::new(), std::collections::BTreeMap::<&str, Vec<(i64, i64)>>::new());
    for c in &currencies[..5] {
        let (mut t, mut last): (i64, Option<Value>) = (t0 + 1000 + next(1000) as i64, None);
        while t < t0 + orders as i64 * 10 + 5000 {
            let rate = 1 + next(200) as i64;
            let row = json!({"currency": c, "rate": rate, "update_time": t});
            let op = if last.is_some() { "u" } else { "c" };
            events.push((t, json!({"before": last, "after": row, "op": op}).to_string()));
            versions.entry(c).or_default().push((t, rate));
            last = Some(row);
            t += 1 + next(2000) as i64;
        }
    }
    events.sort();
    let rate_lines: String = events.into_iter().map(|(_, e)| e + "\n").collect();
    let (mut order_lines, mut want) = (String::new(), Vec::new());
    for id in 0..orders as i64 {
        let t = t0 + id * 10 - next(50) as i64;
        let c = currencies[next(6) as usize];
        let amount = 1 + next(1000) as i64;
        order_lines.push_str(&format!("{}\n", json!({"id": id, "currency": c, "amount": amount, "order_time": t})));
        let rate = versions.get(c).and_then(|v| v.iter().filter(|(vt, _)| *vt <= t).max_by_key(|(vt, _)| *vt)).map(|(_, r)| *r);
        want.push((id, c.to_string(), amount, rate));
    }
    (order_lines, rate_lines, want)
}

/// Orders priced at the rate of their time (an inner and a LEFT temporal
/// join): the tables' rows in `@OUT/orders.jsonl` and `@OUT/rates.jsonl`.
const TEMPORAL: &str = "CREATE TABLE orders (id BIGINT, currency STRING, amount BIGINT, order_time TIMESTAMP(3),\n\
       WATERMARK FOR order_time AS order_time - INTERVAL '0.1' SECOND) WITH ('connector' = 'file', 'path' = '@OUT/orders.jsonl');\n\
     CREATE TABLE rates (currency STRING, rate BIGINT, update_time TIMESTAMP(3), PRIMARY KEY (currency) NOT ENFORCED,\n\
       WATERMARK FOR update_time AS update_time) WITH ('connector' = 'file', 'path' = '@OUT/rates.jsonl', 'format' = 'debezium-json');\n\
     CREATE TABLE priced (id BIGINT, currency STRING, amount BIGINT, rate BIGINT, price BIGINT) WITH ('connector' = 'file', 'path' = '@OUT/priced');\n\
     CREATE TABLE maybe_priced (id BIGINT, rate BIGINT) WITH ('connector' = 'file', 'path' = '@OUT/maybe_priced');\n\
     INSERT INTO priced SELECT o.id, o.currency, o.amount, r.rate, o.amount * r.rate\n\
       FROM orders AS o JOIN rates FOR SYSTEM_TIME AS OF o.order_time AS r ON o.currency = r.currency;\n\
     INSERT INTO maybe_priced SELECT o.id, r.rate FROM orders o LEFT JOIN rates FOR SYSTEM_TIME AS OF o.order_time r ON r.currency = o.currency;\n";

/// The orders and rates files, and what `priced` and `maybe_priced` end as.
fn temporal_inputs(w: &Work, orders: usize) -> (Vec<Value>, Vec<Value>) {
    let (order_lines, rate_lines, want) = orders_and_rates(orders);
    std::fs::write(w.path("orders.jsonl"), order_lines).unwrap();
    std::fs::write(w.path("rates.jsonl"), rate_lines).unwrap();
    let priced: Vec<Value> = want
        .iter()
        .filter_map(|(id, c, amount, rate)| rate.map(|r| json!({"id": id, "currency": c, "amount": amount, "rate": r, "price": amount * r})))
        .collect();
    assert!(priced.len() < want.len() && priced.len() > want.len() / 2, "some orders have no rate");
    let maybe: Vec<Value> = want.iter().map(|(id, _, _, rate)| json!({"id": id, "rate": rate})).collect();
    (priced, maybe)
}

#[test]
fn temporal_joins_meet_the_version_as_of_each_rows_time() {
    let w = Work::new(10);
    let (priced, maybe) = temporal_inputs(&w, 20_000);
    let script = w.script(
        "temporal.sql",
        &format!("SET 'parallelism.default' = '2';\n{TEMPORAL}"),
    );
    run_sql(&script);
    assert_same("JOIN rates FOR SYSTEM_TIME AS OF", &w.rows("priced"), &priced);
    assert_same("LEFT JOIN rates FOR SYSTEM_TIME AS OF", &w.rows("maybe_priced"), &maybe);
    let o = weir(&["sql", "--explain", script.to_str().unwrap()], &[]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("s1-temporal-join x2: temporal join ON o.currency = r.currency (each row meets the version of r as of its o.order_time)"), "{text}");
    assert!(text.contains("s2-temporal-join x2: left temporal join ON"), "{text}");
    // What is not a temporal join here is refused at its place.
    let fails = |name: &str, sql: &str| {
        let text = std::fs::read_to_string(&script).unwrap();
        let head: String = text.lines().take(7).map(|l| format!("{l}\n")).collect();
        let path = w.path(name);
        std::fs::write(&path, format!("{head}{sql}\n")).unwrap();
        let o = weir(&["sql", "--explain", path.to_str().unwrap()], &[]);
        assert!(!o.status.success(), "{name} fails");
        stderr(&o)
    };
    let err = fails("pk.sql", "INSERT INTO maybe_priced SELECT o.id, r.rate FROM orders o JOIN rates FOR SYSTEM_TIME AS OF o.order_time r ON o.amount = r.rate;");
    assert!(err.contains("pk.sql:8:") && err.contains("a temporal join's equalities cover r's PRIMARY KEY (currency): currency is missing"), "{err}");
    let err = fails("time.sql", "INSERT INTO maybe_priced SELECT o.id, r.rate FROM orders o JOIN rates FOR SYSTEM_TIME AS OF o.id r ON o.currency = r.currency;");
    assert!(err.contains("FOR SYSTEM_TIME AS OF o.id: the probe side's event time, its table's WATERMARK column"), "{err}");
    let err = fails("side.sql", "INSERT INTO maybe_priced SELECT o.id, r.rate FROM rates FOR SYSTEM_TIME AS OF o.order_time r JOIN orders o ON o.currency = r.currency;");
    assert!(err.contains("the versioned table of a temporal join is its right side"), "{err}");
}

#[test]
fn a_join_killed_with_kill_9_resumes_to_the_same_result() {
    let w = Work::new(200_000);
    people_and_auctions(w.dir.path(), 500, 4_000);
    let script = w.script(
        "jk.sql",
        &format!(
            "SET 'checkpoint.interval' = '100ms';\nSET 'state.dir' = '@OUT/state';\nSET 'parallelism.default' = '2';\nSET 'table.exec.state.ttl' = '1 h';\n{BID}{PEOPLE}\
             CREATE TABLE out (auction BIGINT, bidder BIGINT, price BIGINT, seller BIGINT) WITH ('connector' = 'file', 'path' = '@OUT/out');\n\
             INSERT INTO out SELECT b.auction, b.bidder, b.price, a.seller FROM bid b JOIN auction a ON b.auction = a.id;\n{INTERVAL_JOINS}{OUTER_JOINS}{TEMPORAL}"
        ),
    );
    let (priced, maybe) = temporal_inputs(&w, 100_000);
    let kills = run_killed_after_checkpoints(&["sql", "--progress", "0", script.to_str().unwrap()], &w.path("state"), 3);
    assert!(kills >= 2, "the job was killed while it ran ({kills} kills)");
    let want = duckdb(&w.bids(), "SELECT b.auction, b.bidder, b.price, a.seller FROM bid b JOIN auction a ON b.auction = a.id");
    assert_same("join through kill -9", &w.rows("out"), &want);
    assert_same("interval join through kill -9", &w.rows("outbid"), &duckdb(&w.bids(), OUTBID));
    assert_same("interval join (strict bounds) through kill -9", &w.rows("near"), &duckdb(&w.bids(), NEAR));
    check_outer_joins(&w, " through kill -9");
    assert_same("temporal join through kill -9", &w.rows("priced"), &priced);
    assert_same("LEFT temporal join through kill -9", &w.rows("maybe_priced"), &maybe);
}

#[test]
fn nexmark_q4_an_average_of_maxima_over_a_join_applies_to_duckdbs_result() {
    let w = Work::new(20_000);
    people_and_auctions(w.dir.path(), 500, 400);
    let script = w.script(
        "q4.sql",
        &format!(
            "SET 'parallelism.default' = '2';\n{BID}{PEOPLE}\
             CREATE TABLE q4 (category BIGINT, avg_final DOUBLE, PRIMARY KEY (category) NOT ENFORCED) WITH ('connector' = 'file', 'path' = '@OUT/q4');\n\
             -- Nexmark q4: the average closing price per category (an auction is open for 100 s here)\n\
             INSERT INTO q4\n\
             SELECT Q.category, AVG(Q.final) FROM (\n\
               SELECT MAX(B.price) AS final, A.category FROM auction A, bid B\n\
               WHERE A.id = B.auction AND CAST(B.dateTime AS BIGINT) BETWEEN A.dateTime AND A.dateTime + 100000\n\
               GROUP BY A.id, A.category\n\
             ) Q GROUP BY Q.category;\n"
        ),
    );
    run_sql(&script);
    let lines = w.rows("q4");
    assert!(lines.iter().any(|l| l["op"] == "-U"), "the inner maxima and the averages change as bids come");
    let got: Vec<Value> = apply(&lines, "category").into_values().collect();
    let q4 = "SELECT Q.category, avg(Q.final) AS avg_final FROM (SELECT max(B.price) AS final, A.category FROM auction A, bid B \
              WHERE A.id = B.auction AND B.dateTime BETWEEN A.dateTime AND A.dateTime + 100000 GROUP BY A.id, A.category) Q GROUP BY Q.category";
    assert_same("Nexmark q4", &got, &duckdb(&w.bids(), q4));
}
