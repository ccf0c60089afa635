//! Streaming SQL on Weir, in the class of Flink SQL: a script of `SET`,
//! `CREATE TABLE` (over the registered connectors: `WITH ('connector' =
//! 'kafka' | 'file' | 'generator' | 'iceberg', ...)`, with `WATERMARK FOR`
//! and `PRIMARY KEY`), `CREATE VIEW` and `INSERT INTO ... SELECT` statements
//! is planned by DataFusion's SQL planner (`plan.rs`) and translated onto
//! Weir operators (`translate.rs`) that evaluate DataFusion expressions over
//! Arrow and keep their state in Weir's keyed state (`ops/`). The result is
//! an ordinary pipeline spec, so a SQL job validates, checkpoints, restarts
//! and is served like any pipeline. Scalar functions can be components in
//! any language (`CREATE FUNCTION`, `udf.rs`). See docs/sql.md.

mod catalog;
mod ddl;
pub mod error;
mod expr;
mod job;
pub mod ops;
mod plan;
mod script;
mod translate;
mod tvf;
pub mod udf;

pub use error::SqlError;
pub use job::Job;
pub use plan::{compile, compile_with};

/// Register the SQL operator kinds.
pub fn register(registry: &mut weir_spec::Registry) {
    registry
        .operator(ops::calc::SqlCalc)
        .operator(ops::window::SqlWindow)
        .operator(ops::aggregate::SqlAggregate)
        .operator(ops::join::SqlJoin)
        .operator(ops::temporal::SqlTemporalJoin)
        .operator(ops::topn::SqlTopN)
        .operator(ops::union::SqlUnion);
}
