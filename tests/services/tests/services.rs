//! The harness itself against the real services: a Kafka broker that keeps its
//! topics across a restart, PostgreSQL answering psql, and Debezium streaming a
//! PostgreSQL table into Kafka through a Connect standalone worker.

use std::time::Instant;

use weir_test_services::{KafkaBroker, KafkaConnect, Postgres, kafka_tool};

const TOPIC_COMMAND: &str = "org.apache.kafka.tools.TopicCommand";
const CONSOLE_CONSUMER: &str = "org.apache.kafka.tools.consumer.ConsoleConsumer";

/// Reads `n` values from the beginning of `topic` with Kafka's console consumer.
fn consume(kafka: &KafkaBroker, topic: &str, n: usize) -> Vec<String> {
    let n = n.to_string();
    let args = ["--bootstrap-server", &kafka.bootstrap(), "--topic", topic, "--from-beginning", "--max-messages", &n, "--timeout-ms", "60000"];
    let out = kafka_tool(CONSOLE_CONSUMER, &args).unwrap_or_else(|e| panic!("{e}\nbroker log:\n{}", kafka.log_tail(40)));
    out.lines().map(str::to_string).collect()
}

#[test]
fn kafka_broker_keeps_its_topics_across_a_restart() {
    let t = Instant::now();
    let mut kafka = KafkaBroker::start().unwrap();
    eprintln!("kafka: answering {:.1} s after start (jars included)", t.elapsed().as_secs_f64());
    kafka.create_topic("events", 3).unwrap();
    let t = Instant::now();
    kafka.stop();
    kafka.restart().unwrap();
    eprintln!("kafka: stop + restart until answering {:.1} s", t.elapsed().as_secs_f64());
    let described = kafka_tool(TOPIC_COMMAND, &["--bootstrap-server", &kafka.bootstrap(), "--describe", "--topic", "events"]).unwrap();
    assert!(described.contains("PartitionCount: 3"), "{described}");
    let t = Instant::now();
    kafka.kill();
    kafka.restart().unwrap();
    eprintln!("kafka: kill + restart until answering {:.1} s", t.elapsed().as_secs_f64());
    let listed = kafka_tool(TOPIC_COMMAND, &["--bootstrap-server", &kafka.bootstrap(), "--list"]).unwrap();
    assert!(listed.lines().any(|l| l == "events"), "{listed}");
}

#[test]
fn postgres_answers_psql() {
    let t = Instant::now();
    let pg = Postgres::start().unwrap();
    eprintln!("postgres: ready {:.1} s after start", t.elapsed().as_secs_f64());
    let out = pg.psql("create table t(id int primary key, v text); insert into t values (1, 'one'), (2, 'two'); select id, v from t order by id").unwrap();
    assert_eq!(out, "1|one\n2|two");
    assert_eq!(pg.psql("show wal_level").unwrap(), "logical");
    let err = pg.psql("select * from missing").unwrap_err().to_string();
    assert!(err.contains("missing"), "{err}");
}

#[test]
fn debezium_streams_a_postgres_table_into_kafka() {
    let pg = Postgres::start().unwrap();
    pg.psql("create table t(id int primary key, v text); insert into t values (1, 'before-1'), (2, 'before-2')").unwrap();
    let kafka = KafkaBroker::start().unwrap();
    let t = Instant::now();
    let connect = KafkaConnect::debezium_postgres(&kafka.bootstrap(), &pg, "public.t", "weir_test").unwrap();
    eprintln!("connect: connector RUNNING {:.1} s after start", t.elapsed().as_secs_f64());
    pg.psql("insert into t values (3, 'after-3'); insert into t values (4, 'after-4')").unwrap();
    let t = Instant::now();
    let values = consume(&kafka, "cdc.public.t", 4);
    eprintln!("connect: 4 change events read {:.1} s after the inserts", t.elapsed().as_secs_f64());
    assert_eq!(values.len(), 4, "{values:?}\nconnect log:\n{}", connect.log_tail(40));
    for (i, op) in [(1, "r"), (2, "r"), (3, "c"), (4, "c")] {
        let v = &values[i - 1];
        assert!(v.contains(&format!("\"after\":{{\"id\":{i},")) && v.contains(&format!("\"op\":\"{op}\"")), "event {i}: {v}");
    }
}
