//! In-memory keyed state.
//!
//! Each state's entries are split by key group into tables (see [`Slot`]). A
//! snapshot only shares those tables behind `Arc`s (no pause proportional to
//! the state) and serialises them on another thread, dropping each `Arc` once it is
//! written; a write to a key group whose map the snapshot still holds copies
//! that one map first (copy-on-write per key group, as Flink's heap backend
//! does per state-map version).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use foldhash::fast::RandomState;
use hashbrown::HashMap;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::keys::{key_group, key_group_of_hash, key_hash};
use crate::table::{Key, Table};
use crate::{
    check_lengths, KeyGroups, KeyedStateBackend, MapEntries, RestoreFiles, SnapshotFile, SnapshotWriter, StateDescriptor, StateError,
    StateId, StateKind,
};

type Map<K, V> = HashMap<K, V, RandomState>;
/// A value state's value, inline when short.
type Value = SmallVec<[u8; 16]>;
/// One key group's entries of one state.
type Group = Table<Entry>;

#[derive(Clone)]
enum Data {
    Value(Value),
    /// Boxed: a map is rare next to values, and inline it would make every
    /// slot of the table larger (more cache lines per lookup).
    Map(Box<Map<Vec<u8>, Vec<u8>>>),
    List(Vec<Vec<u8>>),
    Reducing(i64),
}

#[derive(Clone)]
struct Entry {
    data: Data,
    /// Processing time of the last write (for TTL).
    written_at: i64,
}

struct State {
    descriptor: StateDescriptor,
    ttl_ms: Option<i64>,
    /// Per key group of the backend's range, then one for keys outside it.
    groups: Vec<Slot>,
}

/// One key group's table of one state: the backend's own, or shared with a
/// snapshot that has not written it yet. An owned table is written without
/// the atomic check `Arc::make_mut` would make on every write; a shared one is
/// taken back at its first write (copied only if the snapshot still holds it).
enum Slot {
    Owned(Group),
    Shared(Arc<Group>),
}

impl Default for Slot {
    fn default() -> Self {
        Slot::Owned(Group::default())
    }
}

impl std::ops::Deref for Slot {
    type Target = Group;
    #[inline]
    fn deref(&self) -> &Group {
        match self {
            Slot::Owned(g) => g,
            Slot::Shared(g) => g,
        }
    }
}

impl Slot {
    #[inline]
    fn make_mut(&mut self) -> &mut Group {
        if let Slot::Shared(_) = self {
            let Slot::Shared(shared) = std::mem::take(self) else { unreachable!("matched above") };
            *self = Slot::Owned(Arc::try_unwrap(shared).unwrap_or_else(|still_shared| (*still_shared).clone()));
        }
        match self {
            Slot::Owned(g) => g,
            Slot::Shared(_) => unreachable!("taken back above"),
        }
    }

    /// The table, shared from now on with the caller.
    fn share(&mut self) -> Arc<Group> {
        if let Slot::Owned(g) = self {
            *self = Slot::Shared(Arc::new(std::mem::take(g)));
        }
        match self {
            Slot::Shared(g) => g.clone(),
            Slot::Owned(_) => unreachable!("shared above"),
        }
    }
}

/// Keyed state on the heap: per declared state, one hash table per key group.
pub struct HeapBackend {
    states: Vec<State>,
    now_ms: i64,
    key_groups: KeyGroups,
    /// Mixed into every table hash, random per backend: keys chosen to share
    /// a table slot on one host do not on another (see [`Place`]).
    seed: u64,
    /// The places of the keys of the batch being read or written (kept to
    /// reuse its allocation).
    places: Vec<Place>,
}

/// Where a key's entries are: its key group's table (an index into a state's
/// `groups`) and its hash in that table. Both come from one hash of the key:
/// the stable key hash picks the key group, and the same hash mixed with the
/// backend's seed places it in the table (within one key group the key
/// hashes share their remainder, so the table cannot use them unmixed).
#[derive(Clone, Copy)]
struct Place {
    group: usize,
    hash: u64,
}

/// How many keys ahead of the one being read a batched read asks the CPU to
/// load (enough misses in flight to cover memory latency, few enough that the
/// loaded lines are still in L1 when their turn comes).
const PREFETCH_AHEAD: usize = 12;

/// A bijective 64-bit mix (the SplitMix64 finaliser).
#[inline]
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
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

