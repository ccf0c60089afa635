//! From a DataFusion logical plan (of one INSERT's query) to Weir nodes:
//!
//! * a table scan is the table's source (one per table, shared by every
//!   statement that reads it);
//! * projections and filters are `sql-calc` operators (a filter under a
//!   projection joins it), evaluating DataFusion expressions over Arrow;
//! * an aggregation grouped by `window_start` and `window_end` of a window
//!   table function is a `sql-calc` computing the group keys (the record key)
//!   and the aggregates' arguments, then a keyed `sql-window` operator; any
//!   other aggregation is a keyed `sql-aggregate`, which emits a changelog;
//! * an inner equi-join is a `sql-calc` per side (join keys as the record
//!   key, the side as a tag) and a keyed `sql-join` reading both; its output
//!   columns are named `j0`, `j1`, ... (both sides may have a column of the
//!   same name), and the expressions above it are rewritten to those names;
//!   a window join when both sides are windowed rows joined on their
//!   windows, an interval join when the other conditions bound the two
//!   sides' event times against each other both ways.
//!
//! What it cannot plan it refuses, naming the construct.

use arrow_schema::DataType;
use datafusion_common::tree_node::{Transformed, TreeNode};
use datafusion_common::{Column, DFSchemaRef};
use datafusion_expr::expr::AggregateFunction;
use datafusion_expr::logical_plan::{Aggregate, Join, JoinType, TableScan};
use datafusion_expr::{Expr, ExprSchemable, LogicalPlan};
use serde_json::{json, Map, Value};

use crate::catalog::Source;
use crate::ddl::TableDef;
use crate::error::{Pos, SqlError};
use crate::expr::{to_sql, unqualified, ColumnDef};
use crate::job::{Job, Node};
use crate::ops::aggregate::{AggFn, AggSpec, AggregateConfig, GroupField};
use crate::ops::calc::CalcConfig;
use crate::tvf::{WindowTvf, WINDOW_COLUMNS};

/// The rows of a plan node as a job node emits them: JSON objects with the
/// plan's (unqualified) column names.
#[derive(Clone)]
pub struct Stream {
    pub node: String,
    pub schema: DFSchemaRef,
    /// Rows have kinds (updates and deletes).
    pub changelog: bool,
    /// The table its rows come from, when one (for event-time checks).
    pub table: Option<std::sync::Arc<TableDef>>,
    /// The rows' field name of each of `schema`'s columns, when not the
    /// column's own name (a join's output: `j0`, `j1`, ...).
    pub names: Option<Vec<String>>,
    /// The columns (of `schema`) of the window each row belongs to, start and
    /// end, when its rows are a window aggregation's (or a window join's):
    /// grouping or joining by them again is windowed too.
    pub window: Option<(usize, usize)>,
    /// The column (of `schema`) of the rows' event time: its table's
    /// WATERMARK column, as long as projections pass it on unchanged.
    pub time: Option<usize>,
}

impl Stream {
    /// The columns of its rows, as an operator's config lists them.
    fn columns(&self) -> Vec<ColumnDef> {
        match &self.names {
            Some(names) => names.iter().zip(self.schema.fields()).map(|(n, f)| ColumnDef { name: n.clone(), data_type: f.data_type().clone() }).collect(),
            None => columns(&self.schema),
        }
    }

    /// `e` over this stream's rows: column references as the rows name them.
    fn physical(&self, e: &Expr) -> Expr {
        let Some(names) = &self.names else { return unqualified(e) };
        e.clone()
            .transform(|x| match x {
                Expr::Column(c) => match self.schema.index_of_column(&c) {
                    Ok(i) => Ok(Transformed::yes(Expr::Column(Column::new_unqualified(names[i].clone())))),
                    Err(_) => Ok(Transformed::no(Expr::Column(c))),
                },
                x => Ok(Transformed::no(x)),
            })
            .map(|t| t.data)
            .unwrap_or_else(|_| e.clone())
    }
}

pub struct Translator<'a> {
    pub job: &'a mut Job,
    pub file: &'a str,
    /// The statement's position, for errors the plan cannot place.
    pub at: Pos,
    /// The statement's number.
    pub stmt: usize,
    /// The statement's STATE_TTL hints: a table's or alias's state TTL in
    /// milliseconds, and whether a join or aggregation took it.
    pub ttl_hints: std::collections::BTreeMap<String, (u64, bool)>,
    /// The statement's `FOR SYSTEM_TIME AS OF` clauses, and whether a
    /// temporal join took each.
    pub as_of: Vec<(crate::script::AsOf, bool)>,
    /// A `ROW_NUMBER()` window (by its address) already planned as a
    /// Top-N, and its stream: `go` returns it when it reaches the node.
    pub ranked: Option<(usize, Stream)>,
}

fn columns(schema: &DFSchemaRef) -> Vec<ColumnDef> {
    schema.fields().iter().map(|f| ColumnDef::of(f)).collect()
}

