//! The window operator: a 0.2.0 window-function component run per key over
//! tumbling, sliding or session windows on event time.
//!
//! Per batch, the host assigns each record its windows (merging sessions),
//! loads those windows' accumulators from keyed state, hands the guest the
//! whole batch with (row, accumulator) pairs in one `add` call and stores what
//! comes back. A window fires through an event-time timer at its last
//! millisecond (so it is in checkpoints and fires once after a restore); its
//! state is purged by a second timer at end + allowed lateness. A record for a
//! window that already fired but is within the lateness updates it and fires
//! it again (one firing per such record, as in Flink); a record later than
//! that goes to the late side output.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use wasmtime::Store;
use weir_engine::{Emitter, Operator, OperatorError, Origin, RecordBatch, SnapshotWriter, NO_TIMESTAMP};
use weir_state::StateId;

use weir_engine::window::{session, store, Bounds, WindowSpec};
use crate::bindings::types;
use crate::bindings::v0_2::{window as wit, WindowOperator as Bindings};
use crate::loader::Shared;
use crate::host::HostState;
use weir_engine::now_ms;
use crate::operator::TIMER_ORIGIN;
use weir_engine::Domain;
use crate::WasmError;

/// Fired timers handled per round.
const TIMER_BATCH: usize = 1024;

/// Where an accumulator of a (key, window) touched by a batch comes from.
enum Acc {
    /// Stored (or `None`: a new window).
    Have(Option<Vec<u8>>),
    /// The result of merge group `n`.
    Merged(usize),
}

/// A (key, window) a batch adds records to.
struct Slot {
    key: Vec<u8>,
    bounds: Bounds,
    acc: Acc,
}

/// A window to fire: key, bounds, accumulator, origin of the output.
type Fire = (Vec<u8>, Bounds, Vec<u8>, Origin);

/// One parallel task of a window operator.
pub struct WindowOperator {
    pub(super) store: Store<HostState>,
    pub(super) bindings: Bindings,
    pub(super) spec: WindowSpec,
    pub(super) windows: StateId,
    pub(super) plugin: String,
    pub(super) operator: String,
    pub(super) task: u32,
    /// Engine port of the late side output (`None`: nobody reads it).
    pub(super) late_port: Option<usize>,
    /// Records later than the allowed lateness that no node reads (counted,
    /// and logged once).
    pub late_unread: u64,
    /// Where it runs (without the restore data).
    pub(super) ctx: weir_engine::TaskContext,
    pub(super) _shared: Arc<Shared>,
}

impl WindowOperator {
    fn watermark(&self) -> i64 {
        self.store.data().watermark
    }

    /// Route a record later than the allowed lateness to the late output.
    fn late(&mut self, input: &RecordBatch, row: usize, out: &mut Emitter) {
        match self.late_port {
            Some(p) => out.port(p).push_row_from(input, row, None),
            None => {
                if self.late_unread == 0 {
                    tracing::warn!(
                        plugin = %self.plugin,
                        operator = %self.operator,
                        "records later than the allowed lateness go to side output '{}', which no node reads: they are counted, not kept",
                        self.spec.late_output
                    );
                }
                self.late_unread += 1;
            }
        }
    }

