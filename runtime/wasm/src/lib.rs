//! Weir's WebAssembly host: loads operator components, sandboxes them and runs
//! them as dataflow operators.
//!
//! * A component is compiled once and its compiled artifact cached on disk by
//!   content hash and engine version, so a restart does not recompile.
//! * Every parallel task gets its own instance, created from a pre-instantiated
//!   [`Plugin`]; guests get WASI with no capabilities (no files, network or
//!   environment), stdout/stderr go to the host log tagged with the plugin.
//! * Memory is capped per instance, and every call into a guest has a
//!   deadline (epoch interruption while it runs wasm code; WASI waits end
//!   there too), so a guest that loops, sleeps or eats memory fails with an
//!   error naming plugin, operator and input, and the host stays up.
//! * What else a guest can make the host keep or write is bounded per task:
//!   registered timers, log lines and log volume, error and panic messages
//!   ([`Limits`]).
//! * The compiled-component cache is authenticated: an entry whose MAC does
//!   not verify is deleted and recompiled, never deserialized.

mod bindings;
mod cache;
mod error;
mod function;
mod guest_log;
mod host;
mod kind;
mod loader;
mod log_stream;
mod operator;
mod snapshot;
mod undo;
mod wait;
mod window;

pub use error::WasmError;
pub use function::{Column as FunctionColumn, FunctionInstance, Signature as FunctionSignature, SqlType};
pub use kind::{LimitsConfig, PluginFiles, PluginSource, Plugins, WasmConfig, WasmOperators, WindowConfig};
pub use loader::{LoaderConfig, Plugin, PluginLoader, PluginMeta};
pub use operator::{Limits, OperatorSettings, WasmOperator, WasmOperatorFactory};
pub use window::{WindowOperator, WindowOperatorFactory};

/// Register the `wasm` operator kind (the default of operator entries).
pub fn register(registry: &mut weir_spec::Registry) {
    registry.operator(WasmOperators);
}

/// The WIT world of a component of scalar SQL functions.
pub const FUNCTION_WORLD: &str = "weir:function/scalar-function@0.1.0";
/// The WIT world of a stream operator component.
pub const WORLD: &str = "weir:operator/operator@0.1.0";
/// The WIT world of a stream operator component that reads and writes
/// changelogs (row kinds: inserts, updates and deletes).
pub const CHANGELOG_WORLD: &str = "weir:operator/changelog-operator@0.3.0";
/// The WIT world of a window function component (the per-window logic of a
/// window operator).
pub const WINDOW_WORLD: &str = "weir:operator/window-operator@0.2.0";
