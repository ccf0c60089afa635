//! The `weir` binary end to end, in one test binary: each module is one area
//! (the CLI, recovery, windows, Kafka, Iceberg, dead letters, the node's API,
//! ...), sharing the helpers of `common` and `node`. One binary links once,
//! and the tests of every area run side by side instead of one area after
//! the other. `cargo test --release --test e2e kafka::` runs one area.

mod common;
mod node;
#[path = "../../src/types.rs"]
#[allow(dead_code)]
mod types;

mod cdc;
mod cli;
mod conformance;
mod damaged_checkpoints;
mod dashboard;
mod dead_letters;
mod fuzz;
mod iceberg;
mod iceberg_upsert;
mod kafka;
mod recovery;
mod schemathesis;
mod serve;
mod sql;
mod sql_nexmark;
mod sql_topn;
mod sql_udf;
mod windows;