    /// Assign the rows of one key to windows, adding slots (and merge groups
    /// for sessions). Returns the (row, slot) pairs.
    fn assign_key(
        &mut self,
        input: &RecordBatch,
        key: &[u8],
        rows: &[u32],
        slots: &mut Vec<Slot>,
        merges: &mut Vec<Vec<Vec<u8>>>,
        out: &mut Emitter,
    ) -> Result<Vec<(u32, usize)>, OperatorError> {
        let wm = self.watermark();
        let mut pairs = Vec::new();
        if !self.spec.kind.is_session() {
            let mut index: HashMap<Bounds, usize> = HashMap::new();
            for &row in rows {
                let ts = input.timestamps[row as usize];
                let windows: Vec<Bounds> =
                    self.spec.kind.assign(ts).into_iter().filter(|w| !self.spec.is_late(w, wm)).collect();
                if windows.is_empty() {
                    self.late(input, row as usize, out);
                    continue;
                }
                for w in windows {
                    let slot = match index.get(&w) {
                        Some(&s) => s,
                        None => {
                            let d = self.store.data_mut();
                            let acc = d.state.map_get(self.windows, key, &store::encode(&w));
                            let acc = acc.map_err(|e| self.state_err(e))?;
                            slots.push(Slot { key: key.to_vec(), bounds: w, acc: Acc::Have(acc) });
                            index.insert(w, slots.len() - 1);
                            slots.len() - 1
                        }
                    };
                    pairs.push((row, slot));
                }
            }
            return Ok(pairs);
        }
        // Sessions: merge the key's stored windows with the new records' windows.
        let stored = store::windows(&mut *self.store.data_mut().state, self.windows, key).map_err(|e| self.state_err(e))?;
        let bounds: Vec<Bounds> = stored.iter().map(|(b, _)| *b).collect();
        let new: Vec<(u32, Bounds)> =
            rows.iter().map(|&r| (r, self.spec.kind.assign(input.timestamps[r as usize])[0])).collect();
        for m in session::merge(&bounds, &new) {
            if self.spec.is_late(&m.bounds, wm) {
                for &r in &m.rows {
                    self.late(input, r as usize, out);
                }
                continue;
            }
            let acc_of = |b: &Bounds| stored.iter().find(|(s, _)| s == b).map(|(_, a)| a.clone()).expect("stored");
            let acc = match m.stored.len() {
                0 => Acc::Have(None),
                1 => Acc::Have(Some(acc_of(&m.stored[0]))),
                _ => {
                    merges.push(m.stored.iter().map(acc_of).collect());
                    Acc::Merged(merges.len() - 1)
                }
            };
            for old in m.stored.iter().filter(|b| **b != m.bounds) {
                let d = self.store.data_mut();
                d.state.map_remove(self.windows, key, &store::encode(old)).map_err(|e| self.state_err(e))?;
            }
            slots.push(Slot { key: key.to_vec(), bounds: m.bounds, acc });
            pairs.extend(m.rows.iter().map(|&r| (r, slots.len() - 1)));
        }
        Ok(pairs)
    }

    /// Ask the guest for the results of `fires` and emit them on the main output.
    fn fire(&mut self, fires: Vec<Fire>, out: &mut Emitter) -> Result<(), OperatorError> {
        if fires.is_empty() {
            return Ok(());
        }
        let mut w = wit::FiredWindows { keys: Vec::new(), key_ends: Vec::new(), windows: Vec::new(), accumulators: Vec::new() };
        let mut meta = Vec::with_capacity(fires.len());
        for (key, b, acc, origin) in fires {
            w.keys.extend_from_slice(&key);
            w.key_ends.push(w.keys.len() as u32);
            w.windows.push(wit::Bounds { start: b.start, end: b.end });
            w.accumulators.push(acc);
            meta.push((key, b, origin));
        }
        crate::host::arm(&mut self.store);
        let r = self.bindings.weir_operator0_2_0_window().call_get_result(&mut self.store, &w);
        let results = self.result(r, "get-result", |row| row.and_then(|r| meta.get(r as usize)).map(|m| m.2))?;
        if results.len() != meta.len() {
            return Err(self.contract(format!("get-result returned {} results for {} windows", results.len(), meta.len())));
        }
        for ((key, b, origin), value) in meta.into_iter().zip(results) {
            if let Some(v) = value {
                out.main().push(&key, &v, b.max_timestamp(), origin);
            }
        }
        Ok(())
    }

