//! SQL functions as Wasm components: weir-sql's [`FunctionSource`] over the
//! Wasm host's plugin source (`.wasm` files for `weir sql`, a node's
//! registry), so that the SQL crates need no wasmtime. Each task calling a
//! function gets its own sandboxed instance, with the default limits of an
//! operator's plugin (memory, a CPU deadline per call, bounded logs).

use std::path::PathBuf;
use std::sync::Arc;

use weir_engine::TaskContext;
use weir_sql::udf::{Column, Described, FunctionCaller, FunctionError, FunctionSignature, FunctionSource};
use weir_wasm::{FunctionColumn, FunctionInstance, Limits, PluginSource, SqlType};

pub struct WasmFunctions {
    plugins: Arc<dyn PluginSource>,
    /// Relative `.wasm` paths are taken from here (the script's directory).
    base: Option<PathBuf>,
    limits: Limits,
}

impl WasmFunctions {
    pub fn new(plugins: Arc<dyn PluginSource>, base: Option<PathBuf>) -> Self {
        WasmFunctions { plugins, base, limits: Limits::default() }
    }

    /// A `.wasm` reference relative to the base; a registry's `name@version` as it is.
    fn reference(&self, reference: &str) -> String {
        match &self.base {
            Some(b) if reference.ends_with(".wasm") && !reference.starts_with('/') => b.join(reference).display().to_string(),
            _ => reference.to_string(),
        }
    }

    fn load(&self, reference: &str, ctx: &TaskContext) -> Result<FunctionInstance, FunctionError> {
        let fail = |e: weir_wasm::WasmError| FunctionError::Load { reference: reference.to_string(), source: Box::new(e) };
        let plugin = self.plugins.load(reference).map_err(fail)?;
        plugin.function_instance(ctx, &self.limits).map_err(fail)
    }
}

fn sql_type(t: SqlType) -> weir_sql::udf::DataType {
    let [boolean, bigint, double, varchar, timestamp] = weir_sql::udf::sql_types();
    match t {
        SqlType::Boolean => boolean,
        SqlType::Bigint => bigint,
        SqlType::Double => double,
        SqlType::Varchar => varchar,
        SqlType::Timestamp => timestamp,
    }
}

impl FunctionSource for WasmFunctions {
    fn describe(&self, reference: &str) -> Result<Described, FunctionError> {
        let reference = self.reference(reference);
        let mut instance = self.load(&reference, &TaskContext::new("sql", "plan", 0, 1))?;
        let functions = instance.describe().map_err(|e| FunctionError::Load { reference: reference.clone(), source: Box::new(e) })?;
        let functions = functions
            .into_iter()
            .map(|s| FunctionSignature { name: s.name, args: s.args.into_iter().map(sql_type).collect(), returns: sql_type(s.returns) })
            .collect();
        Ok(Described { plugin: instance.plugin().to_string(), digest: instance.plugin().digest.clone(), reference, functions })
    }

    fn instance(&self, reference: &str, ctx: &TaskContext) -> Result<Box<dyn FunctionCaller>, FunctionError> {
        let reference = self.reference(reference);
        Ok(Box::new(Caller(self.load(&reference, ctx)?)))
    }
}

struct Caller(FunctionInstance);

impl FunctionCaller for Caller {
    fn call(&mut self, function: &str, args: Vec<Column>, rows: u32) -> Result<Column, FunctionError> {
        let args: Vec<FunctionColumn> = args
            .into_iter()
            .map(|c| match c {
                Column::Boolean(v) => FunctionColumn::Boolean(v),
                Column::Bigint(v) => FunctionColumn::Bigint(v),
                Column::Double(v) => FunctionColumn::Double(v),
                Column::Varchar(v) => FunctionColumn::Varchar(v),
                Column::Timestamp(v) => FunctionColumn::Timestamp(v),
            })
            .collect();
        let out = self.0.call(function, &args, rows).map_err(|e| FunctionError::Call(Box::new(e)))?;
        Ok(match out {
            FunctionColumn::Boolean(v) => Column::Boolean(v),
            FunctionColumn::Bigint(v) => Column::Bigint(v),
            FunctionColumn::Double(v) => Column::Double(v),
            FunctionColumn::Varchar(v) => Column::Varchar(v),
            FunctionColumn::Timestamp(v) => Column::Timestamp(v),
        })
    }
}
