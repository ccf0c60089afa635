//! The record cache: value, list and reducing entries by (state, key), in front
//! of RocksDB, bounded in bytes ([`RocksOptions::cache_bytes`]). Writes stay in
//! the cache (dirty) until written back in one WriteBatch: when the cache
//! overflows, before snapshots and before `len`.

use rocksdb::{IngestExternalFileOptions, SstFileWriter, WriteBatch};
use smallvec::SmallVec;

use super::format::{expired, key_prefix, push_key_prefix, Data};
use super::overlay::Overlay;
use super::{checked, column_family, RocksBackend, State};
#[cfg(doc)]
use super::RocksOptions;
use weir_state::keys::key_group;
use weir_state::{StateError, StateId};

/// A cached key: up to 24 bytes inline.
pub(super) type CacheKey = SmallVec<[u8; 24]>;

/// Bytes the record cache counts for one entry besides the heap bytes of its
/// key and data: the entry inline in the hash table and its control byte.
pub(super) const ENTRY_BYTES: usize = std::mem::size_of::<(CacheKey, Slot)>() + 1;

/// The bytes the record cache counts for the entry (`key`, `slot`): a key
/// longer than 24 bytes is on the heap, exactly as long as it is.
pub(super) fn entry_bytes(key: &[u8], slot: &Slot) -> usize {
    ENTRY_BYTES + if key.len() > 24 { key.len() } else { 0 } + slot.heap_bytes()
}

/// One key's entry of one state, as cached. Always what RocksDB would hold
/// after writing back: `data: None` is a known absence (a delete if dirty).
pub(super) struct Slot {
    pub data: Option<Data>,
    /// Processing time of the last write (0 without TTL).
    pub written_at: i64,
    /// Changed since the last write-back.
    pub dirty: bool,
    /// Used since the last eviction (evictions keep used entries).
    pub hot: bool,
}

impl Slot {
    pub(super) fn absent() -> Self {
        Slot { data: None, written_at: 0, dirty: false, hot: false }
    }

    pub(super) fn loaded(written_at: i64, data: Data) -> Self {
        Slot { data: Some(data), written_at, dirty: false, hot: false }
    }

    fn heap_bytes(&self) -> usize {
        self.data.as_ref().map_or(0, Data::heap_bytes)
    }

    /// The data if present and not expired.
    pub(super) fn live(&self, ttl_ms: Option<i64>, now: i64) -> Option<&Data> {
        self.data.as_ref().filter(|_| !expired(ttl_ms, self.written_at, now))
    }

    /// The data to write, emptied first if expired; refreshes the TTL.
    pub(super) fn write(&mut self, ttl_ms: Option<i64>, now: i64) -> &mut Option<Data> {
        if expired(ttl_ms, self.written_at, now) {
            self.data = None;
        }
        self.written_at = now;
        self.dirty = true;
        &mut self.data
    }

    pub(super) fn clear(&mut self) {
        self.data = None;
        self.dirty = true;
    }
}

/// The slot of a row read from RocksDB (`None`: absent) for state `s`.
fn stored_slot(s: &State, read: Result<Option<impl AsRef<[u8]>>, rocksdb::Error>) -> Result<Slot, StateError> {
    let name = &s.descriptor.name;
    let Some(stored) = read.map_err(|e| StateError::storage(format_args!("reading state '{name}'"), e))? else {
        return Ok(Slot::absent());
    };
    let (t, data) = Data::decode(s.descriptor.kind, s.ttl_ms.is_some(), stored.as_ref())
        .ok_or_else(|| StateError::Storage(format!("reading state '{name}': malformed stored value")))?;
    Ok(Slot::loaded(t, data))
}

/// Reused buffers of the write-back: row keys and values back to back.
#[derive(Default)]
pub(super) struct WriteBackBuffers {
    keys: Vec<u8>,
    values: Vec<u8>,
    /// Per row: end of its key in `keys`, end of its value in `values`, and
    /// whether it is a put (else a delete).
    rows: Vec<(u32, u32, bool)>,
    order: Vec<u32>,
    /// SST files written back so far (names the next one).
    ingested: u64,
}

