//! In-memory keyed state.

use std::io::Write;
use std::path::Path;

use foldhash::fast::RandomState;
use hashbrown::HashMap;
use serde::{Deserialize, Serialize};

use crate::keys::key_group;
use crate::{KeyGroups, KeyedStateBackend, MapEntries, RestoreFiles, SnapshotFile, StateDescriptor, StateError, StateId, StateKind};

type Map<K, V> = HashMap<K, V, RandomState>;

enum Data {
    Value(Vec<u8>),
    Map(Map<Vec<u8>, Vec<u8>>),
    List(Vec<Vec<u8>>),
    Reducing(i64),
}

struct Entry {
    data: Data,
    /// Processing time of the last write (for TTL).
    written_at: i64,
}

struct State {
    descriptor: StateDescriptor,
    ttl_ms: Option<i64>,
    entries: Map<Box<[u8]>, Entry>,
}

/// Keyed state on the heap: one hash map per declared state.
pub struct HeapBackend {
    states: Vec<State>,
    now_ms: i64,
    key_groups: KeyGroups,
}

/// The name of a heap snapshot's one file.
const SNAPSHOT_FILE: &str = "heap.state";
const MAGIC: &[u8; 8] = b"WEIRHEAP";
const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
struct SnapshotHeader {
    max_parallelism: u32,
    states: Vec<StateDescriptor>,
}

/// One key's entry of one state, as written (borrowing) ...
#[derive(Serialize)]
struct EntryOut<'a> {
    state: u32,
    key_group: u32,
    key: &'a [u8],
    written_at: i64,
    data: DataOut<'a>,
}

#[derive(Serialize)]
enum DataOut<'a> {
    Value(&'a [u8]),
    Map(Vec<(&'a [u8], &'a [u8])>),
    List(&'a [Vec<u8>]),
    Reducing(i64),
}

/// ... and as read.
#[derive(Deserialize)]
struct EntryIn {
    state: u32,
    key_group: u32,
    key: Vec<u8>,
    written_at: i64,
    data: DataIn,
}

#[derive(Deserialize)]
enum DataIn {
    Value(Vec<u8>),
    Map(Vec<(Vec<u8>, Vec<u8>)>),
    List(Vec<Vec<u8>>),
    Reducing(i64),
}

impl HeapBackend {
    /// An empty backend owning `key_groups`.
    pub fn new(key_groups: KeyGroups) -> Self {
        HeapBackend { states: Vec::new(), now_ms: 0, key_groups }
    }

    fn expired(&self, ttl_ms: Option<i64>, e: &Entry) -> bool {
        ttl_ms.is_some_and(|ttl| self.now_ms.saturating_sub(e.written_at) >= ttl)
    }

    fn restore_one(&mut self, name: &str, bytes: &[u8]) -> Result<(), StateError> {
        let bad = |message: String| StateError::Restore { file: name.to_string(), message };
        let rest = bytes
            .strip_prefix(MAGIC.as_slice())
            .ok_or_else(|| bad("not a heap state snapshot (bad magic)".into()))?;
        let (format, rest) = rest.split_at_checked(4).ok_or_else(|| bad("truncated header".into()))?;
        let format = u32::from_le_bytes(format.try_into().expect("4 bytes"));
        if format != FORMAT {
            return Err(bad(format!("snapshot format {format}; this version reads format {FORMAT}")));
        }
        let (header, mut rest): (SnapshotHeader, _) =
            postcard::take_from_bytes(rest).map_err(|e| bad(format!("bad header: {e}")))?;
        if header.max_parallelism != self.key_groups.max_parallelism {
            return Err(bad(format!(
                "it was taken with max_parallelism {} (key groups); this pipeline has {}; the number of key groups cannot change",
                header.max_parallelism, self.key_groups.max_parallelism
            )));
        }
        // Map the snapshot's state ids onto ours, declaring what is new.
        let mut ids = Vec::with_capacity(header.states.len());
        for d in header.states {
            ids.push(self.declare(d)?);
        }
        while !rest.is_empty() {
            let (e, r): (EntryIn, _) = postcard::take_from_bytes(rest).map_err(|e| bad(format!("bad entry: {e}")))?;
            rest = r;
            if !self.key_groups.contains(e.key_group) {
                continue;
            }
            let id = *ids.get(e.state as usize).ok_or_else(|| bad(format!("entry of unknown state {}", e.state)))?;
            let data = match e.data {
                DataIn::Value(v) => Data::Value(v),
                DataIn::Map(m) => Data::Map(m.into_iter().collect()),
                DataIn::List(l) => Data::List(l),
                DataIn::Reducing(r) => Data::Reducing(r),
            };
            self.states[id as usize].entries.insert(e.key.into_boxed_slice(), Entry { data, written_at: e.written_at });
        }
        Ok(())
    }

    fn state(&mut self, id: StateId, used_as: &'static str) -> Result<&mut State, StateError> {
        let s = self.states.get_mut(id as usize).ok_or(StateError::UnknownState(id))?;
        if s.descriptor.kind.name() != used_as {
            return Err(StateError::WrongKind { name: s.descriptor.name.clone(), kind: s.descriptor.kind.name(), used_as });
        }
        Ok(s)
    }

    /// The live entry of `key`, after dropping it if it expired.
    fn live<'a>(&'a mut self, id: StateId, used_as: &'static str, key: &[u8]) -> Result<Option<&'a mut Entry>, StateError> {
        let now = self.now_ms;
        let s = self.state(id, used_as)?;
        if let Some(ttl) = s.ttl_ms
            && s.entries.get(key).is_some_and(|e| now.saturating_sub(e.written_at) >= ttl)
        {
            s.entries.remove(key);
        }
        Ok(s.entries.get_mut(key))
    }

    /// The entry of `key` for writing (one hash lookup), created by `init` if
    /// absent or expired.
    fn write<'a>(
        &'a mut self,
        id: StateId,
        used_as: &'static str,
        key: &[u8],
        init: impl FnOnce() -> Data,
    ) -> Result<&'a mut Data, StateError> {
        let now = self.now_ms;
        let s = self.state(id, used_as)?;
        let ttl = s.ttl_ms;
        let mut init = Some(init);
        let e = s.entries.entry_ref(key).or_insert_with(|| Entry {
            data: (init.take().expect("init once"))(),
            written_at: now,
        });
        if let Some(init) = init.take()
            && ttl.is_some_and(|t| now.saturating_sub(e.written_at) >= t)
        {
            e.data = init();
        }
        e.written_at = now;
        Ok(&mut e.data)
    }
}

