//! `type: sql-window`: an aggregation grouped by the windows of a TUMBLE,
//! HOP, CUMULATE or SESSION window table function (and columns). A session
//! row's window `[ts, ts + gap)` merges with the group's windows it touches
//! (as Flink's session windows: accumulators merged, the old windows' timers
//! deleted). Keyed by the group (the record
//! key its input's calc set), it assigns each row its windows by the row's
//! event time, keeps each open window's accumulators in keyed map state
//! (window bounds → accumulators) and an event-time timer at the window's
//! last millisecond; when the watermark passes it, the window's row is
//! emitted once (an insert, at event time `window_end - 1`) and its state
//! dropped. A row whose windows have all fired already is late and dropped,
//! as Flink's window aggregations drop it (counted, and logged once a
//! second at most). Rows of a window aggregation (or window join) carry
//! their windows: grouped again by them (`WindowShape::Attached`), each row's
//! window is its bounds' columns, and fires as the input's did.

use std::sync::Arc;
use std::time::Instant;

use arrow_array::Array;

use weir_engine::timers::Domain;
use weir_engine::window::{store, Bounds};
use weir_engine::{Emitter, Operator, OperatorError, OperatorFactory, Origin, RecordBatch, SnapshotWriter, TaskContext, NO_TIMESTAMP};
use weir_spec::{BuildContext, BuildError, BuiltOperator, Changelog, Check, OperatorKind, SpecError};
use weir_state::{StateBackendFactory, StateDescriptor, StateId, StateKind};

use crate::ops::agg::{output_row, AggregateConfig, GroupState};
use crate::ops::json;
use crate::ops::keyed::Keyed;
use crate::tvf::WindowShape;

/// The `sql-window` operator kind.
pub struct SqlWindow;

const STATE: &str = "sql.windows";
/// Where the rows of fired windows come from.
const TIMER_ORIGIN: Origin = Origin { source: u16::MAX, split: 0, offset: 0 };
/// Timers fired per round.
const TIMER_BATCH: usize = 1024;


impl OperatorKind for SqlWindow {
    type Config = AggregateConfig;
    const TYPE: &'static str = "sql-window";

    fn check(&self, c: &AggregateConfig, cx: &Check<'_>) -> Result<(), SpecError> {
        if cx.key_by.is_none() {
            return Err(cx.error_at("type", "key_by", "a sql-window is keyed by its group: key_by: key"));
        }
        let Some(w) = c.window else { return Err(cx.error_at("type", "window", "a sql-window needs its window: {type: tumble, size: ms}")) };
        match w {
            WindowShape::Tumble { size } if size > 0 => {}
            WindowShape::Hop { slide, size } if slide > 0 && slide <= size => {}
            WindowShape::Cumulate { step, size } if step > 0 && size > 0 && size % step == 0 => {}
            WindowShape::Session { gap } if gap > 0 => {}
            WindowShape::Attached { start, end } => {
                let bound = |i: usize| c.input.get(i).is_some_and(|col| col.data_type == arrow_schema::DataType::Int64);
                if start == end || !bound(start) || !bound(end) {
                    return Err(cx.error("window", "attached windows name two distinct BIGINT columns (milliseconds) of its input: {attached: {start, end}}"));
                }
            }
            _ => return Err(cx.error("window", "sizes, slides and steps are positive, a slide is not larger than its size, and a CUMULATE size is a whole number of steps")),
        }
        c.check().map_err(|m| cx.error("aggregates", m))
    }

    fn build(&self, c: AggregateConfig, cx: &BuildContext<'_>) -> Result<BuiltOperator, BuildError> {
        let shape = serde_json::to_string(&(&c.window, &c.input, &c.aggregates)).expect("configs serialise");
        let factory: Arc<dyn OperatorFactory> = Arc::new(WindowFactory { cfg: Arc::new(c), state: cx.env.state.clone() });
        Ok(BuiltOperator { factory, logic: None, state_shape: Some(shape) })
    }

    /// Window rows are final: inserts only.
    fn changelog(&self, _c: &AggregateConfig, input: Changelog) -> Result<Changelog, String> {
        match input {
            Changelog::Append => Ok(Changelog::Append),
            _ => Err("a window aggregation cannot take rows back out of windows it may have emitted".into()),
        }
    }
}

struct WindowFactory {
    cfg: Arc<AggregateConfig>,
    state: Arc<dyn StateBackendFactory>,
}

