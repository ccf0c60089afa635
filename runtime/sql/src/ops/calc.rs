//! `type: sql-calc`: a SQL projection and filter, vectorized: a batch's JSON
//! values decoded into Arrow with the input columns, the filter and every
//! projection evaluated by DataFusion's physical expressions over the whole
//! batch, the result encoded back as JSON objects. Rows keep their event
//! time, origin and kind (a changelog row is filtered and projected like any
//! other); the record key is set to the `key` columns, as a JSON object,
//! when the config names them (group keys before an aggregation, a sink's
//! primary key).

use std::sync::Arc;

use arrow_array::{Array, BooleanArray};
use arrow_schema::SchemaRef;
use datafusion_physical_expr::PhysicalExpr;
use serde::{Deserialize, Serialize};
use weir_engine::{Emitter, Operator, OperatorError, OperatorFactory, RecordBatch, TaskContext};
use weir_spec::{BuildContext, BuildError, BuiltOperator, Changelog, Check, Logic, OperatorKind, SpecError};

use crate::expr::{schema, ColumnDef};
use crate::udf::{FunctionRef, FunctionSource, Functions, WasmUdf};
use crate::ops::json;

/// The config of a `sql-calc` entry (written by the planner).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalcConfig {
    /// The columns of its input rows.
    #[serde(rename = "columns")]
    pub input: Vec<ColumnDef>,
    /// Rows for which this SQL expression is not true are dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// One SQL expression per output column.
    pub select: Vec<String>,
    /// The output columns.
    pub output: Vec<ColumnDef>,
    /// Output columns whose values, as a JSON object, become the record key
    /// (none: the empty key, one group of every row); without it, rows keep
    /// their input's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Vec<usize>>,
    /// The user-defined functions its expressions call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub functions: Vec<FunctionRef>,
    /// The plugin of its functions when they all come from one (theirs say
    /// none): the plugin a hot swap replaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
}

impl CalcConfig {
    /// Its functions, each with its plugin.
    pub fn resolved_functions(&self) -> Vec<FunctionRef> {
        let of = |f: &FunctionRef| if f.plugin.is_empty() { self.plugin.clone().unwrap_or_default() } else { f.plugin.clone() };
        self.functions.iter().map(|f| FunctionRef { plugin: of(f), ..f.clone() }).collect()
    }
}

/// A calc's functions, checked against what their plugins declare now.
struct Checked {
    source: Option<Arc<dyn FunctionSource>>,
    refs: Vec<FunctionRef>,
    /// The plugin it runs, for a calc of one plugin's functions.
    logic: Option<Logic>,
}

/// Its functions still are what the job was planned with.
fn functions(c: &CalcConfig, cx: &BuildContext<'_>) -> Result<Checked, BuildError> {
    let fail = |e: String| BuildError::new(format!("sql-calc '{}': {e}", cx.node));
    let refs = c.resolved_functions();
    let source = match (refs.is_empty(), cx.env.extensions.get::<Functions>()) {
        (true, _) => return Ok(Checked { source: None, refs, logic: None }),
        (false, Some(Functions(s))) => s.clone(),
        (false, None) => return Err(fail("it calls user-defined functions, and this binary loads no function plugins".into())),
    };
    let mut logic = None;
    // Each plugin loaded and asked once, however many of its functions are called.
    let mut described: Vec<crate::udf::Described> = Vec::new();
    for f in &refs {
        let d = match described.iter().position(|d| d.reference == f.plugin) {
            Some(i) => &described[i],
            None => {
                described.push(source.describe(&f.plugin).map_err(|e| fail(e.to_string()))?);
                described.last().expect("just pushed")
            }
        };
        match d.functions.iter().find(|s| s.name.eq_ignore_ascii_case(&f.function)) {
            Some(s) if s.args == f.args && s.returns == f.returns => {}
            Some(s) => {
                return Err(fail(format!(
                    "function {} of plugin {} takes ({}) and returns {}; the job was planned with ({}) returning {}",
                    f.function,
                    d.plugin,
                    types(&s.args),
                    s.returns,
                    types(&f.args),
                    f.returns
                )))
            }
            None => return Err(fail(format!("plugin {} has no function {} (the job calls it as {})", d.plugin, f.function, f.name))),
        }
        if c.plugin.is_some() {
            logic = Some(Logic { label: d.plugin.clone(), digest: d.digest.clone() });
        }
    }
    Ok(Checked { source: Some(source), refs, logic })
}

/// A calc over new instances of `refs` for task `ctx`.
fn fresh(c: Arc<CalcConfig>, refs: Vec<FunctionRef>, source: Arc<dyn FunctionSource>, ctx: TaskContext) -> Fresh {
    Arc::new(move || {
        let udfs = crate::udf::instances(&refs, source.as_ref(), &ctx).map_err(|e| format!("(task {}): {e}", ctx.task_index))?;
        Calc::new(&c, &udfs)
    })
}

