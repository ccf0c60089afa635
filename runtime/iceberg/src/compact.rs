//! Compaction: rewriting a table's small data files, and the data files its
//! delete files reach, into files of the target size, committed as one
//! `replace` snapshot. As Iceberg's `rewrite_data_files`:
//!
//! * per partition of the default spec, the candidates are the live data
//!   files under 75 % of the target size and every data file a delete file
//!   may reach (an equality delete of a higher sequence number, a position
//!   delete of the same or higher one); a partition is rewritten when it has
//!   `min_files` candidates, or one that deletes reach;
//! * the rows are read with the deletes applied (iceberg-rust's reader over
//!   the scan's tasks) and written as new files whose data sequence number
//!   is the starting snapshot's, so that equality deletes a streaming writer
//!   commits meanwhile still reach the rewritten rows;
//! * the delete files none of whose data files stay are removed with them;
//! * the commit goes through the catalog's compare-and-swap
//!   (`Lake::commit_updates`); when another writer committed first (a
//!   streaming sink's checkpoint), the same new files are committed on top
//!   of its snapshot; if it added position deletes of a file being
//!   rewritten, the rows are read again from its snapshot (those deletes
//!   applied) first; if it removed a file being rewritten, the compaction
//!   fails with nothing committed.
//!
//! Fault injection for tests: `WEIR_FAULT=iceberg-compact-pause:MS` sleeps
//! between the rewrite and the first commit attempt.

use std::collections::{BTreeMap, HashMap, HashSet};

use arrow_array::RecordBatch;
use futures::StreamExt;
use iceberg::spec::{
    DataContentType, DataFile, ManifestContentType, ManifestEntry, ManifestFile, ManifestListWriter, ManifestWriterBuilder, Operation,
    Snapshot, Struct, Summary,
};
use iceberg::table::Table;

use crate::IcebergError;
use crate::catalog::Lake;
use crate::config::{CatalogConfig, DEFAULT_TARGET_FILE_SIZE};
use crate::writer::TaskFiles;

/// What to compact.
#[derive(Clone, Debug, Default)]
pub struct CompactOptions {
    /// The size of the files written (default: the table's
    /// `write.target-file-size-bytes`, else 128 MiB).
    pub target_file_size: Option<usize>,
    /// Candidates a partition needs to be rewritten (unless deletes reach one).
    pub min_files: usize,
    /// Only the partition with this path (`key=a/id_bucket=3`, as its data
    /// files' directories are named).
    pub partition: Option<String>,
}

/// What a compaction did.
#[derive(Debug, Default)]
pub struct Compacted {
    /// Paths of the partitions rewritten.
    pub partitions: Vec<String>,
    pub rewritten_files: usize,
    pub rewritten_bytes: u64,
    pub added_files: usize,
    pub added_bytes: u64,
    pub removed_delete_files: usize,
    /// Rows read (deletes applied) and written.
    pub rows: u64,
    /// The `replace` snapshot, if anything was rewritten.
    pub snapshot: Option<i64>,
    /// Snapshots other writers committed while this one ran, committed on top of.
    pub rebased: usize,
    /// Rewrites done again because position deletes committed meanwhile
    /// reached the files being rewritten.
    pub redone: usize,
}

/// A live manifest entry, and what it is for.
struct Live {
    entry: ManifestEntry,
    spec_id: i32,
}

impl Live {
    fn seq(&self) -> i64 {
        self.entry.sequence_number().unwrap_or(0)
    }
}

fn ice(table: &str) -> impl Fn(iceberg::Error) -> IcebergError + '_ {
    move |e| IcebergError::iceberg(table, e)
}

/// The live entries of a snapshot's manifests.
async fn live_entries(table: &Table, snapshot: &iceberg::spec::SnapshotRef) -> iceberg::Result<Vec<Live>> {
    let list = table.manifest_list_reader(snapshot).load().await?;
    let mut out = Vec::new();
    for mf in list.entries() {
        let manifest = mf.load_manifest(table.file_io()).await?;
        for e in manifest.entries() {
            if e.is_alive() {
                out.push(Live { entry: e.as_ref().clone(), spec_id: mf.partition_spec_id });
            }
        }
    }
    Ok(out)
}

