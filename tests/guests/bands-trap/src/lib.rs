//! A broken version of `price_band(cents BIGINT) -> STRING`: it panics on
//! the first batch holding a multiple of 97 cents (so at once under load),
//! for the test of a swap rolled back in its probation.

use weir_sdk::function::*;

struct Bands;

impl Functions for Bands {
    fn functions() -> Vec<Signature> {
        vec![signature("price_band", &[SqlType::Bigint], SqlType::Varchar)]
    }

    fn call(_name: &str, args: Args) -> Result<Column, String> {
        let cents = args.bigint(0)?;
        assert!(!cents.iter().any(|c| c.is_some_and(|c| c % 97 == 0)), "bands-trap is broken");
        Ok(Column::Varchar(cents.iter().map(|c| c.map(|_| "trap".to_string())).collect()))
    }
}

weir_sdk::export_functions!(Bands);
