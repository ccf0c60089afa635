// Nexmark q0-q3 on Apache Flink 2.3 (Table API, streaming mode, local
// MiniCluster in this JVM) over the JSON-lines events that `weir-bench
// --nexmark --nexmark-out FILE` writes, into a blackhole sink.
//
//   java -cp "classes:$FLINK_HOME/lib/*" NexmarkSql EVENTS.jsonl QUERY PARALLELISM EVENT_COUNT
//
// Prints one line: "query=q0 events=N wall_s=... cpu_s=..." where cpu_s is the
// JVM's CPU time (all threads, JIT and GC included) while the query ran.

import java.lang.management.ManagementFactory;

import org.apache.flink.configuration.Configuration;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.TableEnvironment;

public class NexmarkSql {
    static final String PERSON = "id BIGINT, name STRING, emailAddress STRING, creditCard STRING, city STRING, state STRING, `dateTime` BIGINT, extra STRING";
    static final String AUCTION = "id BIGINT, itemName STRING, description STRING, initialBid BIGINT, reserve BIGINT, `dateTime` BIGINT, expires BIGINT, seller BIGINT, category BIGINT, extra STRING";
    static final String BID = "auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING, `dateTime` BIGINT, extra STRING";

    public static void main(String[] args) throws Exception {
        String path = args[0];
        String query = args[1];
        int parallelism = Integer.parseInt(args[2]);
        long events = Long.parseLong(args[3]);

        Configuration conf = new Configuration();
        conf.setString("parallelism.default", Integer.toString(parallelism));
        conf.setString("state.backend.type", System.getenv().getOrDefault("FLINK_STATE_BACKEND", "hashmap"));
        TableEnvironment t = TableEnvironment.create(EnvironmentSettings.newInstance().inStreamingMode().withConfiguration(conf).build());
        t.executeSql("CREATE TABLE events (event_type INT, person ROW<" + PERSON + ">, auction ROW<" + AUCTION + ">, bid ROW<" + BID + ">) "
                + "WITH ('connector' = 'filesystem', 'path' = '" + path + "', 'format' = 'json')");
        t.executeSql("CREATE VIEW person AS SELECT person.id, person.name, person.city, person.state FROM events WHERE event_type = 0");
        t.executeSql("CREATE VIEW auction AS SELECT auction.id, auction.seller, auction.category FROM events WHERE event_type = 1");
        t.executeSql("CREATE VIEW bid AS SELECT bid.auction, bid.bidder, bid.price, bid.`dateTime`, bid.extra FROM events WHERE event_type = 2");
        String sink;
        String select;
        switch (query) {
            case "q0":
                sink = "auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` BIGINT, extra STRING";
                select = "SELECT auction, bidder, price, `dateTime`, extra FROM bid";
                break;
            case "q1":
                sink = "auction BIGINT, bidder BIGINT, price DOUBLE, `dateTime` BIGINT, extra STRING";
                select = "SELECT auction, bidder, 0.908 * price, `dateTime`, extra FROM bid";
                break;
            case "q2":
                sink = "auction BIGINT, price BIGINT";
                select = "SELECT auction, price FROM bid WHERE MOD(auction, 123) = 0";
                break;
            case "q3":
                sink = "name STRING, city STRING, state STRING, id BIGINT";
                select = "SELECT P.name, P.city, P.state, A.id FROM auction AS A INNER JOIN person AS P ON A.seller = P.id "
                        + "WHERE A.category = 10 AND (P.state = 'OR' OR P.state = 'ID' OR P.state = 'CA')";
                break;
            default:
                throw new IllegalArgumentException("unknown query " + query + " (q0, q1, q2 or q3)");
        }
        t.executeSql("CREATE TABLE sink (" + sink + ") WITH ('connector' = 'blackhole')");
        com.sun.management.OperatingSystemMXBean os =
                (com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();
        long cpu0 = os.getProcessCpuTime();
        long t0 = System.nanoTime();
        t.executeSql("INSERT INTO sink " + select).await();
        double wall = (System.nanoTime() - t0) / 1e9;
        double cpu = (os.getProcessCpuTime() - cpu0) / 1e9;
        System.out.printf("query=%s events=%d wall_s=%.3f cpu_s=%.3f%n", query, events, wall, cpu);
        System.exit(0);
    }
}
