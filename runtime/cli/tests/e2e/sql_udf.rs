//! Streaming SQL with user-defined functions as Wasm components
//! (`weir:function/scalar-function@0.1.0`): `CREATE FUNCTION` binds a
//! component's functions, whose declared types the planner checks; they run
//! in projections, filters, group keys and window aggregations' arguments,
//! called once per batch, and give what DuckDB's built-in equivalents give.
//! A function that loops, panics or breaks its contract stops the job with
//! an error naming the function, its plugin and the input row; bad
//! declarations are refused at their line.

use serde_json::Value;

use crate::common::{stderr, weir};
use crate::sql::{assert_same, duckdb, run_sql, Work, BID};

fn functions_of(plugin: &str, names: &[(&str, &str)]) -> String {
    let path = weir_test_support::fixture(plugin).display().to_string();
    names.iter().map(|(sql, f)| format!("CREATE FUNCTION {sql} AS '{path}{f}';\n")).collect()
}

/// The same functions in Rust, Python and JavaScript (plugins/sql-functions,
/// -py, -js), each run over the same bids.
fn same_functions(plugin: &str) {
    let w = Work::new(20_000);
    let defs = functions_of(plugin, &[("shout", ""), ("band", "#price_band"), ("to_dollars", ""), ("on_the_hour", "")]);
    let script = w.script(
        "udf.sql",
        &format!(
            "SET 'parallelism.default' = '2';\n{BID}{defs}\
             CREATE TABLE o (auction BIGINT, ch STRING, band STRING, dollars DOUBLE, hr BIGINT) WITH ('connector' = 'file', 'path' = '@OUT/o');\n\
             CREATE TABLE per_band (band STRING, num BIGINT, total DOUBLE, window_start BIGINT) WITH ('connector' = 'file', 'path' = '@OUT/per_band');\n\
             INSERT INTO o SELECT auction, shout(channel), band(price), to_dollars(price), on_the_hour(dateTime) FROM bid WHERE band(price) <> 'low';\n\
             INSERT INTO per_band\n\
             SELECT band(price), COUNT(*), SUM(to_dollars(price)), window_start\n\
             FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))\n\
             GROUP BY band(price), window_start, window_end;\n"
        ),
    );
    run_sql(&script);
    let o = weir(&["sql", "--explain", script.to_str().unwrap()], &[]);
    let text = String::from_utf8_lossy(&o.stdout);
    let path = weir_test_support::fixture(plugin).display().to_string();
    assert!(text.contains(&format!("band = {path}#price_band")), "EXPLAIN names each function's plugin: {text}");
    let band = "CASE WHEN price < 1000 THEN 'low' WHEN price < 5000 THEN 'mid' ELSE 'high' END";
    let want = duckdb(
        &w.bids(),
        &format!("SELECT auction, upper(channel) AS ch, {band} AS band, price / 100.0 AS dollars, dateTime - dateTime % 3600000 AS hr FROM bid WHERE {band} <> 'low'"),
    );
    assert!(want.len() > 15_000, "{}", want.len());
    assert_same("shout, band, to_dollars, on_the_hour", &w.rows("o"), &want);
    let want = duckdb(
        &w.bids(),
        &format!("SELECT {band} AS band, count(*) AS num, sum(price / 100.0) AS total, dateTime - dateTime % 10000 AS window_start FROM bid GROUP BY 1, 4"),
    );
    assert_same("a function as a group key and an aggregate's argument", &w.rows("per_band"), &want);
}

#[test]
fn rust_functions_in_projections_filters_and_window_aggregations_give_what_duckdb_gives() {
    same_functions("sql_functions");
}

#[test]
fn python_functions_give_what_duckdb_gives() {
    same_functions("sql_functions_py");
}

#[test]
fn javascript_functions_give_what_duckdb_gives() {
    same_functions("sql_functions_js");
}