impl OperatorFactory for WindowFactory {
    fn create(&self, ctx: &TaskContext) -> Result<Box<dyn Operator>, OperatorError> {
        let mut keyed = Keyed::open(ctx, &self.state)?;
        let id = keyed.state.declare(StateDescriptor { name: STATE.into(), kind: StateKind::Map, ttl: None }).map_err(|e| keyed.fail(e))?;
        let window = self.cfg.window.expect("checked");
        Ok(Box::new(WindowTask {
            cfg: self.cfg.clone(),
            input: crate::expr::schema(&self.cfg.input),
            shape: window,
            watermark: keyed.watermark,
            keyed,
            id,
            late: 0,
            late_logged: None,
        }))
    }
}

struct WindowTask {
    cfg: Arc<AggregateConfig>,
    input: arrow_schema::SchemaRef,
    shape: WindowShape,
    keyed: Keyed,
    id: StateId,
    watermark: i64,
    /// Late rows dropped.
    late: u64,
    late_logged: Option<Instant>,
}

impl WindowTask {
    fn load(&mut self, key: &[u8], b: &Bounds) -> Result<GroupState, OperatorError> {
        match self.keyed.state.map_get(self.id, key, &store::encode(b)).map_err(|e| self.keyed.fail(e))? {
            Some(v) => serde_json::from_slice(&v).map_err(|e| self.keyed.fail(format!("stored window state does not read: {e}"))),
            None => Ok(GroupState::new(&self.cfg.aggregates)),
        }
    }

    /// Fire every window whose last millisecond the watermark has passed.
    fn fire(&mut self, watermark: i64, out: &mut Emitter) -> Result<(), OperatorError> {
        loop {
            let due = self.keyed.timers.due(Domain::Event, watermark, TIMER_BATCH);
            if due.is_empty() {
                return Ok(());
            }
            for (time, key) in due {
                let start = match self.shape.start_of(time + 1) {
                    Some(s) => Some(s),
                    // A session, or windows the rows carried: the group's
                    // window that ends there, if any.
                    None => store::windows(self.keyed.state.as_mut(), self.id, &key)
                        .map_err(|e| self.keyed.fail(e))?
                        .into_iter()
                        .find(|(w, _)| w.end == time + 1)
                        .map(|(w, _)| w.start),
                };
                let Some(start) = start else { continue };
                let b = Bounds { start, end: time + 1 };
                let Some(v) = self.keyed.state.map_get(self.id, &key, &store::encode(&b)).map_err(|e| self.keyed.fail(e))? else {
                    continue;
                };
                let state: GroupState = serde_json::from_slice(&v).map_err(|e| self.keyed.fail(format!("stored window state does not read: {e}")))?;
                self.keyed.state.map_remove(self.id, &key, &store::encode(&b)).map_err(|e| self.keyed.fail(e))?;
                if state.rows <= 0 {
                    continue;
                }
                let row = output_row(&self.cfg, &key, Some((b.start, b.end)), state.results(&self.cfg.aggregates)).map_err(|m| self.keyed.fail(m))?;
                out.main().push(&key, &row, b.max_timestamp(), TIMER_ORIGIN);
            }
        }
    }
}

impl WindowTask {
    /// A session row: its window merged with the group's windows it touches
    /// (Flink's: `[a, b)` and `[c, d)` merge when `a <= d` and `c <= b`).
    /// False when the merged window has fired already (a late row).
    fn session(&mut self, key: &[u8], ts: i64, gap: i64, args: &[arrow_array::ArrayRef], i: usize) -> Result<bool, OperatorError> {
        let mut b = Bounds { start: ts, end: ts.saturating_add(gap) };
        let mut touched = Vec::new();
        for (w, bytes) in store::windows(self.keyed.state.as_mut(), self.id, key).map_err(|e| self.keyed.fail(e))? {
            if w.start <= b.end && b.start <= w.end {
                touched.push((w, bytes));
            }
        }
        for (w, _) in &touched {
            b = Bounds { start: b.start.min(w.start), end: b.end.max(w.end) };
        }
        if b.max_timestamp() <= self.watermark {
            return Ok(false);
        }
        let mut state = GroupState::new(&self.cfg.aggregates);
        state.update(&self.cfg.aggregates, args, i, 1).map_err(|m| self.keyed.fail(m))?;
        for (w, bytes) in touched {
            let other: GroupState = serde_json::from_slice(&bytes).map_err(|e| self.keyed.fail(format!("stored window state does not read: {e}")))?;
            state.merge(other).map_err(|m| self.keyed.fail(m))?;
            self.keyed.state.map_remove(self.id, key, &store::encode(&w)).map_err(|e| self.keyed.fail(e))?;
            self.keyed.timers.delete(Domain::Event, w.max_timestamp(), key);
        }
        let bytes = serde_json::to_vec(&state).expect("window state serialises");
        self.keyed.state.map_put(self.id, key, &store::encode(&b), &bytes).map_err(|e| self.keyed.fail(e))?;
        self.keyed.timers.register(Domain::Event, b.max_timestamp(), key);
        Ok(true)
    }
}

