//! Fuzz target: a guest's `emitted` reply decoded from any bytes is refused
//! with a message or safe to route row by row.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| weir_engine::fuzz_emitted(data));