    /// Fire and purge the windows whose event-time timers are due at `time`.
    fn on_time(&mut self, time: i64, out: &mut Emitter) -> Result<(), OperatorError> {
        loop {
            let due = self.store.data_mut().timers.due(Domain::Event, time, TIMER_BATCH);
            if due.is_empty() {
                return Ok(());
            }
            let mut fires = Vec::new();
            let mut purge = Vec::new();
            for (t, key) in due {
                let ws = store::windows(&mut *self.store.data_mut().state, self.windows, &key).map_err(|e| self.state_err(e))?;
                for (b, acc) in ws {
                    let cleanup = self.spec.cleanup_time(&b) <= t;
                    if b.max_timestamp() == t {
                        fires.push((key.clone(), b, if cleanup { acc } else { acc.clone() }, TIMER_ORIGIN));
                    }
                    if cleanup {
                        purge.push((key.clone(), b));
                    }
                }
            }
            self.fire(fires, out)?;
            for (key, b) in purge {
                let d = self.store.data_mut();
                d.state.map_remove(self.windows, &key, &store::encode(&b)).map_err(|e| self.state_err(e))?;
            }
        }
    }
}

impl Operator for WindowOperator {
    fn swap(&mut self, replacement: &(dyn std::any::Any + Send + Sync)) -> Result<(), OperatorError> {
        let Some(next) = replacement.downcast_ref::<super::WindowOperatorFactory>() else {
            return Err(OperatorError::new(format!(
                "operator '{}' is a window operator and can only swap to another window function",
                self.operator
            )));
        };
        self.swap_to(next).map_err(OperatorError::new)
    }

    fn process(&mut self, input: RecordBatch, out: &mut Emitter) -> Result<(), OperatorError> {
        if let Some(row) = input.timestamps.iter().position(|&t| t == NO_TIMESTAMP) {
            return Err(OperatorError::new(WasmError::Guest {
                plugin: self.plugin.clone(),
                operator: self.operator.clone(),
                task: self.task,
                what: "got a record without an event time".into(),
                message: "a window operator needs timestamps: give its source `timestamp: $.field`".into(),
            })
            .at(input.origins.get(row).copied()));
        }
        self.store.data_mut().state.set_time(now_ms());
        // Rows per key, keys in order of first appearance.
        let mut by_key: Vec<(&[u8], Vec<u32>)> = Vec::new();
        let mut index: HashMap<&[u8], usize> = HashMap::new();
        for i in 0..input.len() {
            let k = input.key(i);
            let at = *index.entry(k).or_insert_with(|| {
                by_key.push((k, Vec::new()));
                by_key.len() - 1
            });
            by_key[at].1.push(i as u32);
        }
        let (mut slots, mut merges, mut pairs) = (Vec::new(), Vec::new(), Vec::new());
        for (key, rows) in &by_key {
            pairs.extend(self.assign_key(&input, key, rows, &mut slots, &mut merges, out)?);
        }
        if pairs.is_empty() {
            return Ok(());
        }
        let merged = if merges.is_empty() {
            Vec::new()
        } else {
            let mut group_ends = Vec::with_capacity(merges.len());
            let mut accs = Vec::new();
            for g in &merges {
                accs.extend(g.iter().cloned());
                group_ends.push(accs.len() as u32);
            }
            crate::host::arm(&mut self.store);
            let r = self.bindings.weir_operator0_2_0_window().call_merge(&mut self.store, &accs, &group_ends);
            let m = self.result(r, "merge", |_| input.origins.first().copied())?;
            if m.len() != merges.len() {
                return Err(self.contract(format!("merge returned {} accumulators for {} groups", m.len(), merges.len())));
            }
            m
        };
        let mut current: Vec<Option<Vec<u8>>> = slots
            .iter_mut()
            .map(|s| match std::mem::replace(&mut s.acc, Acc::Have(None)) {
                Acc::Have(a) => a,
                Acc::Merged(g) => Some(merged[g].clone()),
            })
            .collect();
        // Records for windows that already fired (within the allowed lateness)
        // are added one at a time below, each firing its window again, as in
        // Flink; all others go to the guest in one call.
        let wm = self.watermark();
        type Pairs = Vec<(u32, usize)>;
        let (on_time, late): (Pairs, Pairs) = pairs.iter().partition(|&&(_, s)| slots[s].bounds.max_timestamp() > wm);
        let RecordBatch { keys, key_ends, values, value_ends, timestamps, headers, origins, kinds: _, born: _ } = input;
        let headers = headers.into_iter().map(|h| types::Header { row: h.row, name: h.name, value: h.value }).collect();
        let batch = types::Batch { keys, key_ends, values, value_ends, timestamps, headers };
        if !on_time.is_empty() {
            let (rows, targets): (Vec<u32>, Vec<u32>) = on_time.iter().map(|&(r, s)| (r, s as u32)).unzip();
            crate::host::arm(&mut self.store);
            let r = self.bindings.weir_operator0_2_0_window().call_add(&mut self.store, &current, &batch, &rows, &targets);
            let accs = self.result(r, "add", |row| row.and_then(|r| origins.get(r as usize)).copied())?;
            if accs.len() != slots.len() {
                return Err(self.contract(format!("add returned {} accumulators for {} windows", accs.len(), slots.len())));
            }
            current = accs.into_iter().map(Some).collect();
        }
        let mut fires = Vec::new();
        for (row, slot) in late {
            let one = row_batch(&batch, row as usize);
            let acc = vec![current[slot].take()];
            crate::host::arm(&mut self.store);
            let r = self.bindings.weir_operator0_2_0_window().call_add(&mut self.store, &acc, &one, &[0], &[0]);
            let origin = origins.get(row as usize).copied();
            let mut accs = self.result(r, "add", |_| origin)?;
            if accs.len() != 1 {
                return Err(self.contract(format!("add returned {} accumulators for 1 window", accs.len())));
            }
            let acc = accs.pop().expect("one");
            let s = &slots[slot];
            fires.push((s.key.clone(), s.bounds, acc.clone(), origin.unwrap_or(TIMER_ORIGIN)));
            current[slot] = Some(acc);
        }
        for (slot, acc) in slots.into_iter().zip(current) {
            let acc = acc.expect("every window touched by the batch has an accumulator");
            let d = self.store.data_mut();
            d.state.map_put(self.windows, &slot.key, &store::encode(&slot.bounds), &acc).map_err(|e| self.state_err(e))?;
            let d = self.store.data_mut();
            let fire_at = slot.bounds.max_timestamp();
            if fire_at > wm {
                d.timers.register(Domain::Event, fire_at, &slot.key);
            }
            d.timers.register(Domain::Event, self.spec.cleanup_time(&slot.bounds), &slot.key);
        }
        self.fire(fires, out)
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Emitter) -> Result<(), OperatorError> {
        let d = self.store.data_mut();
        d.watermark = d.watermark.max(watermark);
        self.on_time(watermark, out)
    }

