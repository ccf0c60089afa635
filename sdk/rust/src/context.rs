use std::cell::RefCell;
use std::str::FromStr;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::record::RowKind;
use crate::state::{ListState, MapState, Reducer, ReducingState, StateOptions, ValueState};
use crate::wit::weir::operator::{runtime, state as wit_state, timers, types};
use crate::Error;

/// Event time of a record that has none.
pub const NO_TIMESTAMP: i64 = i64::MIN;

/// Where this instance runs.
pub use runtime::TaskInfo;

/// Log levels for [`Context::log`] and [`OpenContext::log`].
pub use runtime::Level;

/// A declared side output.
///
/// ```no_run
/// # use weir_sdk::prelude::*;
/// # fn f(ctx: &mut OpenContext) -> Result<(), Error> {
/// let late: SideOutput = ctx.side_output("late")?;
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct SideOutput(pub(crate) u32);

/// A declared counter metric.
///
/// ```no_run
/// # use weir_sdk::prelude::*;
/// # fn f(ctx: &mut OpenContext) -> Result<(), Error> {
/// let bad: Counter = ctx.counter("bad_records")?;
/// bad.add(1);
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Counter(u32);

impl Counter {
    pub fn add(&self, delta: u64) {
        runtime::counter_add(self.0, delta);
    }
}

/// What an operator sees while it opens: its configuration, and the
/// declarations of its states, side outputs and counters.
///
/// ```no_run
/// # use weir_sdk::prelude::*;
/// # fn f(ctx: &mut OpenContext) -> Result<(), Error> {
/// let threshold: f64 = ctx.config_parse("threshold")?.unwrap_or(3.0);
/// let mode = ctx.config("mode").unwrap_or("count");
/// # Ok(()) }
/// ```
pub struct OpenContext {
    config: Vec<(String, String)>,
}

impl OpenContext {
    pub(crate) fn new(config: Vec<(String, String)>) -> Self {
        OpenContext { config }
    }

    /// A value of the operator's `config` map in the pipeline spec.
    pub fn config(&self, key: &str) -> Option<&str> {
        self.config.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// A config value parsed with `FromStr`; an unparsable value is an error
    /// naming the key.
    pub fn config_parse<T: FromStr>(&self, key: &str) -> Result<Option<T>, Error>
    where
        T::Err: std::fmt::Display,
    {
        self.config(key)
            .map(|v| v.parse::<T>().map_err(|e| Error::msg(format!("config '{key}' = {v:?} is invalid: {e}"))))
            .transpose()
    }

    /// All config entries.
    pub fn config_entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.config.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn task_info(&self) -> TaskInfo {
        runtime::get_task_info()
    }

    /// Declare a value state holding one `T` per key.
    pub fn value_state<T: Serialize + DeserializeOwned>(&mut self, options: impl Into<StateOptions>) -> Result<ValueState<T>, Error> {
        ValueState::declare(options.into())
    }

    /// Declare a map state holding a map from `K` to `V` per key.
    pub fn map_state<K: Serialize + DeserializeOwned, V: Serialize + DeserializeOwned>(&mut self, options: impl Into<StateOptions>) -> Result<MapState<K, V>, Error> {
        MapState::declare(options.into())
    }

    /// Declare a list state holding a list of `T` per key.
    pub fn list_state<T: Serialize + DeserializeOwned>(&mut self, options: impl Into<StateOptions>) -> Result<ListState<T>, Error> {
        ListState::declare(options.into())
    }

    /// Declare a reducing state: one i64 per key combined with `reducer` on the host.
    pub fn reducing_state(&mut self, options: impl Into<StateOptions>, reducer: Reducer) -> Result<ReducingState, Error> {
        ReducingState::declare(options.into(), reducer)
    }

    /// Declare a named side output.
    pub fn side_output(&mut self, name: &str) -> Result<SideOutput, Error> {
        runtime::declare_output(name).map(SideOutput).map_err(Error::msg)
    }

    /// Declare a counter metric.
    pub fn counter(&mut self, name: &str) -> Result<Counter, Error> {
        runtime::declare_counter(name).map(Counter).map_err(Error::msg)
    }

    pub fn log(&self, level: Level, message: &str) {
        runtime::log(level, message);
    }
}

/// Emitted records, in columnar form, returned to the host with the call.
#[derive(Default)]
pub(crate) struct Out {
    keys: Vec<u8>,
    key_ends: Vec<u32>,
    values: Vec<u8>,
    value_ends: Vec<u32>,
    timestamps: Vec<i64>,
    outputs: Vec<u32>,
    causes: Vec<u32>,
    any_side: bool,
    /// One per row once a row other than an insert was emitted; empty before.
    kinds: Vec<RowKind>,
}

/// What an operator sees while it handles one record or timer: emitting,
/// state scope and timers.
///
/// ```no_run
/// # use weir_sdk::prelude::*;
/// # fn f(ctx: &mut Context, late: SideOutput) -> Result<(), Error> {
/// ctx.emit("key", "value");
/// ctx.emit_json("key", &serde_json::json!({"n": 1}))?;
/// ctx.emit_to(late, "key", "too late");
/// ctx.register_event_time_timer(ctx.current_watermark() + 60_000);
/// # Ok(()) }
/// ```
pub struct Context {
    pub(crate) row: u32,
    pub(crate) timestamp: i64,
    pub(crate) out: Out,
    /// Value states read in this call, by state id (see [`Column`]).
    columns: RefCell<Vec<Option<Column>>>,
}

/// A value state's values for every row of the current call, fetched with one
/// host call on first use, plus what this call wrote. Rows with the same key
/// share the slot of their key's first row; writes go back in one host call
/// when the call ends. What a call writes is appended to one buffer (no
/// allocation per written value).
pub(crate) struct Column {
    first_row: Vec<u32>,
    bytes: Vec<u8>,
    ends: Vec<u32>,
    present: Vec<bool>,
    /// Per first row: what this call wrote.
    written: Vec<Written>,
    /// The bytes of written values (an overwritten value's stay until the
    /// call ends).
    arena: Vec<u8>,
    dirty: Vec<u32>,
}

#[derive(Clone, Copy)]
enum Written {
    Nothing,
    /// `arena[start..end]`.
    Value(u32, u32),
    Cleared,
}

impl Column {
    fn fetch(state: u32) -> Self {
        let c = wit_state::value_get_column(state);
        let n = c.first_row.len();
        Column {
            first_row: c.first_row,
            bytes: c.bytes,
            ends: c.ends,
            present: c.present,
            written: vec![Written::Nothing; n],
            arena: Vec::new(),
            dirty: Vec::new(),
        }
    }

