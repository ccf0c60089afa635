//! `type: iceberg` sinks (mode append, or upsert: `crate::upsert`). Each task
//! encodes its records into Arrow batches and writes Parquet data files (and
//! an upsert's delete files); at a checkpoint's barrier it
//! closes them (pre-commit) and keeps their `DataFile` entries in its part of
//! the checkpoint; when the checkpoint completes, each task hands its files
//! to the sink's committer, and the last task to arrive commits every task's
//! files of that checkpoint as one snapshot. After a crash, `recover` reads
//! the tasks' parts of the checkpoint it resumes from and commits the
//! checkpoints among them that the table's snapshot history does not show as
//! committed, and deletes the files of later, never completed, epochs
//! (`docs/iceberg-commits.md`). Without checkpoints, a task commits its own
//! files when its input is idle and at the end (at least once).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arrow_schema::SchemaRef;
use iceberg::spec::{DataFile, FormatVersion, StructType, deserialize_data_file_from_json, serialize_data_file_to_json};
use iceberg::table::Table;
use serde::{Deserialize, Serialize};
use weir_engine::{NodeRestore, RecordBatch, Sink, SinkError, SinkFactory, SnapshotFile, SnapshotWriter, TaskContext};
use weir_spec::units::Bytes;
use weir_spec::{BuildContext, BuildError, Check, SinkConnector, SpecError};
use weir_state::StateError;

use crate::IcebergError;
use crate::catalog::Lake;
use crate::commit::{self, Stamp};
use crate::config::{self, DEFAULT_TARGET_FILE_SIZE, IcebergSinkConfig, SinkMode};
use crate::encode::Encoder;
use crate::upsert::{self, Failure, UpsertFiles};
use crate::writer::TaskFiles;

const STATE_FILE: &str = "iceberg-sink.json";

static SNAPSHOTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The `iceberg` sink type.
pub struct IcebergSinks;

impl SinkConnector for IcebergSinks {
    type Config = IcebergSinkConfig;
    const TYPE: &'static str = "iceberg";

    fn check(&self, c: &IcebergSinkConfig, cx: &Check<'_>) -> Result<(), SpecError> {
        c.check(cx)
    }

    fn rejects_changelog(&self, c: &IcebergSinkConfig) -> Option<String> {
        (c.mode != SinkMode::Upsert).then(|| {
            "an Iceberg sink in append mode would keep every version of every row: give it mode: upsert and the table's key".to_string()
        })
    }

    fn build(&self, c: IcebergSinkConfig, cx: &BuildContext<'_>) -> Result<Arc<dyn SinkFactory>, BuildError> {
        let declared = if c.schema.is_empty() {
            None
        } else {
            let schema = config::schema_of(&c.schema).map_err(|(i, m)| BuildError::new(format!("schema[{i}]: {m}")))?;
            let spec = config::partition_spec(&schema, &c.partition).map_err(|(i, m)| BuildError::new(format!("partition[{i}]: {m}")))?;
            Some((schema, spec))
        };
        if c.mode == SinkMode::Upsert && cx.parallelism > 1 {
            config::upsert_routing(&c.key, cx.key_by, Some(cx.parallelism)).map_err(BuildError::new)?;
        }
        Ok(Arc::new(IcebergSink {
            inner: Arc::new(Inner {
                config: c,
                declared,
                pipeline: cx.env.pipeline.clone(),
                node: cx.node.to_string(),
                checkpointing: cx.env.checkpointing,
                opened: Mutex::new(None),
                gather: Mutex::default(),
            }),
        }))
    }
}

struct IcebergSink {
    inner: Arc<Inner>,
}

struct Inner {
    config: IcebergSinkConfig,
    declared: Option<(iceberg::spec::Schema, iceberg::spec::UnboundPartitionSpec)>,
    pipeline: String,
    node: String,
    checkpointing: bool,
    opened: Mutex<Option<Arc<Opened>>>,
    gather: Mutex<Gather>,
}

/// The committer's side: per completed checkpoint, the files the tasks
/// handed in and how many tasks did; the last checkpoint committed.
#[derive(Default)]
struct Gather {
    open: BTreeMap<u64, (Vec<DataFile>, u32)>,
    committed: Option<u64>,
}

/// The table, open, and who commits to it.
struct Opened {
    lake: Lake,
    stamp: Stamp,
    /// The schema records are decoded in: the table's (for an upsert sink,
    /// with every non-key column nullable, as a delete may carry its key only).
    arrow: SchemaRef,
    /// An upsert sink's key, as field ids.
    key_ids: Vec<i32>,
    partition_type: StructType,
    spec_id: i32,
    format: FormatVersion,
}

impl Opened {
    fn table(&self) -> Result<Table, SinkError> {
        self.lake.load().map_err(sink_err)
    }
}

