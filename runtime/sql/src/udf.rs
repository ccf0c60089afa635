//! User-defined scalar functions: `CREATE FUNCTION name AS 'plugin'` binds a
//! function of a component (`weir:function/scalar-function@0.1.0`, written in
//! any language) for the script's queries. This crate sees functions through
//! [`FunctionSource`], which the binary implements over its Wasm host (so
//! the SQL crates do not depend on wasmtime): the planner reads each
//! function's declared types from it, and each task of a `sql-calc` that
//! calls a function gets its own instance, called once per batch over whole
//! columns (Arrow arrays in, Arrow arrays out).

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMillisecondType};
use arrow_array::{Array, ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray, TimestampMillisecondArray};
pub use arrow_schema::DataType;
use arrow_schema::TimeUnit;
use datafusion_common::{exec_err, Result};
use datafusion_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};
use serde::{Deserialize, Serialize};
use weir_engine::TaskContext;

/// A column of a batch, as the function world passes it.
#[derive(Clone, Debug, PartialEq)]
pub enum Column {
    Boolean(Vec<Option<bool>>),
    Bigint(Vec<Option<i64>>),
    Double(Vec<Option<f64>>),
    Varchar(Vec<Option<String>>),
    /// Milliseconds since the epoch.
    Timestamp(Vec<Option<i64>>),
}

/// A function a component declares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionSignature {
    pub name: String,
    pub args: Vec<DataType>,
    pub returns: DataType,
}

/// A plugin's functions, as its source found it.
#[derive(Clone, Debug)]
pub struct Described {
    /// The reference to write in the job's spec (a file's absolute path, or
    /// `name@version` of a node's registry).
    pub reference: String,
    /// The plugin's name and version, for messages.
    pub plugin: String,
    /// sha256 of the component, hex.
    pub digest: String,
    pub functions: Vec<FunctionSignature>,
}

/// Why a function could not be loaded or called.
#[derive(Debug, thiserror::Error)]
pub enum FunctionError {
    #[error("cannot load function plugin '{reference}': {source}")]
    Load {
        reference: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(transparent)]
    Call(Box<dyn std::error::Error + Send + Sync>),
    #[error("this binary loads no function plugins")]
    NoSource,
}

/// Where function plugins come from (the binary's Wasm host).
pub trait FunctionSource: Send + Sync {
    /// The functions of plugin `reference`.
    fn describe(&self, reference: &str) -> Result<Described, FunctionError>;
    /// An instance of plugin `reference` for one task.
    fn instance(&self, reference: &str, ctx: &TaskContext) -> Result<Box<dyn FunctionCaller>, FunctionError>;
}

/// One task's instance of a function plugin.
pub trait FunctionCaller: Send {
    /// Call `function` over a batch of `rows` rows.
    fn call(&mut self, function: &str, args: Vec<Column>, rows: u32) -> Result<Column, FunctionError>;
}

/// The function source of a build, in its [`weir_spec::Extensions`].
#[derive(Clone)]
pub struct Functions(pub Arc<dyn FunctionSource>);

/// A function a calc calls, as its config names it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionRef {
    /// Its name in the calc's expressions.
    pub name: String,
    /// The plugin (a `.wasm` path or `name@version`); empty when it is the
    /// calc's `plugin`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub plugin: String,
    /// The function's name in the component.
    pub function: String,
    /// The types it was planned with (Arrow type text).
    #[serde(with = "types_text")]
    pub args: Vec<DataType>,
    #[serde(with = "crate::expr::type_text")]
    pub returns: DataType,
}

mod types_text {
    use arrow_schema::DataType;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &[DataType], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(t.iter().map(|t| t.to_string()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<DataType>, D::Error> {
        let texts = Vec::<String>::deserialize(d)?;
        texts.iter().map(|t| t.parse().map_err(|e| serde::de::Error::custom(format!("'{t}' is not an Arrow type: {e}")))).collect()
    }
}

/// The SQL types a function may take and return, as Arrow types.
pub fn sql_types() -> [DataType; 5] {
    [DataType::Boolean, DataType::Int64, DataType::Float64, DataType::Utf8, DataType::Timestamp(TimeUnit::Millisecond, None)]
}

/// A function of a plugin as DataFusion sees it: planned with its declared
/// types; called through its task's instance (none while planning).
pub struct WasmUdf {
    pub func: FunctionRef,
    signature: Signature,
    caller: Option<Arc<Mutex<Box<dyn FunctionCaller>>>>,
}

impl fmt::Debug for WasmUdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WasmUdf({} = {}#{})", self.func.name, self.func.plugin, self.func.function)
    }
}

impl PartialEq for WasmUdf {
    fn eq(&self, other: &Self) -> bool {
        self.func == other.func
    }
}

impl Eq for WasmUdf {}

impl Hash for WasmUdf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (&self.func.name, &self.func.plugin, &self.func.function).hash(state)
    }
}

