#!/usr/bin/env bash
# Keyed count with 1 M keys on Weir and on Apache Flink 2.3, heap and RocksDB,
# one after the other on the same machine (issue 21). Weir: weir-bench --state
# (parallelism 1, pre-generated records replayed, then key_by); Flink:
# StateCount.java at parallelism 2 (generating the same records itself), plus
# its `pass` case (the same job without state) to show what generation and
# exchange cost there. Not part of CI.
#
#   benches/flink/state.sh [RECORDS] [KEYS]     # default 8000000 1000000
#
# Needs what benches/flink/run.sh needs (a JDK 17; Flink from PyPI under target/flink).
set -euo pipefail
cd "$(dirname "$0")/../.."
RECORDS=${1:-8000000}
KEYS=${2:-1000000}
source benches/flink/flink-env.sh benches/flink/state.sh
javac -cp "$FLINK_LIB/*" -d "$OUT/classes" benches/flink/StateCount.java
cargo build --release --target wasm32-wasip2 -p bench-ops
cargo build --release -p weir-bench

echo "== Weir"
"$T/release/weir-bench" --plugin "$T/wasm32-wasip2/release/bench_ops.wasm" --state --state-cases heap,rocksdb \
    --records "$RECORDS" --keys "$KEYS" | tee "$OUT/state-weir.md"
echo "== Flink"
: > "$OUT/state-flink.txt"
for run in "hashmap count" "hashmap pass" "rocksdb count"; do
    set -- $run
    java -cp "$OUT/classes:$FLINK_LIB/*" StateCount "$RECORDS" "$KEYS" $1 $2 2 2>"$OUT/state-flink-$1-$2.log" \
        | grep '^case=' | tee -a "$OUT/state-flink.txt"
done
