# A single-node KRaft Kafka broker for the shell scripts (benchmarks and
# examples), as the Rust tests' KafkaBroker starts it: sourced, it defines
#   kafka_tool CLASS ARGS...             run a Kafka tool class with the broker's jars
#   kafka_start DIR PORT CONTROLLER      format DIR and start the broker on
#                                        127.0.0.1:PORT (controller on CONTROLLER),
#                                        waiting until it answers; sets BROKER (its pid)
#   kafka_topic BOOTSTRAP NAME PARTITIONS
#   kafka_cleanup                        for `trap kafka_cleanup EXIT`: stops $JOB
#                                        and $BROKER if set, removes $DIR unless KEEP=1
# CP must name the broker's jars (the tests' $T/services/kafka/libs/*);
# KAFKA_HEAP sets its heap (default 1g). The caller stops $BROKER.

kafka_tool() { java -Xmx256m -XX:TieredStopAtLevel=1 -cp "$CP" "$@" 2> >(grep -v '^SLF4J\|WARN' >&2); }

kafka_start() {
    local dir=$1 port=$2 controller=$3
    cat > "$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller
advertised.listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
controller.quorum.bootstrap.servers=127.0.0.1:$controller
log.dirs=$dir/data
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
PROPS
    # `--cluster-id=ID`: a random id may start with '-'.
    kafka_tool kafka.tools.StorageTool format --config "$dir/server.properties" --cluster-id="$(kafka_tool kafka.tools.StorageTool random-uuid)" --standalone >/dev/null
    java "-Xmx${KAFKA_HEAP:-1g}" -cp "$CP" kafka.Kafka "$dir/server.properties" > "$dir/broker.log" 2>&1 &
    BROKER=$!
    echo "broker starting on 127.0.0.1:$port (log: $dir/broker.log)" >&2
    for _ in $(seq 120); do
        kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$port" --list >/dev/null 2>&1 && return 0
        kill -0 "$BROKER" 2>/dev/null || { tail -20 "$dir/broker.log" >&2; return 1; }
        sleep 0.5
    done
    echo "the broker did not answer within 60 s" >&2
    return 1
}

kafka_topic() {
    kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$1" --create --topic "$2" --partitions "$3" --replication-factor 1 >/dev/null
}

kafka_cleanup() {
    local status=$?
    set +e
    [ -n "${JOB:-}" ] && kill "$JOB" 2>/dev/null && wait "$JOB" 2>/dev/null
    [ -n "${BROKER:-}" ] && kill "$BROKER" 2>/dev/null && wait "$BROKER" 2>/dev/null
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $DIR" >&2; else rm -rf "$DIR"; fi
    exit $status
}
