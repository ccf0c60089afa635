// Flink's side of `weir-bench --state` (issue 21): a keyed count with a
// ValueState<Long> per key over N records of K distinct keys, on the heap
// (`hashmap`) or RocksDB state backend, into a discarding sink. Keys and
// values are those of weir-bench's generator ("key-" + splitmix64(n) % K,
// "event payload of record number " + n). `pass` runs the same job without the
// state (key_by, then the same output per record): what the generation and
// the exchange cost, to read the count's own cost off.
//
//   java -cp "classes:$FLINK_LIB/*" StateCount RECORDS KEYS hashmap|rocksdb count|pass PARALLELISM
//
// Prints one line: "case=... records=N wall_s=... cpu_s=..." (cpu_s: the JVM's
// process CPU time over the job, every thread).

import java.lang.management.ManagementFactory;

import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.connector.source.lib.NumberSequenceSource;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;
import org.apache.flink.util.Collector;

public class StateCount {
    static long splitmix64(long x) {
        long z = x + 0x9E3779B97F4A7C15L;
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    public static class Count extends KeyedProcessFunction<String, Tuple2<String, String>, String> {
        private transient ValueState<Long> count;

        @Override
        public void open(OpenContext ctx) {
            count = getRuntimeContext().getState(new ValueStateDescriptor<>("count", Types.LONG));
        }

        @Override
        public void processElement(Tuple2<String, String> r, Context ctx, Collector<String> out) throws Exception {
            Long n = count.value();
            long next = (n == null ? 0 : n) + 1;
            count.update(next);
            out.collect(Long.toString(next));
        }
    }

    public static void main(String[] args) throws Exception {
        long records = Long.parseLong(args[0]);
        long keys = Long.parseLong(args[1]);
        String backend = args[2];
        boolean count = args[3].equals("count");
        int parallelism = Integer.parseInt(args[4]);
        Configuration conf = new Configuration();
        conf.setString("state.backend.type", backend);
        conf.setString("parallelism.default", Integer.toString(parallelism));
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
        var keyed = env.fromSource(new NumberSequenceSource(0, records - 1), WatermarkStrategy.noWatermarks(), "records")
                .map(n -> Tuple2.of("key-" + Long.remainderUnsigned(splitmix64(n), keys), "event payload of record number " + n))
                .returns(Types.TUPLE(Types.STRING, Types.STRING))
                .keyBy(t -> t.f0);
        if (count) {
            keyed.process(new Count()).sinkTo(new DiscardingSink<>());
        } else {
            keyed.map(t -> "1").sinkTo(new DiscardingSink<>());
        }
        var os = (com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();
        long cpu0 = os.getProcessCpuTime();
        long t0 = System.nanoTime();
        env.execute("state-count");
        double wall = (System.nanoTime() - t0) / 1e9;
        double cpu = (os.getProcessCpuTime() - cpu0) / 1e9;
        System.out.printf("case=%s-%s records=%d wall_s=%.3f cpu_s=%.3f%n", backend, args[3], records, wall, cpu);
    }
}
