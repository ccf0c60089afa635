use std::path::PathBuf;
use std::time::Duration;

/// Errors of loading and running plugins. Each names the plugin (name and
/// version) and, when running, the operator, its task and the failing input.
#[derive(Debug, thiserror::Error)]
pub enum WasmError {
    #[error("cannot read plugin file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("plugin {plugin} is not a WebAssembly binary (it does not start with \"\\0asm\")")]
    NotWasm { plugin: String },
    #[error(
        "plugin {plugin} is a core WebAssembly module, not a component: build it for the wasm32-wasip2 target (`weir build`) or wrap it with `wasm-tools component new`"
    )]
    CoreModule { plugin: String },
    #[error("cannot compile plugin {plugin}: {message}")]
    Compile { plugin: String, message: String },
    #[error("plugin {plugin} does not implement the {world} world: {message}")]
    World { plugin: String, world: &'static str, message: String },
    #[error("plugin {plugin} implements {found}, but {needs}")]
    WrongWorld { plugin: String, operator: String, found: &'static str, needs: String },
    #[error("cannot instantiate plugin {plugin} for operator '{operator}': {message}")]
    Instantiate { plugin: String, operator: String, message: String },
    #[error("plugin {plugin} failed to open operator '{operator}' (task {task}): {message}")]
    Open { plugin: String, operator: String, task: u32, message: String },
    #[error("plugin {plugin} in operator '{operator}' (task {task}) {what}: {message}")]
    Guest { plugin: String, operator: String, task: u32, what: String, message: String },
    #[error(
        "plugin {plugin} in operator '{operator}' (task {task}) exceeded its CPU deadline of {deadline:?} per call and was stopped (limits.call_timeout)"
    )]
    Deadline { plugin: String, operator: String, task: u32, deadline: Duration },
    #[error(
        "plugin {plugin} in operator '{operator}' (task {task}) tried to grow its memory to {requested} bytes, over its limit of {limit} bytes, and was stopped (limits.memory)"
    )]
    Memory { plugin: String, operator: String, task: u32, requested: usize, limit: usize },
    #[error("plugin {plugin} trapped in operator '{operator}' (task {task}){panic}: {message}")]
    Trap { plugin: String, operator: String, task: u32, panic: String, message: String },
    #[error(
        "plugin {plugin} in operator '{operator}' (task {task}) tried to register more than {limit} timers and was stopped: delete timers it no longer needs, or raise its limit (limits.timers)"
    )]
    Timers { plugin: String, operator: String, task: u32, limit: usize },
    #[error("plugin {plugin} in operator '{operator}' (task {task}) broke the operator contract: {message}")]
    Contract { plugin: String, operator: String, task: u32, message: String },
    #[error("keyed state of operator '{operator}' (plugin {plugin}, task {task}): {message}")]
    State { plugin: String, operator: String, task: u32, message: String },
    #[error(
        "plugin {plugin} in operator '{operator}' (task {task}) received a changelog (updates and deletes), but it implements weir:operator/operator@0.1.0, which sees every record as an insert: build it for weir:operator/changelog-operator@0.3.0, which carries row kinds"
    )]
    ChangelogInput { plugin: String, operator: String, task: u32 },
    #[error("cannot set up the Wasm engine: {0}")]
    Engine(String),
}

/// Why the host stopped a guest from inside one of its imports (the error a
/// host function traps with).
#[derive(Debug, thiserror::Error)]
pub(crate) enum Stop {
    #[error("the call's deadline passed while the guest waited in wasi:io/poll")]
    Deadline,
    #[error("the guest tried to register more than {limit} timers")]
    Timers { limit: usize },
}

/// Who made a guest call: plugin (`name@version`), operator and task.
pub(crate) struct Caller<'a> {
    pub plugin: &'a str,
    pub operator: &'a str,
    pub task: u32,
}

impl Caller<'_> {
    /// A call into the guest failed: say why (memory limit, deadline, a quota,
    /// trap with the guest's panic message), with the input row it concerns if
    /// known: the row the SDK reported with a panic, or else the row of the
    /// guest's last state or timer call in this call ([`HostState::row`]).
    ///
    /// [`HostState::row`]: crate::host::HostState::row
    pub(crate) fn failed(&self, host: &mut crate::host::HostState, e: wasmtime::Error, call: &str) -> (WasmError, Option<u32>) {
        let (plugin, operator, task) = (self.plugin.to_string(), self.operator.to_string(), self.task);
        tracing::debug!(plugin, operator, task, "guest {call} failed: {e:?}");
        let deadline = host.limits.call_timeout;
        if let Some(requested) = host.limiter.hit.take() {
            return (WasmError::Memory { plugin, operator, task, requested, limit: host.limiter.limit }, host.row);
        }
        match e.downcast_ref::<Stop>() {
            Some(Stop::Deadline) => return (WasmError::Deadline { plugin, operator, task, deadline }, host.row),
            Some(&Stop::Timers { limit }) => return (WasmError::Timers { plugin, operator, task, limit }, host.row),
            None => {}
        }
        if e.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt) {
            return (WasmError::Deadline { plugin, operator, task, deadline }, host.row);
        }
        let (row, panic) = match host.panic.take() {
            Some((row, msg)) => (row, format!(" in {call}, panicking with '{msg}'")),
            None => (host.row, format!(" in {call}")),
        };
        (WasmError::Trap { plugin, operator, task, panic, message: e.root_cause().to_string() }, row)
    }

    /// The guest returned an error from `call`; its message is cut to `limit` bytes.
    pub(crate) fn guest_error(&self, call: &str, message: String, limit: usize) -> WasmError {
        WasmError::Guest {
            plugin: self.plugin.to_string(),
            operator: self.operator.to_string(),
            task: self.task,
            what: format!("returned an error from {call}"),
            message: crate::guest_log::cut(message, limit),
        }
    }
}