impl Translator<'_> {
    fn err(&self, message: impl Into<String>) -> SqlError {
        SqlError::at(self.file, self.at, message)
    }

    fn unsupported(&self, what: &str) -> SqlError {
        self.err(format!(
            "{what} is not supported in streaming SQL yet (supported: projections, WHERE, TUMBLE, HOP and CUMULATE window aggregations, GROUP BY, SELECT DISTINCT, UNION [ALL], equi-joins: inner, outer, window and interval, ROW_NUMBER Top-N)"
        ))
    }

    fn df(&self, e: datafusion_common::DataFusionError) -> SqlError {
        self.err(crate::plan::df_message(&e))
    }

    /// The `FOR SYSTEM_TIME AS OF` clause of the table or alias `p` reads
    /// directly, if it has one (taken: it is used once).
    fn as_of(&mut self, p: &LogicalPlan) -> Option<crate::script::AsOf> {
        let (alias, table) = match p {
            LogicalPlan::SubqueryAlias(a) => match a.input.as_ref() {
                LogicalPlan::TableScan(t) => (Some(a.alias.table().to_ascii_lowercase()), t.table_name.table().to_ascii_lowercase()),
                _ => return None,
            },
            LogicalPlan::TableScan(t) => (None, t.table_name.table().to_ascii_lowercase()),
            _ => return None,
        };
        let i = self.as_of.iter().position(|(a, used)| {
            !used && a.table.eq_ignore_ascii_case(&table) && a.alias.as_ref().map(|x| x.to_ascii_lowercase()) == alias
        })?;
        self.as_of[i].1 = true;
        Some(self.as_of[i].0.clone())
    }

    /// The state TTL a STATE_TTL hint gives the rows of `p` (a join's side,
    /// an aggregation's input), by its alias or table.
    fn hinted_ttl(&mut self, p: &LogicalPlan) -> Option<u64> {
        fn names(p: &LogicalPlan, out: &mut Vec<String>) {
            match p {
                LogicalPlan::SubqueryAlias(a) => {
                    out.push(a.alias.table().to_ascii_lowercase());
                    names(&a.input, out);
                }
                LogicalPlan::TableScan(t) => out.push(t.table_name.table().to_ascii_lowercase()),
                LogicalPlan::Projection(p) => names(&p.input, out),
                LogicalPlan::Filter(f) => names(&f.input, out),
                _ => {}
            }
        }
        let mut found = Vec::new();
        names(p, &mut found);
        found.iter().find_map(|n| {
            let (ms, used) = self.ttl_hints.get_mut(n)?;
            *used = true;
            Some(*ms)
        })
    }

    fn add(&mut self, mut node: Node) -> String {
        node.name = self.job.fresh_name(&node.name);
        node.statement = Some(self.stmt);
        let name = node.name.clone();
        self.job.operators.push(node);
        name
    }

    /// The node emitting the rows of plan `p`.
    pub fn go(&mut self, p: &LogicalPlan) -> Result<Stream, SqlError> {
        if let LogicalPlan::Window(w) = p {
            if self.ranked.as_ref().is_some_and(|(r, _)| *r == w as *const _ as usize) {
                return Ok(self.ranked.take().expect("checked").1);
            }
        }
        match p {
            LogicalPlan::TableScan(s) => self.scan(s),
            LogicalPlan::SubqueryAlias(a) => {
                let s = self.go(&a.input)?;
                Ok(Stream { schema: a.schema.clone(), ..s })
            }
            LogicalPlan::Projection(pr) => {
                let (filter, input) = match pr.input.as_ref() {
                    LogicalPlan::Filter(f) => (Some(&f.predicate), f.input.as_ref()),
                    other => (None, other),
                };
                let (s, filter) = match filter {
                    Some(f) => self.filtered(f, input, Some(&pr.expr))?,
                    None => (self.go(input)?, None),
                };
                let filter = filter.as_ref();
                // The window's columns, if the projection keeps both.
                let window = s.window.and_then(|(start, end)| {
                    let at = |i: usize| {
                        pr.expr.iter().position(|e| match e.clone().unalias() {
                            Expr::Column(c) => s.schema.index_of_column(&c).ok() == Some(i),
                            _ => false,
                        })
                    };
                    Some((at(start)?, at(end)?))
                });
                let time = s.time.and_then(|t| {
                    pr.expr.iter().position(|e| match e.clone().unalias() {
                        Expr::Column(c) => s.schema.index_of_column(&c).ok() == Some(t),
                        _ => false,
                    })
                });
                let out = columns(&pr.schema);
                let s = self.calc(s, filter, &pr.expr, out, pr.schema.clone(), None)?;
                Ok(Stream { window, time, ..s })
            }
            LogicalPlan::Filter(f) => {
                let (s, predicate) = self.filtered(&f.predicate, &f.input, None)?;
                let Some(predicate) = predicate else { return Ok(s) };
                let all: Vec<Expr> = f.input.schema().columns().into_iter().map(Expr::Column).collect();
                let (out, names) = (s.columns(), s.names.clone());
                self.calc(s, Some(&predicate), &all, out, f.input.schema().clone(), names)
            }
            LogicalPlan::Join(j) => self.join(j),
            LogicalPlan::Aggregate(a) => self.aggregate(a),
            LogicalPlan::Extension(e) if e.node.as_any().is::<WindowTvf>() => {
                let t = e.node.as_any().downcast_ref::<WindowTvf>().expect("checked");
                self.tumble_rows(t)
            }
            LogicalPlan::Sort(_) => Err(self.unsupported("ORDER BY")),
            LogicalPlan::Limit(_) => Err(self.unsupported("LIMIT")),
            LogicalPlan::Union(u) => self.union(u),
            LogicalPlan::Distinct(datafusion_expr::logical_plan::Distinct::All(input)) => {
                // An updating aggregate grouped by every column, of no aggregates.
                let group: Vec<Expr> = input.schema().columns().into_iter().map(Expr::Column).collect();
                let a = Aggregate::try_new(input.clone(), group, Vec::new()).map_err(|e| self.df(e))?;
                self.aggregate(&a)
            }
            LogicalPlan::Distinct(_) => Err(self.unsupported("SELECT DISTINCT ON (...)")),
            LogicalPlan::Window(_) => Err(self.unsupported(
                "an OVER (...) window function other than a Top-N (ROW_NUMBER() OVER (PARTITION BY ... ORDER BY ...) AS rn, filtered by rn <= N, rn < N or rn = 1 around it)",
            )),
            LogicalPlan::Values(_) | LogicalPlan::EmptyRelation(_) => Err(self.unsupported("a query without a table (VALUES)")),
            LogicalPlan::Subquery(_) => Err(self.unsupported("a subquery")),
            LogicalPlan::Unnest(_) => Err(self.unsupported("UNNEST")),
            other => Err(self.unsupported(&format!("this kind of query ({})", other.display()))),
        }
    }

    /// The rows of `input` a filter `predicate` reads, and what is left of
    /// the predicate: when its conjuncts bound a `ROW_NUMBER()` below the
    /// filter (`rn <= N`, `rn < N`, `rn = 1`), the window is a Top-N of its
    /// partitions and those conjuncts are its limit. `read` are the
    /// expressions reading the filter's rows (none: all its columns), to
    /// tell whether the rank itself is read.
    fn filtered(&mut self, predicate: &Expr, input: &LogicalPlan, read: Option<&[Expr]>) -> Result<(Stream, Option<Expr>), SqlError> {
        let schema = input.schema();
        let mut limit: Option<(u64, &datafusion_expr::logical_plan::Window)> = None;
        let mut rest = Vec::new();
        for c in datafusion_expr::utils::split_conjunction(predicate) {
            let ranked = rank_bound(c).and_then(|(col, n)| Some((ranked_by(input, schema.index_of_column(col).ok()?)?, n)));
            match (ranked, &limit) {
                (Some((w, n)), None) => limit = Some((n, w)),
                (Some((w, n)), Some((m, v))) if std::ptr::eq(w, *v) => limit = Some((n.min(*m), w)),
                _ => rest.push(c.clone()),
            }
        }
        let rest = datafusion_expr::utils::conjunction(rest);
        let Some((limit, w)) = limit else { return Ok((self.go(input)?, Some(predicate.clone()))) };
        if limit == 0 {
            return Err(self.err("ROW_NUMBER() ... <= 0 keeps no row of any partition"));
        }
        if limit > crate::ops::topn::MAX_LIMIT {
            return Err(self.err(format!("a Top-N keeps at most {} rows of each partition, not {limit}", crate::ops::topn::MAX_LIMIT)));
        }
        // Is the rank read above (or by the rest of the filter)?
        let reads = |e: &Expr| e.column_refs().into_iter().any(|c| schema.index_of_column(c).ok().and_then(|i| ranked_by(input, i)).is_some_and(|x| std::ptr::eq(x, w)));
        let rank = read.is_none_or(|r| r.iter().any(reads)) || rest.as_ref().is_some_and(reads);
        let s = self.top_n(w, limit, rank)?;
        self.ranked = Some((w as *const _ as usize, s));
        let s = self.go(input)?;
        if self.ranked.take().is_some() {
            return Err(self.err("ROW_NUMBER() under this filter could not be planned as a Top-N"));
        }
        Ok((s, rest))
    }

    /// A `ROW_NUMBER() OVER (PARTITION BY p ORDER BY o)` kept to its first
    /// `limit` rows per partition: a calc setting the record key to the
    /// partition and computing the sort keys, then a keyed `sql-topn`.
    fn top_n(&mut self, w: &datafusion_expr::logical_plan::Window, limit: u64, rank: bool) -> Result<Stream, SqlError> {
        use crate::ops::topn::{SortKey, TopNConfig};
        let [f] = w.window_expr.as_slice() else {
            return Err(self.err("a Top-N's OVER (...) ranks with ROW_NUMBER() alone (no other window function beside it)"));
        };
        let Expr::WindowFunction(f) = f.clone().unalias() else {
            return Err(self.err(format!("a Top-N ranks with ROW_NUMBER(), not {f}")));
        };
        let name = f.fun.name().to_string();
        if name != "row_number" {
            return Err(self.err(format!("a Top-N ranks with ROW_NUMBER(), not {}() (RANK and DENSE_RANK are not supported yet)", name.to_uppercase())));
        }
        let params = &f.params;
        if params.order_by.is_empty() {
            return Err(self.err("ROW_NUMBER() of a Top-N needs an ORDER BY in its OVER (...): which rows come first"));
        }
        let s = self.go(&w.input)?;
        if s.changelog {
            return Err(self.err("a Top-N (ROW_NUMBER) of a changelog (updates and deletes) is not supported yet: its input must be append-only"));
        }
        let (mut select, mut out, mut order) = (Vec::new(), Vec::new(), Vec::new());
        for (i, p) in params.partition_by.iter().enumerate() {
            let t = p.get_type(s.schema.as_ref()).map_err(|e| self.df(e))?;
            select.push(p.clone());
            out.push(ColumnDef { name: format!("__p{i}"), data_type: t });
        }
        for (i, o) in params.order_by.iter().enumerate() {
            let t = o.expr.get_type(s.schema.as_ref()).map_err(|e| self.df(e))?;
            // Sort keys that compare as JSON numbers and strings do.
            let t2 = match t {
                DataType::Timestamp(..) | DataType::Date32 | DataType::Date64 => Some(DataType::Int64),
                DataType::Decimal128(..) | DataType::Decimal256(..) | DataType::Float32 => Some(DataType::Float64),
                _ => None,
            };
            let e = match &t2 {
                Some(t2) => Expr::Cast(datafusion_expr::expr::Cast::new(Box::new(o.expr.clone()), t2.clone())),
                None => o.expr.clone(),
            };
            select.push(e);
            out.push(ColumnDef { name: format!("__o{i}"), data_type: t2.unwrap_or(t) });
            order.push(SortKey { field: format!("__o{i}"), descending: !o.asc, nulls_first: o.nulls_first });
        }
        let columns = s.columns();
        for (c, def) in s.schema.columns().into_iter().zip(&columns) {
            select.push(Expr::Column(c));
            out.push(def.clone());
        }
        let np = params.partition_by.len();
        let mut config = self.calc_config(&s, None, &select, out)?;
        config.key = Some((0..np).collect());
        let partition: Vec<String> = config.select[..np].to_vec();
        let sorted: Vec<String> = params.order_by.iter().map(|o| o.to_string()).collect();
        let explain = format!("calc: the Top-N's rows, keyed by {}", if np == 0 { "nothing (one partition)".to_string() } else { partition.join(", ") });
        let pre = self.add(calc_node(&s, config, explain));
        let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
        let rank_name = "__rank".to_string();
        if names.contains(&rank_name) {
            return Err(self.err("a Top-N of a Top-N's rows is not supported yet"));
        }
        let config = TopNConfig { columns: names.clone(), order, limit, rank: rank.then(|| rank_name.clone()) };
        let mut cfg = serde_json::to_value(&config).expect("configs serialise");
        let Value::Object(cfg) = &mut cfg else { unreachable!("a struct serialises to an object") };
        let what = if limit == 1 { "deduplication: the first row".to_string() } else { format!("Top-{limit}: the first {limit} rows") };
        let node = self.add(Node {
            name: format!("s{}-topn", self.stmt + 1),
            kind: "sql-topn".into(),
            input: Some(pre),
            right_input: None,
            keyed: true,
            parallelism: self.job.settings.parallelism,
            config: std::mem::take(cfg),
            explain: format!(
                "{what} of {} ORDER BY {}{} (emits a changelog)",
                if np == 0 { "all rows".to_string() } else { format!("each {}", partition.join(", ")) },
                sorted.join(", "),
                if rank { ", with its rank" } else { "" }
            ),
            state: Some(match limit {
                1 => "per partition key: its first row (value state); a row pushed out is forgotten".to_string(),
                _ => format!("per partition key: its first {limit} rows in order (value state); a row pushed out is forgotten"),
            }),
            statement: None,
            table: None,
        });
        let mut all = names;
        all.push(rank_name);
        Ok(Stream { node, schema: w.schema.clone(), changelog: true, table: None, names: Some(all), window: None, time: None })
    }

    /// `UNION ALL`: each branch through a calc giving its rows the union's
    /// column names (`u0`, `u1`, ...) and types, then `sql-union` nodes
    /// passing their batches on, two branches at a time.
    fn union(&mut self, u: &datafusion_expr::logical_plan::Union) -> Result<Stream, SqlError> {
        let names: Vec<String> = (0..u.schema.fields().len()).map(|i| format!("u{i}")).collect();
        let (mut branches, mut changelog) = (Vec::new(), false);
        // `a UNION ALL b UNION ALL c` is planned as a union of a union.
        fn flat(p: &LogicalPlan, out: &mut Vec<LogicalPlan>) {
            match p {
                LogicalPlan::Union(u) => u.inputs.iter().for_each(|i| flat(i, out)),
                other => out.push(other.clone()),
            }
        }
        let mut inputs = Vec::new();
        u.inputs.iter().for_each(|i| flat(i, &mut inputs));
        for (b, input) in inputs.iter().enumerate() {
            let s = self.go(input)?;
            changelog |= s.changelog;
            let (mut select, mut out) = (Vec::new(), Vec::new());
            for ((c, f), name) in s.schema.columns().into_iter().zip(u.schema.fields()).zip(&names) {
                let e = Expr::Column(c);
                let t = e.get_type(s.schema.as_ref()).map_err(|e| self.df(e))?;
                let e = if &t == f.data_type() { e } else { Expr::Cast(datafusion_expr::expr::Cast::new(Box::new(e), f.data_type().clone())) };
                select.push(e);
                out.push(ColumnDef { name: name.clone(), data_type: f.data_type().clone() });
            }
            let config = self.calc_config(&s, None, &select, out)?;
            let explain = format!("calc: branch {} of the UNION ALL, with its columns", b + 1);
            branches.push(self.add(calc_node(&s, config, explain)));
        }
        let mut branches = branches.into_iter();
        let mut node = branches.next().ok_or_else(|| self.err("a UNION of no queries"))?;
        for b in branches {
            node = self.add(Node {
                name: format!("s{}-union", self.stmt + 1),
                kind: "sql-union".into(),
                input: Some(node),
                right_input: Some(b),
                keyed: false,
                parallelism: self.job.settings.parallelism,
                config: Map::new(),
                explain: "UNION ALL: the rows of both, as they come".into(),
                state: None,
                statement: None,
                table: None,
            });
        }
        Ok(Stream { node, schema: u.schema.clone(), changelog, table: None, names: Some(names), window: None, time: None })
    }

    /// The rows of `TUMBLE(...)` not aggregated: each row with its window's
    /// columns (a calc), windowed, so a join with another windowed input on
    /// both bounds is a window join (Nexmark q7 as Flink writes it).
    fn tumble_rows(&mut self, t: &WindowTvf) -> Result<Stream, SqlError> {
        let crate::tvf::WindowShape::Tumble { size } = t.shape else {
            return Err(self.err(format!(
                "the rows of {} can only be aggregated yet (GROUP BY window_start, window_end, ...); TUMBLE's can be selected too",
                t.shape
            )));
        };
        let s = self.go(&t.input)?;
        self.event_time_column(&s, t)?;
        let mut select: Vec<String> = Vec::new();
        let mut out = s.columns();
        for c in &out {
            select.push(quoted(&c.name));
        }
        let time = s.schema.index_of_column_by_name(None, &t.time).ok_or_else(|| self.err(format!("DESCRIPTOR({}): no such column", t.time)))?;
        let ts = quoted(&out[time].name);
        let start = format!("date_bin(INTERVAL '{size} milliseconds', {ts}, TIMESTAMP '1970-01-01 00:00:00')");
        let ms = arrow_schema::DataType::Timestamp(arrow_schema::TimeUnit::Millisecond, None);
        for (name, e) in [
            ("window_start", start.clone()),
            ("window_end", format!("{start} + INTERVAL '{size} milliseconds'")),
            ("window_time", format!("{start} + INTERVAL '{} milliseconds'", size - 1)),
        ] {
            select.push(format!("CAST({e} AS TIMESTAMP)"));
            out.push(ColumnDef { name: name.into(), data_type: ms.clone() });
        }
        let n = out.len();
        let explain = format!("calc: each row with its window of {} ({})", t.shape, t.time);
        let config = CalcConfig { input: s.columns(), filter: None, select, output: out, key: None, functions: Vec::new(), plugin: None };
        let node = self.add(calc_node(&s, config, explain));
        let names = s.names.clone().map(|mut n| {
            n.extend(WINDOW_COLUMNS.iter().map(|c| c.to_string()));
            n
        });
        Ok(Stream { node, schema: t.schema.clone(), changelog: s.changelog, table: s.table.clone(), names, window: Some((n - 3, n - 2)), time: s.time })
    }

    /// A window table function's time column is its table's WATERMARK column.
    fn event_time_column(&self, s: &Stream, t: &WindowTvf) -> Result<(), SqlError> {
        let table = s.table.as_ref().ok_or_else(|| self.err("a window table function reads a table with a watermark"))?;
        match &table.watermark {
            Some(w) if w.column == t.time => Ok(()),
            Some(w) => Err(self.err(format!(
                "DESCRIPTOR({}): windows follow the table's event time, its WATERMARK column {} (DESCRIPTOR({}))",
                t.time, w.column, w.column
            ))),
            None => Err(self.err(format!(
                "DESCRIPTOR({}): windows need event time, and table {} declares no WATERMARK FOR {} AS ...",
                t.time, table.name, t.time
            ))),
        }
    }

    fn scan(&mut self, s: &TableScan) -> Result<Stream, SqlError> {
        let src = s.source.downcast_ref::<Source>().ok_or_else(|| self.err(format!("table {} has no definition", s.table_name)))?;
        let Some(t) = &src.table else {
            return Err(self.err(format!("view {} was not inlined", s.table_name)));
        };
        if !s.filters.is_empty() || s.fetch.is_some() {
            return Err(self.err(format!("the scan of {} pushed filters or a limit down", t.name)));
        }
        let changelog = t.options.get("format").is_some_and(|f| f == "debezium-json" || f == "upsert");
        let node = self.job.source_of(t);
        let time = t.watermark.as_ref().and_then(|w| s.projected_schema.index_of_column_by_name(None, &w.column));
        Ok(Stream { node, schema: s.projected_schema.clone(), changelog, table: Some(t.clone()), names: None, window: None, time })
    }

    /// A `sql-calc` over `s`: `filter`, then `select` (output `out`, of
    /// `schema`, whose rows name its columns `names` if not by their own).
    fn calc(
        &mut self,
        s: Stream,
        filter: Option<&Expr>,
        select: &[Expr],
        out: Vec<ColumnDef>,
        schema: DFSchemaRef,
        names: Option<Vec<String>>,
    ) -> Result<Stream, SqlError> {
        let config = self.calc_config(&s, filter, select, out)?;
        let explain = format!(
            "calc{}: {}",
            config.filter.as_ref().map_or(String::new(), |f| format!(" WHERE {f}")),
            config.select.iter().zip(&config.output).map(|(e, c)| if *e == quoted(&c.name) { e.clone() } else { format!("{e} AS {}", c.name) }).collect::<Vec<_>>().join(", ")
        );
        let node = self.add(calc_node(&s, config, explain));
        Ok(Stream { node, schema, names, ..s })
    }

    fn calc_config(&self, s: &Stream, filter: Option<&Expr>, select: &[Expr], out: Vec<ColumnDef>) -> Result<CalcConfig, SqlError> {
        let input = s.columns();
        for (i, c) in input.iter().enumerate() {
            if input[..i].iter().any(|d| d.name == c.name) {
                return Err(self.err(format!("column name {} is ambiguous in this query (two columns have it)", c.name)));
            }
        }
        // The user-defined functions it calls.
        let mut functions: Vec<crate::udf::FunctionRef> = Vec::new();
        for e in filter.into_iter().chain(select) {
            let _ = e.apply(|x| {
                if let Expr::ScalarFunction(f) = x
                    && let Some(u) = (f.func.inner().as_ref() as &dyn std::any::Any).downcast_ref::<crate::udf::WasmUdf>()
                    && !functions.contains(&u.func)
                {
                    functions.push(u.func.clone());
                }
                Ok(datafusion_common::tree_node::TreeNodeRecursion::Continue)
            });
        }
        // Functions of one plugin: the calc's plugin, which a swap replaces.
        let plugin = functions.first().map(|f| f.plugin.clone()).filter(|p| functions.iter().all(|f| f.plugin == *p));
        if plugin.is_some() {
            functions.iter_mut().for_each(|f| f.plugin.clear());
        }
        let filter = filter.map(|f| to_sql(&s.physical(f)).map_err(|e| self.df(e))).transpose()?;
        let select = select.iter().map(|e| to_sql(&s.physical(e)).map_err(|e| self.df(e))).collect::<Result<Vec<_>, _>>()?;
        Ok(CalcConfig { input, filter, select, output: out, key: None, functions, plugin })
    }

    fn aggregate(&mut self, a: &Aggregate) -> Result<Stream, SqlError> {
        let names: Vec<Option<&str>> = a
            .group_expr
            .iter()
            .map(|e| match e {
                Expr::Column(c) => Some(c.name.as_str()),
                _ => None,
            })
            .collect();
        let window_col = |w: &str| names.iter().position(|n| *n == Some(w));
        let (tvf, filters) = find_tvf(&a.input);
        // The rows to aggregate: the window function's input, or the aggregation's.
        let (base, filter) = match &tvf {
            Some(t) => {
                for f in &filters {
                    if f.column_refs().iter().any(|c| WINDOW_COLUMNS.contains(&c.name.as_str())) {
                        return Err(self.err("a filter on window_start, window_end or window_time before the GROUP BY is not supported yet"));
                    }
                }
                (&t.input, filters.into_iter().cloned().reduce(|a, b| a.and(b)))
            }
            None => (a.input.as_ref(), None),
        };
        let s = self.go(base)?;
        // Grouped by the window columns of a windowed input (rows of a window
        // aggregation): windowed again, by the windows the rows carry.
        let attached = match (&tvf, s.window) {
            (None, Some((ws, we))) => {
                let at = |i: usize| a.group_expr.iter().position(|e| matches!(e, Expr::Column(c) if s.schema.index_of_column(c).ok() == Some(i)));
                at(ws).zip(at(we))
            }
            _ => None,
        };
        let windowed = attached.is_some() || match (window_col("window_start"), window_col("window_end"), &tvf) {
            (Some(_), Some(_), Some(_)) => true,
            (None, None, None) => false,
            (_, _, Some(_)) => {
                return Err(self.err("an aggregation over a window table function groups by window_start and window_end (GROUP BY window_start, window_end, ...)"))
            }
            _ => return Err(self.err("window_start and window_end come from a window table function: FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), ...)), or from a window aggregation grouped by both")),
        };
        if let Some(t) = &tvf
            && matches!(t.shape, crate::tvf::WindowShape::Session { .. })
        {
            let mut group: Vec<String> = names
                .iter()
                .filter(|n| !matches!(n, Some("window_start" | "window_end")))
                .map(|n| n.map(str::to_string).ok_or_else(|| self.err("SESSION windows are grouped by columns, not expressions")))
                .collect::<Result<_, _>>()?;
            let mut partition = t.partition.clone();
            group.sort();
            partition.sort();
            if group != partition {
                return Err(self.err(format!(
                    "SESSION: sessions are formed per PARTITION BY column ({}) and the GROUP BY has besides the window ({}): they must be the same: TABLE(SESSION(TABLE t PARTITION BY {}, DESCRIPTOR(ts), gap))",
                    partition.join(", "),
                    group.join(", "),
                    if group.is_empty() { "...".to_string() } else { group.join(", ") }
                )));
            }
        }
        if windowed && s.changelog {
            return Err(self.err("a window aggregation over a changelog (updates and deletes) is not supported yet"));
        }
        if let Some(t) = &tvf {
            self.event_time_column(&s, t)?;
        }
        // The pre-calc: group keys (not the window's), then each aggregate's argument.
        let mut group = Vec::new();
        let mut select: Vec<Expr> = Vec::new();
        let mut input_cols: Vec<ColumnDef> = Vec::new();
        let base_schema = s.schema.clone();
        let type_of = |e: &Expr| e.get_type(base_schema.as_ref());
        for (gi, (e, n)) in a.group_expr.iter().zip(&names).enumerate() {
            match *n {
                _ if attached.is_some_and(|(ws, _)| ws == gi) => group.push(GroupField::WindowStart),
                _ if attached.is_some_and(|(_, we)| we == gi) => group.push(GroupField::WindowEnd),
                Some("window_start") if tvf.is_some() => group.push(GroupField::WindowStart),
                Some("window_end") if tvf.is_some() => group.push(GroupField::WindowEnd),
                _ => {
                    let t = type_of(e).map_err(|e| self.df(e))?;
                    group.push(GroupField::Key(select.len()));
                    input_cols.push(ColumnDef { name: format!("k{}", select.len()), data_type: t });
                    select.push(s.physical(e));
                }
            }
        }
        let keys = select.len();
        let n_group = a.group_expr.len();
        let out_fields = a.schema.fields();
        let mut aggregates = Vec::new();
        for (i, e) in a.aggr_expr.iter().enumerate() {
            let f = match e {
                Expr::Alias(al) => al.expr.as_ref(),
                e => e,
            };
            let Expr::AggregateFunction(AggregateFunction { func, params }) = f else {
                return Err(self.err(format!("{e} is not an aggregate function")));
            };
            if params.filter.is_some() || !params.order_by.is_empty() {
                return Err(self.unsupported("an aggregate with FILTER or ORDER BY"));
            }
            let function = AggFn::of(func.name()).ok_or_else(|| {
                self.err(format!("the aggregate function {} is not supported yet (COUNT, SUM, MIN, MAX, AVG, COUNT(DISTINCT ...))", func.name().to_uppercase()))
            })?;
            let arg = match params.args.as_slice() {
                [] => None,
                [Expr::Literal(v, _)] if function == AggFn::Count && !v.is_null() => None,
                #[allow(deprecated)]
                [Expr::Wildcard { .. }] if function == AggFn::Count && !params.distinct => None,
                [arg] => {
                    let t = type_of(arg).map_err(|e| self.df(e))?;
                    input_cols.push(ColumnDef { name: format!("a{}", select.len()), data_type: t });
                    select.push(s.physical(arg));
                    Some(select.len() - 1)
                }
                _ => return Err(self.err(format!("{} takes one argument", func.name().to_uppercase()))),
            };
            if s.changelog && matches!(function, AggFn::Min | AggFn::Max) {
                return Err(self.err(format!(
                    "{} over a changelog (updates and deletes) is not supported yet: it would have to keep every value",
                    func.name().to_uppercase()
                )));
            }
            if s.changelog && params.distinct {
                return Err(self.err("COUNT(DISTINCT ...) over a changelog is not supported yet"));
            }
            let out = out_fields[n_group + i].data_type().clone();
            aggregates.push(AggSpec { function, distinct: params.distinct, arg, data_type: out });
        }
        // Windows the rows carry: their bounds as milliseconds, after the arguments.
        let shape = match (&tvf, attached) {
            (Some(t), _) => Some(t.shape),
            (None, Some((ws, we))) => {
                let mut bound = |gi: usize, name: &str| {
                    let e = Expr::Cast(datafusion_expr::expr::Cast::new(Box::new(s.physical(&a.group_expr[gi])), DataType::Int64));
                    input_cols.push(ColumnDef { name: name.into(), data_type: DataType::Int64 });
                    select.push(e);
                    select.len() - 1
                };
                Some(crate::tvf::WindowShape::Attached { start: bound(ws, "ws"), end: bound(we, "we") })
            }
            (None, None) => None,
        };
        let output: Vec<ColumnDef> = out_fields.iter().map(|f| ColumnDef::of(f)).collect();
        // The pre-calc computes keys and arguments and keys the records by the group.
        let mut pre = self.calc_config(&s, filter.as_ref(), &select, input_cols.clone())?;
        pre.key = Some((0..keys).collect());
        let explain = format!(
            "calc{}: group keys and arguments {}",
            pre.filter.as_ref().map_or(String::new(), |f| format!(" WHERE {f}")),
            pre.select.join(", ")
        );
        let pre_node = self.add(calc_node(&s, pre, explain));
        let window = match windowed {
            true => group.iter().position(|g| *g == GroupField::WindowStart).zip(group.iter().position(|g| *g == GroupField::WindowEnd)),
            false => None,
        };
        let ttl_ms = match windowed {
            true => None,
            false => self.hinted_ttl(base).or(self.job.settings.state_ttl_ms),
        };
        let config = AggregateConfig { input: input_cols, keys, group, aggregates, output: output.clone(), window: shape, ttl_ms };
        let kind = if windowed { "sql-window" } else { "sql-aggregate" };
        let aggs: Vec<String> = a.aggr_expr.iter().map(|e| e.schema_name().to_string()).collect();
        let group_names: Vec<String> = a.group_expr.iter().map(|e| unqualified(e).schema_name().to_string()).collect();
        let explain = match &shape {
            Some(w) => format!("window aggregate {w}: GROUP BY {}: {}", group_names.join(", "), aggs.join(", ")),
            None => format!("updating aggregate (emits a changelog): GROUP BY {}: {}", group_names.join(", "), aggs.join(", ")),
        };
        let state = match &shape {
            Some(_) => "per group key: each open window's accumulators (map state), and an event-time timer per window end".to_string(),
            None => format!(
                "per group key: its accumulators and the row it last emitted (value state){}",
                ttl_ms.map_or(String::new(), |t| format!(", dropped {t} ms after its last change"))
            ),
        };
        let mut cfg = serde_json::to_value(&config).expect("configs serialise");
        let Value::Object(cfg) = &mut cfg else { unreachable!("a struct serialises to an object") };
        let node = self.add(Node {
            name: format!("s{}-{}", self.stmt + 1, if windowed { "window" } else { "aggregate" }),
            kind: kind.into(),
            input: Some(pre_node),
            right_input: None,
            keyed: true,
            parallelism: self.job.settings.parallelism,
            config: std::mem::take(cfg),
            explain,
            state: Some(state),
            statement: None,
            table: None,
        });
        Ok(Stream { node, schema: a.schema.clone(), changelog: !windowed || s.changelog, table: None, names: None, window, time: None })
    }

    /// An inner equi-join: a keyed `sql-join` over a calc per side, then a
    /// calc for the conditions that are not equalities.
    fn join(&mut self, j: &Join) -> Result<Stream, SqlError> {
        let (left_outer, right_outer) = match j.join_type {
            JoinType::Inner => (false, false),
            JoinType::Left => (true, false),
            JoinType::Right => (false, true),
            JoinType::Full => (true, true),
            other => return Err(self.unsupported(&format!("{} JOIN", other.to_string().to_uppercase()))),
        };
        let outer = left_outer || right_outer;
        let kind = format!("{} JOIN", j.join_type.to_string().to_uppercase());
        if outer && j.filter.is_some() {
            return Err(self.err(format!(
                "a {kind}'s ON condition other than equalities between the sides is not supported yet (an inner join's is; conditions on one side go in a WHERE of a subquery of it)"
            )));
        }
        if j.on.is_empty() {
            return Err(self.err(
                "a join needs an equality between columns of its two sides (ON a.x = b.y): without one every row would meet every row of the other side",
            ));
        }
        // An event-time temporal join: its right side read FOR SYSTEM_TIME AS OF.
        if self.as_of(&j.left).is_some() {
            return Err(self.err("the versioned table of a temporal join is its right side: FROM probe JOIN versioned FOR SYSTEM_TIME AS OF probe.t ON ..."));
        }
        if let Some(a) = self.as_of(&j.right) {
            let (l, r) = (self.go(&j.left)?, self.go(&j.right)?);
            return self.temporal_join(j, a, l, r);
        }
        let (l, r) = (self.go(&j.left)?, self.go(&j.right)?);
        let upsert = |s: &Stream| s.changelog && s.table.as_ref().is_some_and(|t| t.options.get("format").is_some_and(|f| f == "upsert"));
        if upsert(&l) || upsert(&r) {
            return Err(self.err(
                "a JOIN of an upsert table (changes by key, without the rows they replace) is not supported: read it as a full changelog ('format' = 'debezium-json')",
            ));
        }
        let changelog = l.changelog || r.changelog;
        // A window join: both sides are rows of windows, joined on their
        // windows' start and end; the rows of a window are dropped once the
        // watermark passes its end (no later row can meet them).
        let window = match (l.window, r.window) {
            (Some((ls, le)), Some((rs, re))) => {
                let col = |s: &Stream, e: &Expr| match e.clone().unalias() {
                    Expr::Column(c) => s.schema.index_of_column(&c).ok(),
                    _ => None,
                };
                let pair = |li: usize, ri: usize| j.on.iter().position(|(a, b)| col(&l, a) == Some(li) && col(&r, b) == Some(ri));
                pair(ls, rs).zip(pair(le, re)).map(|(start, end)| (start, end, ls, le))
            }
            _ => None,
        };
        if outer && window.is_some() {
            return Err(self.err(format!("a window {kind} is not supported yet (an inner window join is)")));
        }
        if changelog && window.is_some() {
            return Err(self.err("a window join of a changelog (updates and deletes) is not supported yet: both sides must be append-only"));
        }
        // An interval join: the other conditions bound the two sides' event
        // times against each other, both ways.
        let interval = match (&j.filter, window) {
            // (Of a changelog, a regular join: rows taken back need their
            // matches, whatever the watermark.)
            (Some(f), None) if !outer && !changelog => interval_bounds(&l, &r, f),
            _ => None,
        };
        let names: Vec<String> = (0..j.schema.fields().len()).map(|i| format!("j{i}")).collect();
        let nl = l.schema.fields().len();
        let millis = |i: usize| window.is_some_and(|(s, e, _, _)| i == s || i == e);
        let mut side_nodes = self.join_sides(j, &l, &r, &names, &millis, interval.is_some())?;
        let ttl = self.job.settings.state_ttl_ms;
        // A STATE_TTL hint naming a side: its rows' own.
        let (left_ttl, right_ttl) = (self.hinted_ttl(&j.left), self.hinted_ttl(&j.right));
        let lasting = match (left_ttl, right_ttl) {
            (None, None) => ttl.map_or(", kept forever (SET 'table.exec.state.ttl' bounds it)".to_string(), |t| format!(", each dropped {t} ms after it came")),
            _ => {
                let says = |t: Option<u64>| t.or(ttl).map_or("kept forever".to_string(), |t| format!("dropped {t} ms after it came"));
                format!(", the left's rows each {}, the right's {}", says(left_ttl), says(right_ttl))
            }
        };
        let config = crate::ops::join::JoinConfig {
            keys: j.on.len(),
            left: names[..nl].to_vec(),
            right: names[nl..].to_vec(),
            ttl_ms: ttl,
            left_ttl_ms: left_ttl,
            right_ttl_ms: right_ttl,
            window_end: window.map(|(_, e, _, _)| e),
            interval,
            left_outer,
            right_outer,
        };
        let mut cfg = serde_json::to_value(&config).expect("configs serialise");
        let Value::Object(cfg) = &mut cfg else { unreachable!("a struct serialises to an object") };
        let on: Vec<String> = j.on.iter().map(|(a, b)| format!("{a} = {b}")).collect();
        let right = side_nodes.pop();
        let node = self.add(Node {
            name: format!("s{}-join", self.stmt + 1),
            kind: "sql-join".into(),
            input: side_nodes.pop(),
            right_input: right,
            keyed: true,
            parallelism: self.job.settings.parallelism,
            config: std::mem::take(cfg),
            explain: match interval {
                Some(i) => format!(
                    "interval join ON {} ({} - {} between {} and {} ms)",
                    on.join(" AND "),
                    r.schema.columns()[r.time.expect("an interval join has both times")],
                    l.schema.columns()[l.time.expect("an interval join has both times")],
                    i.lower_ms,
                    i.upper_ms
                ),
                None if outer => format!("{} outer join ON {} (emits a changelog)", j.join_type.to_string().to_lowercase(), on.join(" AND ")),
                None => format!(
                    "{} ON {}{}",
                    if window.is_some() { "window join" } else { "inner join" },
                    on.join(" AND "),
                    if changelog { " (of a changelog: takes back what a row taken back was joined into)" } else { "" }
                ),
            },
            state: Some(match window {
                None if outer => format!("per join key: every row of each side (map state: row -> count, and whether an outer side's row met one){lasting}"),
                None if interval.is_some() => "per join key: each side's rows (map state: row -> count and time) until the watermark passes the last time a row of the other side could meet them (an event-time timer)".to_string(),
                Some(_) => "per join key (which holds the window): every row of each side (map state: row -> count) until the watermark passes the window's end (an event-time timer)".to_string(),
                None => format!("per join key: every row of each side (map state: row -> count){lasting}"),
            }),
            statement: None,
            table: None,
        });
        let window = window.map(|(_, _, ls, le)| (ls, le));
        let s = Stream { node, schema: j.schema.clone(), changelog: outer || changelog, table: None, names: Some(names.clone()), window, time: None };
        match &j.filter {
            Some(f) => {
                let all: Vec<Expr> = j.schema.columns().into_iter().map(Expr::Column).collect();
                let out = s.columns();
                self.calc(s, Some(f), &all, out, j.schema.clone(), Some(names))
            }
            None => Ok(s),
        }
    }

    /// The calcs of a join's two sides: the record key set to the join keys
    /// (`k0`, ...: both sides' as the left's type, so equal keys are equal
    /// bytes; the keys `millis` says as milliseconds), the columns named
    /// `names` (left's first), the side (`__side`) and, if `times`, each
    /// side's event time in milliseconds (`__t`).
    fn join_sides(&mut self, j: &Join, l: &Stream, r: &Stream, names: &[String], millis: &dyn Fn(usize) -> bool, times: bool) -> Result<Vec<String>, SqlError> {
        let nl = l.schema.fields().len();
        let mut side_nodes = Vec::new();
        for (side, s) in [(0usize, l), (1, r)] {
            let (offset, mut select, mut out) = (if side == 0 { 0 } else { nl }, Vec::new(), Vec::new());
            for (i, (le, re)) in j.on.iter().enumerate() {
                let lt = le.get_type(l.schema.as_ref()).map_err(|e| self.df(e))?;
                let e = if side == 0 { le.clone() } else { re.clone() };
                let t = e.get_type(s.schema.as_ref()).map_err(|e| self.df(e))?;
                let lt = if millis(i) { DataType::Int64 } else { lt };
                let e = if t == lt { e } else { Expr::Cast(datafusion_expr::expr::Cast::new(Box::new(e), lt.clone())) };
                select.push(e);
                out.push(ColumnDef { name: format!("k{i}"), data_type: lt });
            }
            for (i, c) in s.schema.columns().into_iter().enumerate() {
                out.push(ColumnDef { name: names[offset + i].clone(), data_type: s.schema.field(i).data_type().clone() });
                select.push(Expr::Column(c));
            }
            if let (true, Some(t)) = (times, s.time) {
                let c = Expr::Column(s.schema.columns()[t].clone());
                select.push(Expr::Cast(datafusion_expr::expr::Cast::new(Box::new(c), DataType::Int64)));
                out.push(ColumnDef { name: crate::ops::join::TIME.into(), data_type: DataType::Int64 });
            }
            select.push(datafusion_expr::lit(side as i64));
            out.push(ColumnDef { name: crate::ops::join::SIDE.into(), data_type: DataType::Int64 });
            let mut config = self.calc_config(s, None, &select, out)?;
            config.key = Some((0..j.on.len()).collect());
            let what = if side == 0 { "left" } else { "right" };
            let explain = format!("calc: the join's {what} side, keyed by {}", config.select[..j.on.len()].join(", "));
            side_nodes.push(self.add(calc_node(s, config, explain)));
        }
        Ok(side_nodes)
    }

    /// An event-time temporal join: `l JOIN r FOR SYSTEM_TIME AS OF l.t ON
    /// l.k = r.pk`, `r` a versioned table (a PRIMARY KEY and a WATERMARK).
    fn temporal_join(&mut self, j: &Join, a: crate::script::AsOf, l: Stream, r: Stream) -> Result<Stream, SqlError> {
        let versioned = a.alias.clone().unwrap_or_else(|| a.table.clone());
        let err = |m: String| SqlError::at(self.file, a.at, m);
        let left_outer = match j.join_type {
            JoinType::Inner => false,
            JoinType::Left => true,
            other => return Err(err(format!("a {} temporal join is not supported (INNER or LEFT)", other.to_string().to_uppercase()))),
        };
        if j.on.is_empty() {
            return Err(err(format!("a temporal join needs equalities on {versioned}'s PRIMARY KEY (ON o.k = {versioned}.pk)")));
        }
        if left_outer && j.filter.is_some() {
            return Err(err("a LEFT temporal join's ON condition other than equalities between the sides is not supported yet".into()));
        }
        if l.changelog {
            return Err(err("the probe side of a temporal join (its left) must be append-only".into()));
        }
        let probe_time = l.schema.columns().into_iter().position(|c| {
            c.name.eq_ignore_ascii_case(&a.column)
                && a.qualifier.as_ref().is_none_or(|q| c.relation.as_ref().is_some_and(|r| r.table().eq_ignore_ascii_case(q)))
        });
        if probe_time.is_none() || probe_time != l.time {
            return Err(err(format!(
                "FOR SYSTEM_TIME AS OF {}: the probe side's event time, its table's WATERMARK column (processing-time temporal joins are not supported)",
                a.qualifier.as_ref().map_or(a.column.clone(), |q| format!("{q}.{}", a.column))
            )));
        }
        let table = r.table.clone().filter(|_| r.time.is_some()).filter(|t| !t.primary_key.is_empty()).ok_or_else(|| {
            err(format!("{versioned}: a versioned table (FOR SYSTEM_TIME AS OF) has a PRIMARY KEY and a WATERMARK, read as it is defined"))
        })?;
        let on_right: Vec<String> = j
            .on
            .iter()
            .filter_map(|(_, re)| match re.clone().unalias() {
                Expr::Column(c) => Some(c.name.to_ascii_lowercase()),
                _ => None,
            })
            .collect();
        if let Some(missing) = table.primary_key.iter().find(|k| !on_right.contains(&k.to_ascii_lowercase())) {
            return Err(err(format!(
                "a temporal join's equalities cover {versioned}'s PRIMARY KEY ({}): {missing} is missing",
                table.primary_key.join(", ")
            )));
        }
        let names: Vec<String> = (0..j.schema.fields().len()).map(|i| format!("j{i}")).collect();
        let nl = l.schema.fields().len();
        let mut sides = self.join_sides(j, &l, &r, &names, &|_| false, true)?;
        let config = crate::ops::temporal::TemporalJoinConfig { keys: j.on.len(), left: names[..nl].to_vec(), right: names[nl..].to_vec(), left_outer };
        let mut cfg = serde_json::to_value(&config).expect("configs serialise");
        let Value::Object(cfg) = &mut cfg else { unreachable!("a struct serialises to an object") };
        let on: Vec<String> = j.on.iter().map(|(x, y)| format!("{x} = {y}")).collect();
        let right = sides.pop();
        let node = self.add(Node {
            name: format!("s{}-temporal-join", self.stmt + 1),
            kind: "sql-temporal-join".into(),
            input: sides.pop(),
            right_input: right,
            keyed: true,
            parallelism: self.job.settings.parallelism,
            config: std::mem::take(cfg),
            explain: format!(
                "{}temporal join ON {} (each row meets the version of {versioned} as of its {})",
                if left_outer { "left " } else { "" },
                on.join(" AND "),
                l.schema.columns()[l.time.expect("checked")]
            ),
            state: Some(
                "per join key: the left's rows until the watermark passes their time (map state: row -> count and time, an event-time timer), the right's versions from the one current at the watermark on (map state: time -> row)"
                    .into(),
            ),
            statement: None,
            table: None,
        });
        let s = Stream { node, schema: j.schema.clone(), changelog: false, table: None, names: Some(names.clone()), window: None, time: None };
        match &j.filter {
            Some(f) => {
                let all: Vec<Expr> = j.schema.columns().into_iter().map(Expr::Column).collect();
                let out = s.columns();
                self.calc(s, Some(f), &all, out, j.schema.clone(), Some(names))
            }
            None => Ok(s),
        }
    }

    /// The sink of an INSERT into `t`, reading `s` (whose columns are the
    /// table's, in order): a last calc sets the record key to the primary
    /// key, and a changelog goes to an upsert sink.
    pub fn insert(&mut self, t: &TableDef, s: Stream, at: Pos) -> Result<String, SqlError> {
        let mut cols: Vec<ColumnDef> = t.schema.fields().iter().map(|f| ColumnDef::of(f)).collect();
        let select: Vec<Expr> = s.schema.columns().into_iter().map(Expr::Column).collect();
        if select.len() != cols.len() {
            return Err(SqlError::at(self.file, at, format!("INSERT INTO {}: the query gives {} columns, the table has {}", t.name, select.len(), cols.len())));
        }
        for (c, f) in cols.iter_mut().zip(s.schema.fields()) {
            c.data_type = f.data_type().clone();
        }
        let key: Vec<usize> = t.primary_key.iter().map(|k| t.schema.index_of(k).expect("checked at CREATE TABLE")).collect();
        let keyed = if t.primary_key.is_empty() { String::new() } else { format!(", keyed by its primary key ({})", t.primary_key.join(", ")) };
        // The rows are the table's once their columns have its names: the
        // calc that computed them (this statement's, read by nothing else)
        // names them so, rather than a calc of its own decoding and encoding
        // every row again.
        let stmt = self.stmt;
        let fused = self.job.operators.last_mut().filter(|n| n.name == s.node && n.kind == "sql-calc" && n.statement == Some(stmt)).and_then(|n| {
            let mut c: CalcConfig = serde_json::from_value(Value::Object(n.config.clone())).ok()?;
            if c.key.is_some() || c.output.len() != cols.len() || c.output.iter().zip(&cols).any(|(o, t)| o.data_type != t.data_type) {
                return None;
            }
            for (o, col) in c.output.iter_mut().zip(&cols) {
                o.name = col.name.clone();
            }
            c.key = (!key.is_empty()).then(|| key.clone());
            let Ok(Value::Object(config)) = serde_json::to_value(&c) else { return None };
            n.config = config;
            n.explain = format!("{}; rows of {}{keyed}", n.explain, t.name);
            Some(n.name.clone())
        });
        let calc = match fused {
            Some(name) => name,
            None => {
                let mut config = self.calc_config(&s, None, &select, cols)?;
                config.key = (!key.is_empty()).then_some(key);
                self.add(calc_node(&s, config, format!("encode rows of {}{keyed}", t.name)))
            }
        };
        let mut node_config = Map::new();
        for (k, v) in &t.options {
            if k != "connector" {
                node_config.insert(k.clone(), crate::job::option_value(v));
            }
        }
        let connector = t.connector().to_string();
        if s.changelog {
            let pk = || {
                if t.primary_key.is_empty() {
                    Err(SqlError::at(
                        self.file,
                        at,
                        format!(
                            "INSERT INTO {}: the query updates the rows it emitted (an aggregation without a window), so table {} needs a PRIMARY KEY (...) NOT ENFORCED to apply them by",
                            t.name, t.name
                        ),
                    ))
                } else {
                    Ok(())
                }
            };
            match connector.as_str() {
                "iceberg" => {
                    pk()?;
                    node_config.entry("mode").or_insert(json!("upsert"));
                    node_config.entry("key").or_insert(json!(t.primary_key));
                }
                "kafka" => {
                    pk()?;
                    node_config.entry("format").or_insert(json!("upsert"));
                }
                "file" => {
                    node_config.entry("format").or_insert(json!("changelog-json"));
                }
                _ => {}
            }
        } else if connector == "iceberg" && !t.primary_key.is_empty() && !node_config.contains_key("key") {
            if node_config.get("mode").and_then(Value::as_str) == Some("upsert") {
                node_config.insert("key".into(), json!(t.primary_key));
            }
        }
        if connector == "kafka" && !node_config.contains_key("format") {
            node_config.insert("format".into(), json!("json"));
        }
        let upsert = node_config.get("mode").and_then(Value::as_str) == Some("upsert")
            || node_config.get("format").and_then(Value::as_str) == Some("upsert");
        let parallelism = t.options.get("parallelism").and_then(|p| p.parse().ok());
        let name = self.job.fresh_name(&t.name);
        let explain = format!("sink {} ({connector}{})", t.name, if s.changelog { ", applies the changelog by key" } else { "" });
        self.job.sinks.push(Node {
            name: name.clone(),
            kind: connector,
            input: Some(calc),
            right_input: None,
            keyed: upsert && !t.primary_key.is_empty() && parallelism.is_some_and(|p: u32| p > 1),
            parallelism,
            config: node_config,
            explain,
            state: None,
            statement: Some(self.stmt),
            table: Some((t.name.clone(), t.at, t.option_at.clone())),
        });
        Ok(name)
    }
}

