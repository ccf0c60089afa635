//! The RocksDB backend as a [`StateBackendFactory`] (each task's database in
//! its own directory under the pipeline's local scratch space), and as the
//! spec's `state: {backend: rocksdb, cache: 64MiB}`.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use weir_spec::units::Bytes;
use weir_spec::{BuildError, Check, SpecError, StateBackend};
use weir_state::{KeyGroups, KeyedStateBackend, StateBackendFactory, StateError};

use crate::{RocksBackend, RocksOptions};

/// Opens one RocksDB database per task, in `dir/<operator>-<task>` (scratch
/// space: durability comes from checkpoints), each with a record cache of
/// `cache_bytes` in front.
#[derive(Clone, Debug)]
pub struct RocksBackendFactory {
    pub dir: PathBuf,
    pub cache_bytes: usize,
}

impl RocksBackendFactory {
    pub fn new(dir: PathBuf) -> Self {
        RocksBackendFactory { dir, cache_bytes: RocksOptions::DEFAULT_CACHE_BYTES }
    }
}

impl StateBackendFactory for RocksBackendFactory {
    fn create(&self, operator: &str, task: u32, groups: KeyGroups) -> Result<Box<dyn KeyedStateBackend>, StateError> {
        let dir = self.dir.join(format!("{operator}-{task}"));
        let options = RocksOptions::new(dir).with_cache_bytes(self.cache_bytes);
        Ok(Box::new(RocksBackend::open(options, groups)?))
    }

    fn name(&self) -> &'static str {
        "rocksdb"
    }
}

/// `state: {backend: rocksdb, cache: SIZE}`: the record cache of each task.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RocksConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<Bytes>,
}

/// The `rocksdb` state backend of specs.
pub struct Rocks;

/// Bounds of `state.cache`.
const CACHE: (usize, usize) = (1 << 20, 1 << 40);

impl StateBackend for Rocks {
    type Config = RocksConfig;
    const NAME: &'static str = "rocksdb";

    fn check(&self, c: &RocksConfig, cx: &Check<'_>) -> Result<(), SpecError> {
        match c.cache {
            Some(b) if !(CACHE.0..=CACHE.1).contains(&b.0) => Err(cx.error("cache", "must be between 1MiB and 1TiB per task")),
            _ => Ok(()),
        }
    }

    fn build(&self, c: RocksConfig, local_dir: &std::path::Path) -> Result<Arc<dyn StateBackendFactory>, BuildError> {
        let mut f = RocksBackendFactory::new(local_dir.join("rocksdb"));
        if let Some(b) = c.cache {
            f.cache_bytes = b.0;
        }
        Ok(Arc::new(f))
    }
}

/// Register the `rocksdb` state backend.
pub fn register(registry: &mut weir_spec::Registry) {
    registry.state_backend(Rocks);
}
