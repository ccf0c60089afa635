//! Benchmark operators; `config.op` picks the logic. The native twins live in
//! `benches/src/native.rs` and must stay the same logic.
//!
//! * `identity`: emit every record unchanged (the boundary alone).
//! * `map`: emit (key, value with every ASCII lowercase letter upper-cased).
//! * `filter`: keep records whose value's last byte is an even digit.
//! * `count`: a u64 value state per key; emit (key, count as decimal).
//! * `count-reducing`: the same with a reducing (sum) state: one host call.

use weir_sdk::prelude::*;

enum Bench {
    Identity,
    Map,
    Filter,
    Count(ValueState<u64>),
    CountReducing(ReducingState),
}

impl Operator for Bench {
    fn open(ctx: &mut OpenContext) -> Result<Self, Error> {
        Ok(match ctx.config("op").unwrap_or("map") {
            "identity" => Bench::Identity,
            "map" => Bench::Map,
            "filter" => Bench::Filter,
            "count" => Bench::Count(ctx.value_state("count")?),
            "count-reducing" => Bench::CountReducing(ctx.reducing_state("count", Reducer::Sum)?),
            other => return Err(Error::msg(format!("unknown op {other:?}"))),
        })
    }

    fn process(&mut self, ctx: &mut Context, record: Record<'_>) -> Result<(), Error> {
        match self {
            Bench::Identity => ctx.emit(record.key(), record.value()),
            Bench::Map => {
                let mut v = [0u8; 64];
                let src = record.value();
                let n = src.len().min(64);
                for (d, s) in v[..n].iter_mut().zip(src) {
                    *d = s.to_ascii_uppercase();
                }
                ctx.emit(record.key(), &v[..n]);
            }
            Bench::Filter => {
                if record.value().last().is_some_and(|b| b.is_ascii_digit() && (b - b'0').is_multiple_of(2)) {
                    ctx.emit(record.key(), record.value());
                }
            }
            Bench::Count(state) => {
                let n = state.get(ctx)?.unwrap_or(0) + 1;
                state.set(ctx, &n)?;
                ctx.emit(record.key(), decimal(n, &mut [0; 20]));
            }
            Bench::CountReducing(state) => {
                let n = state.add(ctx, 1);
                ctx.emit(record.key(), decimal(n as u64, &mut [0; 20]));
            }
        }
        Ok(())
    }
}

/// `n` in decimal, written into the end of `buf` (no allocation and no
/// formatting machinery per record; the native twin writes the same bytes).
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

weir_sdk::export_operator!(Bench);
