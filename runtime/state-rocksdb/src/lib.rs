//! Keyed state in RocksDB, after Flink's RocksDB state backend: one column
//! family per state, rows keyed by key group (see [`format`]), no WAL
//! (durability comes from checkpoints), native RocksDB checkpoints as
//! incremental snapshots, TTL purged by a compaction filter. A bounded record
//! cache ([`cache`]) in front of RocksDB absorbs repeated access to hot keys.

mod cache;
mod factory;
mod format;
mod map;
mod options;
mod overlay;
mod snapshot;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use foldhash::fast::RandomState;
use hashbrown::HashMap;
use rocksdb::{Cache, ColumnFamily, Options, ReadOptions, WriteOptions, DB};

pub use self::factory::{register, Rocks, RocksBackendFactory, RocksConfig};
pub use self::options::RocksOptions;

use self::cache::{CacheKey, Slot, WriteBackBuffers};
use self::format::{cf_name, expired, key_prefix, value_time, Data};
use self::map::{MapKey, MapRow, MapScan};
use self::options::{cf_options, db_options, ttl_filter};
use weir_state::keys::key_group;
use self::overlay::OVERLAY_FILE;
use weir_state::{
    KeyGroups, KeyedStateBackend, MapEntries, RestoreFiles, SnapshotFile, SnapshotWriter, StateDescriptor, StateError, StateId,
    StateKind,
};

type Map<K, V> = HashMap<K, V, RandomState>;

struct State {
    descriptor: StateDescriptor,
    ttl_ms: Option<i64>,
    cf: String,
    /// Record cache of value, list and reducing states (maps go to RocksDB).
    cache: Map<CacheKey, Slot>,
    /// Some cached entry is dirty.
    dirty: bool,
    /// The column family's options when it was created after the DB opened:
    /// they own its compaction filter, which RocksDB uses until the DB is
    /// closed (`states` drops after `db`). A column family opened with the DB
    /// has its options kept by the DB itself.
    _options: Option<Options>,
}

/// The working directory, deleted on drop (after the DB closed: it is the
/// backend's last field).
struct WorkDir(PathBuf);

impl WorkDir {
    fn create(dir: PathBuf) -> Result<Self, StateError> {
        let err = |e: std::io::Error| StateError::storage(format_args!("preparing RocksDB directory {}", dir.display()), e);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(err(e)),
            _ => {}
        }
        std::fs::create_dir_all(dir.join("db")).map_err(err)?;
        Ok(WorkDir(dir))
    }

    fn db(&self) -> PathBuf {
        self.0.join("db")
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Keyed state in RocksDB (state larger than memory), after Flink's RocksDB
/// backend: a column family per state, rows keyed by `key group | key`, no WAL,
/// incremental snapshots (native checkpoints whose SST files are `shared`),
/// TTL purged by compaction. Value, list and reducing entries go through a
/// bounded in-memory record cache ([`RocksOptions::cache_bytes`]); map
/// entries are read and written directly.
pub struct RocksBackend {
    // Fields drop in order: the DB first.
    db: DB,
    states: Vec<State>,
    key_groups: KeyGroups,
    now_ms: i64,
    /// `now_ms` for the TTL compaction filters (RocksDB threads).
    shared_now: Arc<AtomicI64>,
    /// The record cache's budget, and the bytes it counts now (over every state).
    cache_bytes: usize,
    cached_bytes: usize,
    write_back_buffers: WriteBackBuffers,
    /// The options of the SST files large write-backs write, and from how
    /// many rows they do ([`RocksOptions::ingest_rows`]).
    sst_options: Options,
    ingest_rows: usize,
    block_cache: Cache,
    /// Prefix of the names of this instance's shared snapshot files.
    instance_id: String,
    read_opts: ReadOptions,
    write_opts: WriteOptions,
    key_buf: Vec<u8>,
    /// Restores done (names their scratch directories).
    restores: u32,
    /// The processing time of a snapshot whose files became the DB: entries
    /// expired then must stay expired, so the clock never goes below it.
    clock_floor_ms: i64,
    work_dir: WorkDir,
}

impl State {
    fn new(descriptor: StateDescriptor, options: Option<Options>) -> Self {
        let cf = cf_name(&descriptor.name);
        State { ttl_ms: descriptor.ttl_ms(), descriptor, cf, cache: Map::default(), dirty: false, _options: options }
    }
}

fn column_family<'a>(db: &'a DB, s: &State) -> Result<&'a ColumnFamily, StateError> {
    db.cf_handle(&s.cf)
        .ok_or_else(|| StateError::Storage(format!("state '{}' has no column family '{}'", s.descriptor.name, s.cf)))
}

