//! Drops repeated records per key.
//!
//! For each key, the first record with a given value goes to the main output;
//! later records with the same value go to the side output `duplicates` as
//! `{"key":"…","value":"…","seen":N}` (N = how often it was seen so far).
//! Values are remembered in a map state, for `config.ttl_ms` milliseconds after
//! they were last seen if set (forever otherwise).

use std::time::Duration;

use weir_sdk::prelude::*;

struct Dedup {
    seen: MapState<Vec<u8>, u32>,
    duplicates: SideOutput,
    duplicate_count: Counter,
}

impl Operator for Dedup {
    fn open(ctx: &mut OpenContext) -> Result<Self, Error> {
        let mut options = StateOptions::new("seen");
        if let Some(ms) = ctx.config_parse::<u64>("ttl_ms")? {
            options = options.ttl(Duration::from_millis(ms));
        }
        Ok(Dedup {
            seen: ctx.map_state(options)?,
            duplicates: ctx.side_output("duplicates")?,
            duplicate_count: ctx.counter("duplicates")?,
        })
    }

    fn process(&mut self, ctx: &mut Context, record: Record<'_>) -> Result<(), Error> {
        let value = record.value().to_vec();
        let seen = self.seen.get(ctx, &value)?.unwrap_or(0) + 1;
        self.seen.put(ctx, &value, &seen)?;
        if seen == 1 {
            ctx.emit(record.key(), record.value());
        } else {
            self.duplicate_count.add(1);
            let report = serde_json::json!({
                "key": String::from_utf8_lossy(record.key()),
                "value": String::from_utf8_lossy(record.value()),
                "seen": seen,
            });
            ctx.emit_to(self.duplicates, record.key(), serde_json::to_vec(&report)?);
        }
        Ok(())
    }
}

weir_sdk::export_operator!(Dedup);
