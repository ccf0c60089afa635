//! Where operators get their keyed state: a [`StateBackendFactory`] makes one
//! backend per parallel task, so the code that runs an operator (a Wasm host,
//! a SQL aggregate, a window) never builds a particular backend itself.

use crate::{HeapBackend, KeyGroups, KeyedStateBackend, StateError};

/// Makes the keyed state backend of one parallel task of an operator.
pub trait StateBackendFactory: Send + Sync + std::fmt::Debug {
    /// A new, empty backend for task `task` of operator `operator`, owning
    /// `groups`.
    fn create(&self, operator: &str, task: u32, groups: KeyGroups) -> Result<Box<dyn KeyedStateBackend>, StateError>;

    /// The backend's name as a spec writes it (`heap`, `rocksdb`).
    fn name(&self) -> &'static str;
}

/// State on the heap.
#[derive(Clone, Copy, Debug, Default)]
pub struct HeapBackendFactory;

impl StateBackendFactory for HeapBackendFactory {
    fn create(&self, _operator: &str, _task: u32, groups: KeyGroups) -> Result<Box<dyn KeyedStateBackend>, StateError> {
        Ok(Box::new(HeapBackend::new(groups)))
    }

    fn name(&self) -> &'static str {
        "heap"
    }
}
