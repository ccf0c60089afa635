//! Top-N and deduplication in streaming SQL: `ROW_NUMBER() OVER (PARTITION
//! BY ... ORDER BY ...)` filtered to its first rows. Nexmark q18 (the last
//! bid of each bidder on each auction) and q19 (the ten highest bids of each
//! auction, with their rank) as Flink's Nexmark repository writes them (with
//! tie-breaking sort keys, so that DuckDB's answer is the one answer), the
//! first bid of each bidder, and a Top-5 of all bids: each changelog, applied
//! to a table keyed as the sink is, equals DuckDB's batch SQL over the same
//! bids, also through `kill -9`s. EXPLAIN, and errors for the OVER windows
//! that are not a Top-N.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::common::{parts, run_killed_after_checkpoints, stderr, weir};
use crate::sql::{assert_same, duckdb, run_sql, Work, BID};

const TOPN: &str = "\
CREATE TABLE q18 (auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, PRIMARY KEY (bidder, auction) NOT ENFORCED) WITH ('connector' = 'file', 'path' = '@OUT/q18');
CREATE TABLE q19 (auction BIGINT, bidder BIGINT, price BIGINT, rank_number BIGINT, PRIMARY KEY (auction, rank_number) NOT ENFORCED) WITH ('connector' = 'file', 'path' = '@OUT/q19');
CREATE TABLE first_bid (bidder BIGINT, auction BIGINT, price BIGINT, PRIMARY KEY (bidder) NOT ENFORCED) WITH ('connector' = 'file', 'path' = '@OUT/first_bid');
CREATE TABLE top5 (price BIGINT, auction BIGINT, rn BIGINT, PRIMARY KEY (rn) NOT ENFORCED) WITH ('connector' = 'file', 'path' = '@OUT/top5');
-- Nexmark q18: the last bid of each bidder on each auction
INSERT INTO q18
SELECT auction, bidder, price, channel
FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY bidder, auction ORDER BY dateTime DESC, price DESC, channel) AS rank_number FROM bid)
WHERE rank_number <= 1;
-- Nexmark q19: the ten highest bids of each auction
INSERT INTO q19
SELECT auction, bidder, price, rank_number
FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price DESC, dateTime, bidder) AS rank_number FROM bid)
WHERE rank_number <= 10;
-- deduplication: each bidder's first bid, unless it was on Apple (a filter after the ranking)
INSERT INTO first_bid
SELECT bidder, auction, price FROM (
  SELECT bidder, auction, price, channel, ROW_NUMBER() OVER (PARTITION BY bidder ORDER BY dateTime, auction, price) AS rn FROM bid
) t WHERE rn = 1 AND channel <> 'Apple';
-- the five highest bids of all
INSERT INTO top5
SELECT price, auction, rn FROM (SELECT price, auction, ROW_NUMBER() OVER (ORDER BY price DESC, dateTime, bidder) AS rn FROM bid) t WHERE rn < 6;
";

const Q18: &str = "SELECT auction, bidder, price, channel FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY bidder, auction ORDER BY dateTime DESC, price DESC, channel) AS rank_number FROM bid) WHERE rank_number <= 1";
const Q19: &str = "SELECT auction, bidder, price, rank_number FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price DESC, dateTime, bidder) AS rank_number FROM bid) WHERE rank_number <= 10";
const FIRST: &str = "SELECT bidder, auction, price FROM (SELECT bidder, auction, price, channel, ROW_NUMBER() OVER (PARTITION BY bidder ORDER BY dateTime, auction, price) AS rn FROM bid) t WHERE rn = 1 AND channel <> 'Apple'";
const TOP5: &str = "SELECT price, auction, rn FROM (SELECT price, auction, ROW_NUMBER() OVER (ORDER BY price DESC, dateTime, bidder) AS rn FROM bid) t WHERE rn < 6";

