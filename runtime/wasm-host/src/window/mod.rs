//! Window operators: tumbling, sliding and session windows on event time, per
//! key, with the per-window logic (an aggregate) in a 0.2.0 window-function
//! component.
//!
//! * [`assigner`]: which windows a record belongs to.
//! * [`session`]: merging session windows that records bridge.
//! * [`store`]: windows and their accumulators in the task's keyed state backend.
//! * [`operator`]: the dataflow operator: assign, add, fire on event-time
//!   timers, late firings, late side output, purge.
//! * [`instance`]: instantiating, restoring and opening a task; guest errors.

mod assigner;
mod instance;
mod operator;
mod session;
mod store;

pub use assigner::{Bounds, WindowKind, WindowSpec};
pub use instance::WindowOperatorFactory;
pub use operator::WindowOperator;
