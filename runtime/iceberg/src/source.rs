//! `type: iceberg` sources: a bounded scan of one snapshot of a table (the
//! current one, one by id, or the one current at a time), its data files
//! (sorted by path) split across the tasks round-robin, each file read as
//! Arrow batches and emitted as one JSON object per row. A task's position
//! is (snapshot, file, row): a restore reads the same snapshot from where the
//! checkpoint left off, whatever was committed to the table since.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use futures::stream::BoxStream;
use iceberg::scan::FileScanTask;
use iceberg::table::Table;
use serde::{Deserialize, Serialize};
use weir_engine::{Origin, RecordBatch, Source, SourceError, SourceFactory, SourcePoll, TaskContext};
use weir_spec::{BuildContext, BuildError, Changelog, Check, RecordShape, SourceConnector, SpecError};

use crate::IcebergError;
use crate::catalog::Lake;
use crate::config::{IcebergSourceConfig, parse_time_ms};

/// Offsets are `file << ROW_BITS | row`.
const ROW_BITS: u32 = 40;

/// The `iceberg` source type.
pub struct IcebergSources;

impl SourceConnector for IcebergSources {
    type Config = IcebergSourceConfig;
    const TYPE: &'static str = "iceberg";

    fn check(&self, c: &IcebergSourceConfig, cx: &Check<'_>) -> Result<(), SpecError> {
        c.check(cx)
    }

    fn build(&self, c: IcebergSourceConfig, _: &BuildContext<'_>) -> Result<Arc<dyn SourceFactory>, BuildError> {
        Ok(Arc::new(IcebergSource { config: c, shared: Mutex::new(None) }))
    }

    fn records(&self, _: &IcebergSourceConfig) -> RecordShape {
        RecordShape { keyed: Some(false), json: Some(true), described: "rows of an Iceberg table, as JSON objects", changelog: Changelog::Append }
    }
}

struct IcebergSource {
    config: IcebergSourceConfig,
    shared: Mutex<Option<Arc<Shared>>>,
}

/// The open table and the plans of the snapshots read.
struct Shared {
    lake: Lake,
    table: Table,
    plans: Mutex<Vec<(i64, Arc<Vec<FileScanTask>>)>>,
    /// The snapshot chosen at the start (None: the table is empty).
    chosen: Option<i64>,
}

fn src_err(e: IcebergError) -> SourceError {
    SourceError(Box::new(e))
}

impl Shared {
    fn plan(&self, snapshot: i64) -> Result<Arc<Vec<FileScanTask>>, SourceError> {
        let mut plans = self.plans.lock().unwrap();
        if let Some((_, p)) = plans.iter().find(|(s, _)| *s == snapshot) {
            return Ok(p.clone());
        }
        let t = &self.lake.table;
        let ice = |e| src_err(IcebergError::iceberg(t, e));
        let scan = self.table.scan().snapshot_id(snapshot).select_all().build().map_err(ice)?;
        let mut tasks: Vec<FileScanTask> = self.lake.rt.block_on(async {
            let mut s = scan.plan_files().await?;
            let mut v = Vec::new();
            while let Some(t) = s.next().await {
                v.push(t?);
            }
            Ok::<_, iceberg::Error>(v)
        })
        .map_err(ice)?;
        tasks.sort_by(|a, b| a.data_file_path.cmp(&b.data_file_path));
        let p = Arc::new(tasks);
        plans.push((snapshot, p.clone()));
        Ok(p)
    }
}

impl IcebergSource {
    fn shared(&self) -> Result<Arc<Shared>, SourceError> {
        let mut s = self.shared.lock().unwrap();
        if let Some(s) = &*s {
            return Ok(s.clone());
        }
        let c = &self.config;
        let lake = Lake::open(&c.catalog, &c.table).map_err(src_err)?;
        let table = lake.load().map_err(src_err)?;
        let m = table.metadata();
        let chosen = match (c.snapshot_id, &c.as_of) {
            (Some(id), _) => {
                m.snapshot_by_id(id).ok_or_else(|| SourceError::msg(format!("table {} has no snapshot {id}", c.table)))?;
                Some(id)
            }
            (None, Some(t)) => {
                let at = parse_time_ms(t).map_err(SourceError::msg)?;
                let s = m.snapshots().filter(|s| s.timestamp_ms() <= at).max_by_key(|s| (s.timestamp_ms(), s.sequence_number()));
                Some(s.ok_or_else(|| SourceError::msg(format!("table {} has no snapshot as old as {t}", c.table)))?.snapshot_id())
            }
            (None, None) => m.current_snapshot_id(),
        };
        let shared = Arc::new(Shared { lake, table, plans: Mutex::new(Vec::new()), chosen });
        *s = Some(shared.clone());
        Ok(shared)
    }
}

impl SourceFactory for IcebergSource {
    fn create(&self, ctx: &TaskContext) -> Result<Box<dyn Source>, SourceError> {
        let shared = self.shared()?;
        Ok(Box::new(Scan {
            snapshot: shared.chosen,
            shared,
            task: ctx.task_index as usize,
            parallelism: ctx.parallelism.max(1) as usize,
            batch_size: self.config.batch_size.unwrap_or(4096),
            plan: None,
            file: 0,
            row: 0,
            skip: 0,
            reading: None,
            rows: VecDeque::new(),
        }))
    }

