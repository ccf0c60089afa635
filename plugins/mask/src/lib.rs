//! Masks fields of JSON rows, whatever their kind: a changelog operator
//! (`weir:operator@0.3.0`), so it sits between a CDC source (Debezium) and an
//! upsert table, passing inserts, updates and deletes through with their
//! kinds while personal data stays out of the table.
//!
//! Config: `fields`, comma-separated top-level field names to mask (required);
//! `with`, what a masked value becomes (default `***`). A field that is
//! absent or null stays as it is: there is nothing to hide. A row that is not
//! a JSON object is an error naming it.

use weir_sdk::prelude::*;

struct Mask {
    fields: Vec<String>,
    with: serde_json::Value,
    masked: Counter,
}

impl Operator for Mask {
    fn open(ctx: &mut OpenContext) -> Result<Self, Error> {
        let fields: Vec<String> = ctx
            .config("fields")
            .ok_or_else(|| Error::msg("config 'fields' is required: the comma-separated fields to mask, e.g. fields: email,phone"))?
            .split(',')
            .map(|f| f.trim().to_string())
            .filter(|f| !f.is_empty())
            .collect();
        if fields.is_empty() {
            return Err(Error::msg("config 'fields' names no field"));
        }
        let with = ctx.config("with").unwrap_or("***").into();
        Ok(Mask { fields, with, masked: ctx.counter("masked")? })
    }

    fn process(&mut self, ctx: &mut Context, record: Record<'_>) -> Result<(), Error> {
        let mut row: serde_json::Value = record.json()?;
        let Some(object) = row.as_object_mut() else {
            return Err(Error::msg(format!("a {} row is not a JSON object, so it has no fields to mask", record.kind())));
        };
        for f in &self.fields {
            if let Some(v) = object.get_mut(f).filter(|v| !v.is_null()) {
                *v = self.with.clone();
                self.masked.add(1);
            }
        }
        ctx.emit_json_kind(record.kind(), record.key(), &row)
    }
}

weir_sdk::export_changelog_operator!(Mask);