impl KeyedStateBackend for HeapBackend {
    fn declare(&mut self, descriptor: StateDescriptor) -> Result<StateId, StateError> {
        if descriptor.name.is_empty() {
            return Err(StateError::EmptyName);
        }
        if let Some(i) = self.states.iter().position(|s| s.descriptor.name == descriptor.name) {
            let existing = &self.states[i].descriptor;
            if *existing != descriptor {
                return Err(StateError::Conflict {
                    name: descriptor.name.clone(),
                    existing: existing.to_string(),
                    requested: descriptor.to_string(),
                });
            }
            return Ok(i as StateId);
        }
        let ttl_ms = descriptor.ttl.map(|t| t.as_millis().min(i64::MAX as u128) as i64);
        self.states.push(State { descriptor, ttl_ms, entries: Map::default() });
        Ok((self.states.len() - 1) as StateId)
    }

    fn descriptors(&self) -> Vec<StateDescriptor> {
        self.states.iter().map(|s| s.descriptor.clone()).collect()
    }

    fn set_time(&mut self, now_ms: i64) {
        self.now_ms = now_ms;
    }

    fn value_get(&mut self, state: StateId, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Ok(match self.live(state, "value", key)? {
            Some(Entry { data: Data::Value(v), .. }) => Some(v.clone()),
            _ => None,
        })
    }

    fn value_set(&mut self, state: StateId, key: &[u8], value: &[u8]) -> Result<(), StateError> {
        if let Data::Value(v) = self.write(state, "value", key, || Data::Value(Vec::new()))? {
            v.clear();
            v.extend_from_slice(value);
        }
        Ok(())
    }

    fn map_get(&mut self, state: StateId, key: &[u8], map_key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Ok(match self.live(state, "map", key)? {
            Some(Entry { data: Data::Map(m), .. }) => m.get(map_key).cloned(),
            _ => None,
        })
    }

    fn map_put(&mut self, state: StateId, key: &[u8], map_key: &[u8], value: &[u8]) -> Result<(), StateError> {
        if let Data::Map(m) = self.write(state, "map", key, || Data::Map(Map::default()))? {
            m.insert(map_key.to_vec(), value.to_vec());
        }
        Ok(())
    }

    fn map_remove(&mut self, state: StateId, key: &[u8], map_key: &[u8]) -> Result<bool, StateError> {
        let removed = match self.live(state, "map", key)? {
            Some(Entry { data: Data::Map(m), .. }) => m.remove(map_key).is_some(),
            _ => false,
        };
        if removed && matches!(self.live(state, "map", key)?, Some(Entry { data: Data::Map(m), .. }) if m.is_empty()) {
            self.states[state as usize].entries.remove(key);
        }
        Ok(removed)
    }

    fn map_entries(&mut self, state: StateId, key: &[u8]) -> Result<MapEntries, StateError> {
        Ok(match self.live(state, "map", key)? {
            Some(Entry { data: Data::Map(m), .. }) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            _ => Vec::new(),
        })
    }

