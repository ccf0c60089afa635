//! `type: sql-aggregate`: GROUP BY without a window, as an updating
//! aggregate. Keyed by the group (the record key its input's calc set), it
//! keeps each group's accumulators and the row it last emitted in keyed
//! state, and emits a changelog, once per group and input batch: +I for a new
//! group, -U of the row it last emitted then +U of the new one for a changed
//! group (nothing when the row is the same), -D when a changelog input took
//! the group's last row out. Its readers must apply changes by key (an
//! upsert sink keyed by the group).

use std::collections::HashMap;
use std::sync::Arc;

use weir_engine::{Emitter, Operator, OperatorError, OperatorFactory, Origin, RecordBatch, RowKind, SnapshotWriter, TaskContext};
use weir_spec::{BuildContext, BuildError, BuiltOperator, Changelog, Check, OperatorKind, SpecError};
use weir_state::{StateBackendFactory, StateDescriptor, StateId, StateKind};

pub use crate::ops::agg::{AggFn, AggSpec, AggregateConfig, GroupField};
use crate::ops::agg::{output_row, GroupState};
use crate::ops::json;
use crate::ops::keyed::Keyed;

/// The `sql-aggregate` operator kind.
pub struct SqlAggregate;

/// The name of its state.
const STATE: &str = "sql.groups";

impl OperatorKind for SqlAggregate {
    type Config = AggregateConfig;
    const TYPE: &'static str = "sql-aggregate";

    fn check(&self, c: &AggregateConfig, cx: &Check<'_>) -> Result<(), SpecError> {
        if cx.key_by.is_none() {
            return Err(cx.error_at("type", "key_by", "a sql-aggregate is keyed by its group: key_by: key"));
        }
        if c.window.is_some() {
            return Err(cx.error("window", "a window aggregation is type: sql-window"));
        }
        if c.ttl_ms == Some(0) {
            return Err(cx.error("ttl_ms", "a state TTL is at least a millisecond"));
        }
        c.check().map_err(|m| cx.error("aggregates", m))
    }

    fn build(&self, c: AggregateConfig, cx: &BuildContext<'_>) -> Result<BuiltOperator, BuildError> {
        let cfg = Arc::new(c);
        let state = cx.env.state.clone();
        let shape = serde_json::to_string(&(&cfg.input, &cfg.aggregates)).expect("configs serialise");
        let factory: Arc<dyn OperatorFactory> = Arc::new(AggregateFactory { cfg, state });
        Ok(BuiltOperator { factory, logic: None, state_shape: Some(shape) })
    }

    /// It emits a changelog, whatever it reads.
    fn changelog(&self, _c: &AggregateConfig, _input: Changelog) -> Result<Changelog, String> {
        Ok(Changelog::Retract)
    }
}

struct AggregateFactory {
    cfg: Arc<AggregateConfig>,
    state: Arc<dyn StateBackendFactory>,
}

impl OperatorFactory for AggregateFactory {
    fn create(&self, ctx: &TaskContext) -> Result<Box<dyn Operator>, OperatorError> {
        let mut keyed = Keyed::open(ctx, &self.state)?;
        let id = keyed
            .state
            .declare(StateDescriptor { name: STATE.into(), kind: StateKind::Value, ttl: self.cfg.ttl_ms.map(std::time::Duration::from_millis) })
            .map_err(|e| keyed.fail(e))?;
        let input = crate::expr::schema(&self.cfg.input);
        Ok(Box::new(AggregateTask { cfg: self.cfg.clone(), input, keyed, id }))
    }
}

struct AggregateTask {
    cfg: Arc<AggregateConfig>,
    input: arrow_schema::SchemaRef,
    keyed: Keyed,
    id: StateId,
}

/// A group touched by a batch.
struct Touched {
    state: GroupState,
    timestamp: i64,
    origin: Origin,
}

impl Operator for AggregateTask {
    fn process(&mut self, input: RecordBatch, out: &mut Emitter) -> Result<(), OperatorError> {
        if input.is_empty() {
            return Ok(());
        }
        let values: Vec<&[u8]> = (0..input.len()).map(|i| input.value(i)).collect();
        let batch = json::decode(&self.input, &values)
            .map_err(|(row, m)| self.keyed.fail(m).at(input.origins.get(row).copied()).in_row(Some(row)))?;
        let args = batch.columns();
        self.keyed.state.set_time(weir_engine::now_ms());
        // Each group once per batch, in the order they come.
        let mut order: Vec<Vec<u8>> = Vec::new();
        let mut touched: HashMap<Vec<u8>, Touched> = HashMap::new();
        for i in 0..input.len() {
            let key = input.key(i);
            if !touched.contains_key(key) {
                let stored = self.keyed.state.value_get(self.id, key).map_err(|e| self.keyed.fail(e))?;
                let state = match stored {
                    Some(b) => serde_json::from_slice(&b).map_err(|e| self.keyed.fail(format!("stored group state does not read: {e}")))?,
                    None => GroupState::new(&self.cfg.aggregates),
                };
                order.push(key.to_vec());
                touched.insert(key.to_vec(), Touched { state, timestamp: 0, origin: input.origins[i] });
            }
            let t = touched.get_mut(key).expect("inserted above");
            let sign = if input.kind(i).retracts() { -1 } else { 1 };
            t.state.update(&self.cfg.aggregates, args, i, sign).map_err(|m| self.keyed.fail(m).at(Some(input.origins[i])).in_row(Some(i)))?;
            if t.state.rows < 0 {
                return Err(self.keyed.fail("a changelog took out more rows than went in").at(Some(input.origins[i])).in_row(Some(i)));
            }
            t.timestamp = input.timestamps[i];
            t.origin = input.origins[i];
        }
        let main = out.main();
        for key in order {
            let Touched { mut state, timestamp, origin } = touched.remove(&key).expect("each key once");
            let last = state.last.take();
            if state.rows == 0 {
                if let Some(last) = last {
                    main.push_kind(&key, last.as_bytes(), timestamp, origin, RowKind::Delete);
                }
                self.keyed.state.clear(self.id, &key).map_err(|e| self.keyed.fail(e))?;
                continue;
            }
            let row = output_row(&self.cfg, &key, None, state.results(&self.cfg.aggregates)).map_err(|m| self.keyed.fail(m))?;
            let row = String::from_utf8(row).expect("JSON is UTF-8");
            match &last {
                None => main.push_kind(&key, row.as_bytes(), timestamp, origin, RowKind::Insert),
                Some(l) if *l == row => {}
                Some(l) => {
                    main.push_kind(&key, l.as_bytes(), timestamp, origin, RowKind::UpdateBefore);
                    main.push_kind(&key, row.as_bytes(), timestamp, origin, RowKind::UpdateAfter);
                }
            }
            state.last = Some(row);
            let bytes = serde_json::to_vec(&state).expect("group state serialises");
            self.keyed.state.value_set(self.id, &key, &bytes).map_err(|e| self.keyed.fail(e))?;
        }
        Ok(())
    }

    fn snapshot(&mut self, dir: &std::path::Path) -> Result<Option<SnapshotWriter>, OperatorError> {
        self.keyed.snapshot(dir).map(Some)
    }
}
