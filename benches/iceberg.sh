#!/usr/bin/env bash
# Iceberg sink throughput: N generated events (parallelism 2, checkpoints
# every second) into an Iceberg table (sqlite catalog, local warehouse, Parquet
# zstd, partitioned by bucket(8, id)); the same events as a change stream (N
# keys drawn at random, 5 % deletes) into an upsert table keyed by `key`
# (bucket(8, key)); and into the exactly-once file sink (JSON lines), all in
# the same run, for the ratios. Wall and CPU (user +
# sys) of each `weir run` by GNU time; files and bytes per commit from the
# snapshot summaries, read with PyIceberg.
#   benches/iceberg.sh [N [KEYS]]   (default 1000000, KEYS = N; needs target/release/weir)
# The upsert stream draws its keys from KEYS: N = 1111111 and KEYS = 5300000
# make ~1 M distinct keys with ~10 % of the events updates of a key.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
KEYS=${2:-$N}
T=${CARGO_TARGET_DIR:-target}
W="$T/release/weir"
SITE="$T/services/py-pyiceberg/site"
[ -d "$SITE" ] || python3 -m pip install --quiet --disable-pip-version-check --target "$SITE" \
  'pyiceberg[sql-sqlite,pyarrow]==0.12.0' 'pyarrow==26.0.1' 'sqlalchemy==2.1.9'
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
gen="{name: gen, type: generator, count: $N, keys: 100000, seed: 1, parallelism: 2}"
cat > "$D/ice.yaml" <<YAML
name: ice-bench
state: {dir: $D/state-ice}
checkpoint: {interval: 1s}
sources: [$gen]
sinks:
  - name: lake
    type: iceberg
    input: gen
    parallelism: 2
    catalog: {type: sql, uri: 'sqlite://$D/catalog.db', warehouse: '$D/warehouse'}
    table: bench.events
    schema: [{name: id, type: long, required: true}, {name: key, type: string}, {name: amount, type: long}, {name: ts, type: long}]
    partition: ['bucket(8, id)']
YAML
cat > "$D/upsert.yaml" <<YAML
name: upsert-bench
state: {dir: $D/state-upsert}
checkpoint: {interval: 1s}
sources: [{name: gen, type: generator, count: $N, keys: $KEYS, seed: 1, deletes: 0.05, parallelism: 2}]
sinks:
  - name: lake
    type: iceberg
    input: gen
    parallelism: 2
    key_by: \$.key
    catalog: {type: sql, uri: 'sqlite://$D/catalog.db', warehouse: '$D/warehouse'}
    table: bench.accounts
    mode: upsert
    key: [key]
    deleted_field: __deleted
    schema: [{name: id, type: long, required: true}, {name: key, type: string, required: true}, {name: amount, type: long}, {name: ts, type: long}]
    partition: ['bucket(8, key)']
YAML
cat > "$D/file.yaml" <<YAML
name: file-bench
state: {dir: $D/state-file}
checkpoint: {interval: 1s}
sources: [$gen]
sinks: [{name: out, type: file, input: gen, parallelism: 2, path: '$D/out'}]
YAML
measure() {
  /usr/bin/time -f '%e %U %S' -o "$D/time" "$W" run --progress 0 --log warn "$1" >/dev/null
  read -r wall user sys < "$D/time"
  cpu=$(echo "$user + $sys" | bc)
  echo "$2 | $wall | $cpu | $(echo "$N / $wall" | bc) | $(echo "$N / $cpu" | bc)"
}
echo "| sink | wall s | CPU s | events/s | events per CPU-second |"
echo "|---|---:|---:|---:|---:|"
measure "$D/ice.yaml" "iceberg append"
measure "$D/upsert.yaml" "iceberg upsert"
measure "$D/file.yaml" "file (JSON lines)"
PYTHONPATH="$SITE" python3 - "$D" <<'PY'
import sys
from pyiceberg.catalog.sql import SqlCatalog
d = sys.argv[1]
t = SqlCatalog("weir", uri=f"sqlite:///{d}/catalog.db", warehouse=f"file://{d}/warehouse").load_table("bench.events")
snaps = sorted(t.metadata.snapshots, key=lambda s: s.sequence_number)
files = [int(s.summary["added-data-files"]) for s in snaps]
size = [int(s.summary["added-files-size"]) for s in snaps]
rows = int(snaps[-1].summary["total-records"])
print(f"\niceberg append: {rows} rows in {len(snaps)} snapshots; per commit {sum(files)/len(snaps):.1f} files, {sum(size)/len(snaps)/1e6:.2f} MB; total {sum(size)/1e6:.1f} MB Parquet")
# The upsert table (equality deletes: PyIceberg reads its metadata, not its rows).
t = SqlCatalog("weir", uri=f"sqlite:///{d}/catalog.db", warehouse=f"file://{d}/warehouse").load_table("bench.accounts")
snaps = sorted(t.metadata.snapshots, key=lambda s: s.sequence_number)
last = snaps[-1].summary.additional_properties
get = lambda k: int(last.get(k, 0))
print(f"iceberg upsert: {len(snaps)} snapshots; {get('total-data-files')} data files ({get('total-records')} rows), "
      f"{get('total-delete-files')} delete files ({get('total-equality-deletes')} equality, {get('total-position-deletes')} position deletes); "
      f"{get('total-files-size')/1e6:.1f} MB")
PY
du -sb "$D/out" | awk '{printf "file sink: %.1f MB of JSON lines\n", $1/1e6}'
