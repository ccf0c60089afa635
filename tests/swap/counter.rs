// The counting operator of the hot-swap tests, shared by the guests
// `counter-v1`, `counter-v2`, `counter-trap` and `counter-bad-open`: each
// includes this file and sets `VERSION` and `MODE`.
//
// Keyed by `key`, it counts records per key in a value state and emits
// `{"id":<input id>,"key":"…","n":<count so far>,"v":VERSION}` per record, so a
// test can check that every input is counted once and that counts carry on
// across a swap.

use weir_sdk::prelude::*;

#[allow(dead_code)]
enum Mode {
    /// Counts.
    Normal,
    /// Traps on the `n`-th record this instance processes.
    TrapAfter(u64),
    /// `open` fails.
    BadOpen,
}

struct Counter {
    count: ValueState<u64>,
    processed: u64,
}

#[derive(serde::Deserialize)]
struct Input {
    id: u64,
}

impl Operator for Counter {
    fn open(ctx: &mut OpenContext) -> Result<Self, Error> {
        if let Mode::BadOpen = MODE {
            return Err(Error::msg(format!("counter v{VERSION} refuses to open: missing config 'threshold'")));
        }
        Ok(Counter { count: ctx.value_state(StateOptions::new("count"))?, processed: 0 })
    }

    fn process(&mut self, ctx: &mut Context, record: Record<'_>) -> Result<(), Error> {
        self.processed += 1;
        if let Mode::TrapAfter(n) = MODE {
            if self.processed >= n {
                panic!("counter v{VERSION} is broken: it panics on its record {n}");
            }
        }
        let input: Input = serde_json::from_slice(record.value())?;
        let n = self.count.get(ctx)?.unwrap_or(0) + 1;
        self.count.set(ctx, &n)?;
        let out = serde_json::json!({
            "id": input.id,
            "key": String::from_utf8_lossy(record.key()),
            "n": n,
            "v": VERSION,
        });
        ctx.emit(record.key(), serde_json::to_vec(&out)?);
        Ok(())
    }
}

weir_sdk::export_operator!(Counter);
