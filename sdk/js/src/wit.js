// The imports componentize-js binds for weir:operator@0.1.0 (not API).
export * as state from "weir:operator/state@0.1.0";
export * as timers from "weir:operator/timers@0.1.0";
export * as runtime from "weir:operator/runtime@0.1.0";