    fn list_add(&mut self, state: StateId, key: &[u8], value: &[u8]) -> Result<(), StateError> {
        if let Data::List(l) = self.write(state, "list", key, || Data::List(Vec::new()))? {
            l.push(value.to_vec());
        }
        Ok(())
    }

    fn list_get(&mut self, state: StateId, key: &[u8]) -> Result<Vec<Vec<u8>>, StateError> {
        Ok(match self.live(state, "list", key)? {
            Some(Entry { data: Data::List(l), .. }) => l.clone(),
            _ => Vec::new(),
        })
    }

    fn list_update(&mut self, state: StateId, key: &[u8], values: Vec<Vec<u8>>) -> Result<(), StateError> {
        if values.is_empty() {
            return self.clear(state, key);
        }
        *self.write(state, "list", key, || Data::List(Vec::new()))? = Data::List(values);
        Ok(())
    }

    fn reducing_add(&mut self, state: StateId, key: &[u8], value: i64) -> Result<i64, StateError> {
        let StateKind::Reducing(reducer) = self.state(state, "reducing")?.descriptor.kind else {
            unreachable!("state() checked the kind")
        };
        let mut fresh = false;
        let data = self.write(state, "reducing", key, || {
            fresh = true;
            Data::Reducing(value)
        })?;
        let Data::Reducing(acc) = data else { unreachable!("reducing state holds reducing data") };
        if !fresh {
            *acc = reducer.apply(*acc, value);
        }
        Ok(*acc)
    }

    fn reducing_get(&mut self, state: StateId, key: &[u8]) -> Result<Option<i64>, StateError> {
        Ok(match self.live(state, "reducing", key)? {
            Some(Entry { data: Data::Reducing(v), .. }) => Some(*v),
            _ => None,
        })
    }

    fn clear(&mut self, state: StateId, key: &[u8]) -> Result<(), StateError> {
        let s = self.states.get_mut(state as usize).ok_or(StateError::UnknownState(state))?;
        s.entries.remove(key);
        Ok(())
    }

    fn len(&mut self, state: StateId) -> Result<usize, StateError> {
        let s = self.states.get(state as usize).ok_or(StateError::UnknownState(state))?;
        Ok(match s.ttl_ms {
            Some(_) => s.entries.values().filter(|e| !self.expired(s.ttl_ms, e)).count(),
            None => s.entries.len(),
        })
    }

    fn snapshot(&mut self, dir: &Path) -> Result<Vec<SnapshotFile>, StateError> {
        let path = dir.join(SNAPSHOT_FILE);
        let io = |e: std::io::Error| StateError::storage(format!("writing {}", path.display()), e);
        let file = std::fs::File::create(&path).map_err(io)?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
        w.write_all(MAGIC).map_err(io)?;
        w.write_all(&FORMAT.to_le_bytes()).map_err(io)?;
        let header = SnapshotHeader { max_parallelism: self.key_groups.max_parallelism, states: self.descriptors() };
        let enc = |e: postcard::Error| StateError::storage("encoding a state snapshot", e);
        w.write_all(&postcard::to_allocvec(&header).map_err(enc)?).map_err(io)?;
        let mut buf = Vec::new();
        let max_par = self.key_groups.max_parallelism;
        for (id, s) in self.states.iter().enumerate() {
            for (key, e) in &s.entries {
                if self.expired(s.ttl_ms, e) {
                    continue;
                }
                let data = match &e.data {
                    Data::Value(v) => DataOut::Value(v),
                    Data::Map(m) => DataOut::Map(m.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect()),
                    Data::List(l) => DataOut::List(l),
                    Data::Reducing(r) => DataOut::Reducing(*r),
                };
                let entry = EntryOut { state: id as u32, key_group: key_group(key, max_par), key, written_at: e.written_at, data };
                buf.clear();
                buf = postcard::to_extend(&entry, buf).map_err(enc)?;
                w.write_all(&buf).map_err(io)?;
            }
        }
        let file = w.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        Ok(vec![SnapshotFile { path, name: SNAPSHOT_FILE.into(), shared: false }])
    }

