#!/usr/bin/env bash
# Iceberg append sink throughput: N generated events (parallelism 2, checkpoints
# every second) into an Iceberg table (sqlite catalog, local warehouse, Parquet
# zstd, partitioned by bucket(8, id)), and the same events into the exactly-once
# file sink (JSON lines) in the same run, for the ratio. Wall and CPU (user +
# sys) of each `weir run` by GNU time; files and bytes per commit from the
# snapshot summaries, read with PyIceberg.
#   benches/iceberg.sh [N]     (default 1000000; needs target/release/weir)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
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
measure "$D/ice.yaml" iceberg
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
print(f"\niceberg: {rows} rows in {len(snaps)} snapshots; per commit {sum(files)/len(snaps):.1f} files, {sum(size)/len(snaps)/1e6:.2f} MB; total {sum(size)/1e6:.1f} MB Parquet")
PY
du -sb "$D/out" | awk '{printf "file sink: %.1f MB of JSON lines\n", $1/1e6}'