impl RocksBackend {
    /// Run `f` on the cached entry of `key` (loaded from RocksDB first if
    /// `load`; else `f` must overwrite it). Evicts if the cache overflows.
    pub(super) fn with_slot<R>(
        &mut self,
        id: StateId,
        used_as: &'static str,
        key: &[u8],
        load: bool,
        f: impl FnOnce(&mut Slot, Option<i64>, i64) -> R,
    ) -> Result<R, StateError> {
        let now = self.now_ms;
        let s = checked(&mut self.states, id, used_as)?;
        let ttl = s.ttl_ms;
        if let Some(slot) = s.cache.get_mut(key) {
            slot.hot = true;
            let before = slot.heap_bytes();
            let r = f(slot, ttl, now);
            let after = slot.heap_bytes();
            s.dirty |= slot.dirty;
            self.cached_bytes = self.cached_bytes + after - before;
            if after > before && self.cached_bytes > self.cache_bytes {
                self.evict()?;
            }
            return Ok(r);
        }
        let slot = if load {
            key_prefix(&mut self.key_buf, key_group(key, self.key_groups.max_parallelism), key);
            let cf = column_family(&self.db, s)?;
            stored_slot(s, self.db.get_pinned_cf_opt(cf, &self.key_buf, &self.read_opts))?
        } else {
            Slot::absent()
        };
        let slot = s.cache.entry_ref(key).or_insert(slot);
        let r = f(slot, ttl, now);
        s.dirty |= slot.dirty;
        self.cached_bytes += entry_bytes(key, slot);
        if self.cached_bytes > self.cache_bytes {
            self.evict()?;
        }
        Ok(r)
    }

    /// Load the entries of `keys` missing from the cache with one batched
    /// multi-get (marked used, so the next eviction keeps them).
    pub(super) fn prefetch_slots(&mut self, id: StateId, keys: &[&[u8]]) -> Result<(), StateError> {
        let max = self.key_groups.max_parallelism;
        let s = self.states.get(id as usize).ok_or(StateError::UnknownState(id))?;
        let missing: Vec<&[u8]> = keys.iter().copied().filter(|k| !s.cache.contains_key(*k)).collect();
        if missing.is_empty() {
            return Ok(());
        }
        // The row keys back to back in one buffer.
        self.key_buf.clear();
        let mut ends = Vec::with_capacity(missing.len());
        for k in &missing {
            push_key_prefix(&mut self.key_buf, key_group(k, max), k);
            ends.push(self.key_buf.len());
        }
        let buf = &self.key_buf;
        let stored_keys = ends.iter().scan(0, |start, &end| {
            let k = &buf[*start..end];
            *start = end;
            Some(k)
        });
        let cf = column_family(&self.db, s)?;
        let got = self.db.batched_multi_get_cf_opt(cf, stored_keys, false, &self.read_opts);
        let slots = got.into_iter().map(|r| stored_slot(s, r)).collect::<Result<Vec<_>, _>>()?;
        let s = &mut self.states[id as usize];
        for (k, mut slot) in missing.into_iter().zip(slots) {
            slot.hot = true;
            self.cached_bytes += entry_bytes(k, &slot);
            s.cache.entry_ref(k).or_insert(slot);
        }
        if self.cached_bytes > self.cache_bytes {
            self.evict()?;
        }
        Ok(())
    }