/// Whether delete file `d` may reach data file `f` (same partition).
fn reaches(d: &Live, f: &Live) -> bool {
    match d.entry.content_type() {
        DataContentType::EqualityDeletes => f.seq() < d.seq(),
        DataContentType::PositionDeletes => {
            f.seq() <= d.seq() && d.entry.data_file().referenced_data_file().is_none_or(|p| p == f.entry.file_path())
        }
        DataContentType::Data => false,
    }
}

/// Compact `table`.
pub fn compact(catalog: &CatalogConfig, table: &str, opts: &CompactOptions) -> Result<Compacted, IcebergError> {
    let lake = Lake::open(catalog, table)?;
    let start = lake.load()?;
    let m = start.metadata();
    let Some(base) = m.current_snapshot().cloned() else { return Ok(Compacted::default()) };
    let spec = m.default_partition_spec().clone();
    let schema = m.current_schema().clone();
    let target = opts
        .target_file_size
        .or_else(|| m.properties().get("write.target-file-size-bytes").and_then(|v| v.parse().ok()))
        .unwrap_or(DEFAULT_TARGET_FILE_SIZE);
    let small = (target as u64) * 3 / 4;
    let live = lake.rt.block_on(live_entries(&start, &base)).map_err(ice(table))?;

    // Group by partition: data files of the default spec, and the delete
    // files that reach them (a delete file of another spec, say a global
    // equality delete of an unpartitioned one, is never removed).
    let mut groups: BTreeMap<String, (Vec<&Live>, Vec<&Live>)> = BTreeMap::new();
    let path_of = |p: &Struct| spec.partition_to_path(p, schema.clone());
    for l in &live {
        if l.spec_id != spec.spec_id() {
            continue;
        }
        let g = groups.entry(path_of(l.entry.data_file().partition())).or_default();
        match l.entry.content_type() {
            DataContentType::Data => g.0.push(l),
            _ => g.1.push(l),
        }
    }
    let foreign_deletes: Vec<&Live> =
        live.iter().filter(|l| l.spec_id != spec.spec_id() && l.entry.content_type() != DataContentType::Data).collect();
    let mut out = Compacted::default();
    let mut rewrite: HashSet<String> = HashSet::new();
    let mut drop_deletes: HashSet<String> = HashSet::new();
    for (path, (data, deletes)) in &groups {
        if opts.partition.as_ref().is_some_and(|p| p != path) {
            continue;
        }
        let reached = |f: &Live| deletes.iter().chain(foreign_deletes.iter()).any(|d| reaches(d, f));
        let picked: Vec<&&Live> = data.iter().filter(|f| f.entry.file_size_in_bytes() < small || reached(f)).collect();
        let any_deleted = picked.iter().any(|f| reached(f));
        if picked.is_empty() || (picked.len() < opts.min_files.max(2) && !any_deleted) {
            continue;
        }
        let chosen: HashSet<&str> = picked.iter().map(|f| f.entry.file_path()).collect();
        for d in deletes {
            if data.iter().filter(|f| reaches(d, f)).all(|f| chosen.contains(f.entry.file_path())) {
                drop_deletes.insert(d.entry.file_path().to_string());
            }
        }
        for f in picked {
            out.rewritten_files += 1;
            out.rewritten_bytes += f.entry.file_size_in_bytes();
            rewrite.insert(f.entry.file_path().to_string());
        }
        out.partitions.push(path.clone());
    }
    if rewrite.is_empty() {
        return Ok(out);
    }

    // Read the chosen files' rows, deletes applied, into new files.
    let mut read_at = base.clone();
    let mut added = lake.rt.block_on(rewrite_rows(&start, read_at.snapshot_id(), &rewrite, target, &mut out.rows)).map_err(ice(table))?;
    out.removed_delete_files = drop_deletes.len();

    if let Some(ms) = crate::commit::fault("iceberg-compact-pause") {
        tracing::warn!(ms, "fault injection: pausing the compaction before its commit");
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
    let removed: HashSet<String> = rewrite.union(&drop_deletes).cloned().collect();
    // Files written for a commit that will not be made.
    let io = start.file_io().clone();
    let forget = |lake: &Lake, files: &[DataFile]| {
        for f in files {
            let _ = lake.rt.block_on(io.delete(f.file_path()));
        }
    };
    let mut head = start;
    for attempt in 0..20 {
        let staged = match lake.rt.block_on(stage(&head, base.sequence_number(), read_at.sequence_number(), &removed, &added, &spec)) {
            Ok(s) => s,
            Err(e) => {
                forget(&lake, &added);
                return Err(IcebergError::iceberg(table, e));
            }
        };
        let snap = match staged {
            Staged::Ready(snap) => snap,
            Staged::Redo(why) if out.redone < 5 => {
                // Position deletes committed meanwhile reach rows being
                // rewritten: read them again from the newer snapshot, those
                // deletes applied (the files keep the starting sequence
                // number: the equality deletes of the newer snapshots reach
                // nothing of what is left, and later ones reach it all).
                tracing::info!(table, "{why}; rewriting again from the newer snapshot");
                forget(&lake, &added);
                read_at = head.metadata().current_snapshot().expect("the table has snapshots").clone();
                out.rows = 0;
                out.redone += 1;
                added = lake.rt.block_on(rewrite_rows(&head, read_at.snapshot_id(), &rewrite, target, &mut out.rows)).map_err(ice(table))?;
                continue;
            }
            Staged::Redo(why) | Staged::Fail(why) => {
                forget(&lake, &added);
                return Err(IcebergError::data(table, format!("{why}; nothing committed, run it again")));
            }
        };
        let id = snap.snapshot_id();
        let (requirements, updates) = crate::delta::onto_main(&head, snap);
        if lake.commit_updates(&head, requirements, updates)? {
            out.snapshot = Some(id);
            out.rebased = attempt - out.redone;
            out.added_files = added.len();
            out.added_bytes = added.iter().map(|f| f.file_size_in_bytes()).sum();
            return Ok(out);
        }
        tracing::info!(table, attempt, "another writer committed first; committing the compaction on top of it");
        head = lake.load()?;
    }
    forget(&lake, &added);
    Err(IcebergError::data(table, "the compaction lost the race to other writers 20 times; nothing committed"))
}

/// What `stage` made of a head.
enum Staged {
    Ready(Snapshot),
    /// Position deletes committed meanwhile reach a file being rewritten.
    Redo(String),
    /// A file being rewritten is gone.
    Fail(String),
}

/// Read the rows of data files `paths` of snapshot `snapshot`, deletes
/// applied, and write them as new files; the new files.
async fn rewrite_rows(table: &Table, snapshot: i64, paths: &HashSet<String>, target: usize, rows: &mut u64) -> iceberg::Result<Vec<DataFile>> {
    let scan = table.scan().snapshot_id(snapshot).select_all().build()?;
    let mut tasks = Vec::new();
    let mut planned = scan.plan_files().await?;
    while let Some(t) = planned.next().await {
        let t = t?;
        if paths.contains(&t.data_file_path) {
            tasks.push(Ok(t));
        }
    }
    let arrow = std::sync::Arc::new(iceberg::arrow::schema_to_arrow_schema(table.metadata().current_schema())?);
    let mut files = TaskFiles::named(table.clone(), "compact".into(), target)?;
    let mut read = table.reader_builder().build().read(Box::pin(futures::stream::iter(tasks)))?.stream();
    while let Some(batch) = read.next().await {
        let batch = batch?;
        *rows += batch.num_rows() as u64;
        // The table's own Arrow schema (field ids), which the writers expect.
        let batch = RecordBatch::try_new(arrow.clone(), batch.columns().to_vec())
            .map_err(|e| iceberg::Error::new(iceberg::ErrorKind::DataInvalid, format!("rows read do not fit the table's schema: {e}")))?;
        files.write(batch).await?;
    }
    files.close().await
}

/// The data files a position-delete file names: its `referenced_data_file`,
/// else the values of its `file_path` column.
async fn referenced(io: &iceberg::io::FileIO, f: &DataFile) -> iceberg::Result<HashSet<String>> {
    if let Some(p) = f.referenced_data_file() {
        return Ok(HashSet::from([p]));
    }
    let bytes = io.new_input(f.file_path())?.read().await?;
    let bad = |e: &dyn std::fmt::Display| iceberg::Error::new(iceberg::ErrorKind::DataInvalid, format!("position deletes {}: {e}", f.file_path()));
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
        .and_then(|b| {
            let mask = parquet::arrow::ProjectionMask::roots(b.parquet_schema(), [0]);
            b.with_projection(mask).build()
        })
        .map_err(|e| bad(&e))?;
    let mut out = HashSet::new();
    for batch in reader {
        let batch = batch.map_err(|e| bad(&e))?;
        let col = arrow_cast_strings(batch.column(0)).ok_or_else(|| bad(&"its file_path column is not a string column"))?;
        out.extend(col);
    }
    Ok(out)
}

fn arrow_cast_strings(a: &arrow_array::ArrayRef) -> Option<Vec<String>> {
    use arrow_array::Array;
    if let Some(s) = a.as_any().downcast_ref::<arrow_array::StringArray>() {
        return Some(s.iter().flatten().map(str::to_string).collect());
    }
    a.as_any().downcast_ref::<arrow_array::LargeStringArray>().map(|s| s.iter().flatten().map(str::to_string).collect())
}

/// A table's `total-*` summary counts.
#[derive(Default)]
struct Totals {
    data_files: i64,
    delete_files: i64,
    records: i64,
    bytes: i64,
    position_deletes: i64,
    equality_deletes: i64,
}

impl Totals {
    fn add(&mut self, f: &DataFile) {
        let n = f.record_count() as i64;
        self.bytes += f.file_size_in_bytes() as i64;
        match f.content_type() {
            DataContentType::Data => {
                self.data_files += 1;
                self.records += n;
            }
            DataContentType::PositionDeletes => {
                self.delete_files += 1;
                self.position_deletes += n;
            }
            DataContentType::EqualityDeletes => {
                self.delete_files += 1;
                self.equality_deletes += n;
            }
        }
    }
}

/// The `replace` snapshot on top of `head`: `added` (data sequence number of
/// `base`, where the rewrite started), and the files `removed` marked deleted
/// in rewritten copies of the manifests that list them. Err: `head` cannot
/// take it (a file to remove is gone; new position deletes in a rewritten
/// partition).
async fn stage(
    head: &Table,
    data_seq: i64,
    read_seq: i64,
    removed: &HashSet<String>,
    added: &[DataFile],
    spec: &iceberg::spec::PartitionSpecRef,
) -> iceberg::Result<Staged> {
    let m = head.metadata();
    let io = head.file_io();
    let parent = m.current_snapshot().expect("the table had a snapshot when the compaction started");
    let id = crate::delta::unique_id(head);
    let seq = m.next_sequence_number();
    let attempt = uuid::Uuid::new_v4();
    let schema = m.current_schema().clone();
    let list = head.manifest_list_reader(parent).load().await?;
    let mut manifests: Vec<ManifestFile> = Vec::new();
    let mut found: HashSet<&str> = HashSet::new();
    let (mut deleted_data, mut deleted_deletes, mut deleted_rows, mut deleted_bytes) = (0u64, 0u64, 0u64, 0u64);
    let mut deleted_pos = 0u64;
    let mut deleted_eq = 0u64;
    // The table's totals after the commit, counted from its live files.
    let mut totals = Totals::default();
    for f in added {
        totals.add(f);
    }
    for (n, mf) in list.entries().iter().enumerate() {
        let manifest = mf.load_manifest(io).await?;
        for e in manifest.entries().iter().filter(|e| e.is_alive() && !removed.contains(e.file_path())) {
            totals.add(e.data_file());
        }
        let hit = manifest.entries().iter().any(|e| e.is_alive() && removed.contains(e.file_path()));
        // Position deletes committed after the rows were read must not reach
        // a file being rewritten (its rows would come back). Weir's upsert
        // sink writes them for files of epochs that were not yet committed
        // when a key changed again: the latest snapshots' files.
        if mf.sequence_number > read_seq && mf.content == ManifestContentType::Deletes {
            for e in manifest.entries().iter().filter(|e| {
                e.is_alive() && e.content_type() == DataContentType::PositionDeletes && e.sequence_number().is_some_and(|s| s > read_seq)
            }) {
                if let Some(p) = referenced(io, e.data_file()).await?.into_iter().find(|p| removed.contains(p)) {
                    return Ok(Staged::Redo(format!("position deletes {} of {p}, a file being compacted, were committed meanwhile", e.file_path())));
                }
            }
        }
        if !hit {
            manifests.push(mf.clone());
            continue;
        }
        let mspec = m.partition_spec_by_id(mf.partition_spec_id).map(|s| s.as_ref().clone()).unwrap_or_else(|| spec.as_ref().clone());
        let path = format!("{}/metadata/{attempt}-r{n}.avro", m.location());
        let b = ManifestWriterBuilder::new(io.new_output(path)?, Some(id), schema.clone(), mspec);
        let mut w = if mf.content == ManifestContentType::Deletes { b.build_v2_deletes() } else { b.build_v2_data() };
        for e in manifest.entries() {
            if !e.is_alive() {
                continue;
            }
            let (s, fs) = (e.sequence_number().unwrap_or(0), e.file_sequence_number.or(e.sequence_number()));
            if let Some(p) = removed.get(e.file_path()) {
                found.insert(p.as_str());
                let f = e.data_file();
                match f.content_type() {
                    DataContentType::Data => {
                        deleted_data += 1;
                        deleted_rows += f.record_count();
                    }
                    DataContentType::PositionDeletes => {
                        deleted_deletes += 1;
                        deleted_pos += f.record_count();
                    }
                    DataContentType::EqualityDeletes => {
                        deleted_deletes += 1;
                        deleted_eq += f.record_count();
                    }
                }
                deleted_bytes += f.file_size_in_bytes();
                w.add_delete_file(f.clone(), s, fs)?;
            } else {
                w.add_existing_file(e.data_file().clone(), e.snapshot_id().unwrap_or(mf.added_snapshot_id), s, fs)?;
            }
        }
        manifests.push(w.write_manifest_file().await?);
    }
    if let Some(gone) = removed.iter().find(|p| !found.contains(p.as_str())) {
        return Ok(Staged::Fail(format!("{gone} was removed from the table by another commit while the compaction ran")));
    }
    if !added.is_empty() {
        let path = format!("{}/metadata/{attempt}-a.avro", m.location());
        let mut w = ManifestWriterBuilder::new(io.new_output(path)?, Some(id), schema.clone(), spec.as_ref().clone()).build_v2_data();
        for f in added {
            w.add_file(f.clone(), data_seq)?;
        }
        manifests.insert(0, w.write_manifest_file().await?);
    }
    let list_path = format!("{}/metadata/snap-{id}-0-{attempt}.avro", m.location());
    let mut lw = ManifestListWriter::v2(io.new_output(&list_path)?.writer().await?, id, Some(parent.snapshot_id()), seq);
    lw.add_manifests(manifests.into_iter())?;
    lw.close().await?;

    let added_rows: u64 = added.iter().map(|f| f.record_count()).sum();
    let added_bytes: u64 = added.iter().map(|f| f.file_size_in_bytes()).sum();
    let mut summary: HashMap<String, String> = HashMap::new();
    let mut put = |k: &str, v: i64| {
        summary.insert(k.to_string(), v.max(0).to_string());
    };
    put("added-data-files", added.len() as i64);
    put("added-records", added_rows as i64);
    put("added-files-size", added_bytes as i64);
    put("deleted-data-files", deleted_data as i64);
    put("deleted-records", deleted_rows as i64);
    put("removed-files-size", deleted_bytes as i64);
    put("removed-delete-files", deleted_deletes as i64);
    put("removed-position-deletes", deleted_pos as i64);
    put("removed-equality-deletes", deleted_eq as i64);
    put("total-data-files", totals.data_files);
    put("total-delete-files", totals.delete_files);
    put("total-records", totals.records);
    put("total-files-size", totals.bytes);
    put("total-position-deletes", totals.position_deletes);
    put("total-equality-deletes", totals.equality_deletes);
    summary.insert("weir.compaction".into(), "true".into());
    Ok(Staged::Ready(Snapshot::builder()
        .with_snapshot_id(id)
        .with_parent_snapshot_id(Some(parent.snapshot_id()))
        .with_sequence_number(seq)
        .with_timestamp_ms(crate::delta::now_ms().max(m.last_updated_ms() + 1))
        .with_manifest_list(list_path)
        .with_summary(Summary { operation: Operation::Replace, additional_properties: summary })
        .with_schema_id(m.current_schema_id())
        .build()))
}
