// Nexmark q0-q3, q5, q7 and q8 on Apache Flink 2.3 (Table API, streaming
// mode, local MiniCluster in this JVM) over the JSON-lines events that
// `weir-bench --nexmark --nexmark-out FILE` writes, into a blackhole sink.
//
//   java -cp "classes:$FLINK_HOME/lib/*" NexmarkSql EVENTS.jsonl QUERY PARALLELISM EVENT_COUNT
//
// Prints one line: "query=q0 events=N wall_s=... cpu_s=..." where cpu_s is the
// JVM's CPU time (all threads, JIT and GC included) while the query ran.
//
// The windowed queries (q5, q7, q8) run on event time: a computed column
// ts = TO_TIMESTAMP_LTZ(dateTime, 3) of the event with a watermark of 100 ms
// out-of-orderness, as Weir's source (q0-q3 read the table without them, as
// before). NEXMARK_COUNT=1 collects the result into this JVM instead of the
// blackhole sink and adds "outputs=N" (rows inserted minus rows retracted)
// and "changes=M" (changelog rows) to the line, to compare with Weir's
// output counts; NEXMARK_ROWS=FILE also writes the rows there.
// NEXMARK_EXPLAIN=1 prints the plan to stderr. NEXMARK_FLAT=DIR reads flat
// tables instead (DIR/person.jsonl, auction.jsonl, bid.jsonl: each kind's
// rows as top-level JSON objects, as benches/flink/sql.sh splits the events
// for the Weir SQL comparison), with the same columns, event time and
// watermark; the queries are the same.

import java.io.PrintWriter;
import java.lang.management.ManagementFactory;

