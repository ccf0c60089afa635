#!/usr/bin/env bash
# Kafka -> key_by -> keyed count -> Kafka, exactly-once, on Weir and on Apache
# Flink 2.3, one after the other against the same local single-node KRaft
# broker (Kafka 4.4.0), parallelism 2 each, checkpoints every second. Prints
# wall time, CPU time, events/s and events per CPU-second of both, and
# Weir/Flink. Not part of CI; builds nothing of Weir's.
#
#   benches/flink/kafka.sh [EVENTS]        # default 1000000
#
# The input topic (4 partitions) holds EVENTS keyed events, keys from a
# skewed vocabulary (10 000 words, Zipf s = 1), produced once before both
# runs. Weir runs a generated spec (kafka source, until: latest -> count
# stage of word_count.wasm, key_by: key -> kafka sink, exactly-once);
# Flink runs benches/flink/KafkaCount.java (KafkaSource bounded at latest ->
# keyBy -> KeyedProcessFunction with ValueState<Long> -> KafkaSink
# EXACTLY_ONCE) into another output topic. Each output topic is then read
# read_committed and must hold exactly EVENTS records, every key's counts
# 1..n once each (KafkaCheck.java).
#
# Needs java/javac 17, mvn, python3; a built weir (WEIR, default
# $CARGO_TARGET_DIR/release/weir) and word_count.wasm (WEIR_PLUGINS, default
# the first of $T/wasm32-wasip2/release and $T/guests/wasm32-wasip2/release
# holding it). Fetches Flink 2.3 (PyPI wheel apache-flink-libraries, as
# run.sh), the Kafka connector (kafka-pom.xml) and Kafka 4.4.0
# (tests/services/poms/kafka/pom.xml) once, under $T.
#
#   PARALLELISM=2          of Weir's count operator and of Flink's job
#   LATENCY_RATE=N         also measure end-to-end latency at N events/s (e.g. 20000)
#                          (unbounded jobs started 10 s before, then
#                          LATENCY_SECONDS=30 of input at that rate, the first
#                          LATENCY_WARMUP=10 s of it left out); 0 skips it.
#                          Latency = arrival at a read_committed consumer of
#                          the output minus the input record's timestamp
#   WEIR_KAFKA_PORT        the broker's port (default: a free one)
#   KEEP=1                 keep the temporary directory (logs, spec)
set -euo pipefail
cd "$(dirname "$0")/../.."
EVENTS=${1:-1000000}
PARALLELISM=${PARALLELISM:-2}
LATENCY_RATE=${LATENCY_RATE:-0}
LATENCY_SECONDS=${LATENCY_SECONDS:-30}
LATENCY_WARMUP=${LATENCY_WARMUP:-10}
T=${CARGO_TARGET_DIR:-target}
OUT=$T/flink
FLINK_LIB=$OUT/pyflink/pyflink/lib
CONNECTOR_LIBS=$OUT/kafka-libs
CLASSES=$OUT/kafka-classes
LIBS=$T/services/kafka/libs
KAFKA_POM=tests/services/poms/kafka/pom.xml
WEIR=${WEIR:-$T/release/weir}
if [ -z "${WEIR_PLUGINS:-}" ]; then
    for d in "$T/wasm32-wasip2/release" "$T/guests/wasm32-wasip2/release"; do
        [ -f "$d/word_count.wasm" ] && { WEIR_PLUGINS=$d; break; }
    done
fi
export WEIR_PLUGINS=${WEIR_PLUGINS:-$T/wasm32-wasip2/release}

for tool in java javac mvn python3; do
    command -v $tool >/dev/null || { echo "kafka.sh: $tool is missing (apt-get install openjdk-17-jdk-headless maven python3)" >&2; exit 1; }
done
[ -x "$WEIR" ] || { echo "kafka.sh: no $WEIR: build it first (cargo build --release -p weir-cli)" >&2; exit 1; }
[ -f "$WEIR_PLUGINS/word_count.wasm" ] || { echo "kafka.sh: no $WEIR_PLUGINS/word_count.wasm: run 'make plugins' first" >&2; exit 1; }

# Fetch, once: Flink 2.3, its Kafka connector, Kafka 4.4.0.
mkdir -p "$OUT"
if [ ! -f "$FLINK_LIB/flink-dist-2.3.0.jar" ]; then
    python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$OUT/pyflink" apache-flink-libraries==2.3.0
fi
if ! cmp -s benches/flink/kafka-pom.xml "$CONNECTOR_LIBS/fetched-pom.xml"; then
    rm -rf "$CONNECTOR_LIBS"
    mvn -q -B -f benches/flink/kafka-pom.xml dependency:copy-dependencies -DoutputDirectory="$(realpath -m "$CONNECTOR_LIBS")"
    cp benches/flink/kafka-pom.xml "$CONNECTOR_LIBS/fetched-pom.xml"
