//! `type: changelog-normalize`: turns changes by key into a full changelog,
//! as Flink's ChangelogNormalize does for upsert sources. It keeps the last
//! row of each key (keyed by the operator's `key_by`) in keyed state and, per
//! input row:
//!
//! * +I or +U of a key without a row: +I of the new row;
//! * +I or +U of a key with a row: -U of the stored row, then +U of the new
//!   one (nothing if the new row is byte for byte the stored one);
//! * -U or -D of a key with a row: -D of the *stored* row (an upsert delete
//!   may carry its key only);
//! * -U or -D of a key without a row: nothing.
//!
//! So an upsert changelog (Kafka `format: upsert`) becomes one that every
//! changelog reader takes: each update carries the row it replaces, each
//! delete the row it removes, and deletes of absent keys are dropped. It also
//! reads an append-only stream, as upserts by key (the last record of each key
//! wins).

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use weir_engine::{
    Emitter, Operator, OperatorError, OperatorFactory, RecordBatch, RowKind, SnapshotWriter, TaskContext,
};
use weir_spec::units::Dur;
use weir_spec::{BuildContext, BuildError, BuiltOperator, Changelog, Check, OperatorKind, SpecError};
use weir_state::{KeyGroups, KeyedStateBackend, StateBackendFactory, StateDescriptor, StateError, StateId, StateKind};

/// The config of a `changelog-normalize` entry.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NormalizeConfig {
    /// Forget a key's row when it has not changed for this long (state
    /// TTL): a later change of it is then taken as new (+I). Unset: keys are
    /// kept until deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<Dur>,
}

/// Errors of a normalizing task, naming the operator and task.
#[derive(Debug, thiserror::Error)]
pub enum NormalizeError {
    #[error("keyed state of operator '{operator}' (changelog-normalize, task {task}): {source}")]
    State { operator: String, task: u32, source: StateError },
}

/// The `changelog-normalize` operator kind.
pub struct ChangelogNormalize;

/// The name of its state in snapshots.
const STATE: &str = "changelog-normalize.rows";
/// TTLs a spec may set.
const TTL: (std::time::Duration, std::time::Duration) =
    (std::time::Duration::from_secs(1), std::time::Duration::from_secs(10 * 366 * 24 * 3600));

impl OperatorKind for ChangelogNormalize {
    type Config = NormalizeConfig;
    const TYPE: &'static str = "changelog-normalize";

    fn check(&self, c: &NormalizeConfig, cx: &Check<'_>) -> Result<(), SpecError> {
        if cx.key_by.is_none() {
            return Err(cx.error_at(
                "type",
                "key_by",
                "a changelog-normalize operator needs key_by: the key whose last row it keeps (the table's primary key, e.g. key_by: $.id)",
            ));
        }
        if let Some(t) = c.ttl {
            weir_spec::units::duration_in_range(t.0, TTL.0, TTL.1).map_err(|m| cx.error("ttl", m))?;
        }
        Ok(())
    }

    fn build(&self, c: NormalizeConfig, cx: &BuildContext<'_>) -> Result<BuiltOperator, BuildError> {
        let factory = NormalizeFactory { ttl: c.ttl.map(|t| t.0), state: cx.env.state.clone() };
        Ok(BuiltOperator { factory: Arc::new(factory), logic: None, state_shape: None })
    }

    /// Whatever it reads, it writes a full changelog.
    fn changelog(&self, _c: &NormalizeConfig, _input: Changelog) -> Result<Changelog, String> {
        Ok(Changelog::Retract)
    }
}

struct NormalizeFactory {
    ttl: Option<std::time::Duration>,
    state: Arc<dyn StateBackendFactory>,
}