/// The state `id`, checked to be of kind `used_as`.
fn checked<'a>(states: &'a mut [State], id: StateId, used_as: &'static str) -> Result<&'a mut State, StateError> {
    let s = states.get_mut(id as usize).ok_or(StateError::UnknownState(id))?;
    if s.descriptor.kind.name() != used_as {
        return Err(StateError::WrongKind { name: s.descriptor.name.clone(), kind: s.descriptor.kind.name(), used_as });
    }
    Ok(s)
}

/// Which rows of one state's column family are live, scanning in key order.
struct RowScan {
    map: Option<MapScan>,
    ttl_ms: Option<i64>,
    now: i64,
}

impl RowScan {
    fn new(kind: StateKind, ttl_ms: Option<i64>, now: i64) -> Self {
        RowScan { map: (kind == StateKind::Map).then(|| MapScan::new(ttl_ms, now)), ttl_ms, now }
    }

    /// `None` if the row is dead, else whether it is the row that counts its key.
    fn live(&mut self, key: &[u8], value: &[u8]) -> Option<bool> {
        if let Some(m) = &mut self.map {
            return match m.classify(key, value) {
                MapRow::Live { counts } => Some(counts),
                MapRow::Dead => None,
            };
        }
        if self.ttl_ms.is_some() && value_time(value).is_none_or(|t| expired(self.ttl_ms, t, self.now)) {
            return None;
        }
        Some(true)
    }
}

impl RocksBackend {
    /// A backend owning `key_groups`, with an empty RocksDB in `options.dir`
    /// (whatever was there is deleted).
    pub fn open(options: RocksOptions, key_groups: KeyGroups) -> Result<RocksBackend, StateError> {
        let max = key_groups.max_parallelism;
        if !(1..=1 << 16).contains(&max) {
            return Err(StateError::Storage(format!(
                "the RocksDB state backend supports 1 to 65536 key groups (max_parallelism), not {max}"
            )));
        }
        let work_dir = WorkDir::create(options.dir)?;
        let path = work_dir.db();
        let db = DB::open(&db_options(&options.block_cache), &path)
            .map_err(|e| StateError::storage(format_args!("opening RocksDB in {}", path.display()), e))?;
        let mut write_opts = WriteOptions::default();
        write_opts.disable_wal(true);
        Ok(RocksBackend {
            db,
            states: Vec::new(),
            key_groups,
            now_ms: 0,
            shared_now: Arc::new(AtomicI64::new(0)),
            cache_bytes: options.cache_bytes,
            cached_bytes: 0,
            write_back_buffers: WriteBackBuffers::default(),
            sst_options: cf_options(&options.block_cache),
            ingest_rows: options.ingest_rows.max(1),
            block_cache: options.block_cache,
            instance_id: snapshot::instance_id(&work_dir.0),
            read_opts: ReadOptions::default(),
            write_opts,
            key_buf: Vec::new(),
            restores: 0,
            clock_floor_ms: i64::MIN,
            work_dir,
        })
    }

    /// The options of state `descriptor`'s column family (with its TTL's
    /// compaction filter).
    fn state_options(&self, descriptor: &StateDescriptor) -> Options {
        let mut opts = cf_options(&self.block_cache);
        if let Some(ttl) = descriptor.ttl_ms() {
            opts.set_compaction_filter("weir-ttl", ttl_filter(self.shared_now.clone(), ttl, descriptor.kind == StateKind::Map));
        }
        opts
    }

