//! Window table functions, as Flink writes them: `TABLE(TUMBLE(TABLE t,
//! DESCRIPTOR(ts), INTERVAL '10' SECOND))` and `TABLE(HOP(TABLE t,
//! DESCRIPTOR(ts), slide, size))` (the script turns them into table function
//! calls, `script.rs`). A relation planner plans `t` and puts a [`WindowTvf`]
//! node over it, whose schema adds `window_start`, `window_end` and
//! `window_time` to `t`'s columns; an aggregation grouped by `window_start`
//! and `window_end` over it becomes a window aggregate (`translate.rs`).

use std::cmp::Ordering;
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, TimeUnit};
use datafusion_common::{plan_err, DFSchema, DFSchemaRef, Result};
use datafusion_expr::planner::{PlannedRelation, RelationPlanner, RelationPlannerContext, RelationPlanning};
use datafusion_expr::{Expr, Extension, LogicalPlan, UserDefinedLogicalNodeCore};

use crate::error::sqlparser::ast::{Expr as SqlExpr, FunctionArg, FunctionArgExpr, FunctionArguments, ObjectName, TableFactor};
use crate::script::interval_ms;

/// The windows a window table function assigns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WindowShape {
    Tumble { size: i64 },
    Hop { slide: i64, size: i64 },
    /// Windows growing by `step` from the start of each `size`-long period:
    /// `[p, p + step)`, `[p, p + 2 step)`, ... `[p, p + size)`.
    Cumulate { step: i64, size: i64 },
    /// Per group, rows less than `gap` apart share a window, which ends `gap`
    /// after its last row.
    Session { gap: i64 },
    /// The windows the rows carry: the output of a window aggregation (or a
    /// window join), whose columns `start` and `end` (of the aggregation's
    /// input columns, as milliseconds) are the window's bounds. Grouping by
    /// them again is a window aggregation too (Flink's cascading windows).
    Attached { start: usize, end: usize },
}

impl WindowShape {
    /// The windows of a row at event time `ts`, earliest end first.
    pub fn assign(&self, ts: i64) -> Vec<(i64, i64)> {
        match *self {
            WindowShape::Tumble { size } => {
                let start = ts - ts.rem_euclid(size);
                vec![(start, start + size)]
            }
            WindowShape::Hop { slide, size } => {
                let mut start = ts - ts.rem_euclid(slide);
                let mut out = Vec::with_capacity((size / slide) as usize + 1);
                while start > ts - size {
                    out.push((start, start + size));
                    start -= slide;
                }
                out.reverse();
                out
            }
            WindowShape::Cumulate { step, size } => {
                let start = ts - ts.rem_euclid(size);
                (1..=size / step).map(|k| (start, start + k * step)).filter(|&(_, end)| end > ts).collect()
            }
            // Its own window, before merging with the group's others.
            WindowShape::Session { gap } => vec![(ts, ts + gap)],
            // In the row, not of its time.
            WindowShape::Attached { .. } => Vec::new(),
        }
    }

    /// The start of the window that ends at `end` (a session's start is
    /// where its first row was: `None`).
    pub fn start_of(&self, end: i64) -> Option<i64> {
        match *self {
            WindowShape::Tumble { size } | WindowShape::Hop { size, .. } => Some(end - size),
            WindowShape::Cumulate { size, .. } => Some((end - 1) - (end - 1).rem_euclid(size)),
            WindowShape::Session { .. } | WindowShape::Attached { .. } => None,
        }
    }
}

impl fmt::Display for WindowShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WindowShape::Tumble { size } => write!(f, "TUMBLE({size} ms)"),
            WindowShape::Hop { slide, size } => write!(f, "HOP(slide {slide} ms, size {size} ms)"),
            WindowShape::Cumulate { step, size } => write!(f, "CUMULATE(step {step} ms, size {size} ms)"),
            WindowShape::Session { gap } => write!(f, "SESSION(gap {gap} ms)"),
            WindowShape::Attached { .. } => write!(f, "over the windows of its input's rows"),
        }
    }
}

/// The columns a window table function adds.
pub const WINDOW_COLUMNS: [&str; 3] = ["window_start", "window_end", "window_time"];

/// A window table function over its input.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WindowTvf {
    pub input: LogicalPlan,
    /// The time column (its DESCRIPTOR).
    pub time: String,
    pub shape: WindowShape,
    /// SESSION's `PARTITION BY` columns: sessions are per value of these.
    pub partition: Vec<String>,
    pub schema: DFSchemaRef,
}

