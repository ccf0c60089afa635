//! The host side of the imports a guest calls: keyed state, timers, runtime.

use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use weir_state::{KeyedStateBackend, Reducer, StateDescriptor, StateKind};

use crate::bindings::{runtime, state, timers, types};
use crate::error::Stop;
use crate::guest_log::{cut, GuestLog};
use crate::Limits;
use weir_engine::{now_ms, Domain, TimerService};

/// Caps an instance's linear memory; remembers a refused growth so the trap
/// can be reported as what it is.
pub(crate) struct MemoryLimiter {
    pub limit: usize,
    pub hit: Option<usize>,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.hit = Some(desired);
            return Err(wasmtime::Error::msg(format!("memory limit of {} bytes exceeded", self.limit)));
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 20)
    }
}

/// Per-instance host state.
pub(crate) struct HostState {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub limiter: MemoryLimiter,
    pub state: Box<dyn KeyedStateBackend>,
    /// Keys of the current call's input rows: the scopes of state and timer calls.
    pub scope_keys: Vec<u8>,
    pub scope_ends: Vec<u32>,
    /// Per row of the current input, the first row with the same key (computed
    /// on the first columnar state access of a call).
    pub first_rows: Option<Vec<u32>>,
    /// Declarations are only allowed while `open` runs.
    pub opening: bool,
    /// Side outputs the guest declared; guest output `n` is `outputs[n - 1]`.
    pub outputs: Vec<String>,
    pub counters: Vec<(String, u64)>,
    /// What the guest's SDK reported just before it trapped on a panic.
    pub panic: Option<(Option<u32>, String)>,
    pub timers: TimerService,
    pub watermark: i64,
    pub info: runtime::TaskInfo,
    pub log: GuestLog,
    pub limits: Limits,
    /// When the current call must end (see [`arm`]); WASI waits stop there.
    pub deadline: Instant,
    /// The input row of the guest's last state or timer call in the current
    /// call: the row a deadline, memory or quota error names.
    pub row: Option<u32>,
    /// What the current call changed, when it may be undone (`on_error`).
    pub undo: crate::undo::UndoLog,
}

/// Start a call into the guest: set its deadline (the epoch deadline bounds
/// wasm code, [`HostState::deadline`] waits in WASI) and forget the last row.
pub(crate) fn arm(store: &mut Store<HostState>) {
    let d = store.data_mut();
    let timeout = d.limits.call_timeout;
    d.deadline = Instant::now() + timeout;
    d.row = None;
    store.set_epoch_deadline(crate::operator::ticks(timeout));
}

/// A task's keyed state, timers and watermark, handed from one instance of a
/// plugin to the next (hot swap).
pub(crate) struct Handover {
    pub state: Box<dyn KeyedStateBackend>,
    pub timers: TimerService,
    pub watermark: i64,
}

impl HostState {
    /// Give state, timers and watermark away, keeping an empty placeholder
    /// state of the task's key groups.
    pub(crate) fn hand_over(&mut self, groups: weir_state::KeyGroups) -> Handover {
        let state = std::mem::replace(&mut self.state, Box::new(weir_state::HeapBackend::new(groups)));
        Handover { state, timers: std::mem::take(&mut self.timers), watermark: self.watermark }
    }

    /// Take state, timers and watermark over.
    pub(crate) fn take_over(&mut self, h: Handover) {
        self.state = h.state;
        self.timers = h.timers;
        self.watermark = h.watermark;
    }
}