    /// Access to one key of map state `id`.
    fn map_key(&mut self, id: StateId, key: &[u8]) -> Result<MapKey<'_>, StateError> {
        checked(&mut self.states, id, "map")?;
        key_prefix(&mut self.key_buf, key_group(key, self.key_groups.max_parallelism), key);
        let s = &self.states[id as usize];
        Ok(MapKey {
            db: &self.db,
            cf: column_family(&self.db, s)?,
            name: &s.descriptor.name,
            ttl_ms: s.ttl_ms,
            now: self.now_ms,
            write_opts: &self.write_opts,
            prefix: &self.key_buf,
        })
    }
}

impl KeyedStateBackend for RocksBackend {
    fn declare(&mut self, descriptor: StateDescriptor) -> Result<StateId, StateError> {
        if let Some(id) = descriptor.find_in(self.states.iter().map(|s| &s.descriptor))? {
            return Ok(id);
        }
        let opts = self.state_options(&descriptor);
        let state = State::new(descriptor, None);
        self.db
            .create_cf(&state.cf, &opts)
            .map_err(|e| StateError::storage(format_args!("creating state '{}'", state.descriptor.name), e))?;
        self.states.push(State { _options: Some(opts), ..state });
        Ok((self.states.len() - 1) as StateId)
    }

    fn descriptors(&self) -> Vec<StateDescriptor> {
        self.states.iter().map(|s| s.descriptor.clone()).collect()
    }

    fn set_time(&mut self, now_ms: i64) {
        let now_ms = now_ms.max(self.clock_floor_ms);
        self.now_ms = now_ms;
        self.shared_now.store(now_ms, Ordering::Relaxed);
    }

    fn prefetch(&mut self, state: StateId, keys: &[&[u8]]) -> Result<(), StateError> {
        self.prefetch_slots(state, keys)
    }

    fn value_get_into(&mut self, state: StateId, key: &[u8], out: &mut Vec<u8>) -> Result<bool, StateError> {
        self.with_slot(state, "value", key, true, |slot, ttl, now| match slot.live(ttl, now) {
            Some(Data::Value(v)) => {
                out.extend_from_slice(v);
                true
            }
            _ => false,
        })
    }

    fn value_set(&mut self, state: StateId, key: &[u8], value: &[u8]) -> Result<(), StateError> {
        self.with_slot(state, "value", key, false, |slot, ttl, now| match slot.write(ttl, now) {
            Some(Data::Value(v)) => {
                v.clear();
                v.extend_from_slice(value);
            }
            data => *data = Some(Data::Value(value.into())),
        })
    }

    fn map_get(&mut self, state: StateId, key: &[u8], map_key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        self.map_key(state, key)?.get(map_key)
    }

    fn map_put(&mut self, state: StateId, key: &[u8], map_key: &[u8], value: &[u8]) -> Result<(), StateError> {
        self.map_key(state, key)?.put(map_key, value)
    }

    fn map_remove(&mut self, state: StateId, key: &[u8], map_key: &[u8]) -> Result<bool, StateError> {
        self.map_key(state, key)?.remove(map_key)
    }

    fn map_entries(&mut self, state: StateId, key: &[u8]) -> Result<MapEntries, StateError> {
        self.map_key(state, key)?.entries()
    }

    fn list_add(&mut self, state: StateId, key: &[u8], value: &[u8]) -> Result<(), StateError> {
        self.with_slot(state, "list", key, true, |slot, ttl, now| match slot.write(ttl, now) {
            Some(Data::List { items, bytes }) => Data::push_item(items, bytes, value),
            data => *data = Some(Data::list(vec![value.to_vec()])),
        })
    }

    fn list_get(&mut self, state: StateId, key: &[u8]) -> Result<Vec<Vec<u8>>, StateError> {
        self.with_slot(state, "list", key, true, |slot, ttl, now| match slot.live(ttl, now) {
            Some(Data::List { items, .. }) => items.clone(),
            _ => Vec::new(),
        })
    }

