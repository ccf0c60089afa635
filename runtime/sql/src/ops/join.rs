//! `type: sql-join`: a regular inner equi-join of two append-only inputs.
//! Its two inputs are the join's sides, each through a `sql-calc` that sets
//! the record key to the join keys (`k0`, `k1`, ... as a JSON object, so equal
//! keys of both sides are equal bytes and land in the same task) and tags
//! the row with its side (`__side`: 0 left, 1 right). Keyed by the join key,
//! it keeps every row of each side in keyed map state (the row's columns →
//! how many times it came), and for each row emits it joined with every row
//! of the other side held under its key, as Flink's regular join does: rows
//! are kept until the state TTL (`SET 'table.exec.state.ttl'`) drops them, or
//! forever without one. A row with a null join key matches nothing (SQL
//! equality) and is not kept.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use weir_engine::{Emitter, Operator, OperatorError, OperatorFactory, RecordBatch, SnapshotWriter, TaskContext};
use weir_spec::{BuildContext, BuildError, BuiltOperator, Changelog, Check, OperatorKind, SpecError};
use weir_state::{StateBackendFactory, StateDescriptor, StateId, StateKind};

use crate::ops::keyed::Keyed;

/// The field of a side's rows that says which side they are.
pub const SIDE: &str = "__side";

/// The config of a `sql-join` entry (written by the planner).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinConfig {
    /// How many join keys (`k0`, `k1`, ... in the sides' rows).
    pub keys: usize,
    /// The columns of the left side's rows, and of the right's; the output
    /// has both, left first (the names are distinct).
    pub left: Vec<String>,
    pub right: Vec<String>,
    /// Rows kept are dropped after this long without being written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
}

/// The `sql-join` operator kind.
pub struct SqlJoin;

const LEFT: &str = "sql.join.left";
const RIGHT: &str = "sql.join.right";

impl OperatorKind for SqlJoin {
    type Config = JoinConfig;
    const TYPE: &'static str = "sql-join";

    fn check(&self, c: &JoinConfig, cx: &Check<'_>) -> Result<(), SpecError> {
        if cx.key_by.is_none() {
            return Err(cx.error_at("type", "key_by", "a sql-join is keyed by its join key: key_by: key"));
        }
        if c.keys == 0 {
            return Err(cx.error("keys", "a join has at least one key"));
        }
        if let Some(dup) = c.left.iter().find(|n| c.right.contains(n) || n.as_str() == SIDE) {
            return Err(cx.error("right", format!("column {dup} is on both sides")));
        }
        if c.ttl_ms == Some(0) {
            return Err(cx.error("ttl_ms", "a state TTL is at least a millisecond"));
        }
        Ok(())
    }

    fn build(&self, c: JoinConfig, cx: &BuildContext<'_>) -> Result<BuiltOperator, BuildError> {
        let shape = serde_json::to_string(&(c.keys, &c.left, &c.right)).expect("configs serialise");
        let factory: Arc<dyn OperatorFactory> = Arc::new(JoinFactory { cfg: Arc::new(c), state: cx.env.state.clone() });
        Ok(BuiltOperator { factory, logic: None, state_shape: Some(shape) })
    }

    /// An inner join of inserts emits inserts; of updates and deletes, it
    /// would have to take joined rows back (not built yet).
    fn changelog(&self, _c: &JoinConfig, input: Changelog) -> Result<Changelog, String> {
        match input {
            Changelog::Append => Ok(Changelog::Append),
            _ => Err("a join of a changelog (updates and deletes) is not supported yet".into()),
        }
    }
}

struct JoinFactory {
    cfg: Arc<JoinConfig>,
    state: Arc<dyn StateBackendFactory>,
}

impl OperatorFactory for JoinFactory {
    fn create(&self, ctx: &TaskContext) -> Result<Box<dyn Operator>, OperatorError> {
        let mut keyed = Keyed::open(ctx, &self.state)?;
        let ttl = self.cfg.ttl_ms.map(Duration::from_millis);
        let mut declare = |name: &str| keyed.state.declare(StateDescriptor { name: name.into(), kind: StateKind::Map, ttl });
        let (left, right) = (declare(LEFT), declare(RIGHT));
        let sides = [left.map_err(|e| keyed.fail(e))?, right.map_err(|e| keyed.fail(e))?];
        let keys = (0..self.cfg.keys).map(|i| format!("k{i}")).collect();
        Ok(Box::new(JoinTask { cfg: self.cfg.clone(), keyed, sides, keys }))
    }
}

struct JoinTask {
    cfg: Arc<JoinConfig>,
    keyed: Keyed,
    /// The state of the left side's rows, and of the right's.
    sides: [StateId; 2],
    /// The key fields of the sides' rows.
    keys: Vec<String>,
}

fn count(bytes: &[u8]) -> u64 {
    <[u8; 8]>::try_from(bytes).map(u64::from_le_bytes).unwrap_or(0)
}

impl Operator for JoinTask {
    fn process(&mut self, input: RecordBatch, out: &mut Emitter) -> Result<(), OperatorError> {
        self.keyed.state.set_time(weir_engine::now_ms());
        for i in 0..input.len() {
            let fail = |t: &Self, m: String| t.keyed.fail(m).at(Some(input.origins[i])).in_row(Some(i));
            if input.kind(i).retracts() {
                return Err(fail(self, "a join reads inserts only, and this row takes one back".into()));
            }
            let row: Map<String, Value> =
                serde_json::from_slice(input.value(i)).map_err(|e| fail(self, format!("a join's input row is not a JSON object: {e}")))?;
            let side = match row.get(SIDE).and_then(Value::as_u64) {
                Some(s @ (0 | 1)) => s as usize,
                _ => return Err(fail(self, format!("a join's input row has no {SIDE} of 0 or 1"))),
            };
            if self.keys.iter().any(|k| row.get(k).is_none_or(Value::is_null)) {
                continue;
            }
            let columns = if side == 0 { &self.cfg.left } else { &self.cfg.right };
            let own: Map<String, Value> = columns.iter().map(|c| (c.clone(), row.get(c).cloned().unwrap_or(Value::Null))).collect();
            let bytes = serde_json::to_vec(&own).expect("JSON serialises");
            let key = input.key(i);
            let (mine, theirs) = (self.sides[side], self.sides[1 - side]);
            let held = self.keyed.state.map_get(mine, key, &bytes).map_err(|e| self.keyed.fail(e))?.map_or(0, |b| count(&b));
            self.keyed.state.map_put(mine, key, &bytes, &(held + 1).to_le_bytes()).map_err(|e| self.keyed.fail(e))?;
            let others = self.keyed.state.map_entries(theirs, key).map_err(|e| self.keyed.fail(e))?;
            for (other, n) in others {
                let other: Map<String, Value> =
                    serde_json::from_slice(&other).map_err(|e| self.keyed.fail(format!("a kept row of the join does not read: {e}")))?;
                let (mut joined, rest) = if side == 0 { (own.clone(), other) } else { (other, own.clone()) };
                joined.extend(rest);
                let value = serde_json::to_vec(&joined).expect("JSON serialises");
                for _ in 0..count(&n) {
                    out.main().push(key, &value, input.timestamps[i], input.origins[i]);
                }
            }
        }
        Ok(())
    }

    fn snapshot(&mut self, dir: &std::path::Path) -> Result<Option<SnapshotWriter>, OperatorError> {
        self.keyed.snapshot(dir).map(Some)
    }
}
