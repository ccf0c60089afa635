//! `type: sql-temporal-join`: an event-time temporal join, `probe JOIN
//! versioned FOR SYSTEM_TIME AS OF probe.t ON probe.k = versioned.pk`, as
//! Flink's: each probe row meets the version of its key that was current at
//! the probe row's time. Its inputs are the two sides, each through a
//! `sql-calc` setting the record key to the join keys and adding the side
//! (`__side`: 0 probe, 1 versioned) and the row's event time (`__t`, in
//! milliseconds: the probe's AS OF column, the versioned table's WATERMARK
//! column).
//!
//! Keyed by the join key, it keeps the probe rows waiting for the watermark
//! (map state: row → count and time) and the versions of the key (map state:
//! time → the row, or nothing for a delete). When the watermark passes a
//! probe row's time (an event-time timer), no version at or before that time
//! can still come: the row meets the latest version at or before its time,
//! and goes out joined with it (inserts only), or padded with nulls on a
//! LEFT join when there is none (or it was deleted). Versions older than the
//! one current at the watermark are forgotten. A probe row at or behind the
//! watermark is late and dropped; a version row taking back a row (-U) says
//! nothing a version does not (the +U after it is the new version), a -D
//! deletes the key from its time on.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use weir_engine::timers::Domain;
use weir_engine::{Emitter, Operator, OperatorError, OperatorFactory, RecordBatch, RowKind, SnapshotWriter, TaskContext};
use weir_spec::{BuildContext, BuildError, BuiltOperator, Changelog, Check, OperatorKind, SpecError};
use weir_state::{StateBackendFactory, StateDescriptor, StateId, StateKind};

use crate::ops::join::{SIDE, TIME};
use crate::ops::keyed::Keyed;

/// The config of a `sql-temporal-join` entry (written by the planner).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemporalJoinConfig {
    /// How many join keys (`k0`, `k1`, ... in the sides' rows).
    pub keys: usize,
    /// The probe side's columns, and the versioned side's; the output has
    /// both (the names are distinct).
    pub left: Vec<String>,
    pub right: Vec<String>,
    /// A LEFT join: a probe row without a version goes out padded.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub left_outer: bool,
}

/// The `sql-temporal-join` operator kind.
pub struct SqlTemporalJoin;

const PROBES: &str = "sql.temporal.probes";
const VERSIONS: &str = "sql.temporal.versions";

impl OperatorKind for SqlTemporalJoin {
    type Config = TemporalJoinConfig;
    const TYPE: &'static str = "sql-temporal-join";

    fn check(&self, c: &TemporalJoinConfig, cx: &Check<'_>) -> Result<(), SpecError> {
        if cx.key_by.is_none() {
            return Err(cx.error_at("type", "key_by", "a sql-temporal-join is keyed by its join key: key_by: key"));
        }
        if c.keys == 0 {
            return Err(cx.error("keys", "a temporal join has at least one key"));
        }
        if let Some(dup) = c.left.iter().find(|n| c.right.contains(n) || n.as_str() == SIDE || n.as_str() == TIME) {
            return Err(cx.error("right", format!("column {dup} is on both sides")));
        }
        Ok(())
    }

    fn build(&self, c: TemporalJoinConfig, cx: &BuildContext<'_>) -> Result<BuiltOperator, BuildError> {
        let shape = serde_json::to_string(&(c.keys, &c.left, &c.right)).expect("configs serialise");
        let factory: Arc<dyn OperatorFactory> = Arc::new(TemporalFactory { cfg: Arc::new(c), state: cx.env.state.clone() });
        Ok(BuiltOperator { factory, logic: None, state_shape: Some(shape) })
    }

    /// Each probe row goes out once, when the watermark passes it: inserts,
    /// whatever the versioned side is.
    fn changelog(&self, _c: &TemporalJoinConfig, _input: Changelog) -> Result<Changelog, String> {
        Ok(Changelog::Append)
    }
}

struct TemporalFactory {
    cfg: Arc<TemporalJoinConfig>,
    state: Arc<dyn StateBackendFactory>,
}