import org.apache.flink.configuration.Configuration;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.TableEnvironment;
import org.apache.flink.types.Row;
import org.apache.flink.types.RowKind;
import org.apache.flink.util.CloseableIterator;

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
        conf.setString("table.local-time-zone", "UTC");
        TableEnvironment t = TableEnvironment.create(EnvironmentSettings.newInstance().inStreamingMode().withConfiguration(conf).build());
        boolean windowed = query.equals("q5") || query.equals("q7") || query.equals("q8");
        // Event time of the windowed queries: the event's dateTime, 100 ms out-of-orderness.
        String time = windowed
                ? ", ts AS TO_TIMESTAMP_LTZ(COALESCE(person.`dateTime`, auction.`dateTime`, bid.`dateTime`), 3), "
                        + "WATERMARK FOR ts AS ts - INTERVAL '0.1' SECOND"
                : "";
        String ts = windowed ? ", ts" : "";
        String flat = System.getenv("NEXMARK_FLAT");
        if (flat != null) {
            String wm = windowed ? ", ts AS TO_TIMESTAMP_LTZ(`dateTime`, 3), WATERMARK FOR ts AS ts - INTERVAL '0.1' SECOND" : "";
            for (String[] table : new String[][] {{"person", PERSON}, {"auction", AUCTION}, {"bid", BID}}) {
                t.executeSql("CREATE TABLE " + table[0] + " (" + table[1] + wm + ") WITH ('connector' = 'filesystem', 'path' = '"
                        + flat + "/" + table[0] + ".jsonl', 'format' = 'json')");
            }
        } else {
            t.executeSql("CREATE TABLE events (event_type INT, person ROW<" + PERSON + ">, auction ROW<" + AUCTION + ">, bid ROW<" + BID + ">" + time + ") "
                    + "WITH ('connector' = 'filesystem', 'path' = '" + path + "', 'format' = 'json')");
            t.executeSql("CREATE VIEW person AS SELECT person.id, person.name, person.city, person.state" + ts + " FROM events WHERE event_type = 0");
            t.executeSql("CREATE VIEW auction AS SELECT auction.id, auction.seller, auction.category" + ts + " FROM events WHERE event_type = 1");
            t.executeSql("CREATE VIEW bid AS SELECT bid.auction, bid.bidder, bid.price, bid.`dateTime`, bid.extra" + ts + " FROM events WHERE event_type = 2");
        }
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
            case "q5":
                // Hot items, as in the Flink Nexmark repository (plus
                // window_end): bids per auction per sliding window, joined
                // with the window's greatest count (a regular join of two
                // window aggregations).
                sink = "auction BIGINT, num BIGINT, window_end TIMESTAMP(3)";
                select = "SELECT AuctionBids.auction, AuctionBids.num, AuctionBids.endtime FROM ("
                        + " SELECT auction, COUNT(*) AS num, window_start AS starttime, window_end AS endtime"
                        + " FROM TABLE(HOP(TABLE bid, DESCRIPTOR(ts), INTERVAL '2' SECOND, INTERVAL '10' SECOND))"
                        + " GROUP BY auction, window_start, window_end) AS AuctionBids"
                        + " JOIN ("
                        + " SELECT MAX(CountBids.num) AS maxn, CountBids.starttime, CountBids.endtime FROM ("
                        + "  SELECT COUNT(*) AS num, window_start AS starttime, window_end AS endtime"
                        + "  FROM TABLE(HOP(TABLE bid, DESCRIPTOR(ts), INTERVAL '2' SECOND, INTERVAL '10' SECOND))"
                        + "  GROUP BY auction, window_start, window_end) AS CountBids"
                        + " GROUP BY CountBids.starttime, CountBids.endtime) AS MaxBids"
                        + " ON AuctionBids.starttime = MaxBids.starttime AND AuctionBids.endtime = MaxBids.endtime"
                        + " AND AuctionBids.num >= MaxBids.maxn";
                break;
            case "q7":
                // Highest bid: the bids of each tumbling window at the
                // window's greatest price, as a window join of the bids'
                // TUMBLE with the per-window MAX (the Flink Nexmark
                // repository's interval join on window_end - 10 s ..
                // window_end would also match bids at exactly window_end,
                // which belong to the next window).
                sink = "auction BIGINT, price BIGINT, bidder BIGINT, `dateTime` BIGINT, extra STRING";
                select = "SELECT B.auction, B.price, B.bidder, B.`dateTime`, B.extra FROM ("
                        + " SELECT * FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(ts), INTERVAL '10' SECOND))) B"
                        + " JOIN ("
                        + " SELECT MAX(price) AS maxprice, window_start, window_end"
                        + " FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(ts), INTERVAL '10' SECOND))"
                        + " GROUP BY window_start, window_end) M"
                        + " ON B.window_start = M.window_start AND B.window_end = M.window_end AND B.price = M.maxprice";
                break;
            case "q8":
                // Monitor new users, as in the Flink Nexmark repository:
                // persons and sellers per tumbling window (GROUP BY dedupes),
                // joined on id = seller and the window.
                sink = "id BIGINT, name STRING, starttime TIMESTAMP(3)";
                select = "SELECT P.id, P.name, P.starttime FROM ("
                        + " SELECT id, name, window_start AS starttime, window_end AS endtime"
                        + " FROM TABLE(TUMBLE(TABLE person, DESCRIPTOR(ts), INTERVAL '10' SECOND))"
                        + " GROUP BY id, name, window_start, window_end) P"
                        + " JOIN ("
                        + " SELECT seller, window_start AS starttime, window_end AS endtime"
                        + " FROM TABLE(TUMBLE(TABLE auction, DESCRIPTOR(ts), INTERVAL '10' SECOND))"
                        + " GROUP BY seller, window_start, window_end) A"
                        + " ON P.id = A.seller AND P.starttime = A.starttime AND P.endtime = A.endtime";
                break;
            default:
                throw new IllegalArgumentException("unknown query " + query + " (q0, q1, q2, q3, q5, q7 or q8)");
        }
        if ("1".equals(System.getenv("NEXMARK_EXPLAIN"))) {
            System.err.println(t.explainSql(select));
        }
        boolean count = "1".equals(System.getenv("NEXMARK_COUNT"));
        String rowsFile = System.getenv("NEXMARK_ROWS");
        t.executeSql("CREATE TABLE sink (" + sink + ") WITH ('connector' = 'blackhole')");
        com.sun.management.OperatingSystemMXBean os =
                (com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();
        long cpu0 = os.getProcessCpuTime();
        long t0 = System.nanoTime();
        String counted = "";
        if (count) {
            long outputs = 0;
            long changes = 0;
            try (CloseableIterator<Row> it = t.sqlQuery(select).execute().collect();
                    PrintWriter rows = rowsFile == null ? null : new PrintWriter(rowsFile)) {
                while (it.hasNext()) {
                    Row r = it.next();
                    changes++;
                    boolean add = r.getKind() == RowKind.INSERT || r.getKind() == RowKind.UPDATE_AFTER;
                    outputs += add ? 1 : -1;
                    if (rows != null) {
                        rows.println(r);
                    }
                }
            }
            counted = String.format(" outputs=%d changes=%d", outputs, changes);
        } else {
            t.executeSql("INSERT INTO sink " + select).await();
        }
        double wall = (System.nanoTime() - t0) / 1e9;
        double cpu = (os.getProcessCpuTime() - cpu0) / 1e9;
        System.out.printf("query=%s events=%d wall_s=%.3f cpu_s=%.3f%s%n", query, events, wall, cpu, counted);
        System.exit(0);
    }
}
