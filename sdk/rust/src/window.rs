//! Window functions: the per-window logic of a window operator
//! (`weir:operator/window-operator@0.2.0`).
//!
//! The host assigns records to windows per key (tumbling, sliding or session,
//! from the operator's `window:` block), keeps each window's accumulator in
//! keyed state and fires windows when the watermark passes their end; a
//! [`WindowAggregate`] says how an accumulator starts, takes records, merges
//! (sessions) and turns into a result.

use std::any::Any;
use std::cell::RefCell;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::context::OpenContext;
use crate::record::Record;
use crate::wit::weir::operator::types;
use crate::wit_window::exports::weir::operator0_2_0::window as wit;
use crate::Error;

/// A window of event time: `start` inclusive, `end` exclusive, in
/// milliseconds since the Unix epoch.
///
/// ```
/// let w = weir_sdk::Window { start: 0, end: 60_000 };
/// assert_eq!(w.max_timestamp(), 59_999);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Window {
    pub start: i64,
    pub end: i64,
}

impl Window {
    /// The last millisecond of the window: the event time of its result.
    pub fn max_timestamp(&self) -> i64 {
        self.end - 1
    }
}

/// An aggregate over the records of a window, per key.
///
/// The accumulator is any serde type; the SDK stores it (postcard) in the
/// host's keyed state between batches, so it is checkpointed and restored
/// with the window. `merge` is needed for session windows, whose windows
/// merge when a record bridges them.
///
/// ```no_run
/// use weir_sdk::prelude::*;
///
/// /// Sums the `amount` field of JSON records per window.
/// struct Sum;
///
/// impl WindowAggregate for Sum {
///     type Acc = (u64, f64); // (records, total)
///
///     fn open(_ctx: &mut OpenContext) -> Result<Self, Error> {
///         Ok(Sum)
///     }
///     fn create(&self) -> Self::Acc {
///         (0, 0.0)
///     }
///     fn add(&self, acc: &mut Self::Acc, record: Record<'_>) -> Result<(), Error> {
///         let v: serde_json::Value = record.json()?;
///         acc.0 += 1;
///         acc.1 += v["amount"].as_f64().unwrap_or(0.0);
///         Ok(())
///     }
///     fn merge(&self, acc: &mut Self::Acc, other: Self::Acc) -> Result<(), Error> {
///         acc.0 += other.0;
///         acc.1 += other.1;
///         Ok(())
///     }
///     fn result(&self, key: &[u8], window: Window, acc: &Self::Acc) -> Result<Option<Vec<u8>>, Error> {
///         let key = String::from_utf8_lossy(key);
///         Ok(Some(format!(r#"{{"key":"{key}","start":{},"sum":{}}}"#, window.start, acc.1).into_bytes()))
///     }
/// }
/// weir_sdk::export_window!(Sum);
/// ```
pub trait WindowAggregate: Sized + 'static {
    /// The accumulator of one window of one key.
    type Acc: Serialize + DeserializeOwned;

    /// Create the instance from the operator's `config` (`ctx.config`). Window
    /// functions have no keyed state or side outputs of their own: the host
    /// keeps the accumulators.
    fn open(ctx: &mut OpenContext) -> Result<Self, Error>;

    /// A new window's accumulator.
    fn create(&self) -> Self::Acc;

    /// Add a record to a window's accumulator.
    fn add(&self, acc: &mut Self::Acc, record: Record<'_>) -> Result<(), Error>;

    /// Merge `other` into `acc` (session windows). The default refuses: a
    /// session window operator needs it.
    fn merge(&self, _acc: &mut Self::Acc, _other: Self::Acc) -> Result<(), Error> {
        Err(Error::msg("this window aggregate does not implement merge, which session windows need"))
    }

    /// The result of a fired window, emitted with the window's key at event
    /// time `window.max_timestamp()`; `None` emits nothing. Called again,
    /// with the updated accumulator, for each late firing.
    fn result(&self, key: &[u8], window: Window, acc: &Self::Acc) -> Result<Option<Vec<u8>>, Error>;
}

