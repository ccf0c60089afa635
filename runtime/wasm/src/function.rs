//! Scalar SQL functions as components (`weir:function/scalar-function@0.1.0`):
//! an instance per task of the operator calling them, sandboxed as operator
//! guests are (WASI without capabilities, the memory limit, a CPU deadline
//! per call, bounded logs), called once per batch over whole columns.

use std::sync::Arc;

use wasmtime::Store;
use weir_engine::TaskContext;

use crate::bindings::function::functions;
use crate::bindings::function::ScalarFunction;
use crate::error::Caller;
use crate::host::{arm, HostState};
use crate::{Limits, OperatorSettings, Plugin, PluginMeta, WasmError};

pub use functions::{Column, Signature, SqlType};

/// One task's instance of a function component.
pub struct FunctionInstance {
    store: Store<HostState>,
    bindings: ScalarFunction,
    meta: Arc<PluginMeta>,
    operator: String,
    task: u32,
    /// A call trapped: the instance is not called again.
    broken: bool,
}

impl Plugin {
    /// An instance of this function component for task `ctx` of an operator.
    pub fn function_instance(&self, ctx: &TaskContext, limits: &Limits) -> Result<FunctionInstance, WasmError> {
        let plugin = self.meta.to_string();
        let Some(pre) = &self.function_pre else {
            return Err(WasmError::WrongWorld {
                plugin,
                operator: ctx.node.to_string(),
                found: self.meta.world,
                needs: format!(
                    "a SQL function is a component of {} (it exports the `functions` interface: weir_sdk::export_functions! in Rust)",
                    crate::FUNCTION_WORLD
                ),
            });
        };
        let settings = OperatorSettings { limits: limits.clone(), ..OperatorSettings::default() };
        let groups = weir_state::KeyGroups::of_task(ctx.task_index, ctx.parallelism, ctx.max_parallelism);
        let mut store = self.new_store(ctx, &settings, Box::new(weir_state::HeapBackend::new(groups)));
        arm(&mut store);
        let bindings = pre
            .instantiate(&mut store)
            .map_err(|e| WasmError::Instantiate { plugin, operator: ctx.node.to_string(), message: format!("{e:#}") })?;
        Ok(FunctionInstance { store, bindings, meta: self.meta.clone(), operator: ctx.node.to_string(), task: ctx.task_index, broken: false })
    }
}

impl FunctionInstance {
    pub fn plugin(&self) -> &PluginMeta {
        &self.meta
    }

    fn caller(&self) -> (String, String, u32) {
        (self.meta.to_string(), self.operator.clone(), self.task)
    }

    fn failed(&mut self, e: wasmtime::Error, call: &str) -> WasmError {
        self.broken = true;
        let (plugin, operator, task) = self.caller();
        let err = Caller { plugin: &plugin, operator: &operator, task }.failed(self.store.data_mut(), e, call).0;
        // What it wrote to stderr just before (a panic's message).
        let said = self.store.data().log.take_recent();
        match err {
            WasmError::Trap { plugin, operator, task, panic, message } if !said.is_empty() => {
                let panic = format!("{panic} (its last words on stderr: {})", said.join(" | "));
                WasmError::Trap { plugin, operator, task, panic, message }
            }
            err => err,
        }
    }

    /// Refuse a call after one trapped; `call` says which (built only then).
    fn check(&self, call: impl FnOnce() -> String) -> Result<(), WasmError> {
        if self.broken {
            let (plugin, operator, task) = self.caller();
            return Err(WasmError::Guest { plugin, operator, task, what: format!("cannot {}", call()), message: "an earlier call trapped".into() });
        }
        Ok(())
    }

    /// The functions the component offers.
    pub fn describe(&mut self) -> Result<Vec<Signature>, WasmError> {
        self.check(|| "describe its functions".into())?;
        arm(&mut self.store);
        let i = self.bindings.weir_function_functions();
        i.call_describe(&mut self.store).map_err(|e| self.failed(e, "describe"))
    }

    /// Call `name` over a batch of `rows` rows; the result is checked to be
    /// `rows` long. Names and messages are built on failures only (this is
    /// once per batch).
    pub fn call(&mut self, name: &str, args: &[Column], rows: u32) -> Result<Column, WasmError> {
        self.check(|| format!("call {name}"))?;
        arm(&mut self.store);
        self.store.data().log.clear_recent();
        let i = self.bindings.weir_function_functions();
        let out = match i.call_call(&mut self.store, name, args, rows) {
            Ok(out) => out,
            Err(e) => return Err(self.failed(e, &format!("call of {name}"))),
        };
        let column = match out {
            Ok(c) => c,
            Err(m) => {
                let (plugin, operator, task) = self.caller();
                let limit = self.store.data().limits.error_message;
                return Err(Caller { plugin: &plugin, operator: &operator, task }.guest_error(&format!("call of {name}"), m, limit));
            }
        };
        let n = match &column {
            Column::Boolean(v) => v.len(),
            Column::Bigint(v) | Column::Timestamp(v) => v.len(),
            Column::Double(v) => v.len(),
            Column::Varchar(v) => v.len(),
        };
        if n != rows as usize {
            let (plugin, operator, task) = self.caller();
            return Err(WasmError::Contract { plugin, operator, task, message: format!("{name} returned {n} values for a batch of {rows} rows") });
        }
        Ok(column)
    }
}
