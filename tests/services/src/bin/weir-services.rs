//! `weir-services cdc SETUP.sql TABLES`: the services of a change data capture
//! pipeline, for `examples/cdc-lakehouse/run.sh` (the same ones the tests
//! start, on free loopback ports in temporary directories): PostgreSQL (with
//! logical decoding), whose `postgres` database gets SETUP.sql; a Kafka
//! broker; and a Kafka Connect worker running Debezium's PostgreSQL connector
//! on TABLES (`public.accounts`), writing topics `cdc.<schema>.<table>`
//! (created first, with 3 partitions).
//!
//! Prints `PGPORT=…`, `PSQL=…` (the psql of that server), `KAFKA=…` and
//! `CONNECT=…` (its REST API), then `READY`, and keeps everything running
//! until its standard input ends (so a script that exits, however it exits,
//! stops them); then stops them and removes their data.

use std::io::Read;

use weir_test_services::{KafkaBroker, KafkaConnect, Postgres};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 || args[1] != "cdc" {
        eprintln!("usage: weir-services cdc SETUP.sql TABLES");
        std::process::exit(2);
    }
    let setup = std::fs::read_to_string(&args[2]).unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", args[2])));
    let pg = Postgres::start().unwrap_or_else(|e| fail(&format!("PostgreSQL did not start: {e}")));
    pg.psql(&setup).unwrap_or_else(|e| fail(&format!("{}: {e}", args[2])));
    let kafka = KafkaBroker::start().unwrap_or_else(|e| fail(&format!("the Kafka broker did not start: {e}")));
    // The topics, with 3 partitions each, before Debezium writes to them.
    for table in args[3].split(',') {
        let topic = format!("cdc.{}", table.trim());
        kafka.create_topic(&topic, 3).unwrap_or_else(|e| fail(&format!("cannot create topic {topic}: {e}")));
    }
    let connect = KafkaConnect::debezium_postgres(&kafka.bootstrap(), &pg, &args[3], "weir_example")
        .unwrap_or_else(|e| fail(&format!("Kafka Connect with Debezium did not start: {e}")));
    println!("PGPORT={}", pg.port());
    println!("PSQL={}", pg.psql_path().display());
    println!("KAFKA={}", kafka.bootstrap());
    println!("CONNECT={}", connect.rest_url());
    println!("READY");
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
    drop(connect);
    drop(kafka);
    drop(pg);
}

fn fail(message: &str) -> ! {
    eprintln!("weir-services: {message}");
    std::process::exit(1)
}
