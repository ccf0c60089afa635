#!/usr/bin/env bash
# Nexmark q0-q3, q5, q7 and q8 on Weir and on Apache Flink 2.3, side by side: the same
# pre-generated events (JSON lines), the same machine, parallelism 2 each, one
# after the other. Prints Weir/Flink per query. Not part of CI.
#
#   benches/flink/run.sh [EVENTS]        # default 2000000
#
# Needs python3 with pip (Flink comes from the PyPI wheel
# apache-flink-libraries, 329 MB, installed once under target/flink) and a JDK
# 17 (javac, java). FLINK_STATE_BACKEND=rocksdb runs Flink's stateful queries
# on RocksDB. QUERIES=q5,q7 runs only those. NEXMARK_COUNT=1 makes Flink
# collect its results and print their count (slower; for checking, not timing).
set -euo pipefail
cd "$(dirname "$0")/../.."
EVENTS=${1:-2000000}
QUERIES=${QUERIES:-q0,q1,q2,q3,q5,q7,q8}
source benches/flink/flink-env.sh benches/flink/run.sh
javac -cp "$FLINK_LIB/*" -d "$OUT/classes" benches/flink/NexmarkSql.java
cargo build --release --target wasm32-wasip2 -p bench-ops -p nexmark-queries
cargo build --release -p weir-bench

echo "== Weir"
"$T/release/weir-bench" --plugin "$T/wasm32-wasip2/release/bench_ops.wasm" --nexmark "$QUERIES" \
    --events "$EVENTS" --parallelism 2 --nexmark-out "$OUT/events.jsonl" | tee "$OUT/weir.md"
echo "== Flink"
: > "$OUT/flink.txt"
for q in ${QUERIES//,/ }; do
    java -cp "$OUT/classes:$FLINK_LIB/*" NexmarkSql "$(realpath "$OUT/events.jsonl")" $q 2 "$EVENTS" 2>"$OUT/flink-$q.log" \
        | grep '^query=' | tee -a "$OUT/flink.txt"
done

python3 - "$OUT/weir.md" "$OUT/flink.txt" "$EVENTS" <<'PY'
import re, sys
weir, flink, events = open(sys.argv[1]).read(), open(sys.argv[2]).read(), int(sys.argv[3])
w = {}
for line in weir.splitlines():
    cells = [c.strip() for c in line.strip().strip('|').split('|')]
    if len(cells) == 8 and re.fullmatch(r'q\d', cells[0]):
        w[cells[0]] = (float(cells[3]), float(cells[5]))
f = {m['q']: (float(m['wall']), float(m['cpu'])) for m in re.finditer(r'query=(?P<q>\w+) events=\d+ wall_s=(?P<wall>[\d.]+) cpu_s=(?P<cpu>[\d.]+)', flink)}
print()
print(f"Nexmark, {events} events, parallelism 2 each (M events/s; per core = per CPU-second)")
print()
print("| query | Weir M ev/s | Flink M ev/s | Weir / Flink | Weir per core | Flink per core | Weir / Flink per core |")
print("|---|---:|---:|---:|---:|---:|---:|")
for q in sorted(w):
    if q not in f:
        continue
    (ww, wc), (fw, fc) = w[q], f[q]
    r = lambda s: events / s / 1e6
    print(f"| {q} | {r(ww):.2f} | {r(fw):.2f} | {fw / ww:.1f} | {r(wc):.2f} | {r(fc):.2f} | {fc / wc:.1f} |")
PY
