#!/usr/bin/env bash
# The cdc-lakehouse example from scratch: starts PostgreSQL (with logical
# decoding), a Kafka broker and a Kafka Connect worker running Debezium's
# PostgreSQL connector (the services the tests use, fetched once with Maven
# into the target directory), creates `accounts` (setup.sql), runs
# pipeline.yaml, and makes changes while it runs: after each round, the
# Iceberg table (read by DuckDB, an independent reader) is compared with
# `SELECT * FROM accounts` (emails masked) until it has caught up. Halfway the
# job is killed with kill -9 and started again. At the end: the lag from a
# commit in PostgreSQL to the Iceberg snapshot holding it.
#
#   examples/cdc-lakehouse/run.sh [rounds]     # default 6 rounds of 40 transactions
#
# Needs java (17), mvn, PostgreSQL's server (apt install openjdk-17-jre-headless
# maven postgresql), python3 with pip; `make build` (weir and mask.wasm).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-6}
TARGET=${CARGO_TARGET_DIR:-target}
WEIR=${WEIR:-$TARGET/release/weir}
SERVICES=${WEIR_SERVICES:-$TARGET/release/weir-services}
export WEIR_PLUGINS=${WEIR_PLUGINS:-$TARGET/wasm32-wasip2/release}
DUCKDB_SITE=$TARGET/services/py-duckdb/site

[ -x "$WEIR" ] || { echo "run.sh: no $WEIR: run 'make build' first" >&2; exit 1; }
[ -f "$WEIR_PLUGINS/mask.wasm" ] || { echo "run.sh: no $WEIR_PLUGINS/mask.wasm: run 'make plugins' first" >&2; exit 1; }
for tool in java mvn python3; do
  command -v $tool >/dev/null || { echo "run.sh: $tool is missing" >&2; exit 1; }
done
if [ -z "${WEIR_SERVICES:-}" ] && { [ ! -x "$SERVICES" ] || [ -n "$(find tests/services/src -newer "$SERVICES" -name '*.rs')" ]; }; then
  cargo build --release -q -p weir-test-services --bin weir-services
fi
if [ ! -f "$DUCKDB_SITE/duckdb/__init__.py" ]; then
  echo "installing DuckDB 1.5.5 with its iceberg extension into $DUCKDB_SITE"
  python3 -m pip install --quiet --disable-pip-version-check --target "$DUCKDB_SITE" \
    duckdb==1.5.5 duckdb-extension-iceberg==1.5.5 duckdb-extension-avro==1.5.5
fi

DIR=$(mktemp -d)
JOB=
cleanup() {
  set +e
  [ -n "$JOB" ] && kill "$JOB" 2>/dev/null && wait "$JOB" 2>/dev/null
  # Closing its input stops the services.
  [ -n "${SVC_PID:-}" ] && exec {SVC[1]}>&- && wait "$SVC_PID" 2>/dev/null
  rm -rf "$DIR"
}
trap cleanup EXIT

echo "starting PostgreSQL, Kafka and Kafka Connect with Debezium (the first run fetches the jars)..."
coproc SVC { "$SERVICES" cdc examples/cdc-lakehouse/setup.sql public.accounts; }
while read -r line <&"${SVC[0]}"; do
  case $line in
    READY) break ;;
    *=*) export "${line?}"; echo "  $line" ;;
  esac