/// What a calc swaps to: its config with the new plugin.
struct CalcSwap {
    config: Arc<CalcConfig>,
    refs: Vec<FunctionRef>,
    source: Arc<dyn FunctionSource>,
}

/// The `sql-calc` operator kind.
pub struct SqlCalc;

impl OperatorKind for SqlCalc {
    type Config = CalcConfig;
    const TYPE: &'static str = "sql-calc";
    const PLUGIN_FIELD: Option<&'static str> = Some("plugin");

    fn check(&self, c: &CalcConfig, cx: &Check<'_>) -> Result<(), SpecError> {
        if c.select.len() != c.output.len() {
            return Err(cx.error("select", format!("{} expressions for {} output columns", c.select.len(), c.output.len())));
        }
        if let Some(k) = c.key.iter().flatten().find(|&&k| k >= c.output.len()) {
            return Err(cx.error("key", format!("column {k} of {} output columns", c.output.len())));
        }
        if c.plugin.is_none() && c.functions.iter().any(|f| f.plugin.is_empty()) {
            return Err(cx.error("functions", "a function without its plugin, and no `plugin` for the calc's functions"));
        }
        Ok(())
    }

    fn build(&self, c: CalcConfig, cx: &BuildContext<'_>) -> Result<BuiltOperator, BuildError> {
        let checked = functions(&c, cx)?;
        let planning: Vec<_> = checked.refs.iter().map(|f| WasmUdf::udf(f.clone(), None)).collect();
        let calc = Arc::new(Calc::new(&c, &planning).map_err(|e| BuildError::new(format!("sql-calc '{}': {e}", cx.node)))?);
        let Checked { source, refs, logic } = checked;
        let c = Arc::new(c);
        let factory: Arc<dyn OperatorFactory> = Arc::new(move |ctx: &TaskContext| {
            // A task of a calc calling functions plans its own, over its instances.
            let (calc, fresh) = match &source {
                None => (calc.clone(), None),
                Some(source) => {
                    let fresh = fresh(c.clone(), refs.clone(), source.clone(), ctx.clone());
                    let calc = fresh().map_err(|e| OperatorError::new(format!("SQL operator '{}': {e}", ctx.node)))?;
                    (Arc::new(calc), Some(fresh))
                }
            };
            Ok(Box::new(CalcTask { calc, node: ctx.node.to_string(), fresh, ctx: ctx.clone() }) as Box<dyn Operator>)
        });
        Ok(BuiltOperator { factory, logic, state_shape: None })
    }

    /// Hot swap of the plugin of its functions (`plugin` replaced): the new
    /// version must declare every function the calc calls with the types it
    /// was planned with, and is tried out (instantiated, the expressions
    /// planned over it) before anything changes.
    fn replacement(&self, c: CalcConfig, cx: &BuildContext<'_>) -> Result<weir_engine::Replacement, BuildError> {
        if c.plugin.is_none() {
            return Err(BuildError::new(format!("sql-calc '{}' calls no functions of one plugin, so it has no plugin to swap", cx.node)));
        }
        let Checked { source, refs, .. } = functions(&c, cx)?;
        let source = source.expect("a calc with a plugin calls functions");
        let trial = TaskContext::new(&cx.env.pipeline, cx.node, 0, cx.parallelism.max(1));
        fresh(Arc::new(c.clone()), refs.clone(), source.clone(), trial)().map_err(|e| BuildError::new(format!("sql-calc '{}': {e}", cx.node)))?;
        Ok(Arc::new(CalcSwap { config: Arc::new(c), refs, source }))
    }

    /// Rows keep their kinds.
    fn changelog(&self, _c: &CalcConfig, input: Changelog) -> Result<Changelog, String> {
        Ok(input)
    }

    fn cannot_isolate(&self, _c: &CalcConfig) -> Option<String> {
        None
    }
}

/// A calc's planned expressions.
pub struct Calc {
    input: SchemaRef,
    filter: Option<Arc<dyn PhysicalExpr>>,
    select: Vec<Arc<dyn PhysicalExpr>>,
    output: SchemaRef,
    key: Option<Vec<usize>>,
}

impl Calc {
    pub fn new(c: &CalcConfig, functions: &[Arc<datafusion_expr::ScalarUDF>]) -> Result<Calc, String> {
        let input = schema(&c.input);
        let planned = crate::expr::plan(&input, c.filter.as_deref(), &c.select, functions).map_err(|e| crate::plan::df_message(&e))?;
        Ok(Calc { input, filter: planned.filter, select: planned.select, output: schema(&c.output), key: c.key.clone() })
    }

