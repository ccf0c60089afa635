//! Real services for Weir's integration tests: a single-node KRaft Kafka broker,
//! a Kafka Connect standalone worker (with Debezium's PostgreSQL connector), a
//! PostgreSQL server and Apache Iceberg's REST catalog server, each started by
//! the test itself on free loopback ports in a fresh temporary directory, and
//! stopped when its handle is dropped.
//!
//! The Java services run from jars that Maven fetches once, pinned by the poms in
//! `tests/services/poms/<service>/pom.xml`, into `<target>/services/<service>/libs`.
//! Needs `java` (17+) and `mvn` on `PATH`, and PostgreSQL's server binaries.
//! Python readers (PyIceberg) are pip-installed once at pinned versions.

mod connect;
mod iceberg_rest;
mod jars;
mod kafka;
mod postgres;
mod proc;
mod python;

pub use connect::KafkaConnect;
pub use iceberg_rest::IcebergRest;
pub use jars::{libs, target_dir};
pub use kafka::{KafkaBroker, kafka_tool};
pub use postgres::Postgres;
pub use python::python_packages;
