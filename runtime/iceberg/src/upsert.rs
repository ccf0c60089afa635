//! A task's open files of an upsert sink (`mode: upsert`): data files of the
//! rows written, equality-delete files of the keys whose earlier rows a
//! commit must hide, and position-delete files of rows this task wrote and
//! replaced before they were committed (Iceberg's row-level delta, as Flink's
//! equality-delta writer does it).
//!
//! A record replaces the row of its key; a delete record (the
//! `deleted_field` true) removes it. For each key the task remembers where it
//! last wrote the key's row, while that row may still share a snapshot with
//! later writes:
//!
//! * a key not remembered gets an equality delete, which hides every row of
//!   the key in earlier snapshots (an equality delete applies to data of
//!   lower sequence numbers only, so it never hides the row written beside
//!   it);
//! * a key remembered gets a position delete of the row it remembers
//!   (position deletes apply to data of the same sequence number too).
//!
//! Files of several epochs can land in one snapshot (a checkpoint that did
//! not complete hands its files to the next), so a key is forgotten only once
//! the epoch that last touched it is committed: then every later write of it
//! lands in a later snapshot, where an equality delete reaches its row.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{Array, Int64Array, RecordBatch, StringArray};
use arrow_row::{RowConverter, SortField};
use arrow_schema::{Field, Schema as ArrowSchema, SchemaRef};
use iceberg::arrow::{PartitionValueCalculator, arrow_schema_to_schema, arrow_struct_to_literal};
use iceberg::spec::{
    DataContentType, DataFile, DataFileFormat, Literal, NestedField, PartitionKey, PartitionSpec, PrimitiveType, Schema, Struct,
    StructType, Type,
};
use iceberg::table::Table;
use iceberg::writer::base_writer::data_file_writer::{DataFileWriter, DataFileWriterBuilder};
use iceberg::writer::base_writer::equality_delete_writer::{
    EqualityDeleteFileWriter, EqualityDeleteFileWriterBuilder, EqualityDeleteWriterConfig,
};
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::file_writer::location_generator::{DefaultFileNameGenerator, DefaultLocationGenerator};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::{CurrentFileStatus, IcebergWriter, IcebergWriterBuilder};
use iceberg::{Error, ErrorKind, Result};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

type Hasher = foldhash::fast::RandomState;
type Data = DataFileWriter<ParquetWriterBuilder, DefaultLocationGenerator, DefaultFileNameGenerator>;
type EqDeletes = EqualityDeleteFileWriter<ParquetWriterBuilder, DefaultLocationGenerator, DefaultFileNameGenerator>;

/// Field ids Iceberg reserves for a position-delete file's columns.
const FILE_PATH_ID: i32 = 2147483546;
const POS_ID: i32 = 2147483545;

/// Where a key's row was last written, and when.
struct Seen {
    /// The generation (a close of the files) that holds the write.
    generation: u64,
    /// (data file, row) of the row; `None`: the key was deleted.
    at: Option<(u32, u64)>,
}

/// One partition's open files.
struct Part {
    key: Option<PartitionKey>,
    data: Data,
    deletes: EqDeletes,
    /// (data file, row) of rows replaced before their commit.
    positions: Vec<(u32, u64)>,
}

/// Why row `row` of a batch cannot be written.
#[derive(Debug)]
pub struct BadRow {
    pub row: usize,
    pub message: String,
}

pub struct UpsertFiles {
    table: Table,
    task: u32,
    target_size: usize,
    schema: Arc<Schema>,
    spec: PartitionSpec,
    /// The table's Arrow schema, which data files are written in.
    arrow: SchemaRef,
    /// Its required columns (index, name) that are not key columns.
    required: Vec<(usize, String)>,
    key_ids: Vec<i32>,
    /// The key columns' indexes in the batch.
    key_cols: Vec<usize>,
    converter: RowConverter,
    calculator: Option<(PartitionValueCalculator, StructType)>,
    parts: HashMap<Option<Struct>, Part>,
    seen: HashMap<Box<[u8]>, Seen, Hasher>,
    files: Vec<String>,
    file_ix: HashMap<String, u32>,
    generation: u64,
    /// (generation, epoch) of the closes whose files are not yet known to be committed.
    closed: Vec<(u64, u64)>,
    rows: u64,
}

