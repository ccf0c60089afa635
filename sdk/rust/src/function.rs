//! Scalar SQL functions (`weir:function/scalar-function@0.1.0`): a type
//! implementing [`Functions`] declares its functions and their SQL types, and
//! computes one of them over a batch of rows at a time, exported with
//! [`export_functions!`](crate::export_functions). In SQL, `CREATE FUNCTION
//! name AS 'plugin.wasm'` makes `name` callable.
//!
//! ```no_run
//! use weir_sdk::function::*;
//!
//! struct Text;
//!
//! impl Functions for Text {
//!     fn functions() -> Vec<Signature> {
//!         vec![signature("shout", &[SqlType::Varchar], SqlType::Varchar)]
//!     }
//!
//!     fn call(name: &str, args: Args) -> Result<Column, String> {
//!         match name {
//!             "shout" => Ok(Column::Varchar(args.varchar(0)?.iter().map(|s| s.as_ref().map(|s| s.to_uppercase())).collect())),
//!             _ => Err(format!("no function {name}")),
//!         }
//!     }
//! }
//!
//! weir_sdk::export_functions!(Text);
//! ```

pub use crate::wit_function::exports::weir::function::functions::{Column, Signature, SqlType};

/// A component's scalar functions.
pub trait Functions: 'static {
    /// The functions and their types, read when a query is planned.
    fn functions() -> Vec<Signature>;

    /// Compute function `name` over a batch: one column per argument, of the
    /// declared types; return one value per row, of the declared type.
    fn call(name: &str, args: Args) -> Result<Column, String>;
}

/// A function's declaration.
pub fn signature(name: &str, args: &[SqlType], returns: SqlType) -> Signature {
    Signature { name: name.to_string(), args: args.to_vec(), returns }
}

/// The argument columns of a call.
pub struct Args {
    columns: Vec<Column>,
    rows: usize,
}

macro_rules! accessor {
    ($name:ident, $variant:ident, $t:ty) => {
        #[doc = concat!("Argument `i` as a ", stringify!($variant), " column.")]
        pub fn $name(&self, i: usize) -> Result<&[Option<$t>], String> {
            match self.columns.get(i) {
                Some(Column::$variant(v)) => Ok(v),
                Some(_) => Err(format!("argument {i} is not a {} column", stringify!($variant))),
                None => Err(format!("no argument {i} (the call has {})", self.columns.len())),
            }
        }
    };
}

impl Args {
    #[doc(hidden)]
    pub fn new(columns: Vec<Column>, rows: u32) -> Self {
        Args { columns, rows: rows as usize }
    }

    /// How many rows the batch has (and the result must have).
    pub fn rows(&self) -> usize {
        self.rows
    }

    accessor!(boolean, Boolean, bool);
    accessor!(bigint, Bigint, i64);
    accessor!(double, Double, f64);
    accessor!(varchar, Varchar, String);
    accessor!(timestamp, Timestamp, i64);
}

/// Export a [`Functions`] type as the component's functions.
#[macro_export]
macro_rules! export_functions {
    ($ty:ty) => {
        #[doc(hidden)]
        pub struct __WeirFunctionsExport;

        impl $crate::wit_function::exports::weir::function::functions::Guest for __WeirFunctionsExport {
            fn describe() -> ::std::vec::Vec<$crate::function::Signature> {
                <$ty as $crate::function::Functions>::functions()
            }

            fn call(
                name: ::std::string::String,
                args: ::std::vec::Vec<$crate::function::Column>,
                rows: u32,
            ) -> ::core::result::Result<$crate::function::Column, ::std::string::String> {
                <$ty as $crate::function::Functions>::call(&name, $crate::function::Args::new(args, rows))
            }
        }

        $crate::wit_function::__export_function_wit!(__WeirFunctionsExport with_types_in $crate::wit_function);
    };
}