/// `weir new NAME --kind function --lang LANG`, `weir build`, and the built
/// functions in a SQL job.
fn new_build_use_functions(lang: &str) {
    let dir = tempfile::tempdir().unwrap();
    let o = weir_in(dir.path(), &["new", "slugs", "--kind", "function", "--lang", lang]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("CREATE FUNCTION slug AS"), "{}", stderr(&o));
    let plugin = dir.path().join("slugs");
    let mut build = std::process::Command::new(env!("CARGO_BIN_EXE_weir"));
    build.args(["build", plugin.to_str().unwrap()]);
    if lang == "rust" {
        // The workspace's target directory: the SDK's dependencies build once.
        build.env("CARGO_TARGET_DIR", weir_test_support::root().join("target"));
    }
    let o = build.output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("implementing weir:function/scalar-function@0.1.0"), "{}", stderr(&o));
    let wasm = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let input = dir.path().join("titles.jsonl");
    std::fs::write(&input, "{\"title\":\"Hello, World!\"}\n{\"title\":\"  Weir -- SQL  \"}\n{\"title\":null}\n").unwrap();
    let script = dir.path().join("slugs.sql");
    std::fs::write(
        &script,
        format!(
            "CREATE FUNCTION slug AS '{wasm}';\n\
             CREATE TABLE titles (title STRING) WITH ('connector' = 'file', 'path' = '{}');\n\
             CREATE TABLE out (title STRING, s STRING) WITH ('connector' = 'file', 'path' = '{}');\n\
             INSERT INTO out SELECT title, slug(title) FROM titles;\n",
            input.display(),
            dir.path().join("out").display()
        ),
    )
    .unwrap();
    run_sql(&script);
    let mut got: Vec<String> = crate::common::parts(&dir.path().join("out")).concat();
    got.sort();
    assert_eq!(got, [r#"{"title":"  Weir -- SQL  ","s":"weir-sql"}"#, r#"{"title":"Hello, World!","s":"hello-world"}"#, r#"{"title":null,"s":null}"#]);
}

fn weir_in(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_weir")).args(args).current_dir(dir).output().unwrap()
}

#[test]
fn new_function_plugins_in_rust_python_and_javascript_build_and_run_in_sql() {
    for lang in ["rust", "python", "js"] {
        new_build_use_functions(lang);
    }
}

fn failure(w: &Work, defs: &str, query: &str) -> String {
    let script = w.script(
        "bad.sql",
        &format!("{BID}{defs}CREATE TABLE o (x BIGINT) WITH ('connector' = 'file', 'path' = '@OUT/o');\nINSERT INTO o SELECT {query};\n"),
    );
    let o = weir(&["sql", "--progress", "0", script.to_str().unwrap()], &[]);
    assert!(!o.status.success(), "{query} must fail");
    stderr(&o)
}

#[test]
fn a_function_that_loops_panics_or_breaks_its_contract_stops_the_job_naming_it_and_the_row() {
    let w = Work::new(3_000);
    let bad = functions_of("bad_functions", &[("spin", ""), ("boom", ""), ("short", ""), ("wrong", "")]);
    // Bid 1234 (line 1235 of the file) is the one each function chokes on.
    let lines: Vec<Value> = std::fs::read_to_string(w.bids()).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let (auction, bidder) = (lines[1234]["auction"].as_i64().unwrap(), lines[1234]["bidder"].as_i64().unwrap());
    let only = |v: i64| format!("CASE WHEN auction = {auction} AND bidder = {bidder} THEN {v} ELSE 1 END");
    let unique = lines.iter().filter(|l| l["auction"] == lines[1234]["auction"] && l["bidder"] == lines[1234]["bidder"]).count() == 1;
    assert!(unique, "the seeded bids have one bid of auction {auction} by bidder {bidder}");
    let bids = w.bids().display().to_string();

    let e = failure(&w, &bad, &format!("spin({}) FROM bid", only(42)));
    assert!(e.contains("function spin"), "{e}");
    assert!(e.contains("bad_functions@sha256:") && e.contains("exceeded its CPU deadline of 5s per call and was stopped (limits.call_timeout)"), "{e}");
    assert!(e.contains(&format!("at line 1235 of {bids}")), "the row it stopped on: {e}");

    let e = failure(&w, &bad, &format!("boom({}) FROM bid", only(13)));
    assert!(e.contains("function boom") && e.contains("trapped in operator 'bid-calc'") && e.contains("in call of boom"), "{e}");
    assert!(e.contains(&format!("at line 1235 of {bids}")), "{e}");
    assert!(e.contains("boom: 13 is unlucky"), "the guest's panic message reaches the log: {e}");

    let e = failure(&w, &bad, "short(price) FROM bid");
    // Every row fails alone too: the first is named, with its own call's failure.
    assert!(e.contains("broke the operator contract: short returned 0 values for a batch of 1 rows"), "{e}");
    assert!(e.contains(&format!("at line 1 of {bids}")), "{e}");

    let e = failure(&w, &bad, "wrong(price) FROM bid");
    assert!(e.contains("function wrong") && e.contains("returned Utf8 values, but it declares Int64"), "{e}");
    assert!(!w.path("o").exists() || crate::common::parts(&w.path("o")).concat().is_empty(), "nothing was committed");
}

#[test]
fn bad_function_declarations_and_calls_are_refused_at_their_line() {
    let w = Work::new(10);
    let fns = weir_test_support::fixture("sql_functions").display().to_string();
    let mask = weir_test_support::fixture("mask").display().to_string();
    let cases: Vec<(String, &str, Vec<String>)> = vec![
        (
            format!("CREATE FUNCTION shout2 AS '{fns}';\n"),
            "shout2(channel)",
            vec![
                "bad.sql:4:1: CREATE FUNCTION shout2: plugin sql_functions@sha256:".into(),
                "has no function shout2 (it has: shout, price_band, to_dollars, on_the_hour); name another with AS".into(),
            ],
        ),
        (format!("CREATE FUNCTION shout AS '{fns}' LANGUAGE PYTHON;\n"), "shout(channel)", vec!["bad.sql:4:1: CREATE FUNCTION shout: LANGUAGE PYTHON: functions are WebAssembly components".into()]),
        (format!("CREATE FUNCTION upper AS '{fns}#shout';\n"), "upper(channel)", vec!["CREATE FUNCTION upper: a function of that name exists already".into()]),
        (format!("CREATE FUNCTION masked AS '{mask}';\n"), "masked(channel)", vec!["CREATE FUNCTION masked:".into(), "implements weir:operator/changelog-operator@0.3.0".into(), "weir:function/scalar-function@0.1.0".into()]),
        ("CREATE FUNCTION gone AS 'nowhere.wasm';\n".into(), "gone(price)", vec!["bad.sql:4:1: CREATE FUNCTION gone: cannot load function plugin".into(), "nowhere.wasm".into()]),
        ("CREATE FUNCTION f;\n".into(), "price", vec!["bad.sql:4:1: CREATE FUNCTION f needs AS and its plugin".into()]),
        (format!("CREATE FUNCTION to_dollars AS '{fns}';\n"), "to_dollars(channel) FROM bid", vec!["bad.sql:6:1:".into(), "to_dollars".into()]),
    ];
    for (defs, query, wants) in cases {
        let query = if query.contains("FROM") { query.to_string() } else { format!("{query} FROM bid") };
        let e = failure(&w, &defs, &query);
        for want in wants {
            assert!(e.contains(&want), "{defs}{query}: wanted {want:?} in: {e}");
        }
    }
}

/// On a node, `CREATE FUNCTION f AS 'name@version'` names a plugin uploaded
/// to its registry; a file path is not a plugin there.
#[test]
fn a_sql_job_on_a_node_calls_functions_of_its_registry() {
    let w = Work::new(5_000);
    let allowed = w.dir.path().to_str().unwrap().to_string();
    let node = crate::node::Node::start_in(std::sync::Arc::new(tempfile::tempdir().unwrap()), &["--allow-path", &allowed]);
    let (status, body) = node.upload("fns", "1.2.0", std::fs::read(weir_test_support::fixture("sql_functions_py")).unwrap(), None);
    assert_eq!(status, 201, "{body}");
    let job = |defs: &str, name: &str| {
        format!(
            "SET 'pipeline.name' = '{name}';\n{BID}{defs}\
             CREATE TABLE o (auction BIGINT, band STRING) WITH ('connector' = 'file', 'path' = '@OUT/{name}');\n\
             INSERT INTO o SELECT auction, band(price) FROM bid;\n"
        )
        .replace("@BIDS", w.bids().to_str().unwrap())
        .replace("@OUT", w.dir.path().to_str().unwrap())
    };
    let send = |text: String| node.send(node.http().post(format!("{}/api/v1/pipelines", node.url)).header("content-type", "application/sql").body(text));
    let (status, body) = send(job("CREATE FUNCTION band AS 'fns@1.2.0#price_band';\n", "bands"));
    assert_eq!(status, 201, "{body}");
    node.wait_for("/api/v1/pipelines/bands", "the SQL job to finish", |v| v["status"] == "finished");
    let want = duckdb(&w.bids(), "SELECT auction, CASE WHEN price < 1000 THEN 'low' WHEN price < 5000 THEN 'mid' ELSE 'high' END AS band FROM bid");
    assert_same("a registry's function on a node", &w.rows("bands"), &want);

    let fns = weir_test_support::fixture("sql_functions").display().to_string();
    let (status, body) = send(job(&format!("CREATE FUNCTION band AS '{fns}#price_band';\n"), "from-a-file"));
    assert_eq!(status, 400, "{body}");
    let err = body["error"].as_str().unwrap();
    assert!(err.starts_with("sql:5:1: CREATE FUNCTION band: cannot load function plugin") && err.contains("not NAME@VERSION of a plugin in the registry"), "{err}");
    let (status, body) = send(job("CREATE FUNCTION band AS 'fns@9.9.9#price_band';\n", "no-such-version"));
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("fns@9.9.9"), "{body}");
}