impl OperatorFactory for NormalizeFactory {
    fn create(&self, ctx: &TaskContext) -> Result<Box<dyn Operator>, OperatorError> {
        let groups = KeyGroups::of_task(ctx.task_index, ctx.parallelism, ctx.max_parallelism);
        let fail = |source| OperatorError::new(NormalizeError::State { operator: ctx.node.to_string(), task: ctx.task_index, source });
        let mut backend = self.state.create(&ctx.node, ctx.task_index, groups).map_err(fail)?;
        if let Some(r) = &ctx.restore {
            backend.restore(&r.files).map_err(fail)?;
        }
        let n = Normalizer::new(backend, self.ttl).map_err(fail)?;
        Ok(Box::new(NormalizeTask { n, operator: ctx.node.to_string(), task: ctx.task_index }))
    }
}

/// The normalizing logic over one task's keyed state, without the engine
/// around it (unit-tested on its own).
pub struct Normalizer {
    state: Box<dyn KeyedStateBackend>,
    rows: StateId,
    /// The stored row of the key being handled.
    scratch: Vec<u8>,
}

impl Normalizer {
    pub fn new(mut state: Box<dyn KeyedStateBackend>, ttl: Option<std::time::Duration>) -> Result<Self, StateError> {
        let rows = state.declare(StateDescriptor { name: STATE.into(), kind: StateKind::Value, ttl })?;
        Ok(Normalizer { state, rows, scratch: Vec::new() })
    }

    /// Normalize `input` into `out`; on an error, the row it concerns.
    pub fn process(&mut self, input: &RecordBatch, out: &mut RecordBatch) -> Result<(), (usize, StateError)> {
        self.state.set_time(weir_engine::now_ms());
        let keys: Vec<&[u8]> = (0..input.len()).map(|i| input.key(i)).collect();
        self.state.prefetch(self.rows, &keys).map_err(|e| (0, e))?;
        for i in 0..input.len() {
            self.row(input, i, out).map_err(|e| (i, e))?;
        }
        Ok(())
    }

    fn row(&mut self, input: &RecordBatch, i: usize, out: &mut RecordBatch) -> Result<(), StateError> {
        let (key, value, r) = (input.key(i), input.value(i), input.row(i));
        self.scratch.clear();
        let had = self.state.value_get_into(self.rows, key, &mut self.scratch)?;
        if input.kind(i).retracts() {
            if had {
                out.push_kind(key, &self.scratch, r.timestamp, r.origin, RowKind::Delete);
                self.state.clear(self.rows, key)?;
            }
            return Ok(());
        }
        if had {
            if self.scratch == value {
                return Ok(());
            }
            out.push_kind(key, &self.scratch, r.timestamp, r.origin, RowKind::UpdateBefore);
            out.push_kind(key, value, r.timestamp, r.origin, RowKind::UpdateAfter);
        } else {
            out.push_kind(key, value, r.timestamp, r.origin, RowKind::Insert);
        }
        self.state.value_set(self.rows, key, value)
    }

    pub fn snapshot(&mut self, dir: &Path) -> Result<SnapshotWriter, StateError> {
        self.state.set_time(weir_engine::now_ms());
        self.state.snapshot(dir)
    }

    /// Keys with a row.
    pub fn len(&mut self) -> Result<usize, StateError> {
        self.state.len(self.rows)
    }

    pub fn is_empty(&mut self) -> Result<bool, StateError> {
        Ok(self.len()? == 0)
    }
}

struct NormalizeTask {
    n: Normalizer,
    operator: String,
    task: u32,
}

impl NormalizeTask {
    fn fail(&self, source: StateError) -> OperatorError {
        OperatorError::new(NormalizeError::State { operator: self.operator.clone(), task: self.task, source })
    }
}

impl Operator for NormalizeTask {
    fn process(&mut self, input: RecordBatch, out: &mut Emitter) -> Result<(), OperatorError> {
        let main = out.main();
        match self.n.process(&input, main) {
            Ok(()) => Ok(()),
            Err((row, e)) => Err(self.fail(e).at(Some(input.row(row).origin)).in_row(Some(row))),
        }
    }