fn sink_err(e: IcebergError) -> SinkError {
    SinkError(Box::new(e))
}

/// A task's part of a checkpoint: the files of epochs pre-committed and not
/// yet known to be committed.
#[derive(Serialize, Deserialize)]
struct TaskState {
    run: String,
    /// (epoch, data files as Iceberg's JSON of a manifest entry's data file)
    pending: Vec<(u64, Vec<String>)>,
}

impl Inner {
    fn open(&self, run: Option<String>) -> Result<Arc<Opened>, SinkError> {
        let mut o = self.opened.lock().unwrap();
        if let (Some(o), None) = (&*o, &run) {
            return Ok(o.clone());
        }
        let lake = Lake::open(&self.config.catalog, &self.config.table).map_err(sink_err)?;
        let upserting = self.config.mode == SinkMode::Upsert;
        let key: &[String] = if upserting { &self.config.key } else { &[] };
        let table = lake.load_or_create(self.declared.clone(), &self.config.properties, key).map_err(sink_err)?;
        let m = table.metadata();
        let schema = m.current_schema();
        let arrow = iceberg::arrow::schema_to_arrow_schema(schema).map_err(|e| sink_err(IcebergError::iceberg(&self.config.table, e)))?;
        let arrow = Arc::new(if upserting { upsert::relaxed(&arrow, key) } else { arrow });
        let key_ids = config::upsert_key(schema, key)
            .map_err(|(i, m)| sink_err(IcebergError::Config(format!("table {}, key[{i}]: {m}", self.config.table))))?;
        let spec = m.default_partition_spec();
        let partition_type = spec.partition_type(schema).map_err(|e| sink_err(IcebergError::iceberg(&self.config.table, e)))?;
        let stamp = Stamp {
            pipeline: self.pipeline.clone(),
            operator: self.node.clone(),
            run: run.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        };
        let opened =
            Arc::new(Opened { lake, stamp, arrow, key_ids, partition_type, spec_id: spec.spec_id(), format: m.format_version() });
        *o = Some(opened.clone());
        Ok(opened)
    }

    fn target_size(&self) -> usize {
        self.config.target_file_size.map_or(DEFAULT_TARGET_FILE_SIZE, |Bytes(n)| n)
    }

    /// Commit the files of `checkpoint`; none: nothing to commit.
    fn commit(&self, o: &Opened, checkpoint: u64, files: Vec<DataFile>) -> Result<(), SinkError> {
        self.commit_ended(o, checkpoint, files, &[])
    }

    fn commit_ended(&self, o: &Opened, checkpoint: u64, files: Vec<DataFile>, ended: &[u32]) -> Result<(), SinkError> {
        if files.is_empty() {
            return Ok(());
        }
        let n = files.len();
        let id = commit::commit(&o.lake, &o.stamp, checkpoint, files, ended).map_err(sink_err)?;
        tracing::info!(table = self.config.table, checkpoint, files = n, snapshot = id, "committed an Iceberg snapshot");
        Ok(())
    }
}

impl SinkFactory for IcebergSink {
    fn create(&self, ctx: &TaskContext) -> Result<Box<dyn Sink>, SinkError> {
        let o = self.inner.open(None)?;
        let table = o.table()?;
        let name = &self.inner.config.table;
        let files = if self.inner.config.mode == SinkMode::Upsert {
            Files::Upsert(
                UpsertFiles::new(table, ctx.task_index, self.inner.target_size(), o.key_ids.clone(), &o.arrow)
                    .map_err(|e| sink_err(IcebergError::iceberg(name, e)))?,
            )
        } else {
            Files::Append(TaskFiles::new(table, ctx.task_index, self.inner.target_size()).map_err(|e| sink_err(IcebergError::iceberg(name, e)))?)
        };
        Ok(Box::new(Writer {
            inner: self.inner.clone(),
            encoder: Encoder::new(o.arrow.clone()),
            opened: o,
            files,
            parallelism: ctx.parallelism,
            pending: BTreeMap::new(),
            reported: None,
        }))
    }

