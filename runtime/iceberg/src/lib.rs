//! Weir's Iceberg connectors, on iceberg-rust with Arrow and Parquet:
//!
//! * [`sink`]: `type: iceberg` sinks. Each task turns JSON records into Arrow
//!   batches and Parquet data files (rolled at `target_file_size`, split by
//!   the table's partition spec); when a checkpoint completes, the files every
//!   task wrote for it are committed as one snapshot whose summary names the
//!   pipeline, the operator, the run and the checkpoint, so that recovery
//!   neither loses nor repeats a commit (`docs/iceberg-commits.md`).
//! * [`source`]: `type: iceberg` sources: a bounded scan of one snapshot
//!   (current, by id, or as of a time), its files split across the tasks.

mod catalog;
mod commit;
pub mod compact;
pub mod config;
mod delta;
mod encode;
pub mod maintenance;
mod rest;
mod sink;
mod source;
mod storage;
mod upsert;
mod writer;

pub use config::{CatalogConfig, IcebergSinkConfig, IcebergSourceConfig};
pub use sink::IcebergSinks;
pub use source::IcebergSources;

/// Register the `iceberg` source and sink.
pub fn register(registry: &mut weir_spec::Registry) {
    registry.source(IcebergSources).sink(IcebergSinks);
}

/// What went wrong with an Iceberg table.
#[derive(Debug, thiserror::Error)]
pub enum IcebergError {
    #[error("{0}")]
    Config(String),
    #[error("Iceberg catalog {uri}: {source}")]
    Catalog { uri: String, source: iceberg::Error },
    #[error("Iceberg table {table}: {source}")]
    Table { table: String, source: iceberg::Error },
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("Iceberg table {table}: {message}")]
    Data { table: String, message: String },
}

impl IcebergError {
    pub(crate) fn iceberg(table: &str, e: iceberg::Error) -> Self {
        IcebergError::Table { table: table.to_string(), source: e }
    }

    pub(crate) fn io(what: &str) -> impl FnOnce(std::io::Error) -> IcebergError + '_ {
        move |source| IcebergError::Io { what: what.to_string(), source }
    }

    pub(crate) fn data(table: &str, message: impl Into<String>) -> Self {
        IcebergError::Data { table: table.to_string(), message: message.into() }
    }
}