    /// Write every dirty cached entry to RocksDB in one batch.
    pub(super) fn write_back(&mut self) -> Result<(), StateError> {
        let now = self.now_ms;
        let max = self.key_groups.max_parallelism;
        let mut batch = WriteBatch::default();
        let mut names = Vec::new();
        let WriteBackBuffers { keys, values, rows, order, ingested } = &mut self.write_back_buffers;
        let (work_dir, sst_options, ingest_rows) = (&self.work_dir.0, &self.sst_options, self.ingest_rows);
        for s in self.states.iter().filter(|s| s.dirty) {
            let cf = column_family(&self.db, s)?;
            keys.clear();
            values.clear();
            rows.clear();
            for (key, slot) in s.cache.iter().filter(|(_, slot)| slot.dirty) {
                push_key_prefix(keys, key_group(key, max), key);
                let put = match slot.live(s.ttl_ms, now) {
                    Some(data) => {
                        data.append(values, s.ttl_ms.is_some(), slot.written_at);
                        true
                    }
                    None => false,
                };
                rows.push((keys.len() as u32, values.len() as u32, put));
            }
            // In key order: the memtable's skip list inserts a sorted run
            // cheaply (each insert starts from the previous one's position),
            // and an SST file takes its rows only in order.
            let key = |i: usize| &keys[if i == 0 { 0 } else { rows[i - 1].0 as usize }..rows[i].0 as usize];
            order.clear();
            order.extend(0..rows.len() as u32);
            order.sort_unstable_by(|&a, &b| key(a as usize).cmp(key(b as usize)));
            let value = |i: usize| &values[if i == 0 { 0 } else { rows[i - 1].1 as usize }..rows[i].1 as usize];
            if rows.len() >= ingest_rows {
                // A large write-back becomes an SST file of its own, added to
                // the DB as it is: no memtable to insert into, search on every
                // read and flush at every snapshot.
                *ingested += 1;
                let path = work_dir.join(format!("write-back-{ingested}.sst"));
                let err = |e: rocksdb::Error| {
                    StateError::storage(format_args!("writing back cached entries of state '{}' to {}", s.descriptor.name, path.display()), e)
                };
                let mut w = SstFileWriter::create(sst_options);
                w.open(&path).map_err(err)?;
                for &i in order.iter() {
                    let i = i as usize;
                    if rows[i].2 { w.put(key(i), value(i)) } else { w.delete(key(i)) }.map_err(err)?;
                }
                w.finish().map_err(err)?;
                let mut ingest = IngestExternalFileOptions::default();
                ingest.set_move_files(true);
                self.db.ingest_external_file_cf_opts(cf, &ingest, vec![&path]).map_err(err)?;
                let _ = std::fs::remove_file(&path);
                continue;
            }
            names.push(format!("'{}'", s.descriptor.name));
            for &i in order.iter() {
                let i = i as usize;
                if rows[i].2 {
                    batch.put_cf(cf, key(i), value(i));
                } else {
                    batch.delete_cf(cf, key(i));
                }
            }
        }
        if !batch.is_empty() {
            self.db.write_opt(batch, &self.write_opts).map_err(|e| {
                StateError::storage(format_args!("writing cached entries of state {}", names.join(", ")), e)
            })?;
        }
        for s in self.states.iter_mut().filter(|s| s.dirty) {
            s.cache.values_mut().for_each(|slot| slot.dirty = false);
            s.dirty = false;
        }
        Ok(())
    }

    /// The rows of every dirty cached entry, as a write-back would write them
    /// (a delete for an absent or expired one); the entries stay dirty.
    pub(super) fn dirty_overlay(&self) -> Overlay {
        let now = self.now_ms;
        let max = self.key_groups.max_parallelism;
        let mut overlay = Overlay::default();
        for (id, s) in self.states.iter().enumerate().filter(|(_, s)| s.dirty) {
            for (key, slot) in s.cache.iter().filter(|(_, slot)| slot.dirty) {
                overlay.begin(id as StateId, |b| push_key_prefix(b, key_group(key, max), key));
                match slot.live(s.ttl_ms, now) {
                    Some(data) => overlay.put_value(|b| data.append(b, s.ttl_ms.is_some(), slot.written_at)),
                    None => overlay.delete(),
                }
            }
        }
        overlay
    }

    /// Write back, then keep the entries used since the last eviction, at most
    /// half the cache's bytes.
    fn evict(&mut self) -> Result<(), StateError> {
        self.write_back()?;
        let keep = self.cache_bytes / 2;
        let mut total = 0;
        for s in &mut self.states {
            s.cache.retain(|key, slot| {
                let kept = std::mem::take(&mut slot.hot) && total < keep;
                if kept {
                    total += entry_bytes(key, slot);
                }
                kept
            });
            // Give back the table's memory if it shrank a lot.
            if s.cache.capacity() > 4 * s.cache.len().max(1024) {
                s.cache.shrink_to_fit();
            }
        }
        self.cached_bytes = total;
        Ok(())
    }

    /// Write back and empty the record cache.
    pub(super) fn drop_cache(&mut self) -> Result<(), StateError> {
        self.write_back()?;
        self.states.iter_mut().for_each(|s| s.cache = Default::default());
        self.cached_bytes = 0;
        Ok(())
    }
}