    fn recover(&self, restored: Option<(u64, bool)>, state: Option<&NodeRestore>) -> Result<(), SinkError> {
        let inner = &self.inner;
        *inner.gather.lock().unwrap() = Gather::default();
        let mut states = Vec::new();
        if let Some(n) = state {
            for (task, files) in n.files.iter().enumerate() {
                if let Some((_, path)) = files.iter().find(|(name, _)| name == STATE_FILE) {
                    let text = std::fs::read_to_string(path).map_err(|e| SinkError::msg(format!("cannot read {}: {e}", path.display())))?;
                    let s: TaskState = serde_json::from_str(&text)
                        .map_err(|e| SinkError::msg(format!("unreadable Iceberg sink state {}: {e}", path.display())))?;
                    states.push((task as u32, s));
                }
            }
        }
        let run = match (restored, states.first()) {
            (Some(_), Some((_, s))) => s.run.clone(),
            _ => uuid::Uuid::new_v4().to_string(),
        };
        let o = inner.open(Some(run))?;
        if states.is_empty() {
            return Ok(());
        }
        let (covered, finished) = restored.unwrap_or((0, false));
        let table = o.table()?;
        let committed = o.stamp.committed(&table);
        let ended_before = o.stamp.ended(&table, covered);
        let schema = table.metadata().current_schema().clone();
        // A snapshot of checkpoint C holds every file staged under epochs up
        // to C; the files staged after the last committed checkpoint and up
        // to the restored one make the restored checkpoint's snapshot. The
        // last files of a task whose input had ended (staged under the final
        // epoch) are the checkpoint's too when it holds the task's final
        // snapshot: with the snapshot of the run's last checkpoint, or, when
        // the run had not ended, marked as the ended tasks' in the snapshot
        // of the checkpoint (a second recovery from it finds them there).
        let mut due = Vec::new();
        let mut abandoned = Vec::new();
        let mut ended = Vec::new();
        for (task, s) in &states {
            for (epoch, files) in &s.pending {
                let last = *epoch == weir_engine::FINAL_EPOCH;
                let is_due = if !weir_engine::covers(restored, state, *task, *epoch) {
                    None
                } else if last && !finished {
                    Some(committed != Some(u64::MAX) && !ended_before.contains(task))
                } else {
                    Some(committed.is_none_or(|c| c < *epoch))
                };
                if is_due == Some(true) && last && !finished && !files.is_empty() {
                    ended.push(*task);
                }
                for json in files {
                    let f = deserialize_data_file_from_json(json, o.spec_id, &o.partition_type, &schema)
                        .map_err(|e| sink_err(IcebergError::iceberg(&inner.config.table, e)))?;
                    match is_due {
                        None => abandoned.push(f.file_path().to_string()),
                        Some(true) => due.push(f),
                        Some(false) => {}
                    }
                }
            }
        }
        if !due.is_empty() {
            // The run's last checkpoint commits as the final one.
            let stamp = if finished { weir_engine::FINAL_EPOCH } else { covered };
            tracing::warn!(
                table = inner.config.table,
                checkpoint = covered,
                files = due.len(),
                "checkpoint {covered} completed but its Iceberg commit did not happen before the job stopped; committing it now"
            );
            inner.commit_ended(&o, stamp, due, &ended)?;
        }
        // Files of epochs after the checkpoint: never committed, never will be.
        for path in abandoned {
            let _ = o.lake.rt.block_on(table.file_io().delete(&path));
        }
        Ok(())
    }
}

/// The files a task writes: appended rows, or an upsert's rows and deletes.
enum Files {
    Append(TaskFiles),
    Upsert(UpsertFiles),
}

struct Writer {
    inner: Arc<Inner>,
    opened: Arc<Opened>,
    encoder: Encoder,
    files: Files,
    parallelism: u32,
    /// Files of pre-committed epochs not yet known to be committed.
    pending: BTreeMap<u64, Vec<DataFile>>,
    /// The last completed checkpoint this task handed its files in for.
    reported: Option<u64>,
}

impl Writer {
    fn table(&self) -> &str {
        &self.inner.config.table
    }

    /// Close the open files as those of `epoch`.
    fn close_files(&mut self, epoch: u64) -> Result<Vec<DataFile>, SinkError> {
        let table = self.inner.config.table.clone();
        let rt = &self.opened.lake.rt;
        match &mut self.files {
            Files::Append(f) => rt.block_on(f.close()),
            Files::Upsert(f) => rt.block_on(f.close(epoch)),
        }
        .map_err(|e| sink_err(IcebergError::iceberg(&table, e)))
    }

    fn rows(&self) -> u64 {
        match &self.files {
            Files::Append(f) => f.rows(),
            Files::Upsert(f) => f.rows(),
        }
    }

    /// The files of epochs up to `epoch` are committed.
    fn committed(&mut self, epoch: u64) {
        if let Files::Upsert(f) = &mut self.files {
            f.committed(epoch);
        }
    }
}

