// Keyed count, Kafka to Kafka, exactly-once, on Apache Flink 2.3 (DataStream
// API, local MiniCluster in this JVM): the Flink side of benches/flink/kafka.sh.
//
//   java -cp "classes:$FLINK_LIB/*:$KAFKA_LIBS/*" KafkaCount BOOTSTRAP IN_TOPIC OUT_TOPIC PARALLELISM [CHECKPOINT_DIR] [unbounded]
//
// KafkaSource (from the earliest offsets, bounded at the latest offsets when
// the job starts, read_committed, the record's key and value as strings) ->
// keyBy(record key) -> a KeyedProcessFunction counting records per key in a
// ValueState<Long> and emitting {"word":"<key>","count":n} for every record ->
// KafkaSink (key = the word, value = that JSON, the input record's timestamp)
// with DeliveryGuarantee.EXACTLY_ONCE: a Kafka transaction per checkpoint,
// committed when the checkpoint completes; checkpoints every second (on the
// file system when CHECKPOINT_DIR is given, as Weir's state directory). The
// end of the bounded input takes a final checkpoint, which commits the last
// transaction. `unbounded` drops the bound (for the latency run, killed).
//
// This is what Weir's word_count.wasm does in its `count` stage behind a
// `key_by: key`, with Weir's Kafka source and sink.
//
// Prints one line: "flink events_in=? wall_s=... cpu_s=..." where the times
// cover the job only (from execute() to its end; not the JVM's start) and
// cpu_s is the JVM's CPU time (all threads, JIT and GC included).

import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;

import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.connector.base.DeliveryGuarantee;
import org.apache.flink.connector.kafka.sink.KafkaRecordSerializationSchema;
import org.apache.flink.connector.kafka.sink.KafkaSink;
import org.apache.flink.connector.kafka.source.KafkaSource;
import org.apache.flink.connector.kafka.source.enumerator.initializer.OffsetsInitializer;
import org.apache.flink.connector.kafka.source.reader.deserializer.KafkaRecordDeserializationSchema;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.util.Collector;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.ProducerRecord;

public class KafkaCount {
    /** (key, value) of a Kafka record, as UTF-8 strings; a missing key is "". */
    static class KeyValue implements KafkaRecordDeserializationSchema<Tuple2<String, String>> {
        @Override
        public void deserialize(ConsumerRecord<byte[], byte[]> r, Collector<Tuple2<String, String>> out) {
            String key = r.key() == null ? "" : new String(r.key(), StandardCharsets.UTF_8);
            String value = r.value() == null ? "" : new String(r.value(), StandardCharsets.UTF_8);
            out.collect(Tuple2.of(key, value));
        }

        @Override
        public TypeInformation<Tuple2<String, String>> getProducedType() {
            return Types.TUPLE(Types.STRING, Types.STRING);
        }
    }

    /** For every record, the running count of its key: (key, JSON). */
    static class Count extends KeyedProcessFunction<String, Tuple2<String, String>, Tuple2<String, String>> {
        private transient ValueState<Long> count;

        @Override
        public void open(OpenContext context) {
            count = getRuntimeContext().getState(new ValueStateDescriptor<>("count", Types.LONG));
        }

        @Override
        public void processElement(Tuple2<String, String> r, Context ctx, Collector<Tuple2<String, String>> out) throws Exception {
            Long n = count.value();
            long next = n == null ? 1 : n + 1;
            count.update(next);
            // Keys are words of [a-z0-9]: no JSON escaping needed (as in word_count.wasm for such keys).
            out.collect(Tuple2.of(r.f0, "{\"word\":\"" + r.f0 + "\",\"count\":" + next + "}"));
        }
    }

    /** Key = the word, value = the JSON, timestamp = the input record's. */
    static class ToRecord implements KafkaRecordSerializationSchema<Tuple2<String, String>> {
        private final String topic;

        ToRecord(String topic) {
            this.topic = topic;
        }

        @Override
        public ProducerRecord<byte[], byte[]> serialize(Tuple2<String, String> r, KafkaSinkContext context, Long timestamp) {
            return new ProducerRecord<>(topic, null, timestamp, r.f0.getBytes(StandardCharsets.UTF_8), r.f1.getBytes(StandardCharsets.UTF_8));
        }
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String in = args[1];
        String outTopic = args[2];
        int parallelism = Integer.parseInt(args[3]);
        String checkpointDir = args.length > 4 && !args[4].isEmpty() ? args[4] : null;
        boolean bounded = !(args.length > 5 && args[5].equals("unbounded"));

        Configuration conf = new Configuration();
        conf.setString("parallelism.default", Integer.toString(parallelism));
        conf.setString("state.backend.type", System.getenv().getOrDefault("FLINK_STATE_BACKEND", "hashmap"));
        if (checkpointDir != null) {
            conf.setString("execution.checkpointing.storage", "filesystem");
            conf.setString("execution.checkpointing.dir", "file://" + checkpointDir);
        }
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
        env.enableCheckpointing(1000); // exactly-once checkpoints every second

        var source = KafkaSource.<Tuple2<String, String>>builder()
                .setBootstrapServers(bootstrap)
                .setTopics(in)
                .setGroupId("flink-kafka-count")
                .setStartingOffsets(OffsetsInitializer.earliest())
                .setProperty("isolation.level", "read_committed")
                .setDeserializer(new KeyValue());
        if (bounded) {
            source.setBounded(OffsetsInitializer.latest());
        }
        KafkaSink<Tuple2<String, String>> sink = KafkaSink.<Tuple2<String, String>>builder()
                .setBootstrapServers(bootstrap)
                .setRecordSerializer(new ToRecord(outTopic))
                .setDeliveryGuarantee(DeliveryGuarantee.EXACTLY_ONCE)
                .setTransactionalIdPrefix("flink-kafka-count-" + outTopic)
                // Flink's default (1 h) exceeds the broker's transaction.max.timeout.ms (15 min).
                .setProperty("transaction.timeout.ms", "600000")
                .build();

        env.fromSource(source.build(), WatermarkStrategy.noWatermarks(), "kafka-in")
                .keyBy(r -> r.f0, Types.STRING)
                .process(new Count())
                .returns(Types.TUPLE(Types.STRING, Types.STRING))
                .sinkTo(sink)
                .name("kafka-out");

        var os = (com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();
        long t0 = System.nanoTime();
        long cpu0 = os.getProcessCpuTime();
        env.execute("kafka-count");
        double wall = (System.nanoTime() - t0) / 1e9;
        double cpu = (os.getProcessCpuTime() - cpu0) / 1e9;
        System.out.printf("flink wall_s=%.3f cpu_s=%.3f%n", wall, cpu);
    }
}
