//! A task's open data files: Arrow batches written as Parquet (zstd) data
//! files of the table, rolled at the target size, one set of files per
//! partition when the table is partitioned. Closing hands back the files'
//! `DataFile` entries, which the commit of the checkpoint adds to the table.

use arrow_array::RecordBatch;
use iceberg::arrow::RecordBatchPartitionSplitter;
use iceberg::spec::{DataFile, DataFileFormat};
use iceberg::table::Table;
use iceberg::writer::base_writer::data_file_writer::DataFileWriterBuilder;
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::file_writer::location_generator::{DefaultFileNameGenerator, DefaultLocationGenerator};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::partitioning::PartitioningWriter;
use iceberg::writer::partitioning::fanout_writer::FanoutWriter;
use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};
use iceberg::Result;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

type Files = DataFileWriterBuilder<ParquetWriterBuilder, DefaultLocationGenerator, DefaultFileNameGenerator>;

enum Open {
    Whole(<Files as IcebergWriterBuilder>::R),
    Split(FanoutWriter<Files>),
}

/// The files a task is writing.
pub struct TaskFiles {
    table: Table,
    /// The start of the files' names: the task's index, or what wrote them.
    prefix: String,
    target_size: usize,
    splitter: Option<RecordBatchPartitionSplitter>,
    open: Option<Open>,
    rows: u64,
}

impl TaskFiles {
    pub fn new(table: Table, task: u32, target_size: usize) -> Result<Self> {
        Self::named(table, format!("{task:05}"), target_size)
    }

    /// Files whose names start with `prefix`.
    pub fn named(table: Table, prefix: String, target_size: usize) -> Result<Self> {
        let m = table.metadata();
        let spec = m.default_partition_spec().clone();
        let splitter = if spec.is_unpartitioned() {
            None
        } else {
            Some(RecordBatchPartitionSplitter::try_new_with_computed_values(m.current_schema().clone(), spec)?)
        };
        Ok(TaskFiles { table, prefix, target_size, splitter, open: None, rows: 0 })
    }

    /// Writers for new files, named uniquely (a restarted task never
    /// overwrites a file of an earlier attempt).
    fn builder(&self) -> Result<Files> {
        let m = self.table.metadata();
        let props = WriterProperties::builder().set_compression(Compression::ZSTD(ZstdLevel::default())).build();
        let parquet = ParquetWriterBuilder::new(props, m.current_schema().clone());
        let names = DefaultFileNameGenerator::new(format!("{}-{}", self.prefix, uuid::Uuid::new_v4()), None, DataFileFormat::Parquet);
        let rolling = RollingFileWriterBuilder::new(parquet, self.target_size, self.table.file_io().clone(), DefaultLocationGenerator::new(m)?, names);
        Ok(DataFileWriterBuilder::new(rolling))
    }

    pub async fn write(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.rows += batch.num_rows() as u64;
        if self.open.is_none() {
            let b = self.builder()?;
            self.open = Some(match self.splitter {
                None => Open::Whole(b.build(None).await?),
                Some(_) => Open::Split(FanoutWriter::new(b)),
            });
        }
        match self.open.as_mut().unwrap() {
            Open::Whole(w) => w.write(batch).await,
            Open::Split(w) => {
                for (key, part) in self.splitter.as_ref().unwrap().split(&batch)? {
                    w.write(key, part).await?;
                }
                Ok(())
            }
        }
    }

    /// Rows written since the last close.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Close the open files and return them.
    pub async fn close(&mut self) -> Result<Vec<DataFile>> {
        self.rows = 0;
        match self.open.take() {
            None => Ok(Vec::new()),
            Some(Open::Whole(mut w)) => w.close().await,
            Some(Open::Split(w)) => w.close().await,
        }
    }
}