/// The table a changelog applied by the columns `key` ends as.
fn apply_by(lines: &[Value], key: &[&str]) -> Vec<Value> {
    crate::sql::apply_by(lines, key).into_values().collect()
}

fn check(w: &Work, what: &str) {
    let bids = w.bids();
    let q19 = w.rows("q19");
    assert!(q19.iter().any(|l| l["op"] == "-U") && q19.iter().any(|l| l["op"] == "+U"), "q19's ranks change as higher bids come");
    assert_same(&format!("Nexmark q18{what}"), &apply_by(&w.rows("q18"), &["bidder", "auction"]), &duckdb(&bids, Q18));
    assert_same(&format!("Nexmark q19{what}"), &apply_by(&q19, &["auction", "rank_number"]), &duckdb(&bids, Q19));
    assert_same(&format!("first bids{what}"), &apply_by(&w.rows("first_bid"), &["bidder"]), &duckdb(&bids, FIRST));
    assert_same(&format!("top 5{what}"), &apply_by(&w.rows("top5"), &["rn"]), &duckdb(&bids, TOP5));
}

#[test]
fn top_n_and_deduplication_give_what_duckdb_gives() {
    let w = Work::new(20_000);
    let script = w.script("topn.sql", &format!("SET 'parallelism.default' = '2';\n{BID}{TOPN}"));
    run_sql(&script);
    check(&w, "");
    let q18 = w.rows("q18");
    assert!(q18.iter().any(|l| l["op"] == "-U"), "a later bid replaces a bidder's last bid on an auction");
    let o = weir(&["sql", "--explain", script.to_str().unwrap()], &[]);
    let text = String::from_utf8_lossy(&o.stdout);
    for line in [
        "s1-topn x2: deduplication: the first row of each bidder, auction ORDER BY bid.dateTime DESC NULLS FIRST",
        "s2-topn x2: Top-10: the first 10 rows of each auction ORDER BY bid.price DESC NULLS FIRST, bid.dateTime ASC NULLS LAST, bid.bidder ASC NULLS LAST, with its rank (emits a changelog)",
        "s4-topn x2: Top-5: the first 5 rows of all rows ORDER BY",
        "state: per partition key: its first 10 rows in order (value state); a row pushed out is forgotten",
        "state: per partition key: its first row (value state)",
    ] {
        assert!(text.contains(line), "{line}\n{text}");
    }
    assert!(!text.contains("s1-topn x2: deduplication: the first row of each bidder, auction ORDER BY bid.dateTime DESC NULLS FIRST, bid.price DESC NULLS FIRST, bid.channel ASC NULLS LAST, with its rank"), "q18 does not read the rank: {text}");
}

#[test]
fn a_top_n_killed_with_kill_9_resumes_to_the_same_tables() {
    let w = Work::new(200_000);
    let script = w.script(
        "topn-k.sql",
        &format!("SET 'checkpoint.interval' = '100ms';\nSET 'state.dir' = '@OUT/state';\nSET 'parallelism.default' = '2';\n{BID}{TOPN}"),
    );
    let kills = run_killed_after_checkpoints(&["sql", "--progress", "0", script.to_str().unwrap()], &w.path("state"), 3);
    assert!(kills >= 2, "the job was killed while it ran ({kills} kills)");
    check(&w, " through kill -9");
}