/// A SQL job's function is hot-swapped like an operator's plugin: the calc
/// calling `price_band` of `fns@1` switches to `fns@2` at one checkpoint
/// barrier (every event computed by exactly one version, none after the
/// switch by the old one), a version without the function is refused before
/// anything changes, and one that traps in its probation is rolled back.
#[test]
fn a_function_of_a_running_sql_job_is_hot_swapped_refused_and_rolled_back() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let node = crate::node::Node::start_in(dir.clone(), &[]);
    for (v, guest) in [("1", "sql_functions"), ("2", "bands_v2"), ("3", "bands_trap"), ("4", "bad_functions")] {
        let (status, body) = node.upload("fns", v, std::fs::read(weir_test_support::fixture(guest)).unwrap(), None);
        assert_eq!(status, 201, "{body}");
    }
    let out = dir.path().join("bands");
    let job = format!(
        "SET 'pipeline.name' = 'bands';\nSET 'checkpoint.interval' = '200ms';\nSET 'parallelism.default' = '2';\n\
         CREATE FUNCTION band AS 'fns@1#price_band';\n\
         CREATE TABLE events (id BIGINT, `key` STRING, amount BIGINT, ts TIMESTAMP(3)) WITH ('connector' = 'generator', 'rate' = '4000', 'keys' = '20', 'seed' = '7');\n\
         CREATE TABLE o (id BIGINT, band STRING) WITH ('connector' = 'file', 'path' = '{}');\n\
         INSERT INTO o SELECT id, band(amount) FROM events;\n",
        out.display()
    );
    let (status, body) = node.send(node.http().post(format!("{}/api/v1/pipelines", node.url)).header("content-type", "application/sql").body(job));
    assert_eq!(status, 201, "{body}");
    let v = node.wait_for("/api/v1/pipelines/bands", "the job to run with fns@1", |v| v["checkpoints"]["completed"].as_u64() > Some(1));
    let calc = v["plugins"].as_object().unwrap().iter().find(|(_, p)| *p == "fns@1").map(|(op, _)| op.clone()).unwrap_or_else(|| panic!("{v:#}"));
    let swap = |plugin: &str| {
        node.send(
            node.http()
                .post(format!("{}/api/v1/pipelines/bands/operators/{calc}/swap", node.url))
                .header("content-type", "application/json")
                .body(serde_json::json!({"plugin": plugin, "probation": "500ms"}).to_string()),
        )
    };
    let (status, body) = swap("fns@2");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["swap"]["status"], "switched", "{body:#}");
    let v = node.wait_for("/api/v1/pipelines/bands", "the swap's confirmation", |v| v["swap"]["status"] == "confirmed");
    assert_eq!(v["plugins"][&calc], "fns@2");

    let (status, body) = swap("fns@4");
    assert_eq!(status, 422, "{body}");
    let e = body["error"].as_str().unwrap();
    assert!(e.starts_with(&format!("fns@4 cannot replace fns@2 in operator '{calc}'")) && e.contains("has no function price_band") && e.ends_with("nothing changed"), "{e}");

    let (status, body) = swap("fns@3");
    assert_eq!(status, 200, "{body}");
    let v = node.wait_for("/api/v1/pipelines/bands", "the rollback", |v| v["swap"]["status"] == "rolled-back" && v["status"] == "running");
    let reason = v["swap"]["reason"].as_str().unwrap();
    assert!(reason.starts_with("fns@3 was rolled back to fns@2: ") && reason.contains("bands-trap is broken"), "{reason}");
    node.wait_for("/api/v1/pipelines/bands", "more checkpoints after the rollback", |v| v["checkpoints"]["completed"].as_u64() > Some(8));
    assert_eq!(node.post("/api/v1/pipelines/bands/stop", "").0, 200);

    // Every event exactly once; v1's rows all before v2's; nothing of v3's.
    let mut rows: Vec<(u64, String)> = crate::common::parts(&out)
        .concat()
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["id"].as_u64().unwrap(), v["band"].as_str().unwrap().to_string())
        })
        .collect();
    rows.sort();
    let ids: Vec<u64> = rows.iter().map(|r| r.0).collect();
    assert_eq!(ids, (0..rows.len() as u64).collect::<Vec<_>>(), "every event exactly once");
    let first_v2 = rows.iter().position(|r| r.1.starts_with("v2-")).expect("fns@2 computed rows");
    assert!(first_v2 > 0, "fns@1 computed rows");
    assert!(rows[..first_v2].iter().all(|r| ["low", "mid", "high"].contains(&r.1.as_str())), "fns@1's bands");
    assert!(rows[first_v2..].iter().all(|r| r.1.starts_with("v2-")), "after the switch, fns@2 only (fns@3 rolled back)");
    eprintln!("{} events: {first_v2} by fns@1, then {} by fns@2", rows.len(), rows.len() - first_v2);
}
