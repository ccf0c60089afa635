//! A plugin instance as a dataflow operator.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::ResourceTable;
use wasmtime::Store;
use wasmtime_wasi::WasiCtxBuilder;
use std::path::Path;

use weir_engine::{
    Emitter, Header, Operator, OperatorError, OperatorFactory, Origin, RecordBatch, SnapshotWriter, TaskContext,
};
use weir_state::{KeyGroups, KeyedStateBackend, RestoreFiles, StateBackendFactory};

use crate::bindings::{self, runtime, types};
use crate::loader::{Plugin, Shared, EPOCH_TICK};
use crate::guest_log::{cut, GuestLog};
use crate::host::{arm, swap_instance, HostState, MemoryLimiter};
use weir_engine::now_ms;
use crate::log_stream::LogStream;
use weir_engine::Domain;
use crate::WasmError;

/// Sandbox limits of one operator: what each of its tasks may use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Maximum linear memory of one instance, in bytes.
    pub memory: usize,
    /// Maximum time of one call into the guest (open, a batch, fired timers),
    /// running wasm code or waiting in WASI.
    pub call_timeout: Duration,
    /// Maximum number of timers registered at once (both time domains).
    pub timers: usize,
    /// Longest log line kept (a `log` call or a line of stdout/stderr), in
    /// bytes; the rest is cut.
    pub log_line: usize,
    /// Log bytes per second; lines over it are dropped and counted.
    pub log_rate: usize,
    /// Longest error or panic message of the guest kept, in bytes.
    pub error_message: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory: 256 << 20,
            call_timeout: Duration::from_secs(5),
            timers: 1_000_000,
            log_line: 8 << 10,
            log_rate: 1 << 20,
            error_message: 4 << 10,
        }
    }
}

/// How an operator uses its plugin.
#[derive(Clone, Debug)]
pub struct OperatorSettings {
    /// The `config` map given to the guest's `open`.
    pub config: Vec<(String, String)>,
    pub limits: Limits,
    /// Where each task's keyed state lives.
    pub state: Arc<dyn StateBackendFactory>,
}

impl Default for OperatorSettings {
    fn default() -> Self {
        OperatorSettings { config: Vec::new(), limits: Limits::default(), state: Arc::new(weir_state::HeapBackendFactory) }
    }
}


/// Origin of records emitted from timers (they have no source record).
pub(crate) const TIMER_ORIGIN: Origin = Origin { source: u16::MAX, split: 0, offset: 0 };
/// Timers handed to the guest per `on-timer` call.
const TIMER_BATCH: usize = 1024;

/// One instance of a plugin running one parallel task of an operator.
pub struct WasmOperator {
    store: Store<HostState>,
    bindings: bindings::Operator,
    plugin: String,
    operator: String,
    task: u32,
    /// Engine port of each guest side output (`None`: nobody reads it).
    port_map: Vec<Option<usize>>,
    /// Records emitted to side outputs that the dataflow does not read.
    pub unconsumed: u64,
    /// Where it runs (without the restore data).
    ctx: TaskContext,
    /// Keeps the engine's epoch ticker (CPU deadlines) running while this lives.
    _shared: Arc<Shared>,
}

impl Plugin {
    /// Instantiate the plugin for one task and run its `open`.
    pub fn instantiate(&self, ctx: &TaskContext, settings: &OperatorSettings) -> Result<WasmOperator, WasmError> {
        let state = self.backend(ctx, settings)?;
        let mut op = self.start(ctx, settings, state).map_err(|(e, _)| e)?;
        if let Some(r) = &ctx.restore {
            op.restore(&r.files, KeyGroups::of_task(ctx.task_index, ctx.parallelism, ctx.max_parallelism))?;
        }
        op.open(&settings.config, &ctx.side_outputs)?;
        Ok(op)
    }

