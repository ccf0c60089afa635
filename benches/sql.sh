#!/usr/bin/env bash
# Streaming SQL throughput: `weir sql` over N flat bids (JSON lines in a
# file, generated beforehand with a fixed seed) for Nexmark-style queries,
# each a bounded run into a file sink; prints wall and CPU time, events per
# CPU-second and peak RSS per query.
#
#   benches/sql.sh [EVENTS]      (default 2000000; needs target/release/weir)
set -euo pipefail
n=${1:-2000000}
root=$(cd "$(dirname "$0")/.." && pwd)
weir=${WEIR:-${CARGO_TARGET_DIR:-$root/target}/release/weir}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$n" "$work/bids.jsonl" <<'PY'
import json, random, sys
n, path = int(sys.argv[1]), sys.argv[2]
r = random.Random(7)
t = 1767225600000
with open(path, "w") as f:
    for _ in range(n):
        t += r.randrange(10)
        f.write(json.dumps({"auction": 1000 + r.randrange(1000), "bidder": r.randrange(5000), "price": 1 + r.randrange(10000),
                            "channel": ["Google", "Facebook", "Baidu", "Apple"][r.randrange(4)], "dateTime": t - r.randrange(50)}) + "\n")
PY
bid="CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, dateTime TIMESTAMP(3), WATERMARK FOR dateTime AS dateTime - INTERVAL '0.1' SECOND) WITH ('connector' = 'file', 'path' = '$work/bids.jsonl');"
declare -A q
q[q0]="CREATE TABLE o (auction BIGINT, bidder BIGINT, price BIGINT, dateTime BIGINT) WITH ('connector' = 'file', 'path' = '$work/out'); INSERT INTO o SELECT auction, bidder, price, dateTime FROM bid;"
q[q1]="CREATE TABLE o (auction BIGINT, bidder BIGINT, price DOUBLE, dateTime BIGINT) WITH ('connector' = 'file', 'path' = '$work/out'); INSERT INTO o SELECT auction, bidder, 0.908 * price, dateTime FROM bid;"
q[q2]="CREATE TABLE o (auction BIGINT, price BIGINT) WITH ('connector' = 'file', 'path' = '$work/out'); INSERT INTO o SELECT auction, price FROM bid WHERE auction % 123 = 0;"
q[hop]="SET 'parallelism.default' = '2'; CREATE TABLE o (auction BIGINT, num BIGINT, window_end BIGINT) WITH ('connector' = 'file', 'path' = '$work/out'); INSERT INTO o SELECT auction, COUNT(*), window_end FROM TABLE(HOP(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '2' SECOND, INTERVAL '10' SECOND)) GROUP BY auction, window_start, window_end;"
q[tumble]="SET 'parallelism.default' = '2'; CREATE TABLE o (m BIGINT, window_end BIGINT) WITH ('connector' = 'file', 'path' = '$work/out'); INSERT INTO o SELECT MAX(price), window_end FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '10' SECOND)) GROUP BY window_start, window_end;"
q[group_by]="SET 'parallelism.default' = '2'; CREATE TABLE o (auction BIGINT, n BIGINT, s BIGINT, PRIMARY KEY (auction) NOT ENFORCED) WITH ('connector' = 'file', 'path' = '$work/out'); INSERT INTO o SELECT auction, COUNT(*), SUM(price) FROM bid GROUP BY auction;"
printf '| query | wall s | CPU s | M events per CPU-second | peak RSS MiB |\n|---|---:|---:|---:|---:|\n'
for name in q0 q1 q2 hop tumble group_by; do
  echo "$bid ${q[$name]}" > "$work/$name.sql"
  rm -rf "$work/out"
  /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$weir" sql --progress 0 "$work/$name.sql" >/dev/null
  read -r wall user sys rss < "$work/time"
  python3 -c "import sys; w,u,s,r,n=map(float,sys.argv[1:]); print(f'| $name | {w:.2f} | {u+s:.2f} | {n/(u+s)/1e6:.2f} | {r/1024:.0f} |')" "$wall" "$user" "$sys" "$rss" "$n"
done