impl OperatorFactory for TemporalFactory {
    fn create(&self, ctx: &TaskContext) -> Result<Box<dyn Operator>, OperatorError> {
        Ok(Box::new(self.task(ctx)?))
    }
}

impl TemporalFactory {
    fn task(&self, ctx: &TaskContext) -> Result<TemporalTask, OperatorError> {
        let mut keyed = Keyed::open(ctx, &self.state)?;
        let mut declare = |name: &str| keyed.state.declare(StateDescriptor { name: name.into(), kind: StateKind::Map, ttl: None });
        let (probes, versions) = (declare(PROBES), declare(VERSIONS));
        let probes = probes.map_err(|e| keyed.fail(e))?;
        let versions = versions.map_err(|e| keyed.fail(e))?;
        let keys = (0..self.cfg.keys).map(|i| format!("k{i}")).collect();
        Ok(TemporalTask { cfg: self.cfg.clone(), keyed, probes, versions, keys, late: 0 })
    }
}

struct TemporalTask {
    cfg: Arc<TemporalJoinConfig>,
    keyed: Keyed,
    probes: StateId,
    versions: StateId,
    keys: Vec<String>,
    /// Probe rows at or behind the watermark, dropped.
    late: u64,
}

/// A version's time as a map key that sorts as the time does.
fn time_key(t: i64) -> [u8; 8] {
    ((t as u64) ^ (1 << 63)).to_be_bytes()
}

fn key_time(b: &[u8]) -> Option<i64> {
    <[u8; 8]>::try_from(b).ok().map(|b| (u64::from_be_bytes(b) ^ (1 << 63)) as i64)
}

/// A waiting probe row's count and time.
fn probe_value(n: u64, t: i64) -> Vec<u8> {
    let mut v = n.to_le_bytes().to_vec();
    v.extend_from_slice(&t.to_le_bytes());
    v
}

fn probe_count_time(v: &[u8]) -> Option<(u64, i64)> {
    let n = u64::from_le_bytes(v.get(..8)?.try_into().ok()?);
    let t = i64::from_le_bytes(v.get(8..16)?.try_into().ok()?);
    Some((n, t))
}

impl TemporalTask {
    fn padded(&self, own: &Map<String, Value>) -> Vec<u8> {
        let mut row = own.clone();
        for c in &self.cfg.right {
            row.insert(c.clone(), Value::Null);
        }
        serde_json::to_vec(&row).expect("JSON serialises")
    }

    /// The probe rows of `key` at or before `watermark` meet their versions
    /// and go; the versions no probe row still to come can meet go.
    fn fire(&mut self, key: &[u8], watermark: i64, out: &mut Emitter) -> Result<(), OperatorError> {
        let mut versions: Vec<(i64, Vec<u8>)> = Vec::new();
        for (k, v) in self.keyed.state.map_entries(self.versions, key).map_err(|e| self.keyed.fail(e))? {
            let t = key_time(&k).ok_or_else(|| self.keyed.fail("a kept version has no time"))?;
            versions.push((t, v));
        }
        versions.sort_by_key(|(t, _)| *t);
        let mut due: Vec<(i64, Vec<u8>, u64)> = Vec::new();
        for (row, v) in self.keyed.state.map_entries(self.probes, key).map_err(|e| self.keyed.fail(e))? {
            let (n, t) = probe_count_time(&v).ok_or_else(|| self.keyed.fail("a waiting probe row has no time"))?;
            if t <= watermark {
                due.push((t, row, n));
            }
        }
        due.sort();
        for (t, row, n) in due {
            self.keyed.state.map_remove(self.probes, key, &row).map_err(|e| self.keyed.fail(e))?;
            let own: Map<String, Value> =
                serde_json::from_slice(&row).map_err(|e| self.keyed.fail(format!("a waiting probe row does not read: {e}")))?;
            // The latest version at or before the row's time; empty: deleted.
            let at = versions.partition_point(|(vt, _)| *vt <= t);
            let value = match at.checked_sub(1).map(|i| &versions[i].1).filter(|v| !v.is_empty()) {
                Some(version) => {
                    let version: Map<String, Value> =
                        serde_json::from_slice(version).map_err(|e| self.keyed.fail(format!("a kept version does not read: {e}")))?;
                    let mut joined = own;
                    joined.extend(version);
                    Some(serde_json::to_vec(&joined).expect("JSON serialises"))
                }
                None if self.cfg.left_outer => Some(self.padded(&own)),
                None => None,
            };
            if let Some(value) = value {
                for _ in 0..n {
                    out.main().push_kind(key, &value, t, weir_engine::Origin::default(), RowKind::Insert);
                }
            }
        }
        // Older than the version current at the watermark: never met again.
        let current = versions.partition_point(|(vt, _)| *vt <= watermark);
        let keep_from = match current.checked_sub(1) {
            Some(i) if versions[i].1.is_empty() => i + 1,
            Some(i) => i,
            None => 0,
        };
        for (t, _) in &versions[..keep_from] {
            self.keyed.state.map_remove(self.versions, key, &time_key(*t)).map_err(|e| self.keyed.fail(e))?;
        }
        Ok(())
    }
}

