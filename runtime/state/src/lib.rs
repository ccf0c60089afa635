//! Keyed state for Weir operators.
//!
//! An operator declares named states ([`StateDescriptor`]) when it opens; every
//! access is then scoped to one key. Backends implement [`KeyedStateBackend`]:
//! [`HeapBackend`] keeps everything in memory, [`RocksBackend`] in RocksDB (state
//! larger than memory, in the `weir-state-rocksdb` crate). Both snapshot into
//! files for checkpoints and restore from snapshots taken at any parallelism:
//! state is organised by key group ([`keys`]), and a backend owns a contiguous
//! range of key groups ([`KeyGroups`]). Operators get their backends from a
//! [`StateBackendFactory`], so an operator never knows which backend it runs on.

mod descriptor;
mod factory;
mod heap;
pub mod keys;
mod table;

use std::ops::Range;
use std::path::{Path, PathBuf};

pub use descriptor::{Reducer, StateDescriptor, StateId, StateKind};
pub use factory::{HeapBackendFactory, StateBackendFactory};
pub use heap::HeapBackend;

/// The entries of one key's map state: (map key, value) pairs.
pub type MapEntries = Vec<(Vec<u8>, Vec<u8>)>;

/// Errors of state declaration, access, snapshots and restores. Messages name
/// the state or the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("state '{name}' is already declared as {existing}; it cannot be declared again as {requested}")]
    Conflict { name: String, existing: String, requested: String },
    #[error("state name must not be empty")]
    EmptyName,
    #[error("no state has id {0} (declare states in open and use the id declare returned)")]
    UnknownState(StateId),
    #[error("state '{name}' is a {kind} state; it cannot be used as a {used_as} state")]
    WrongKind { name: String, kind: &'static str, used_as: &'static str },
    #[error("a batched write got {keys} keys but {values} values")]
    BatchLengths { keys: usize, values: usize },
    /// Reading or writing the backend's storage failed.
    #[error("state storage: {0}")]
    Storage(String),
    /// A snapshot cannot be restored (corrupt, other format or key-group count).
    #[error("cannot restore state from {file}: {message}")]
    Restore { file: String, message: String },
}

impl StateError {
    /// A storage failure: what was being done, and why it failed.
    pub fn storage(context: impl std::fmt::Display, e: impl std::fmt::Display) -> Self {
        StateError::Storage(format!("{context}: {e}"))
    }
}

/// The key groups a backend instance owns (see [`keys::key_group_range`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyGroups {
    pub range: Range<u32>,
    pub max_parallelism: u32,
}

impl KeyGroups {
    /// Every key group (a backend of a task with parallelism 1).
    pub fn all(max_parallelism: u32) -> Self {
        KeyGroups { range: 0..max_parallelism, max_parallelism }
    }

    /// The key groups of parallel task `task` of `parallelism`.
    pub fn of_task(task: u32, parallelism: u32, max_parallelism: u32) -> Self {
        KeyGroups { range: keys::key_group_range(task, parallelism, max_parallelism), max_parallelism }
    }

    pub fn contains(&self, key_group: u32) -> bool {
        self.range.contains(&key_group)
    }
}

/// One file of a state snapshot, written by [`KeyedStateBackend::snapshot`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotFile {
    /// Where the file is now, inside the directory given to `snapshot`.
    pub path: PathBuf,
    /// The name to store it under, unique within the snapshot (or, when
    /// `shared`, within every snapshot of the same backend instance).
    pub name: String,
    /// An immutable file that later snapshots may reference again (a RocksDB SST
    /// file): stored once, shared by the checkpoints that name it (incremental
    /// checkpoints).
    pub shared: bool,
}

/// The part of a snapshot that may run on another thread while the task goes
/// on: it writes the files (see [`KeyedStateBackend::snapshot`]).
pub type SnapshotWriter = Box<dyn FnOnce() -> Result<Vec<SnapshotFile>, StateError> + Send>;

/// A snapshot to restore from: one task's files, by the names they were
/// stored under, at local paths.
pub type RestoreFiles = Vec<(String, PathBuf)>;

/// `value_write_many`'s keys and values must pair up.
pub(crate) fn check_lengths(keys: &[&[u8]], values: &[Option<&[u8]>]) -> Result<(), StateError> {
    if keys.len() == values.len() {
        Ok(())
    } else {
        Err(StateError::BatchLengths { keys: keys.len(), values: values.len() })
    }
}

