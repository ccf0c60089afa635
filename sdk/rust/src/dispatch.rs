//! The glue between the exported WIT functions and an [`Operator`].

use std::any::Any;
use std::cell::{Cell, RefCell};

use crate::context::{Context, OpenContext};
use crate::record::{Record, RowKind, Timer};
use crate::wit::weir::operator::{runtime, types};
use crate::wit_changelog::weir::operator0_3_0::changelog;
use crate::Operator;

thread_local! {
    static INSTANCE: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
    /// The input row being handled, for the panic hook.
    static ROW: Cell<Option<u32>> = const { Cell::new(None) };
}

pub(crate) fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload_as_str().unwrap_or("panic");
        let message = match info.location() {
            Some(l) => format!("{payload} (at {}:{})", l.file(), l.line()),
            None => payload.to_string(),
        };
        runtime::report_panic(ROW.get(), &message);
    }));
}

/// The input row being handled, for the panic hook.
pub(crate) fn set_row(row: Option<u32>) {
    ROW.set(row);
}

pub fn open<T: Operator>(config: Vec<(String, String)>) -> Result<(), String> {
    install_panic_hook();
    let mut ctx = OpenContext::new(config);
    let op = T::open(&mut ctx).map_err(|e| e.to_string())?;
    INSTANCE.with(|i| *i.borrow_mut() = Some(Box::new(op)));
    Ok(())
}

fn with<T: Operator, R>(f: impl FnOnce(&mut T) -> R) -> R {
    INSTANCE.with(|i| {
        let mut guard = i.borrow_mut();
        let op = guard
            .as_mut()
            .and_then(|b| b.downcast_mut::<T>())
            .expect("the host calls open before anything else");
        f(op)
    })
}

/// Run `f` on each of `rows` input rows with the context scoped to it; the first
/// error stops the call and names its row.
fn each_row<T: Operator>(
    rows: usize,
    time: impl Fn(usize) -> i64,
    mut f: impl FnMut(&mut T, &mut Context, usize) -> Result<(), crate::Error>,
) -> Result<(types::Emitted, Vec<RowKind>), types::OperatorError> {
    with::<T, _>(|op| {
        let mut ctx = Context::new(rows);
        for row in 0..rows {
            ctx.row = row as u32;
            ctx.timestamp = time(row);
            ROW.set(Some(row as u32));
            if let Err(e) = f(op, &mut ctx, row) {
                ROW.set(None);
                return Err(types::OperatorError { row: Some(row as u32), message: e.to_string() });
            }
        }
        ROW.set(None);
        ctx.flush_states();
        Ok(ctx.take_emitted())
    })
}

/// For `weir:operator@0.1.0`, which carries no row kinds: emitting one is an
/// error naming the row it was emitted for.
fn inserts_only(reply: (types::Emitted, Vec<RowKind>)) -> Result<types::Emitted, types::OperatorError> {
    let (emitted, kinds) = reply;
    match kinds.iter().position(|k| *k != RowKind::Insert) {
        None => Ok(emitted),
        Some(i) => Err(types::OperatorError {
            row: emitted.causes.get(i).copied(),
            message: format!(
                "it emitted a {} row, but it is exported with weir_sdk::export_operator!, whose world \
                 (weir:operator@0.1.0) carries no row kinds: export it with weir_sdk::export_changelog_operator!",
                kinds[i]
            ),
        }),
    }
}

pub fn process<T: Operator>(input: types::Batch) -> Result<types::Emitted, types::OperatorError> {
    each_row::<T>(input.key_ends.len(), |row| input.timestamps[row], |op, ctx, row| {
        op.process(ctx, Record { batch: &input, row, kind: RowKind::Insert })
    })
    .and_then(inserts_only)
}

pub fn on_timer<T: Operator>(timers: types::FiredTimers) -> Result<types::Emitted, types::OperatorError> {
    each_row::<T>(timers.key_ends.len(), |row| timers.times[row], |op, ctx, row| {
        op.on_timer(ctx, Timer { timers: &timers, row })
    })
    .and_then(inserts_only)
}

fn from_wit(k: changelog::RowKind) -> RowKind {
    match k {
        changelog::RowKind::Insert => RowKind::Insert,
        changelog::RowKind::UpdateBefore => RowKind::UpdateBefore,
        changelog::RowKind::UpdateAfter => RowKind::UpdateAfter,
        changelog::RowKind::Delete => RowKind::Delete,
    }
}

fn to_wit(k: RowKind) -> changelog::RowKind {
    match k {
        RowKind::Insert => changelog::RowKind::Insert,
        RowKind::UpdateBefore => changelog::RowKind::UpdateBefore,
        RowKind::UpdateAfter => changelog::RowKind::UpdateAfter,
        RowKind::Delete => changelog::RowKind::Delete,
    }
}

fn changelog_emitted(reply: (types::Emitted, Vec<RowKind>)) -> changelog::ChangelogEmitted {
    let (emitted, kinds) = reply;
    changelog::ChangelogEmitted { emitted, kinds: kinds.into_iter().map(to_wit).collect() }
}

/// `weir:operator@0.3.0`'s process: rows with their kinds.
pub fn process_changelog<T: Operator>(input: changelog::ChangelogBatch) -> Result<changelog::ChangelogEmitted, types::OperatorError> {
    let changelog::ChangelogBatch { rows: batch, kinds } = input;
    let rows = batch.key_ends.len();
    if !kinds.is_empty() && kinds.len() != rows {
        return Err(types::OperatorError {
            row: None,
            message: format!("the host sent {rows} rows with {} row kinds", kinds.len()),
        });
    }
    let kind = |row: usize| kinds.get(row).map_or(RowKind::Insert, |k| from_wit(*k));
    each_row::<T>(rows, |row| batch.timestamps[row], |op, ctx, row| op.process(ctx, Record { batch: &batch, row, kind: kind(row) }))
        .map(changelog_emitted)
}

/// `weir:operator@0.3.0`'s on-timer.
pub fn on_timer_changelog<T: Operator>(timers: types::FiredTimers) -> Result<changelog::ChangelogEmitted, types::OperatorError> {
    each_row::<T>(timers.key_ends.len(), |row| timers.times[row], |op, ctx, row| {
        op.on_timer(ctx, Timer { timers: &timers, row })
    })
    .map(changelog_emitted)
}
