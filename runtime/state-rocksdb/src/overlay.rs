//! The record cache's dirty entries in a snapshot. At a barrier they are not
//! written back to RocksDB (a sort and an SST or memtable insert per entry,
//! in the task, at every checkpoint): the task copies their rows into one
//! buffer, the snapshot writer (off the task) stores it as the snapshot's
//! overlay file, and a restore applies its rows over the checkpoint's. The
//! entries stay dirty in the cache and are written back when it overflows.
//!
//! File: magic, format, then rows back to back: state index (u32 LE, into the
//! snapshot's metadata), row key length (u32 LE) and row key, value length
//! (u32 LE; `u32::MAX` for a delete) and value.

use std::path::Path;

use weir_state::{StateError, StateId};

pub(super) const OVERLAY_FILE: &str = "weir-rocks.overlay";
const MAGIC: &[u8; 8] = b"WEIRROVL";
const FORMAT: u32 = 1;
const DELETE: u32 = u32::MAX;

/// Rows to apply over a checkpoint.
#[derive(Default)]
pub(super) struct Overlay {
    bytes: Vec<u8>,
    rows: usize,
}

/// One decoded row: a put of `Some(value)` or a delete.
pub(super) struct Row<'a> {
    pub state: usize,
    pub key: &'a [u8],
    pub value: Option<&'a [u8]>,
}

impl Overlay {
    pub(super) fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Start a row of `state` whose row key `push_key` appends; then its value
    /// goes in through [`Self::put_value`] or [`Self::delete`].
    pub(super) fn begin(&mut self, state: StateId, push_key: impl FnOnce(&mut Vec<u8>)) {
        if self.bytes.is_empty() {
            self.bytes.extend_from_slice(MAGIC);
            self.bytes.extend_from_slice(&FORMAT.to_le_bytes());
        }
        self.rows += 1;
        self.bytes.extend_from_slice(&state.to_le_bytes());
        self.push_with_length(push_key);
    }

    /// The current row's value, which `push_value` appends.
    pub(super) fn put_value(&mut self, push_value: impl FnOnce(&mut Vec<u8>)) {
        self.push_with_length(push_value);
    }

    /// What `push` appends, after its length (u32 LE).
    fn push_with_length(&mut self, push: impl FnOnce(&mut Vec<u8>)) {
        let at = self.bytes.len();
        self.bytes.extend_from_slice(&[0; 4]);
        push(&mut self.bytes);
        let len = (self.bytes.len() - at - 4) as u32;
        self.bytes[at..at + 4].copy_from_slice(&len.to_le_bytes());
    }

    /// The current row is a delete.
    pub(super) fn delete(&mut self) {
        self.bytes.extend_from_slice(&DELETE.to_le_bytes());
    }

    /// Store the rows at `path` (no fsync: the checkpoint store makes stored
    /// files durable).
    pub(super) fn write(&self, path: &Path) -> Result<(), StateError> {
        std::fs::write(path, &self.bytes).map_err(|e| StateError::storage(format_args!("writing {}", path.display()), e))
    }

    /// Every row of the overlay file `bytes` (read from `file`), in order.
    pub(super) fn rows<'a>(bytes: &'a [u8], file: &str) -> Result<Vec<Row<'a>>, StateError> {
        let bad = |message: String| StateError::Restore { file: file.to_string(), message };
        let rest = bytes.strip_prefix(MAGIC.as_slice()).ok_or_else(|| bad("not a RocksDB-backend overlay file (bad magic)".into()))?;
        let (format, mut rest) = rest.split_at_checked(4).ok_or_else(|| bad("truncated header".into()))?;
        let format = u32::from_le_bytes(format.try_into().expect("4 bytes"));
        if format != FORMAT {
            return Err(bad(format!("overlay format {format}; this version reads format {FORMAT}")));
        }
        let mut rows = Vec::new();
        while !rest.is_empty() {
            let n = rows.len();
            let truncated = || bad(format!("row {n} is truncated"));
            let u32_at = |r: &'a [u8]| -> Option<(u32, &'a [u8])> {
                let (v, r) = r.split_at_checked(4)?;
                Some((u32::from_le_bytes(v.try_into().ok()?), r))
            };
            let (state, r) = u32_at(rest).ok_or_else(truncated)?;
            let (key_len, r) = u32_at(r).ok_or_else(truncated)?;
            let (key, r) = r.split_at_checked(key_len as usize).ok_or_else(truncated)?;
            let (value_len, r) = u32_at(r).ok_or_else(truncated)?;
            let (value, r) = if value_len == DELETE {
                (None, r)
            } else {
                let (v, r) = r.split_at_checked(value_len as usize).ok_or_else(truncated)?;
                (Some(v), r)
            };
            rows.push(Row { state: state as usize, key, value });
            rest = r;
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_read_back_as_written_and_damage_is_named() {
        let mut o = Overlay::default();
        assert!(o.is_empty());
        o.begin(0, |b| b.extend_from_slice(b"key-a"));
        o.put_value(|b| b.extend_from_slice(b"value"));
        o.begin(3, |b| b.extend_from_slice(b"key-b"));
        o.delete();
        o.begin(1, |b| b.extend_from_slice(b""));
        o.put_value(|_| {});
        let rows = Overlay::rows(&o.bytes, "f").unwrap();
        let got: Vec<(usize, &[u8], Option<&[u8]>)> = rows.iter().map(|r| (r.state, r.key, r.value)).collect();
        assert_eq!(got, vec![(0, &b"key-a"[..], Some(&b"value"[..])), (3, &b"key-b"[..], None), (1, &b""[..], Some(&b""[..]))]);
        let cut = &o.bytes[..o.bytes.len() - 3];
        let err = Overlay::rows(cut, "snap/weir-rocks.overlay").err().unwrap();
        assert_eq!(err.to_string(), "cannot restore state from snap/weir-rocks.overlay: row 2 is truncated");
        let err = Overlay::rows(b"WEIRHEAP\x01\0\0\0", "f").err().unwrap();
        assert_eq!(err.to_string(), "cannot restore state from f: not a RocksDB-backend overlay file (bad magic)");
    }
}