    /// A new instance of the plugin for one task over `state`, not opened yet.
    /// On failure the state comes back with the error.
    fn start(
        &self,
        ctx: &TaskContext,
        settings: &OperatorSettings,
        state: Box<dyn KeyedStateBackend>,
    ) -> Result<WasmOperator, (WasmError, Box<dyn KeyedStateBackend>)> {
        let plugin = self.meta.to_string();
        let Some(pre) = &self.pre else {
            let err = WasmError::WrongWorld {
                plugin,
                operator: ctx.node.to_string(),
                found: self.meta.world,
                needs: format!("operator '{}' has no `window:` block, so it runs a stream operator ({})", ctx.node, crate::WORLD),
            };
            return Err((err, state));
        };
        let mut store = self.new_store(ctx, settings, state);
        arm(&mut store);
        let bindings = match pre.instantiate(&mut store) {
            Ok(b) => b,
            Err(e) => {
                let err = WasmError::Instantiate { plugin, operator: ctx.node.to_string(), message: format!("{e:#}") };
                return Err((err, store.into_data().state));
            }
        };
        Ok(WasmOperator {
            bindings,
            store,
            plugin,
            operator: ctx.node.to_string(),
            task: ctx.task_index,
            port_map: Vec::new(),
            unconsumed: 0,
            ctx: TaskContext { restore: None, ..ctx.clone() },
            _shared: self.shared.clone(),
        })
    }

    /// A sandboxed store for one task over its keyed state backend: WASI
    /// without capabilities and the memory limit.
    pub(crate) fn new_store(&self, ctx: &TaskContext, settings: &OperatorSettings, state: Box<dyn KeyedStateBackend>) -> Store<HostState> {
        let log = GuestLog::new(&self.meta.to_string(), &ctx.node, ctx.task_index, &settings.limits);
        // No preopened directories, environment, arguments or network; stdin
        // is closed (reads end at once).
        let wasi = WasiCtxBuilder::new()
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .stdin(std::io::empty())
            .stdout(LogStream::new(log.clone(), "stdout"))
            .stderr(LogStream::new(log.clone(), "stderr"))
            .build();
        let host = HostState {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryLimiter { limit: settings.limits.memory, hit: None },
            state,
            scope_keys: Vec::new(),
            scope_ends: Vec::new(),
            first_rows: None,
            opening: false,
            outputs: Vec::new(),
            counters: Vec::new(),
            panic: None,
            timers: Default::default(),
            watermark: i64::MIN,
            info: runtime::TaskInfo {
                pipeline: ctx.pipeline.to_string(),
                operator: ctx.node.to_string(),
                task_index: ctx.task_index,
                parallelism: ctx.parallelism,
            },
            log,
            limits: settings.limits.clone(),
            deadline: std::time::Instant::now() + settings.limits.call_timeout,
            row: None,
        };
        let mut store = Store::new(&self.shared.engine, host);
        store.limiter(|s| &mut s.limiter);
        store
    }

    pub(crate) fn backend(&self, ctx: &TaskContext, settings: &OperatorSettings) -> Result<Box<dyn KeyedStateBackend>, WasmError> {
        let groups = KeyGroups::of_task(ctx.task_index, ctx.parallelism, ctx.max_parallelism);
        settings.state.create(&ctx.node, ctx.task_index, groups).map_err(|e| WasmError::State {
            plugin: self.meta.to_string(),
            operator: ctx.node.to_string(),
            task: ctx.task_index,
            message: e.to_string(),
        })
    }
}

pub(crate) fn ticks(timeout: Duration) -> u64 {
    (timeout.as_nanos().div_ceil(EPOCH_TICK.as_nanos()) as u64).max(1) + 1
}

impl WasmOperator {
    fn open(&mut self, config: &[(String, String)], wanted: &[String]) -> Result<(), WasmError> {
        self.store.data_mut().opening = true;
        arm(&mut self.store);
        let r = self.bindings.weir_operator_handler().call_open(&mut self.store, config);
        self.store.data_mut().opening = false;
        match r {
            Ok(Ok(())) => {}
            Ok(Err(message)) => return Err(self.open_error(cut(message, self.store.data().limits.error_message))),
            Err(e) => return Err(self.trap(e, "open").0),
        }
        let declared = self.store.data().outputs.clone();
        if let Some(missing) = wanted.iter().find(|w| !declared.contains(w)) {
            let have = if declared.is_empty() { "none".to_string() } else { declared.join(", ") };
            return Err(self.open_error(format!(
                "the pipeline reads side output '{missing}', but the plugin declares these side outputs: {have}"
            )));
        }
        self.port_map = declared.iter().map(|d| wanted.iter().position(|w| w == d).map(|p| p + 1)).collect();
        Ok(())
    }

