-- Events per key and minute, and a running total per key, in SQL.
--
--   target/release/weir sql examples/sql-windows/job.sql
--   target/release/weir sql --explain examples/sql-windows/job.sql
--
-- The generator makes 200 000 events {id, key, amount, ts} over 20 keys,
-- one millisecond of event time apart. The first INSERT counts them per key in
-- one-minute tumbling windows of event time (each window's row is written
-- once, when the watermark passes its end); the second keeps a running
-- total per key, as a changelog applied by key (the file sink writes each
-- change with its kind). Outputs: out/sql-windows/{per_minute,totals}.
SET 'checkpoint.interval' = '1s';
SET 'state.dir' = '${WEIR_STATE:out/sql-windows/state}';
SET 'parallelism.default' = '2';

CREATE TABLE events (
  id BIGINT,
  `key` STRING,
  amount BIGINT,
  ts TIMESTAMP(3),
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
) WITH ('connector' = 'generator', 'count' = '200000', 'keys' = '20', 'seed' = '7', 'start_ms' = '1767225600000');

CREATE TABLE per_minute (`key` STRING, events BIGINT, total BIGINT, biggest BIGINT, window_start TIMESTAMP(3))
WITH ('connector' = 'file', 'path' = '${WEIR_OUTPUT:out/sql-windows}/per_minute');

CREATE TABLE totals (`key` STRING, events BIGINT, total BIGINT, PRIMARY KEY (`key`) NOT ENFORCED)
WITH ('connector' = 'file', 'path' = '${WEIR_OUTPUT:out/sql-windows}/totals');

INSERT INTO per_minute
SELECT key, COUNT(*), SUM(amount), MAX(amount), window_start
FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
WHERE amount > 0
GROUP BY key, window_start, window_end;

INSERT INTO totals
SELECT key, COUNT(*), SUM(amount) FROM events GROUP BY key;
