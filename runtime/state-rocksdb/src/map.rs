//! Map state, read and written directly in RocksDB: one row per map entry
//! (`key prefix | 0x01 | map key`). A map with a TTL also has a header row (the bare
//! key prefix) holding the time of the key's last write, which every write
//! refreshes; entries without a live header are invisible and are deleted by
//! the next write of the key.

use rocksdb::{ColumnFamily, DBRawIterator, ReadOptions, WriteBatch, WriteOptions, DB};

use super::format::{expired, prefix_end, prefix_len, value_time, MAP_ENTRY};
use weir_state::{MapEntries, StateError};

/// One key of one map state.
pub(super) struct MapKey<'a> {
    pub db: &'a DB,
    pub cf: &'a ColumnFamily,
    pub name: &'a str,
    pub ttl_ms: Option<i64>,
    pub now: i64,
    pub write_opts: &'a WriteOptions,
    /// The row-key prefix of the key.
    pub prefix: &'a [u8],
}

impl MapKey<'_> {
    fn err(&self, op: &str, e: impl std::fmt::Display) -> StateError {
        StateError::storage(format_args!("{op} state '{}'", self.name), e)
    }

    fn row(&self, map_key: &[u8]) -> Vec<u8> {
        [self.prefix, &[MAP_ENTRY], map_key].concat()
    }

    /// Whether the key's entries are visible (always, without TTL).
    fn live(&self) -> Result<bool, StateError> {
        if self.ttl_ms.is_none() {
            return Ok(true);
        }
        let header = self.db.get_pinned_cf(self.cf, self.prefix).map_err(|e| self.err("reading", e))?;
        Ok(header.and_then(|h| value_time(&h)).is_some_and(|t| !expired(self.ttl_ms, t, self.now)))
    }

    /// An iterator over every row of the key (the header first).
    fn rows(&self) -> DBRawIterator<'_> {
        let mut opts = ReadOptions::default();
        if let Some(end) = prefix_end(self.prefix) {
            opts.set_iterate_upper_bound(end);
        }
        let mut it = self.db.raw_iterator_cf_opt(self.cf, opts);
        it.seek(self.prefix);
        it
    }

    fn write(&self, batch: WriteBatch) -> Result<(), StateError> {
        self.db.write_opt(batch, self.write_opts).map_err(|e| self.err("writing", e))
    }

    /// Add deletes of every row of the key to `batch`.
    fn delete_all(&self, batch: &mut WriteBatch) -> Result<(), StateError> {
        let mut it = self.rows();
        while let Some(k) = it.key() {
            batch.delete_cf(self.cf, k);
            it.next();
        }
        it.status().map_err(|e| self.err("reading", e))
    }

    pub(super) fn get(&self, map_key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        if !self.live()? {
            return Ok(None);
        }
        self.db.get_cf(self.cf, self.row(map_key)).map_err(|e| self.err("reading", e))
    }

    pub(super) fn put(&self, map_key: &[u8], value: &[u8]) -> Result<(), StateError> {
        let mut batch = WriteBatch::default();
        if self.ttl_ms.is_some() {
            if !self.live()? {
                // Expired: start afresh (drops entries left by a purged header).
                self.delete_all(&mut batch)?;
            }
            batch.put_cf(self.cf, self.prefix, self.now.to_be_bytes());
        }
        batch.put_cf(self.cf, self.row(map_key), value);
        self.write(batch)
    }

    pub(super) fn remove(&self, map_key: &[u8]) -> Result<bool, StateError> {
        if !self.live()? {
            return Ok(false);
        }
        let row = self.row(map_key);
        if self.db.get_pinned_cf(self.cf, &row).map_err(|e| self.err("reading", e))?.is_none() {
            return Ok(false);
        }
        let mut batch = WriteBatch::default();
        batch.delete_cf(self.cf, &row);
        if self.ttl_ms.is_some() {
            // The header goes with the last entry.
            let mut it = self.rows();
            let mut others = false;
            while let Some(k) = it.key() {
                if k.len() != self.prefix.len() && k != row.as_slice() {
                    others = true;
                    break;
                }
                it.next();
            }
            it.status().map_err(|e| self.err("reading", e))?;
            if !others {
                batch.delete_cf(self.cf, self.prefix);
            }
        }
        self.write(batch)?;
        Ok(true)
    }

    pub(super) fn entries(&self) -> Result<MapEntries, StateError> {
        let mut out = Vec::new();
        if !self.live()? {
            return Ok(out);
        }
        let mut it = self.rows();
        while let Some((k, v)) = it.item() {
            if k.len() > self.prefix.len() {
                out.push((k[self.prefix.len() + 1..].to_vec(), v.to_vec()));
            }
            it.next();
        }
        it.status().map_err(|e| self.err("reading", e))?;
        Ok(out)
    }

    pub(super) fn clear(&self) -> Result<(), StateError> {
        let mut batch = WriteBatch::default();
        self.delete_all(&mut batch)?;
        if batch.is_empty() {
            return Ok(());
        }
        self.write(batch)
    }
}

/// Tracks which rows of a map column family are live while scanning it in
/// key order (a TTL map's header row comes before its entries).
pub(super) struct MapScan {
    ttl_ms: Option<i64>,
    now: i64,
    /// The prefix of the last header seen and whether it was live.
    header: Vec<u8>,
    header_live: bool,
}

/// What a row of a map column family is.
pub(super) enum MapRow {
    /// A row of a live key; `counts` on exactly one row per key (the header
    /// of a TTL map, the first entry otherwise).
    Live { counts: bool },
    /// Expired, orphaned or malformed.
    Dead,
}

impl MapScan {
    pub(super) fn new(ttl_ms: Option<i64>, now: i64) -> Self {
        MapScan { ttl_ms, now, header: Vec::new(), header_live: false }
    }

    pub(super) fn classify(&mut self, key: &[u8], value: &[u8]) -> MapRow {
        let Some(n) = prefix_len(key) else { return MapRow::Dead };
        let prefix = &key[..n];
        let header_row = n == key.len();
        match (self.ttl_ms, header_row) {
            (None, true) => MapRow::Dead,
            (None, false) => {
                let new_key = self.header != prefix;
                if new_key {
                    self.header.clear();
                    self.header.extend_from_slice(prefix);
                }
                MapRow::Live { counts: new_key }
            }
            (Some(_), true) => {
                self.header.clear();
                self.header.extend_from_slice(prefix);
                self.header_live = value_time(value).is_some_and(|t| !expired(self.ttl_ms, t, self.now));
                if self.header_live { MapRow::Live { counts: true } } else { MapRow::Dead }
            }
            (Some(_), false) if self.header_live && self.header == prefix => MapRow::Live { counts: false },
            (Some(_), false) => MapRow::Dead,
        }
    }
}
