//! Records' JSON values into Arrow batches of a table's schema (arrow-json's
//! decoder, one JSON object per record). A record that does not fit the
//! schema is found by decoding the batch's records one by one, so that the
//! error names it (its row, and through the engine its source position) and
//! what was wrong with it.

use arrow_array::RecordBatch;
use arrow_json::ReaderBuilder;
use arrow_schema::SchemaRef;

/// Why row `row` of a batch does not fit the table.
#[derive(Debug)]
pub struct Misfit {
    pub row: usize,
    pub message: String,
}

pub struct Encoder {
    schema: SchemaRef,
}

impl Encoder {
    pub fn new(schema: SchemaRef) -> Self {
        Encoder { schema }
    }

    fn decode(&self, values: &mut dyn Iterator<Item = &[u8]>, rows: usize) -> Result<Option<RecordBatch>, String> {
        let mut d = ReaderBuilder::new(self.schema.clone()).with_batch_size(rows.max(1)).build_decoder().map_err(|e| e.to_string())?;
        for v in values {
            let mut rest = v;
            while !rest.is_empty() {
                let n = d.decode(rest).map_err(|e| e.to_string())?;
                if n == 0 {
                    break;
                }
                rest = &rest[n..];
            }
            // Values are one JSON object each: a newline ends each.
            d.decode(b"\n").map_err(|e| e.to_string())?;
        }
        d.flush().map_err(|e| e.to_string())
    }

    /// The batch of `values` (each a JSON object).
    pub fn encode<'a>(&self, values: &[&'a [u8]]) -> Result<RecordBatch, Misfit> {
        for (row, v) in values.iter().enumerate() {
            let t = v.trim_ascii_start();
            if !t.starts_with(b"{") {
                let shown = String::from_utf8_lossy(&v[..v.len().min(60)]).into_owned();
                return Err(Misfit { row, message: format!("the record's value is not a JSON object: {shown}") });
            }
        }
        match self.decode(&mut values.iter().copied(), values.len()) {
            Ok(Some(b)) if b.num_rows() == values.len() => Ok(b),
            Ok(Some(b)) => Err(Misfit { row: 0, message: format!("{} values decoded into {} rows", values.len(), b.num_rows()) }),
            Ok(None) => Ok(RecordBatch::new_empty(self.schema.clone())),
            Err(whole) => {
                // Find the record at fault.
                for (row, v) in values.iter().enumerate() {
                    if let Err(message) = self.decode(&mut std::iter::once(*v), 1) {
                        return Err(Misfit { row, message: describe(&message) });
                    }
                }
                Err(Misfit { row: 0, message: describe(&whole) })
            }
        }
    }
}

/// arrow-json's messages, said in the table's terms.
fn describe(m: &str) -> String {
    format!("the record does not fit the table's schema: {m}")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Array, Int64Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};

    use super::*;

    fn enc() -> Encoder {
        Encoder::new(Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false), Field::new("name", DataType::Utf8, true)])))
    }

    #[test]
    fn values_become_columns() {
        let b = enc().encode(&[br#"{"id": 1, "name": "a"}"#, br#"{"id": 2, "extra": true}"#]).unwrap();
        assert_eq!(b.num_rows(), 2);
        let ids = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(ids.values(), &[1, 2]);
        let names = b.column(1).as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(names.value(0), "a");
        assert!(names.is_null(1));
    }

    #[test]
    fn the_misfit_is_named() {
        let e = enc().encode(&[br#"{"id": 1}"#, br#"{"id": "x"}"#, br#"{"id": 3}"#]).unwrap_err();
        assert_eq!(e.row, 1);
        assert!(e.message.contains("does not fit the table's schema"), "{}", e.message);
        let e = enc().encode(&[br#"{"id": 1}"#, b"[1]"]).unwrap_err();
        assert_eq!(e.row, 1);
        assert!(e.message.contains("not a JSON object"), "{}", e.message);
    }
}
