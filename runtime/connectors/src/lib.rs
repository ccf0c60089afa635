//! Weir's sources and sinks: one connector per file.
//!
//! * [`FileSource`]: a bounded file of lines or JSON lines.
//! * [`GeneratorSource`]: deterministic seeded synthetic events, bounded or not,
//!   at a rate or as fast as possible.
//! * [`FileSink`]: JSON lines (one record value per line) into a directory.
//! * [`StdoutSink`]: one value per line on standard output.

mod file_sink;
mod file_source;
mod generator;
mod stdout_sink;

pub use file_sink::FileSink;
pub use file_source::{FileFormat, FileSource};
pub use generator::{GeneratorSource, GeneratorSpec};
pub use stdout_sink::StdoutSink;