    /// The current value of `row`'s key.
    #[inline]
    pub(crate) fn get(&self, row: usize) -> Option<&[u8]> {
        let first = self.first_row[row] as usize;
        match self.written[first] {
            Written::Value(start, end) => Some(&self.arena[start as usize..end as usize]),
            Written::Cleared => None,
            Written::Nothing if self.present[first] => {
                let start = if first == 0 { 0 } else { self.ends[first - 1] as usize };
                Some(&self.bytes[start..self.ends[first] as usize])
            }
            Written::Nothing => None,
        }
    }

    /// Set (`Some`) or clear (`None`) the value of `row`'s key.
    #[inline]
    pub(crate) fn put(&mut self, row: usize, value: Option<&[u8]>) {
        let first = self.first_row[row];
        let slot = &mut self.written[first as usize];
        if matches!(slot, Written::Nothing) {
            self.dirty.push(first);
        }
        *slot = match value {
            Some(v) => {
                let start = self.arena.len() as u32;
                self.arena.extend_from_slice(v);
                Written::Value(start, self.arena.len() as u32)
            }
            None => Written::Cleared,
        };
    }

    fn flush(&mut self, state: u32) {
        if self.dirty.is_empty() {
            return;
        }
        let (mut bytes, mut ends, mut present) = (Vec::new(), Vec::with_capacity(self.dirty.len()), Vec::with_capacity(self.dirty.len()));
        for &row in &self.dirty {
            let v = match self.written[row as usize] {
                Written::Value(start, end) => Some(&self.arena[start as usize..end as usize]),
                Written::Cleared | Written::Nothing => None,
            };
            if let Some(v) = v {
                bytes.extend_from_slice(v);
            }
            ends.push(bytes.len() as u32);
            present.push(v.is_some());
        }
        wit_state::value_set_rows(state, &self.dirty, &bytes, &ends, &present);
        self.dirty.clear();
    }
}

impl Context {
    /// A context for a call over `rows` input rows (a capacity hint: most
    /// operators emit about one record per input).
    pub(crate) fn new(rows: usize) -> Self {
        let out = Out {
            key_ends: Vec::with_capacity(rows),
            value_ends: Vec::with_capacity(rows),
            timestamps: Vec::with_capacity(rows),
            outputs: Vec::with_capacity(rows),
            causes: Vec::with_capacity(rows),
            ..Out::default()
        };
        Context { row: 0, timestamp: NO_TIMESTAMP, out, columns: RefCell::new(Vec::new()) }
    }

    /// Run `f` on value state `state`'s column and the current row.
    #[inline]
    pub(crate) fn with_column<R>(&self, state: u32, f: impl FnOnce(&mut Column, usize) -> R) -> R {
        let mut cols = self.columns.borrow_mut();
        let i = state as usize;
        if cols.len() <= i {
            cols.resize_with(i + 1, || None);
        }
        let col = cols[i].get_or_insert_with(|| Column::fetch(state));
        f(col, self.row as usize)
    }

