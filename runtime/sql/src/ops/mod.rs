//! The operator kinds SQL plans onto, one per file, registered with the
//! other types of a binary: `sql-calc` (projections and filters),
//! `sql-window` (window aggregations), `sql-aggregate` (updating
//! aggregations) and `sql-join` (inner equi-joins: regular, window and interval) `sql-temporal-join` (FOR SYSTEM_TIME AS OF), `sql-topn` (ROW_NUMBER's Top-N and deduplication) and `sql-union` (UNION ALL), their shared keyed state and timers (`keyed.rs`), aggregate
//! functions (`agg.rs`), and JSON rows to Arrow and back (`json.rs`).

pub mod agg;
pub mod aggregate;
pub mod calc;
pub mod join;
pub mod json;
pub mod keyed;
pub mod temporal;
pub mod topn;
pub mod union;
pub mod window;
