//! Version 2 of `plugins/window-count` for the hot-swap tests: the same
//! accumulator (so it takes over v1's windows), and `"v":2` in each result.

use weir_sdk::prelude::*;

struct WindowCount;

impl WindowAggregate for WindowCount {
    /// (records, sum), as in window-count v1.
    type Acc = (u64, i64);

    fn open(_: &mut OpenContext) -> Result<Self, Error> {
        Ok(WindowCount)
    }

    fn create(&self) -> Self::Acc {
        (0, 0)
    }

    fn add(&self, acc: &mut Self::Acc, _: Record<'_>) -> Result<(), Error> {
        acc.0 += 1;
        Ok(())
    }

    fn merge(&self, acc: &mut Self::Acc, other: Self::Acc) -> Result<(), Error> {
        acc.0 += other.0;
        acc.1 += other.1;
        Ok(())
    }

    fn result(&self, key: &[u8], window: Window, acc: &Self::Acc) -> Result<Option<Vec<u8>>, Error> {
        let key = std::str::from_utf8(key)?;
        let out = serde_json::json!({"key": key, "start": window.start, "end": window.end, "count": acc.0, "v": 2});
        Ok(Some(serde_json::to_vec(&out)?))
    }
}

weir_sdk::export_window!(WindowCount);
