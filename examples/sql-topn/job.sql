-- Top-N and deduplication in SQL: the three largest amounts of each key,
-- and each key's first event.
--
--   target/release/weir sql examples/sql-topn/job.sql
--   target/release/weir sql --explain examples/sql-topn/job.sql
--
-- The generator makes 100 000 events {id, key, amount, ts} over 20 keys.
-- ROW_NUMBER() OVER (PARTITION BY ... ORDER BY ...) filtered to its first
-- rows is a Top-N: each key's first rows are kept in keyed state, and every
-- change of them goes out as a changelog, which the file sinks write with
-- its kinds (apply it by the table's primary key to get the table).
-- Outputs: out/sql-topn/{top3,first_event}.
SET 'checkpoint.interval' = '1s';
SET 'state.dir' = '${WEIR_STATE:out/sql-topn/state}';
SET 'parallelism.default' = '2';

CREATE TABLE events (
  id BIGINT,
  `key` STRING,
  amount BIGINT,
  ts TIMESTAMP(3),
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
) WITH ('connector' = 'generator', 'count' = '100000', 'keys' = '20', 'seed' = '7', 'start_ms' = '1767225600000');

CREATE TABLE top3 (`key` STRING, amount BIGINT, id BIGINT, place BIGINT, PRIMARY KEY (`key`, place) NOT ENFORCED)
WITH ('connector' = 'file', 'path' = '${WEIR_OUTPUT:out/sql-topn}/top3');

CREATE TABLE first_event (`key` STRING, id BIGINT, amount BIGINT, PRIMARY KEY (`key`) NOT ENFORCED)
WITH ('connector' = 'file', 'path' = '${WEIR_OUTPUT:out/sql-topn}/first_event');

-- The three largest amounts of each key (ties: the smaller id first).
INSERT INTO top3
SELECT key, amount, id, place FROM (
  SELECT key, amount, id, ROW_NUMBER() OVER (PARTITION BY key ORDER BY amount DESC, id) AS place FROM events
) WHERE place <= 3;

-- Each key's first event (deduplication: the first row of each key).
INSERT INTO first_event
SELECT key, id, amount FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY key ORDER BY ts, id) AS rn FROM events
) WHERE rn = 1;
