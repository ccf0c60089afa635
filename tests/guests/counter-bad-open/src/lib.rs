//! Counter version 4 of the hot-swap tests (see `tests/swap/counter.rs`).

const VERSION: u32 = 4;
const MODE: Mode = Mode::BadOpen;

include!("../../../swap/counter.rs");
