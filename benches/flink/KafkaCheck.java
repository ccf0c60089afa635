// Helpers of benches/flink/kafka.sh, on plain kafka-clients (the broker's jars):
//
//   java -cp "classes:$KAFKA_LIBS/*" KafkaCheck count BOOTSTRAP TOPIC EXPECTED
//       Reads TOPIC from the beginning to its last stable offset, read_committed,
//       and checks that it holds exactly EXPECTED records of keyed counts
//       {"word":"<key>","count":n}: for every key, the counts seen are 1..m with
//       each once (nothing lost, nothing twice), and the m of all keys sum to
//       EXPECTED. Prints "records=... keys=... sum_of_final_counts=... ok" and
//       exits 1 when not so.
//
//   java -cp ... KafkaCheck latency BOOTSTRAP IN_TOPIC OUT_TOPIC RATE SECONDS WARMUP_SECONDS
//       Produces RATE keyed events a second for SECONDS into IN_TOPIC (keys from
//       the same skewed vocabulary as kafka.sh's input, each record stamped with
//       its send time), while reading OUT_TOPIC read_committed; the latency of
//       an output record is its arrival time minus its timestamp (the input's,
//       which both Weir's and KafkaCount's sinks carry over). Records whose
//       input was sent in the first WARMUP_SECONDS are left out. Prints
//       "latency rate=... records=... p50_ms=... p99_ms=... max_ms=...".

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Random;