impl UpsertFiles {
    /// `relaxed`: the Arrow schema batches come in (the table's, with every
    /// column but the key's nullable, so that a delete may carry its key only).
    pub fn new(table: Table, task: u32, target_size: usize, key_ids: Vec<i32>, relaxed: &ArrowSchema) -> Result<Self> {
        let m = table.metadata();
        let schema = m.current_schema().clone();
        let spec = m.default_partition_spec().as_ref().clone();
        let arrow = Arc::new(iceberg::arrow::schema_to_arrow_schema(&schema)?);
        let mut key_cols = Vec::new();
        for id in &key_ids {
            let name = schema.name_by_field_id(*id).unwrap_or_default();
            let i = relaxed.index_of(name).map_err(|e| Error::new(ErrorKind::DataInvalid, e.to_string()))?;
            key_cols.push(i);
        }
        let required = schema
            .as_struct()
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| f.required && !key_ids.contains(&f.id))
            .map(|(i, f)| (i, f.name.clone()))
            .collect();
        let converter = RowConverter::new(key_cols.iter().map(|i| SortField::new(relaxed.field(*i).data_type().clone())).collect())
            .map_err(|e| Error::new(ErrorKind::DataInvalid, e.to_string()))?;
        let calculator = if spec.is_unpartitioned() {
            None
        } else {
            let c = PartitionValueCalculator::try_new(&spec, &schema)?;
            let t = spec.partition_type(&schema)?;
            Some((c, t))
        };
        Ok(UpsertFiles {
            table,
            task,
            target_size,
            schema,
            spec,
            arrow,
            required,
            key_ids,
            key_cols,
            converter,
            calculator,
            parts: HashMap::new(),
            seen: HashMap::default(),
            files: Vec::new(),
            file_ix: HashMap::new(),
            generation: 0,
            closed: Vec::new(),
            rows: 0,
        })
    }

    /// Delete files hold keys and positions, each once, and data files a
    /// key once each: no dictionaries for those.
    fn props(&self, data: bool) -> WriterProperties {
        let b = WriterProperties::builder().set_compression(Compression::ZSTD(ZstdLevel::default()));
        if !data {
            return b.set_dictionary_enabled(false).build();
        }
        self.key_ids
            .iter()
            .filter_map(|id| self.schema.name_by_field_id(*id))
            .fold(b, |b, name| b.set_column_dictionary_enabled(ColumnPath::from(name), false))
            .build()
    }

    fn rolling(&self, schema: Arc<Schema>, kind: &str) -> Result<RollingFileWriterBuilder<ParquetWriterBuilder, DefaultLocationGenerator, DefaultFileNameGenerator>> {
        let m = self.table.metadata();
        let names =
            DefaultFileNameGenerator::new(format!("{:05}-{kind}-{}", self.task, uuid::Uuid::new_v4()), None, DataFileFormat::Parquet);
        Ok(RollingFileWriterBuilder::new(
            ParquetWriterBuilder::new(self.props(kind == "data"), schema),
            self.target_size,
            self.table.file_io().clone(),
            DefaultLocationGenerator::new(m)?,
            names,
        ))
    }

    async fn part(&self, value: Option<Struct>) -> Result<Part> {
        let key = value.map(|v| PartitionKey::new(self.spec.clone(), self.schema.clone(), v));
        let data = DataFileWriterBuilder::new(self.rolling(self.schema.clone(), "data")?).build(key.clone()).await?;
        let config = EqualityDeleteWriterConfig::new(self.key_ids.clone(), self.schema.clone())?;
        let key_schema = Arc::new(arrow_schema_to_schema(config.projected_arrow_schema_ref())?);
        let deletes = EqualityDeleteFileWriterBuilder::new(self.rolling(key_schema, "eq-deletes")?, config).build(key.clone()).await?;
        Ok(Part { key, data, deletes, positions: Vec::new() })
    }

    /// Rows written since the last close.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Check every row before writing any: key columns set, and the required
    /// columns of each upsert set.
    fn check(&self, batch: &RecordBatch, deleted: &[bool]) -> std::result::Result<(), BadRow> {
        for (k, i) in self.key_cols.iter().enumerate() {
            let c = batch.column(*i);
            if c.null_count() > 0 {
                let row = (0..c.len()).find(|r| c.is_null(*r)).unwrap_or_default();
                let name = self.schema.name_by_field_id(self.key_ids[k]).unwrap_or_default();
                return Err(BadRow { row, message: format!("the record has no value for key column '{name}'") });
            }
        }
        for (i, name) in &self.required {
            let c = batch.column(*i);
            if c.null_count() > 0
                && let Some(row) = (0..c.len()).find(|r| c.is_null(*r) && !deleted[*r])
            {
                return Err(BadRow { row, message: format!("the record has no value for required column '{name}'") });
            }
        }
        Ok(())
    }

    /// Write `batch` (in the relaxed schema); `deleted[i]`: row `i` deletes its key.
    pub async fn write(&mut self, batch: RecordBatch, deleted: &[bool]) -> std::result::Result<(), Failure> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.check(&batch, deleted).map_err(Failure::Row)?;
        self.rows += batch.num_rows() as u64;
        let cols: Vec<_> = self.key_cols.iter().map(|i| batch.column(*i).clone()).collect();
        let keys = self.converter.convert_columns(&cols).map_err(|e| Failure::Table(Error::new(ErrorKind::DataInvalid, e.to_string())))?;
        // The last change of each key in the batch is the one that counts.
        let mut last: HashMap<&[u8], usize, Hasher> = HashMap::with_capacity_and_hasher(batch.num_rows(), Hasher::default());
        for r in 0..batch.num_rows() {
            last.insert(keys.row(r).data(), r);
        }
        let mut rows: Vec<usize> = last.into_values().collect();
        rows.sort_unstable();
        // Group by partition, in row order.
        let mut groups: Vec<(Option<Struct>, Vec<usize>)> = Vec::new();
        match &self.calculator {
            None => groups.push((None, rows)),
            Some((calc, ty)) => {
                let values = arrow_struct_to_literal(&calc.calculate(&batch)?, ty)?;
                let mut at: HashMap<Struct, usize> = HashMap::new();
                for r in rows {
                    let Some(Literal::Struct(s)) = &values[r] else {
                        return Err(Failure::Table(Error::new(ErrorKind::DataInvalid, "a row has no partition value")));
                    };
                    let g = *at.entry(s.clone()).or_insert_with(|| {
                        groups.push((Some(s.clone()), Vec::new()));
                        groups.len() - 1
                    });
                    groups[g].1.push(r);
                }
            }
        }
        for (value, rows) in groups {
            if !self.parts.contains_key(&value) {
                let p = self.part(value.clone()).await?;
                self.parts.insert(value.clone(), p);
            }
            let part = self.parts.get_mut(&value).unwrap();
            let mut eq = Vec::new();
            let mut data = Vec::new();
            for &r in &rows {
                let k = keys.row(r).data();
                match self.seen.get(k) {
                    None => eq.push(r as u32),
                    Some(Seen { at: Some(loc), .. }) => part.positions.push(*loc),
                    Some(Seen { at: None, .. }) => {}
                }
                if deleted[r] {
                    self.seen.insert(k.into(), Seen { generation: self.generation, at: None });
                } else {
                    data.push(r as u32);
                }
            }
            if !eq.is_empty() {
                part.deletes.write(take(&batch, &eq)?).await?;
            }
            if !data.is_empty() {
                let taken = take(&batch, &data)?;
                let rows = RecordBatch::try_new(self.arrow.clone(), taken.columns().to_vec())
                    .map_err(|e| Error::new(ErrorKind::DataInvalid, e.to_string()))?;
                part.data.write(rows).await?;
                let path = part.data.current_file_path();
                let start = (part.data.current_row_num() - data.len()) as u64;
                let next = self.files.len() as u32;
                let file = *self.file_ix.entry(path.clone()).or_insert(next);
                if file == next {
                    self.files.push(path);
                }
                for (j, &r) in data.iter().enumerate() {
                    let k = keys.row(r as usize).data();
                    self.seen.insert(k.into(), Seen { generation: self.generation, at: Some((file, start + j as u64)) });
                }
            }
        }
        Ok(())
    }

    /// Close the open files as epoch `epoch`'s and return them: data files,
    /// then equality deletes and position deletes.
    pub async fn close(&mut self, epoch: u64) -> Result<Vec<DataFile>> {
        self.rows = 0;
        let parts = std::mem::take(&mut self.parts);
        let mut out = Vec::new();
        for (_, mut p) in parts {
            out.extend(p.data.close().await?);
            out.extend(p.deletes.close().await?);
            if !p.positions.is_empty() {
                out.extend(self.write_positions(p.key.as_ref(), p.positions).await?);
            }
        }
        self.closed.push((self.generation, epoch));
        self.generation += 1;
        Ok(out)
    }

    /// A position-delete file of `positions`, sorted by file and row as the
    /// spec asks.
    async fn write_positions(&self, key: Option<&PartitionKey>, mut positions: Vec<(u32, u64)>) -> Result<Vec<DataFile>> {
        positions.sort_unstable_by(|a, b| self.files[a.0 as usize].cmp(&self.files[b.0 as usize]).then(a.1.cmp(&b.1)));
        positions.dedup();
        let schema = Arc::new(
            Schema::builder()
                .with_fields(vec![
                    NestedField::required(FILE_PATH_ID, "file_path", Type::Primitive(PrimitiveType::String)).into(),
                    NestedField::required(POS_ID, "pos", Type::Primitive(PrimitiveType::Long)).into(),
                ])
                .build()?,
        );
        let arrow = Arc::new(iceberg::arrow::schema_to_arrow_schema(&schema)?);
        let paths = StringArray::from_iter_values(positions.iter().map(|(f, _)| self.files[*f as usize].as_str()));
        let pos = Int64Array::from_iter_values(positions.iter().map(|(_, p)| *p as i64));
        let batch = RecordBatch::try_new(arrow, vec![Arc::new(paths), Arc::new(pos)])
            .map_err(|e| Error::new(ErrorKind::DataInvalid, e.to_string()))?;
        let mut w = self.rolling(schema, "pos-deletes")?.build();
        let key = key.cloned();
        w.write(&key, &batch).await?;
        w.close()
            .await?
            .into_iter()
            .map(|mut b| {
                b.content(DataContentType::PositionDeletes);
                if let Some(k) = &key {
                    b.partition(k.data().clone());
                    b.partition_spec_id(k.spec().spec_id());
                }
                b.build().map_err(|e| Error::new(ErrorKind::DataInvalid, format!("a position-delete file: {e}")))
            })
            .collect()
    }

    /// The files of the epochs up to `epoch` are committed: forget the keys
    /// those epochs were the last to touch (a later write of such a key lands
    /// in a later snapshot, where its equality delete reaches the row).
    pub fn committed(&mut self, epoch: u64) {
        let Some(cut) = self.closed.iter().filter(|(_, e)| *e <= epoch).map(|(g, _)| *g).max() else { return };
        self.closed.retain(|(g, _)| *g > cut);
        self.seen.retain(|_, s| s.generation > cut);
        if self.seen.is_empty() {
            self.files.clear();
            self.file_ix.clear();
        }
    }
}

