//! SQL functions that misbehave, for the host's sandbox tests: `spin(x)`
//! loops forever when `x` is 42, `boom(x)` panics when `x` is 13, `short(x)`
//! returns one value too few, `wrong(x)` declares BIGINT and returns text;
//! otherwise each returns `x`.

use weir_sdk::function::*;

struct Bad;

impl Functions for Bad {
    fn functions() -> Vec<Signature> {
        ["spin", "boom", "short", "wrong"].iter().map(|n| signature(n, &[SqlType::Bigint], SqlType::Bigint)).collect()
    }

    fn call(name: &str, args: Args) -> Result<Column, String> {
        let x = args.bigint(0)?.to_vec();
        match name {
            "spin" => {
                if x.contains(&Some(42)) {
                    let mut n: u64 = 0;
                    loop {
                        n = std::hint::black_box(n.wrapping_add(1));
                    }
                }
                Ok(Column::Bigint(x))
            }
            "boom" => {
                assert!(!x.contains(&Some(13)), "boom: 13 is unlucky");
                Ok(Column::Bigint(x))
            }
            "short" => Ok(Column::Bigint(x[1..].to_vec())),
            "wrong" => Ok(Column::Varchar(x.iter().map(|v| v.map(|v| v.to_string())).collect())),
            _ => Err(format!("no function {name}")),
        }
    }
}

weir_sdk::export_functions!(Bad);
