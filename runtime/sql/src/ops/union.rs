//! `type: sql-union`: `UNION ALL`. Its inputs are the union's branches, each
//! through a `sql-calc` that gives its rows the union's column names and
//! types; it passes every batch on as it came (no decoding), rows keeping
//! their keys, kinds and origins.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use weir_engine::{Emitter, Operator, OperatorError, OperatorFactory, RecordBatch, TaskContext};
use weir_spec::{BuildContext, BuildError, BuiltOperator, Changelog, Check, OperatorKind, SpecError};

/// The config of a `sql-union` entry: nothing of its own.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnionConfig {}

/// The `sql-union` operator kind.
pub struct SqlUnion;

impl OperatorKind for SqlUnion {
    type Config = UnionConfig;
    const TYPE: &'static str = "sql-union";

    fn check(&self, _c: &UnionConfig, _cx: &Check<'_>) -> Result<(), SpecError> {
        Ok(())
    }

    fn build(&self, _c: UnionConfig, _cx: &BuildContext<'_>) -> Result<BuiltOperator, BuildError> {
        let factory: Arc<dyn OperatorFactory> = Arc::new(|_: &TaskContext| Ok(Box::new(UnionTask) as Box<dyn Operator>));
        Ok(BuiltOperator { factory, logic: None, state_shape: None })
    }

    /// Rows keep their kinds (the inputs' weakest promise).
    fn changelog(&self, _c: &UnionConfig, input: Changelog) -> Result<Changelog, String> {
        Ok(input)
    }
}

struct UnionTask;

impl Operator for UnionTask {
    fn process(&mut self, input: RecordBatch, out: &mut Emitter) -> Result<(), OperatorError> {
        out.main().append(&input);
        Ok(())
    }
}
