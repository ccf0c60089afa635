//! Counts records per key and window: a window function
//! (`weir:operator/window-operator@0.2.0`) for tumbling, sliding and session
//! windows alike (it merges, so sessions work).
//!
//! Each fired window emits `{"key":"…","start":S,"end":E,"count":N}` (times in
//! milliseconds). With `config.sum: <field>`, it also sums that numeric JSON
//! field of the records into `"sum"`.

use weir_sdk::prelude::*;

struct WindowCount {
    sum_field: Option<String>,
}

impl WindowAggregate for WindowCount {
    /// (records, sum of `sum_field`)
    type Acc = (u64, i64);

    fn open(ctx: &mut OpenContext) -> Result<Self, Error> {
        Ok(WindowCount { sum_field: ctx.config("sum").map(str::to_string) })
    }

    fn create(&self) -> Self::Acc {
        (0, 0)
    }

    fn add(&self, acc: &mut Self::Acc, record: Record<'_>) -> Result<(), Error> {
        acc.0 += 1;
        if let Some(field) = &self.sum_field {
            let v: serde_json::Value = record.json()?;
            acc.1 += v[field.as_str()]
                .as_i64()
                .ok_or_else(|| Error::msg(format!("field '{field}' is not a whole number in {v}")))?;
        }
        Ok(())
    }

    fn merge(&self, acc: &mut Self::Acc, other: Self::Acc) -> Result<(), Error> {
        acc.0 += other.0;
        acc.1 += other.1;
        Ok(())
    }

    fn result(&self, key: &[u8], window: Window, acc: &Self::Acc) -> Result<Option<Vec<u8>>, Error> {
        let key = std::str::from_utf8(key)?;
        let mut out = serde_json::json!({"key": key, "start": window.start, "end": window.end, "count": acc.0});
        if self.sum_field.is_some() {
            out["sum"] = acc.1.into();
        }
        Ok(Some(serde_json::to_vec(&out)?))
    }
}

weir_sdk::export_window!(WindowCount);
