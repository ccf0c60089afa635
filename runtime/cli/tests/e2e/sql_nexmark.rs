//! Streaming SQL, Nexmark q5, q7 and q8 as Flink's Nexmark repository
//! writes them (window table functions): a window aggregation grouped again
//! by the windows of its rows (q5's maximum per window over the counts per
//! auction and window), window joins (both sides rows of windows, joined on
//! their bounds: q5, q8) whose state goes when the watermark passes the
//! window, and a regular join of a stream with a window aggregation (q7),
//! or a window join of TUMBLE's rows with it (q7 as benches/flink writes it).
//! Each gives exactly what DuckDB computes from the same rows, also through
//! `kill -9`s.

use std::path::Path;

use serde_json::{json, Value};

use crate::common::{run_killed_after_checkpoints, weir};
use crate::sql::{assert_same, duckdb, run_sql, Work, BID};

/// Persons and auctions with event time (`person.jsonl`, `auction.jsonl`
/// beside the bids, `dateTime` in ms, a little disorder): persons join
/// every 37 ms; an auction every 9 ms, sold by one of 2 400 ids of which
/// persons 0..2000 exist.
fn timed_people_and_auctions(dir: &Path) {
    let mut x = 5u64;
    let mut next = move |m: u64| {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (x >> 33) % m
    };
    let t0: u64 = 1_767_225_600_000;
    let mut out = String::new();
    for id in 0..2000u64 {
        let row = json!({"id": id, "name": format!("p{id}"), "city": "c", "state": "OR", "dateTime": t0 + id * 37 - next(60)});
        out.push_str(&format!("{row}\n"));
    }
    std::fs::write(dir.join("person.jsonl"), out).unwrap();
    let mut out = String::new();
    for i in 0..8000u64 {
        let row = json!({"id": 1000 + i, "seller": next(2400), "category": next(15), "reserve": next(1000), "dateTime": t0 + i * 9 - next(60)});
        out.push_str(&format!("{row}\n"));
    }
    std::fs::write(dir.join("auction.jsonl"), out).unwrap();
}

const TIMED: &str = "CREATE TABLE person (id BIGINT, name STRING, city STRING, state STRING, dateTime TIMESTAMP(3),\n  WATERMARK FOR dateTime AS dateTime - INTERVAL '0.1' SECOND\n) WITH ('connector' = 'file', 'path' = '@OUT/person.jsonl');\n\
     CREATE TABLE auction (id BIGINT, seller BIGINT, category BIGINT, reserve BIGINT, dateTime TIMESTAMP(3),\n  WATERMARK FOR dateTime AS dateTime - INTERVAL '0.1' SECOND\n) WITH ('connector' = 'file', 'path' = '@OUT/auction.jsonl');\n";

