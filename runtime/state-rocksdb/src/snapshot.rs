//! Snapshots (native RocksDB checkpoints, SST files shared between
//! consecutive snapshots) and restores: a fresh backend restoring one
//! snapshot of exactly its key groups opens the snapshot's files as its DB
//! (hard links, no row copied, as Flink restores without rescaling);
//! otherwise the rows of the key groups this backend owns are copied out of
//! checkpoints of any parallelism.

use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rocksdb::checkpoint::Checkpoint;
use rocksdb::{ColumnFamilyDescriptor, FlushOptions, LogLevel, Options, ReadOptions, WriteBatch, DB};

use super::format::{cf_name, key_group_start, row_key_group, Meta, HEAP_FILE, META_FILE};
use super::options::db_options;
use super::overlay::{Overlay, OVERLAY_FILE};
use super::{column_family, RocksBackend, RowScan, State};
use weir_state::{KeyedStateBackend, RestoreFiles, SnapshotFile, StateError, StateId};

/// The subdirectory of a snapshot's directory holding the checkpoint.
const CHECKPOINT_DIR: &str = "rocksdb";
/// Restores write in batches of about this many bytes.
const BATCH_BYTES: usize = 4 << 20;

/// An id for a backend instance, unique across processes and hosts (in
/// practice): it prefixes the names of its shared snapshot files.
pub(super) fn instance_id(dir: &Path) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let mut seed = Vec::new();
    seed.extend_from_slice(&nanos.to_le_bytes());
    seed.extend_from_slice(&std::process::id().to_le_bytes());
    seed.extend_from_slice(&COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    seed.extend_from_slice(dir.as_os_str().as_encoded_bytes());
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&seed))
}

/// A scratch directory, deleted on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

impl RocksBackend {
    /// Flush and checkpoint the DB (the record cache must have been written
    /// back) into `dir`.
    pub(super) fn snapshot_to(&mut self, dir: &Path) -> Result<Vec<SnapshotFile>, StateError> {
        let cfs = self.states.iter().map(|s| column_family(&self.db, s)).collect::<Result<Vec<_>, _>>()?;
        if !cfs.is_empty() {
            let mut flush = FlushOptions::default();
            flush.set_wait(true);
            self.db.flush_cfs_opt(&cfs, &flush).map_err(|e| StateError::storage("flushing state for a snapshot", e))?;
        }
        let target = dir.join(CHECKPOINT_DIR);
        Checkpoint::new(&self.db)
            .and_then(|c| c.create_checkpoint(&target))
            .map_err(|e| StateError::storage(format_args!("creating a RocksDB checkpoint in {}", target.display()), e))?;

        let meta = Meta {
            max_parallelism: self.key_groups.max_parallelism,
            key_group_start: self.key_groups.range.start,
            key_group_end: self.key_groups.range.end,
            time_ms: self.now_ms,
            states: self.states.iter().map(|s| s.descriptor.clone()).collect(),
        };
        let meta = meta.encode().map_err(|e| StateError::storage("encoding snapshot metadata", e))?;
        let meta_path = target.join(META_FILE);
        let io = |e: std::io::Error| StateError::storage(format_args!("writing {}", meta_path.display()), e);
        fs::File::create(&meta_path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, &meta).and_then(|()| f.sync_all()))
            .map_err(io)?;