/// Hot swap of one task: start a new instance over `old`'s state, give it
/// `old`'s timers and watermark, and open it. On any failure everything goes
/// back to `old`, which is as before.
pub(crate) fn swap_instance<T>(
    old: &mut HostState,
    groups: weir_state::KeyGroups,
    start: impl FnOnce(Box<dyn KeyedStateBackend>) -> Result<T, (crate::WasmError, Box<dyn KeyedStateBackend>)>,
    host: impl Fn(&mut T) -> &mut HostState,
    open: impl FnOnce(&mut T) -> Result<(), crate::WasmError>,
) -> Result<T, crate::WasmError> {
    let h = old.hand_over(groups.clone());
    let (timers, watermark) = (h.timers, h.watermark);
    let mut new = match start(h.state) {
        Ok(new) => new,
        Err((e, state)) => {
            old.take_over(Handover { state, timers, watermark });
            return Err(e);
        }
    };
    let d = host(&mut new);
    d.timers = timers;
    d.watermark = watermark;
    if let Err(e) = open(&mut new) {
        old.take_over(host(&mut new).hand_over(groups));
        return Err(e);
    }
    Ok(new)
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

fn scope<'a>(keys: &'a [u8], ends: &[u32], scope: u32) -> wasmtime::Result<&'a [u8]> {
    let i = scope as usize;
    if i >= ends.len() {
        return Err(wasmtime::Error::msg(format!(
            "state or timer call scoped to row {scope}, but the current input has {} rows",
            ends.len()
        )));
    }
    let start = if i == 0 { 0 } else { ends[i - 1] as usize };
    Ok(&keys[start..ends[i] as usize])
}

fn trap(e: weir_state::StateError) -> wasmtime::Error {
    wasmtime::Error::msg(e.to_string())
}

/// Split borrows: the scope key and the state backend at once.
macro_rules! with_key {
    ($self:ident, $scope:expr, |$key:ident, $st:ident| $body:expr) => {{
        $self.row = Some($scope);
        let $key = scope(&$self.scope_keys, &$self.scope_ends, $scope)?;
        let $st = &mut $self.state;
        $body.map_err(trap)
    }};
}

/// As `with_key!`, for a call that changes entry (`state`, key): what the
/// entry was is saved first when the call may be undone.
macro_rules! with_key_mut {
    ($self:ident, $state:expr, $scope:expr, |$key:ident, $st:ident| $body:expr) => {{
        $self.row = Some($scope);
        let $key = scope(&$self.scope_keys, &$self.scope_ends, $scope)?;
        $self.undo.save(&mut *$self.state, $state, $key).map_err(trap)?;
        let $st = &mut $self.state;
        $body.map_err(trap)
    }};
}

fn first_rows(keys: &[u8], ends: &[u32]) -> Vec<u32> {
    let mut seen: hashbrown::HashMap<&[u8], u32, foldhash::fast::RandomState> =
        hashbrown::HashMap::with_capacity_and_hasher(ends.len(), Default::default());
    let mut start = 0usize;
    ends.iter()
        .enumerate()
        .map(|(i, &end)| {
            let key = &keys[start..end as usize];
            start = end as usize;
            *seen.entry(key).or_insert(i as u32)
        })
        .collect()
}

impl types::Host for HostState {}

impl state::Host for HostState {
    fn declare(&mut self, d: state::StateDescriptor) -> wasmtime::Result<Result<u32, String>> {
        if !self.opening {
            return Ok(Err(format!("state '{}' declared outside open; declare states in open", d.name)));
        }
        let kind = match d.kind {
            state::StateKind::Value => StateKind::Value,
            state::StateKind::Map => StateKind::Map,
            state::StateKind::List => StateKind::List,
            state::StateKind::Reducing(r) => StateKind::Reducing(match r {
                state::Reducer::Sum => Reducer::Sum,
                state::Reducer::Min => Reducer::Min,
                state::Reducer::Max => Reducer::Max,
            }),
        };
        let descriptor = StateDescriptor { name: d.name, kind, ttl: d.ttl_ms.map(Duration::from_millis) };
        Ok(self.state.declare(descriptor).map_err(|e| e.to_string()))
    }

    fn value_get(&mut self, s: u32, sc: u32) -> wasmtime::Result<Option<Vec<u8>>> {
        with_key!(self, sc, |k, st| st.value_get(s, k))
    }

    fn value_set(&mut self, s: u32, sc: u32, value: Vec<u8>) -> wasmtime::Result<()> {
        with_key_mut!(self, s, sc, |k, st| st.value_set(s, k, &value))
    }

