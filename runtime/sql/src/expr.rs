//! Expressions between planning and running: the planner writes each SQL
//! operator's expressions back as SQL text (DataFusion's unparser) over the
//! operator's input columns, unqualified, so that an operator's config is
//! plain, readable and rebuildable on any node; the operator plans them again
//! against its input schema (type coercion included) and evaluates them over
//! Arrow with DataFusion's physical expressions.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef};
use datafusion_common::tree_node::{Transformed, TreeNode};
use datafusion_common::{Column, DFSchema, Result};
use datafusion_expr::execution_props::ExecutionProps;
use datafusion_expr::{Expr, LogicalPlan};
use datafusion_physical_expr::PhysicalExpr;
use datafusion_sql::planner::{ParserOptions, PlannerContext, SqlToRel};
use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::error::sqlparser::dialect::GenericDialect;
use crate::error::sqlparser::parser::Parser;

/// A column of an operator's input or output, as its config lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ColumnDef {
    pub name: String,
    /// The Arrow type, as Arrow writes it (`Int64`, `Timestamp(ms)`).
    #[serde(rename = "type", with = "type_text")]
    pub data_type: DataType,
}

/// Arrow types as their text (`Int64`, `Timestamp(ms)`, `Decimal128(10, 2)`),
/// which reads back the same through YAML (Arrow's JSON form does not: a
/// timezone of `null` would come back as the text "null").
pub(crate) mod type_text {
    use arrow_schema::DataType;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DataType, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DataType, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(|e| serde::de::Error::custom(format!("'{text}' is not an Arrow type: {e}")))
    }
}

impl ColumnDef {
    pub fn of(f: &Field) -> Self {
        ColumnDef { name: f.name().clone(), data_type: f.data_type().clone() }
    }
}

/// The Arrow schema of columns (all nullable: JSON may leave any out).
pub fn schema(cols: &[ColumnDef]) -> SchemaRef {
    Arc::new(Schema::new(cols.iter().map(|c| Field::new(c.name.clone(), c.data_type.clone(), true)).collect::<Vec<_>>()))
}

/// `e` with every column reference unqualified.
pub fn unqualified(e: &Expr) -> Expr {
    e.clone()
        .transform(|e| match e {
            Expr::Column(c) if c.relation.is_some() => Ok(Transformed::yes(Expr::Column(Column::new_unqualified(c.name)))),
            e => Ok(Transformed::no(e)),
        })
        .map(|t| t.data)
        .unwrap_or_else(|_| e.clone())
}

/// `e` as SQL text over unqualified columns.
pub fn to_sql(e: &Expr) -> Result<String> {
    let e = unqualified(e);
    let e = match e {
        Expr::Alias(a) => *a.expr,
        e => e,
    };
    Ok(datafusion_sql::unparser::expr_to_sql(&e)?.to_string())
}

/// Plans expressions given as SQL text over `input` (coerced as the planner
/// would): a filter and projections, returned in that order.
pub struct Planned {
    pub filter: Option<Arc<dyn PhysicalExpr>>,
    pub select: Vec<Arc<dyn PhysicalExpr>>,
}

fn parse(text: &str) -> Result<crate::error::sqlparser::ast::Expr> {
    Ok(Parser::new(&GenericDialect {}).try_with_sql(text)?.parse_expr()?)
}

/// Plan `filter` and `select` (SQL text) against `input`, with the
/// built-in functions and `functions`.
pub fn plan(input: &SchemaRef, filter: Option<&str>, select: &[String], functions: &[Arc<datafusion_expr::ScalarUDF>]) -> Result<Planned> {
    let mut catalog = Catalog::new();
    for f in functions {
        catalog.add_function(f.clone());
    }
    let options = ParserOptions { enable_ident_normalization: false, ..ParserOptions::new() };
    let planner = SqlToRel::new_with_options(&catalog, options);
    let dfschema = DFSchema::try_from(input.as_ref().clone())?;
    let to_expr = |text: &str| planner.sql_to_expr(parse(text)?, &dfschema, &mut PlannerContext::new());
    let scan = datafusion_expr::logical_plan::builder::table_scan(Some("input"), input.as_ref(), None)?;
    let mut b = scan;
    if let Some(f) = filter {
        b = b.filter(to_expr(f)?)?;
    }
    let exprs = select.iter().enumerate().map(|(i, s)| Ok(to_expr(s)?.alias(format!("c{i}")))).collect::<Result<Vec<_>>>()?;
    let plan = b.project(exprs)?.build()?;
    let plan = datafusion_optimizer::Analyzer::new().execute_and_check(plan, datafusion_expr::planner::ContextProvider::options(&catalog), |_, _| {})?;
    let (mut filter, mut select) = (None, Vec::new());
    let props = ExecutionProps::new();
    let mut node = &plan;
    loop {
        match node {
            LogicalPlan::Projection(p) => {
                let schema = p.input.schema();
                select = p.expr.iter().map(|e| datafusion_physical_expr::create_physical_expr(e, schema, &props)).collect::<Result<_>>()?;
                node = &p.input;
            }
            LogicalPlan::Filter(f) => {
                filter = Some(datafusion_physical_expr::create_physical_expr(&f.predicate, f.input.schema(), &props)?);
                node = &f.input;
            }
            _ => break,
        }
    }
    Ok(Planned { filter, select })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::TimeUnit;

    #[test]
    fn column_types_read_back_from_their_text() {
        let types = [
            DataType::Int64,
            DataType::Int32,
            DataType::Int16,
            DataType::Int8,
            DataType::Float64,
            DataType::Float32,
            DataType::Utf8,
            DataType::Boolean,
            DataType::Date32,
            DataType::Timestamp(TimeUnit::Millisecond, None),
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            DataType::Decimal128(10, 2),
        ];
        for t in types {
            let c = ColumnDef { name: "c".into(), data_type: t.clone() };
            let text = serde_json::to_value(&c).unwrap();
            assert!(text["type"].is_string(), "{text}");
            let back: ColumnDef = serde_json::from_value(text.clone()).unwrap();
            assert_eq!(back, c, "{text}");
        }
        let err = serde_json::from_value::<ColumnDef>(serde_json::json!({"name": "c", "type": "Nope"})).unwrap_err();
        assert!(err.to_string().contains("'Nope' is not an Arrow type"), "{err}");
    }
}