/// What an access uses a state as (compared without touching strings).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Use {
    Value,
    Map,
    List,
    Reducing,
}

impl Use {
    fn of(kind: StateKind) -> Use {
        match kind {
            StateKind::Value => Use::Value,
            StateKind::Map => Use::Map,
            StateKind::List => Use::List,
            StateKind::Reducing(_) => Use::Reducing,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Use::Value => "value",
            Use::Map => "map",
            Use::List => "list",
            Use::Reducing => "reducing",
        }
    }
}

fn expired(ttl_ms: Option<i64>, now: i64, e: &Entry) -> bool {
    ttl_ms.is_some_and(|ttl| now.saturating_sub(e.written_at) >= ttl)
}

/// What a snapshot's writer needs: the states' descriptors and their groups.
struct Frozen {
    path: PathBuf,
    max_parallelism: u32,
    /// The first key group of the backend's range (group `i` is `first + i`).
    first: u32,
    now_ms: i64,
    states: Vec<(StateDescriptor, Option<i64>, Vec<Arc<Group>>)>,
}

impl Frozen {
    fn write(self) -> Result<Vec<SnapshotFile>, StateError> {
        let path = self.path;
        let io = |e: std::io::Error| StateError::storage(format!("writing {}", path.display()), e);
        let file = std::fs::File::create(&path).map_err(io)?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
        w.write_all(MAGIC).map_err(io)?;
        w.write_all(&FORMAT.to_le_bytes()).map_err(io)?;
        let descriptors = self.states.iter().map(|(d, _, _)| d.clone()).collect();
        let header = SnapshotHeader { max_parallelism: self.max_parallelism, states: descriptors };
        let enc = |e: postcard::Error| StateError::storage("encoding a state snapshot", e);
        w.write_all(&postcard::to_allocvec(&header).map_err(enc)?).map_err(io)?;
        let mut buf = Vec::new();
        for (id, (_, ttl_ms, groups)) in self.states.into_iter().enumerate() {
            // Each group's Arc is dropped once written: later writes to it
            // no longer copy it.
            let out_of_range = groups.len() - 1;
            for (slot, group) in groups.into_iter().enumerate() {
                for (key, e) in group.iter() {
                    if expired(ttl_ms, self.now_ms, e) {
                        continue;
                    }
                    let data = match &e.data {
                        Data::Value(v) => DataOut::Value(v),
                        Data::Map(m) => DataOut::Map(m.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect()),
                        Data::List(l) => DataOut::List(l),
                        Data::Reducing(r) => DataOut::Reducing(*r),
                    };
                    let key_group = if slot == out_of_range {
                        key_group(key, self.max_parallelism)
                    } else {
                        self.first + slot as u32
                    };
                    let entry = EntryOut { state: id as u32, key_group, key, written_at: e.written_at, data };
                    buf.clear();
                    buf = postcard::to_extend(&entry, buf).map_err(enc)?;
                    w.write_all(&buf).map_err(io)?;
                }
            }
        }
        // No fsync: a staged snapshot is read back at once to be stored;
        // durability is the checkpoint storage's business.
        w.into_inner().map_err(|e| io(e.into_error()))?;
        Ok(vec![SnapshotFile { path, name: SNAPSHOT_FILE.into(), shared: false }])
    }
}

impl HeapBackend {
    /// An empty backend owning `key_groups`.
    pub fn new(key_groups: KeyGroups) -> Self {
        use std::hash::BuildHasher;
        let seed = RandomState::default().hash_one(0u64);
        HeapBackend { states: Vec::new(), now_ms: 0, key_groups, seed, places: Vec::new() }
    }

