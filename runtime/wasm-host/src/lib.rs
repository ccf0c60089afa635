//! Weir's WebAssembly host: loads operator components, sandboxes them and runs
//! them as dataflow operators.
//!
//! * A component is compiled once and its compiled artifact cached on disk by
//!   content hash and engine version, so a restart does not recompile.
//! * Every parallel task gets its own instance, created from a pre-instantiated
//!   [`Plugin`]; guests get WASI with no capabilities (no files, network or
//!   environment), stdout/stderr go to the host log tagged with the plugin.
//! * Memory is capped per instance, and every call into a guest has a CPU
//!   deadline (epoch interruption), so a guest that loops or eats memory fails
//!   with an error naming plugin, operator and input, and the host stays up.

mod bindings;
mod cache;
mod engine;
mod error;
mod host;
mod log_stream;
mod operator;
mod timers;

pub use engine::{EngineConfig, Plugin, PluginEngine, PluginMeta};
pub use error::WasmError;
pub use operator::{Limits, OperatorSettings, StateBackendKind, WasmOperator, WasmOperatorFactory};

/// The WIT world every operator component implements.
pub const WORLD: &str = "weir:operator/operator@0.1.0";