fi
if [ ! -f "$LIBS/kafka_2.13-4.4.0.jar" ]; then # shared with the tests: never removed here
    mvn -q -B -f "$KAFKA_POM" dependency:copy-dependencies -DoutputDirectory="$(realpath -m "$LIBS")" -DincludeScope=runtime
    cp "$KAFKA_POM" "$T/services/kafka/fetched-pom.xml"
fi
mkdir -p "$CLASSES"
javac -cp "$FLINK_LIB/*:$CONNECTOR_LIBS/*" -d "$CLASSES" benches/flink/KafkaCount.java
javac -cp "$LIBS/*" -d "$CLASSES" benches/flink/KafkaCheck.java

CP="$LIBS/*"
source tests/services/kafka-broker.sh
check() { java -Xmx1g -cp "$CLASSES:$CP" KafkaCheck "$@" 2> >(grep -v '^SLF4J' >&2); }

# The broker (tests/services/kafka-broker.sh).
PORT=${WEIR_KAFKA_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
CONTROLLER=${WEIR_KAFKA_CONTROLLER_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
BOOTSTRAP=127.0.0.1:$PORT
DIR=$(mktemp -d)
trap kafka_cleanup EXIT
kafka_start "$DIR" "$PORT" "$CONTROLLER"
topic() { kafka_topic "$BOOTSTRAP" "$1" "$2"; }
topic events 4
topic weir-counts 4
topic flink-counts 4

echo "producing $EVENTS events into 'events' (4 partitions)" >&2
python3 - "$EVENTS" <<'PY' | kafka_tool org.apache.kafka.tools.ConsoleProducer --bootstrap-server "$BOOTSTRAP" --topic events \
    --reader-property parse.key=true --reader-property key.separator=$'\t' \
    --command-property linger.ms=20 --command-property batch.size=262144 --command-property acks=all
import itertools, random, sys
random.seed(7)
n = int(sys.argv[1])
vocab = [f"w{i}" for i in range(10_000)]          # as KafkaCheck's latency input
cum = list(itertools.accumulate(1.0 / (i + 1) for i in range(len(vocab))))  # Zipf, s = 1
out = sys.stdout
for i, w in enumerate(random.choices(vocab, cum_weights=cum, k=n)):
    out.write(f'{w}\t{{"word":"{w}","seq":{i}}}\n')
PY

# CPU ticks (user + sys) of a process so far.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
# run NAME COMMAND...: wall, user+sys of COMMAND (GNU time), the broker's CPU meanwhile.
run() {
    local name=$1; shift
    local b0; b0=$(ticks $BROKER)
    /usr/bin/time -f "%e %U %S" -o "$DIR/$name.time" "$@" > "$DIR/$name.out" 2> "$DIR/$name.log" \
        || { echo "== $name failed:" >&2; tail -30 "$DIR/$name.log" >&2; return 1; }
    local b1; b1=$(ticks $BROKER)
    read -r wall user sys < <(tail -1 "$DIR/$name.time")
    echo "$name $wall $(python3 -c "print(round($user + $sys, 2))") $(python3 -c "print(round(($b1 - $b0) / $HZ, 2))")" >> "$DIR/results"
    echo "$name: wall ${wall}s, cpu $(python3 -c "print(round($user + $sys, 2))")s (broker meanwhile $(python3 -c "print(round(($b1 - $b0) / $HZ, 2))")s)" >&2
}
command -v /usr/bin/time >/dev/null || { echo "kafka.sh: needs GNU time (apt-get install time)" >&2; exit 1; }

spec() { # spec OUT_TOPIC [bounded]
    cat <<YAML
name: kafka-count
state:
  dir: $DIR/weir-state-$1
checkpoint:
  interval: 1s
sources:
  - name: events
    type: kafka
    bootstrap: $BOOTSTRAP
    topic: ${3:-events}
    group: weir-kafka-count
$([ "$2" = bounded ] && echo "    until: latest")
operators:
  - name: count
    plugin: $WEIR_PLUGINS/word_count.wasm
    input: events
    key_by: key
    parallelism: $PARALLELISM
    config:
      stage: count
sinks:
  - name: out
    type: kafka
    bootstrap: $BOOTSTRAP
    topic: $1
    input: count
YAML
}
spec weir-counts bounded > "$DIR/weir.yaml"
# Compile the plugin into Weir's cache first, so the timed run does not.
"$WEIR" validate "$DIR/weir.yaml" > /dev/null

: > "$DIR/results"
echo "== Weir: $WEIR run (parallelism $PARALLELISM)" >&2
run weir "$WEIR" run "$DIR/weir.yaml" --progress 0
echo "== Flink 2.3: KafkaCount (parallelism $PARALLELISM)" >&2
run flink java -cp "$CLASSES:$FLINK_LIB/*:$CONNECTOR_LIBS/*" KafkaCount "$BOOTSTRAP" events flink-counts "$PARALLELISM" "$DIR/flink-checkpoints"
grep "finished in" "$DIR/weir.log" >&2 || true
grep '^flink ' "$DIR/flink.out" >&2 || true

echo "== reading the output topics, read_committed" >&2
VERIFIED=""
FAILED=0
for t in weir-counts flink-counts; do
    r=$(check count "$BOOTSTRAP" $t "$EVENTS") || FAILED=1
    echo "$t: $r" >&2
    VERIFIED+="$t: $r; "
done

LAT=""
if [ "$LATENCY_RATE" != 0 ]; then
    for who in weir flink; do
        topic "lat-in-$who" 4
        topic "lat-out-$who" 4
        if [ $who = weir ]; then
            spec "lat-out-$who" unbounded "lat-in-$who" > "$DIR/weir-lat.yaml"
            "$WEIR" run "$DIR/weir-lat.yaml" --progress 0 > "$DIR/weir-lat.log" 2>&1 &
        else
            java -cp "$CLASSES:$FLINK_LIB/*:$CONNECTOR_LIBS/*" KafkaCount "$BOOTSTRAP" "lat-in-$who" "lat-out-$who" "$PARALLELISM" "$DIR/flink-lat-checkpoints" unbounded > "$DIR/flink-lat.log" 2>&1 &
        fi
        JOB=$!
        sleep 10 # started, assigned its partitions
        r=$(check latency "$BOOTSTRAP" "lat-in-$who" "lat-out-$who" "$LATENCY_RATE" "$LATENCY_SECONDS" "$LATENCY_WARMUP")
        echo "$who: $r" >&2
        LAT+="$who $r"$'\n'
        kill $JOB; wait $JOB 2>/dev/null || true
        JOB=""
    done
fi

python3 - "$DIR/results" "$EVENTS" "$PARALLELISM" "$VERIFIED" "$LAT" <<'PY'
import re, sys
rows = {l.split()[0]: [float(x) for x in l.split()[1:]] for l in open(sys.argv[1]) if l.strip()}
n, p, verified, lat = int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
print()
print(f"Kafka -> key_by -> keyed count -> Kafka, exactly-once, {n} events, parallelism {p} each, checkpoints every 1 s")
print("(wall and CPU of the whole process, JVM start included; broker CPU = the broker's during the run)")
print()
print("| | Weir | Flink 2.3 | Weir / Flink |")
print("|---|---:|---:|---:|")
(ww, wc, wb), (fw, fc, fb) = rows["weir"], rows["flink"]
print(f"| wall s | {ww:.2f} | {fw:.2f} | {ww / fw:.2f} |")
print(f"| CPU s (user + sys) | {wc:.2f} | {fc:.2f} | {wc / fc:.2f} |")
print(f"| events/s | {n / ww:,.0f} | {n / fw:,.0f} | {fw / ww:.2f} |")
print(f"| events per CPU-second | {n / wc:,.0f} | {n / fc:,.0f} | {fc / wc:.2f} |")
print(f"| broker CPU s meanwhile | {wb:.2f} | {fb:.2f} | {wb / fb:.2f} |")
m = re.search(r'flink wall_s=([\d.]+) cpu_s=([\d.]+)', open(sys.argv[1].rsplit('/', 1)[0] + '/flink.out').read())
if m:
    jw, jc = float(m[1]), float(m[2])
    print(f"| Flink's job alone (execute() to its end): wall s, CPU s | | {jw:.2f}, {jc:.2f} | {ww / jw:.2f}, {wc / jc:.2f} |")
    print(f"| the same: events/s, events per CPU-second | | {n / jw:,.0f}, {n / jc:,.0f} | {jw / ww:.2f}, {jc / wc:.2f} |")
if lat.strip():
    l = {}
    for line in lat.strip().splitlines():
        who = line.split()[0]
        l[who] = dict(re.findall(r'(\w+)=(\d+)', line))
    if all('p50_ms' in l.get(w, {}) for w in ("weir", "flink")):
        w, f = l["weir"], l["flink"]
        print(f"| latency p50 ms at {w['rate']} ev/s | {w['p50_ms']} | {f['p50_ms']} | {int(w['p50_ms']) / max(1, int(f['p50_ms'])):.2f} |")
        print(f"| latency p99 ms | {w['p99_ms']} | {f['p99_ms']} | {int(w['p99_ms']) / max(1, int(f['p99_ms'])):.2f} |")
        print(f"| latency max ms | {w['max_ms']} | {f['max_ms']} | {int(w['max_ms']) / max(1, int(f['max_ms'])):.2f} |")
    else:
        print(f"latency: {lat.strip()}")
print()
print(f"output, read_committed: {verified.strip()}")
for line in lat.strip().splitlines():
    print(f"latency run: {line}")
PY
exit $FAILED