impl PartialOrd for WindowTvf {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match (&self.time, self.shape).cmp(&(&other.time, other.shape)) {
            Ordering::Equal => self.input.partial_cmp(&other.input),
            o => Some(o),
        }
    }
}

impl WindowTvf {
    pub fn new(input: LogicalPlan, time: String, shape: WindowShape) -> Result<Self> {
        let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
        let added = Schema::new(WINDOW_COLUMNS.iter().map(|c| Field::new(*c, ts.clone(), false)).collect::<Vec<_>>());
        let schema = input.schema().join(&DFSchema::try_from(added)?)?;
        Ok(WindowTvf { input, time, shape, partition: Vec::new(), schema: Arc::new(schema) })
    }
}

impl UserDefinedLogicalNodeCore for WindowTvf {
    fn name(&self) -> &str {
        "WindowTVF"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        Vec::new()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "WindowTVF: {} on {}", self.shape, self.time)
    }

    fn with_exprs_and_inputs(&self, _exprs: Vec<Expr>, mut inputs: Vec<LogicalPlan>) -> Result<Self> {
        let Some(input) = inputs.pop() else { return plan_err!("WindowTVF needs its input") };
        let mut node = WindowTvf::new(input, self.time.clone(), self.shape)?;
        node.partition = self.partition.clone();
        Ok(node)
    }

    /// The input's columns that the output columns need, and the time column.
    fn necessary_children_exprs(&self, output_columns: &[usize]) -> Option<Vec<Vec<usize>>> {
        let n = self.input.schema().fields().len();
        let time = self.input.schema().index_of_column_by_name(None, &self.time)?;
        let mut need: Vec<usize> = output_columns.iter().copied().filter(|&c| c < n).collect();
        need.push(time);
        need.sort_unstable();
        need.dedup();
        Some(vec![need])
    }
}

/// Plans `TUMBLE(t, DESCRIPTOR(ts), size)` and `HOP(t, DESCRIPTOR(ts), slide, size)`.
#[derive(Debug)]
pub struct WindowTvfPlanner;

fn arg_expr(a: &FunctionArg) -> Option<&SqlExpr> {
    match a {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
        _ => None,
    }
}

/// `DESCRIPTOR(col)`'s column.
fn descriptor(e: &SqlExpr) -> Option<String> {
    let SqlExpr::Function(f) = e else { return None };
    if !f.name.to_string().eq_ignore_ascii_case("DESCRIPTOR") {
        return None;
    }
    let FunctionArguments::List(l) = &f.args else { return None };
    match l.args.as_slice() {
        [a] => match arg_expr(a)? {
            SqlExpr::Identifier(i) => Some(i.value.clone()),
            _ => None,
        },
        _ => None,
    }
}