/// Keyed state of one parallel operator instance.
///
/// Every access method takes the key it is scoped to. Expired entries (see
/// [`StateDescriptor::ttl`]) are never returned; `set_time` tells the backend the
/// current processing time that TTL uses.
pub trait KeyedStateBackend: Send {
    fn declare(&mut self, descriptor: StateDescriptor) -> Result<StateId, StateError>;
    fn descriptors(&self) -> Vec<StateDescriptor>;
    /// The processing time (ms since the Unix epoch) that TTL checks use.
    fn set_time(&mut self, now_ms: i64);

    /// Append the value of `key` to `out` and say whether there is one.
    fn value_get_into(&mut self, state: StateId, key: &[u8], out: &mut Vec<u8>) -> Result<bool, StateError>;
    /// The value of `key`, if any.
    fn value_get(&mut self, state: StateId, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        let mut value = Vec::new();
        Ok(self.value_get_into(state, key, &mut value)?.then_some(value))
    }
    fn value_set(&mut self, state: StateId, key: &[u8], value: &[u8]) -> Result<(), StateError>;

    fn map_get(&mut self, state: StateId, key: &[u8], map_key: &[u8]) -> Result<Option<Vec<u8>>, StateError>;
    fn map_put(&mut self, state: StateId, key: &[u8], map_key: &[u8], value: &[u8]) -> Result<(), StateError>;
    fn map_remove(&mut self, state: StateId, key: &[u8], map_key: &[u8]) -> Result<bool, StateError>;
    fn map_entries(&mut self, state: StateId, key: &[u8]) -> Result<MapEntries, StateError>;

    fn list_add(&mut self, state: StateId, key: &[u8], value: &[u8]) -> Result<(), StateError>;
    fn list_get(&mut self, state: StateId, key: &[u8]) -> Result<Vec<Vec<u8>>, StateError>;
    fn list_update(&mut self, state: StateId, key: &[u8], values: Vec<Vec<u8>>) -> Result<(), StateError>;

    fn reducing_add(&mut self, state: StateId, key: &[u8], value: i64) -> Result<i64, StateError>;
    fn reducing_get(&mut self, state: StateId, key: &[u8]) -> Result<Option<i64>, StateError>;

    fn clear(&mut self, state: StateId, key: &[u8]) -> Result<(), StateError>;

    /// A hint that the entries of `keys` in value or reducing state `state`
    /// are about to be read: a backend on disk loads them in one batched read.
    fn prefetch(&mut self, _state: StateId, _keys: &[&[u8]]) -> Result<(), StateError> {
        Ok(())
    }

    /// The values of a batch of keys of value state `state`: key `i`'s value
    /// (if any) is appended to `out`, then `(out.len(), present)` pushed to
    /// `found`. The default reads them one by one after a `prefetch`; a
    /// backend may hash each key once and overlap the reads' memory misses.
    fn value_get_many(
        &mut self,
        state: StateId,
        keys: &[&[u8]],
        out: &mut Vec<u8>,
        found: &mut Vec<(usize, bool)>,
    ) -> Result<(), StateError> {
        self.prefetch(state, keys)?;
        for key in keys {
            let present = self.value_get_into(state, key, out)?;
            found.push((out.len(), present));
        }
        Ok(())
    }

    /// Writes a batch of keys of value state `state`, in order: key `i` is
    /// set to `values[i]`, or cleared when it is `None`.
    fn value_write_many(&mut self, state: StateId, keys: &[&[u8]], values: &[Option<&[u8]>]) -> Result<(), StateError> {
        check_lengths(keys, values)?;
        for (key, value) in keys.iter().zip(values) {
            match value {
                Some(v) => self.value_set(state, key, v)?,
                None => self.clear(state, key)?,
            }
        }
        Ok(())
    }

    /// Number of live (unexpired) entries (keys) of a state, over all keys.
    fn len(&mut self, state: StateId) -> Result<usize, StateError>;

    /// Snapshot every live entry into new files under `dir` (an empty
    /// directory the caller created). Returns quickly with a writer that the
    /// caller runs, possibly on another thread while processing goes on, to get
    /// the files; they must not change afterwards. The snapshot holds the state
    /// as it was when `snapshot` was called. Expired entries may be left out.
    fn snapshot(&mut self, dir: &Path) -> Result<SnapshotWriter, StateError>;

    /// Load this backend's key groups from snapshots taken by tasks of any
    /// parallelism (one [`RestoreFiles`] per task). Called on an empty backend
    /// before any `declare`: restored states keep their descriptors, and a later
    /// `declare` of the same name must match.
    fn restore(&mut self, snapshots: &[RestoreFiles]) -> Result<(), StateError>;
}
