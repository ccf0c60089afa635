//! `type: sql-join`: equi-joins of two inputs: regular (inner and outer, of
//! inserts or full changelogs), window and interval joins. Its two inputs
//! are the join's sides, each through a `sql-calc` that sets the record key
//! to the join keys (`k0`, `k1`, ... as a JSON object, so equal keys of both
//! sides are equal bytes and land in the same task) and tags
//! the row with its side (`__side`: 0 left, 1 right). Keyed by the join key,
//! it keeps every row of each side in keyed map state (the row's columns →
//! how many times it came), and for each row emits it joined with every row
//! of the other side held under its key, as Flink's regular join does: rows
//! are kept until the state TTL (`SET 'table.exec.state.ttl'`) drops them, or
//! forever without one. A row with a null join key matches nothing (SQL
//! equality) and is not kept. A window join (both sides rows of windows,
//! joined on the windows' bounds: `window_end` names the key holding the
//! end, in milliseconds) keeps a key's rows until the watermark passes the
//! window's end, when an event-time timer clears them: the windows' rows all
//! come before the watermark that passes their end. A row whose window has
//! ended is late, and dropped as a window aggregation drops it.
//!
//! A regular join reads a full changelog too: a row taken back (-U, -D)
//! leaves the state and takes back (-D) every row it was joined into.
//!
//! An outer join (LEFT, RIGHT, FULL; a regular join) emits a row of an outer
//! side that meets no row padded with nulls, and remembers so beside the
//! row's count in state; when the row's first match comes it takes the
//! padded row back (-D) before emitting the joined ones: its output is a
//! changelog. A row with a null join key goes out padded at once.
//!
//! An interval join (both sides' event times bounded against each other:
//! `r.t BETWEEN l.t - INTERVAL ... AND l.t + INTERVAL ...`; `interval` gives
//! the bounds of `r.t - l.t` in milliseconds, each side's event time is its
//! rows' `__t`) keeps a row only while a row of the other side can still
//! meet it: a left row until the watermark reaches `t + upper`, a right row
//! until it reaches `t - lower` (an event-time timer per key and time), and
//! meets only the rows whose times are within the bounds. A row at or behind
//! the watermark is late and dropped. The exact condition (strict bounds,
//! other terms) is the calc's above the join.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use weir_engine::timers::Domain;
use weir_engine::{Emitter, Operator, OperatorError, OperatorFactory, RecordBatch, RowKind, SnapshotWriter, TaskContext};
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
    /// The left side's rows', or the right's, instead (a STATE_TTL hint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left_ttl_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub right_ttl_ms: Option<u64>,
    /// A window join: the join key (`k<n>`) holding the window's end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_end: Option<usize>,
    /// An interval join: the bounds of the right's time less the left's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Interval>,
    /// An outer join: the left side's rows (LEFT, FULL), the right's (RIGHT,
    /// FULL) are kept in the output even when they meet no row.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub left_outer: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub right_outer: bool,
}

/// The bounds (inclusive, in milliseconds) of `right.t - left.t` for two
/// rows to meet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interval {
    pub lower_ms: i64,
    pub upper_ms: i64,
}

impl Interval {
    /// When a row of `side` at time `t` can meet no row still to come.
    fn expiry(&self, side: usize, t: i64) -> i64 {
        if side == 0 {
            t.saturating_add(self.upper_ms)
        } else {
            t.saturating_sub(self.lower_ms)
        }
    }

    /// A row of `side` at `t` and one of the other side at `other` meet.
    fn meets(&self, side: usize, t: i64, other: i64) -> bool {
        let d = if side == 0 { other.saturating_sub(t) } else { t.saturating_sub(other) };
        (self.lower_ms..=self.upper_ms).contains(&d)
    }
}

