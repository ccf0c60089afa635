//! Version 2 of a `price_band(cents BIGINT) -> STRING` SQL function (version
//! 1 is plugins/sql-functions): the same bands, as `v2-low`, `v2-mid` and
//! `v2-high`, so that a test sees which version computed each row.

use weir_sdk::function::*;

struct Bands;

impl Functions for Bands {
    fn functions() -> Vec<Signature> {
        vec![signature("price_band", &[SqlType::Bigint], SqlType::Varchar)]
    }

    fn call(name: &str, args: Args) -> Result<Column, String> {
        match name {
            "price_band" => Ok(Column::Varchar(
                args.bigint(0)?
                    .iter()
                    .map(|c| c.map(|c| if c < 1000 { "v2-low" } else if c < 5000 { "v2-mid" } else { "v2-high" }.to_string()))
                    .collect(),
            )),
            _ => Err(format!("no function {name}")),
        }
    }
}

weir_sdk::export_functions!(Bands);
