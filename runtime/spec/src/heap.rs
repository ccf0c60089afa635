//! The `heap` state backend, built in: keyed state in memory.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use weir_state::{HeapBackendFactory, StateBackendFactory};

use crate::registry::{BuildError, Check, StateBackend};
use crate::SpecError;

pub(crate) struct Heap;

/// The heap backend has no settings; `cache` is named only to explain that.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HeapConfig {
    #[serde(default, skip_serializing)]
    cache: Option<serde::de::IgnoredAny>,
}

impl StateBackend for Heap {
    type Config = HeapConfig;
    const NAME: &'static str = "heap";

    fn check(&self, config: &HeapConfig, cx: &Check<'_>) -> Result<(), SpecError> {
        if config.cache.is_some() {
            return Err(cx.error(
                "cache",
                "only the rocksdb backend has a record cache (the heap backend keeps all state in memory); set `backend: rocksdb` or remove `cache`",
            ));
        }
        Ok(())
    }

    fn build(&self, _: HeapConfig, _local_dir: &std::path::Path) -> Result<Arc<dyn StateBackendFactory>, BuildError> {
        Ok(Arc::new(HeapBackendFactory))
    }
}