    fn list_update(&mut self, state: StateId, key: &[u8], values: Vec<Vec<u8>>) -> Result<(), StateError> {
        if values.is_empty() {
            checked(&mut self.states, state, "list")?;
            return self.clear(state, key);
        }
        self.with_slot(state, "list", key, false, |slot, ttl, now| *slot.write(ttl, now) = Some(Data::list(values)))
    }

    fn reducing_add(&mut self, state: StateId, key: &[u8], value: i64) -> Result<i64, StateError> {
        let StateKind::Reducing(reducer) = checked(&mut self.states, state, "reducing")?.descriptor.kind else {
            unreachable!("checked() checked the kind")
        };
        self.with_slot(state, "reducing", key, true, |slot, ttl, now| match slot.write(ttl, now) {
            Some(Data::Reducing(acc)) => {
                *acc = reducer.apply(*acc, value);
                *acc
            }
            data => {
                *data = Some(Data::Reducing(value));
                value
            }
        })
    }

    fn reducing_get(&mut self, state: StateId, key: &[u8]) -> Result<Option<i64>, StateError> {
        self.with_slot(state, "reducing", key, true, |slot, ttl, now| match slot.live(ttl, now) {
            Some(Data::Reducing(r)) => Some(*r),
            _ => None,
        })
    }

    fn clear(&mut self, state: StateId, key: &[u8]) -> Result<(), StateError> {
        let kind = self.states.get(state as usize).ok_or(StateError::UnknownState(state))?.descriptor.kind;
        match kind {
            StateKind::Map => self.map_key(state, key)?.clear(),
            kind => self.with_slot(state, kind.name(), key, false, |slot, _, _| slot.clear()),
        }
    }

    fn len(&mut self, state: StateId) -> Result<usize, StateError> {
        self.states.get(state as usize).ok_or(StateError::UnknownState(state))?;
        self.write_back()?;
        let s = &self.states[state as usize];
        let mut opts = ReadOptions::default();
        opts.fill_cache(false);
        let mut it = self.db.raw_iterator_cf_opt(column_family(&self.db, s)?, opts);
        it.seek_to_first();
        let mut scan = RowScan::new(s.descriptor.kind, s.ttl_ms, self.now_ms);
        let mut n = 0;
        while let Some((k, v)) = it.item() {
            if scan.live(k, v) == Some(true) {
                n += 1;
            }
            it.next();
        }
        it.status().map_err(|e| StateError::storage(format_args!("counting state '{}'", s.descriptor.name), e))?;
        Ok(n)
    }

    /// The native checkpoint (hard links) is made here; the writer has
    /// nothing left to do.
    fn snapshot(&mut self, dir: &Path) -> Result<SnapshotWriter, StateError> {
        // The cache's dirty entries go into the snapshot as its overlay (copied
        // here, stored by the writer) instead of being written back now.
        let overlay = self.dirty_overlay();
        let mut files = self.snapshot_to(dir)?;
        let path = dir.join(OVERLAY_FILE);
        Ok(Box::new(move || {
            if !overlay.is_empty() {
                overlay.write(&path)?;
                files.push(SnapshotFile { path, name: OVERLAY_FILE.into(), shared: false });
            }
            Ok(files)
        }))
    }

