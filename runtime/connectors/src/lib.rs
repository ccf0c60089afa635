//! Weir's built-in sources and sinks, one connector per file, each
//! registered with its typed config by [`register`].
//!
//! * [`FileSource`]: a bounded file of lines or JSON lines.
//! * [`GeneratorSource`]: deterministic seeded synthetic events, bounded or not,
//!   at a rate or as fast as possible.
//! * [`FileSink`]: JSON lines (one record value per line) into a directory.
//! * [`StdoutSink`]: one value per line on standard output.
//! * [`debezium`]: Debezium change events as changelog rows, for the file
//!   source here and the Kafka source of `weir-kafka`.

pub mod debezium;
mod file_sink;
mod file_source;
mod generator;
mod stdout_sink;

pub use file_sink::{FileSink, FileSinkConfig, FileSinks, SinkFormat};
pub use file_source::{FileFormat, FileSource, FileSources};
pub use generator::{GeneratorSource, GeneratorSpec, Generators};
pub use stdout_sink::StdoutSink;

/// Register the file and generator sources and the file and stdout sinks.
pub fn register(registry: &mut weir_spec::Registry) {
    registry.source(FileSources).source(Generators).sink(FileSinks).sink(StdoutSink {});
}
