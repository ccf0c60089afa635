#!/usr/bin/env bash
# Nexmark q0-q3, q5, q7 and q8 in SQL on Weir (`weir sql`) and on Apache
# Flink 2.3 SQL, side by side: the same events, the same machine, parallelism
# 2 each, one after the other; and Weir's hand-written Wasm guests of the same
# queries (weir-bench --nexmark) on the same events. Not part of CI.
#
#   benches/flink/sql.sh [EVENTS]        # default 1000000
#
# The events are weir-bench's Nexmark events (Flink's Nexmark JSON schema),
# split into three flat JSON-lines tables (person, auction, bid: each kind's
# rows as top-level objects, every field kept), which both SQL engines read
# with the filesystem/file connector; both write into a sink that drops rows
# (Flink's blackhole; Weir's file sink to /dev/null is not one, so Weir writes
# a file on tmpfs-or-disk: its cost is in Weir's figures). Event time: the
# rows' dateTime with a watermark of 100 ms, on q5, q7 and q8. Needs what
# benches/flink/run.sh needs (python3 with pip, a JDK 17).
set -euo pipefail
cd "$(dirname "$0")/../.."
EVENTS=${1:-1000000}
QUERIES=${QUERIES:-q0,q1,q2,q3,q5,q7,q8}
T=${CARGO_TARGET_DIR:-target}
OUT=$T/flink-sql
FLINK_LIB=$T/flink/pyflink/pyflink/lib
mkdir -p "$OUT"
command -v javac >/dev/null || { echo "benches/flink/sql.sh needs a JDK 17: apt-get install openjdk-17-jdk-headless" >&2; exit 1; }
if [ ! -f "$FLINK_LIB/flink-dist-2.3.0.jar" ]; then
    python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$T/flink/pyflink" apache-flink-libraries==2.3.0
fi
javac -cp "$FLINK_LIB/*" -d "$OUT/classes" benches/flink/NexmarkSql.java
cargo build --release --target wasm32-wasip2 -p bench-ops -p nexmark-queries
cargo build --release -p weir-bench -p weir-cli

echo "== Weir, hand-written Wasm guests"
"$T/release/weir-bench" --plugin "$T/wasm32-wasip2/release/bench_ops.wasm" --nexmark "$QUERIES" \
    --events "$EVENTS" --parallelism 2 --nexmark-out "$OUT/events.jsonl" | tee "$OUT/wasm.md"
python3 - "$OUT/events.jsonl" "$OUT" <<'PY'
import json, sys
src, out = sys.argv[1], sys.argv[2]
files = {k: open(f"{out}/{k}.jsonl", "w") for k in ("person", "auction", "bid")}
for line in open(src):
    e = json.loads(line)
    kind = ("person", "auction", "bid")[e["event_type"]]
    files[kind].write(json.dumps(e[kind], separators=(",", ":")) + "\n")
PY
flat=$(realpath "$OUT")

# Weir SQL: the same queries as NexmarkSql.java.
time_col() { [ "$1" = w ] && echo "dateTime TIMESTAMP(3), WATERMARK FOR dateTime AS dateTime - INTERVAL '0.1' SECOND" || echo "dateTime BIGINT"; }
tables() {
    echo "SET 'parallelism.default' = '2';"
    echo "CREATE TABLE person (id BIGINT, name STRING, emailAddress STRING, creditCard STRING, city STRING, state STRING, extra STRING, $(time_col "$1")) WITH ('connector' = 'file', 'path' = '$flat/person.jsonl');"
    echo "CREATE TABLE auction (id BIGINT, itemName STRING, description STRING, initialBid BIGINT, reserve BIGINT, expires BIGINT, seller BIGINT, category BIGINT, extra STRING, $(time_col "$1")) WITH ('connector' = 'file', 'path' = '$flat/auction.jsonl');"
    echo "CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING, extra STRING, $(time_col "$1")) WITH ('connector' = 'file', 'path' = '$flat/bid.jsonl');"
}
declare -A q
q[q0]="CREATE TABLE o (auction BIGINT, bidder BIGINT, price BIGINT, dateTime BIGINT, extra STRING) WITH ('connector' = 'file', 'path' = '$OUT/out'); INSERT INTO o SELECT auction, bidder, price, dateTime, extra FROM bid;"
q[q1]="CREATE TABLE o (auction BIGINT, bidder BIGINT, price DOUBLE, dateTime BIGINT, extra STRING) WITH ('connector' = 'file', 'path' = '$OUT/out'); INSERT INTO o SELECT auction, bidder, 0.908 * price, dateTime, extra FROM bid;"
q[q2]="CREATE TABLE o (auction BIGINT, price BIGINT) WITH ('connector' = 'file', 'path' = '$OUT/out'); INSERT INTO o SELECT auction, price FROM bid WHERE auction % 123 = 0;"
q[q3]="CREATE TABLE o (name STRING, city STRING, state STRING, id BIGINT) WITH ('connector' = 'file', 'path' = '$OUT/out'); INSERT INTO o SELECT P.name, P.city, P.state, A.id FROM auction AS A INNER JOIN person AS P ON A.seller = P.id WHERE A.category = 10 AND (P.state = 'OR' OR P.state = 'ID' OR P.state = 'CA');"
q[q5]="CREATE TABLE o (auction BIGINT, num BIGINT, window_end TIMESTAMP(3)) WITH ('connector' = 'file', 'path' = '$OUT/out'); INSERT INTO o SELECT AuctionBids.auction, AuctionBids.num, AuctionBids.endtime FROM (SELECT auction, COUNT(*) AS num, window_start AS starttime, window_end AS endtime FROM TABLE(HOP(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '2' SECOND, INTERVAL '10' SECOND)) GROUP BY auction, window_start, window_end) AS AuctionBids JOIN (SELECT MAX(CountBids.num) AS maxn, CountBids.starttime, CountBids.endtime FROM (SELECT COUNT(*) AS num, window_start AS starttime, window_end AS endtime FROM TABLE(HOP(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '2' SECOND, INTERVAL '10' SECOND)) GROUP BY auction, window_start, window_end) AS CountBids GROUP BY CountBids.starttime, CountBids.endtime) AS MaxBids ON AuctionBids.starttime = MaxBids.starttime AND AuctionBids.endtime = MaxBids.endtime AND AuctionBids.num >= MaxBids.maxn;"
q[q7]="CREATE TABLE o (auction BIGINT, price BIGINT, bidder BIGINT, dateTime BIGINT, extra STRING) WITH ('connector' = 'file', 'path' = '$OUT/out'); INSERT INTO o SELECT B.auction, B.price, B.bidder, B.dateTime, B.extra FROM (SELECT * FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))) B JOIN (SELECT MAX(price) AS maxprice, window_start, window_end FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '10' SECOND)) GROUP BY window_start, window_end) M ON B.window_start = M.window_start AND B.window_end = M.window_end AND B.price = M.maxprice;"
q[q8]="CREATE TABLE o (id BIGINT, name STRING, starttime TIMESTAMP(3)) WITH ('connector' = 'file', 'path' = '$OUT/out'); INSERT INTO o SELECT P.id, P.name, P.starttime FROM (SELECT id, name, window_start AS starttime, window_end AS endtime FROM TABLE(TUMBLE(TABLE person, DESCRIPTOR(dateTime), INTERVAL '10' SECOND)) GROUP BY id, name, window_start, window_end) P JOIN (SELECT seller, window_start AS starttime, window_end AS endtime FROM TABLE(TUMBLE(TABLE auction, DESCRIPTOR(dateTime), INTERVAL '10' SECOND)) GROUP BY seller, window_start, window_end) A ON P.id = A.seller AND P.starttime = A.starttime AND P.endtime = A.endtime;"

