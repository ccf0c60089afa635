#!/usr/bin/env bash
# Iceberg sinks on Weir and on Apache Flink 2.1.3 (Iceberg's Flink runtime
# 1.11.0), side by side: the same JSON-lines input file, the same machine,
# one after the other, parallelism 2, checkpoints every second, Parquet with
# zstd, unpartitioned tables (Flink SQL declares identity partitions only).
#   append: N events into an append table;
#   upsert: N changes of KEYS keys (5 % deletes, Weir's generator with
#           deletes: 0.05) into a format-2 table keyed by `key` (equality
#           deletes; Flink with write.upsert.enabled and PRIMARY KEY).
# Prints wall and CPU (user + sys, GNU time) per run, events/s, events per
# CPU-second, and Weir/Flink; then reads the tables back with DuckDB's
# iceberg extension and checks that both engines' tables hold the same rows
# (the upsert tables up to CHECK_UPSERT_MAX=1000000 events). Not part of CI.
#
#   benches/flink/iceberg.sh [N [KEYS]]    # default 1000000, KEYS = N
#
# Needs java/javac 17, mvn, python3 and a built weir ($CARGO_TARGET_DIR/release/weir).
# Fetches once, under $T/flink-iceberg: Flink 2.1.3 (PyPI wheel
# apache-flink-libraries) and Iceberg's Flink runtime with Hadoop's client
# jars (benches/flink/iceberg-pom.xml). KEEP=1 keeps the temporary directory.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-1000000}
KEYS=${2:-$N}
T=${CARGO_TARGET_DIR:-target}
OUT=$T/flink-iceberg
FLINK_LIB=$OUT/pyflink/pyflink/lib
LIBS=$OUT/libs
WEIR=${WEIR:-$T/release/weir}
for tool in java javac mvn python3; do
    command -v $tool >/dev/null || { echo "iceberg.sh: $tool is missing (apt-get install openjdk-17-jdk-headless maven python3)" >&2; exit 1; }
done
[ -x "$WEIR" ] || { echo "iceberg.sh: no $WEIR (cargo build --release)" >&2; exit 1; }
mkdir -p "$OUT"
[ -f "$FLINK_LIB/flink-dist-2.1.3.jar" ] || \
    python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$OUT/pyflink" apache-flink-libraries==2.1.3
[ -f "$LIBS/iceberg-flink-runtime-2.1-1.11.0.jar" ] || \
    mvn -q -B -f benches/flink/iceberg-pom.xml dependency:copy-dependencies -DoutputDirectory="$(realpath "$OUT")/libs"
javac -cp "$FLINK_LIB/*:$LIBS/*" -d "$OUT/classes" benches/flink/IcebergSink.java
PY="$T/services/py-bench-iceberg"
[ -d "$PY" ] || python3 -m pip install --quiet --disable-pip-version-check --target "$PY" \
    'pyiceberg[sql-sqlite,pyarrow]==0.12.0' 'pyarrow==26.0.1' 'sqlalchemy==2.1.9' \
    'duckdb==1.5.5' 'duckdb-extension-iceberg==1.5.5' 'duckdb-extension-avro==1.5.5'

D=$(mktemp -d)
[ "${KEEP:-0}" = 1 ] && echo "kept: $D" || trap 'rm -rf "$D"' EXIT
# The inputs, written once by Weir's generator.
gen() {
    cat > "$D/gen-$1.yaml" <<YAML
name: gen-$1
sources: [{name: gen, type: generator, $2}]
sinks: [{name: out, type: file, input: gen, path: '$D/gen-$1'}]
YAML
    "$WEIR" run --progress 0 --log warn "$D/gen-$1.yaml" >/dev/null
    cat "$D"/gen-$1/part-*.jsonl > "$D/$1.jsonl"
}
gen append "count: $N, keys: 100000, seed: 1"
gen upsert "count: $N, keys: $KEYS, seed: 1, deletes: 0.05"

cols="[{name: id, type: long, required: true}, {name: key, type: string}, {name: amount, type: long}, {name: ts, type: long}]"
ucols="[{name: id, type: long, required: true}, {name: key, type: string, required: true}, {name: amount, type: long}, {name: ts, type: long}]"
cat > "$D/append.yaml" <<YAML
name: ice-append
state: {dir: $D/state-append}
checkpoint: {interval: 1s}
sources: [{name: in, type: file, format: json_lines, path: '$D/append.jsonl'}]
sinks:
  - {name: lake, type: iceberg, input: in, parallelism: 2, table: bench.events, schema: $cols,
     catalog: {type: sql, uri: 'sqlite://$D/catalog.db', warehouse: '$D/weir-wh'}}
YAML
cat > "$D/upsert.yaml" <<YAML
name: ice-upsert
state: {dir: $D/state-upsert}
checkpoint: {interval: 1s}
sources: [{name: in, type: file, format: json_lines, path: '$D/upsert.jsonl'}]
sinks:
  - {name: lake, type: iceberg, input: in, parallelism: 2, key_by: \$.key, table: bench.accounts, schema: $ucols,
     mode: upsert, key: [key], deleted_field: __deleted,
     catalog: {type: sql, uri: 'sqlite://$D/catalog.db', warehouse: '$D/weir-wh'}}
YAML

# What Flink's launcher opens to its JVMs on Java 17 (its config.yaml's
# env.java.default-opts.all): Kryo serializes Iceberg's DataFiles reflectively.
JAVA_OPENS="--add-exports=java.base/sun.net.util=ALL-UNNAMED --add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED"
for p in java.lang java.net java.io java.nio sun.nio.ch java.lang.reflect java.text java.time java.util \
         java.util.concurrent java.util.concurrent.atomic java.util.concurrent.locks; do
    JAVA_OPENS="$JAVA_OPENS --add-opens=java.base/$p=ALL-UNNAMED"