/// How the unparser writes a column name (for EXPLAIN).
fn quoted(name: &str) -> String {
    to_sql(&Expr::Column(datafusion_common::Column::new_unqualified(name))).unwrap_or_else(|_| name.to_string())
}

fn calc_node(s: &Stream, config: CalcConfig, mut explain: String) -> Node {
    // The functions it calls, and their plugin (which a swap replaces).
    if !config.functions.is_empty() {
        let calls: Vec<String> = config.resolved_functions().iter().map(|f| format!("{} = {}#{}", f.name, f.plugin, f.function)).collect();
        explain.push_str(&format!("; calls {}", calls.join(", ")));
    }
    let mut cfg = serde_json::to_value(&config).expect("configs serialise");
    let Value::Object(cfg) = &mut cfg else { unreachable!("a struct serialises to an object") };
    Node {
        name: format!("{}-calc", s.node),
        kind: "sql-calc".into(),
        input: Some(s.node.clone()),
        right_input: None,
        keyed: false,
        parallelism: None,
        config: std::mem::take(cfg),
        explain,
        state: None,
        statement: None,
        table: None,
    }
}

/// The window table function under an aggregation's input, through aliases,
/// filters (which it returns, outermost first) and projections that only
/// prune columns.
fn find_tvf(p: &LogicalPlan) -> (Option<WindowTvf>, Vec<&Expr>) {
    let mut filters = Vec::new();
    let mut node = p;
    loop {
        match node {
            LogicalPlan::SubqueryAlias(a) => node = &a.input,
            LogicalPlan::Filter(f) => {
                filters.push(&f.predicate);
                node = &f.input;
            }
            // Columns pruned (the optimizer's), nothing computed.
            LogicalPlan::Projection(p) if p.expr.iter().all(|e| matches!(e, Expr::Column(_))) => node = &p.input,
            LogicalPlan::Extension(e) => return (e.node.as_any().downcast_ref::<WindowTvf>().cloned(), filters),
            _ => return (None, Vec::new()),
        }
    }
}

