//! The record cache: value, list and reducing entries by (state, key), in front
//! of RocksDB. Writes stay in the cache (dirty) until written back in one
//! WriteBatch: when the cache overflows, before snapshots and before `len`.

use rocksdb::WriteBatch;

use super::format::{key_prefix, Data, expired};
use super::{checked, column_family, RocksBackend};
use crate::keys::key_group;
use crate::{StateError, StateId};

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
            let r = f(slot, ttl, now);
            s.dirty |= slot.dirty;
            return Ok(r);
        }
        let slot = if load {
            key_prefix(&mut self.key_buf, key_group(key, self.key_groups.max_parallelism), key);
            let cf = column_family(&self.db, s)?;
            let read = |e| StateError::storage(format_args!("reading state '{}'", s.descriptor.name), e);
            match self.db.get_pinned_cf_opt(cf, &self.key_buf, &self.read_opts).map_err(read)? {
                None => Slot::absent(),
                Some(stored) => {
                    let (t, data) = Data::decode(s.descriptor.kind, ttl.is_some(), &stored).ok_or_else(|| {
                        StateError::Storage(format!("reading state '{}': malformed stored value", s.descriptor.name))
                    })?;
                    Slot::loaded(t, data)
                }
            }
        } else {
            Slot::absent()
        };
        let slot = s.cache.entry_ref(key).or_insert(slot);
        let r = f(slot, ttl, now);
        s.dirty |= slot.dirty;
        self.cached += 1;
        if self.cached > self.cache_entries {
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
        let mut stored_keys = Vec::with_capacity(missing.len());
        for k in &missing {
            key_prefix(&mut self.key_buf, key_group(k, max), k);
            stored_keys.push(self.key_buf.clone());
        }
        let cf = column_family(&self.db, s)?;
        let got = self.db.batched_multi_get_cf_opt(cf, &stored_keys, false, &self.read_opts);
        let (kind, ttl) = (s.descriptor.kind, s.ttl_ms);
        let mut slots = Vec::with_capacity(missing.len());
        for r in got {
            let read = |e| StateError::storage(format_args!("reading state '{}'", s.descriptor.name), e);
            slots.push(match r.map_err(read)? {
                None => Slot::absent(),
                Some(stored) => {
                    let (t, data) = Data::decode(kind, ttl.is_some(), &stored).ok_or_else(|| {
                        StateError::Storage(format!("reading state '{}': malformed stored value", s.descriptor.name))
                    })?;
                    Slot::loaded(t, data)
                }
            });
        }
        let s = &mut self.states[id as usize];
        for (k, mut slot) in missing.into_iter().zip(slots) {
            slot.hot = true;
            s.cache.entry_ref(k).or_insert(slot);
            self.cached += 1;
        }
        if self.cached > self.cache_entries {
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
        for s in self.states.iter().filter(|s| s.dirty) {
            let cf = column_family(&self.db, s)?;
            names.push(format!("'{}'", s.descriptor.name));
            // In key order: the memtable's skip list inserts a sorted run
            // cheaply (each insert starts from the previous one's position).
            let mut rows: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
            for (key, slot) in s.cache.iter().filter(|(_, slot)| slot.dirty) {
                key_prefix(&mut self.key_buf, key_group(key, max), key);
                let value = slot.live(s.ttl_ms, now).map(|data| {
                    data.encode(&mut self.value_buf, s.ttl_ms.is_some(), slot.written_at);
                    self.value_buf.clone()
                });
                rows.push((self.key_buf.clone(), value));
            }
            rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            for (key, value) in &rows {
                match value {
                    None => batch.delete_cf(cf, key),
                    Some(v) => batch.put_cf(cf, key, v),
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

    /// Write back, then keep the entries used since the last eviction, at most
    /// half the cache.
    fn evict(&mut self) -> Result<(), StateError> {
        self.write_back()?;
        let keep = self.cache_entries / 2;
        let mut total = 0;
        for s in &mut self.states {
            s.cache.retain(|_, slot| std::mem::take(&mut slot.hot));
            total += s.cache.len();
        }
        if total > keep {
            let mut excess = total - keep;
            for s in &mut self.states {
                s.cache.retain(|_, _| match excess {
                    0 => true,
                    _ => {
                        excess -= 1;
                        false
                    }
                });
            }
            total = keep;
        }
        self.cached = total;
        Ok(())
    }

    /// Write back and empty the record cache.
    pub(super) fn drop_cache(&mut self) -> Result<(), StateError> {
        self.write_back()?;
        self.states.iter_mut().for_each(|s| s.cache.clear());
        self.cached = 0;
        Ok(())
    }
}
