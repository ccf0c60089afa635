//! Event-time windows for any operator that windows records per key (a Wasm
//! window function, SQL window aggregates): which windows a record belongs to
//! ([`assigner`]), merging the session windows that records bridge
//! ([`session`]), and windows with their accumulators in the task's keyed
//! state ([`store`]), so checkpoints, restore and rescaling carry them.
//! Windows fire through the task's [`TimerService`](crate::TimerService).

pub mod assigner;
pub mod session;
pub mod store;

pub use assigner::{Bounds, WindowKind, WindowSpec};