    /// End of input: the watermark jumps to the end of time; every window fires.
    fn finish(&mut self, out: &mut Emitter) -> Result<(), OperatorError> {
        if self.late_unread > 0 {
            tracing::warn!(
                plugin = %self.plugin,
                "operator '{}' (task {}): {} record(s) later than the allowed lateness were not kept: nothing reads its side output '{}'",
                self.operator,
                self.task,
                self.late_unread,
                self.spec.late_output
            );
        }
        self.on_watermark(i64::MAX, out)
    }

    fn snapshot(&mut self, dir: &Path) -> Result<Option<SnapshotWriter>, OperatorError> {
        let w = crate::snapshot::snapshot(self.store.data_mut(), dir).map_err(|e| self.state_err(e))?;
        Ok(Some(w))
    }
}

/// Row `row` of `batch` as a batch of its own.
fn row_batch(batch: &types::Batch, row: usize) -> types::Batch {
    let span = |ends: &[u32]| (if row == 0 { 0 } else { ends[row - 1] as usize })..ends[row] as usize;
    let key = batch.keys[span(&batch.key_ends)].to_vec();
    let value = batch.values[span(&batch.value_ends)].to_vec();
    types::Batch {
        key_ends: vec![key.len() as u32],
        keys: key,
        value_ends: vec![value.len() as u32],
        values: value,
        timestamps: vec![batch.timestamps[row]],
        headers: batch
            .headers
            .iter()
            .filter(|h| h.row as usize == row)
            .map(|h| types::Header { row: 0, name: h.name.clone(), value: h.value.clone() })
            .collect(),
    }
}

