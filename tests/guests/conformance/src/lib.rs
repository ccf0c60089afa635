//! The conformance guest, in Rust; `tests/conformance/{python,js}` are the same
//! operator in the other SDKs and `runtime/cli/tests/e2e/conformance.rs` demands
//! byte-identical output from all three.
//!
//! Input values are JSON `{"k": str, "n": int >= 0, "fail"?: true}` (the
//! JS SDK cannot pass negative 64-bit integers to the host: see sdk/js). Per record:
//! count it (counter `records`); fail with `conformance failure on key K (n=N)`
//! if `fail`; remember `k` (value state `name`) and `n` (value state `last`,
//! the previous one is `prev`); add `n` to reducing states `total` (sum) and
//! `max` (max); append `n` to list state `history`, trimmed to its last 3;
//! count `n` in map state `seen` (key `str(n)`; the entry of 0 is removed
//! again at once); send `{"k","n"}` to side output `large` if `n >= 8`; set
//! an event-time timer at 1000; emit
//! `{"k":K,"n":N,"prev":P,"total":T,"max":M,"hist":[..],"seen":S,"distinct":D}`.
//! The timer emits `{"k":K,"timer":1000,"total":T,"last":L}` and clears `last`.

use weir_sdk::prelude::*;

struct Conformance {
    records: Counter,
    large: SideOutput,
    name: ValueState<String>,
    last: ValueState<i64>,
    total: ReducingState,
    max: ReducingState,
    history: ListState<i64>,
    seen: MapState<String, u64>,
}

impl Operator for Conformance {
    fn open(ctx: &mut OpenContext) -> Result<Self, Error> {
        Ok(Conformance {
            records: ctx.counter("records")?,
            large: ctx.side_output("large")?,
            name: ctx.value_state("name")?,
            last: ctx.value_state("last")?,
            total: ctx.reducing_state("total", Reducer::Sum)?,
            max: ctx.reducing_state("max", Reducer::Max)?,
            history: ctx.list_state("history")?,
            seen: ctx.map_state("seen")?,
        })
    }

    fn process(&mut self, ctx: &mut Context, record: Record<'_>) -> Result<(), Error> {
        self.records.add(1);
        let v: serde_json::Value = record.json()?;
        let k = v["k"].as_str().ok_or_else(|| Error::msg("no string 'k'"))?.to_string();
        let n = v["n"].as_i64().ok_or_else(|| Error::msg("no integer 'n'"))?;
        if v["fail"] == serde_json::Value::Bool(true) {
            return Err(Error::msg(format!("conformance failure on key {k} (n={n})")));
        }
        self.name.set(ctx, &k)?;
        let prev = self.last.get(ctx)?.map_or("null".to_string(), |p| p.to_string());
        self.last.set(ctx, &n)?;
        let total = self.total.add(ctx, n);
        let max = self.max.add(ctx, n);
        self.history.add(ctx, &n)?;
        let mut hist = self.history.get(ctx)?;
        if hist.len() > 3 {
            hist.drain(..hist.len() - 3);
            self.history.update(ctx, &hist)?;
        }
        let seen = self.seen.get(ctx, &n.to_string())?.unwrap_or(0) + 1;
        self.seen.put(ctx, &n.to_string(), &seen)?;
        if n == 0 && !self.seen.remove(ctx, &"0".to_string())? {
            return Err(Error::msg("map entry 0 was not there"));
        }
        let distinct = self.seen.entries(ctx)?.len();
        if n >= 8 {
            ctx.emit_to(self.large, record.key(), format!(r#"{{"k":"{k}","n":{n}}}"#));
        }
        ctx.register_event_time_timer(1000);
        let hist = hist.iter().map(|h| h.to_string()).collect::<Vec<_>>().join(",");
        ctx.emit(
            record.key(),
            format!(r#"{{"k":"{k}","n":{n},"prev":{prev},"total":{total},"max":{max},"hist":[{hist}],"seen":{seen},"distinct":{distinct}}}"#),
        );
        Ok(())
    }

    fn on_timer(&mut self, ctx: &mut Context, timer: Timer<'_>) -> Result<(), Error> {
        let k = self.name.get(ctx)?.unwrap_or_default();
        let total = self.total.get(ctx).map_or("null".to_string(), |t| t.to_string());
        let last = self.last.get(ctx)?.map_or("null".to_string(), |l| l.to_string());
        self.last.clear(ctx);
        ctx.emit(timer.key(), format!(r#"{{"k":"{k}","timer":{},"total":{total},"last":{last}}}"#, timer.time()));
        Ok(())
    }
}

weir_sdk::export_operator!(Conformance);