/// The field of a side's rows holding its event time in milliseconds (an
/// interval join).
pub const TIME: &str = "__t";

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
        if c.window_end.is_some_and(|e| e >= c.keys) {
            return Err(cx.error("window_end", format!("the window's end is one of the {} join keys (0 to {})", c.keys, c.keys - 1)));
        }
        if let Some(i) = c.interval {
            if c.window_end.is_some() {
                return Err(cx.error("interval", "a join is a window join or an interval join, not both"));
            }
            if i.lower_ms > i.upper_ms {
                return Err(cx.error("interval", format!("the lower bound ({} ms) is above the upper ({} ms)", i.lower_ms, i.upper_ms)));
            }
        }
        if (c.left_outer || c.right_outer) && (c.window_end.is_some() || c.interval.is_some()) {
            return Err(cx.error("left_outer", "an outer join is a regular join, not a window or interval join (not supported yet)"));
        }
        if c.ttl_ms == Some(0) || c.left_ttl_ms == Some(0) || c.right_ttl_ms == Some(0) {
            return Err(cx.error("ttl_ms", "a state TTL is at least a millisecond"));
        }
        Ok(())
    }

    fn build(&self, c: JoinConfig, cx: &BuildContext<'_>) -> Result<BuiltOperator, BuildError> {
        // (An interval join's kept rows hold their time too.)
        let shape = match c.interval {
            None => serde_json::to_string(&(c.keys, &c.left, &c.right)),
            Some(i) => serde_json::to_string(&(c.keys, &c.left, &c.right, i)),
        }
        .expect("configs serialise");
        let factory: Arc<dyn OperatorFactory> = Arc::new(JoinFactory { cfg: Arc::new(c), state: cx.env.state.clone() });
        Ok(BuiltOperator { factory, logic: None, state_shape: Some(shape) })
    }

    /// An inner join of inserts emits inserts, an outer join takes back a
    /// row padded with nulls when its first match comes; a regular join of
    /// a full changelog takes back the rows a row taken back was joined
    /// into. Changes by key alone do not say which rows to take back.
    fn changelog(&self, c: &JoinConfig, input: Changelog) -> Result<Changelog, String> {
        match input {
            Changelog::Append if c.left_outer || c.right_outer => Ok(Changelog::Retract),
            Changelog::Append => Ok(Changelog::Append),
            _ if c.window_end.is_some() || c.interval.is_some() => {
                Err("a window or interval join of a changelog (updates and deletes) is not supported yet".into())
            }
            Changelog::Retract => Ok(Changelog::Retract),
            Changelog::Upsert => Err(
                "a join of an upsert changelog (changes by key, without the rows they replace) is not supported: read the table as a full changelog (debezium-json)"
                    .into(),
            ),
        }
    }
}

struct JoinFactory {
    cfg: Arc<JoinConfig>,
    state: Arc<dyn StateBackendFactory>,
}

impl OperatorFactory for JoinFactory {
    fn create(&self, ctx: &TaskContext) -> Result<Box<dyn Operator>, OperatorError> {
        Ok(Box::new(self.task(ctx)?))
    }
}

impl JoinFactory {
    fn task(&self, ctx: &TaskContext) -> Result<JoinTask, OperatorError> {
        let mut keyed = Keyed::open(ctx, &self.state)?;
        let ttl = |side: Option<u64>| side.or(self.cfg.ttl_ms).map(Duration::from_millis);
        let mut declare = |name: &str, ttl| keyed.state.declare(StateDescriptor { name: name.into(), kind: StateKind::Map, ttl });
        let (left, right) = (declare(LEFT, ttl(self.cfg.left_ttl_ms)), declare(RIGHT, ttl(self.cfg.right_ttl_ms)));
        let sides = [left.map_err(|e| keyed.fail(e))?, right.map_err(|e| keyed.fail(e))?];
        let keys = (0..self.cfg.keys).map(|i| format!("k{i}")).collect();
        Ok(JoinTask { cfg: self.cfg.clone(), keyed, sides, keys, late: 0, unknown: 0 })
    }
}

struct JoinTask {
    cfg: Arc<JoinConfig>,
    keyed: Keyed,
    /// The state of the left side's rows, and of the right's.
    sides: [StateId; 2],
    /// The key fields of the sides' rows.
    keys: Vec<String>,
    /// Rows of windows that had ended (a window join), dropped.
    late: u64,
    /// Rows taking back a row the join did not hold, ignored.
    unknown: u64,
}

/// A kept row's count (its value's first 8 bytes).
fn count(bytes: &[u8]) -> u64 {
    bytes.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()).map_or(0, u64::from_le_bytes)
}

/// An interval join's kept row's time (its value's next 8 bytes).
fn time(bytes: &[u8]) -> Option<i64> {
    bytes.get(8..16).and_then(|b| <[u8; 8]>::try_from(b).ok()).map(i64::from_le_bytes)
}

/// An outer side's kept row: 1 if it met a row of the other side, 0 if it
/// went out padded with nulls (its value's next 8 bytes).
fn matched(bytes: &[u8]) -> Option<i64> {
    time(bytes)
}

/// A kept row's value: its count, and its time in an interval join or
/// whether it met a row on an outer side.
fn held_value(n: u64, t: Option<i64>) -> Vec<u8> {
    let mut v = n.to_le_bytes().to_vec();
    if let Some(t) = t {
        v.extend_from_slice(&t.to_le_bytes());
    }
    v
}