done
cat > "$D/log4j2.properties" <<'LOG'
rootLogger.level = WARN
rootLogger.appenderRef.console.ref = console
appender.console.name = console
appender.console.type = CONSOLE
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d %p %c{1} - %m%n
LOG

row() { # engine mode wall user sys
    local cpu; cpu=$(echo "$4 + $5" | bc)
    echo "$2 | $1 | $3 | $cpu | $(echo "$N / $3" | bc) | $(echo "$N / $cpu" | bc)"
}
weir_run() {
    /usr/bin/time -f '%e %U %S' -o "$D/time" "$WEIR" run --progress 0 --log warn "$D/$1.yaml" >/dev/null
    read -r wall user sys < "$D/time"
    row weir "$1" "$wall" "$user" "$sys" | tee -a "$D/rows"
}
flink_run() {
    /usr/bin/time -f '%e %U %S' -o "$D/time" java $JAVA_OPENS -Dlog4j.configurationFile="$D/log4j2.properties" \
        -cp "$OUT/classes:$FLINK_LIB/*:$LIBS/*" IcebergSink "$(realpath "$D/$1.jsonl")" "$(realpath "$D")/flink-wh" "$1" 2 >"$D/flink-$1.log" 2>&1 \
        || { tail -40 "$D/flink-$1.log" >&2; exit 1; }
    read -r wall user sys < "$D/time"
    row flink "$1" "$wall" "$user" "$sys" | tee -a "$D/rows"
}
echo "| table | engine | wall s | CPU s | events/s | events per CPU-second |"
echo "|---|---|---:|---:|---:|---:|"
weir_run append
flink_run append
weir_run upsert
flink_run upsert

PYTHONPATH="$PY" python3 - "$D" "$N" <<'PY'
import glob, json, os, sys
import duckdb
from pyiceberg.catalog.sql import SqlCatalog

d, n = sys.argv[1], int(sys.argv[2])
weir = SqlCatalog("weir", uri=f"sqlite:///{d}/catalog.db", warehouse=f"file://{d}/weir-wh")

def flink_meta(table):
    metas = glob.glob(f"{d}/flink-wh/bench/{table}/metadata/v*.metadata.json")
    return max(metas, key=lambda p: int(os.path.basename(p)[1:].split(".")[0]))

def ext(package, name):
    root = os.path.join(os.path.dirname(__import__(package).__file__), "extensions")
    for dirpath, _, files in os.walk(root):
        if f"{name}.duckdb_extension" in files:
            return os.path.join(dirpath, f"{name}.duckdb_extension")
con = duckdb.connect(config={"allow_unsigned_extensions": "true", "autoinstall_known_extensions": "false"})
con.execute(f"LOAD '{ext('duckdb_extension_avro', 'avro')}'")
con.execute(f"LOAD '{ext('duckdb_extension_iceberg', 'iceberg')}'")

def stats(meta_path):
    meta = json.load(open(meta_path))
    snaps = meta.get("snapshots", [])
    files = sum(int(s["summary"].get("added-data-files", 0)) + int(s["summary"].get("added-delete-files", 0)) for s in snaps)
    size = sum(int(s["summary"].get("added-files-size", 0)) for s in snaps)
    return len(snaps), files, size

# DuckDB applies millions of equality deletes slowly (over 10 minutes for the
# 5 M-event upsert tables here): above CHECK_UPSERT_MAX events the upsert
# tables are only timed.
check_upsert = n <= int(os.environ.get("CHECK_UPSERT_MAX", "1000000"))
results = {}
for engine, table, meta in [
    ("weir", "events", weir.load_table("bench.events").metadata_location),
    ("flink", "events", flink_meta("events")),
    ("weir", "accounts", weir.load_table("bench.accounts").metadata_location),
    ("flink", "accounts", flink_meta("accounts")),
]:
    path = meta.removeprefix("file://").removeprefix("file:")
    if table == "accounts" and not check_upsert:
        s, f, b = stats(path)
        print(f"{engine} {table}: {s} snapshots, {f} files, {b} bytes ({f / max(s, 1):.1f} files and {b / max(s, 1) / 1e6:.2f} MB per commit); rows not read at this size")
        continue
    rows = con.execute(f"SELECT id, key, amount, ts FROM iceberg_scan('{path}') ORDER BY key, id").fetchall()
    results[(engine, table)] = rows
    s, f, b = stats(path)
    print(f"{engine} {table}: {len(rows)} rows, {s} snapshots, {f} files, {b} bytes ({f / max(s, 1):.1f} files and {b / max(s, 1) / 1e6:.2f} MB per commit)")
assert len(results[("weir", "events")]) == n, "Weir's append table holds every event"
assert results[("weir", "events")] == results[("flink", "events")], "both append tables hold the same rows"
if check_upsert:
    assert results[("weir", "accounts")] == results[("flink", "accounts")], "both upsert tables hold the same rows (each key's last change)"
    print("both engines' tables hold the same rows")
else:
    print("both engines' append tables hold the same rows (upsert tables not read at this size; CHECK_UPSERT_MAX)")
PY

python3 - "$D/rows" <<'PY'
import sys
rows = [l.split(" | ") for l in open(sys.argv[1]).read().splitlines()]
by = {(r[0], r[1]): r for r in rows}
for table in ("append", "upsert"):
    w, f = by[(table, "weir")], by[(table, "flink")]
    print(f"{table}: Weir/Flink events/s {float(w[4]) / float(f[4]):.2f}x, per CPU-second {float(w[5]) / float(f[5]):.2f}x")
PY
