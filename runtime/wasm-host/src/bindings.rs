//! Generated host bindings for `weir:operator@0.1.0`. Private: the crate exposes
//! its own types.

wasmtime::component::bindgen!({
    path: "../../wit/operator@0.1.0",
    world: "operator",
    imports: { default: trappable },
});

pub(crate) use weir::operator::{runtime, state, timers, types};
