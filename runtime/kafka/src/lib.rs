//! Weir's Kafka connectors, on librdkafka (rdkafka, bundled):
//!
//! * [`source`]: `type: kafka` sources. Partitions are assigned to tasks
//!   deterministically (as Flink's KafkaSource does), offsets are part of
//!   checkpoints and committed to the consumer group when a checkpoint
//!   completes, watermarks are kept per partition, new partitions are found
//!   while running, and a source can be bounded at the offsets that were
//!   latest when it started.
//! * [`sink`]: `type: kafka` sinks, exactly once through Kafka transactions
//!   aligned with checkpoints, surviving a crash between a checkpoint's
//!   completion and its transaction's commit (see `docs/kafka-exactly-once.md`).

mod assign;
mod client;
mod progress;
mod sink;
mod source;

pub use client::KafkaError;
pub use sink::{KafkaSinkConfig, KafkaSinks};
pub use source::{KafkaSourceConfig, KafkaSources};

/// Register the `kafka` source and sink.
pub fn register(registry: &mut weir_spec::Registry) {
    registry.source(KafkaSources).sink(KafkaSinks);
}