impl JoinTask {
    /// A regular join's row `own` of `side` under `key` taken back: one copy
    /// of it leaves the state, the rows it was joined into are taken back,
    /// and on an outer join the rows left without a match go out padded
    /// again (the other side's, when this was the last of this side's rows
    /// under the key), or its own padded row is taken back.
    fn retract(&mut self, key: &[u8], side: usize, own: &Map<String, Value>, ts: i64, origin: weir_engine::Origin, out: &mut Emitter) -> Result<(), OperatorError> {
        let bytes = serde_json::to_vec(own).expect("JSON serialises");
        let (mine, theirs) = (self.sides[side], self.sides[1 - side]);
        let Some(held) = self.keyed.state.map_get(mine, key, &bytes).map_err(|e| self.keyed.fail(e))? else {
            // Not held: it came before the state TTL dropped it (or never).
            self.unknown += 1;
            if self.unknown == 1 || self.unknown.is_power_of_two() {
                tracing::warn!(operator = self.keyed.node, task = self.keyed.task, "ignored {} rows taking back a row the join does not hold (dropped by the state TTL?)", self.unknown);
            }
            return Ok(());
        };
        match count(&held) {
            0 | 1 => {
                self.keyed.state.map_remove(mine, key, &bytes).map_err(|e| self.keyed.fail(e))?;
            }
            n => {
                let extra = matched(&held);
                self.keyed.state.map_put(mine, key, &bytes, &held_value(n - 1, extra)).map_err(|e| self.keyed.fail(e))?;
            }
        }
        let others = self.keyed.state.map_entries(theirs, key).map_err(|e| self.keyed.fail(e))?;
        // The other side's rows lose their last match.
        let lone = self.outer(1 - side) && !others.is_empty() && self.keyed.state.map_entries(mine, key).map_err(|e| self.keyed.fail(e))?.is_empty();
        for (other_bytes, n) in &others {
            let other: Map<String, Value> =
                serde_json::from_slice(other_bytes).map_err(|e| self.keyed.fail(format!("a kept row of the join does not read: {e}")))?;
            let padded = lone.then(|| self.padded(&other, 1 - side));
            let (mut joined, rest) = if side == 0 { (own.clone(), other) } else { (other, own.clone()) };
            joined.extend(rest);
            let value = serde_json::to_vec(&joined).expect("JSON serialises");
            for _ in 0..count(n) {
                out.main().push_kind(key, &value, ts, origin, RowKind::Delete);
            }
            if let Some(padded) = padded {
                for _ in 0..count(n) {
                    out.main().push_kind(key, &padded, ts, origin, RowKind::Insert);
                }
                self.keyed.state.map_put(theirs, key, other_bytes, &held_value(count(n), Some(0))).map_err(|e| self.keyed.fail(e))?;
            }
        }
        if self.outer(side) && others.is_empty() {
            out.main().push_kind(key, &self.padded(own, side), ts, origin, RowKind::Delete);
        }
        Ok(())
    }

    /// Rows of `side` go out even when they meet none (an outer join).
    fn outer(&self, side: usize) -> bool {
        if side == 0 { self.cfg.left_outer } else { self.cfg.right_outer }
    }

    /// A row of `side` with the other side's columns null.
    fn padded(&self, own: &Map<String, Value>, side: usize) -> Vec<u8> {
        let mut row = own.clone();
        for c in if side == 0 { &self.cfg.right } else { &self.cfg.left } {
            row.insert(c.clone(), Value::Null);
        }
        serde_json::to_vec(&row).expect("JSON serialises")
    }
}