impl RelationPlanner for WindowTvfPlanner {
    fn plan_relation(&self, relation: TableFactor, cx: &mut dyn RelationPlannerContext) -> Result<RelationPlanning> {
        let TableFactor::Table { name, alias, args: Some(args), .. } = &relation else {
            return Ok(RelationPlanning::Original(Box::new(relation)));
        };
        let function = name.to_string().to_ascii_uppercase();
        let usage = "TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '10' SECOND)), TABLE(HOP(TABLE t, DESCRIPTOR(ts), slide, size)) , TABLE(CUMULATE(TABLE t, DESCRIPTOR(ts), step, size)) or TABLE(SESSION(TABLE t, DESCRIPTOR(ts), gap))";
        match function.as_str() {
            "TUMBLE" | "HOP" | "CUMULATE" | "SESSION" => {}
            _ => return Ok(RelationPlanning::Original(Box::new(relation))),
        }
        let mut exprs: Vec<&SqlExpr> = args.args.iter().filter_map(arg_expr).collect();
        if exprs.len() != args.args.len() || exprs.len() < 3 {
            return plan_err!("{function}: expected {usage}");
        }
        // TABLE t PARTITION BY a, b (rewritten as PART_BY(a,b) by script.rs).
        let second = exprs[1];
        let partition = match second {
            SqlExpr::Function(f) if f.name.to_string().eq_ignore_ascii_case("PART_BY") => {
                let FunctionArguments::List(l) = &f.args else { return plan_err!("{function}: PARTITION BY needs columns") };
                let mut cols = Vec::new();
                for a in &l.args {
                    match arg_expr(a) {
                        Some(SqlExpr::Identifier(i)) => cols.push(i.value.clone()),
                        _ => return plan_err!("{function}: PARTITION BY takes columns of the table"),
                    }
                }
                exprs.remove(1);
                if function != "SESSION" {
                    return plan_err!("{function}: PARTITION BY is for SESSION windows");
                }
                cols
            }
            _ => Vec::new(),
        };
        if exprs.len() < 3 {
            return plan_err!("{function}: expected {usage}");
        }
        let SqlExpr::Identifier(table) = exprs[0] else { return plan_err!("{function}: its first argument is TABLE name; expected {usage}") };
        let Some(time) = descriptor(exprs[1]) else { return plan_err!("{function}: its second argument is DESCRIPTOR(time column); expected {usage}") };
        let ms = |e: &SqlExpr| interval_ms(e).map_err(|m| datafusion_common::DataFusionError::Plan(format!("{function}: {m}")));
        let shape = match (function.as_str(), &exprs[2..]) {
            ("TUMBLE", [size]) => WindowShape::Tumble { size: ms(size)? },
            ("HOP", [slide, size]) => {
                let (slide, size) = (ms(slide)?, ms(size)?);
                if slide > size {
                    return plan_err!("HOP: the slide ({slide} ms) is larger than the size ({size} ms), so records would fall between windows");
                }
                WindowShape::Hop { slide, size }
            }
            ("SESSION", [gap]) => WindowShape::Session { gap: ms(gap)? },
            ("CUMULATE", [step, size]) => {
                let (step, size) = (ms(step)?, ms(size)?);
                if size % step != 0 {
                    return plan_err!("CUMULATE: the size ({size} ms) must be a whole number of steps ({step} ms)");
                }
                WindowShape::Cumulate { step, size }
            }
            _ => return plan_err!("{function}: expected {usage} (offsets are not supported)"),
        };
        let mut inner = relation.clone();
        if let TableFactor::Table { name, alias, args, .. } = &mut inner {
            *name = ObjectName::from(vec![table.clone()]);
            *alias = None;
            *args = None;
        }
        let input = cx.plan(inner)?;
        match input.schema().index_of_column_by_name(None, &time) {
            Some(i) if matches!(input.schema().field(i).data_type(), DataType::Timestamp(..)) => {}
            Some(i) => {
                return plan_err!(
                    "{function}: DESCRIPTOR({time}) is {}, not a TIMESTAMP with a watermark",
                    input.schema().field(i).data_type()
                )
            }
            None => return plan_err!("{function}: DESCRIPTOR({time}): {table} has no column {time}"),
        }
        for c in &partition {
            if input.schema().index_of_column_by_name(None, c).is_none() {
                return plan_err!("{function}: PARTITION BY {c}: {table} has no column {c}");
            }
        }
        let mut node = WindowTvf::new(input, time, shape)?;
        node.partition = partition;
        let plan = LogicalPlan::Extension(Extension { node: Arc::new(node) });
        Ok(RelationPlanning::Planned(Box::new(PlannedRelation::new(plan, alias.clone()))))
    }
}

#[cfg(test)]
mod shape_tests {
    use super::WindowShape;

    #[test]
    fn windows_of_a_row_and_the_start_of_each_window() {
        let shapes = [WindowShape::Tumble { size: 10 }, WindowShape::Hop { slide: 5, size: 15 }, WindowShape::Cumulate { step: 4, size: 12 }];
        assert_eq!(shapes[0].assign(23), vec![(20, 30)]);
        assert_eq!(shapes[0].assign(-1), vec![(-10, 0)]);
        assert_eq!(shapes[1].assign(23), vec![(10, 25), (15, 30), (20, 35)]);
        // CUMULATE: [12, 16), [12, 20), [12, 24) hold 13; only [12, 24) holds 21.
        assert_eq!(shapes[2].assign(13), vec![(12, 16), (12, 20), (12, 24)]);
        assert_eq!(shapes[2].assign(21), vec![(12, 24)]);
        assert_eq!(shapes[2].assign(12), vec![(12, 16), (12, 20), (12, 24)]);
        for s in shapes {
            for ts in -40..40 {
                for (start, end) in s.assign(ts) {
                    assert!(start <= ts && ts < end, "{s}: {ts} in [{start}, {end})");
                    assert_eq!(s.start_of(end), Some(start), "{s}: the window ending at {end}");
                }
            }
        }
    }
}