echo "== Weir SQL"
: > "$OUT/weir.txt"
for name in ${QUERIES//,/ }; do
    case $name in q5|q7|q8) mode=w ;; *) mode=plain ;; esac
    { tables $mode; echo "${q[$name]}"; } > "$OUT/$name.sql"
    rm -rf "$OUT/out"
    /usr/bin/time -f "%e %U %S %M" -o "$OUT/time" "$T/release/weir" sql --progress 0 "$OUT/$name.sql" >/dev/null
    read -r wall user sys rss < "$OUT/time"
    rows=$(cat "$OUT"/out/*.jsonl 2>/dev/null | wc -l)
    echo "query=$name wall_s=$wall cpu_s=$(python3 -c "print($user + $sys)") rss_kb=$rss rows=$rows" | tee -a "$OUT/weir.txt"
done
echo "== Flink SQL"
: > "$OUT/flink.txt"
for name in ${QUERIES//,/ }; do
    NEXMARK_FLAT="$flat" java -cp "$OUT/classes:$FLINK_LIB/*" NexmarkSql "$flat/bid.jsonl" "$name" 2 "$EVENTS" 2>"$OUT/flink-$name.log" \
        | grep '^query=' | tee -a "$OUT/flink.txt"
done

python3 - "$OUT/weir.txt" "$OUT/flink.txt" "$OUT/wasm.md" "$EVENTS" <<'PY'
import re, sys
weir, flink, wasm, events = open(sys.argv[1]).read(), open(sys.argv[2]).read(), open(sys.argv[3]).read(), int(sys.argv[4])
pat = r'query=(?P<q>\w+).*?wall_s=(?P<wall>[\d.]+) cpu_s=(?P<cpu>[\d.]+)'
w = {m['q']: (float(m['wall']), float(m['cpu'])) for m in re.finditer(pat, weir)}
f = {m['q']: (float(m['wall']), float(m['cpu'])) for m in re.finditer(pat, flink)}
g = {}
for line in wasm.splitlines():
    cells = [c.strip() for c in line.strip().strip('|').split('|')]
    if len(cells) == 8 and re.fullmatch(r'q\d', cells[0]):
        g[cells[0]] = (float(cells[3]), float(cells[5]))
r = lambda s: events / s / 1e6
print()
print(f"Nexmark in SQL, {events} events, parallelism 2 each (M events per CPU-second)")
print()
print("| query | Weir SQL | Flink SQL | Weir SQL / Flink SQL | Weir Wasm guest | Weir SQL / Wasm guest | Weir SQL wall s | Flink SQL wall s |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for q in sorted(w):
    if q not in f:
        continue
    (ww, wc), (fw, fc) = w[q], f[q]
    gc = g.get(q, (None, None))[1]
    wasm_cells = f"{r(gc):.2f} | {gc / wc:.2f}" if gc else "- | -"
    print(f"| {q} | {r(wc):.2f} | {r(fc):.2f} | {fc / wc:.1f} | {wasm_cells} | {ww:.2f} | {fw:.2f} |")
PY
