//! Write [Weir](https://example.invalid/weir) stream operators in Rust.
//!
//! An operator is a type implementing [`Operator`], exported with
//! [`export_operator!`] from a `cdylib` crate built for `wasm32-wasip2`
//! (`weir build`). The host hands it records in batches; the SDK calls
//! [`Operator::process`] once per record, with a [`Context`] through which the
//! operator emits records, reads and writes the state of the record's key, and
//! sets timers.
//!
//! ```no_run
//! use weir_sdk::prelude::*;
//!
//! /// Counts records per key.
//! struct Count {
//!     seen: ValueState<u64>,
//! }
//!
//! impl Operator for Count {
//!     fn open(ctx: &mut OpenContext) -> Result<Self, Error> {
//!         Ok(Count { seen: ctx.value_state("seen")? })
//!     }
//!
//!     fn process(&mut self, ctx: &mut Context, record: Record<'_>) -> Result<(), Error> {
//!         let n = self.seen.get(ctx)?.unwrap_or(0) + 1;
//!         self.seen.set(ctx, &n)?;
//!         ctx.emit(record.key(), n.to_string());
//!         Ok(())
//!     }
//! }
//!
//! weir_sdk::export_operator!(Count);
//! ```

extern crate self as weir_sdk;

mod context;
mod dispatch;
mod error;
pub mod function;
mod record;
mod state;
mod window;

pub use context::{Context, Counter, Level, OpenContext, SideOutput, TaskInfo, NO_TIMESTAMP};
pub use error::Error;
pub use record::{Record, RowKind, TimeDomain, Timer};
pub use state::{ListState, MapState, Reducer, ReducingState, StateOptions, ValueState};
pub use window::{Window, WindowAggregate};

/// Generated bindings of `weir:operator@0.1.0`; not part of the SDK's API.
#[doc(hidden)]
pub mod wit {
    wit_bindgen::generate!({
        path: "../../wit/operator@0.1.0",
        world: "operator",
        pub_export_macro: true,
        export_macro_name: "__export_wit",
        default_bindings_module: "weir_sdk::wit",
    });
}

/// Generated bindings of the window world of `weir:operator@0.2.0`, sharing
/// the 0.1.0 interfaces with [`wit`]; not part of the SDK's API.
#[doc(hidden)]
pub mod wit_window {
    wit_bindgen::generate!({
        path: "../../wit/operator@0.2.0",
        world: "window-operator",
        pub_export_macro: true,
        export_macro_name: "__export_window_wit",
        default_bindings_module: "weir_sdk::wit_window",
        with: {
            "weir:operator/types@0.1.0": weir_sdk::wit::weir::operator::types,
            "weir:operator/runtime@0.1.0": weir_sdk::wit::weir::operator::runtime,
        },
    });
}

/// Generated bindings of the changelog operator world of
/// `weir:operator@0.3.0`, sharing the 0.1.0 interfaces with [`wit`]; not part
/// of the SDK's API.
#[doc(hidden)]
pub mod wit_changelog {
    wit_bindgen::generate!({
        path: "../../wit/operator@0.3.0",
        world: "changelog-operator",
        pub_export_macro: true,
        export_macro_name: "__export_changelog_wit",
        default_bindings_module: "weir_sdk::wit_changelog",
        with: {
            "weir:operator/types@0.1.0": weir_sdk::wit::weir::operator::types,
            "weir:operator/state@0.1.0": weir_sdk::wit::weir::operator::state,
            "weir:operator/timers@0.1.0": weir_sdk::wit::weir::operator::timers,
            "weir:operator/runtime@0.1.0": weir_sdk::wit::weir::operator::runtime,
        },
    });
}

#[doc(hidden)]
pub mod wit_function {
    wit_bindgen::generate!({
        path: "../../wit/function@0.1.0",
        world: "scalar-function",
        pub_export_macro: true,
        export_macro_name: "__export_function_wit",
        default_bindings_module: "weir_sdk::wit_function",
    });
}

#[doc(hidden)]
pub mod __private {
    pub use crate::dispatch::{on_timer, on_timer_changelog, open, process, process_changelog};
    pub use crate::window::{
        add as window_add, get_result as window_get_result, merge as window_merge, open as window_open,
    };
}

/// Everything an operator needs, in one import.
///
/// ```
/// use weir_sdk::prelude::*;
/// ```
pub mod prelude {
    pub use crate::{
        Context, Counter, Error, ListState, MapState, OpenContext, Operator, Record, Reducer, ReducingState, RowKind,
        SideOutput, StateOptions, TimeDomain, Timer, ValueState, Window, WindowAggregate,
    };
}