thread_local! {
    static WINDOW: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

fn with<T: WindowAggregate, R>(f: impl FnOnce(&T) -> R) -> R {
    WINDOW.with(|w| {
        let guard = w.borrow();
        let agg = guard.as_ref().and_then(|b| b.downcast_ref::<T>()).expect("the host calls open before anything else");
        f(agg)
    })
}

fn decode<A: DeserializeOwned>(bytes: &[u8]) -> Result<A, Error> {
    postcard::from_bytes(bytes).map_err(|e| Error::msg(format!("unreadable window accumulator: {e}")))
}

fn encode<A: Serialize>(acc: &A) -> Result<Vec<u8>, Error> {
    postcard::to_allocvec(acc).map_err(|e| Error::msg(format!("cannot encode window accumulator: {e}")))
}

fn err(row: Option<u32>, e: Error) -> types::OperatorError {
    types::OperatorError { row, message: e.to_string() }
}

pub fn open<T: WindowAggregate>(config: Vec<(String, String)>) -> Result<(), String> {
    crate::dispatch::install_panic_hook();
    let mut ctx = OpenContext::new(config);
    let agg = T::open(&mut ctx).map_err(|e| e.to_string())?;
    WINDOW.with(|w| *w.borrow_mut() = Some(Box::new(agg)));
    Ok(())
}

pub fn add<T: WindowAggregate>(
    accumulators: Vec<Option<Vec<u8>>>,
    input: types::Batch,
    rows: Vec<u32>,
    targets: Vec<u32>,
) -> Result<Vec<Vec<u8>>, types::OperatorError> {
    with::<T, _>(|agg| {
        let mut accs = Vec::with_capacity(accumulators.len());
        for a in &accumulators {
            accs.push(match a {
                Some(bytes) => decode::<T::Acc>(bytes).map_err(|e| err(None, e))?,
                None => agg.create(),
            });
        }
        for (&row, &target) in rows.iter().zip(&targets) {
            crate::dispatch::set_row(Some(row));
            let acc = accs.get_mut(target as usize).ok_or_else(|| err(Some(row), Error::msg("target out of range")))?;
            agg.add(acc, Record { batch: &input, row: row as usize, kind: crate::RowKind::Insert }).map_err(|e| err(Some(row), e))?;
        }
        crate::dispatch::set_row(None);
        accs.iter().map(|a| encode(a).map_err(|e| err(None, e))).collect()
    })
}

pub fn merge<T: WindowAggregate>(accumulators: Vec<Vec<u8>>, group_ends: Vec<u32>) -> Result<Vec<Vec<u8>>, types::OperatorError> {
    with::<T, _>(|agg| {
        let mut out = Vec::with_capacity(group_ends.len());
        let mut start = 0usize;
        for (g, &end) in group_ends.iter().enumerate() {
            let row = Some(g as u32);
            let group = accumulators.get(start..end as usize).ok_or_else(|| err(row, Error::msg("bad group-ends")))?;
            let mut it = group.iter();
            let mut acc: T::Acc = match it.next() {
                Some(first) => decode(first).map_err(|e| err(row, e))?,
                None => agg.create(),
            };
            for other in it {
                agg.merge(&mut acc, decode(other).map_err(|e| err(row, e))?).map_err(|e| err(row, e))?;
            }
            out.push(encode(&acc).map_err(|e| err(row, e))?);
            start = end as usize;
        }
        Ok(out)
    })
}

pub fn get_result<T: WindowAggregate>(windows: wit::FiredWindows) -> Result<Vec<Option<Vec<u8>>>, types::OperatorError> {
    with::<T, _>(|agg| {
        let mut out = Vec::with_capacity(windows.windows.len());
        let mut start = 0usize;
        for (i, (b, acc)) in windows.windows.iter().zip(&windows.accumulators).enumerate() {
            let row = Some(i as u32);
            let end = windows.key_ends[i] as usize;
            let key = &windows.keys[start..end];
            start = end;
            let acc: T::Acc = decode(acc).map_err(|e| err(row, e))?;
            let w = Window { start: b.start, end: b.end };
            out.push(agg.result(key, w, &acc).map_err(|e| err(row, e))?);
        }
        Ok(out)
    })
}

/// Export a type implementing [`WindowAggregate`] as the component's window
/// function (world `weir:operator/window-operator@0.2.0`). A component
/// exports either an operator ([`export_operator!`](crate::export_operator))
/// or a window function.
///
/// ```no_run
/// use weir_sdk::prelude::*;
/// struct Count;
/// impl WindowAggregate for Count {
///     type Acc = u64;
///     fn open(_: &mut OpenContext) -> Result<Self, Error> { Ok(Count) }
///     fn create(&self) -> u64 { 0 }
///     fn add(&self, n: &mut u64, _: Record<'_>) -> Result<(), Error> { *n += 1; Ok(()) }
///     fn merge(&self, n: &mut u64, m: u64) -> Result<(), Error> { *n += m; Ok(()) }
///     fn result(&self, _: &[u8], _: Window, n: &u64) -> Result<Option<Vec<u8>>, Error> {
///         Ok(Some(n.to_string().into_bytes()))
///     }
/// }
/// weir_sdk::export_window!(Count);
/// ```
#[macro_export]
macro_rules! export_window {
    ($ty:ty) => {
        #[doc(hidden)]
        pub struct __WeirWindowExport;

        impl $crate::wit_window::exports::weir::operator0_2_0::window::Guest for __WeirWindowExport {
            fn open(
                config: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
            ) -> ::core::result::Result<(), ::std::string::String> {
                $crate::__private::window_open::<$ty>(config)
            }

            fn add(
                accumulators: ::std::vec::Vec<::core::option::Option<::std::vec::Vec<u8>>>,
                input: $crate::wit::weir::operator::types::Batch,
                rows: ::std::vec::Vec<u32>,
                targets: ::std::vec::Vec<u32>,
            ) -> ::core::result::Result<::std::vec::Vec<::std::vec::Vec<u8>>, $crate::wit::weir::operator::types::OperatorError>
            {
                $crate::__private::window_add::<$ty>(accumulators, input, rows, targets)
            }

            fn merge(
                accumulators: ::std::vec::Vec<::std::vec::Vec<u8>>,
                group_ends: ::std::vec::Vec<u32>,
            ) -> ::core::result::Result<::std::vec::Vec<::std::vec::Vec<u8>>, $crate::wit::weir::operator::types::OperatorError>
            {
                $crate::__private::window_merge::<$ty>(accumulators, group_ends)
            }

            fn get_result(
                windows: $crate::wit_window::exports::weir::operator0_2_0::window::FiredWindows,
            ) -> ::core::result::Result<
                ::std::vec::Vec<::core::option::Option<::std::vec::Vec<u8>>>,
                $crate::wit::weir::operator::types::OperatorError,
            > {
                $crate::__private::window_get_result::<$ty>(windows)
            }
        }

        $crate::wit_window::__export_window_wit!(__WeirWindowExport with_types_in $crate::wit_window);
    };
}
