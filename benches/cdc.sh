#!/usr/bin/env bash
# Change data capture throughput: EVENTS Debezium change events (the
# PostgreSQL connector's JSON, without the schema envelope; a snapshot of
# KEYS rows, then updates of random keys (-U/+U pairs), 5 % deletes with their
# tombstones, 5 % inserts) in a local Kafka 4.4.0 topic of 4 partitions,
# filled beforehand; Weir reads them with format: debezium-json (until:
# latest) into an Iceberg upsert table keyed by id (sqlite catalog, local
# warehouse, key_by: $.id, parallelism 2, checkpoints every second), once
# straight and once through a keyed changelog operator (plugins/mask, masking
# `email` in every row, key_by: $.id, parallelism 2), one after the other on
# the same topic. Prints wall, CPU (user + sys, GNU time) and change events
# per CPU-second of each `weir run`, and the broker's CPU meanwhile. Not part
# of CI.
#
#   benches/cdc.sh [EVENTS [KEYS]]      # default 1000000 100000
#
# Needs java 17, mvn, python3, a built weir (WEIR, default
# $CARGO_TARGET_DIR/release/weir) and mask.wasm (`make plugins`); fetches Kafka 4.4.0
# (tests/services/poms/kafka/pom.xml) once, under $T/services/kafka/libs.
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${1:-1000000}
KEYS=${2:-100000}
T=${CARGO_TARGET_DIR:-target}
LIBS=$T/services/kafka/libs
KAFKA_POM=tests/services/poms/kafka/pom.xml
WEIR=${WEIR:-$T/release/weir}
[ -x "$WEIR" ] || { echo "cdc.sh: no $WEIR: build it first (cargo build --release)" >&2; exit 1; }
MASK=${WEIR_PLUGINS:-$T/wasm32-wasip2/release}/mask.wasm
[ -f "$MASK" ] || { echo "cdc.sh: no $MASK: run 'make plugins' first" >&2; exit 1; }
if [ ! -f "$LIBS/kafka_2.13-4.4.0.jar" ]; then # shared with the tests: never removed here
    mvn -q -B -f "$KAFKA_POM" dependency:copy-dependencies -DoutputDirectory="$(realpath -m "$LIBS")" -DincludeScope=runtime
    cp "$KAFKA_POM" "$T/services/kafka/fetched-pom.xml"
fi
CP="$LIBS/*"
source tests/services/kafka-broker.sh
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
BOOTSTRAP=127.0.0.1:$PORT
DIR=$(mktemp -d)
trap kafka_cleanup EXIT
kafka_start "$DIR" "$PORT" "$(free_port)"
kafka_topic "$BOOTSTRAP" cdc.public.accounts 4

echo "producing $EVENTS change events over $KEYS keys into cdc.public.accounts (4 partitions)" >&2
python3 - "$EVENTS" "$KEYS" > "$DIR/changes" <<'PY'
import json, random, sys
random.seed(7)
n, keys = int(sys.argv[1]), int(sys.argv[2])
rows, made, out = {}, 0, sys.stdout
def row(i):
    return {"id": i, "name": f"user-{i}-{random.randrange(1 << 20)}", "balance": random.randrange(-5000, 5000), "email": f"u{i}@example.com"}
def emit(i, op, before, after):
    global made
    made += 1
    ev = {"before": before, "after": after, "source": {"version": "3.6.1.Final", "connector": "postgresql", "name": "cdc", "ts_ms": 1760000000000 + made,
          "db": "shop", "schema": "public", "table": "accounts", "txId": made, "lsn": made * 64}, "op": op, "ts_ms": 1760000000000 + made}
    out.write(f'{{"id":{i}}}\t{json.dumps(ev, separators=(",", ":"))}\n')
for i in range(min(keys, n)):
    rows[i] = row(i)
    emit(i, "r", None, rows[i])
next_id = len(rows)
ids = list(rows)
while made < n:
    p = random.random()
    if p < 0.05 and len(rows) > 10:
        i = random.choice(ids)
        if i in rows:
            emit(i, "d", rows.pop(i), None)
            out.write(f'{{"id":{i}}}\t\n')  # the tombstone (an empty value here; the source skips none: see below)
    elif p < 0.10:
        rows[next_id] = row(next_id)
        emit(next_id, "c", None, rows[next_id])
        ids.append(next_id)
        next_id += 1
    else:
        i = random.choice(ids)
        if i in rows:
            new = row(i)
            emit(i, "u", rows[i], new)
            rows[i] = new
PY
# ConsoleProducer sends an empty line's value as an empty string, not a null
# tombstone: leave the tombstones out of the topic (the source skips them anyway).
grep -v $'\t$' "$DIR/changes" | kafka_tool org.apache.kafka.tools.ConsoleProducer --bootstrap-server "$BOOTSTRAP" --topic cdc.public.accounts \
    --reader-property parse.key=true --reader-property key.separator=$'\t' \
    --command-property linger.ms=20 --command-property batch.size=262144 --command-property acks=all
ROWS=$(grep -vc $'\t$' "$DIR/changes")
# One run of the pipeline: case NAME, with OPERATORS (YAML) before the sink
# reading INPUT.
run_case() {
    local name=$1 operators=$2 input=$3
    cat > "$DIR/$name.yaml" <<YAML
name: cdc-bench-$name
state: {dir: $DIR/state-$name}
checkpoint: {interval: 1s}
sources: [{name: pg, type: kafka, bootstrap: '$BOOTSTRAP', topic: cdc.public.accounts, group: cdc-bench-$name, format: debezium-json, key_format: json, until: latest}]
$operators
sinks:
  - name: lake
    type: iceberg
    input: $input
    key_by: \$.id
    parallelism: 2
    catalog: {type: sql, uri: 'sqlite://$DIR/catalog.db', warehouse: '$DIR/warehouse'}
    table: bench.accounts_$name
    mode: upsert
    key: [id]
    schema: [{name: id, type: long, required: true}, {name: name, type: string}, {name: balance, type: long}, {name: email, type: string}]
    partition: ['bucket(8, id)']
YAML
    local b0 b1
    b0=$(ticks $BROKER)
    /usr/bin/time -f '%e %U %S %M' -o "$DIR/time" "$WEIR" run --progress 0 --log warn "$DIR/$name.yaml" >/dev/null
    b1=$(ticks $BROKER)
    read -r wall user sys rss < "$DIR/time"
    python3 - "$name" "$ROWS" "$wall" "$user" "$sys" "$rss" "$b0" "$b1" "$HZ" <<'PY'
import sys
name, n, wall, user, sys_, rss, b0, b1, hz = sys.argv[1:]
n, wall, cpu = int(n), float(wall), float(user) + float(sys_)
print(f"| {name} | {n} | {wall:.2f} | {cpu:.2f} | {n / wall:,.0f} | {n / cpu:,.0f} | {int(rss) / 1024:.0f} | {(int(b1) - int(b0)) / int(hz):.2f} |")
PY
}
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
echo "| pipeline | change events | wall s | CPU s (user + sys) | events/s | events per CPU-second | peak RSS MB | broker CPU s meanwhile |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
run_case straight "" pg
run_case mask "operators: [{name: mask, plugin: '$MASK', input: pg, key_by: \$.id, parallelism: 2, config: {fields: email}}]" mask