/// `r.t - l.t`'s bounds in milliseconds (inclusive), if the conjuncts of
/// `filter` bound the two sides' event times (`l.time`, `r.time`) below and
/// above: each conjunct `A op B` with A and B a side's time column plus or
/// minus a fixed interval, `BETWEEN` too. A strict bound counts as
/// inclusive: the join keeps a row at most a millisecond longer than needed,
/// and the calc above it applies the exact condition.
fn interval_bounds(l: &Stream, r: &Stream, filter: &Expr) -> Option<crate::ops::join::Interval> {
    use datafusion_expr::{BinaryExpr, Operator};
    let (lt, rt) = (l.time?, r.time?);
    // The side of a time column plus an offset: 0 left, 1 right.
    let term = |e: &Expr| -> Option<(usize, i64)> {
        let (c, offset) = match e {
            Expr::Column(c) => (c, 0),
            Expr::BinaryExpr(BinaryExpr { left, op: op @ (Operator::Plus | Operator::Minus), right }) => match (left.as_ref(), right.as_ref()) {
                (Expr::Column(c), Expr::Literal(v, _)) => (c, if *op == Operator::Plus { interval_ms(v)? } else { interval_ms(v)?.checked_neg()? }),
                (Expr::Literal(v, _), Expr::Column(c)) if *op == Operator::Plus => (c, interval_ms(v)?),
                _ => return None,
            },
            _ => return None,
        };
        if l.schema.index_of_column(c).ok() == Some(lt) && r.schema.index_of_column(c).is_err() {
            Some((0, offset))
        } else if r.schema.index_of_column(c).ok() == Some(rt) && l.schema.index_of_column(c).is_err() {
            Some((1, offset))
        } else {
            None
        }
    };
    let (mut lower, mut upper) = (None::<i64>, None::<i64>);
    // `a op b` as a bound of r.t - l.t.
    let mut bound = |a: &Expr, op: Operator, b: &Expr| {
        let (Some((sa, xa)), Some((sb, xb))) = (term(a), term(b)) else { return };
        // r.t + x op l.t + y  <=>  r.t - l.t op y - x; the other way round,
        // the operator turns.
        let (k, op) = match (sa, sb) {
            (1, 0) => (xb - xa, op),
            (0, 1) => (xa - xb, op.swap().unwrap_or(op)),
            _ => return,
        };
        match op {
            Operator::GtEq | Operator::Gt => lower = Some(lower.map_or(k, |l| l.max(k))),
            Operator::LtEq | Operator::Lt => upper = Some(upper.map_or(k, |u| u.min(k))),
            Operator::Eq => {
                lower = Some(lower.map_or(k, |l| l.max(k)));
                upper = Some(upper.map_or(k, |u| u.min(k)));
            }
            _ => {}
        }
    };
    for c in datafusion_expr::utils::split_conjunction(filter) {
        match c {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => bound(left, *op, right),
            Expr::Between(b) if !b.negated => {
                bound(&b.expr, Operator::GtEq, &b.low);
                bound(&b.expr, Operator::LtEq, &b.high);
            }
            _ => {}
        }
    }
    Some(crate::ops::join::Interval { lower_ms: lower?, upper_ms: upper? })
}

