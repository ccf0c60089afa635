//! Native Rust twins of `benches/guests/bench-ops`: the same logic, run as
//! engine operators without a Wasm boundary. Keyed state goes through the same
//! state backend the Wasm host uses.

use weir_engine::{Emitter, Operator, OperatorError, RecordBatch};
use weir_state::{HeapBackend, KeyedStateBackend, Reducer, StateDescriptor, StateKind};

pub enum Native {
    Identity,
    Map,
    Filter,
    Count(HeapBackend),
    CountReducing(HeapBackend),
}

impl Native {
    pub fn new(op: &str) -> Self {
        let state = |kind| {
            let mut b = HeapBackend::new(weir_state::KeyGroups::all(weir_engine::DEFAULT_MAX_PARALLELISM));
            b.declare(StateDescriptor { name: "count".into(), kind, ttl: None }).expect("declare");
            b
        };
        match op {
            "identity" => Native::Identity,
            "map" => Native::Map,
            "filter" => Native::Filter,
            "count" => Native::Count(state(StateKind::Value)),
            "count-reducing" => Native::CountReducing(state(StateKind::Reducing(Reducer::Sum))),
            other => panic!("unknown op {other}"),
        }
    }
}

/// `n` in decimal at the end of `buf`, as the guest writes it.
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

fn err(e: weir_state::StateError) -> OperatorError {
    OperatorError::new(e)
}

impl Operator for Native {
    fn process(&mut self, input: RecordBatch, out: &mut Emitter) -> Result<(), OperatorError> {
        let main = out.main();
        for i in 0..input.len() {
            let r = input.row(i);
            match self {
                Native::Identity => main.push(r.key, r.value, r.timestamp, r.origin),
                Native::Map => {
                    let mut v = [0u8; 64];
                    let n = r.value.len().min(64);
                    for (d, s) in v[..n].iter_mut().zip(r.value) {
                        *d = s.to_ascii_uppercase();
                    }
                    main.push(r.key, &v[..n], r.timestamp, r.origin);
                }
                Native::Filter => {
                    if r.value.last().is_some_and(|b| b.is_ascii_digit() && (b - b'0').is_multiple_of(2)) {
                        main.push(r.key, r.value, r.timestamp, r.origin);
                    }
                }
                Native::Count(state) => {
                    let n = state
                        .value_get(0, r.key)
                        .map_err(err)?
                        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
                        .unwrap_or(0)
                        + 1;
                    state.value_set(0, r.key, &n.to_le_bytes()).map_err(err)?;
                    main.push(r.key, decimal(n, &mut [0; 20]), r.timestamp, r.origin);
                }
                Native::CountReducing(state) => {
                    let n = state.reducing_add(0, r.key, 1).map_err(err)?;
                    main.push(r.key, decimal(n as u64, &mut [0; 20]), r.timestamp, r.origin);
                }
            }
        }
        Ok(())
    }
}
