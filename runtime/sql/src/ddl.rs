//! `CREATE TABLE`: a table of a registered connector, its columns as an
//! Arrow schema, its `WITH` options, its watermark and primary key.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::error::sqlparser::ast::{ColumnOption, CreateTable, CreateTableOptions, Expr, SqlOption, TableConstraint, Value};
use crate::error::sqlparser::tokenizer::Span;
use crate::error::{pos, Pos, SqlError};
use crate::script::Watermark;

/// A table as a script defines it.
#[derive(Clone, Debug)]
pub struct TableDef {
    pub name: String,
    pub schema: SchemaRef,
    /// `WITH` options, `connector` included, names lowercased.
    pub options: BTreeMap<String, String>,
    /// Where each option is, for errors about it.
    pub option_at: BTreeMap<String, Pos>,
    pub watermark: Option<Watermark>,
    pub primary_key: Vec<String>,
    pub at: Pos,
}

impl TableDef {
    pub fn connector(&self) -> &str {
        self.options.get("connector").map_or("", String::as_str)
    }
}

/// The Arrow type of a SQL type, as Flink SQL names them.
pub fn arrow_type(sql: &str) -> Option<DataType> {
    let t = sql.trim().to_ascii_uppercase();
    let base = t.split('(').next().unwrap_or("").trim();
    Some(match base {
        "BIGINT" | "INT8" | "LONG" => DataType::Int64,
        "INT" | "INTEGER" | "INT4" => DataType::Int32,
        "SMALLINT" | "INT2" => DataType::Int16,
        "TINYINT" => DataType::Int8,
        "DOUBLE" | "DOUBLE PRECISION" | "FLOAT8" => DataType::Float64,
        "FLOAT" | "REAL" | "FLOAT4" => DataType::Float32,
        "STRING" | "VARCHAR" | "TEXT" | "CHAR" | "CHARACTER VARYING" => DataType::Utf8,
        "BOOLEAN" | "BOOL" => DataType::Boolean,
        "DATE" => DataType::Date32,
        "TIMESTAMP" if t.contains("WITH TIME ZONE") || t.contains("WITH LOCAL TIME ZONE") => {
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
        }
        "TIMESTAMP" => DataType::Timestamp(TimeUnit::Millisecond, None),
        "TIMESTAMP_LTZ" => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
        "DECIMAL" | "NUMERIC" => {
            let args: Vec<u8> = t
                .split_once('(')
                .map(|(_, r)| r.trim_end_matches(')').split(',').filter_map(|a| a.trim().parse().ok()).collect())
                .unwrap_or_default();
            match args.as_slice() {
                [] => DataType::Decimal128(38, 10),
                [p] => DataType::Decimal128(*p, 0),
                [p, s, ..] => DataType::Decimal128(*p, *s as i8),
            }
        }
        _ => return None,
    })
}

fn option_value(e: &Expr) -> Option<String> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) | Value::Number(s, _) => Some(s.clone()),
            Value::Boolean(b) => Some(b.to_string()),
            _ => None,
        },
        Expr::Identifier(i) => Some(i.value.clone()),
        _ => None,
    }
}