impl Operator for JoinTask {
    fn process(&mut self, input: RecordBatch, out: &mut Emitter) -> Result<(), OperatorError> {
        self.keyed.state.set_time(weir_engine::now_ms());
        for i in 0..input.len() {
            let fail = |t: &Self, m: String| t.keyed.fail(m).at(Some(input.origins[i])).in_row(Some(i));
            let retracts = input.kind(i).retracts();
            if retracts && (self.cfg.window_end.is_some() || self.cfg.interval.is_some()) {
                return Err(fail(self, "a window or interval join reads inserts only, and this row takes one back".into()));
            }
            let row: Map<String, Value> =
                serde_json::from_slice(input.value(i)).map_err(|e| fail(self, format!("a join's input row is not a JSON object: {e}")))?;
            let side = match row.get(SIDE).and_then(Value::as_u64) {
                Some(s @ (0 | 1)) => s as usize,
                _ => return Err(fail(self, format!("a join's input row has no {SIDE} of 0 or 1"))),
            };
            let columns = if side == 0 { &self.cfg.left } else { &self.cfg.right };
            let own: Map<String, Value> = columns.iter().map(|c| (c.clone(), row.get(c).cloned().unwrap_or(Value::Null))).collect();
            let (ts, origin) = (input.timestamps[i], input.origins[i]);
            if self.keys.iter().any(|k| row.get(k).is_none_or(Value::is_null)) {
                // It meets nothing, ever: an outer side's row goes out alone
                // (and is taken back alone).
                if self.outer(side) {
                    let kind = if retracts { RowKind::Delete } else { RowKind::Insert };
                    out.main().push_kind(input.key(i), &self.padded(&own, side), ts, origin, kind);
                }
                continue;
            }
            let key = input.key(i);
            if retracts {
                self.retract(key, side, &own, ts, origin, out)?;
                continue;
            }
            if let Some(e) = self.cfg.window_end {
                let Some(end) = row.get(&self.keys[e]).and_then(Value::as_i64) else {
                    return Err(fail(self, format!("a window join's row has no window end in milliseconds ({})", self.keys[e])));
                };
                if end.saturating_sub(1) <= self.keyed.watermark {
                    self.late += 1;
                    if self.late == 1 || self.late.is_power_of_two() {
                        tracing::warn!(operator = self.keyed.node, task = self.keyed.task, "dropped {} late rows so far: their windows had ended (window end {end}, watermark {})", self.late, self.keyed.watermark);
                    }
                    continue;
                }
                self.keyed.timers.register(Domain::Event, end - 1, key);
            }
            // An interval join: the row's time, and whether it is kept.
            let (mut t, mut keep) = (None, true);
            if let Some(iv) = self.cfg.interval {
                let Some(at) = row.get(TIME) else {
                    return Err(fail(self, format!("an interval join's row has no event time ({TIME})")));
                };
                let Some(at) = at.as_i64() else {
                    continue; // a null time meets nothing
                };
                if at <= self.keyed.watermark {
                    self.late += 1;
                    if self.late == 1 || self.late.is_power_of_two() {
                        tracing::warn!(operator = self.keyed.node, task = self.keyed.task, "dropped {} late rows so far: at or behind the watermark (row time {at}, watermark {})", self.late, self.keyed.watermark);
                    }
                    continue;
                }
                let expiry = iv.expiry(side, at);
                keep = expiry > self.keyed.watermark;
                if keep {
                    self.keyed.timers.register(Domain::Event, expiry, key);
                }
                t = Some(at);
            }
            let bytes = serde_json::to_vec(&own).expect("JSON serialises");
            let (mine, theirs) = (self.sides[side], self.sides[1 - side]);
            let others = self.keyed.state.map_entries(theirs, key).map_err(|e| self.keyed.fail(e))?;
            let mut met = false;
            for (other_bytes, n) in others {
                if let (Some(iv), Some(t)) = (self.cfg.interval, t) {
                    if !time(&n).is_some_and(|o| iv.meets(side, t, o)) {
                        continue;
                    }
                }
                met = true;
                let other: Map<String, Value> =
                    serde_json::from_slice(&other_bytes).map_err(|e| self.keyed.fail(format!("a kept row of the join does not read: {e}")))?;
                // An outer side's row meeting its first row: the rows it
                // went out as, padded with nulls, are taken back.
                if self.outer(1 - side) && matched(&n) == Some(0) {
                    let padded = self.padded(&other, 1 - side);
                    for _ in 0..count(&n) {
                        out.main().push_kind(key, &padded, ts, origin, RowKind::Delete);
                    }
                    self.keyed.state.map_put(theirs, key, &other_bytes, &held_value(count(&n), Some(1))).map_err(|e| self.keyed.fail(e))?;
                }
                let (mut joined, rest) = if side == 0 { (own.clone(), other) } else { (other, own.clone()) };
                joined.extend(rest);
                let value = serde_json::to_vec(&joined).expect("JSON serialises");
                for _ in 0..count(&n) {
                    out.main().push(key, &value, ts, origin);
                }
            }
            if self.outer(side) && !met {
                out.main().push_kind(key, &self.padded(&own, side), ts, origin, RowKind::Insert);
            }
            if keep {
                let held = self.keyed.state.map_get(mine, key, &bytes).map_err(|e| self.keyed.fail(e))?;
                let n = held.as_deref().map_or(0, count);
                // An interval join's row keeps its time; an outer side's,
                // whether it met a row (1) or went out padded (0).
                let extra = match self.outer(side) {
                    true => Some(i64::from(met || held.as_deref().and_then(matched).is_some_and(|m| m > 0))),
                    false => t,
                };
                self.keyed.state.map_put(mine, key, &bytes, &held_value(n + 1, extra)).map_err(|e| self.keyed.fail(e))?;
            }
        }
        Ok(())
    }

