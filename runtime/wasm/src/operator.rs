//! A plugin instance as a dataflow operator.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::ResourceTable;
use wasmtime::Store;
use wasmtime_wasi::WasiCtxBuilder;
use std::path::Path;

use weir_engine::{
    Emitter, Header, Operator, OperatorError, OperatorFactory, Origin, RecordBatch, RowKind, SnapshotWriter, TaskContext,
};
use weir_state::{KeyGroups, KeyedStateBackend, RestoreFiles, StateBackendFactory};

use crate::bindings::{self, runtime, types, v0_3::changelog};
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
    /// Its input is a changelog, so its readers take one: a guest of the
    /// changelog world may emit row kinds. On an append-only input, a row
    /// kind it emits would reach readers checked for inserts only.
    pub changelog: bool,
    pub limits: Limits,
    /// Where each task's keyed state lives.
    pub state: Arc<dyn StateBackendFactory>,
}

impl Default for OperatorSettings {
    fn default() -> Self {
        OperatorSettings {
            config: Vec::new(),
            changelog: false,
            limits: Limits::default(),
            state: Arc::new(weir_state::HeapBackendFactory),
        }
    }
}


/// Origin of records emitted from timers (they have no source record).
pub(crate) const TIMER_ORIGIN: Origin = Origin { source: u16::MAX, split: 0, offset: 0 };
/// Timers handed to the guest per `on-timer` call.
const TIMER_BATCH: usize = 1024;

/// The exports of an instance, by the world it implements.
enum Handler {
    /// `weir:operator@0.1.0`: every row an insert.
    Append(bindings::Operator),
    /// `weir:operator@0.3.0`: rows with kinds, in and out.
    Changelog(bindings::v0_3::ChangelogOperator),
}

/// A guest's reply: what it emitted and the kind of each emitted row (empty:
/// all inserts).
type Reply = Result<(types::Emitted, Vec<RowKind>), types::OperatorError>;

fn to_guest(k: RowKind) -> changelog::RowKind {
    match k {
        RowKind::Insert => changelog::RowKind::Insert,
        RowKind::UpdateBefore => changelog::RowKind::UpdateBefore,
        RowKind::UpdateAfter => changelog::RowKind::UpdateAfter,
        RowKind::Delete => changelog::RowKind::Delete,
    }
}

fn from_guest(k: changelog::RowKind) -> RowKind {
    match k {
        changelog::RowKind::Insert => RowKind::Insert,
        changelog::RowKind::UpdateBefore => RowKind::UpdateBefore,
        changelog::RowKind::UpdateAfter => RowKind::UpdateAfter,
        changelog::RowKind::Delete => RowKind::Delete,
    }
}

fn changelog_reply(r: wasmtime::Result<Result<changelog::ChangelogEmitted, types::OperatorError>>) -> wasmtime::Result<Reply> {
    r.map(|r| r.map(|c| (c.emitted, c.kinds.into_iter().map(from_guest).collect())))
}

impl Handler {
    fn open(&self, store: &mut Store<HostState>, config: &[(String, String)]) -> wasmtime::Result<Result<(), String>> {
        match self {
            Handler::Append(b) => b.weir_operator_handler().call_open(store, config),
            Handler::Changelog(b) => b.weir_operator0_3_0_handler().call_open(store, config),
        }
    }

    fn process(&self, store: &mut Store<HostState>, rows: types::Batch, kinds: Vec<RowKind>) -> wasmtime::Result<Reply> {
        match self {
            Handler::Append(b) => b.weir_operator_handler().call_process(store, &rows).map(|r| r.map(|e| (e, Vec::new()))),
            Handler::Changelog(b) => {
                let input = changelog::ChangelogBatch { rows, kinds: kinds.into_iter().map(to_guest).collect() };
                changelog_reply(b.weir_operator0_3_0_handler().call_process(store, &input))
            }
        }
    }

    fn on_timer(&self, store: &mut Store<HostState>, fired: &types::FiredTimers) -> wasmtime::Result<Reply> {
        match self {
            Handler::Append(b) => b.weir_operator_handler().call_on_timer(store, fired).map(|r| r.map(|e| (e, Vec::new()))),
            Handler::Changelog(b) => changelog_reply(b.weir_operator0_3_0_handler().call_on_timer(store, fired)),
        }
    }
}

