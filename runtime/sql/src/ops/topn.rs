//! `type: sql-topn`: Top-N and deduplication, `ROW_NUMBER() OVER (PARTITION
//! BY ... ORDER BY ...)` filtered to its first N rows, as Flink's rank
//! operator. Keyed by the partition (the record key its input's calc set),
//! it keeps each partition's first `limit` rows in order in keyed value
//! state: an append-only input never takes a row back, so a row that falls
//! out of the first N can never come back and is forgotten. Each input row
//! either falls outside (nothing is emitted) or takes its place among them,
//! and the operator emits what changed as a changelog: without the rank in
//! the output, +I for a row that joins a partition not yet full, or -U of the
//! row it pushed out and +U of itself; with the rank (`rank` names its
//! column, 1 for the first), -U/+U for every rank whose row changed and +I
//! for a rank filled for the first time. Rows equal by the ORDER BY keep the
//! order they came in (the first is ranked first).
//!
//! Its input rows hold the sort keys as fields (`order`: timestamps as
//! milliseconds) beside the row's columns (`columns`).

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use weir_engine::{Emitter, Operator, OperatorError, OperatorFactory, Origin, RecordBatch, RowKind, SnapshotWriter, TaskContext};
use weir_spec::{BuildContext, BuildError, BuiltOperator, Changelog, Check, OperatorKind, SpecError};
use weir_state::{StateBackendFactory, StateDescriptor, StateId, StateKind};

use crate::ops::keyed::Keyed;

/// The most rows a partition keeps (the state of a key is all of them).
pub const MAX_LIMIT: u64 = 10_000;

/// The config of a `sql-topn` entry (written by the planner).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopNConfig {
    /// The columns of the rows, as the input rows name them; the output
    /// rows have these (and the rank, if `rank`).
    pub columns: Vec<String>,
    /// The sort keys, most significant first.
    pub order: Vec<SortKey>,
    /// How many rows of each partition (1 to 10 000).
    pub limit: u64,
    /// The output column of a row's rank (1 for the first), when the query
    /// reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank: Option<String>,
}

/// One ORDER BY key: a field of the input rows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SortKey {
    pub field: String,
    #[serde(default)]
    pub descending: bool,
    #[serde(default)]
    pub nulls_first: bool,
}

