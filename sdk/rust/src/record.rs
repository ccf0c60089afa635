use crate::wit::weir::operator::types::{Batch, FiredTimers, TimeDomain as WitDomain};
use crate::{Error, NO_TIMESTAMP};

#[inline]
fn span(ends: &[u32], i: usize) -> std::ops::Range<usize> {
    let start = if i == 0 { 0 } else { ends[i - 1] as usize };
    start..ends[i] as usize
}

/// One input record.
///
/// ```no_run
/// # use weir_sdk::prelude::*;
/// # fn f(record: Record<'_>) -> Result<(), Error> {
/// let key: &[u8] = record.key();
/// let text: &str = record.value_str()?;
/// let parsed: serde_json::Value = record.json()?;
/// let when: Option<i64> = record.timestamp();
/// # Ok(()) }
/// ```
#[derive(Clone, Copy)]
pub struct Record<'a> {
    pub(crate) batch: &'a Batch,
    pub(crate) row: usize,
    pub(crate) kind: RowKind,
}

/// What a row does to the table a changelog describes (Flink's `RowKind`).
/// Operators exported with [`export_changelog_operator!`](crate::export_changelog_operator)
/// read and emit them; every record of an append-only stream is an
/// [`Insert`](RowKind::Insert).
///
/// ```no_run
/// # use weir_sdk::prelude::*;
/// # fn f(ctx: &mut Context, record: Record<'_>) -> Result<(), Error> {
/// match record.kind() {
///     RowKind::Insert | RowKind::UpdateAfter => ctx.emit_kind(record.kind(), record.key(), record.value()),
///     RowKind::UpdateBefore | RowKind::Delete => ctx.emit_kind(record.kind(), record.key(), record.value()),
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum RowKind {
    /// +I: a new row.
    #[default]
    Insert,
    /// -U: a row as it was before an update; its `UpdateAfter` follows.
    UpdateBefore,
    /// +U: a row as it is after an update.
    UpdateAfter,
    /// -D: a row removed.
    Delete,
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

    /// The row removes its key's earlier row (`-U`, `-D`).
    pub fn retracts(self) -> bool {
        matches!(self, RowKind::UpdateBefore | RowKind::Delete)
    }
}

impl std::fmt::Display for RowKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.short())
    }
}

impl<'a> Record<'a> {
    /// The row's kind: always [`RowKind::Insert`] in an operator exported
    /// with [`export_operator!`](crate::export_operator), whose world carries
    /// no row kinds.
    #[inline]
    pub fn kind(&self) -> RowKind {
        self.kind
    }

    #[inline]
    pub fn key(&self) -> &'a [u8] {
        &self.batch.keys[span(&self.batch.key_ends, self.row)]
    }

    /// The key as UTF-8.
    #[inline]
    pub fn key_str(&self) -> Result<&'a str, Error> {
        std::str::from_utf8(self.key()).map_err(|e| Error::msg(format!("record key is not UTF-8: {e}")))
    }

    #[inline]
    pub fn value(&self) -> &'a [u8] {
        &self.batch.values[span(&self.batch.value_ends, self.row)]
    }

    /// The value as UTF-8.
    #[inline]
    pub fn value_str(&self) -> Result<&'a str, Error> {
        std::str::from_utf8(self.value()).map_err(|e| Error::msg(format!("record value is not UTF-8: {e}")))
    }

    /// The value parsed as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(self.value()).map_err(|e| Error::msg(format!("record value is not the expected JSON: {e}")))
    }

    /// Event time in milliseconds since the Unix epoch, if the record has one.
    #[inline]
    pub fn timestamp(&self) -> Option<i64> {
        Some(self.batch.timestamps[self.row]).filter(|&t| t != NO_TIMESTAMP)
    }

    /// The record's headers.
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        let row = self.row as u32;
        self.batch.headers.iter().filter(move |h| h.row == row).map(|h| (h.name.as_str(), h.value.as_slice()))
    }
}

/// The clock a timer follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeDomain {
    EventTime,
    ProcessingTime,
}

/// A timer that fired.
///
/// ```no_run
/// # use weir_sdk::prelude::*;
/// # fn f(ctx: &mut Context, timer: Timer<'_>) {
/// if timer.domain() == TimeDomain::EventTime {
///     ctx.emit(timer.key(), format!("window ending {} closed", timer.time()));
/// }
/// # }
/// ```
#[derive(Clone, Copy)]
pub struct Timer<'a> {
    pub(crate) timers: &'a FiredTimers,
    pub(crate) row: usize,
}

impl<'a> Timer<'a> {
    pub fn key(&self) -> &'a [u8] {
        &self.timers.keys[span(&self.timers.key_ends, self.row)]
    }

    #[inline]
    pub fn time(&self) -> i64 {
        self.timers.times[self.row]
    }

    #[inline]
    pub fn domain(&self) -> TimeDomain {
        match self.timers.domains[self.row] {
            WitDomain::EventTime => TimeDomain::EventTime,
            WitDomain::ProcessingTime => TimeDomain::ProcessingTime,
        }
    }
}
