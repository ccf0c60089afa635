//! Scalar SQL functions in Rust (`weir:function/scalar-function@0.1.0`), for
//! `CREATE FUNCTION name AS 'sql_functions.wasm'`:
//!
//! * `shout(s STRING) -> STRING`: `s` in capitals;
//! * `price_band(cents BIGINT) -> STRING`: `low` under 1 000, `mid` under
//!   5 000, else `high`;
//! * `to_dollars(cents BIGINT) -> DOUBLE`: `cents / 100`;
//! * `on_the_hour(ts TIMESTAMP) -> TIMESTAMP`: `ts` rounded down to the hour.
//!
//! NULL in, NULL out.

use weir_sdk::function::*;

struct SqlFunctions;

fn map<A, B>(col: &[Option<A>], f: impl Fn(&A) -> B) -> Vec<Option<B>> {
    col.iter().map(|v| v.as_ref().map(&f)).collect()
}

impl Functions for SqlFunctions {
    fn functions() -> Vec<Signature> {
        vec![
            signature("shout", &[SqlType::Varchar], SqlType::Varchar),
            signature("price_band", &[SqlType::Bigint], SqlType::Varchar),
            signature("to_dollars", &[SqlType::Bigint], SqlType::Double),
            signature("on_the_hour", &[SqlType::Timestamp], SqlType::Timestamp),
        ]
    }

    fn call(name: &str, args: Args) -> Result<Column, String> {
        Ok(match name {
            "shout" => Column::Varchar(map(args.varchar(0)?, |s| s.to_uppercase())),
            "price_band" => Column::Varchar(map(args.bigint(0)?, |&c| {
                match c {
                    ..1000 => "low",
                    1000..5000 => "mid",
                    _ => "high",
                }
                .to_string()
            })),
            "to_dollars" => Column::Double(map(args.bigint(0)?, |&c| c as f64 / 100.0)),
            "on_the_hour" => Column::Timestamp(map(args.timestamp(0)?, |&t| t - t.rem_euclid(3_600_000))),
            _ => return Err(format!("no function {name}")),
        })
    }
}

weir_sdk::export_functions!(SqlFunctions);
