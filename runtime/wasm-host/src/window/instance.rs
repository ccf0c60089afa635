//! Setting up a window operator's task: instantiating the window function,
//! restoring windows and timers, opening it; and turning failed guest calls
//! into errors that name plugin, operator, task and input record.

use weir_engine::{Operator, OperatorError, OperatorFactory, Origin, TaskContext};
use weir_state::{KeyGroups, RestoreFiles};

use super::assigner::WindowSpec;
use super::operator::WindowOperator;
use super::store;
use crate::bindings::types;
use crate::engine::Plugin;
use crate::operator::{ticks, OperatorSettings};
use crate::WasmError;

impl Plugin {
    /// Instantiate a window-function plugin for one task of a window operator.
    pub fn instantiate_window(
        &self,
        ctx: &TaskContext,
        settings: &OperatorSettings,
        spec: &WindowSpec,
    ) -> Result<WindowOperator, WasmError> {
        let plugin = self.meta.to_string();
        let operator = ctx.node.to_string();
        let Some(pre) = &self.window_pre else {
            return Err(WasmError::WrongWorld {
                plugin,
                operator,
                found: self.meta.world,
                needs: format!(
                    "operator '{}' has a `window:` block, so it needs a window function: a component exporting the `window` \
                     interface (open, add, merge, get-result) of {}",
                    ctx.node,
                    crate::WINDOW_WORLD
                ),
            });
        };
        if let Some(other) = ctx.side_outputs.iter().find(|s| **s != spec.late_output) {
            return Err(WasmError::Open {
                plugin,
                operator,
                task: ctx.task_index,
                message: format!(
                    "the pipeline reads side output '{other}', but a window operator has one side output: its late output '{}'",
                    spec.late_output
                ),
            });
        }
        let mut store = self.new_store(ctx, settings, self.backend(ctx, settings)?);
        store.set_epoch_deadline(ticks(settings.limits.call_timeout));
        let bindings = pre.instantiate(&mut store).map_err(|e| WasmError::Instantiate {
            plugin: plugin.clone(),
            operator: operator.clone(),
            message: format!("{e:#}"),
        })?;
        let mut op = WindowOperator {
            store,
            bindings,
            spec: spec.clone(),
            windows: 0,
            plugin,
            operator,
            task: ctx.task_index,
            deadline: settings.limits.call_timeout,
            late_port: ctx.side_outputs.iter().position(|s| *s == spec.late_output).map(|p| p + 1),
            late_unread: 0,
            _shared: self.shared.clone(),
        };
        if let Some(r) = &ctx.restore {
            op.restore(&r.files, KeyGroups::of_task(ctx.task_index, ctx.parallelism, ctx.max_parallelism))?;
        }
        op.windows = store::declare(&mut *op.store.data_mut().state).map_err(|e| op.state_error(e.to_string()))?;
        op.open(&settings.config)?;
        Ok(op)
    }
}

impl WindowOperator {
    pub(super) fn open(&mut self, config: &[(String, String)]) -> Result<(), WasmError> {
        self.store.data_mut().opening = true;
        self.store.set_epoch_deadline(ticks(self.deadline));
        let r = self.bindings.weir_operator0_2_0_window().call_open(&mut self.store, config);
        self.store.data_mut().opening = false;
        match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => {
                Err(WasmError::Open { plugin: self.plugin.clone(), operator: self.operator.clone(), task: self.task, message })
            }
            Err(e) => Err(self.trap(e, "open").0),
        }
    }

    pub(super) fn state_error(&self, message: String) -> WasmError {
        WasmError::State { plugin: self.plugin.clone(), operator: self.operator.clone(), task: self.task, message }
    }

    pub(super) fn state_err(&self, message: impl std::fmt::Display) -> OperatorError {
        OperatorError::new(self.state_error(message.to_string()))
    }

    pub(super) fn contract(&self, message: String) -> OperatorError {
        OperatorError::new(WasmError::Contract {
            plugin: self.plugin.clone(),
            operator: self.operator.clone(),
            task: self.task,
            message,
        })
    }

    /// Load windows and timers of this task's key groups from every task's snapshot.
    pub(super) fn restore(&mut self, snapshots: &[RestoreFiles], groups: KeyGroups) -> Result<(), WasmError> {
        crate::snapshot::restore(self.store.data_mut(), snapshots, &groups).map_err(|e| self.state_error(e))
    }

    /// Turn a failed call into an error, with the row it concerns if known.
    pub(super) fn trap(&mut self, e: wasmtime::Error, call: &str) -> (WasmError, Option<u32>) {
        let caller = crate::error::Caller { plugin: &self.plugin, operator: &self.operator, task: self.task };
        caller.failed(self.store.data_mut(), e, call, self.deadline)
    }

    /// The outcome of a guest call: its value, or an error at the origin of the row it names.
    pub(super) fn result<T>(
        &mut self,
        r: wasmtime::Result<Result<T, types::OperatorError>>,
        call: &str,
        origin: impl Fn(Option<u32>) -> Option<Origin>,
    ) -> Result<T, OperatorError> {
        match r {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                let caller = crate::error::Caller { plugin: &self.plugin, operator: &self.operator, task: self.task };
                Err(OperatorError::new(caller.guest_error(call, e.message)).at(origin(e.row)))
            }
            Err(e) => {
                let (err, row) = self.trap(e, call);
                Err(OperatorError::new(err).at(origin(row)))
            }
        }
    }
}

/// Creates a [`WindowOperator`] per parallel task.
pub struct WindowOperatorFactory {
    pub plugin: Plugin,
    pub settings: OperatorSettings,
    pub window: WindowSpec,
}

impl OperatorFactory for WindowOperatorFactory {
    fn create(&self, ctx: &TaskContext) -> Result<Box<dyn Operator>, OperatorError> {
        Ok(Box::new(self.plugin.instantiate_window(ctx, &self.settings, &self.window).map_err(OperatorError::new)?))
    }
}