impl Operator for WindowTask {
    fn process(&mut self, input: RecordBatch, _out: &mut Emitter) -> Result<(), OperatorError> {
        if input.is_empty() {
            return Ok(());
        }
        let values: Vec<&[u8]> = (0..input.len()).map(|i| input.value(i)).collect();
        let batch = json::decode(&self.input, &values).map_err(|(row, m)| self.keyed.fail(m).at(input.origins.get(row).copied()).in_row(Some(row)))?;
        let args = batch.columns().to_vec();
        self.keyed.state.set_time(weir_engine::now_ms());
        for i in 0..input.len() {
            let ts = input.timestamps[i];
            if ts == NO_TIMESTAMP {
                return Err(self
                    .keyed
                    .fail("a row without event time reached a window aggregation: its table needs a WATERMARK")
                    .at(Some(input.origins[i]))
                    .in_row(Some(i)));
            }
            let key = input.key(i).to_vec();
            let (mut any, windows) = match self.shape {
                WindowShape::Session { gap } => {
                    (self.session(&key, ts, gap, &args, i).map_err(|e| e.at(Some(input.origins[i])).in_row(Some(i)))?, Vec::new())
                }
                WindowShape::Attached { start, end } => {
                    let bound = |c: usize| {
                        let a = args[c].as_any().downcast_ref::<arrow_array::Int64Array>();
                        a.filter(|a| a.is_valid(i)).map(|a| a.value(i))
                    };
                    match (bound(start), bound(end)) {
                        (Some(s), Some(e)) if s < e => (false, vec![(s, e)]),
                        (s, e) => {
                            return Err(self
                                .keyed
                                .fail(format!("a row's window bounds are not a window: start {s:?}, end {e:?} (the window_start and window_end it was grouped by)"))
                                .at(Some(input.origins[i]))
                                .in_row(Some(i)))
                        }
                    }
                }
                shape => (false, shape.assign(ts)),
            };
            for (start, end) in windows {
                let b = Bounds { start, end };
                if b.max_timestamp() <= self.watermark {
                    continue;
                }
                any = true;
                let mut state = self.load(&key, &b)?;
                state.update(&self.cfg.aggregates, &args, i, 1).map_err(|m| self.keyed.fail(m).at(Some(input.origins[i])).in_row(Some(i)))?;
                let bytes = serde_json::to_vec(&state).expect("window state serialises");
                self.keyed.state.map_put(self.id, &key, &store::encode(&b), &bytes).map_err(|e| self.keyed.fail(e))?;
                self.keyed.timers.register(Domain::Event, b.max_timestamp(), &key);
            }
            if !any {
                self.late += 1;
                if self.late_logged.is_none_or(|t| t.elapsed().as_secs() >= 1) {
                    self.late_logged = Some(Instant::now());
                    tracing::warn!(
                        operator = self.keyed.node,
                        task = self.keyed.task,
                        "dropped {} late rows so far: their windows had fired (event time {ts}, watermark {})",
                        self.late,
                        self.watermark
                    );
                }
            }
        }
        Ok(())
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Emitter) -> Result<(), OperatorError> {
        self.watermark = self.watermark.max(watermark);
        self.keyed.watermark = self.watermark;
        self.fire(watermark, out)
    }

    /// End of input: every window fires.
    fn finish(&mut self, out: &mut Emitter) -> Result<(), OperatorError> {
        self.on_watermark(i64::MAX, out)
    }

    fn snapshot(&mut self, dir: &std::path::Path) -> Result<Option<SnapshotWriter>, OperatorError> {
        self.keyed.snapshot(dir).map(Some)
    }
}
