//! Columnar record batches: the unit records travel in, on the host and across
//! the Wasm boundary (the layout matches `weir:operator/types.batch`).

/// Event time of a record that has none.
pub const NO_TIMESTAMP: i64 = i64::MIN;

/// Where a record came from: the source node (by index in the dataflow) and the
/// source's offset for it (a line number, an event sequence number, ...).
/// Operators' outputs inherit the origin of the input that caused them, so an
/// error anywhere can name the source record behind it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Origin {
    pub source: u16,
    /// The source's split the record came from (a Kafka partition, as the
    /// source numbers them); 0 for sources of one split. Watermarks are kept
    /// per split.
    pub split: u32,
    pub offset: u64,
}

impl Origin {
    /// The record at `offset` of a source's only split.
    pub fn at(offset: u64) -> Self {
        Origin { source: 0, split: 0, offset }
    }
}

/// What a row is in a changelog (Flink's `RowKind`): an insert, the old and
/// new rows of an update, or a delete. Append-only streams have inserts only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum RowKind {
    #[default]
    Insert = 0,
    UpdateBefore = 1,
    UpdateAfter = 2,
    Delete = 3,
}

impl RowKind {
    /// Flink's short form: `+I`, `-U`, `+U`, `-D`.
    pub fn short(self) -> &'static str {
        match self {
            RowKind::Insert => "+I",
            RowKind::UpdateBefore => "-U",
            RowKind::UpdateAfter => "+U",
            RowKind::Delete => "-D",
        }
    }

    /// A row that removes its key's earlier row (`-U`, `-D`).
    pub fn retracts(self) -> bool {
        matches!(self, RowKind::UpdateBefore | RowKind::Delete)
    }
}

impl std::fmt::Display for RowKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.short())
    }
}

/// When the records of a batch were read: the instant its source read its
/// first record, carried through operators and exchanges so that sinks can
/// tell the latency of what they write. Not part of a batch's content:
/// batches compare equal whatever their birth.
#[derive(Clone, Copy, Debug, Default)]
pub struct Born(pub Option<std::time::Instant>);

impl PartialEq for Born {
    fn eq(&self, _: &Born) -> bool {
        true
    }
}

impl Born {
    pub fn now() -> Self {
        Born(Some(std::time::Instant::now()))
    }

    /// The earlier of two births (a batch merged from two is as old as the older).
    pub fn earliest(self, other: Born) -> Born {
        match (self.0, other.0) {
            (Some(a), Some(b)) => Born(Some(a.min(b))),
            (a, b) => Born(a.or(b)),
        }
    }
}

/// One header of one row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub row: u32,
    pub name: String,
    pub value: Vec<u8>,
}

/// Records in columnar form. Row `i`'s key is `keys[key_ends[i-1]..key_ends[i]]`
/// (with `key_ends[-1] = 0`); values likewise. `headers` is sparse and sorted by row.
/// `kinds` is empty in an append-only batch (every row an insert), else one
/// per row.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RecordBatch {
    pub keys: Vec<u8>,
    pub key_ends: Vec<u32>,
    pub values: Vec<u8>,
    pub value_ends: Vec<u32>,
    pub timestamps: Vec<i64>,
    pub headers: Vec<Header>,
    pub origins: Vec<Origin>,
    pub kinds: Vec<RowKind>,
    /// When its records were read (see [`Born`]).
    pub born: Born,
}

/// A borrowed view of one row.
#[derive(Clone, Copy, Debug)]
pub struct RecordRef<'a> {
    pub key: &'a [u8],
    pub value: &'a [u8],
    pub timestamp: i64,
    pub origin: Origin,
}

fn span(ends: &[u32], i: usize) -> std::ops::Range<usize> {
    let start = if i == 0 { 0 } else { ends[i - 1] as usize };
    start..ends[i] as usize
}

fn end_offset(len: usize) -> u32 {
    u32::try_from(len).expect("a record batch holds less than 4 GiB of keys or values")
}

impl RecordBatch {
    pub fn with_capacity(rows: usize) -> Self {
        RecordBatch {
            keys: Vec::with_capacity(rows * 8),
            key_ends: Vec::with_capacity(rows),
            values: Vec::with_capacity(rows * 32),
            value_ends: Vec::with_capacity(rows),
            timestamps: Vec::with_capacity(rows),
            headers: Vec::new(),
            origins: Vec::with_capacity(rows),
            kinds: Vec::new(),
            born: Born::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.key_ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.key_ends.is_empty()
    }

    /// Bytes held by keys and values; sources close a batch well before the
    /// 4 GiB that `u32` offsets allow.
    pub fn byte_size(&self) -> usize {
        self.keys.len() + self.values.len()
    }

    pub fn key(&self, i: usize) -> &[u8] {
        &self.keys[span(&self.key_ends, i)]
    }

    pub fn value(&self, i: usize) -> &[u8] {
        &self.values[span(&self.value_ends, i)]
    }

    pub fn row(&self, i: usize) -> RecordRef<'_> {
        RecordRef {
            key: self.key(i),
            value: self.value(i),
            timestamp: self.timestamps[i],
            origin: self.origins[i],
        }
    }