/// Nexmark q5 (hot items), q7 (highest bid) and q8 (monitor new users).
const QUERIES: &str = "CREATE TABLE q5 (auction BIGINT, num BIGINT) WITH ('connector' = 'file', 'path' = '@OUT/q5');\n\
     CREATE TABLE q7 (auction BIGINT, price BIGINT, bidder BIGINT, dateTime BIGINT) WITH ('connector' = 'file', 'path' = '@OUT/q7');\n\
     CREATE TABLE q8 (id BIGINT, name STRING, stime BIGINT) WITH ('connector' = 'file', 'path' = '@OUT/q8');\n\
     CREATE TABLE q7w (auction BIGINT, price BIGINT, bidder BIGINT, dateTime BIGINT) WITH ('connector' = 'file', 'path' = '@OUT/q7w');\n\
     -- q7 as a window join of TUMBLE's rows with each window's MAX(price) (benches/flink/NexmarkSql.java)\n\
     INSERT INTO q7w\n\
     SELECT B.auction, B.price, B.bidder, B.dateTime FROM (\n\
       SELECT * FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))) B\n\
     JOIN (\n\
       SELECT MAX(price) AS maxprice, window_start, window_end\n\
       FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))\n\
       GROUP BY window_start, window_end) M\n\
     ON B.window_start = M.window_start AND B.window_end = M.window_end AND B.price = M.maxprice;\n\
     -- q5: the auctions with the most bids in each sliding window\n\
     INSERT INTO q5\n\
     SELECT AuctionBids.auction, AuctionBids.num\n\
      FROM (\n\
        SELECT auction, count(*) AS num, window_start AS starttime, window_end AS endtime\n\
        FROM TABLE(HOP(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '2' SECOND, INTERVAL '10' SECOND))\n\
        GROUP BY auction, window_start, window_end\n\
      ) AS AuctionBids\n\
      JOIN (\n\
        SELECT max(CountBids.num) AS maxn, CountBids.starttime, CountBids.endtime\n\
        FROM (\n\
          SELECT count(*) AS num, window_start AS starttime, window_end AS endtime\n\
          FROM TABLE(HOP(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '2' SECOND, INTERVAL '10' SECOND))\n\
          GROUP BY auction, window_start, window_end\n\
        ) AS CountBids\n\
        GROUP BY CountBids.starttime, CountBids.endtime\n\
      ) AS MaxBids\n\
      ON AuctionBids.starttime = MaxBids.starttime AND AuctionBids.endtime = MaxBids.endtime AND AuctionBids.num >= MaxBids.maxn;\n\
     -- q7: the bids of the highest price in the 10 seconds before each window's end\n\
     INSERT INTO q7\n\
     SELECT B.auction, B.price, B.bidder, B.dateTime\n\
     FROM bid B\n\
     JOIN (\n\
       SELECT MAX(price) AS maxprice, window_end AS dateTime\n\
       FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))\n\
       GROUP BY window_start, window_end\n\
     ) B1\n\
     ON B.price = B1.maxprice\n\
     WHERE B.dateTime BETWEEN B1.dateTime - INTERVAL '10' SECOND AND B1.dateTime;\n\
     -- q8: persons who joined and opened an auction in the same 10 seconds\n\
     INSERT INTO q8\n\
     SELECT P.id, P.name, P.starttime\n\
     FROM (\n\
       SELECT id, name, window_start AS starttime, window_end AS endtime\n\
       FROM TABLE(TUMBLE(TABLE person, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))\n\
       GROUP BY id, name, window_start, window_end\n\
     ) P\n\
     JOIN (\n\
       SELECT seller, window_start AS starttime, window_end AS endtime\n\
       FROM TABLE(TUMBLE(TABLE auction, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))\n\
       GROUP BY seller, window_start, window_end\n\
     ) A\n\
     ON P.id = A.seller AND P.starttime = A.starttime AND P.endtime = A.endtime;\n";

/// The same three in DuckDB's batch SQL (windows as arithmetic on ms).
const Q5: &str = "WITH h AS (SELECT auction, count(*) AS num, ws AS starttime, ws + 10000 AS endtime FROM (\
    SELECT auction, dateTime AS dt, unnest(range(dateTime - dateTime % 2000 - 8000, dateTime - dateTime % 2000 + 1, 2000)) AS ws FROM bid\
    ) WHERE ws > dt - 10000 GROUP BY auction, ws), \
    m AS (SELECT max(num) AS maxn, starttime, endtime FROM h GROUP BY starttime, endtime) \
    SELECT h.auction, h.num FROM h JOIN m ON h.starttime = m.starttime AND h.endtime = m.endtime AND h.num >= m.maxn";
const Q7: &str = "WITH m AS (SELECT max(price) AS maxprice, dateTime - dateTime % 10000 + 10000 AS dt FROM bid GROUP BY dateTime - dateTime % 10000) \
    SELECT B.auction, B.price, B.bidder, B.dateTime FROM bid B JOIN m ON B.price = m.maxprice WHERE B.dateTime BETWEEN m.dt - 10000 AND m.dt";
const Q7W: &str = "WITH m AS (SELECT max(price) AS mp, dateTime - dateTime % 10000 AS w FROM bid GROUP BY 2) \
    SELECT b.auction, b.price, b.bidder, b.dateTime FROM bid b JOIN m ON b.dateTime - b.dateTime % 10000 = m.w AND b.price = m.mp";
const Q8: &str = "WITH p AS (SELECT DISTINCT id, name, dateTime - dateTime % 10000 AS s FROM person), \
    a AS (SELECT DISTINCT seller, dateTime - dateTime % 10000 AS s FROM auction) \
    SELECT p.id, p.name, p.s AS stime FROM p JOIN a ON p.id = a.seller AND p.s = a.s";