impl TopNConfig {
    /// How `a` and `b` (sort key values, in order) compare.
    fn compare(&self, a: &[Value], b: &[Value]) -> Ordering {
        for ((k, x), y) in self.order.iter().zip(a).zip(b) {
            let o = match (x.is_null(), y.is_null()) {
                (true, true) => Ordering::Equal,
                (true, false) => if k.nulls_first { Ordering::Less } else { Ordering::Greater },
                (false, true) => if k.nulls_first { Ordering::Greater } else { Ordering::Less },
                (false, false) => {
                    let o = value_order(x, y);
                    if k.descending { o.reverse() } else { o }
                }
            };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    }
}

/// Two non-null values of one SQL type: integers exactly, other numbers as
/// doubles, strings by their bytes, false before true.
fn value_order(x: &Value, y: &Value) -> Ordering {
    match (x, y) {
        (Value::Number(a), Value::Number(b)) => match (a.as_i64(), b.as_i64()) {
            (Some(a), Some(b)) => a.cmp(&b),
            _ => a.as_f64().unwrap_or(f64::NAN).total_cmp(&b.as_f64().unwrap_or(f64::NAN)),
        },
        (Value::String(a), Value::String(b)) => a.as_bytes().cmp(b.as_bytes()),
        (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
        // Not of one type (the planner casts them to one): a fixed order.
        _ => x.to_string().cmp(&y.to_string()),
    }
}

/// The `sql-topn` operator kind.
pub struct SqlTopN;

const STATE: &str = "sql.topn";

impl OperatorKind for SqlTopN {
    type Config = TopNConfig;
    const TYPE: &'static str = "sql-topn";

    fn check(&self, c: &TopNConfig, cx: &Check<'_>) -> Result<(), SpecError> {
        if cx.key_by.is_none() {
            return Err(cx.error_at("type", "key_by", "a sql-topn is keyed by its partition: key_by: key"));
        }
        if !(1..=MAX_LIMIT).contains(&c.limit) {
            return Err(cx.error("limit", format!("{} rows per partition: it is 1 to {MAX_LIMIT}", c.limit)));
        }
        if c.order.is_empty() {
            return Err(cx.error("order", "a Top-N orders its rows by at least one key"));
        }
        if let Some(r) = c.rank.as_ref().filter(|r| c.columns.contains(r)) {
            return Err(cx.error("rank", format!("the rank's column {r} is one of the rows' columns")));
        }
        Ok(())
    }

    fn build(&self, c: TopNConfig, cx: &BuildContext<'_>) -> Result<BuiltOperator, BuildError> {
        let shape = serde_json::to_string(&(&c.columns, &c.order, c.limit)).expect("configs serialise");
        let factory: Arc<dyn OperatorFactory> = Arc::new(TopNFactory { cfg: Arc::new(c), state: cx.env.state.clone() });
        Ok(BuiltOperator { factory, logic: None, state_shape: Some(shape) })
    }

    /// It ranks inserts, and emits updates as ranks change.
    fn changelog(&self, _c: &TopNConfig, input: Changelog) -> Result<Changelog, String> {
        match input {
            Changelog::Append => Ok(Changelog::Retract),
            _ => Err("a Top-N (ROW_NUMBER) of a changelog (updates and deletes) is not supported yet".into()),
        }
    }
}

struct TopNFactory {
    cfg: Arc<TopNConfig>,
    state: Arc<dyn StateBackendFactory>,
}

impl OperatorFactory for TopNFactory {
    fn create(&self, ctx: &TaskContext) -> Result<Box<dyn Operator>, OperatorError> {
        Ok(Box::new(self.task(ctx)?))
    }
}

impl TopNFactory {
    fn task(&self, ctx: &TaskContext) -> Result<TopNTask, OperatorError> {
        let mut keyed = Keyed::open(ctx, &self.state)?;
        let id = keyed.state.declare(StateDescriptor { name: STATE.into(), kind: StateKind::Value, ttl: None }).map_err(|e| keyed.fail(e))?;
        Ok(TopNTask { cfg: self.cfg.clone(), keyed, id })
    }
}

struct TopNTask {
    cfg: Arc<TopNConfig>,
    keyed: Keyed,
    id: StateId,
}

/// A kept row: its sort keys and its columns.
#[derive(Clone, Serialize, Deserialize)]
struct Ranked {
    order: Vec<Value>,
    row: Map<String, Value>,
}

impl TopNTask {
    /// The output row of `r` at `rank` (1 for the first).
    fn output(&self, r: &Ranked, rank: usize) -> Vec<u8> {
        let mut row = r.row.clone();
        if let Some(name) = &self.cfg.rank {
            row.insert(name.clone(), Value::from(rank as u64));
        }
        serde_json::to_vec(&row).expect("JSON serialises")
    }
}

impl Operator for TopNTask {
    fn process(&mut self, input: RecordBatch, out: &mut Emitter) -> Result<(), OperatorError> {
        self.keyed.state.set_time(weir_engine::now_ms());
        let limit = self.cfg.limit as usize;
        // Each partition read once per batch and written back at its end.
        let mut parts: HashMap<Vec<u8>, Vec<Ranked>> = HashMap::new();
        for i in 0..input.len() {
            let fail = |t: &Self, m: String| t.keyed.fail(m).at(Some(input.origins[i])).in_row(Some(i));
            if input.kind(i).retracts() {
                return Err(fail(self, "a Top-N reads inserts only, and this row takes one back".into()));
            }
            let mut row: Map<String, Value> =
                serde_json::from_slice(input.value(i)).map_err(|e| fail(self, format!("a Top-N's input row is not a JSON object: {e}")))?;
            let order: Vec<Value> = self.cfg.order.iter().map(|k| row.remove(&k.field).unwrap_or(Value::Null)).collect();
            let own: Map<String, Value> = self.cfg.columns.iter().map(|c| (c.clone(), row.remove(c).unwrap_or(Value::Null))).collect();
            let key = input.key(i);
            if !parts.contains_key(key) {
                let kept = match self.keyed.state.value_get(self.id, key).map_err(|e| self.keyed.fail(e))? {
                    Some(b) => serde_json::from_slice(&b).map_err(|e| self.keyed.fail(format!("a Top-N's stored rows do not read: {e}")))?,
                    None => Vec::new(),
                };
                parts.insert(key.to_vec(), kept);
            }
            let kept = parts.get_mut(key).expect("read above");
            // After the rows equal to it: the first to come ranks first.
            let at = kept.partition_point(|r| self.cfg.compare(&r.order, &order) != Ordering::Greater);
            if at >= limit {
                continue;
            }
            // The rows whose ranks change (only read when the rank is).
            let before: Vec<Ranked> = if self.cfg.rank.is_some() { kept[at..].to_vec() } else { Vec::new() };
            kept.insert(at, Ranked { order, row: own });
            let pushed_out = if kept.len() > limit { kept.pop() } else { None };
            let (ts, origin): (i64, Origin) = (input.timestamps[i], input.origins[i]);
            let main = out.main();
            match &self.cfg.rank {
                None => {
                    let new = self.output(&kept[at], at + 1);
                    match pushed_out {
                        Some(old) => {
                            main.push_kind(key, &self.output(&old, limit), ts, origin, RowKind::UpdateBefore);
                            main.push_kind(key, &new, ts, origin, RowKind::UpdateAfter);
                        }
                        None => main.push_kind(key, &new, ts, origin, RowKind::Insert),
                    }
                }
                // Every rank from the new row's down changed its row.
                Some(_) => {
                    for (n, r) in kept.iter().enumerate().skip(at) {
                        let new = self.output(r, n + 1);
                        match before.get(n - at) {
                            Some(old) => {
                                main.push_kind(key, &self.output(old, n + 1), ts, origin, RowKind::UpdateBefore);
                                main.push_kind(key, &new, ts, origin, RowKind::UpdateAfter);
                            }
                            None => main.push_kind(key, &new, ts, origin, RowKind::Insert),
                        }
                    }
                }
            }
        }
        for (key, kept) in parts {
            let bytes = serde_json::to_vec(&kept).expect("rows serialise");
            self.keyed.state.value_set(self.id, &key, &bytes).map_err(|e| self.keyed.fail(e))?;
        }
        Ok(())
    }

    fn snapshot(&mut self, dir: &std::path::Path) -> Result<Option<SnapshotWriter>, OperatorError> {
        self.keyed.snapshot(dir).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_engine::RecordBatch;
    use weir_state::HeapBackendFactory;

    /// A Top-`limit` of rows `{"v"}` ordered by `o` descending.
    fn top(limit: u64, rank: bool) -> TopNTask {
        let cfg = TopNConfig {
            columns: vec!["v".into()],
            order: vec![SortKey { field: "o".into(), descending: true, nulls_first: false }],
            limit,
            rank: rank.then(|| "rn".into()),
        };
        TopNFactory { cfg: Arc::new(cfg), state: Arc::new(HeapBackendFactory) }.task(&TaskContext::new("p", "top", 0, 1)).unwrap()
    }

    /// Rows `(order, value)` of partition `k`; what was emitted, `op row`.
    fn run(op: &mut TopNTask, k: &str, rows: &[(Option<i64>, &str)]) -> Vec<String> {
        let mut b = RecordBatch::default();
        for (i, (o, v)) in rows.iter().enumerate() {
            let value = serde_json::json!({"o": o, "v": v}).to_string();
            b.push(k.as_bytes(), value.as_bytes(), 0, Origin::at(i as u64));
        }
        let mut out = Emitter::new(1);
        op.process(b, &mut out).unwrap();
        let m = out.main();
        (0..m.len()).map(|i| format!("{} {}", m.kind(i).short(), String::from_utf8_lossy(m.value(i)))).collect()
    }

    #[test]
    fn a_top_n_without_the_rank_emits_who_joins_and_who_is_pushed_out() {
        let mut op = top(2, false);
        assert_eq!(run(&mut op, "a", &[(Some(5), "x"), (Some(7), "y")]), [r#"+I {"v":"x"}"#, r#"+I {"v":"y"}"#]);
        // Below both: nothing. Above one: it pushes the last out.
        assert_eq!(run(&mut op, "a", &[(Some(1), "z")]), Vec::<String>::new());
        assert_eq!(run(&mut op, "a", &[(Some(6), "w")]), [r#"-U {"v":"x"}"#, r#"+U {"v":"w"}"#]);
        // Equal to the first: the first to come stays first, so it is the
        // second now and pushes w out.
        assert_eq!(run(&mut op, "a", &[(Some(7), "u")]), [r#"-U {"v":"w"}"#, r#"+U {"v":"u"}"#]);
        // A null sorts last (NULLS LAST): never in a full Top-2 of numbers.
        assert_eq!(run(&mut op, "a", &[(None, "n")]), Vec::<String>::new());
        // Another partition is its own.
        assert_eq!(run(&mut op, "b", &[(Some(1), "z")]), [r#"+I {"v":"z"}"#]);
    }

    #[test]
    fn a_top_n_with_the_rank_updates_every_rank_that_changed() {
        let mut op = top(3, true);
        assert_eq!(run(&mut op, "a", &[(Some(5), "x"), (Some(3), "y")]), [r#"+I {"rn":1,"v":"x"}"#, r#"+I {"rn":2,"v":"y"}"#]);
        // A new first: ranks 1 and 2 change rows, rank 3 is filled.
        assert_eq!(
            run(&mut op, "a", &[(Some(9), "z")]),
            [
                r#"-U {"rn":1,"v":"x"}"#,
                r#"+U {"rn":1,"v":"z"}"#,
                r#"-U {"rn":2,"v":"y"}"#,
                r#"+U {"rn":2,"v":"x"}"#,
                r#"+I {"rn":3,"v":"y"}"#
            ]
        );
        // A new third: only rank 3 changes (y is out).
        assert_eq!(run(&mut op, "a", &[(Some(4), "w")]), [r#"-U {"rn":3,"v":"y"}"#, r#"+U {"rn":3,"v":"w"}"#]);
        assert_eq!(run(&mut op, "a", &[(Some(4), "later")]), Vec::<String>::new(), "an equal row comes after the one that came first");
    }
}