    fn state_error(&self, message: String) -> WasmError {
        WasmError::State { plugin: self.plugin.clone(), operator: self.operator.clone(), task: self.task, message }
    }

    /// Load state and timers of this task's key groups from every task's snapshot.
    fn restore(&mut self, snapshots: &[RestoreFiles], groups: KeyGroups) -> Result<(), WasmError> {
        crate::snapshot::restore(self.store.data_mut(), snapshots, &groups).map_err(|e| self.state_error(e.to_string()))
    }

    fn open_error(&self, message: String) -> WasmError {
        WasmError::Open { plugin: self.plugin.clone(), operator: self.operator.clone(), task: self.task, message }
    }

    /// Counters the guest declared, with their values.
    pub fn counters(&self) -> Vec<(String, u64)> {
        self.store.data().counters.clone()
    }

    fn set_scopes(&mut self, keys: &[u8], ends: &[u32]) {
        let d = self.store.data_mut();
        d.scope_keys.clear();
        d.scope_keys.extend_from_slice(keys);
        d.scope_ends.clear();
        d.scope_ends.extend_from_slice(ends);
        d.first_rows = None;
        d.state.set_time(now_ms());
    }

    /// Turn a failed call into an error, with the input row it concerns if known.
    fn trap(&mut self, e: wasmtime::Error, call: &str) -> (WasmError, Option<u32>) {
        let caller = crate::error::Caller { plugin: &self.plugin, operator: &self.operator, task: self.task };
        caller.failed(self.store.data_mut(), e, call)
    }

    fn contract(&self, message: String) -> OperatorError {
        OperatorError::new(WasmError::Contract {
            plugin: self.plugin.clone(),
            operator: self.operator.clone(),
            task: self.task,
            message,
        })
    }

    fn handle(
        &mut self,
        r: wasmtime::Result<Result<types::Emitted, types::OperatorError>>,
        origins: &[Origin],
        call: &str,
        out: &mut Emitter,
    ) -> Result<(), OperatorError> {
        let at = |row: Option<u32>| row.and_then(|r| origins.get(r as usize)).or(origins.first()).copied();
        match r {
            Ok(Ok(emitted)) => self.emit(emitted, origins, out),
            Ok(Err(e)) => {
                let caller = crate::error::Caller { plugin: &self.plugin, operator: &self.operator, task: self.task };
                let limit = self.store.data().limits.error_message;
                Err(OperatorError::new(caller.guest_error(call, e.message, limit)).at(at(e.row)))
            }
            Err(e) => {
                let (err, row) = self.trap(e, call);
                Err(OperatorError::new(err).at(at(row)))
            }
        }
    }

