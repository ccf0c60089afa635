//! Counter version 3 of the hot-swap tests (see `tests/swap/counter.rs`).

const VERSION: u32 = 3;
const MODE: Mode = Mode::TrapAfter(50);

include!("../../../swap/counter.rs");