impl WasmUdf {
    /// `func` as a DataFusion function, called through `caller` (none: for
    /// planning only). Volatile: never evaluated while planning, nor merged.
    pub fn udf(func: FunctionRef, caller: Option<Arc<Mutex<Box<dyn FunctionCaller>>>>) -> Arc<ScalarUDF> {
        let signature = Signature::exact(func.args.clone(), Volatility::Volatile);
        Arc::new(ScalarUDF::new_from_impl(WasmUdf { func, signature, caller }))
    }
}

impl ScalarUDFImpl for WasmUdf {
    fn name(&self) -> &str {
        &self.func.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(self.func.returns.clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let Some(caller) = &self.caller else {
            return exec_err!("function {} is called only when the job runs", self.func.name);
        };
        let rows = args.number_rows;
        let columns = args
            .args
            .into_iter()
            .zip(&self.func.args)
            .map(|(a, t)| {
                let a = a.into_array(rows)?;
                let a = if a.data_type() == t { a } else { arrow_cast::cast(&a, t)? };
                Ok(to_column(&a))
            })
            .collect::<Result<Vec<_>>>()?;
        let out = caller.lock().unwrap_or_else(|p| p.into_inner()).call(&self.func.function, columns, rows as u32);
        let out = match out {
            Ok(c) => c,
            Err(e) => return exec_err!("function {} ({}): {e}", self.func.name, self.func.plugin),
        };
        let array = from_column(out);
        if array.data_type() != &self.func.returns {
            return exec_err!(
                "function {} ({}) returned {} values, but it declares {}",
                self.func.name,
                self.func.plugin,
                array.data_type(),
                self.func.returns
            );
        }
        Ok(ColumnarValue::Array(array))
    }
}

/// An Arrow array (of one of [`sql_types`]) as a column.
fn to_column(a: &ArrayRef) -> Column {
    let opt = |i: usize| a.is_valid(i);
    match a.data_type() {
        DataType::Boolean => {
            let b = a.as_boolean();
            Column::Boolean((0..a.len()).map(|i| opt(i).then(|| b.value(i))).collect())
        }
        DataType::Int64 => {
            let v = a.as_primitive::<Int64Type>();
            Column::Bigint((0..a.len()).map(|i| opt(i).then(|| v.value(i))).collect())
        }
        DataType::Float64 => {
            let v = a.as_primitive::<Float64Type>();
            Column::Double((0..a.len()).map(|i| opt(i).then(|| v.value(i))).collect())
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            let v = a.as_primitive::<TimestampMillisecondType>();
            Column::Timestamp((0..a.len()).map(|i| opt(i).then(|| v.value(i))).collect())
        }
        _ => {
            let s = a.as_string::<i32>();
            Column::Varchar((0..a.len()).map(|i| opt(i).then(|| s.value(i).to_string())).collect())
        }
    }
}

fn from_column(c: Column) -> ArrayRef {
    match c {
        Column::Boolean(v) => Arc::new(BooleanArray::from(v)),
        Column::Bigint(v) => Arc::new(Int64Array::from(v)),
        Column::Double(v) => Arc::new(Float64Array::from(v)),
        Column::Varchar(v) => Arc::new(StringArray::from(v)),
        Column::Timestamp(v) => Arc::new(TimestampMillisecondArray::from(v)),
    }
}

/// The functions `refs` of a calc, each through its task's instance of its
/// plugin (one instance per plugin, shared by its functions).
pub fn instances(refs: &[FunctionRef], source: &dyn FunctionSource, ctx: &TaskContext) -> Result<Vec<Arc<ScalarUDF>>, FunctionError> {
    let mut by_plugin: Vec<(String, Arc<Mutex<Box<dyn FunctionCaller>>>)> = Vec::new();
    let mut out = Vec::with_capacity(refs.len());
    for f in refs {
        let caller = match by_plugin.iter().find(|(p, _)| *p == f.plugin) {
            Some((_, c)) => c.clone(),
            None => {
                let c = Arc::new(Mutex::new(source.instance(&f.plugin, ctx)?));
                by_plugin.push((f.plugin.clone(), c.clone()));
                c
            }
        };
        out.push(WasmUdf::udf(f.clone(), Some(caller)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_round_trip_through_arrow_with_nulls() {
        let cols = [
            Column::Boolean(vec![Some(true), None]),
            Column::Bigint(vec![Some(-3), None]),
            Column::Double(vec![None, Some(1.5)]),
            Column::Varchar(vec![Some("é".into()), None]),
            Column::Timestamp(vec![Some(1_767_225_600_000), None]),
        ];
        for (c, t) in cols.into_iter().zip(sql_types()) {
            let a = from_column(c.clone());
            assert_eq!(a.data_type(), &t);
            assert_eq!(to_column(&a), c);
        }
    }
}