    fn describe_offset(&self, offset: u64) -> String {
        let (file, row) = (offset >> ROW_BITS, offset & ((1 << ROW_BITS) - 1));
        let path = self
            .shared
            .lock()
            .unwrap()
            .as_ref()
            .and_then(|s| s.plans.lock().unwrap().first().and_then(|(_, p)| p.get(file as usize).map(|t| t.data_file_path.clone())));
        match path {
            Some(p) => format!("row {row} of {p} (table {})", self.config.table),
            None => format!("row {row} of data file {file} of table {}", self.config.table),
        }
    }
}

/// Where a task is: the snapshot, the next file of the plan (an index into
/// the whole plan), and the rows of it already emitted.
#[derive(Serialize, Deserialize)]
struct Position {
    snapshot: Option<i64>,
    file: usize,
    row: u64,
}

struct Scan {
    shared: Arc<Shared>,
    snapshot: Option<i64>,
    task: usize,
    parallelism: usize,
    batch_size: usize,
    plan: Option<Arc<Vec<FileScanTask>>>,
    /// The file being read (an index into the plan) and rows emitted from it.
    file: usize,
    row: u64,
    /// Rows of the current file to skip (a restore's position).
    skip: u64,
    reading: Option<BoxStream<'static, iceberg::Result<arrow_array::RecordBatch>>>,
    rows: VecDeque<Vec<u8>>,
}

impl Scan {
    /// The first file at or after `file` that this task reads.
    fn own(&self, file: usize) -> usize {
        let r = file % self.parallelism;
        if r <= self.task { file - r + self.task } else { file - r + self.parallelism + self.task }
    }

    fn table(&self) -> &str {
        &self.shared.lake.table
    }

    /// Fill `rows` from the next batch of the current file (or the next
    /// file); false at the end of this task's files.
    fn fill(&mut self) -> Result<bool, SourceError> {
        let Some(snapshot) = self.snapshot else { return Ok(false) };
        if self.plan.is_none() {
            self.plan = Some(self.shared.plan(snapshot)?);
            self.file = self.own(self.file);
        }
        let plan = self.plan.clone().unwrap();
        loop {
            if self.file >= plan.len() {
                return Ok(false);
            }
            if self.reading.is_none() {
                let task = plan[self.file].clone();
                let reader = self.shared.table.reader_builder().with_batch_size(self.batch_size).build();
                let stream = reader
                    .read(Box::pin(futures::stream::iter([Ok(task)])))
                    .map_err(|e| src_err(IcebergError::iceberg(self.table(), e)))?
                    .stream();
                self.reading = Some(stream);
            }
            let next = self.shared.lake.rt.block_on(self.reading.as_mut().unwrap().next());
            match next {
                None => {
                    self.reading = None;
                    self.file = self.own(self.file + 1);
                    self.row = 0;
                    self.skip = 0;
                }
                Some(Err(e)) => {
                    return Err(SourceError::msg(format!("cannot read {} of table {}: {e}", plan[self.file].data_file_path, self.table())));
                }
                Some(Ok(batch)) => {
                    let mut buf = Vec::new();
                    {
                        let mut w = arrow_json::LineDelimitedWriter::new(&mut buf);
                        w.write(&batch).and_then(|_| w.finish()).map_err(|e| SourceError::msg(format!("cannot encode rows of table {}: {e}", self.table())))?;
                    }
                    for line in buf.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                        if self.skip > 0 {
                            self.skip -= 1;
                            continue;
                        }
                        self.rows.push_back(line.to_vec());
                    }
                    if !self.rows.is_empty() {
                        return Ok(true);
                    }
                }
            }
        }
    }
}

impl Source for Scan {
    fn poll(&mut self, out: &mut RecordBatch, max_records: usize) -> Result<SourcePoll, SourceError> {
        if self.rows.is_empty() && !self.fill()? {
            return Ok(SourcePoll::Exhausted);
        }
        let mut n = 0;
        while n < max_records
            && let Some(v) = self.rows.pop_front()
        {
            let offset = (self.file as u64) << ROW_BITS | self.row;
            out.push(&[], &v, weir_engine::NO_TIMESTAMP, Origin::at(offset));
            self.row += 1;
            n += 1;
        }
        Ok(SourcePoll::Ready)
    }

    fn position(&self) -> Option<Vec<u8>> {
        // Rows fetched but not emitted are read again after a restore.
        let p = Position { snapshot: self.snapshot, file: self.file, row: self.row };
        serde_json::to_vec(&p).ok()
    }

    fn seek(&mut self, position: &[u8]) -> Result<(), SourceError> {
        let p: Position = serde_json::from_slice(position)
            .map_err(|e| SourceError::msg(format!("unreadable position of the Iceberg source of table {}: {e}", self.table())))?;
        if let Some(s) = p.snapshot
            && self.shared.table.metadata().snapshot_by_id(s).is_none()
        {
            return Err(SourceError::msg(format!(
                "the checkpoint reads snapshot {s} of table {}, which the table no longer has (expired?)",
                self.table()
            )));
        }
        self.snapshot = p.snapshot;
        self.plan = None;
        self.reading = None;
        self.rows.clear();
        self.file = p.file;
        self.row = p.row;
        self.skip = p.row;
        Ok(())
    }
}
