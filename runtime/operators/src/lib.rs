//! Operators the host runs itself, without a plugin, registered as operator
//! kinds (`type: NAME` in `operators:`), one per file. Their keyed state lives
//! in the pipeline's state backend (heap or RocksDB), so checkpoints,
//! savepoints, rescaling and exactly-once hold for them as for Wasm operators.
//!
//! * [`ChangelogNormalize`] (`type: changelog-normalize`): an upsert
//!   changelog (or any stream, read as upserts by key) into a full changelog,
//!   keeping each key's last row (Flink's ChangelogNormalize).

mod changelog_normalize;

pub use changelog_normalize::{ChangelogNormalize, NormalizeConfig, NormalizeError, Normalizer};

/// Register the host operator kinds.
pub fn register(registry: &mut weir_spec::Registry) {
    registry.operator(ChangelogNormalize);
}
