//! Window operators: tumbling, sliding and session windows on event time, per
//! key, with the per-window logic (an aggregate) in a 0.2.0 window-function
//! component.
//!
//! Assigning records to windows, merging sessions and keeping windows in
//! keyed state are the engine's (`weir_engine::window`), shared with every
//! operator that windows; here:
//!
//! * [`operator`]: the dataflow operator: assign, add, fire on event-time
//!   timers, late firings, late side output, purge.
//! * [`instance`]: instantiating, restoring and opening a task; guest errors.

mod instance;
mod operator;

pub use instance::WindowOperatorFactory;
pub use operator::WindowOperator;