    /// Where `key`'s entries are (one hash of the key).
    #[inline]
    fn place(&self, key: &[u8]) -> Place {
        let hash = key_hash(key);
        let range = &self.key_groups.range;
        let kg = key_group_of_hash(hash, self.key_groups.max_parallelism);
        let group = if range.contains(&kg) { (kg - range.start) as usize } else { range.len() };
        Place { group, hash: mix(hash ^ self.seed) }
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
                DataIn::Value(v) => Data::Value(Value::from_vec(v)),
                DataIn::Map(m) => Data::Map(Box::new(m.into_iter().collect())),
                DataIn::List(l) => Data::List(l),
                DataIn::Reducing(r) => Data::Reducing(r),
            };
            let p = self.place(&e.key);
            let group = self.states[id as usize].groups[p.group].make_mut();
            group.insert(p.hash, Key::from_vec(e.key), Entry { data, written_at: e.written_at });
        }
        Ok(())
    }

    fn checked(&self, id: StateId, used_as: Use) -> Result<&State, StateError> {
        let s = self.states.get(id as usize).ok_or(StateError::UnknownState(id))?;
        if Use::of(s.descriptor.kind) != used_as {
            let (kind, used_as) = (s.descriptor.kind.name(), used_as.name());
            return Err(StateError::WrongKind { name: s.descriptor.name.clone(), kind, used_as });
        }
        Ok(s)
    }

    /// The live entry of `key`, if any (reads never copy a group).
    fn live(&self, id: StateId, used_as: Use, key: &[u8]) -> Result<Option<&Entry>, StateError> {
        self.live_at(id, used_as, key, self.place(key))
    }

    /// The live entry of `key`, which is at `p`.
    #[inline]
    fn live_at(&self, id: StateId, used_as: Use, key: &[u8], p: Place) -> Result<Option<&Entry>, StateError> {
        let s = self.checked(id, used_as)?;
        let e = s.groups[p.group].get(p.hash, key);
        Ok(e.filter(|e| !expired(s.ttl_ms, self.now_ms, e)))
    }

    /// The group of state `id` at `p`, for writing.
    #[inline]
    fn group_mut(&mut self, id: StateId, used_as: Use, p: Place) -> Result<(&mut Group, Option<i64>), StateError> {
        self.checked(id, used_as)?;
        let s = &mut self.states[id as usize];
        Ok((s.groups[p.group].make_mut(), s.ttl_ms))
    }

    /// The places of `keys`, into `self.places`.
    fn place_all(&mut self, keys: &[&[u8]]) {
        let mut places = std::mem::take(&mut self.places);
        places.clear();
        places.extend(keys.iter().map(|k| self.place(k)));
        self.places = places;
    }

    /// The entry of `key` for writing (one hash lookup), created by `init` if
    /// absent or expired.
    fn write<'a>(
        &'a mut self,
        id: StateId,
        used_as: Use,
        key: &[u8],
        init: impl FnOnce() -> Data,
    ) -> Result<&'a mut Data, StateError> {
        let p = self.place(key);
        self.write_at(id, used_as, key, p, init)
    }

    /// As `write`, for `key` at `p`.
    #[inline]
    fn write_at<'a>(
        &'a mut self,
        id: StateId,
        used_as: Use,
        key: &[u8],
        p: Place,
        init: impl FnOnce() -> Data,
    ) -> Result<&'a mut Data, StateError> {
        let now = self.now_ms;
        let (group, ttl) = self.group_mut(id, used_as, p)?;
        let mut init = Some(init);
        let e = group.get_or_insert_with(p.hash, key, || Entry { data: (init.take().expect("init once"))(), written_at: now });
        if let Some(init) = init.take()
            && ttl.is_some_and(|t| now.saturating_sub(e.written_at) >= t)
        {
            e.data = init();
        }
        e.written_at = now;
        Ok(&mut e.data)
    }

    /// Removes `key` (at `p`) from state `state`, which exists; copies a
    /// shared group only if the key is in it.
    fn clear_at(&mut self, state: StateId, key: &[u8], p: Place) {
        let group = &mut self.states[state as usize].groups[p.group];
        if group.contains_key(p.hash, key) {
            group.make_mut().remove(p.hash, key);
        }
    }
}

impl KeyedStateBackend for HeapBackend {
    fn declare(&mut self, descriptor: StateDescriptor) -> Result<StateId, StateError> {
        if let Some(id) = descriptor.find_in(self.states.iter().map(|s| &s.descriptor))? {
            return Ok(id);
        }
        let ttl_ms = descriptor.ttl_ms();
        let groups = (0..=self.key_groups.range.len()).map(|_| Slot::default()).collect();
        self.states.push(State { descriptor, ttl_ms, groups });
        Ok((self.states.len() - 1) as StateId)
    }

    fn descriptors(&self) -> Vec<StateDescriptor> {
        self.states.iter().map(|s| s.descriptor.clone()).collect()
    }

