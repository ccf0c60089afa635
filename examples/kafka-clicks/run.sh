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
kafka_tool() { java -Xmx256m -XX:TieredStopAtLevel=1 -cp "$CP" "$@" 2> >(grep -v '^SLF4J\|WARN' >&2); }

DIR=$(mktemp -d)
cleanup() { [ -n "${BROKER:-}" ] && kill "$BROKER" 2>/dev/null && wait "$BROKER" 2>/dev/null; rm -rf "$DIR"; }
trap cleanup EXIT
cat > "$DIR/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
controller.quorum.bootstrap.servers=127.0.0.1:$CONTROLLER
log.dirs=$DIR/data
auto.create.topics.enable=false
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
PROPS
kafka_tool kafka.tools.StorageTool format --config "$DIR/server.properties" --cluster-id="$(kafka_tool kafka.tools.StorageTool random-uuid)" --standalone >/dev/null
java -Xmx512m -cp "$CP" kafka.Kafka "$DIR/server.properties" > "$DIR/broker.log" 2>&1 &
BROKER=$!
echo "broker starting on $WEIR_KAFKA (log: $DIR/broker.log)"
for _ in $(seq 120); do
  kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$WEIR_KAFKA" --list >/dev/null 2>&1 && break
  kill -0 $BROKER 2>/dev/null || { tail -20 "$DIR/broker.log"; exit 1; }
  sleep 0.5
done
kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$WEIR_KAFKA" --create --topic clicks --partitions 3 --replication-factor 1 >/dev/null
kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$WEIR_KAFKA" --create --topic clicks-per-user --partitions 2 --replication-factor 1 >/dev/null

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