    fn emit(&mut self, emitted: types::Emitted, origins: &[Origin], out: &mut Emitter) -> Result<(), OperatorError> {
        let types::Emitted { records: r, outputs, causes } = emitted;
        let n = r.key_ends.len();
        if causes.len() != n {
            return Err(self.contract(format!("it emitted {n} records but {} causes", causes.len())));
        }
        let mut batch_origins = Vec::with_capacity(n);
        for (i, &c) in causes.iter().enumerate() {
            match origins.get(c as usize) {
                Some(o) => batch_origins.push(*o),
                None => {
                    let key = key_of(&r.keys, &r.key_ends, i);
                    return Err(self.contract(format!(
                        "its emitted record {i}{key} names input row {c} as its cause, of a {}-row input",
                        origins.len()
                    )));
                }
            }
        }
        let batch = RecordBatch {
            keys: r.keys,
            key_ends: r.key_ends,
            values: r.values,
            value_ends: r.value_ends,
            timestamps: r.timestamps,
            headers: r.headers.into_iter().map(|h| Header { row: h.row, name: h.name, value: h.value }).collect(),
            origins: batch_origins,
        };
        if let Err(m) = batch.validate() {
            // The input row whose output is broken, when one is.
            let at = first_bad_row(&batch).filter(|&i| i < n).map(|i| (causes[i], batch.origins[i]));
            let row = at.map_or(String::new(), |(c, _)| format!(" (an output of input row {c})"));
            return Err(self.contract(format!("it emitted a malformed batch{row}: {m}")).at(at.map(|(_, o)| o)));
        }
        if outputs.is_empty() {
            let main = out.main();
            if main.is_empty() { *main = batch } else { main.append(&batch) }
            return Ok(());
        }
        if outputs.len() != n {
            return Err(self.contract(format!("it emitted {n} records but {} output numbers", outputs.len())));
        }
        for (i, &o) in outputs.iter().enumerate() {
            let port = if o == 0 {
                Some(0)
            } else {
                match self.port_map.get(o as usize - 1) {
                    Some(p) => *p,
                    None => {
                        return Err(self
                            .contract(format!(
                                "its emitted record {i} (an output of input row {}) goes to output {o}, but it declared only {} side outputs",
                                causes[i],
                                self.port_map.len()
                            ))
                            .at(Some(batch.origins[i])))
                    }
                }
            };
            match port {
                Some(p) => out.port(p).push_row_from(&batch, i, None),
                None => self.unconsumed += 1,
            }
        }
        Ok(())
    }

    fn fire(&mut self, due: Vec<(i64, Vec<u8>)>, domain: Domain, out: &mut Emitter) -> Result<(), OperatorError> {
        let mut fired = types::FiredTimers { keys: Vec::new(), key_ends: Vec::new(), times: Vec::new(), domains: Vec::new() };
        for (time, key) in &due {
            fired.keys.extend_from_slice(key);
            fired.key_ends.push(fired.keys.len() as u32);
            fired.times.push(*time);
            fired.domains.push(match domain {
                Domain::Event => types::TimeDomain::EventTime,
                Domain::Processing => types::TimeDomain::ProcessingTime,
            });
        }
        self.set_scopes(&fired.keys, &fired.key_ends);
        arm(&mut self.store);
        let r = self.bindings.weir_operator_handler().call_on_timer(&mut self.store, &fired);
        self.handle(r, &vec![TIMER_ORIGIN; due.len()], "on-timer", out)
    }
}

impl WasmOperator {
    /// Fire the timers of `domain` due at `time`, including those that firing
    /// timers register for times already due.
    fn fire_due(&mut self, domain: Domain, time: i64, out: &mut Emitter) -> Result<(), OperatorError> {
        let mut rounds = 0u32;
        loop {
            let due = self.store.data_mut().timers.due(domain, time, TIMER_BATCH);
            if due.is_empty() {
                return Ok(());
            }
            rounds += 1;
            if rounds > 1_000_000 {
                return Err(self.contract("its timers kept registering new timers that were already due".into()));
            }
            self.fire(due, domain, out)?;
        }
    }
}

impl WasmOperator {
    /// The plugin (`name@version`) this instance runs.
    pub fn plugin(&self) -> &str {
        &self.plugin
    }

    /// Hot swap to `next`: a new instance over this one's state, timers and
    /// watermark, opened with `next`'s settings. On failure nothing changed.
    pub fn swap_to(&mut self, next: &WasmOperatorFactory) -> Result<(), WasmError> {
        let groups = KeyGroups::of_task(self.ctx.task_index, self.ctx.parallelism, self.ctx.max_parallelism);
        let op = swap_instance(
            self.store.data_mut(),
            groups,
            |state| next.plugin.start(&self.ctx, &next.settings, state),
            |op: &mut WasmOperator| op.store.data_mut(),
            |op| op.open(&next.settings.config, &self.ctx.side_outputs),
        )?;
        tracing::info!(operator = self.operator, task = self.task, from = self.plugin, to = op.plugin, "swapped");
        *self = op;
        Ok(())
    }
}