fn check(w: &Work, what: &str) {
    let bids = w.bids();
    let (q5, q7, q8) = (duckdb(&bids, Q5), duckdb(&bids, Q7), duckdb(&bids, Q8));
    assert!(q5.len() > 100 && q7.len() > 20, "{what}: q5 and q7 have rows: {} and {}", q5.len(), q7.len());
    assert!(q8.len() > 50, "{what}: persons meet auctions of theirs in the same window: {}", q8.len());
    assert_same(&format!("Nexmark q5 {what}"), &w.rows("q5"), &q5);
    assert_same(&format!("Nexmark q7 {what}"), &w.rows("q7"), &q7);
    assert_same(&format!("Nexmark q8 {what}"), &w.rows("q8"), &q8);
    assert_same(&format!("Nexmark q7 as a window join {what}"), &w.rows("q7w"), &duckdb(&bids, Q7W));
}

#[test]
fn nexmark_q5_q7_q8_cascading_windows_and_window_joins_give_what_duckdb_gives() {
    let w = Work::new(30_000);
    timed_people_and_auctions(w.dir.path());
    let script = w.script("q578.sql", &format!("SET 'parallelism.default' = '2';\n{BID}{TIMED}{QUERIES}"));
    run_sql(&script);
    check(&w, "");
    let o = weir(&["sql", "--explain", script.to_str().unwrap()], &[]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("window aggregate over the windows of its input's rows: GROUP BY starttime, endtime: max(CountBids.num)"), "{text}");
    assert!(text.contains("window join ON AuctionBids.starttime = MaxBids.starttime AND AuctionBids.endtime = MaxBids.endtime"), "{text}");
    assert!(text.contains("window join ON P.id = A.seller AND P.starttime = A.starttime AND P.endtime = A.endtime"), "{text}");
    assert!(text.contains("until the watermark passes the window's end"), "{text}");
    // q7 joins bids (no window) with windows: a regular join; written with
    // TUMBLE's rows, a window join.
    assert!(text.contains("inner join ON B.price = B1.maxprice"), "{text}");
    assert!(text.contains("calc: each row with its window of TUMBLE(10000 ms) (dateTime)"), "{text}");
    assert!(text.contains("window join ON B.window_start = M.window_start AND B.window_end = M.window_end AND B.price = M.maxprice"), "{text}");
}

#[test]
fn cascading_windows_and_window_joins_killed_with_kill_9_resume_to_the_same_results() {
    let w = Work::new(200_000);
    timed_people_and_auctions(w.dir.path());
    let script = w.script(
        "q578k.sql",
        &format!("SET 'checkpoint.interval' = '100ms';\nSET 'state.dir' = '@OUT/state';\nSET 'parallelism.default' = '2';\n{BID}{TIMED}{QUERIES}"),
    );
    let kills = run_killed_after_checkpoints(&["sql", "--progress", "0", script.to_str().unwrap()], &w.path("state"), 3);
    assert!(kills >= 2, "the job was killed while it ran ({kills} kills)");
    check(&w, "through kill -9");
}

/// Grouped by one of its window's columns only, the rows of a window
/// aggregation are aggregated as any table's: an updating aggregate.
#[test]
fn grouping_by_a_window_column_alone_is_an_updating_aggregate_and_said_so() {
    let w = Work::new(2_000);
    let script = w.script(
        "e.sql",
        &format!(
            "{BID}CREATE TABLE o (starttime BIGINT, n BIGINT, PRIMARY KEY (starttime) NOT ENFORCED) WITH ('connector' = 'file', 'path' = '@OUT/o');\n\
             INSERT INTO o SELECT starttime, max(num) FROM (\n\
               SELECT count(*) AS num, window_start AS starttime, window_end AS endtime\n\
               FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '1' SECOND)) GROUP BY auction, window_start, window_end\n\
             ) GROUP BY starttime;\n"
        ),
    );
    let o = weir(&["sql", "--explain", script.to_str().unwrap()], &[]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("updating aggregate (emits a changelog): GROUP BY starttime"), "{text}");
    run_sql(&script);
    let got: Vec<Value> = crate::sql::apply(&w.rows("o"), "starttime").into_values().collect();
    let want = duckdb(
        &w.bids(),
        "SELECT s AS starttime, max(num) AS n FROM (SELECT count(*) AS num, dateTime - dateTime % 1000 AS s FROM bid GROUP BY auction, s) GROUP BY s",
    );
    assert_same("GROUP BY window_start alone", &got, &want);
}
