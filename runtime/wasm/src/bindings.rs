//! Generated host bindings for `weir:operator@0.1.0` and the window world of
//! `weir:operator@0.2.0`. Private: the crate exposes its own types.
//!
//! 0.2.0 reuses the 0.1.0 interfaces (its `deps/operator@0.1.0`), so its
//! bindings map them onto the 0.1.0 modules: one host implementation serves
//! components of both versions.

wasmtime::component::bindgen!({
    path: "../../wit/operator@0.1.0",
    world: "operator",
    imports: { default: trappable },
});

pub(crate) use weir::operator::{runtime, state, timers, types};

/// `weir:operator/window-operator@0.2.0`.
pub(crate) mod v0_2 {
    wasmtime::component::bindgen!({
        path: "../../wit/operator@0.2.0",
        world: "window-operator",
        imports: { default: trappable },
        with: {
            "weir:operator/types@0.1.0": super::weir::operator::types,
            "weir:operator/runtime@0.1.0": super::weir::operator::runtime,
        },
    });

    pub(crate) use exports::weir::operator0_2_0::window;
}
