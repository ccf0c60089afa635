#!/usr/bin/env bash
# The kafka-clicks example from scratch: fetches Apache Kafka 4.4.0 with Maven
# (once, into the target directory, where the tests keep it too), starts a
# single-node KRaft broker on 127.0.0.1:19092 in a temporary directory,
# creates the topics, produces a click stream, runs the pipeline, prints the
# windows a read_committed consumer sees, and stops the broker.
#
#   examples/kafka-clicks/run.sh [clicks]      # default 2000 clicks
#
# Needs java (17) and mvn; `make plugins` builds window_count.wasm.
set -euo pipefail
cd "$(dirname "$0")/../.."
CLICKS=${1:-2000}
PORT=${WEIR_KAFKA_PORT:-19092}
CONTROLLER=$((PORT + 1))
TARGET=${CARGO_TARGET_DIR:-target}
LIBS=$TARGET/services/kafka/libs
POM=tests/services/poms/kafka/pom.xml
WEIR=${WEIR:-$TARGET/release/weir}
export WEIR_PLUGINS=${WEIR_PLUGINS:-$TARGET/wasm32-wasip2/release}
export WEIR_KAFKA=127.0.0.1:$PORT

for tool in java mvn; do
  command -v $tool >/dev/null || { echo "run.sh: $tool is missing (apt install openjdk-17-jre-headless maven)" >&2; exit 1; }
done
[ -x "$WEIR" ] || { echo "run.sh: no $WEIR: run 'make build' first" >&2; exit 1; }
[ -f "$WEIR_PLUGINS/window_count.wasm" ] || { echo "run.sh: no $WEIR_PLUGINS/window_count.wasm: run 'make plugins' first" >&2; exit 1; }
if ! cmp -s "$POM" "$TARGET/services/kafka/fetched-pom.xml"; then
  echo "fetching Kafka 4.4.0 into $LIBS"
  rm -rf "$LIBS"
  mvn -q -B -f "$POM" dependency:copy-dependencies -DoutputDirectory="$PWD/$LIBS" -DincludeScope=runtime
  cp "$POM" "$TARGET/services/kafka/fetched-pom.xml"
fi
CP="$LIBS/*"
source tests/services/kafka-broker.sh

DIR=$(mktemp -d)
cleanup() { [ -n "${BROKER:-}" ] && kill "$BROKER" 2>/dev/null && wait "$BROKER" 2>/dev/null; rm -rf "$DIR"; }
trap cleanup EXIT
KAFKA_HEAP=512m kafka_start "$DIR" "$PORT" "$CONTROLLER"
kafka_topic "$WEIR_KAFKA" clicks 3
kafka_topic "$WEIR_KAFKA" clicks-per-user 2

echo "producing $CLICKS clicks of 8 users over $((CLICKS / 60 + 1)) minutes"
python3 - "$CLICKS" <<'PY' | kafka_tool org.apache.kafka.tools.ConsoleProducer --bootstrap-server "$WEIR_KAFKA" --topic clicks --reader-property parse.key=true --reader-property key.separator=$'\t'
import json, random, sys
random.seed(7)
t = 1767225600000  # 2026-01-01T00:00:00Z
for i in range(int(sys.argv[1])):
    user = f"user-{random.randrange(8)}"
    t += random.randrange(2000)
    print(user, json.dumps({"user": user, "page": random.choice(["/", "/cart", "/pay"]), "ts": t}), sep="\t")
PY

rm -rf out/kafka-clicks-state
"$WEIR" run examples/kafka-clicks/pipeline.yaml --progress 0
echo "windows in clicks-per-user (read_committed):"
kafka_tool org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "$WEIR_KAFKA" --topic clicks-per-user \
  --from-beginning --timeout-ms 5000 --command-property isolation.level=read_committed 2>/dev/null | sort | head -20
echo "..."