/// A fixed interval literal in milliseconds (not months, not finer than a
/// millisecond).
fn interval_ms(v: &datafusion_common::ScalarValue) -> Option<i64> {
    use datafusion_common::ScalarValue as S;
    const DAY: i64 = 86_400_000;
    match v {
        S::IntervalDayTime(Some(d)) => Some(d.days as i64 * DAY + d.milliseconds as i64),
        S::IntervalMonthDayNano(Some(m)) if m.months == 0 && m.nanoseconds % 1_000_000 == 0 => {
            Some(m.days as i64 * DAY + m.nanoseconds / 1_000_000)
        }
        S::DurationMillisecond(Some(ms)) => Some(*ms),
        S::DurationSecond(Some(s)) => s.checked_mul(1000),
        _ => None,
    }
}

/// A conjunct bounding a column from above (`c <= N`, `c < N`, `N >= c`,
/// `c = 1`): the column and the most rows it keeps.
fn rank_bound(c: &Expr) -> Option<(&Column, u64)> {
    use datafusion_expr::{BinaryExpr, Operator};
    fn column(e: &Expr) -> Option<&Column> {
        match e {
            Expr::Column(c) => Some(c),
            Expr::Cast(c) => column(&c.expr),
            Expr::TryCast(c) => column(&c.expr),
            _ => None,
        }
    }
    let number = |e: &Expr| match e {
        Expr::Literal(v, _) => v.cast_to(&DataType::Int64).ok().and_then(|v| match v {
            datafusion_common::ScalarValue::Int64(Some(n)) => Some(n),
            _ => None,
        }),
        _ => None,
    };
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = c else { return None };
    let (col, op, n) = match (column(left), number(right)) {
        (Some(c), Some(n)) => (c, *op, n),
        _ => (column(right)?, op.swap()?, number(left)?),
    };
    let n = match op {
        Operator::LtEq => n,
        Operator::Lt => n - 1,
        Operator::Eq if n == 1 => 1,
        _ => return None,
    };
    Some((col, n.max(0) as u64))
}

/// The `ROW_NUMBER()`-like window node whose function column `i` of `p`'s
/// schema is, through aliases, filters and projections passing it on.
fn ranked_by(p: &LogicalPlan, i: usize) -> Option<&datafusion_expr::logical_plan::Window> {
    match p {
        LogicalPlan::SubqueryAlias(a) => ranked_by(&a.input, i),
        LogicalPlan::Filter(f) => ranked_by(&f.input, i),
        LogicalPlan::Projection(pr) => match pr.expr.get(i)?.clone().unalias() {
            Expr::Column(c) => ranked_by(&pr.input, pr.input.schema().index_of_column(&c).ok()?),
            _ => None,
        },
        LogicalPlan::Window(w) => (i >= w.input.schema().fields().len()).then_some(w),
        _ => None,
    }
}