    /// The kind of row `i`.
    pub fn kind(&self, i: usize) -> RowKind {
        self.kinds.get(i).copied().unwrap_or_default()
    }

    /// Whether any row is not an insert.
    pub fn is_changelog(&self) -> bool {
        self.kinds.iter().any(|k| *k != RowKind::Insert)
    }

    pub fn rows(&self) -> impl Iterator<Item = RecordRef<'_>> + '_ {
        (0..self.len()).map(|i| self.row(i))
    }

    /// Headers of row `i`.
    pub fn headers_of(&self, i: usize) -> impl Iterator<Item = &Header> + '_ {
        let row = i as u32;
        let start = self.headers.partition_point(|h| h.row < row);
        self.headers[start..].iter().take_while(move |h| h.row == row)
    }

    pub fn push(&mut self, key: &[u8], value: &[u8], timestamp: i64, origin: Origin) {
        self.keys.extend_from_slice(key);
        self.key_ends.push(end_offset(self.keys.len()));
        self.values.extend_from_slice(value);
        self.value_ends.push(end_offset(self.values.len()));
        self.timestamps.push(timestamp);
        self.origins.push(origin);
        if !self.kinds.is_empty() {
            self.kinds.push(RowKind::Insert);
        }
    }

    /// Append a row of kind `kind`.
    pub fn push_kind(&mut self, key: &[u8], value: &[u8], timestamp: i64, origin: Origin, kind: RowKind) {
        self.push(key, value, timestamp, origin);
        self.set_kind(self.len() - 1, kind);
    }

    /// Make row `i` of kind `kind`.
    pub fn set_kind(&mut self, i: usize, kind: RowKind) {
        if self.kinds.is_empty() {
            if kind == RowKind::Insert {
                return;
            }
            self.kinds = vec![RowKind::Insert; self.len()];
        }
        self.kinds[i] = kind;
    }

    /// Append row `i` of `other` (with its headers), optionally with another key.
    pub fn push_row_from(&mut self, other: &RecordBatch, i: usize, key: Option<&[u8]>) {
        let row = self.len() as u32;
        self.push(
            key.unwrap_or_else(|| other.key(i)),
            other.value(i),
            other.timestamps[i],
            other.origins[i],
        );
        self.set_kind(row as usize, other.kind(i));
        if !other.headers.is_empty() {
            for h in other.headers_of(i) {
                self.headers.push(Header { row, ..h.clone() });
            }
        }
    }

    /// Append all rows of `other`.
    pub fn append(&mut self, other: &RecordBatch) {
        let rows = self.len() as u32;
        let kbase = end_offset(self.keys.len());
        let vbase = end_offset(self.values.len());
        self.keys.extend_from_slice(&other.keys);
        self.key_ends.extend(other.key_ends.iter().map(|e| e + kbase));
        self.values.extend_from_slice(&other.values);
        self.value_ends.extend(other.value_ends.iter().map(|e| e + vbase));
        self.timestamps.extend_from_slice(&other.timestamps);
        self.origins.extend_from_slice(&other.origins);
        if !other.kinds.is_empty() {
            if self.kinds.is_empty() {
                self.kinds = vec![RowKind::Insert; rows as usize];
            }
            self.kinds.extend_from_slice(&other.kinds);
        } else if !self.kinds.is_empty() {
            self.kinds.resize(self.len(), RowKind::Insert);
        }
        self.headers.extend(other.headers.iter().map(|h| Header { row: h.row + rows, ..h.clone() }));
        self.born = self.born.earliest(other.born);
    }

    pub fn clear(&mut self) {
        self.keys.clear();
        self.key_ends.clear();
        self.values.clear();
        self.value_ends.clear();
        self.timestamps.clear();
        self.headers.clear();
        self.origins.clear();
        self.kinds.clear();
        self.born = Born::default();
    }

    /// Replace the batch with an empty one of the same capacity, returning the old.
    pub fn take(&mut self) -> RecordBatch {
        let cap = self.key_ends.capacity();
        std::mem::replace(self, RecordBatch::with_capacity(cap))
    }

    /// Check the invariants a batch from an untrusted producer (a guest) must hold.
    pub fn validate(&self) -> Result<(), String> {
        let n = self.key_ends.len();
        if self.value_ends.len() != n || self.timestamps.len() != n {
            return Err(format!(
                "batch columns disagree on the row count: {} key ends, {} value ends, {} timestamps",
                n,
                self.value_ends.len(),
                self.timestamps.len()
            ));
        }
        if !self.kinds.is_empty() && self.kinds.len() != n {
            return Err(format!("batch columns disagree on the row count: {n} rows, {} row kinds", self.kinds.len()));
        }
        check_ends("key", &self.key_ends, self.keys.len())?;
        check_ends("value", &self.value_ends, self.values.len())?;
        if let Some(h) = self.headers.iter().find(|h| h.row as usize >= n) {
            return Err(format!("header {:?} names row {} of a {n}-row batch", h.name, h.row));
        }
        if self.headers.windows(2).any(|w| w[0].row > w[1].row) {
            return Err("headers are not sorted by row".into());
        }
        Ok(())
    }
}