impl Operator for TemporalTask {
    fn process(&mut self, input: RecordBatch, _out: &mut Emitter) -> Result<(), OperatorError> {
        self.keyed.state.set_time(weir_engine::now_ms());
        for i in 0..input.len() {
            let fail = |t: &Self, m: String| t.keyed.fail(m).at(Some(input.origins[i])).in_row(Some(i));
            let row: Map<String, Value> =
                serde_json::from_slice(input.value(i)).map_err(|e| fail(self, format!("a temporal join's input row is not a JSON object: {e}")))?;
            let side = match row.get(SIDE).and_then(Value::as_u64) {
                Some(s @ (0 | 1)) => s as usize,
                _ => return Err(fail(self, format!("a temporal join's input row has no {SIDE} of 0 or 1"))),
            };
            let Some(t) = row.get(TIME).and_then(Value::as_i64) else {
                continue; // no time: it is of no version and meets none
            };
            let key = input.key(i);
            let null_key = self.keys.iter().any(|k| row.get(k).is_none_or(Value::is_null));
            if side == 0 {
                if input.kind(i).retracts() {
                    return Err(fail(self, "a temporal join's probe side reads inserts only, and this row takes one back".into()));
                }
                if t <= self.keyed.watermark {
                    self.late += 1;
                    if self.late == 1 || self.late.is_power_of_two() {
                        tracing::warn!(operator = self.keyed.node, task = self.keyed.task, "dropped {} late probe rows so far (row time {t}, watermark {})", self.late, self.keyed.watermark);
                    }
                    continue;
                }
                if null_key && !self.cfg.left_outer {
                    continue;
                }
                let own: Map<String, Value> = self.cfg.left.iter().map(|c| (c.clone(), row.get(c).cloned().unwrap_or(Value::Null))).collect();
                let bytes = serde_json::to_vec(&own).expect("JSON serialises");
                let held = self.keyed.state.map_get(self.probes, key, &bytes).map_err(|e| self.keyed.fail(e))?;
                let n = held.as_deref().and_then(probe_count_time).map_or(0, |(n, _)| n);
                self.keyed.state.map_put(self.probes, key, &bytes, &probe_value(n + 1, t)).map_err(|e| self.keyed.fail(e))?;
                self.keyed.timers.register(Domain::Event, t, key);
            } else {
                if null_key || input.kind(i) == RowKind::UpdateBefore {
                    continue;
                }
                let version = match input.kind(i) {
                    RowKind::Delete => Vec::new(),
                    _ => {
                        let own: Map<String, Value> = self.cfg.right.iter().map(|c| (c.clone(), row.get(c).cloned().unwrap_or(Value::Null))).collect();
                        serde_json::to_vec(&own).expect("JSON serialises")
                    }
                };
                self.keyed.state.map_put(self.versions, key, &time_key(t), &version).map_err(|e| self.keyed.fail(e))?;
                // When the watermark passes it, the versions before it go.
                self.keyed.timers.register(Domain::Event, t, key);
            }
        }
        Ok(())
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Emitter) -> Result<(), OperatorError> {
        self.keyed.watermark = self.keyed.watermark.max(watermark);
        let wm = self.keyed.watermark;
        loop {
            let due = self.keyed.timers.due(Domain::Event, wm, 1024);
            if due.is_empty() {
                return Ok(());
            }
            // Each key once: a firing takes all its rows the watermark passed.
            let keys: std::collections::BTreeSet<Vec<u8>> = due.into_iter().map(|(_, k)| k).collect();
            for key in keys {
                self.fire(&key, wm, out)?;
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
    use weir_engine::Origin;
    use weir_state::HeapBackendFactory;

    fn join(left_outer: bool) -> TemporalTask {
        let cfg = TemporalJoinConfig { keys: 1, left: vec!["j0".into()], right: vec!["j1".into()], left_outer };
        TemporalFactory { cfg: Arc::new(cfg), state: Arc::new(HeapBackendFactory) }.task(&TaskContext::new("p", "tj", 0, 1)).unwrap()
    }

    /// Rows `(kind, side, time, value)` of key 7, then a watermark.
    fn run(op: &mut TemporalTask, rows: &[(&str, u8, i64, i64)], watermark: i64) -> Vec<String> {
        let mut b = RecordBatch::default();
        for &(kind, side, t, v) in rows {
            let col = if side == 0 { "j0" } else { "j1" };
            let value = serde_json::json!({"k0": 7, col: v, "__t": t, "__side": side}).to_string();
            let kind = match kind {
                "-U" => RowKind::UpdateBefore,
                "+U" => RowKind::UpdateAfter,
                "-D" => RowKind::Delete,
                _ => RowKind::Insert,
            };
            b.push_kind(br#"{"k0":7}"#, value.as_bytes(), t, Origin::at(v as u64), kind);
        }
        let mut out = Emitter::new(1);
        op.process(b, &mut out).unwrap();
        op.on_watermark(watermark, &mut out).unwrap();
        let m = out.main();
        (0..m.len()).map(|i| format!("{} {}", m.timestamps[i], String::from_utf8_lossy(m.value(i)))).collect()
    }

    fn versions(op: &mut TemporalTask) -> usize {
        op.keyed.state.map_entries(op.versions, br#"{"k0":7}"#).unwrap().len()
    }

    #[test]
    fn a_probe_row_meets_the_version_current_at_its_time_once_the_watermark_passes_it() {
        let mut op = join(false);
        // Versions 100 at 10, 200 at 20 (then changed again at 30); probes
        // at 5 (no version yet), 15, 20 and 25; the watermark at 20 sends the
        // first three out, the one at 25 waits.
        let rows = [("+I", 1, 10, 100), ("-U", 1, 20, 100), ("+U", 1, 20, 200), ("+U", 1, 30, 300), ("+I", 0, 5, 1), ("+I", 0, 15, 2), ("+I", 0, 20, 3), ("+I", 0, 25, 4)];
        assert_eq!(run(&mut op, &rows, 20), [r#"15 {"j0":2,"j1":100}"#, r#"20 {"j0":3,"j1":200}"#]);
        // Version 10 is older than the one current at 20: gone.
        assert_eq!(versions(&mut op), 2);
        // A version at 24 (after the watermark) comes before the probe at 25 goes.
        assert_eq!(run(&mut op, &[("+U", 1, 24, 240)], 30), [r#"25 {"j0":4,"j1":240}"#]);
        // A probe row behind the watermark is late.
        assert_eq!(run(&mut op, &[("+I", 0, 29, 5)], 30), Vec::<String>::new());
        assert_eq!(op.late, 1);
    }

    #[test]
    fn a_left_temporal_join_pads_a_probe_row_without_a_version_or_after_a_delete() {
        let mut op = join(true);
        let rows = [("+I", 1, 10, 100), ("-D", 1, 20, 100), ("+I", 0, 5, 1), ("+I", 0, 15, 2), ("+I", 0, 25, 3)];
        assert_eq!(run(&mut op, &rows, 30), [r#"5 {"j0":1,"j1":null}"#, r#"15 {"j0":2,"j1":100}"#, r#"25 {"j0":3,"j1":null}"#]);
        assert_eq!(versions(&mut op), 0, "the delete current at the watermark and all before it go");
    }
}