impl Sink for Writer {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        let values: Vec<&[u8]> = (0..batch.len()).map(|i| batch.value(i)).collect();
        let arrow = self.encoder.encode(&values).map_err(|m| {
            SinkError::in_row(m.row, IcebergError::data(self.table(), format!("{} (the record is {})", m.message, shown(values[m.row]))))
        })?;
        let table = self.inner.config.table.clone();
        let rt = &self.opened.lake.rt;
        match &mut self.files {
            Files::Append(f) => rt.block_on(f.write(arrow)).map_err(|e| sink_err(IcebergError::iceberg(&table, e))),
            Files::Upsert(f) => {
                let mut deleted = upsert::deleted(&values, self.inner.config.deleted_field.as_deref());
                // A changelog's -U and -D remove their key's row (a +U after
                // a -U writes it again).
                for (i, d) in deleted.iter_mut().enumerate() {
                    *d |= batch.kind(i).retracts();
                }
                rt.block_on(f.write(arrow, &deleted)).map_err(|e| match e {
                    Failure::Row(b) => SinkError::in_row(
                        b.row,
                        IcebergError::data(&table, format!("{} (the record is {})", b.message, shown(values[b.row]))),
                    ),
                    Failure::Table(e) => sink_err(IcebergError::iceberg(&table, e)),
                })
            }
        }
    }

    /// Without checkpoints: commit what this task wrote (at least once).
    fn flush(&mut self) -> Result<(), SinkError> {
        if self.inner.checkpointing || self.rows() == 0 {
            return Ok(());
        }
        let files = self.close_files(0)?;
        self.inner.commit(&self.opened, 0, files)?;
        self.committed(u64::MAX);
        Ok(())
    }

    fn pre_commit(&mut self, epoch: u64) -> Result<(), SinkError> {
        if !self.inner.checkpointing {
            return self.flush();
        }
        let files = self.close_files(epoch)?;
        self.pending.insert(epoch, files);
        Ok(())
    }

    fn snapshot(&mut self, epoch: u64, dir: &std::path::Path) -> Result<Option<SnapshotWriter>, SinkError> {
        if !self.inner.checkpointing {
            return Ok(None);
        }
        let o = &self.opened;
        let mut pending = Vec::with_capacity(self.pending.len());
        for (epoch, files) in &self.pending {
            let mut v = Vec::with_capacity(files.len());
            for f in files {
                v.push(
                    serialize_data_file_to_json(f.clone(), &o.partition_type, o.format)
                        .map_err(|e| sink_err(IcebergError::iceberg(self.table(), e)))?,
                );
            }
            pending.push((*epoch, v));
        }
        let state = TaskState { run: o.stamp.run.clone(), pending };
        let path = dir.join(STATE_FILE);
        // Fault injection for tests: `WEIR_FAULT=iceberg-fail-every-snapshot:N`
        // fails every N-th snapshot of the process's Iceberg sink tasks but
        // the final one, and with it that checkpoint (its epoch's files go
        // with the next one).
        let n = SNAPSHOTS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let fail = epoch != weir_engine::FINAL_EPOCH
            && commit::fault("iceberg-fail-every-snapshot").is_some_and(|every| every > 0 && n % every == 0);
        Ok(Some(Box::new(move || {
            if fail {
                return Err(StateError::Storage("fault injection: failing this Iceberg sink snapshot".into()));
            }
            let text = serde_json::to_vec(&state).map_err(|e| StateError::Storage(format!("cannot encode the Iceberg sink's state: {e}")))?;
            std::fs::write(&path, text).map_err(|e| StateError::Storage(format!("cannot write {}: {e}", path.display())))?;
            Ok(vec![SnapshotFile { path, name: STATE_FILE.into(), shared: false }])
        })))
    }

    /// Checkpoint `epoch` is complete: hand this task's files of the epochs
    /// up to it to the committer; the last task to do so commits them all as
    /// the checkpoint's snapshot.
    fn commit(&mut self, epoch: u64) -> Result<(), SinkError> {
        // Keyed by the completed checkpoint, which every task is told of (a
        // task may have staged an epoch whose checkpoint never completed;
        // its files go with the next one that does). The files stay in this
        // task's pending (and so in its next snapshots) until the commit has
        // landed: a crash before the last task hands in must not lose them.
        let lo = self.reported.map_or(0, |r| r.saturating_add(1));
        let files: Vec<DataFile> = self.pending.range(lo..=epoch).flat_map(|(_, f)| f.iter().cloned()).collect();
        self.reported = Some(epoch);
        let mut g = self.inner.gather.lock().unwrap();
        let entry = g.open.entry(epoch).or_default();
        entry.0.extend(files);
        entry.1 += 1;
        if entry.1 >= self.parallelism {
            let (files, _) = g.open.remove(&epoch).unwrap();
            self.inner.commit(&self.opened, epoch, files)?;
            g.committed = Some(epoch);
        }
        let committed = g.committed;
        drop(g);
        if let Some(c) = committed {
            self.pending = self.pending.split_off(&c.saturating_add(1));
            if c == u64::MAX {
                self.pending.clear();
            }
            self.committed(c);
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.flush()
    }
}

fn shown(v: &[u8]) -> String {
    let s = String::from_utf8_lossy(v);
    if s.chars().count() > 120 { format!("{}…", s.chars().take(120).collect::<String>()) } else { s.into_owned() }
}
