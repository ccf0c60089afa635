//! Setting up a window operator's task: instantiating the window function,
//! restoring windows and timers, opening it; and turning failed guest calls
//! into errors that name plugin, operator, task and input record.

use weir_engine::{Operator, OperatorError, OperatorFactory, Origin, TaskContext};
use weir_state::{KeyGroups, RestoreFiles};

use super::operator::WindowOperator;
use weir_engine::window::{store, WindowSpec};
use crate::bindings::types;
use crate::loader::Plugin;
use crate::guest_log::cut;
use crate::host::{arm, swap_instance};
use crate::operator::OperatorSettings;
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
        if self.window_pre.is_none() {
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
        }
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
        let mut op = self.start_window(ctx, settings, spec, self.backend(ctx, settings)?).map_err(|(e, _)| e)?;
        if let Some(r) = &ctx.restore {
            op.restore(&r.files, KeyGroups::of_task(ctx.task_index, ctx.parallelism, ctx.max_parallelism))?;
        }
        op.windows = store::declare(&mut *op.store.data_mut().state).map_err(|e| op.state_error(e.to_string()))?;
        op.open(&settings.config)?;
        Ok(op)
    }

    /// A new instance of the window function for one task over `state`, not
    /// opened yet. On failure the state comes back with the error.
    fn start_window(
        &self,
        ctx: &TaskContext,
        settings: &OperatorSettings,
        spec: &WindowSpec,
        state: Box<dyn weir_state::KeyedStateBackend>,
    ) -> Result<WindowOperator, (WasmError, Box<dyn weir_state::KeyedStateBackend>)> {
        let (plugin, operator) = (self.meta.to_string(), ctx.node.to_string());
        let Some(pre) = &self.window_pre else {
            let needs = format!("operator '{operator}' is a window operator, so it needs a window function ({})", crate::WINDOW_WORLD);
            return Err((WasmError::WrongWorld { plugin, operator, found: self.meta.world, needs }, state));
        };
        let mut store = self.new_store(ctx, settings, state);
        arm(&mut store);
        let bindings = match pre.instantiate(&mut store) {
            Ok(b) => b,
            Err(e) => {
                let err = WasmError::Instantiate { plugin, operator, message: format!("{e:#}") };
                return Err((err, store.into_data().state));
            }
        };
        Ok(WindowOperator {
            store,
            bindings,
            spec: spec.clone(),
            windows: 0,
            plugin,
            operator,
            task: ctx.task_index,
            late_port: ctx.side_outputs.iter().position(|s| *s == spec.late_output).map(|p| p + 1),
            late_unread: 0,
            ctx: TaskContext { restore: None, ..ctx.clone() },
            _shared: self.shared.clone(),
        })
    }
}

impl WindowOperator {
    /// Hot swap to `next`'s window function: a new instance over this one's
    /// windows, timers and watermark, opened with `next`'s settings. The
    /// windows (type, size, lateness) stay as they are. On failure nothing
    /// changed.
    pub fn swap_to(&mut self, next: &WindowOperatorFactory) -> Result<(), WasmError> {
        let groups = KeyGroups::of_task(self.ctx.task_index, self.ctx.parallelism, self.ctx.max_parallelism);
        let mut op = swap_instance(
            self.store.data_mut(),
            groups,
            |state| next.plugin.start_window(&self.ctx, &next.settings, &self.spec, state),
            |op: &mut WindowOperator| op.store.data_mut(),
            |op| {
                op.windows = store::declare(&mut *op.store.data_mut().state).map_err(|e| op.state_error(e.to_string()))?;
                op.open(&next.settings.config)
            },
        )?;
        op.late_unread = self.late_unread;
        tracing::info!(operator = self.operator, task = self.task, from = self.plugin, to = op.plugin, "swapped");
        *self = op;
        Ok(())
    }
}

impl WindowOperator {
    pub(super) fn open(&mut self, config: &[(String, String)]) -> Result<(), WasmError> {
        self.store.data_mut().opening = true;
        arm(&mut self.store);
        let r = self.bindings.weir_operator0_2_0_window().call_open(&mut self.store, config);
        self.store.data_mut().opening = false;
        match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => {
                let message = cut(message, self.store.data().limits.error_message);
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
        crate::snapshot::restore(self.store.data_mut(), snapshots, &groups).map_err(|e| self.state_error(e.to_string()))
    }

    /// Turn a failed call into an error, with the row it concerns if known.
    pub(super) fn trap(&mut self, e: wasmtime::Error, call: &str) -> (WasmError, Option<u32>) {
        let caller = crate::error::Caller { plugin: &self.plugin, operator: &self.operator, task: self.task };
        caller.failed(self.store.data_mut(), e, call)
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
                let limit = self.store.data().limits.error_message;
                Err(OperatorError::new(caller.guest_error(call, e.message, limit)).at(origin(e.row)))
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