    fn restore(&mut self, snapshots: &[RestoreFiles]) -> Result<(), StateError> {
        self.drop_cache()?;
        // A fresh backend restoring one snapshot of its own key groups takes
        // the snapshot's files as its DB instead of copying its rows.
        let adopt = snapshots.len() == 1 && self.states.is_empty() && self.restores == 0;
        for files in snapshots {
            self.restore_one(files, adopt)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ttl(name: &str, kind: StateKind) -> StateDescriptor {
        StateDescriptor { name: name.into(), kind, ttl: Some(Duration::from_millis(100)) }
    }

    /// Rows in the column family of state `id`.
    fn rows(b: &RocksBackend, id: StateId) -> usize {
        let cf = column_family(&b.db, &b.states[id as usize]).unwrap();
        b.db.iterator_cf(cf, rocksdb::IteratorMode::Start).count()
    }

    fn compact(b: &RocksBackend, id: StateId) {
        let cf = column_family(&b.db, &b.states[id as usize]).unwrap();
        b.db.flush_cf(cf).unwrap();
        b.db.compact_range_cf(cf, None::<&[u8]>, None::<&[u8]>);
    }

    #[test]
    fn the_record_cache_counts_its_bytes_and_stays_within_them() {
        let dir = tempfile::TempDir::new().unwrap();
        let budget = 64 << 10;
        let options = RocksOptions::new(dir.path().join("w")).with_cache_bytes(budget);
        let mut b = RocksBackend::open(options, KeyGroups::all(128)).unwrap();
        let desc = |name: &str, kind| StateDescriptor { name: name.into(), kind, ttl: None };
        let v = b.declare(desc("v", StateKind::Value)).unwrap();
        let l = b.declare(desc("l", StateKind::List)).unwrap();
        let counted = |b: &RocksBackend| -> usize {
            b.states.iter().flat_map(|s| s.cache.iter()).map(|(k, slot)| cache::entry_bytes(k, slot)).sum()
        };
        for i in 0..5_000u32 {
            // Short and long keys, inline and spilled values, growing lists.
            let key = format!("key-{i}").repeat(1 + (i % 5) as usize);
            b.value_set(v, key.as_bytes(), &vec![i as u8; (i % 40) as usize]).unwrap();
            b.list_add(l, key.as_bytes(), b"item").unwrap();
            b.list_add(l, format!("key-{}", i / 2).as_bytes(), b"item").unwrap();
            assert!(b.cached_bytes <= budget, "{} cached bytes over a budget of {budget}", b.cached_bytes);
            if i % 500 == 0 {
                assert_eq!(b.cached_bytes, counted(&b));
            }
        }
        assert_eq!(b.cached_bytes, counted(&b));
        for i in 0..5_000u32 {
            let key = format!("key-{i}").repeat(1 + (i % 5) as usize);
            assert_eq!(b.value_get(v, key.as_bytes()).unwrap(), Some(vec![i as u8; (i % 40) as usize]));
        }
        assert_eq!(b.list_get(l, b"key-10").unwrap().len(), 3, "from i = 10, 20 and 21");
        assert_eq!(b.cached_bytes, counted(&b));
    }

    #[test]
    fn compaction_purges_expired_entries_and_orphans_stay_invisible() {
        let dir = tempfile::TempDir::new().unwrap();
        let mut b = RocksBackend::open(RocksOptions::new(dir.path().join("w")), KeyGroups::all(128)).unwrap();
        let v = b.declare(ttl("v", StateKind::Value)).unwrap();
        let m = b.declare(ttl("m", StateKind::Map)).unwrap();
        b.set_time(1_000);
        for k in [&b"a"[..], b"b"] {
            b.value_set(v, k, b"1").unwrap();
            b.map_put(m, k, b"x", b"1").unwrap();
            b.map_put(m, k, b"", b"2").unwrap();
        }
        b.set_time(1_050);
        b.value_set(v, b"b", b"2").unwrap();
        b.map_put(m, b"b", b"y", b"3").unwrap();
        b.write_back().unwrap();
        assert_eq!((rows(&b, v), rows(&b, m)), (2, 2 * 3 + 1));

        b.set_time(1_120); // "a" expired, "b" live
        compact(&b, v);
        compact(&b, m);
        assert_eq!(rows(&b, v), 1, "the expired value is purged");
        assert_eq!(rows(&b, m), 2 + 4, "the expired header is purged, its entries are orphans");
        assert_eq!(b.map_entries(m, b"a").unwrap(), Vec::new());
        assert_eq!(b.map_get(m, b"a", b"x").unwrap(), None);
        assert_eq!(b.len(m).unwrap(), 1);
        assert_eq!(b.map_entries(m, b"b").unwrap().len(), 3);
        b.map_put(m, b"a", b"z", b"4").unwrap();
        assert_eq!(b.map_entries(m, b"a").unwrap(), vec![(b"z".to_vec(), b"4".to_vec())], "orphans are deleted on write");
        assert_eq!(rows(&b, m), 2 + 4);
    }
}
