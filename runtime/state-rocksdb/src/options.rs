//! [`RocksOptions`] and the RocksDB options of the backend's column families.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};

use rocksdb::{BlockBasedOptions, Cache, CompactionDecision, DBCompressionType, LogLevel, Options};

use super::format::{expired, prefix_len, value_time};
#[cfg(doc)]
use super::RocksBackend;

/// Settings of a [`RocksBackend`].
#[derive(Clone)]
pub struct RocksOptions {
    /// The instance's working directory. Scratch space: `open` deletes and
    /// recreates it, dropping the backend deletes it. Give every instance its own.
    pub dir: PathBuf,
    /// The RocksDB block cache (data, index and filter blocks); normally one
    /// cache shared by every backend of the process.
    pub block_cache: Cache,
    /// Bytes the record cache (entries of value, list and reducing states)
    /// holds before it writes back dirty entries and keeps the recently used
    /// ones, up to half of it. Counted per entry: its key and data, and a fixed
    /// overhead for the hash table (about 100 bytes); the table's spare
    /// capacity comes on top.
    pub cache_bytes: usize,
    /// A write-back of at least this many rows of one state goes into the DB
    /// as an SST file of its own (ingested); smaller ones go through the
    /// memtable. Each ingestion is a file and a MANIFEST update, and adds a
    /// level-0 file to compact: worth it for the large write-backs of a large
    /// cache, not for the frequent small ones of a small cache.
    pub ingest_rows: usize,
}

impl RocksOptions {
    /// The default size of the shared block cache.
    pub const DEFAULT_BLOCK_CACHE_BYTES: usize = 256 << 20;
    /// The default size of the record cache of one backend (one task).
    pub const DEFAULT_CACHE_BYTES: usize = 64 << 20;
    /// The default [`Self::ingest_rows`].
    pub const DEFAULT_INGEST_ROWS: usize = 65_536;

    /// Options for an instance working in `dir`, with the process-wide block
    /// cache and the default record cache size.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        RocksOptions {
            dir: dir.into(),
            block_cache: Self::shared_block_cache(),
            cache_bytes: Self::DEFAULT_CACHE_BYTES,
            ingest_rows: Self::DEFAULT_INGEST_ROWS,
        }
    }

    /// The process-wide LRU block cache, created on first use with
    /// [`Self::DEFAULT_BLOCK_CACHE_BYTES`] (see [`Self::set_shared_block_cache_bytes`]).
    pub fn shared_block_cache() -> Cache {
        static CACHE: OnceLock<Cache> = OnceLock::new();
        CACHE.get_or_init(|| Cache::new_lru_cache(Self::DEFAULT_BLOCK_CACHE_BYTES)).clone()
    }

    /// Resize the process-wide block cache (for every backend using it).
    pub fn set_shared_block_cache_bytes(bytes: usize) {
        Self::shared_block_cache().set_capacity(bytes);
    }

    /// Use `cache` as the block cache instead of the process-wide one.
    pub fn with_block_cache(mut self, cache: Cache) -> Self {
        self.block_cache = cache;
        self
    }

    /// Set the record cache size (bytes).
    pub fn with_cache_bytes(mut self, bytes: usize) -> Self {
        self.cache_bytes = bytes;
        self
    }

    /// Set [`Self::ingest_rows`].
    pub fn with_ingest_rows(mut self, rows: usize) -> Self {
        self.ingest_rows = rows;
        self
    }
}

impl fmt::Debug for RocksOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RocksOptions")
            .field("dir", &self.dir)
            .field("block_cache_usage", &self.block_cache.get_usage())
            .field("cache_bytes", &self.cache_bytes)
            .field("ingest_rows", &self.ingest_rows)
            .finish()
    }
}


/// Table options of every column family.
pub(super) fn cf_options(cache: &Cache) -> Options {
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(cache);
    table.set_bloom_filter(10.0, false);
    table.set_cache_index_and_filter_blocks(true);
    let mut opts = Options::default();
    opts.set_block_based_table_factory(&table);
    opts.set_compression_type(DBCompressionType::Lz4);
    // Most reads of a keyed operator ask for keys seen recently or never: a
    // bloom filter over the memtable answers "never" without a skip-list
    // search, and a smaller memtable keeps the searches that remain short.
    opts.set_memtable_whole_key_filtering(true);
    opts.set_memtable_prefix_bloom_ratio(0.1);
    opts.set_write_buffer_size(16 << 20);
    opts
}

/// The DB's own options (those of its default column family too).
pub(super) fn db_options(cache: &Cache) -> Options {
    let mut opts = cf_options(cache);
    opts.create_if_missing(true);
    opts.set_log_level(LogLevel::Warn);
    opts.set_keep_log_file_num(1);
    opts.set_max_log_file_size(1 << 20);
    opts
}

/// The compaction filter of a state with a TTL: drops rows whose write time
/// (for maps: the header row's) is older than `ttl_ms` at the current time.
pub(super) fn ttl_filter(
    now: Arc<AtomicI64>,
    ttl_ms: i64,
    map: bool,
) -> impl FnMut(u32, &[u8], &[u8]) -> CompactionDecision + Send + 'static {
    move |_level: u32, key: &[u8], value: &[u8]| {
        if map && prefix_len(key) != Some(key.len()) {
            return CompactionDecision::Keep; // a map entry: its header decides
        }
        match value_time(value) {
            Some(t) if expired(Some(ttl_ms), t, now.load(Ordering::Relaxed)) => CompactionDecision::Remove,
            _ => CompactionDecision::Keep,
        }
    }
}