/// A stream operator. One instance runs per parallel task of the operator.
///
/// ```no_run
/// use weir_sdk::prelude::*;
///
/// /// Upper-cases values.
/// struct Upper;
///
/// impl Operator for Upper {
///     fn open(_ctx: &mut OpenContext) -> Result<Self, Error> {
///         Ok(Upper)
///     }
///
///     fn process(&mut self, ctx: &mut Context, record: Record<'_>) -> Result<(), Error> {
///         ctx.emit(record.key(), record.value_str()?.to_uppercase());
///         Ok(())
///     }
/// }
/// weir_sdk::export_operator!(Upper);
/// ```
pub trait Operator: Sized + 'static {
    /// Create the instance: read the configuration, declare states, side
    /// outputs and counters.
    fn open(ctx: &mut OpenContext) -> Result<Self, Error>;

    /// Handle one record. State accessed through `ctx` is the record key's.
    fn process(&mut self, ctx: &mut Context, record: Record<'_>) -> Result<(), Error>;

    /// Handle a timer that fired. State accessed through `ctx` is the timer key's.
    fn on_timer(&mut self, _ctx: &mut Context, _timer: Timer<'_>) -> Result<(), Error> {
        Ok(())
    }
}

/// Export a type implementing [`Operator`] as the component's operator.
///
/// ```no_run
/// use weir_sdk::prelude::*;
/// struct Pass;
/// impl Operator for Pass {
///     fn open(_: &mut OpenContext) -> Result<Self, Error> { Ok(Pass) }
///     fn process(&mut self, ctx: &mut Context, r: Record<'_>) -> Result<(), Error> {
///         ctx.emit(r.key(), r.value());
///         Ok(())
///     }
/// }
/// weir_sdk::export_operator!(Pass);
/// ```
#[macro_export]
macro_rules! export_operator {
    ($ty:ty) => {
        #[doc(hidden)]
        pub struct __WeirOperatorExport;

        impl $crate::wit::exports::weir::operator::handler::Guest for __WeirOperatorExport {
            fn open(
                config: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
            ) -> ::core::result::Result<(), ::std::string::String> {
                $crate::__private::open::<$ty>(config)
            }

            fn process(
                input: $crate::wit::weir::operator::types::Batch,
            ) -> ::core::result::Result<
                $crate::wit::weir::operator::types::Emitted,
                $crate::wit::weir::operator::types::OperatorError,
            > {
                $crate::__private::process::<$ty>(input)
            }

            fn on_timer(
                timers: $crate::wit::weir::operator::types::FiredTimers,
            ) -> ::core::result::Result<
                $crate::wit::weir::operator::types::Emitted,
                $crate::wit::weir::operator::types::OperatorError,
            > {
                $crate::__private::on_timer::<$ty>(timers)
            }
        }

        $crate::wit::__export_wit!(__WeirOperatorExport with_types_in $crate::wit);
    };
}

/// Export a type implementing [`Operator`] as a changelog operator: a
/// component of `weir:operator@0.3.0`, whose records carry their
/// [`RowKind`] ([`Record::kind`]) and which may emit rows of any kind
/// ([`Context::emit_kind`]). Such an operator may read a changelog (Debezium
/// change events, say) where an operator exported with [`export_operator!`]
/// is refused one.
///
/// ```no_run
/// use weir_sdk::prelude::*;
///
/// /// Hides the `email` field of every row, whatever its kind.
/// struct Mask;
/// impl Operator for Mask {
///     fn open(_: &mut OpenContext) -> Result<Self, Error> { Ok(Mask) }
///     fn process(&mut self, ctx: &mut Context, r: Record<'_>) -> Result<(), Error> {
///         let mut row: serde_json::Value = r.json()?;
///         row["email"] = "***".into();
///         ctx.emit_json_kind(r.kind(), r.key(), &row)
///     }
/// }
/// weir_sdk::export_changelog_operator!(Mask);
/// ```
#[macro_export]
macro_rules! export_changelog_operator {
    ($ty:ty) => {
        #[doc(hidden)]
        pub struct __WeirChangelogOperatorExport;

        impl $crate::wit_changelog::exports::weir::operator0_3_0::handler::Guest for __WeirChangelogOperatorExport {
            fn open(
                config: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
            ) -> ::core::result::Result<(), ::std::string::String> {
                $crate::__private::open::<$ty>(config)
            }

            fn process(
                input: $crate::wit_changelog::weir::operator0_3_0::changelog::ChangelogBatch,
            ) -> ::core::result::Result<
                $crate::wit_changelog::weir::operator0_3_0::changelog::ChangelogEmitted,
                $crate::wit::weir::operator::types::OperatorError,
            > {
                $crate::__private::process_changelog::<$ty>(input)
            }

            fn on_timer(
                timers: $crate::wit::weir::operator::types::FiredTimers,
            ) -> ::core::result::Result<
                $crate::wit_changelog::weir::operator0_3_0::changelog::ChangelogEmitted,
                $crate::wit::weir::operator::types::OperatorError,
            > {
                $crate::__private::on_timer_changelog::<$ty>(timers)
            }
        }

        $crate::wit_changelog::__export_changelog_wit!(__WeirChangelogOperatorExport with_types_in $crate::wit_changelog);
    };
}
