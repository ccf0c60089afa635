//! Generated host bindings for `weir:operator@0.1.0`, the window world of
//! `weir:operator@0.2.0` and the changelog operator world of
//! `weir:operator@0.3.0`. Private: the crate exposes its own types.
//!
//! 0.2.0 and 0.3.0 reuse the 0.1.0 interfaces (their `deps/operator@0.1.0`),
//! so their bindings map them onto the 0.1.0 modules: one host implementation
//! serves components of every version.

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

/// `weir:operator/changelog-operator@0.3.0`: the stream operator with row kinds. Its
/// imports are the 0.1.0 interfaces, so the same host implementation serves it.
pub(crate) mod v0_3 {
    wasmtime::component::bindgen!({
        path: "../../wit/operator@0.3.0",
        world: "changelog-operator",
        imports: { default: trappable },
        with: {
            "weir:operator/types@0.1.0": super::weir::operator::types,
            "weir:operator/state@0.1.0": super::weir::operator::state,
            "weir:operator/timers@0.1.0": super::weir::operator::timers,
            "weir:operator/runtime@0.1.0": super::weir::operator::runtime,
        },
    });

    pub(crate) use weir::operator0_3_0::changelog;
}

/// `weir:function/scalar-function@0.1.0`: scalar SQL functions. It imports
/// nothing of Weir's (WASI only).
pub(crate) mod function {
    wasmtime::component::bindgen!({
        path: "../../wit/function@0.1.0",
        world: "scalar-function",
    });

    pub(crate) use exports::weir::function::functions;
}