    fn restore(&mut self, snapshots: &[RestoreFiles]) -> Result<(), StateError> {
        for files in snapshots {
            for (name, path) in files {
                let file = path.display().to_string();
                if name != SNAPSHOT_FILE {
                    let message = format!(
                        "'{name}' is not a file of a heap-backend snapshot (was the state checkpointed with another state.backend?)"
                    );
                    return Err(StateError::Restore { file, message });
                }
                let bytes = std::fs::read(path).map_err(|e| StateError::Restore { file: file.clone(), message: e.to_string() })?;
                self.restore_one(&file, &bytes)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Reducer;
    use std::time::Duration;

    fn desc(name: &str, kind: StateKind) -> StateDescriptor {
        StateDescriptor { name: name.into(), kind, ttl: None }
    }

    #[test]
    fn value_state_is_per_key() {
        let mut b = HeapBackend::new(KeyGroups::all(128));
        let s = b.declare(desc("count", StateKind::Value)).unwrap();
        assert_eq!(b.value_get(s, b"a").unwrap(), None);
        b.value_set(s, b"a", b"1").unwrap();
        b.value_set(s, b"b", b"2").unwrap();
        b.value_set(s, b"a", b"3").unwrap();
        assert_eq!(b.value_get(s, b"a").unwrap().as_deref(), Some(&b"3"[..]));
        assert_eq!(b.value_get(s, b"b").unwrap().as_deref(), Some(&b"2"[..]));
        assert_eq!(b.len(s).unwrap(), 2);
        b.clear(s, b"a").unwrap();
        assert_eq!(b.value_get(s, b"a").unwrap(), None);
    }

    #[test]
    fn map_list_and_reducing_state() {
        let mut b = HeapBackend::new(KeyGroups::all(128));
        let m = b.declare(desc("seen", StateKind::Map)).unwrap();
        let l = b.declare(desc("events", StateKind::List)).unwrap();
        let r = b.declare(desc("max", StateKind::Reducing(Reducer::Max))).unwrap();
        b.map_put(m, b"k", b"x", b"1").unwrap();
        b.map_put(m, b"k", b"y", b"2").unwrap();
        assert_eq!(b.map_get(m, b"k", b"y").unwrap().as_deref(), Some(&b"2"[..]));
        let mut e = b.map_entries(m, b"k").unwrap();
        e.sort();
        assert_eq!(e, vec![(b"x".to_vec(), b"1".to_vec()), (b"y".to_vec(), b"2".to_vec())]);
        assert!(b.map_remove(m, b"k", b"x").unwrap());
        assert!(!b.map_remove(m, b"k", b"x").unwrap());
        assert!(b.map_remove(m, b"k", b"y").unwrap());
        assert_eq!(b.len(m).unwrap(), 0, "an emptied map leaves no entry");

        b.list_add(l, b"k", b"a").unwrap();
        b.list_add(l, b"k", b"b").unwrap();
        assert_eq!(b.list_get(l, b"k").unwrap(), vec![b"a".to_vec(), b"b".to_vec()]);
        b.list_update(l, b"k", vec![b"c".to_vec()]).unwrap();
        assert_eq!(b.list_get(l, b"k").unwrap(), vec![b"c".to_vec()]);

        assert_eq!(b.reducing_add(r, b"k", 5).unwrap(), 5);
        assert_eq!(b.reducing_add(r, b"k", 3).unwrap(), 5);
        assert_eq!(b.reducing_add(r, b"k", 9).unwrap(), 9);
        assert_eq!(b.reducing_get(r, b"k").unwrap(), Some(9));
        assert_eq!(b.reducing_get(r, b"other").unwrap(), None);
    }

    #[test]
    fn ttl_hides_and_purges_entries_not_written_in_time() {
        let mut b = HeapBackend::new(KeyGroups::all(128));
        let s = b
            .declare(StateDescriptor { name: "s".into(), kind: StateKind::Reducing(Reducer::Sum), ttl: Some(Duration::from_millis(100)) })
            .unwrap();
        b.set_time(1_000);
        b.reducing_add(s, b"k", 1).unwrap();
        b.set_time(1_099);
        assert_eq!(b.reducing_add(s, b"k", 1).unwrap(), 2, "a write refreshes the TTL");
        b.set_time(1_198);
        assert_eq!(b.reducing_get(s, b"k").unwrap(), Some(2));
        b.set_time(1_199);
        assert_eq!(b.len(s).unwrap(), 0);
        assert_eq!(b.reducing_get(s, b"k").unwrap(), None);
        assert_eq!(b.reducing_add(s, b"k", 1).unwrap(), 1, "an expired entry starts afresh");
    }

    #[test]
    fn declaring_errors_name_the_state() {
        let mut b = HeapBackend::new(KeyGroups::all(128));
        let a = b.declare(desc("a", StateKind::Value)).unwrap();
        assert_eq!(b.declare(desc("a", StateKind::Value)).unwrap(), a);
        let err = b.declare(desc("a", StateKind::List)).unwrap_err().to_string();
        assert_eq!(err, "state 'a' is already declared as a value state without TTL; it cannot be declared again as a list state without TTL");
        let err = b.list_add(a, b"k", b"v").unwrap_err().to_string();
        assert_eq!(err, "state 'a' is a value state; it cannot be used as a list state");
        assert_eq!(b.value_get(7, b"k").unwrap_err(), StateError::UnknownState(7));
        assert_eq!(b.declare(desc("", StateKind::Value)).unwrap_err(), StateError::EmptyName);
    }
}