done
[ -n "${KAFKA:-}" ] || { echo "run.sh: the services did not start" >&2; exit 1; }
psql_() { "$PSQL" -X -q -h 127.0.0.1 -p "$PGPORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -Atc "$1"; }

export WEIR_KAFKA=$KAFKA WEIR_STATE=$DIR/state WEIR_LAKE=$DIR/lake
mkdir -p "$WEIR_LAKE"
start_job() {
  "$WEIR" run examples/cdc-lakehouse/pipeline.yaml --progress 0 2> "$DIR/weir.log" &
  JOB=$!
}

# Seeded transactions on accounts: updates of hot rows, inserts, deletes, a
# delete and re-insert, and one transaction updating many rows.
round() {
  python3 - "$1" <<'PY' | while IFS= read -r sql; do psql_ "$sql"; done
import random, sys
r = random.Random(int(sys.argv[1]))
for t in range(40):
    k = r.randrange(10)
    if k < 5:
        i = r.randrange(1, 60)
        print(f"update accounts set balance = balance + {r.randrange(-50, 100)}, name = 'hot-{i}-{sys.argv[1]}-{t}' where id = {i}")
    elif k < 7:
        print(f"insert into accounts (id, name, balance, email) values ({100000 + int(sys.argv[1]) * 100 + t}, 'new', 0, 'n{t}@example.com')")
    elif k < 8:
        print(f"delete from accounts where id = {r.randrange(1, 1000)}")
    elif k < 9:
        i = r.randrange(1, 1000)
        print(f"begin; delete from accounts where id = {i}; insert into accounts (id, name, balance, email) values ({i}, 'again', -1, null); commit")
    else:
        print(f"update accounts set email = null where id % 50 = {r.randrange(50)}")
PY
}

# Wait until the lake equals the table (emails masked); prints how long it took.
catch_up() {
  local start=$SECONDS
  until PYTHONPATH=$DUCKDB_SITE python3 - "$WEIR_LAKE/catalog.db" "$(psql_ "select coalesce(json_agg(a order by id), '[]') from accounts a")" <<'PY'
import json, subprocess, sys
db = json.loads(sys.argv[2])
for r in db:
    if r["email"] is not None:
        r["email"] = "***"
out = subprocess.run([sys.executable, "tests/iceberg/read_duckdb.py", sys.argv[1], "weir", "shop.accounts"],
                     capture_output=True, text=True)
if out.returncode != 0:
    sys.exit(1)  # no table yet
lake = sorted(json.loads(out.stdout)["rows"], key=lambda r: r["id"])
sys.exit(0 if lake == db else 1)
PY
  do
    if ! kill -0 "$JOB" 2>/dev/null; then echo "the job stopped:" >&2; tail -20 "$DIR/weir.log" >&2; exit 1; fi
    if [ $((SECONDS - start)) -gt 120 ]; then echo "the lake did not catch up within 120 s" >&2; exit 1; fi
    sleep 0.5
  done
  echo "  the Iceberg table equals SELECT * FROM accounts (emails masked) after $((SECONDS - start)) s: $(psql_ 'select count(*) from accounts') rows"
}

start_job
echo "the job runs (pid $JOB); the initial snapshot of 1000 rows:"
catch_up
STEADY=$(($(date +%s%3N)))
for r in $(seq "$ROUNDS"); do
  echo "round $r: 40 transactions"
  round "$r"
  if [ "$r" -eq $((ROUNDS / 2)) ]; then
    echo "  kill -9 of the job, and a new start from its last checkpoint"
    kill -9 "$JOB"; wait "$JOB" 2>/dev/null || true
    start_job
  fi
  catch_up
done

echo "a few rows of the lake:"
PYTHONPATH=$DUCKDB_SITE python3 tests/iceberg/read_duckdb.py "$WEIR_LAKE/catalog.db" weir shop.accounts \
  | python3 -c 'import json,sys; [print("  ", json.dumps(r)) for r in sorted(json.load(sys.stdin)["rows"], key=lambda r: r["id"])[:5]]'
echo "lag from PostgreSQL to the Iceberg snapshot (row versions since the first round, kill and restart included):"
PYTHONPATH=$DUCKDB_SITE python3 tests/iceberg/lag_duckdb.py "$WEIR_LAKE/catalog.db" weir shop.accounts --key id --changed changed_at --since "$STEADY" \
  | python3 -c '
import json, sys
lag = sorted(r["lag_ms"] for r in json.load(sys.stdin))
q = lambda p: lag[max(0, -(-len(lag) * p // 100) - 1)]
print(f"   {len(lag)} row versions: p50 {q(50)} ms, p99 {q(99)} ms, max {lag[-1]} ms")'