fn check_ends(what: &str, ends: &[u32], len: usize) -> Result<(), String> {
    let mut prev = 0u32;
    for (i, &e) in ends.iter().enumerate() {
        if e < prev {
            return Err(format!("{what} end of row {i} ({e}) is before the previous one ({prev})"));
        }
        prev = e;
    }
    if prev as usize != len {
        return Err(format!("{what} ends stop at {prev} but the {what} bytes are {len} long"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(offset: u64) -> Origin {
        Origin::at(offset)
    }

    #[test]
    fn push_and_read_rows() {
        let mut b = RecordBatch::default();
        b.push(b"a", b"1", 10, o(1));
        b.push(b"", b"two", NO_TIMESTAMP, o(2));
        b.push(b"ccc", b"", 30, o(3));
        assert_eq!(b.len(), 3);
        assert_eq!(b.key(0), b"a");
        assert_eq!(b.value(1), b"two");
        assert_eq!(b.key(2), b"ccc");
        assert_eq!(b.value(2), b"");
        assert_eq!(b.row(1).timestamp, NO_TIMESTAMP);
        assert_eq!(b.row(2).origin, o(3));
        b.validate().unwrap();
    }

    #[test]
    fn append_rebases_offsets_and_headers() {
        let mut a = RecordBatch::default();
        a.push(b"k1", b"v1", 1, o(1));
        let mut b = RecordBatch::default();
        b.push(b"k2", b"v2", 2, o(2));
        b.push(b"k3", b"v3", 3, o(3));
        b.headers.push(Header { row: 1, name: "h".into(), value: b"x".to_vec() });
        a.append(&b);
        assert_eq!(a.len(), 3);
        assert_eq!(a.key(2), b"k3");
        assert_eq!(a.value(1), b"v2");
        let hs: Vec<_> = a.headers_of(2).collect();
        assert_eq!(hs.len(), 1);
        assert_eq!(hs[0].value, b"x");
        a.validate().unwrap();
    }

    #[test]
    fn push_row_from_rekeys_and_keeps_headers() {
        let mut src = RecordBatch::default();
        src.push(b"old", b"v", 5, o(9));
        src.headers.push(Header { row: 0, name: "h".into(), value: vec![1] });
        let mut dst = RecordBatch::default();
        dst.push(b"x", b"y", 0, o(0));
        dst.push_row_from(&src, 0, Some(b"new"));
        assert_eq!(dst.key(1), b"new");
        assert_eq!(dst.headers_of(1).count(), 1);
        assert_eq!(dst.row(1).origin, o(9));
    }

    #[test]
    fn kinds_stay_empty_for_inserts_and_follow_rows_through_append_and_copy() {
        let mut a = RecordBatch::default();
        a.push(b"k1", b"v1", 1, o(1));
        a.push_kind(b"k1", b"v1", 1, o(1), RowKind::Insert);
        assert!(a.kinds.is_empty() && !a.is_changelog());
        let mut b = RecordBatch::default();
        b.push_kind(b"k1", b"v1", 2, o(2), RowKind::UpdateBefore);
        b.push_kind(b"k1", b"v2", 2, o(2), RowKind::UpdateAfter);
        b.push(b"k3", b"v3", 3, o(3));
        b.push_kind(b"k4", b"v4", 3, o(4), RowKind::Delete);
        assert_eq!(b.kinds, [RowKind::UpdateBefore, RowKind::UpdateAfter, RowKind::Insert, RowKind::Delete]);
        a.append(&b);
        assert_eq!(a.len(), 6);
        assert_eq!((0..6).map(|i| a.kind(i).short()).collect::<Vec<_>>(), ["+I", "+I", "-U", "+U", "+I", "-D"]);
        a.validate().unwrap();
        let mut c = RecordBatch::default();
        c.push_row_from(&a, 5, None);
        c.push_row_from(&a, 0, None);
        assert_eq!(c.kinds, [RowKind::Delete, RowKind::Insert]);
        assert!(RowKind::Delete.retracts() && RowKind::UpdateBefore.retracts() && !RowKind::UpdateAfter.retracts());
        let mut d = RecordBatch::default();
        d.push(b"x", b"y", 0, o(0));
        d.append(&b);
        d.append(&RecordBatch { kinds: Vec::new(), ..c.clone() });
        assert_eq!(d.kinds.len(), d.len());
        c.kinds.push(RowKind::Insert);
        assert!(c.validate().unwrap_err().contains("row kinds"));
    }

    #[test]
    fn validate_names_what_is_wrong() {
        let mut b = RecordBatch::default();
        b.push(b"a", b"b", 0, o(0));
        b.value_ends[0] = 7;
        let err = b.validate().unwrap_err();
        assert!(err.contains("value ends stop at 7"), "{err}");
        let mut b = RecordBatch::default();
        b.push(b"a", b"b", 0, o(0));
        b.timestamps.push(1);
        assert!(b.validate().unwrap_err().contains("row count"));
    }
}