#[test]
fn over_windows_that_are_not_a_top_n_are_refused_naming_why() {
    let w = Work::new(10);
    let fails = |name: &str, query: &str| {
        let sink = "CREATE TABLE out (a BIGINT, b BIGINT) WITH ('connector' = 'file', 'path' = '@OUT/o');\n";
        let script = w.script(name, &format!("{BID}{sink}INSERT INTO out {query};\n"));
        let o = weir(&["sql", "--explain", script.to_str().unwrap()], &[]);
        assert!(!o.status.success(), "{name} fails");
        stderr(&o)
    };
    let err = fails("all.sql", "SELECT auction, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price) FROM bid");
    assert!(err.contains("all.sql:5:1: an OVER (...) window function other than a Top-N (ROW_NUMBER() OVER (PARTITION BY ... ORDER BY ...) AS rn, filtered by rn <= N"), "{err}");
    let err = fails("lag.sql", "SELECT auction, price - lag(price) OVER (PARTITION BY auction ORDER BY dateTime) FROM bid");
    assert!(err.contains("lag.sql:5:1: an OVER (...) window function other than a Top-N"), "{err}");
    let err = fails("rank.sql", "SELECT auction, r FROM (SELECT auction, RANK() OVER (PARTITION BY auction ORDER BY price) AS r FROM bid) WHERE r <= 3");
    assert!(err.contains("rank.sql:5:1: a Top-N ranks with ROW_NUMBER(), not RANK() (RANK and DENSE_RANK are not supported yet)"), "{err}");
    let err = fails("order.sql", "SELECT auction, r FROM (SELECT auction, ROW_NUMBER() OVER (PARTITION BY auction) AS r FROM bid) WHERE r <= 3");
    assert!(err.contains("order.sql:5:1: ROW_NUMBER() of a Top-N needs an ORDER BY in its OVER (...)"), "{err}");
    let err = fails("zero.sql", "SELECT auction, r FROM (SELECT auction, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price) AS r FROM bid) WHERE r < 1");
    assert!(err.contains("zero.sql:5:1: ROW_NUMBER() ... <= 0 keeps no row of any partition"), "{err}");
    let err = fails("big.sql", "SELECT auction, r FROM (SELECT auction, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price) AS r FROM bid) WHERE r <= 20000");
    assert!(err.contains("big.sql:5:1: a Top-N keeps at most 10000 rows of each partition, not 20000"), "{err}");
}

#[test]
fn the_sql_topn_example_keeps_each_keys_top_three_and_first_event() {
    let dir = tempfile::tempdir().unwrap();
    let (out, state) = (dir.path().join("out"), dir.path().join("state"));
    let env = [("WEIR_OUTPUT", out.to_str().unwrap()), ("WEIR_STATE", state.to_str().unwrap())];
    let o = weir(&["sql", "--progress", "0", "examples/sql-topn/job.sql"], &env);
    assert!(o.status.success(), "{}", stderr(&o));
    // The same events, from the generator itself.
    let g = weir_connectors::GeneratorSpec { seed: 7, count: Some(100_000), keys: 20, start_ms: 1_767_225_600_000, ..Default::default() };
    let (mut key, mut value) = (Vec::new(), Vec::new());
    let mut per_key: BTreeMap<String, Vec<(i64, i64, i64)>> = BTreeMap::new();
    for n in 0..100_000 {
        let ts = g.event(n, &mut key, &mut value);
        let v: Value = serde_json::from_slice(&value).unwrap();
        per_key.entry(v["key"].as_str().unwrap().to_string()).or_default().push((v["amount"].as_i64().unwrap(), v["id"].as_i64().unwrap(), ts));
    }
    let mut top3 = Vec::new();
    let mut first = Vec::new();
    for (k, events) in &mut per_key {
        events.sort_by_key(|&(amount, id, _)| (-amount, id));
        for (place, (amount, id, _)) in events.iter().take(3).enumerate() {
            top3.push(serde_json::json!({"key": k, "amount": amount, "id": id, "place": place + 1}));
        }
        let &(amount, id, _) = events.iter().min_by_key(|&&(_, id, ts)| (ts, id)).unwrap();
        first.push(serde_json::json!({"key": k, "id": id, "amount": amount}));
    }
    let rows = |name: &str| -> Vec<Value> { parts(&out.join(name)).concat().iter().map(|l| serde_json::from_str(l).unwrap()).collect() };
    assert_same("each key's top 3", &apply_by(&rows("top3"), &["key", "place"]), &top3);
    assert_same("each key's first event", &apply_by(&rows("first_event"), &["key"]), &first);
}