    /// Write back what value states were given in this call.
    pub(crate) fn flush_states(&mut self) {
        for (state, col) in self.columns.get_mut().iter_mut().enumerate() {
            if let Some(col) = col {
                col.flush(state as u32);
            }
        }
    }

    /// The row of the current input: the scope of state and timer calls.
    #[inline]
    pub(crate) fn scope(&self) -> u32 {
        self.row
    }

    /// Emit a record to the main output, with the current record's event time.
    #[inline]
    pub fn emit(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.push(0, key.as_ref(), value.as_ref(), self.timestamp);
    }

    /// Emit a record to the main output with the given event time.
    #[inline]
    pub fn emit_at(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>, timestamp: i64) {
        self.push(0, key.as_ref(), value.as_ref(), timestamp);
    }

    /// Emit a record whose value is `value` as JSON.
    #[inline]
    pub fn emit_json<T: serde::Serialize + ?Sized>(&mut self, key: impl AsRef<[u8]>, value: &T) -> Result<(), Error> {
        let v = serde_json::to_vec(value)?;
        self.push(0, key.as_ref(), &v, self.timestamp);
        Ok(())
    }

    /// Emit a record to a side output.
    #[inline]
    pub fn emit_to(&mut self, output: SideOutput, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.push(output.0, key.as_ref(), value.as_ref(), self.timestamp);
    }

    /// Emit a row of a changelog to the main output, with the current
    /// record's event time: an update's `UpdateBefore` and `UpdateAfter`, a
    /// `Delete`, or an `Insert` (what [`emit`](Self::emit) emits). Only an
    /// operator exported with
    /// [`export_changelog_operator!`](crate::export_changelog_operator) may
    /// emit kinds other than `Insert`, and only when it reads a changelog.
    ///
    /// ```no_run
    /// # use weir_sdk::prelude::*;
    /// # fn f(ctx: &mut Context, record: Record<'_>) -> Result<(), Error> {
    /// // Pass every change through, with its kind.
    /// ctx.emit_kind(record.kind(), record.key(), record.value());
    /// # Ok(()) }
    /// ```
    #[inline]
    pub fn emit_kind(&mut self, kind: RowKind, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.push(0, key.as_ref(), value.as_ref(), self.timestamp);
        self.set_last_kind(kind);
    }

    /// [`emit_kind`](Self::emit_kind) with `value` as JSON.
    #[inline]
    pub fn emit_json_kind<T: serde::Serialize + ?Sized>(&mut self, kind: RowKind, key: impl AsRef<[u8]>, value: &T) -> Result<(), Error> {
        let v = serde_json::to_vec(value)?;
        self.push(0, key.as_ref(), &v, self.timestamp);
        self.set_last_kind(kind);
        Ok(())
    }

    /// The kind of the row just pushed.
    #[inline]
    fn set_last_kind(&mut self, kind: RowKind) {
        let o = &mut self.out;
        if o.kinds.is_empty() {
            if kind == RowKind::Insert {
                return;
            }
            o.kinds.resize(o.key_ends.len(), RowKind::Insert);
        }
        *o.kinds.last_mut().expect("a row was pushed") = kind;
    }

    #[inline(always)]
    fn push(&mut self, output: u32, key: &[u8], value: &[u8], timestamp: i64) {
        let o = &mut self.out;
        append(&mut o.keys, key);
        o.key_ends.push(o.keys.len() as u32);
        append(&mut o.values, value);
        o.value_ends.push(o.values.len() as u32);
        o.timestamps.push(timestamp);
        o.outputs.push(output);
        o.causes.push(self.row);
        o.any_side |= output != 0;
        if !o.kinds.is_empty() {
            o.kinds.push(RowKind::Insert);
        }
    }

    pub fn register_event_time_timer(&mut self, time: i64) {
        timers::register_event_time_timer(self.scope(), time);
    }

    pub fn delete_event_time_timer(&mut self, time: i64) {
        timers::delete_event_time_timer(self.scope(), time);
    }

    pub fn register_processing_time_timer(&mut self, time: i64) {
        timers::register_processing_time_timer(self.scope(), time);
    }

    pub fn delete_processing_time_timer(&mut self, time: i64) {
        timers::delete_processing_time_timer(self.scope(), time);
    }

    /// The operator's event-time watermark.
    pub fn current_watermark(&self) -> i64 {
        timers::current_watermark()
    }

    /// The host's wall clock in milliseconds since the Unix epoch.
    pub fn current_processing_time(&self) -> i64 {
        timers::current_processing_time()
    }