import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class KafkaCheck {
    public static void main(String[] args) throws Exception {
        switch (args[0]) {
            case "count" -> System.exit(count(args[1], args[2], Long.parseLong(args[3])) ? 0 : 1);
            case "latency" -> latency(args[1], args[2], args[3], Integer.parseInt(args[4]), Integer.parseInt(args[5]), Integer.parseInt(args[6]));
            default -> throw new IllegalArgumentException("count or latency, not " + args[0]);
        }
    }

    static KafkaConsumer<byte[], byte[]> consumer(String bootstrap) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("isolation.level", "read_committed");
        p.put("enable.auto.commit", "false");
        p.put("max.poll.records", "10000");
        p.put("fetch.max.bytes", "52428800");
        return new KafkaConsumer<>(p, new ByteArrayDeserializer(), new ByteArrayDeserializer());
    }

    static List<TopicPartition> partitions(KafkaConsumer<?, ?> c, String topic) {
        List<TopicPartition> tps = new ArrayList<>();
        for (PartitionInfo p : c.partitionsFor(topic, Duration.ofSeconds(30))) {
            tps.add(new TopicPartition(topic, p.partition()));
        }
        return tps;
    }

    static long countOf(byte[] value) {
        String v = new String(value, StandardCharsets.UTF_8);
        int i = v.indexOf("\"count\":");
        if (i < 0) {
            throw new IllegalStateException("not a count: " + v);
        }
        int j = i + 8;
        int k = j;
        while (k < v.length() && Character.isDigit(v.charAt(k))) {
            k++;
        }
        return Long.parseLong(v.substring(j, k));
    }

    static boolean count(String bootstrap, String topic, long expected) {
        try (KafkaConsumer<byte[], byte[]> c = consumer(bootstrap)) {
            List<TopicPartition> tps = partitions(c, topic);
            c.assign(tps);
            c.seekToBeginning(tps);
            Map<TopicPartition, Long> end = c.endOffsets(tps); // the last stable offsets, read_committed
            long records = 0;
            // Per key: the counts seen, as a bit set (a count seen twice is a duplicate).
            Map<String, java.util.BitSet> seen = new HashMap<>();
            long duplicates = 0;
            long idle = 0;
            while (tps.stream().anyMatch(tp -> c.position(tp) < end.get(tp))) {
                var batch = c.poll(Duration.ofMillis(500));
                idle = batch.isEmpty() ? idle + 1 : 0;
                if (idle > 60) {
                    System.out.println("no progress for 30 s before the end offsets " + end);
                    return false;
                }
                for (ConsumerRecord<byte[], byte[]> r : batch) {
                    records++;
                    String key = new String(r.key(), StandardCharsets.UTF_8);
                    long n = countOf(r.value());
                    java.util.BitSet s = seen.computeIfAbsent(key, k -> new java.util.BitSet());
                    if (s.get((int) n)) {
                        duplicates++;
                    }
                    s.set((int) n);
                }
            }
            long sumOfFinal = 0;
            long gaps = 0;
            for (java.util.BitSet s : seen.values()) {
                int max = s.length() - 1;
                sumOfFinal += max;
                gaps += max - s.cardinality(); // counts 1..max each once: cardinality = max
            }
            boolean ok = records == expected && sumOfFinal == expected && duplicates == 0 && gaps == 0;
            System.out.printf("records=%d keys=%d sum_of_final_counts=%d duplicates=%d gaps=%d %s%n",
                    records, seen.size(), sumOfFinal, duplicates, gaps, ok ? "ok" : "MISMATCH (expected " + expected + ")");
            return ok;
        }
    }

    /** The vocabulary of kafka.sh's input: VOCAB words, Zipf (s = 1) weights. */
    static final int VOCAB = 10_000;

    static void latency(String bootstrap, String in, String out, int rate, int seconds, int warmup) throws Exception {
        String[] words = new String[VOCAB];
        for (int i = 0; i < VOCAB; i++) {
            words[i] = "w" + i;
        }
        double[] cum = new double[VOCAB];
        double total = 0;
        for (int i = 0; i < VOCAB; i++) {
            total += 1.0 / (i + 1);
            cum[i] = total;
        }
        long start = System.currentTimeMillis() + 500;
        long measureFrom = start + warmup * 1000L;
        long sent = (long) rate * seconds;
        long[] lat = new long[(int) sent + 1024];
        int[] got = {0};
        Thread reader = new Thread(() -> {
            try (KafkaConsumer<byte[], byte[]> c = consumer(bootstrap)) {
                List<TopicPartition> tps = partitions(c, out);
                c.assign(tps);
                c.seekToEnd(tps);
                tps.forEach(c::position);
                long deadline = start + seconds * 1000L + 15_000;
                long seen = 0;
                while (seen < sent && System.currentTimeMillis() < deadline) {
                    for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(100))) {
                        long now = System.currentTimeMillis();
                        seen++;
                        if (r.timestamp() >= measureFrom && got[0] < lat.length) {
                            lat[got[0]++] = now - r.timestamp();
                        }
                    }
                }
            }
        });
        reader.start();
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("linger.ms", "1");
        p.put("acks", "all");
        Random random = new Random(7);
        long late = 0; // how far behind its schedule the producer fell, at most
        long sendEnd;
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p, new ByteArraySerializer(), new ByteArraySerializer())) {
            while (System.currentTimeMillis() < start) {
                Thread.sleep(1);
            }
            for (long i = 0; i < sent; i++) {
                long due = start + i * 1000 / rate;
                long now;
                while ((now = System.currentTimeMillis()) < due) {
                    Thread.sleep(0, 200_000);
                }
                late = Math.max(late, now - due);
                int w = Arrays.binarySearch(cum, random.nextDouble() * total);
                String word = words[w < 0 ? -w - 1 : w];
                byte[] value = ("{\"word\":\"" + word + "\",\"seq\":" + i + "}").getBytes(StandardCharsets.UTF_8);
                producer.send(new ProducerRecord<>(in, null, now, word.getBytes(StandardCharsets.UTF_8), value));
            }
            sendEnd = System.currentTimeMillis();
        }
        reader.join();
        String producer = String.format("sent=%d in %.1f s (producer up to %d ms behind schedule)", sent, (sendEnd - start) / 1e3, late);
        long[] l = Arrays.copyOf(lat, got[0]);
        Arrays.sort(l);
        if (l.length == 0) {
            System.out.printf("latency rate=%d records=0 (no output within the time) %s%n", rate, producer);
            return;
        }
        System.out.printf("latency rate=%d records=%d p50_ms=%d p99_ms=%d max_ms=%d %s%n",
                rate, l.length, l[l.length / 2], l[(int) (l.length * 0.99)], l[l.length - 1], producer);
    }
}
