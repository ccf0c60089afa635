//! The undo log of one guest call (`on_error: skip | dead-letter`): before a
//! state entry or a timer changes for the first time in the call, what it was
//! is saved; undoing puts every saved entry and timer back, so a failed batch
//! leaves state and timers as they were before it.

use std::collections::HashSet;

use weir_engine::{Domain, TimerService};
use weir_state::{KeyedStateBackend, MapEntries, StateError, StateId, StateKind};

enum Prior {
    Value(Option<Vec<u8>>),
    Map(MapEntries),
    List(Vec<Vec<u8>>),
    Reducing(Option<i64>),
}

#[derive(Default)]
pub(crate) struct UndoLog {
    /// Set while a call that may be undone runs.
    active: bool,
    /// Per state id, the keys saved in this call (looked up by `&[u8]`, so
    /// a write to an entry already saved allocates nothing).
    saved: Vec<HashSet<Vec<u8>>>,
    entries: Vec<(StateId, Vec<u8>, Prior)>,
    /// Timers touched: whether each was registered before.
    timers: Vec<(Domain, i64, Vec<u8>, bool)>,
    /// The kind of each declared state (by id), looked up once.
    kinds: Vec<StateKind>,
}

impl UndoLog {
    /// A new call begins: forget the last one's log and start saving.
    pub fn begin(&mut self) {
        self.active = true;
        self.saved.iter_mut().for_each(HashSet::clear);
        self.entries.clear();
        self.timers.clear();
    }

    /// The call ended: changes from now on (timers firing) are not undone.
    pub fn end(&mut self) {
        self.active = false;
    }

    /// Before entry (`state`, `key`) changes.
    pub fn save(&mut self, backend: &mut dyn KeyedStateBackend, state: StateId, key: &[u8]) -> Result<(), StateError> {
        if !self.active || self.saved.get(state as usize).is_some_and(|s| s.contains(key)) {
            return Ok(());
        }
        if state as usize >= self.kinds.len() {
            self.kinds = backend.descriptors().iter().map(|d| d.kind).collect();
        }
        let Some(kind) = self.kinds.get(state as usize).copied() else {
            // An undeclared state: the call fails on it and changes nothing.
            return Ok(());
        };
        let prior = match kind {
            StateKind::Value => Prior::Value(backend.value_get(state, key)?),
            StateKind::Map => Prior::Map(backend.map_entries(state, key)?),
            StateKind::List => Prior::List(backend.list_get(state, key)?),
            StateKind::Reducing(_) => Prior::Reducing(backend.reducing_get(state, key)?),
        };
        if self.saved.len() <= state as usize {
            self.saved.resize_with(state as usize + 1, HashSet::new);
        }
        self.saved[state as usize].insert(key.to_vec());
        self.entries.push((state, key.to_vec(), prior));
        Ok(())
    }

    /// Before timer (`domain`, `time`, `key`) is registered or deleted.
    pub fn save_timer(&mut self, timers: &TimerService, domain: Domain, time: i64, key: &[u8]) {
        if self.active {
            self.timers.push((domain, time, key.to_vec(), timers.contains(domain, time, key)));
        }
    }

    /// Put back everything the call changed.
    pub fn undo(&mut self, backend: &mut dyn KeyedStateBackend, timers: &mut TimerService) -> Result<(), StateError> {
        self.active = false;
        for (state, key, prior) in self.entries.drain(..) {
            backend.clear(state, &key)?;
            match prior {
                Prior::Value(Some(v)) => backend.value_set(state, &key, &v)?,
                Prior::Map(entries) => {
                    for (k, v) in entries {
                        backend.map_put(state, &key, &k, &v)?;
                    }
                }
                Prior::List(values) if !values.is_empty() => backend.list_update(state, &key, values)?,
                Prior::Reducing(Some(v)) => {
                    backend.reducing_add(state, &key, v)?;
                }
                Prior::Value(None) | Prior::List(_) | Prior::Reducing(None) => {}
            }
        }
        self.saved.iter_mut().for_each(HashSet::clear);
        // Latest first, so a timer ends as it was before its first change.
        for (domain, time, key, was) in self.timers.drain(..).rev() {
            if was {
                timers.register(domain, time, &key);
            } else {
                timers.delete(domain, time, &key);
            }
        }
        Ok(())
    }
}