    fn value_get_column(&mut self, s: u32) -> wasmtime::Result<state::ValueColumn> {
        let first_row = match &self.first_rows {
            Some(f) => f.clone(),
            None => {
                let f = first_rows(&self.scope_keys, &self.scope_ends);
                self.first_rows = Some(f.clone());
                f
            }
        };
        let n = first_row.len();
        // The first row of each key in the batch reads it; the others share it.
        let keys: Vec<&[u8]> = (0..n)
            .filter(|&row| first_row[row] as usize == row)
            .map(|row| scope(&self.scope_keys, &self.scope_ends, row as u32))
            .collect::<Result<_, _>>()?;
        let mut bytes = Vec::new();
        let mut found = Vec::with_capacity(keys.len());
        self.state.value_get_many(s, &keys, &mut bytes, &mut found).map_err(trap)?;
        let mut col = state::ValueColumn { first_row, bytes, ends: Vec::with_capacity(n), present: Vec::with_capacity(n) };
        let mut next = found.iter();
        let mut last_end = 0;
        for row in 0..n {
            let mut present = false;
            if col.first_row[row] as usize == row {
                let &(end, p) = next.next().ok_or_else(|| {
                    wasmtime::Error::msg(format!("the state backend read {} of the batch's {} keys", found.len(), keys.len()))
                })?;
                (last_end, present) = (end, p);
            }
            col.ends.push(last_end as u32);
            col.present.push(present);
        }
        Ok(col)
    }

    fn value_set_rows(
        &mut self,
        s: u32,
        rows: Vec<u32>,
        bytes: Vec<u8>,
        ends: Vec<u32>,
        present: Vec<bool>,
    ) -> wasmtime::Result<()> {
        if ends.len() != rows.len() || present.len() != rows.len() {
            return Err(wasmtime::Error::msg(format!(
                "value-set-rows got {} rows, {} ends and {} present flags",
                rows.len(),
                ends.len(),
                present.len()
            )));
        }
        let mut keys = Vec::with_capacity(rows.len());
        let mut values = Vec::with_capacity(rows.len());
        let mut start = 0usize;
        for (i, &row) in rows.iter().enumerate() {
            let end = ends[i] as usize;
            if end < start || end > bytes.len() {
                return Err(wasmtime::Error::msg(format!("value-set-rows: end {end} of entry {i} is out of order or range")));
            }
            let key = scope(&self.scope_keys, &self.scope_ends, row)?;
            self.undo.save(&mut *self.state, s, key).map_err(trap)?;
            keys.push(key);
            values.push(present[i].then(|| &bytes[start..end]));
            start = end;
        }
        self.state.value_write_many(s, &keys, &values).map_err(trap)
    }

    fn map_get(&mut self, s: u32, sc: u32, map_key: Vec<u8>) -> wasmtime::Result<Option<Vec<u8>>> {
        with_key!(self, sc, |k, st| st.map_get(s, k, &map_key))
    }

    fn map_put(&mut self, s: u32, sc: u32, map_key: Vec<u8>, value: Vec<u8>) -> wasmtime::Result<()> {
        with_key_mut!(self, s, sc, |k, st| st.map_put(s, k, &map_key, &value))
    }

    fn map_remove(&mut self, s: u32, sc: u32, map_key: Vec<u8>) -> wasmtime::Result<bool> {
        with_key_mut!(self, s, sc, |k, st| st.map_remove(s, k, &map_key))
    }

    fn map_entries(&mut self, s: u32, sc: u32) -> wasmtime::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        with_key!(self, sc, |k, st| st.map_entries(s, k))
    }

    fn list_add(&mut self, s: u32, sc: u32, value: Vec<u8>) -> wasmtime::Result<()> {
        with_key_mut!(self, s, sc, |k, st| st.list_add(s, k, &value))
    }

    fn list_get(&mut self, s: u32, sc: u32) -> wasmtime::Result<Vec<Vec<u8>>> {
        with_key!(self, sc, |k, st| st.list_get(s, k))
    }

    fn list_update(&mut self, s: u32, sc: u32, values: Vec<Vec<u8>>) -> wasmtime::Result<()> {
        with_key_mut!(self, s, sc, |k, st| st.list_update(s, k, values))
    }

    fn reducing_add(&mut self, s: u32, sc: u32, value: i64) -> wasmtime::Result<i64> {
        with_key_mut!(self, s, sc, |k, st| st.reducing_add(s, k, value))
    }

    fn reducing_get(&mut self, s: u32, sc: u32) -> wasmtime::Result<Option<i64>> {
        with_key!(self, sc, |k, st| st.reducing_get(s, k))
    }

    fn clear(&mut self, s: u32, sc: u32) -> wasmtime::Result<()> {
        with_key_mut!(self, s, sc, |k, st| st.clear(s, k))
    }
}

