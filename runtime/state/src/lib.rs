//! Keyed state for Weir operators.
//!
//! An operator declares named states ([`StateDescriptor`]) when it opens; every
//! access is then scoped to one key. Backends implement [`KeyedStateBackend`];
//! [`HeapBackend`] keeps everything in memory.

mod descriptor;
mod heap;

pub use descriptor::{Reducer, StateDescriptor, StateId, StateKind};
pub use heap::HeapBackend;

/// The entries of one key's map state: (map key, value) pairs.
pub type MapEntries = Vec<(Vec<u8>, Vec<u8>)>;

/// Errors of state declaration and access. Messages name the state.
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
}

/// Keyed state of one parallel operator instance.
///
/// Every method but `declare` takes the key the access is scoped to. Expired
/// entries (see [`StateDescriptor::ttl`]) are never returned; `set_time` tells the
/// backend the current processing time used for TTL.
pub trait KeyedStateBackend: Send {
    fn declare(&mut self, descriptor: StateDescriptor) -> Result<StateId, StateError>;
    fn descriptors(&self) -> Vec<StateDescriptor>;
    /// The processing time (ms since the Unix epoch) that TTL checks use.
    fn set_time(&mut self, now_ms: i64);

    fn value_get(&mut self, state: StateId, key: &[u8]) -> Result<Option<Vec<u8>>, StateError>;
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

    /// Number of live (unexpired) entries of a state, over all keys.
    fn len(&self, state: StateId) -> Result<usize, StateError>;
}