    pub fn log(&self, level: Level, message: &str) {
        runtime::log(level, message);
    }

    /// What was emitted: the records, and each row's kind (empty: all inserts).
    pub(crate) fn take_emitted(&mut self) -> (types::Emitted, Vec<RowKind>) {
        let o = std::mem::take(&mut self.out);
        let emitted = types::Emitted {
            records: types::Batch {
                keys: o.keys,
                key_ends: o.key_ends,
                values: o.values,
                value_ends: o.value_ends,
                timestamps: o.timestamps,
                headers: Vec::new(),
            },
            outputs: if o.any_side { o.outputs } else { Vec::new() },
            causes: o.causes,
        };
        (emitted, o.kinds)
    }
}

/// `dst.extend_from_slice(src)`, with short slices copied inline: a `memcpy`
/// of unknown length becomes Wasm's `memory.copy`, which wasmtime runs as a
/// call out of the guest's code, and keys and values are mostly short.
#[inline(always)]
fn append(dst: &mut Vec<u8>, src: &[u8]) {
    let n = src.len();
    if n > 32 {
        dst.extend_from_slice(src);
        return;
    }
    dst.reserve(n);
    // SAFETY: `reserve` made room for `n` bytes after `len`; every read is
    // inside `src` and every write inside that room; the byte ranges of two
    // overlapping unaligned copies (first and last word) are both in bounds.
    unsafe {
        let d = dst.as_mut_ptr().add(dst.len());
        let s = src.as_ptr();
        if n >= 16 {
            copy_word::<u64>(s, d);
            copy_word::<u64>(s.add(8), d.add(8));
            copy_word::<u64>(s.add(n - 16), d.add(n - 16));
            copy_word::<u64>(s.add(n - 8), d.add(n - 8));
        } else if n >= 8 {
            copy_word::<u64>(s, d);
            copy_word::<u64>(s.add(n - 8), d.add(n - 8));
        } else if n >= 4 {
            copy_word::<u32>(s, d);
            copy_word::<u32>(s.add(n - 4), d.add(n - 4));
        } else if n > 0 {
            *d = *s;
            *d.add(n / 2) = *s.add(n / 2);
            *d.add(n - 1) = *s.add(n - 1);
        }
        dst.set_len(dst.len() + n);
    }
}

/// Copy one unaligned `T` from `s` to `d`.
#[inline(always)]
unsafe fn copy_word<T: Copy>(s: *const u8, d: *mut u8) {
    // SAFETY: the caller keeps both ranges of size_of::<T>() in bounds.
    unsafe { std::ptr::write_unaligned(d.cast::<T>(), std::ptr::read_unaligned(s.cast::<T>())) }
}

#[cfg(test)]
mod append_tests {
    #[test]
    fn append_copies_every_length_exactly() {
        let src: Vec<u8> = (0..80u8).collect();
        for start in 0..3 {
            for n in 0..=70 {
                let mut dst = vec![9u8; start];
                super::append(&mut dst, &src[start..start + n]);
                assert_eq!(&dst[..start], &vec![9u8; start][..]);
                assert_eq!(&dst[start..], &src[start..start + n], "length {n} after {start} bytes");
            }
        }
    }

    /// Rows 0 and 2 share a key (row 2's first row is 0); row 1 had no value.
    /// Writes, overwrites and clears read back at once and go to the host as
    /// one value (or absence) per key, in the order first written.
    #[test]
    fn a_column_reads_back_what_the_call_wrote_and_flushes_one_value_per_key() {
        use super::{Column, Written};
        let mut c = Column {
            first_row: vec![0, 1, 0, 3],
            bytes: b"aaddd".to_vec(),
            ends: vec![2, 2, 2, 5],
            present: vec![true, false, true, true],
            written: vec![Written::Nothing; 4],
            arena: Vec::new(),
            dirty: Vec::new(),
        };
        assert_eq!((c.get(0), c.get(1), c.get(2), c.get(3)), (Some(&b"aa"[..]), None, Some(&b"aa"[..]), Some(&b"ddd"[..])));
        c.put(1, Some(b"b1"));
        c.put(2, Some(b"a2"));
        assert_eq!(c.get(0), Some(&b"a2"[..]), "row 2 wrote row 0's key");
        c.put(1, Some(b"b22"));
        c.put(3, None);
        assert_eq!((c.get(1), c.get(3)), (Some(&b"b22"[..]), None));
        c.put(3, Some(b""));
        assert_eq!(c.get(3), Some(&b""[..]), "an empty value is a value");
        c.put(0, None);
        assert_eq!((c.get(0), c.get(2)), (None, None));
        assert_eq!(c.dirty, vec![1, 0, 3]);
    }
}