/// A table from its statement; `watermarks` are those the script took out,
/// `span` the statement's (its watermark lies inside it).
pub fn table(file: &str, c: &CreateTable, span: Span, watermarks: &[Watermark]) -> Result<TableDef, SqlError> {
    let name = c.name.to_string();
    let at = pos(span);
    let mut fields = Vec::with_capacity(c.columns.len());
    let mut primary_key = Vec::new();
    for col in &c.columns {
        let col_at = pos(col.name.span);
        let ty = col.data_type.to_string();
        let dt = arrow_type(&ty).ok_or_else(|| {
            SqlError::at(
                file,
                col_at,
                format!(
                    "column {}: type {ty} is not supported (BIGINT, INT, SMALLINT, TINYINT, DOUBLE, FLOAT, STRING, VARCHAR, BOOLEAN, DATE, TIMESTAMP(3), TIMESTAMP_LTZ(3), DECIMAL(p, s))",
                    col.name
                ),
            )
        })?;
        let mut nullable = true;
        for o in &col.options {
            match &o.option {
                ColumnOption::NotNull => nullable = false,
                ColumnOption::PrimaryKey(_) => {
                    nullable = false;
                    primary_key.push(col.name.value.clone());
                }
                _ => {}
            }
        }
        if fields.iter().any(|f: &Field| f.name().eq_ignore_ascii_case(&col.name.value)) {
            return Err(SqlError::at(file, col_at, format!("table {name}: column {} is defined twice", col.name)));
        }
        fields.push(Field::new(col.name.value.clone(), dt, nullable));
    }
    if fields.is_empty() {
        return Err(SqlError::at(file, at, format!("table {name} has no columns")));
    }
    for k in &c.constraints {
        match k {
            TableConstraint::PrimaryKey(p) => {
                if !primary_key.is_empty() {
                    return Err(SqlError::at(file, at, format!("table {name} has more than one primary key")));
                }
                primary_key = p
                    .columns
                    .iter()
                    .map(|c| match &c.column.expr {
                        crate::error::sqlparser::ast::Expr::Identifier(i) => i.value.clone(),
                        e => e.to_string(),
                    })
                    .collect();
            }
            other => return Err(SqlError::at(file, at, format!("table {name}: constraint {other} is not supported (only PRIMARY KEY (...) NOT ENFORCED)"))),
        }
    }
    for k in &primary_key {
        match fields.iter_mut().find(|f| f.name() == k) {
            Some(f) => *f = f.clone().with_nullable(false),
            None => return Err(SqlError::at(file, at, format!("table {name}: the primary key names {k}, which is not a column"))),
        }
    }
    let options_list: &[SqlOption] = match &c.table_options {
        CreateTableOptions::With(o) | CreateTableOptions::Options(o) => o,
        CreateTableOptions::None => &[],
        _ => return Err(SqlError::at(file, at, format!("table {name}: give its options as WITH ('connector' = '...', ...)"))),
    };
    let (mut options, mut option_at) = (BTreeMap::new(), BTreeMap::new());
    for o in options_list {
        let SqlOption::KeyValue { key, value } = o else {
            return Err(SqlError::at(file, at, format!("table {name}: option {o} is not 'name' = 'value'")));
        };
        let k = key.value.to_ascii_lowercase();
        let v = option_value(value)
            .ok_or_else(|| SqlError::at(file, pos(key.span), format!("table {name}: option '{k}' = {value}: give the value as a string")))?;
        option_at.insert(k.clone(), pos(key.span));
        if options.insert(k.clone(), v).is_some() {
            return Err(SqlError::at(file, pos(key.span), format!("table {name}: option '{k}' is given twice")));
        }
    }
    if !options.contains_key("connector") {
        return Err(SqlError::at(
            file,
            at,
            format!("table {name} has no connector: WITH ('connector' = 'kafka' | 'file' | 'generator' | 'iceberg', ...)"),
        ));
    }
    let inside = |w: &&Watermark| (w.at.0, w.at.1) >= (span.start.line, span.start.column) && (w.at.0, w.at.1) <= (span.end.line, span.end.column);
    let watermark = watermarks.iter().find(inside).cloned();
    if let Some(w) = &watermark {
        let f = fields.iter().find(|f| f.name().eq_ignore_ascii_case(&w.column)).ok_or_else(|| {
            SqlError::at(file, w.at, format!("table {name}: WATERMARK FOR {}: no such column", w.column))
        })?;
        if !matches!(f.data_type(), DataType::Timestamp(..) | DataType::Int64) {
            return Err(SqlError::at(
                file,
                w.at,
                format!("table {name}: WATERMARK FOR {}: the column is {}, not a TIMESTAMP(3) or BIGINT of milliseconds", w.column, f.data_type()),
            ));
        }
    }
    Ok(TableDef { name, schema: Arc::new(Schema::new(fields)), options, option_at, watermark, primary_key, at })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types() {
        assert_eq!(arrow_type("BIGINT"), Some(DataType::Int64));
        assert_eq!(arrow_type("TIMESTAMP(3)"), Some(DataType::Timestamp(TimeUnit::Millisecond, None)));
        assert_eq!(arrow_type("TIMESTAMP_LTZ(3)"), Some(DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))));
        assert_eq!(arrow_type("DECIMAL(10, 2)"), Some(DataType::Decimal128(10, 2)));
        assert_eq!(arrow_type("VARCHAR(20)"), Some(DataType::Utf8));
        assert_eq!(arrow_type("MAP<STRING, INT>"), None);
    }
}