/// What went wrong writing a batch.
pub enum Failure {
    Row(BadRow),
    Table(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Table(e)
    }
}

fn take(batch: &RecordBatch, rows: &[u32]) -> Result<RecordBatch> {
    let ix = arrow_array::UInt32Array::from(rows.to_vec());
    arrow_select::take::take_record_batch(batch, &ix).map_err(|e| Error::new(ErrorKind::DataInvalid, e.to_string()))
}

/// Whether each record's top-level `field` is `true` or `"true"` (other
/// values, and records without the field, are upserts).
pub fn deleted(values: &[&[u8]], field: Option<&str>) -> Vec<bool> {
    let Some(field) = field else { return vec![false; values.len()] };
    values.iter().map(|v| flag(v, field)).collect()
}

fn flag(v: &[u8], field: &str) -> bool {
    use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
    struct Find<'f>(&'f str);
    impl<'de> Visitor<'de> for Find<'_> {
        type Value = bool;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> std::result::Result<bool, A::Error> {
            let mut found = false;
            while let Some(k) = m.next_key::<std::borrow::Cow<'de, str>>()? {
                if k == self.0 {
                    found = match m.next_value::<serde_json::Value>()? {
                        serde_json::Value::Bool(b) => b,
                        serde_json::Value::String(s) => s == "true",
                        _ => false,
                    };
                } else {
                    m.next_value::<IgnoredAny>()?;
                }
            }
            Ok(found)
        }
    }
    let mut d = serde_json::Deserializer::from_slice(v);
    (&mut d).deserialize_map(Find(field)).unwrap_or(false)
}

/// The relaxed schema of `arrow`: every column but `key`'s nullable.
pub fn relaxed(arrow: &ArrowSchema, key: &[String]) -> ArrowSchema {
    let fields: Vec<Field> = arrow
        .fields()
        .iter()
        .map(|f| if key.iter().any(|k| k == f.name()) { f.as_ref().clone() } else { f.as_ref().clone().with_nullable(true) })
        .collect();
    ArrowSchema::new_with_metadata(fields, arrow.metadata().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deletes_are_flagged_by_their_field() {
        let v: Vec<&[u8]> = vec![
            br#"{"id": 1, "__deleted": "true"}"#,
            br#"{"id": 2, "__deleted": "false"}"#,
            br#"{"__deleted": true, "id": 3}"#,
            br#"{"id": 4, "nested": {"__deleted": true}}"#,
            br#"{"id": 5}"#,
            br#"{"id": 6, "__deleted": 1}"#,
        ];
        assert_eq!(deleted(&v, Some("__deleted")), vec![true, false, true, false, false, false]);
        assert_eq!(deleted(&v, None), vec![false; 6]);
    }
}