    /// A window join: the rows of windows the watermark has passed go; an
    /// interval join: the rows no row still to come can meet.
    fn on_watermark(&mut self, watermark: i64, _out: &mut Emitter) -> Result<(), OperatorError> {
        self.keyed.watermark = self.keyed.watermark.max(watermark);
        loop {
            let due = self.keyed.timers.due(Domain::Event, watermark, 1024);
            if due.is_empty() {
                return Ok(());
            }
            for (_, key) in due {
                match self.cfg.interval {
                    None => {
                        for side in self.sides {
                            self.keyed.state.clear(side, &key).map_err(|e| self.keyed.fail(e))?;
                        }
                    }
                    // The key's rows that no row still to come can meet go.
                    Some(iv) => {
                        let wm = self.keyed.watermark;
                        for (side, id) in self.sides.into_iter().enumerate() {
                            let rows = self.keyed.state.map_entries(id, &key).map_err(|e| self.keyed.fail(e))?;
                            for (row, v) in rows {
                                if time(&v).is_none_or(|t| iv.expiry(side, t) <= wm) {
                                    self.keyed.state.map_remove(id, &key, &row).map_err(|e| self.keyed.fail(e))?;
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    fn snapshot(&mut self, dir: &std::path::Path) -> Result<Option<SnapshotWriter>, OperatorError> {
        self.keyed.snapshot(dir).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_engine::{Origin, RecordBatch};
    use weir_state::HeapBackendFactory;

    /// A join of left rows `j0` and right rows `j1` on one key, regular,
    /// inner, without a TTL (tests change what they test).
    fn config() -> JoinConfig {
        JoinConfig {
            keys: 1,
            left: vec!["j0".into()],
            right: vec!["j1".into()],
            ttl_ms: None,
            left_ttl_ms: None,
            right_ttl_ms: None,
            window_end: None,
            interval: None,
            left_outer: false,
            right_outer: false,
        }
    }

    fn join(window_end: Option<usize>) -> JoinTask {
        let cfg = JoinConfig { keys: 2, window_end, ..config() };
        let f = JoinFactory { cfg: Arc::new(cfg), state: Arc::new(HeapBackendFactory) };
        f.task(&TaskContext::new("p", "join", 0, 1)).unwrap()
    }

    /// A side's row `v` of window `[end - 10, end)` under join key `k`.
    fn row(b: &mut RecordBatch, side: u8, k: i64, end: i64, v: i64) {
        let key = format!(r#"{{"k0":{k},"k1":{end}}}"#);
        let value = if side == 0 { format!(r#"{{"k0":{k},"k1":{end},"j0":{v},"__side":0}}"#) } else { format!(r#"{{"k0":{k},"k1":{end},"j1":{v},"__side":1}}"#) };
        b.push(key.as_bytes(), value.as_bytes(), end - 1, Origin::at(v as u64));
    }

    /// Rows held, of both sides.
    fn held(op: &mut JoinTask) -> usize {
        op.sides.iter().map(|&s| op.keyed.state.len(s).unwrap()).sum()
    }

    fn joined(op: &mut JoinTask, rows: &[(u8, i64, i64, i64)]) -> Vec<String> {
        let mut b = RecordBatch::default();
        for &(side, k, end, v) in rows {
            row(&mut b, side, k, end, v);
        }
        let mut out = Emitter::new(1);
        op.process(b, &mut out).unwrap();
        let m = out.main();
        (0..m.len()).map(|i| String::from_utf8_lossy(m.value(i)).into_owned()).collect()
    }

    #[test]
    fn a_window_join_forgets_a_window_once_the_watermark_passes_it_and_drops_its_late_rows() {
        let mut op = join(Some(1));
        assert_eq!(joined(&mut op, &[(0, 7, 10, 1), (0, 7, 20, 2), (1, 7, 10, 3)]), [r#"{"j0":1,"j1":3}"#]);
        assert_eq!(held(&mut op), 3);
        // The watermark passes window [0, 10): its rows go, and a row of it
        // now is late (it would have met the left row 1 before).
        op.on_watermark(9, &mut Emitter::new(1)).unwrap();
        assert_eq!(held(&mut op), 1);
        assert_eq!(joined(&mut op, &[(1, 7, 10, 4)]), Vec::<String>::new());
        // Window [10, 20) is still there.
        assert_eq!(joined(&mut op, &[(1, 7, 20, 5)]), [r#"{"j0":2,"j1":5}"#]);
        op.on_watermark(19, &mut Emitter::new(1)).unwrap();
        assert_eq!(held(&mut op), 0);
        assert_eq!(op.late, 1);
        assert_eq!(joined(&mut op, &[(1, 7, 30, 6), (0, 7, 30, 7)]), [r#"{"j0":7,"j1":6}"#]);
    }

    #[test]
    fn a_regular_join_keeps_its_rows_whatever_the_watermark() {
        let mut op = join(None);
        assert_eq!(joined(&mut op, &[(0, 7, 10, 1)]), Vec::<String>::new());
        op.on_watermark(1000, &mut Emitter::new(1)).unwrap();
        assert_eq!(joined(&mut op, &[(1, 7, 10, 3)]), [r#"{"j0":1,"j1":3}"#]);
        assert_eq!(held(&mut op), 2);
    }

    /// An interval join of left rows `j0` and right rows `j1` under key 7,
    /// meeting when `right.t - left.t` is within [-10, 20].
    fn interval_join() -> JoinTask {
        let cfg = JoinConfig { interval: Some(Interval { lower_ms: -10, upper_ms: 20 }), ..config() };
        let f = JoinFactory { cfg: Arc::new(cfg), state: Arc::new(HeapBackendFactory) };
        f.task(&TaskContext::new("p", "join", 0, 1)).unwrap()
    }

    /// Rows held under key 7, of both sides.
    fn held_rows(op: &mut JoinTask) -> usize {
        op.sides.iter().map(|&s| op.keyed.state.map_entries(s, br#"{"k0":7}"#).unwrap().len()).sum()
    }

    /// Rows `(side, time, value)` under key 7 through an interval join.
    fn met(op: &mut JoinTask, rows: &[(u8, i64, i64)]) -> Vec<String> {
        let mut b = RecordBatch::default();
        for &(side, t, v) in rows {
            let col = if side == 0 { "j0" } else { "j1" };
            let value = format!(r#"{{"k0":7,"{col}":{v},"__t":{t},"__side":{side}}}"#);
            b.push(br#"{"k0":7}"#, value.as_bytes(), t, Origin::at(v as u64));
        }
        let mut out = Emitter::new(1);
        op.process(b, &mut out).unwrap();
        let m = out.main();
        let mut rows: Vec<String> = (0..m.len()).map(|i| String::from_utf8_lossy(m.value(i)).into_owned()).collect();
        rows.sort();
        rows
    }

    #[test]
    fn an_interval_join_meets_rows_within_its_bounds_and_forgets_those_no_row_to_come_can_meet() {
        let mut op = interval_join();
        // Left 1 at 100 meets rights in [90, 120]; right 2 at 89 is too
        // early, right 3 at 90 and right 4 at 120 meet it, right 5 at 121
        // is too late for it.
        assert_eq!(
            met(&mut op, &[(0, 100, 1), (1, 89, 2), (1, 90, 3), (1, 120, 4), (1, 121, 5)]),
            [r#"{"j0":1,"j1":3}"#, r#"{"j0":1,"j1":4}"#]
        );
        // A left row after the rights meets those within its bounds.
        assert_eq!(met(&mut op, &[(0, 125, 6)]), [r#"{"j0":6,"j1":4}"#, r#"{"j0":6,"j1":5}"#]);
        assert_eq!(held_rows(&mut op), 6);
        // At watermark 110: right 2 (89 - -10 = 99), right 3 (100) go; the
        // others can still meet lefts to come.
        op.on_watermark(110, &mut Emitter::new(1)).unwrap();
        assert_eq!(held_rows(&mut op), 4);
        // Left 1 (100 + 20 = 120) goes at 120, right 4 (120 + 10) at 130;
        // left 6 (145) and right 5 (131) stay until theirs.
        op.on_watermark(130, &mut Emitter::new(1)).unwrap();
        assert_eq!(held_rows(&mut op), 2);
        // A row at or behind the watermark is late: dropped, it meets nothing.
        assert_eq!(met(&mut op, &[(1, 130, 7)]), Vec::<String>::new());
        assert_eq!(op.late, 1);
        // A left row at 131 meets right 5 (121 - 131 = -10) and is kept.
        assert_eq!(met(&mut op, &[(0, 131, 8)]), [r#"{"j0":8,"j1":5}"#]);
        assert_eq!(held_rows(&mut op), 3);
        op.on_watermark(1000, &mut Emitter::new(1)).unwrap();
        assert_eq!(held_rows(&mut op), 0);
    }

    #[test]
    fn an_interval_join_does_not_keep_a_row_that_only_rows_already_seen_can_meet() {
        // Rights must be 10 to 20 ms before the left: a left row is done
        // with when it comes, once the watermark is past its time less 10.
        let cfg = JoinConfig { interval: Some(Interval { lower_ms: -20, upper_ms: -10 }), ..config() };
        let f = JoinFactory { cfg: Arc::new(cfg), state: Arc::new(HeapBackendFactory) };
        let mut op = f.task(&TaskContext::new("p", "join", 0, 1)).unwrap();
        assert_eq!(met(&mut op, &[(1, 85, 1)]), Vec::<String>::new());
        op.on_watermark(95, &mut Emitter::new(1)).unwrap();
        assert_eq!(met(&mut op, &[(0, 100, 2)]), [r#"{"j0":2,"j1":1}"#]);
        assert_eq!(held_rows(&mut op), 1, "the right row stays (a left row up to 105 can meet it); the left row is not kept");
    }

    /// Rows `(side, key, value)` through `op`, as `op row`.
    fn changes(op: &mut JoinTask, rows: &[(u8, Option<i64>, i64)]) -> Vec<String> {
        let mut b = RecordBatch::default();
        for &(side, k, v) in rows {
            let col = if side == 0 { "j0" } else { "j1" };
            let value = serde_json::json!({"k0": k, col: v, "__side": side}).to_string();
            b.push(format!("{{\"k0\":{}}}", k.unwrap_or(-1)).as_bytes(), value.as_bytes(), 0, Origin::at(v as u64));
        }
        let mut out = Emitter::new(1);
        op.process(b, &mut out).unwrap();
        let m = out.main();
        (0..m.len()).map(|i| format!("{} {}", m.kind(i).short(), String::from_utf8_lossy(m.value(i)))).collect()
    }

    fn outer(left: bool, right: bool) -> JoinTask {
        let cfg = JoinConfig { left_outer: left, right_outer: right, ..config() };
        JoinFactory { cfg: Arc::new(cfg), state: Arc::new(HeapBackendFactory) }.task(&TaskContext::new("p", "join", 0, 1)).unwrap()
    }

    #[test]
    fn a_left_join_emits_a_lone_row_padded_and_takes_it_back_when_its_first_match_comes() {
        let mut op = outer(true, false);
        assert_eq!(changes(&mut op, &[(0, Some(7), 1), (0, Some(7), 1)]), [r#"+I {"j0":1,"j1":null}"#, r#"+I {"j0":1,"j1":null}"#]);
        // The first right row: both copies' padded rows go, then the joined.
        assert_eq!(
            changes(&mut op, &[(1, Some(7), 2)]),
            [r#"-D {"j0":1,"j1":null}"#, r#"-D {"j0":1,"j1":null}"#, r#"+I {"j0":1,"j1":2}"#, r#"+I {"j0":1,"j1":2}"#]
        );
        // The next meets them as an inner join does; a right row alone is
        // not emitted (the right is not an outer side).
        assert_eq!(changes(&mut op, &[(1, Some(7), 3), (1, Some(8), 4)]), [r#"+I {"j0":1,"j1":3}"#, r#"+I {"j0":1,"j1":3}"#]);
        // A left row meeting rows at once is never padded; one with a null
        // key is, at once, and forever.
        assert_eq!(changes(&mut op, &[(0, Some(8), 5)]), [r#"+I {"j0":5,"j1":4}"#]);
        assert_eq!(changes(&mut op, &[(0, None, 6)]), [r#"+I {"j0":6,"j1":null}"#]);
        assert_eq!(changes(&mut op, &[(1, Some(8), 9)]), [r#"+I {"j0":5,"j1":9}"#]);
    }

    #[test]
    fn a_full_join_pads_either_side() {
        let mut op = outer(true, true);
        assert_eq!(changes(&mut op, &[(1, Some(7), 2)]), [r#"+I {"j0":null,"j1":2}"#]);
        assert_eq!(changes(&mut op, &[(0, Some(7), 1)]), [r#"-D {"j0":null,"j1":2}"#, r#"+I {"j0":1,"j1":2}"#]);
        assert_eq!(changes(&mut op, &[(0, Some(7), 3)]), [r#"+I {"j0":3,"j1":2}"#]);
    }

    /// Rows `(kind, side, key, value)` through `op`, as `op row`.
    fn changelog(op: &mut JoinTask, rows: &[(&str, u8, i64, i64)]) -> Vec<String> {
        let mut b = RecordBatch::default();
        for &(kind, side, k, v) in rows {
            let col = if side == 0 { "j0" } else { "j1" };
            let value = serde_json::json!({"k0": k, col: v, "__side": side}).to_string();
            let kind = match kind {
                "+I" => RowKind::Insert,
                "-U" => RowKind::UpdateBefore,
                "+U" => RowKind::UpdateAfter,
                _ => RowKind::Delete,
            };
            b.push_kind(format!("{{\"k0\":{k}}}").as_bytes(), value.as_bytes(), 0, Origin::at(v as u64), kind);
        }
        let mut out = Emitter::new(1);
        op.process(b, &mut out).unwrap();
        let m = out.main();
        (0..m.len()).map(|i| format!("{} {}", m.kind(i).short(), String::from_utf8_lossy(m.value(i)))).collect()
    }

    #[test]
    fn a_join_of_a_changelog_takes_back_the_rows_a_row_taken_back_was_joined_into() {
        let mut op = outer(false, false);
        assert_eq!(changelog(&mut op, &[("+I", 0, 7, 1), ("+I", 1, 7, 2), ("+I", 1, 7, 3)]), [r#"+I {"j0":1,"j1":2}"#, r#"+I {"j0":1,"j1":3}"#]);
        // An update of the left row: its old joined rows go, the new come.
        let got = changelog(&mut op, &[("-U", 0, 7, 1), ("+U", 0, 7, 4)]);
        let mut gone: Vec<&String> = got[..2].iter().collect();
        gone.sort();
        assert_eq!(gone, [r#"-D {"j0":1,"j1":2}"#, r#"-D {"j0":1,"j1":3}"#]);
        assert_eq!(got.len(), 4);
        assert!(got[2..].iter().all(|r| r.starts_with("+I {\"j0\":4")), "{got:?}");
        assert_eq!(changelog(&mut op, &[("-D", 1, 7, 2)]), [r#"-D {"j0":4,"j1":2}"#]);
        // A row it does not hold taken back: ignored (and counted).
        assert_eq!(changelog(&mut op, &[("-D", 1, 7, 99)]), Vec::<String>::new());
        assert_eq!(op.unknown, 1);
        assert_eq!(held_rows(&mut op), 2);
    }

    #[test]
    fn an_outer_join_of_a_changelog_pads_a_row_again_when_its_last_match_goes() {
        let mut op = outer(true, false);
        assert_eq!(changelog(&mut op, &[("+I", 0, 7, 1)]), [r#"+I {"j0":1,"j1":null}"#]);
        assert_eq!(changelog(&mut op, &[("+I", 1, 7, 2)]), [r#"-D {"j0":1,"j1":null}"#, r#"+I {"j0":1,"j1":2}"#]);
        assert_eq!(changelog(&mut op, &[("-D", 1, 7, 2)]), [r#"-D {"j0":1,"j1":2}"#, r#"+I {"j0":1,"j1":null}"#]);
        // Padded again, so the next match takes the padded row back again.
        assert_eq!(changelog(&mut op, &[("+I", 1, 7, 3)]), [r#"-D {"j0":1,"j1":null}"#, r#"+I {"j0":1,"j1":3}"#]);
        assert_eq!(changelog(&mut op, &[("-D", 1, 7, 3), ("-D", 0, 7, 1)]), [r#"-D {"j0":1,"j1":3}"#, r#"+I {"j0":1,"j1":null}"#, r#"-D {"j0":1,"j1":null}"#]);
        assert_eq!(held_rows(&mut op), 0);
        // A full join: a lone right row taken back takes its padded row back.
        let mut op = outer(true, true);
        assert_eq!(changelog(&mut op, &[("+I", 1, 7, 2), ("-D", 1, 7, 2)]), [r#"+I {"j0":null,"j1":2}"#, r#"-D {"j0":null,"j1":2}"#]);
    }

    #[test]
    fn a_side_with_its_own_state_ttl_forgets_its_rows_the_other_keeps_them() {
        let cfg = JoinConfig { left_ttl_ms: Some(1), ..config() };
        let mut op = JoinFactory { cfg: Arc::new(cfg), state: Arc::new(HeapBackendFactory) }.task(&TaskContext::new("p", "join", 0, 1)).unwrap();
        assert_eq!(changes(&mut op, &[(0, Some(7), 1), (1, Some(7), 2)]), [r#"+I {"j0":1,"j1":2}"#]);
        std::thread::sleep(std::time::Duration::from_millis(20));
        // The left row is gone (its 1 ms passed); the right row is not.
        assert_eq!(changes(&mut op, &[(1, Some(7), 3)]), Vec::<String>::new());
        let mut met = changes(&mut op, &[(0, Some(7), 4)]);
        met.sort();
        assert_eq!(met, [r#"+I {"j0":4,"j1":2}"#, r#"+I {"j0":4,"j1":3}"#]);
    }
}