/// One instance of a plugin running one parallel task of an operator.
pub struct WasmOperator {
    store: Store<HostState>,
    bindings: Handler,
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
    /// The plugin and settings it runs, to replace an instance that trapped.
    respawn: (Plugin, OperatorSettings),
    /// Whether `process` calls may be undone (`on_error: skip | dead-letter`).
    isolating: bool,
    /// The last call trapped: the instance is unusable until replaced.
    trapped: bool,
    /// Its readers take a changelog (see [`OperatorSettings::changelog`]).
    changelog_out: bool,
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
        if self.pre.is_none() && self.changelog_pre.is_none() {
            let err = WasmError::WrongWorld {
                plugin,
                operator: ctx.node.to_string(),
                found: self.meta.world,
                needs: format!(
                    "operator '{}' has no `window:` block, so it runs a stream operator ({} or {})",
                    ctx.node,
                    crate::WORLD,
                    crate::CHANGELOG_WORLD
                ),
            };
            return Err((err, state));
        }
        let mut store = self.new_store(ctx, settings, state);
        arm(&mut store);
        let instantiated = match (&self.pre, &self.changelog_pre) {
            (Some(pre), _) => pre.instantiate(&mut store).map(Handler::Append),
            (None, Some(pre)) => pre.instantiate(&mut store).map(Handler::Changelog),
            (None, None) => unreachable!("checked above"),
        };
        let bindings = match instantiated {
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
            respawn: (self.clone(), settings.clone()),
            isolating: false,
            trapped: false,
            changelog_out: settings.changelog,
        })
    }

    /// A sandboxed store for one task over its keyed state backend: WASI
    /// without capabilities and the memory limit.
    pub(crate) fn new_store(&self, ctx: &TaskContext, settings: &OperatorSettings, state: Box<dyn KeyedStateBackend>) -> Store<HostState> {
        let log = GuestLog::new(&ctx.pipeline, &self.meta.to_string(), &ctx.node, ctx.task_index, &settings.limits);
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
            undo: Default::default(),
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
        let r = self.bindings.open(&mut self.store, config);
        self.store.data_mut().opening = false;
        match r {
            Ok(Ok(())) => {}
            Ok(Err(message)) => return Err(self.open_error(cut(message, self.store.data().limits.error_message))),
            Err(e) => return Err(self.trap(e, "open").0),
        }
        let declared = self.store.data().outputs.clone();
        // The engine's own side output, whatever the plugin declares.
        let dead_letter = |w: &&String| w.as_str() == weir_engine::DEAD_LETTER_OUTPUT;
        if let Some(missing) = wanted.iter().filter(|w| !dead_letter(w)).find(|w| !declared.contains(w)) {
            let have = if declared.is_empty() { "none".to_string() } else { declared.join(", ") };
            return Err(self.open_error(format!(
                "the pipeline reads side output '{missing}', but the plugin declares these side outputs: {have}"
            )));
        }
        self.port_map = declared
            .iter()
            .map(|d| wanted.iter().position(|w| w == d).filter(|&p| !dead_letter(&&wanted[p])).map(|p| p + 1))
            .collect();
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
        r: wasmtime::Result<Reply>,
        origins: &[Origin],
        call: &str,
        out: &mut Emitter,
    ) -> Result<(), OperatorError> {
        let at = |row: Option<u32>| row.and_then(|r| origins.get(r as usize)).or(origins.first()).copied();
        let known = |row: Option<u32>| row.map(|r| r as usize).filter(|&r| r < origins.len());
        match r {
            Ok(Ok((emitted, kinds))) => self.emit(emitted, kinds, origins, out),
            Ok(Err(e)) => {
                let caller = crate::error::Caller { plugin: &self.plugin, operator: &self.operator, task: self.task };
                let limit = self.store.data().limits.error_message;
                Err(OperatorError::new(caller.guest_error(call, e.message, limit)).at(at(e.row)).in_row(known(e.row)))
            }
            Err(e) => {
                self.trapped = true;
                // The row a panic reports is the failing one; the row of the
                // last state call before a deadline or the memory limit is
                // only a hint, which `on_error` does not take for certain.
                let reported = self.store.data().panic.as_ref().is_some_and(|(row, _)| row.is_some());
                let (err, row) = self.trap(e, call);
                Err(OperatorError::new(err).at(at(row)).in_row(if reported { known(row) } else { None }))
            }
        }
    }

    fn emit(&mut self, emitted: types::Emitted, kinds: Vec<RowKind>, origins: &[Origin], out: &mut Emitter) -> Result<(), OperatorError> {
        let types::Emitted { records: r, outputs, causes } = emitted;
        // An all-insert reply is an append-only batch: no kinds at all.
        let kinds = if kinds.iter().all(|k| *k == RowKind::Insert) && kinds.len() == r.key_ends.len() { Vec::new() } else { kinds };
        let batch = RecordBatch {
            keys: r.keys,
            key_ends: r.key_ends,
            values: r.values,
            value_ends: r.value_ends,
            timestamps: r.timestamps,
            headers: r.headers.into_iter().map(|h| Header { row: h.row, name: h.name, value: h.value }).collect(),
            origins: Vec::new(),
            kinds,
            born: Default::default(),
        };
        let reply = weir_engine::Emitted { batch, outputs, causes };
        let (batch, outputs) = reply.check(origins, self.port_map.len()).map_err(|e| self.contract(e.message).at(e.at))?;
        if !self.changelog_out
            && let Some(i) = batch.kinds.iter().position(|k| *k != RowKind::Insert)
        {
            return Err(self
                .contract(format!(
                    "it emitted a {} row (record {i}), but its input is append-only, so its readers were checked \
                     for inserts only; a changelog operator emits row kinds only when it reads a changelog",
                    batch.kinds[i]
                ))
                .at(Some(batch.origins[i])));
        }
        if outputs.is_empty() {
            let main = out.main();
            if main.is_empty() { *main = batch } else { main.append(&batch) }
            return Ok(());
        }
        for (i, &o) in outputs.iter().enumerate() {
            // In range: `check` saw to it.
            let port = if o == 0 { Some(0) } else { self.port_map[o as usize - 1] };
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
        let r = self.bindings.on_timer(&mut self.store, &fired);
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
        let isolating = self.isolating;
        *self = op;
        self.respawn = (next.plugin.clone(), next.settings.clone());
        self.isolating = isolating;
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
        let from = self.plugin.clone();
        self.swap_to(next).map_err(OperatorError::new)?;
        tracing::info!(operator = self.operator, task = self.task, from, to = self.plugin, "swapped");
        Ok(())
    }

    fn snapshot(&mut self, dir: &Path) -> Result<Option<SnapshotWriter>, OperatorError> {
        let w = crate::snapshot::snapshot(self.store.data_mut(), dir).map_err(|e| OperatorError::new(self.state_error(e.to_string())))?;
        Ok(Some(w))
    }

    fn process(&mut self, input: RecordBatch, out: &mut Emitter) -> Result<(), OperatorError> {
        if input.is_changelog() && matches!(self.bindings, Handler::Append(_)) {
            return Err(OperatorError::new(WasmError::ChangelogInput { plugin: self.plugin.clone(), operator: self.operator.clone(), task: self.task }));
        }
        let RecordBatch { keys, key_ends, values, value_ends, timestamps, headers, origins, kinds, born: _ } = input;
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
        if self.isolating {
            self.store.data_mut().undo.begin();
        }
        let r = self.bindings.process(&mut self.store, batch, kinds);
        self.store.data_mut().undo.end();
        self.handle(r, &origins, "process", out)
    }

    fn isolate_failures(&mut self) -> bool {
        self.isolating = true;
        true
    }

    /// Put state and timers back as they were before the failed `process`
    /// call; after a trap, go on in a new instance of the plugin (opened
    /// again) over them.
    fn undo(&mut self) -> Result<(), OperatorError> {
        let d = self.store.data_mut();
        let r = d.undo.undo(&mut *d.state, &mut d.timers);
        r.map_err(|e| OperatorError::new(self.state_error(format!("cannot undo the failed call: {e}"))))?;
        if self.trapped {
            let (plugin, settings) = self.respawn.clone();
            let next = WasmOperatorFactory { plugin, settings };
            self.swap_to(&next).map_err(|e| OperatorError::new(format!("cannot replace the instance that trapped: {e}")))?;
            self.trapped = false;
            // One line per trap would be unbounded; the dead letter (its log line rate-limited) names the trap.
            tracing::debug!(operator = self.operator, task = self.task, plugin = self.plugin, "a new instance replaces the one that trapped");
        }
        Ok(())
    }

    fn logic(&self) -> Option<String> {
        Some(self.plugin.clone())
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