    fn set_time(&mut self, now_ms: i64) {
        self.now_ms = now_ms;
    }

    fn value_get_into(&mut self, state: StateId, key: &[u8], out: &mut Vec<u8>) -> Result<bool, StateError> {
        Ok(match self.live(state, Use::Value, key)? {
            Some(Entry { data: Data::Value(v), .. }) => {
                out.extend_from_slice(v);
                true
            }
            _ => false,
        })
    }

    /// Asks the CPU to load each key's slot before the caller reads them one
    /// by one: with a state far larger than the CPU caches every lookup is a
    /// memory miss, and this way the misses of a batch overlap.
    fn prefetch(&mut self, state: StateId, keys: &[&[u8]]) -> Result<(), StateError> {
        let s = self.states.get(state as usize).ok_or(StateError::UnknownState(state))?;
        for key in keys {
            let p = self.place(key);
            s.groups[p.group].prefetch(p.hash);
        }
        Ok(())
    }

    /// Each key hashed once, then read with the slot `PREFETCH_AHEAD` keys
    /// further on being loaded meanwhile (a software pipeline: the misses of
    /// a state far larger than the caches overlap with the reads).
    fn value_get_many(
        &mut self,
        state: StateId,
        keys: &[&[u8]],
        out: &mut Vec<u8>,
        found: &mut Vec<(usize, bool)>,
    ) -> Result<(), StateError> {
        self.checked(state, Use::Value)?;
        self.place_all(keys);
        let groups = &self.states[state as usize].groups;
        for p in self.places.iter().take(PREFETCH_AHEAD) {
            groups[p.group].prefetch(p.hash);
        }
        for (i, key) in keys.iter().enumerate() {
            if let Some(p) = self.places.get(i + PREFETCH_AHEAD) {
                groups[p.group].prefetch(p.hash);
            }
            let present = match self.live_at(state, Use::Value, key, self.places[i])? {
                Some(Entry { data: Data::Value(v), .. }) => {
                    out.extend_from_slice(v);
                    true
                }
                _ => false,
            };
            found.push((out.len(), present));
        }
        Ok(())
    }

    fn value_write_many(&mut self, state: StateId, keys: &[&[u8]], values: &[Option<&[u8]>]) -> Result<(), StateError> {
        check_lengths(keys, values)?;
        self.checked(state, Use::Value)?;
        self.place_all(keys);
        let places = std::mem::take(&mut self.places);
        let mut write = || -> Result<(), StateError> {
            for ((key, value), &p) in keys.iter().zip(values).zip(&places) {
                match value {
                    Some(value) => {
                        if let Data::Value(v) = self.write_at(state, Use::Value, key, p, || Data::Value(Value::new()))? {
                            v.clear();
                            v.extend_from_slice(value);
                        }
                    }
                    None => self.clear_at(state, key, p),
                }
            }
            Ok(())
        };
        let written = write();
        self.places = places;
        written
    }

    fn value_set(&mut self, state: StateId, key: &[u8], value: &[u8]) -> Result<(), StateError> {
        if let Data::Value(v) = self.write(state, Use::Value, key, || Data::Value(Value::new()))? {
            v.clear();
            v.extend_from_slice(value);
        }
        Ok(())
    }

    fn map_get(&mut self, state: StateId, key: &[u8], map_key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Ok(match self.live(state, Use::Map, key)? {
            Some(Entry { data: Data::Map(m), .. }) => m.get(map_key).cloned(),
            _ => None,
        })
    }

    fn map_put(&mut self, state: StateId, key: &[u8], map_key: &[u8], value: &[u8]) -> Result<(), StateError> {
        if let Data::Map(m) = self.write(state, Use::Map, key, || Data::Map(Box::default()))? {
            m.insert(map_key.to_vec(), value.to_vec());
        }
        Ok(())
    }

    fn map_remove(&mut self, state: StateId, key: &[u8], map_key: &[u8]) -> Result<bool, StateError> {
        let live = matches!(self.live(state, Use::Map, key)?, Some(Entry { data: Data::Map(m), .. }) if m.contains_key(map_key));
        if !live {
            return Ok(false);
        }
        let p = self.place(key);
        let (group, _) = self.group_mut(state, Use::Map, p)?;
        if let Some(Entry { data: Data::Map(m), .. }) = group.get_mut(p.hash, key) {
            m.remove(map_key);
            if m.is_empty() {
                group.remove(p.hash, key);
            }
        }
        Ok(true)
    }

