//! The changelog conformance guest, in Rust; `tests/conformance/changelog-{python,js}`
//! are the same operator in the other SDKs and `runtime/cli/tests/e2e/conformance.rs`
//! demands byte-identical output from all three. A changelog operator
//! (`weir:operator@0.3.0`): a GROUP BY count and sum kept up to date under
//! inserts, updates and deletes, as a SQL engine's updating aggregate is.
//!
//! Input rows are JSON `{"g": str, "amount": int, ...}`, keyed by `g`. Per
//! row, +I and +U add it to its group (count + 1, sum + amount), -U and -D
//! take it out (count - 1, sum - amount); the group's row
//! `{"g":G,"n":N,"sum":S}` changes accordingly: a new group is +I, a changed
//! one -U of the old row then +U of the new, a group left empty -D of its old
//! row. Taking out more rows than went in fails with `group G: more rows
//! taken out than went in`. Counter `retractions` counts -U and -D inputs.

use weir_sdk::prelude::*;

struct Count {
    agg: ValueState<(i64, i64)>,
    retractions: Counter,
}

fn row(g: &str, n: i64, sum: i64) -> String {
    format!("{{\"g\":{},\"n\":{n},\"sum\":{sum}}}", serde_json::to_string(g).expect("a string serialises"))
}

impl Operator for Count {
    fn open(ctx: &mut OpenContext) -> Result<Self, Error> {
        Ok(Count { agg: ctx.value_state("agg")?, retractions: ctx.counter("retractions")? })
    }

    fn process(&mut self, ctx: &mut Context, record: Record<'_>) -> Result<(), Error> {
        let v: serde_json::Value = record.json()?;
        let g = v["g"].as_str().ok_or_else(|| Error::msg("no string 'g'"))?;
        let amount = v["amount"].as_i64().ok_or_else(|| Error::msg("no integer 'amount'"))?;
        let sign = if record.kind().retracts() {
            self.retractions.add(1);
            -1
        } else {
            1
        };
        let (n, sum) = self.agg.get(ctx)?.unwrap_or((0, 0));
        let (m, s) = (n + sign, sum + sign * amount);
        if m < 0 {
            return Err(Error::msg(format!("group {g}: more rows taken out than went in")));
        }
        let key = record.key();
        match (n, m) {
            (0, _) => ctx.emit_kind(RowKind::Insert, key, row(g, m, s)),
            (_, 0) => ctx.emit_kind(RowKind::Delete, key, row(g, n, sum)),
            _ => {
                ctx.emit_kind(RowKind::UpdateBefore, key, row(g, n, sum));
                ctx.emit_kind(RowKind::UpdateAfter, key, row(g, m, s));
            }
        }
        if m == 0 {
            self.agg.clear(ctx);
        } else {
            self.agg.set(ctx, &(m, s))?;
        }
        Ok(())
    }
}

weir_sdk::export_changelog_operator!(Count);
