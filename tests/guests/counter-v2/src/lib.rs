//! Counter version 2 of the hot-swap tests (see `tests/swap/counter.rs`).

const VERSION: u32 = 2;
const MODE: Mode = Mode::Normal;

include!("../../../swap/counter.rs");