impl Operator for WasmOperator {
    fn swap(&mut self, replacement: &(dyn std::any::Any + Send + Sync)) -> Result<(), OperatorError> {
        let Some(next) = replacement.downcast_ref::<WasmOperatorFactory>() else {
            return Err(OperatorError::new(format!(
                "operator '{}' runs a Wasm plugin and can only swap to another Wasm plugin",
                self.operator
            )));
        };
        self.swap_to(next).map_err(OperatorError::new)
    }

    fn snapshot(&mut self, dir: &Path) -> Result<Option<SnapshotWriter>, OperatorError> {
        let w = crate::snapshot::snapshot(self.store.data_mut(), dir).map_err(|e| OperatorError::new(self.state_error(e.to_string())))?;
        Ok(Some(w))
    }

    fn process(&mut self, input: RecordBatch, out: &mut Emitter) -> Result<(), OperatorError> {
        let RecordBatch { keys, key_ends, values, value_ends, timestamps, headers, origins } = input;
        self.set_scopes(&keys, &key_ends);
        let batch = types::Batch {
            keys,
            key_ends,
            values,
            value_ends,
            timestamps,
            headers: headers.into_iter().map(|h| types::Header { row: h.row, name: h.name, value: h.value }).collect(),
        };
        arm(&mut self.store);
        let r = self.bindings.weir_operator_handler().call_process(&mut self.store, &batch);
        self.handle(r, &origins, "process", out)
    }

    /// Event-time timers up to the watermark fire, in time order.
    fn on_watermark(&mut self, watermark: i64, out: &mut Emitter) -> Result<(), OperatorError> {
        let d = self.store.data_mut();
        d.watermark = d.watermark.max(watermark);
        self.fire_due(Domain::Event, watermark, out)
    }

    fn on_processing_time(&mut self, now_ms: i64, out: &mut Emitter) -> Result<(), OperatorError> {
        self.fire_due(Domain::Processing, now_ms, out)
    }

    /// End of input: the watermark jumps to the end of time, so every
    /// event-time timer fires (in time order), as in Flink.
    fn finish(&mut self, out: &mut Emitter) -> Result<(), OperatorError> {
        self.on_watermark(i64::MAX, out)
    }
}

/// ` (key "…")` of emitted row `i`, if its key bytes are where `ends` says
/// (at most 64 bytes of it), for contract errors.
fn key_of(keys: &[u8], ends: &[u32], i: usize) -> String {
    let start = if i == 0 { 0 } else { ends[i - 1] as usize };
    match keys.get(start..ends[i] as usize) {
        Some(k) => format!(" (key {:?})", String::from_utf8_lossy(&k[..k.len().min(64)])),
        None => String::new(),
    }
}

/// The first row of a batch whose key or value end is out of order or past
/// the bytes (what [`RecordBatch::validate`] refuses row by row).
fn first_bad_row(b: &RecordBatch) -> Option<usize> {
    let bad = |ends: &[u32], len: usize| {
        let mut prev = 0;
        ends.iter().position(|&e| {
            let bad = e < prev || e as usize > len;
            prev = e;
            bad
        })
    };
    match (bad(&b.key_ends, b.keys.len()), bad(&b.value_ends, b.values.len())) {
        (Some(k), Some(v)) => Some(k.min(v)),
        (k, v) => k.or(v),
    }
}

/// Creates a [`WasmOperator`] per parallel task.
pub struct WasmOperatorFactory {
    pub plugin: Plugin,
    pub settings: OperatorSettings,
}

impl OperatorFactory for WasmOperatorFactory {
    fn create(&self, ctx: &TaskContext) -> Result<Box<dyn Operator>, OperatorError> {
        Ok(Box::new(self.plugin.instantiate(ctx, &self.settings).map_err(OperatorError::new)?))
    }
}