impl HostState {
    /// Register a timer of the current input row `sc`, within `limits.timers`.
    fn register_timer(&mut self, domain: Domain, sc: u32, time: i64) -> wasmtime::Result<()> {
        self.row = Some(sc);
        let key = scope(&self.scope_keys, &self.scope_ends, sc)?;
        let before = self.timers.len();
        self.undo.save_timer(&self.timers, domain, time, key);
        self.timers.register(domain, time, key);
        if before >= self.limits.timers && self.timers.len() > before {
            self.timers.delete(domain, time, key);
            return Err(wasmtime::Error::new(Stop::Timers { limit: self.limits.timers }));
        }
        Ok(())
    }

    fn delete_timer(&mut self, domain: Domain, sc: u32, time: i64) -> wasmtime::Result<()> {
        self.row = Some(sc);
        let key = scope(&self.scope_keys, &self.scope_ends, sc)?;
        self.undo.save_timer(&self.timers, domain, time, key);
        self.timers.delete(domain, time, key);
        Ok(())
    }
}

impl timers::Host for HostState {
    fn register_event_time_timer(&mut self, sc: u32, time: i64) -> wasmtime::Result<()> {
        self.register_timer(Domain::Event, sc, time)
    }

    fn delete_event_time_timer(&mut self, sc: u32, time: i64) -> wasmtime::Result<()> {
        self.delete_timer(Domain::Event, sc, time)
    }

    fn register_processing_time_timer(&mut self, sc: u32, time: i64) -> wasmtime::Result<()> {
        self.register_timer(Domain::Processing, sc, time)
    }

    fn delete_processing_time_timer(&mut self, sc: u32, time: i64) -> wasmtime::Result<()> {
        self.delete_timer(Domain::Processing, sc, time)
    }

    fn current_watermark(&mut self) -> wasmtime::Result<i64> {
        Ok(self.watermark)
    }

    fn current_processing_time(&mut self) -> wasmtime::Result<i64> {
        Ok(now_ms())
    }
}

impl runtime::Host for HostState {
    fn get_task_info(&mut self) -> wasmtime::Result<runtime::TaskInfo> {
        Ok(self.info.clone())
    }

    fn declare_output(&mut self, name: String) -> wasmtime::Result<Result<u32, String>> {
        if !self.opening {
            return Ok(Err(format!("side output '{name}' declared outside open; declare outputs in open")));
        }
        if name.is_empty() {
            return Ok(Err("a side output needs a name".into()));
        }
        let n = match self.outputs.iter().position(|o| *o == name) {
            Some(i) => i,
            None => {
                self.outputs.push(name);
                self.outputs.len() - 1
            }
        };
        Ok(Ok(n as u32 + 1))
    }

    fn declare_counter(&mut self, name: String) -> wasmtime::Result<Result<u32, String>> {
        if !self.opening {
            return Ok(Err(format!("counter '{name}' declared outside open; declare counters in open")));
        }
        let n = match self.counters.iter().position(|c| c.0 == name) {
            Some(i) => i,
            None => {
                self.counters.push((name, 0));
                self.counters.len() - 1
            }
        };
        Ok(Ok(n as u32))
    }

    fn counter_add(&mut self, counter: u32, delta: u64) -> wasmtime::Result<()> {
        let c = self
            .counters
            .get_mut(counter as usize)
            .ok_or_else(|| wasmtime::Error::msg(format!("no counter has id {counter}")))?;
        c.1 = c.1.wrapping_add(delta);
        Ok(())
    }

    fn log(&mut self, level: runtime::Level, message: String) -> wasmtime::Result<()> {
        self.log.line(level, None, message.as_bytes(), 0);
        Ok(())
    }

    fn report_panic(&mut self, row: Option<u32>, message: String) -> wasmtime::Result<()> {
        self.panic = Some((row, cut(message, self.limits.error_message)));
        Ok(())
    }
}