    fn snapshot(&mut self, dir: &Path) -> Result<Option<SnapshotWriter>, OperatorError> {
        self.n.snapshot(dir).map(Some).map_err(|e| self.fail(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_engine::{Origin, NO_TIMESTAMP};
    use weir_state::HeapBackend;

    fn normalizer() -> Normalizer {
        Normalizer::new(Box::new(HeapBackend::new(KeyGroups::all(128))), None).unwrap()
    }

    fn batch(rows: &[(RowKind, &str, &str)]) -> RecordBatch {
        let mut b = RecordBatch::default();
        for (i, (k, key, v)) in rows.iter().enumerate() {
            b.push_kind(key.as_bytes(), v.as_bytes(), NO_TIMESTAMP, Origin::at(i as u64), *k);
        }
        b
    }

    fn rows(b: &RecordBatch) -> Vec<(RowKind, String, String)> {
        (0..b.len())
            .map(|i| (b.kind(i), String::from_utf8_lossy(b.key(i)).into(), String::from_utf8_lossy(b.value(i)).into()))
            .collect()
    }

    fn own(rows: &[(RowKind, &str, &str)]) -> Vec<(RowKind, String, String)> {
        rows.iter().map(|(k, a, b)| (*k, a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn upserts_and_key_only_deletes_become_a_full_changelog() {
        use RowKind::*;
        let mut n = normalizer();
        let mut out = RecordBatch::default();
        n.process(
            &batch(&[
                (UpdateAfter, "1", r#"{"id":1,"v":"a"}"#),
                (UpdateAfter, "2", r#"{"id":2,"v":"x"}"#),
                (UpdateAfter, "1", r#"{"id":1,"v":"b"}"#),
                (UpdateAfter, "1", r#"{"id":1,"v":"b"}"#),
                (Delete, "2", r#"{"id":2}"#),
                (Delete, "3", r#"{"id":3}"#),
                (Insert, "2", r#"{"id":2,"v":"y"}"#),
            ]),
            &mut out,
        )
        .unwrap();
        assert_eq!(
            rows(&out),
            own(&[
                (Insert, "1", r#"{"id":1,"v":"a"}"#),
                (Insert, "2", r#"{"id":2,"v":"x"}"#),
                (UpdateBefore, "1", r#"{"id":1,"v":"a"}"#),
                (UpdateAfter, "1", r#"{"id":1,"v":"b"}"#),
                (Delete, "2", r#"{"id":2,"v":"x"}"#),
                (Insert, "2", r#"{"id":2,"v":"y"}"#),
            ])
        );
        assert_eq!(n.len().unwrap(), 2);
        // Origins follow the input rows that caused them.
        let origins: Vec<u64> = (0..out.len()).map(|i| out.row(i).origin.offset).collect();
        assert_eq!(origins, [0, 1, 2, 2, 4, 6]);
    }

    #[test]
    fn state_survives_a_snapshot_and_restore() {
        use RowKind::*;
        let dir = tempfile::tempdir().unwrap();
        let mut n = normalizer();
        n.process(&batch(&[(Insert, "k", "v1")]), &mut RecordBatch::default()).unwrap();
        let files = n.snapshot(dir.path()).unwrap()().unwrap();
        let restore: Vec<(String, std::path::PathBuf)> = files.into_iter().map(|f| (f.name, f.path)).collect();
        let mut backend: Box<dyn KeyedStateBackend> = Box::new(HeapBackend::new(KeyGroups::all(128)));
        backend.restore(&[restore]).unwrap();
        let mut again = Normalizer::new(backend, None).unwrap();
        let mut out = RecordBatch::default();
        again.process(&batch(&[(UpdateAfter, "k", "v2")]), &mut out).unwrap();
        assert_eq!(rows(&out), own(&[(UpdateBefore, "k", "v1"), (UpdateAfter, "k", "v2")]));
    }
}