    /// Run over `input`, into `out`.
    pub fn run(&self, input: &RecordBatch, out: &mut RecordBatch) -> Result<(), (Option<usize>, String)> {
        if input.is_empty() {
            return Ok(());
        }
        let values: Vec<&[u8]> = (0..input.len()).map(|i| input.value(i)).collect();
        let batch = json::decode(&self.input, &values).map_err(|(row, m)| (Some(row), m))?;
        let (batch, rows): (_, Vec<usize>) = match &self.filter {
            Some(f) => {
                let mask = f.evaluate(&batch).and_then(|v| v.into_array(batch.num_rows())).map_err(|e| (None, format!("WHERE: {e}")))?;
                let mask = mask.as_any().downcast_ref::<BooleanArray>().ok_or((None, "WHERE is not a boolean".to_string()))?;
                let rows = (0..mask.len()).filter(|&i| mask.is_valid(i) && mask.value(i)).collect();
                let kept = arrow_select::filter::filter_record_batch(&batch, mask).map_err(|e| (None, e.to_string()))?;
                (kept, rows)
            }
            None => {
                let n = batch.num_rows();
                (batch, (0..n).collect())
            }
        };
        if rows.is_empty() {
            return Ok(());
        }
        let arrays = self
            .select
            .iter()
            .map(|e| e.evaluate(&batch).and_then(|v| v.into_array(batch.num_rows())))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| (None, e.to_string()))?;
        let result = json::batch_of(&self.output, arrays).map_err(|e| (None, e.to_string()))?;
        let encoded = json::encode(&result).map_err(|e| (None, e.to_string()))?;
        let keys = match self.key.as_deref() {
            None => None,
            Some([]) => Some(vec![Vec::new(); result.num_rows()]),
            Some(key) => Some(json::encode(&json::project(&result, key).map_err(|e| (None, e.to_string()))?).map_err(|e| (None, e.to_string()))?),
        };
        for (i, (&row, value)) in rows.iter().zip(&encoded).enumerate() {
            let r = input.row(row);
            let key: &[u8] = match &keys {
                Some(k) => &k[i],
                None => r.key,
            };
            out.push_kind(key, value, r.timestamp, r.origin, input.kind(row));
        }
        Ok(())
    }
}

fn types(t: &[arrow_schema::DataType]) -> String {
    t.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
}

/// A calc over new instances of its functions.
type Fresh = Arc<dyn Fn() -> Result<Calc, String> + Send + Sync>;

struct CalcTask {
    calc: Arc<Calc>,
    node: String,
    /// Set when it calls functions: a batch they failed on is run again row
    /// by row over new instances (the failed call may have left its instance
    /// trapped), to name the row.
    fresh: Option<Fresh>,
    ctx: TaskContext,
}

impl CalcTask {
    /// The first row of `input` that fails on its own, and why.
    fn culprit(&self, input: &RecordBatch) -> Option<(usize, String)> {
        let calc = (self.fresh.as_ref()?)().ok()?;
        for i in 0..input.len() {
            let r = input.row(i);
            let mut one = RecordBatch::default();
            one.push_kind(r.key, r.value, r.timestamp, r.origin, input.kind(i));
            if let Err((_, m)) = calc.run(&one, &mut RecordBatch::default()) {
                return Some((i, m));
            }
        }
        None
    }
}

impl Operator for CalcTask {
    fn process(&mut self, input: RecordBatch, out: &mut Emitter) -> Result<(), OperatorError> {
        let main = out.main();
        self.calc.run(&input, main).map_err(|(row, m)| {
            let (row, m) = match row {
                None if self.fresh.is_some() && input.len() > 1 => self.culprit(&input).map_or((None, m), |(r, m)| (Some(r), m)),
                row => (row, m),
            };
            let at = row.and_then(|r| input.origins.get(r)).or(input.origins.first()).copied();
            OperatorError::new(format!("SQL operator '{}': {m}", self.node)).at(at).in_row(row)
        })
    }

    fn isolate_failures(&mut self) -> bool {
        true
    }

    /// Go on over the new plugin's functions (new instances for this task).
    fn swap(&mut self, replacement: &(dyn std::any::Any + Send + Sync)) -> Result<(), OperatorError> {
        let Some(s) = replacement.downcast_ref::<CalcSwap>() else {
            return Err(OperatorError::new(format!("SQL operator '{}': a swap of a sql-calc takes a sql-calc's plugin", self.node)));
        };
        let fresh = fresh(s.config.clone(), s.refs.clone(), s.source.clone(), self.ctx.clone());
        let calc = fresh().map_err(|e| OperatorError::new(format!("SQL operator '{}': {e}", self.node)))?;
        self.calc = Arc::new(calc);
        self.fresh = Some(fresh);
        Ok(())
    }

    /// Nothing to undo (no state); a function's instance that trapped is
    /// replaced, so the batch can run again without the failing row.
    fn undo(&mut self) -> Result<(), OperatorError> {
        if let Some(fresh) = &self.fresh {
            self.calc = Arc::new(fresh().map_err(|e| OperatorError::new(format!("SQL operator '{}': {e}", self.node)))?);
        }
        Ok(())
    }
}