    fn map_entries(&mut self, state: StateId, key: &[u8]) -> Result<MapEntries, StateError> {
        Ok(match self.live(state, Use::Map, key)? {
            Some(Entry { data: Data::Map(m), .. }) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            _ => Vec::new(),
        })
    }
    fn list_add(&mut self, state: StateId, key: &[u8], value: &[u8]) -> Result<(), StateError> {
        if let Data::List(l) = self.write(state, Use::List, key, || Data::List(Vec::new()))? {
            l.push(value.to_vec());
        }
        Ok(())
    }

    fn list_get(&mut self, state: StateId, key: &[u8]) -> Result<Vec<Vec<u8>>, StateError> {
        Ok(match self.live(state, Use::List, key)? {
            Some(Entry { data: Data::List(l), .. }) => l.clone(),
            _ => Vec::new(),
        })
    }

    fn list_update(&mut self, state: StateId, key: &[u8], values: Vec<Vec<u8>>) -> Result<(), StateError> {
        if values.is_empty() {
            return self.clear(state, key);
        }
        *self.write(state, Use::List, key, || Data::List(Vec::new()))? = Data::List(values);
        Ok(())
    }

    fn reducing_add(&mut self, state: StateId, key: &[u8], value: i64) -> Result<i64, StateError> {
        let StateKind::Reducing(reducer) = self.checked(state, Use::Reducing)?.descriptor.kind else {
            unreachable!("checked() checked the kind")
        };
        let mut fresh = false;
        let data = self.write(state, Use::Reducing, key, || {
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
        Ok(match self.live(state, Use::Reducing, key)? {
            Some(Entry { data: Data::Reducing(v), .. }) => Some(*v),
            _ => None,
        })
    }

    fn clear(&mut self, state: StateId, key: &[u8]) -> Result<(), StateError> {
        self.states.get(state as usize).ok_or(StateError::UnknownState(state))?;
        self.clear_at(state, key, self.place(key));
        Ok(())
    }

    fn len(&mut self, state: StateId) -> Result<usize, StateError> {
        let s = self.states.get(state as usize).ok_or(StateError::UnknownState(state))?;
        let now = self.now_ms;
        Ok(match s.ttl_ms {
            None => s.groups.iter().map(|g| g.len()).sum(),
            Some(_) => s.groups.iter().map(|g| g.values().filter(|e| !expired(s.ttl_ms, now, e)).count()).sum(),
        })
    }

    fn snapshot(&mut self, dir: &Path) -> Result<SnapshotWriter, StateError> {
        let frozen = Frozen {
            path: dir.join(SNAPSHOT_FILE),
            max_parallelism: self.key_groups.max_parallelism,
            first: self.key_groups.range.start,
            now_ms: self.now_ms,
            states: self.states.iter_mut().map(|s| (s.descriptor.clone(), s.ttl_ms, s.groups.iter_mut().map(Slot::share).collect())).collect(),
        };
        Ok(Box::new(move || frozen.write()))
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

#[cfg(test)]
mod cow_tests {
    use super::*;

    #[test]
    fn writes_during_a_snapshot_do_not_change_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = HeapBackend::new(KeyGroups::all(128));
        let s = b.declare(StateDescriptor { name: "v".into(), kind: StateKind::Value, ttl: None }).unwrap();
        for i in 0..1000u32 {
            b.value_set(s, &i.to_be_bytes(), b"before").unwrap();
        }
        let writer = b.snapshot(dir.path()).unwrap();
        for i in 0..1000u32 {
            b.value_set(s, &i.to_be_bytes(), b"after").unwrap();
        }
        b.value_set(s, b"new", b"after").unwrap();
        let files = writer().unwrap();
        let mut r = HeapBackend::new(KeyGroups::all(128));
        r.restore(&[files.into_iter().map(|f| (f.name, f.path)).collect()]).unwrap();
        assert_eq!(r.len(s).unwrap(), 1000);
        assert_eq!(r.value_get(s, &7u32.to_be_bytes()).unwrap().as_deref(), Some(&b"before"[..]));
        assert_eq!(b.value_get(s, &7u32.to_be_bytes()).unwrap().as_deref(), Some(&b"after"[..]));
    }
}
