//! Fuzz target: any bytes through the spec parser and validator (with the
//! built-in connectors) give a spec or an error, never a panic or a hang.
#![no_main]

use std::sync::OnceLock;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    static REGISTRY: OnceLock<weir_spec::Registry> = OnceLock::new();
    let registry = REGISTRY.get_or_init(|| {
        let mut r = weir_spec::Registry::new();
        weir_connectors::register(&mut r);
        r
    });
    weir_spec::fuzz_spec(data, registry);
});
