//! Rows between the SQL operators and the rest of Weir: JSON object values
//! decoded into Arrow with an operator's input schema (fields it does not
//! name are ignored, missing ones are null), and Arrow rows encoded back into
//! JSON objects. A row that does not fit is named by its batch row.

use arrow_array::{Array, ArrayRef, RecordBatch as ArrowBatch};
use arrow_json::writer::{LineDelimited, WriterBuilder};
use arrow_schema::{ArrowError, SchemaRef};

/// Decode the values of `rows` with `schema`; on an error, the first row
/// that does not decode, with why.
pub fn decode(schema: &SchemaRef, values: &[&[u8]]) -> Result<ArrowBatch, (usize, String)> {
    match decode_all(schema, values) {
        Ok(b) => Ok(b),
        Err(e) => {
            // Find the row: decode them one by one.
            for (i, v) in values.iter().enumerate() {
                if let Err(e) = decode_all(schema, std::slice::from_ref(v)) {
                    return Err((i, message(&e, v)));
                }
            }
            Err((0, e.to_string()))
        }
    }
}

fn message(e: &ArrowError, v: &[u8]) -> String {
    let text = String::from_utf8_lossy(&v[..v.len().min(200)]);
    let e = e.to_string();
    let e = e.strip_prefix("Json error: ").unwrap_or(&e);
    format!("the row {text} does not fit the table's columns: {e}")
}

fn decode_all(schema: &SchemaRef, values: &[&[u8]]) -> Result<ArrowBatch, ArrowError> {
    let mut d = arrow_json::ReaderBuilder::new(schema.clone()).with_batch_size(values.len().max(1)).with_strict_mode(false).build_decoder()?;
    for v in values {
        let mut rest: &[u8] = v;
        while !rest.is_empty() {
            let used = d.decode(rest)?;
            if used == 0 {
                break;
            }
            rest = &rest[used..];
        }
        // A value that is not a whole JSON value fails here, not in the next row.
        d.decode(b"\n")?;
        if d.has_partial_record() {
            return Err(ArrowError::JsonError("it is not a complete JSON value".into()));
        }
    }
    match d.flush()? {
        Some(b) if b.num_rows() == values.len() => Ok(b),
        Some(b) => Err(ArrowError::JsonError(format!("{} values gave {} rows: each row must be one JSON object", values.len(), b.num_rows()))),
        None if values.is_empty() => Ok(ArrowBatch::new_empty(schema.clone())),
        None => Err(ArrowError::JsonError("no rows".into())),
    }
}

/// Each row of `batch` as a JSON object (nulls written out).
pub fn encode(batch: &ArrowBatch) -> Result<Vec<Vec<u8>>, ArrowError> {
    let mut buf = Vec::with_capacity(batch.num_rows() * 64);
    {
        let mut w = WriterBuilder::new().with_explicit_nulls(true).build::<_, LineDelimited>(&mut buf);
        w.write(batch)?;
        w.finish()?;
    }
    let rows: Vec<Vec<u8>> = buf.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec).collect();
    if rows.len() != batch.num_rows() {
        return Err(ArrowError::JsonError(format!("{} rows were written as {} lines", batch.num_rows(), rows.len())));
    }
    Ok(rows)
}

/// The columns `cols` of `batch` (for a key).
pub fn project(batch: &ArrowBatch, cols: &[usize]) -> Result<ArrowBatch, ArrowError> {
    batch.project(cols)
}

/// `arrays` as a batch of `schema`, each cast to its field's type where it
/// differs.
pub fn batch_of(schema: &SchemaRef, arrays: Vec<ArrayRef>) -> Result<ArrowBatch, ArrowError> {
    let arrays = arrays
        .into_iter()
        .zip(schema.fields())
        .map(|(a, f)| if a.data_type() == f.data_type() { Ok(a) } else { arrow_cast::cast(&a, f.data_type()) })
        .collect::<Result<Vec<_>, _>>()?;
    let n = arrays.first().map_or(0, |a| a.len());
    ArrowBatch::try_new_with_options(schema.clone(), arrays, &arrow_array::RecordBatchOptions::new().with_row_count(Some(n)))
}
