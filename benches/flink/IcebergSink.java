// Flink's Iceberg sink on the input of benches/flink/iceberg.sh: a JSON-lines
// file of events {id, key, amount, ts[, __deleted]} into an Iceberg table of a
// Hadoop catalog on local disk, Parquet with zstd, checkpoints every second,
// parallelism P (the file is one split: one reader, P writers, as Weir runs it).
//
//   append: INSERT INTO an unpartitioned table.
//   upsert: the events as a changelog (__deleted = "true" a DELETE of its key,
//           anything else an INSERT, which an upsert table treats as an
//           upsert) into a format-2 table with PRIMARY KEY (key) and
//           write.upsert.enabled: equality deletes per key, as Weir's upsert.
//
//   java -cp ... IcebergSink INPUT.jsonl WAREHOUSE_DIR append|upsert PARALLELISM
// Prints "done mode=M" when the job has finished (its last commit made).
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.table.api.Schema;
import org.apache.flink.table.api.Table;
import org.apache.flink.table.api.bridge.java.StreamTableEnvironment;
import org.apache.flink.table.connector.ChangelogMode;
import org.apache.flink.types.Row;
import org.apache.flink.types.RowKind;

public class IcebergSink {
    public static void main(String[] args) throws Exception {
        String input = args[0], warehouse = args[1], mode = args[2];
        int parallelism = Integer.parseInt(args[3]);
        boolean upsert = mode.equals("upsert");
        Configuration conf = new Configuration();
        conf.setString("execution.checkpointing.interval", "1s");
        conf.setString("parallelism.default", Integer.toString(parallelism));
        // A failure fails the run (a restarted attempt would be timed too).
        conf.setString("restart-strategy.type", "none");
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
        StreamTableEnvironment t = StreamTableEnvironment.create(env);
        // A DELETE carries its key and the event's own values, not the row it
        // deletes: the planner's upsert materializer (which would match deletes
        // to earlier rows by every column, and keep state) must stay out of it.
        t.getConfig().set("table.exec.sink.upsert-materialize", "NONE");
        t.executeSql("CREATE TABLE input (id BIGINT, `key` STRING, amount BIGINT, ts BIGINT"
                + (upsert ? ", __deleted STRING" : "")
                + ") WITH ('connector' = 'filesystem', 'path' = 'file://" + input + "', 'format' = 'json')");
        t.executeSql("CREATE CATALOG lake WITH ('type' = 'iceberg', 'catalog-type' = 'hadoop', 'warehouse' = 'file://"
                + warehouse + "', 'property-version' = '1')");
        t.executeSql("CREATE DATABASE IF NOT EXISTS lake.bench");
        String parquet = "'write.format.default' = 'parquet', 'write.parquet.compression-codec' = 'zstd'";
        if (!upsert) {
            t.executeSql("CREATE TABLE lake.bench.events (id BIGINT NOT NULL, `key` STRING, amount BIGINT, ts BIGINT) WITH ("
                    + parquet + ")");
            t.executeSql("INSERT INTO lake.bench.events SELECT id, `key`, amount, ts FROM input").await();
        } else {
            t.executeSql("CREATE TABLE lake.bench.accounts (id BIGINT NOT NULL, `key` STRING NOT NULL, amount BIGINT, ts BIGINT,"
                    + " PRIMARY KEY (`key`) NOT ENFORCED) WITH ('format-version' = '2', 'write.upsert.enabled' = 'true', "
                    + parquet + ")");
            DataStream<Row> rows = t.toDataStream(t.sqlQuery("SELECT id, `key`, amount, ts, __deleted FROM input"));
            TypeInformation<Row> type = Types.ROW_NAMED(new String[] {"id", "key", "amount", "ts"}, Types.LONG, Types.STRING, Types.LONG, Types.LONG);
            DataStream<Row> changes = rows.map(r -> {
                RowKind kind = "true".equals(r.getField("__deleted")) ? RowKind.DELETE : RowKind.INSERT;
                return Row.ofKind(kind, r.getField("id"), r.getField("key"), r.getField("amount"), r.getField("ts"));
            }).returns(type);
            Schema schema = Schema.newBuilder()
                    .column("id", "BIGINT NOT NULL").column("key", "STRING NOT NULL").column("amount", "BIGINT").column("ts", "BIGINT")
                    .build();
            Table changelog = t.fromChangelogStream(changes, schema, ChangelogMode.all());
            t.createTemporaryView("changes", changelog);
            t.executeSql("INSERT INTO lake.bench.accounts SELECT id, `key`, amount, ts FROM changes").await();
        }
        System.out.println("done mode=" + mode);
    }
}
