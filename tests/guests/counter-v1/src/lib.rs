//! Counter version 1 of the hot-swap tests (see `tests/swap/counter.rs`).

const VERSION: u32 = 1;
const MODE: Mode = Mode::Normal;

include!("../../../swap/counter.rs");