        let io = |e: std::io::Error| StateError::storage(format_args!("listing {}", target.display()), e);
        let mut files = Vec::new();
        for entry in fs::read_dir(&target).map_err(io)? {
            let entry = entry.map_err(io)?;
            if !entry.file_type().map_err(io)?.is_file() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let shared = name.ends_with(".sst");
            let name = if shared { format!("{}-{name}", self.instance_id) } else { name };
            files.push(SnapshotFile { path: entry.path(), name, shared });
        }
        files.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(files)
    }

    /// Restore the key groups we own from one task's snapshot; `adopt`: this
    /// is a fresh backend's only snapshot to restore.
    pub(super) fn restore_one(&mut self, files: &RestoreFiles, adopt: bool) -> Result<(), StateError> {
        if let Some((_, path)) = files.iter().find(|(n, _)| n == HEAP_FILE) {
            return Err(StateError::Restore {
                file: path.display().to_string(),
                message: "the snapshot was taken by another state backend (heap); this task uses the RocksDB backend \
                          (restore with the state.backend the checkpoint was taken with)"
                    .into(),
            });
        }
        let Some((_, meta_path)) = files.iter().find(|(n, _)| n == META_FILE) else {
            let file = files.first().map_or_else(|| "an empty snapshot".to_string(), |(_, p)| p.display().to_string());
            let message = format!(
                "'{META_FILE}' is missing: not a snapshot of the RocksDB state backend (was the state checkpointed with another state.backend?)"
            );
            return Err(StateError::Restore { file, message });
        };
        let file = meta_path.display().to_string();
        let bad = |message: String| StateError::Restore { file: file.clone(), message };
        let bytes = fs::read(meta_path).map_err(|e| bad(e.to_string()))?;
        let meta = Meta::decode(&bytes).map_err(bad)?;
        if meta.max_parallelism != self.key_groups.max_parallelism {
            return Err(bad(format!(
                "it was taken with max_parallelism {} (key groups); this pipeline has {}; the number of key groups cannot change",
                meta.max_parallelism, self.key_groups.max_parallelism
            )));
        }
        if adopt && (meta.key_group_start, meta.key_group_end) == (self.key_groups.range.start, self.key_groups.range.end) {
            let ids = (0..meta.states.len() as StateId).collect::<Vec<_>>();
            self.adopt(meta, files, &bad)?;
            return self.apply_overlay(files, &ids);
        }
        let ids = meta.states.iter().map(|d| self.declare(d.clone())).collect::<Result<Vec<_>, _>>()?;
        let groups = meta.key_group_start.max(self.key_groups.range.start)..meta.key_group_end.min(self.key_groups.range.end);
        if groups.is_empty() || ids.is_empty() {
            return Ok(()); // nothing of ours in it
        }

        // Materialise the checkpoint (SSTs hard-linked where possible) and
        // open it read-only.
        self.restores += 1;
        let scratch = Scratch(self.work_dir.0.join(format!("restore-{}", self.restores)));
        let _ = fs::remove_dir_all(&scratch.0);
        fs::create_dir_all(&scratch.0)
            .map_err(|e| StateError::storage(format_args!("creating {}", scratch.0.display()), e))?;
        link_files(files, &scratch.0)?;
        let mut opts = Options::default();
        opts.set_log_level(LogLevel::Warn);
        opts.set_keep_log_file_num(1);
        let cfs = meta.states.iter().map(|d| cf_name(&d.name));
        let src = DB::open_cf_for_read_only(&opts, &scratch.0, cfs, false)
            .map_err(|e| bad(format!("opening its RocksDB checkpoint: {e}")))?;
        let cutoff = meta.time_ms.max(self.now_ms);
        for &id in &ids {
            self.copy_state(&src, id, groups.clone(), cutoff, &bad)?;
        }
        drop(src);
        drop(scratch);
        self.apply_overlay(files, &ids)
    }

    /// Apply the snapshot's overlay (the record cache's dirty entries when it
    /// was taken, see [`super::overlay`]), if it has one, over the rows
    /// restored from its checkpoint: those of our key groups. `ids`: our id of
    /// each state of the snapshot's metadata.
    fn apply_overlay(&mut self, files: &RestoreFiles, ids: &[StateId]) -> Result<(), StateError> {
        let Some((_, path)) = files.iter().find(|(n, _)| n == OVERLAY_FILE) else {
            return Ok(());
        };
        let file = path.display().to_string();
        let bad = |message: String| StateError::Restore { file: file.clone(), message };
        let bytes = fs::read(path).map_err(|e| bad(e.to_string()))?;
        let mut batch = WriteBatch::default();
        for (n, row) in Overlay::rows(&bytes, &file)?.into_iter().enumerate() {
            let &id = ids.get(row.state).ok_or_else(|| bad(format!("row {n} is of state {}, which the snapshot's metadata does not list", row.state)))?;
            let kg = row_key_group(row.key).ok_or_else(|| bad(format!("row {n} has a malformed key")))?;
            if !self.key_groups.contains(kg) {
                continue;
            }
            let cf = column_family(&self.db, &self.states[id as usize])?;
            match row.value {
                Some(v) => batch.put_cf(cf, row.key, v),
                None => batch.delete_cf(cf, row.key),
            }
            if batch.size_in_bytes() >= BATCH_BYTES {
                self.write_restored(std::mem::take(&mut batch))?;
            }
        }
        if !batch.is_empty() {
            self.write_restored(batch)?;
        }
        Ok(())
    }

    fn write_restored(&self, batch: WriteBatch) -> Result<(), StateError> {
        self.db.write_opt(batch, &self.write_opts).map_err(|e| StateError::storage("restoring the snapshot's cached entries", e))
    }

    /// Make the snapshot's files this (fresh) backend's DB: hard links into a
    /// new directory, opened with every state's column family options, in
    /// place of the empty DB.
    fn adopt(&mut self, meta: Meta, files: &RestoreFiles, bad: &dyn Fn(String) -> StateError) -> Result<(), StateError> {
        self.restores += 1;
        let dir = self.work_dir.0.join(format!("db-{}", self.restores));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).map_err(|e| StateError::storage(format_args!("creating {}", dir.display()), e))?;
        link_files(files, &dir)?;
        let states: Vec<State> = meta.states.into_iter().map(|d| State::new(d, None)).collect();
        let cfs = states
            .iter()
            .map(|s| ColumnFamilyDescriptor::new(s.cf.clone(), self.state_options(&s.descriptor)))
            .collect::<Vec<_>>();
        let db = DB::open_cf_descriptors(&db_options(&self.block_cache), &dir, cfs)
            .map_err(|e| bad(format!("opening its RocksDB checkpoint as this task's state: {e}")))?;
        let old = std::mem::replace(&mut self.db, db);
        let old_dir = old.path().to_path_buf();
        drop(old);
        let _ = fs::remove_dir_all(old_dir);
        self.states = states;
        // Entries expired when the snapshot was taken stay expired (a copy
        // would have left them out).
        self.clock_floor_ms = meta.time_ms;
        let now = self.now_ms;
        KeyedStateBackend::set_time(self, now);
        Ok(())
    }

    /// Copy state `id`'s live rows of key groups `groups` from `src`.
    fn copy_state(
        &self,
        src: &DB,
        id: StateId,
        groups: Range<u32>,
        cutoff: i64,
        bad: &dyn Fn(String) -> StateError,
    ) -> Result<(), StateError> {
        let s = &self.states[id as usize];
        let name = &s.descriptor.name;
        let src_cf = src.cf_handle(&s.cf).ok_or_else(|| bad(format!("it has no column family for state '{name}'")))?;
        let dst_cf = column_family(&self.db, s)?;
        let mut read = ReadOptions::default();
        read.fill_cache(false);
        read.set_readahead_size(2 << 20);
        if let Some(end) = key_group_start(groups.end) {
            read.set_iterate_upper_bound(end.to_vec());
        }
        let start = key_group_start(groups.start).ok_or_else(|| bad(format!("key group {} out of range", groups.start)))?;
        let mut it = src.raw_iterator_cf_opt(src_cf, read);
        it.seek(start);
        let mut scan = RowScan::new(s.descriptor.kind, s.ttl_ms, cutoff);
        let write = |batch: WriteBatch| {
            self.db
                .write_opt(batch, &self.write_opts)
                .map_err(|e| StateError::storage(format_args!("restoring state '{name}'"), e))
        };
        let mut batch = WriteBatch::default();
        while let Some((k, v)) = it.item() {
            if scan.live(k, v).is_some() {
                batch.put_cf(dst_cf, k, v);
                if batch.size_in_bytes() >= BATCH_BYTES {
                    write(std::mem::take(&mut batch))?;
                }
            }
            it.next();
        }
        it.status().map_err(|e| bad(format!("reading state '{name}': {e}")))?;
        if !batch.is_empty() {
            write(batch)?;
        }
        Ok(())
    }
}

/// Put a snapshot's files (all but its metadata) into `dir`: SSTs hard-linked
/// where the file system allows, under their names in the checkpoint.
fn link_files(files: &RestoreFiles, dir: &Path) -> Result<(), StateError> {
    for (name, path) in files {
        if name == META_FILE || name == OVERLAY_FILE {
            continue;
        }
        if name.is_empty() || name.contains(['/', '\\']) || name == "." || name == ".." {
            return Err(StateError::Restore {
                file: path.display().to_string(),
                message: format!("'{name}' is not a file name of a RocksDB-backend snapshot"),
            });
        }
        let sst = name.ends_with(".sst");
        // Shared SSTs were stored as "<instance>-<name>".
        let local = if sst { name.rsplit_once('-').map_or(name.as_str(), |(_, n)| n) } else { name.as_str() };
        let target = dir.join(local);
        if !(sst && fs::hard_link(path, &target).is_ok()) {
            fs::copy(path, &target).map_err(|e| StateError::Restore {
                file: path.display().to_string(),
                message: format!("copying it to {}: {e}", target.display()),
            })?;
        }
    }
    Ok(())
}
