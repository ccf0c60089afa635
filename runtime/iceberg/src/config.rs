//! The spec fields of `type: iceberg` sinks and sources, their checks, and
//! what they build into: the catalog to open, the table's identifier, and for
//! a table the sink creates, its Iceberg schema and partition spec.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use iceberg::spec::{NestedField, PrimitiveType, Schema, Transform, Type, UnboundPartitionSpec};
use serde::{Deserialize, Serialize};
use weir_spec::units::Bytes;
use weir_spec::{Check, SpecError};

/// `catalog:` of an Iceberg sink or source.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum CatalogConfig {
    /// A SQL catalog in a sqlite file (PyIceberg's `SqlCatalog` layout), with
    /// a warehouse directory on local disk: the embedded default.
    Sql {
        /// `sqlite:///abs/path/catalog.db` or `sqlite:relative/path.db`.
        uri: String,
        /// The directory new tables are created under.
        warehouse: PathBuf,
        /// The catalog's name in the database (default `weir`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// An Iceberg REST catalog (Iceberg's REST catalog protocol: Polaris,
    /// Nessie, Lakekeeper, Gravitino, Iceberg's own server), whose tables'
    /// files lie on local disk under `warehouse_dir` (Weir's file IO is local
    /// disk: every file a table names must be under it).
    Rest {
        /// `http://host:port` or `https://…`, the catalog's base URI (the
        /// protocol's paths, `/v1/…`, are added).
        uri: String,
        /// The warehouse the catalog serves, as the server names it (sent as
        /// its `warehouse` parameter), if it serves several.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        warehouse: Option<String>,
        /// The local directory the catalog's tables lie under.
        warehouse_dir: PathBuf,
        /// The environment variable holding a bearer token for the catalog
        /// (the token itself never goes into a spec).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token_env: Option<String>,
    },
}

impl CatalogConfig {
    /// The sqlite file of a SQL catalog's `uri`.
    pub fn sqlite_file(uri: &str) -> Option<PathBuf> {
        let rest = uri.strip_prefix("sqlite:")?;
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let rest = rest.split('?').next().unwrap_or(rest);
        (!rest.is_empty() && rest != ":memory:").then(|| PathBuf::from(rest))
    }

    pub fn check(&self, cx: &Check<'_>) -> Result<(), SpecError> {
        match self {
            CatalogConfig::Sql { uri, warehouse, name } => {
                let Some(file) = Self::sqlite_file(uri) else {
                    return Err(cx.error(
                        "catalog.uri",
                        format!("'{uri}' is not a sqlite database file; write sqlite:///absolute/path/catalog.db"),
                    ));
                };
                cx.path("catalog.uri", &file)?;
                if warehouse.as_os_str().is_empty() {
                    return Err(cx.error("catalog.warehouse", "the directory tables are created under"));
                }
                cx.path("catalog.warehouse", warehouse)?;
                if name.as_deref().is_some_and(|n| n.trim().is_empty()) {
                    return Err(cx.error("catalog.name", "an empty catalog name"));
                }
                Ok(())
            }
            CatalogConfig::Rest { uri, warehouse, warehouse_dir, token_env } => {
                rest_uri(uri).map_err(|m| cx.error("catalog.uri", m))?;
                if warehouse.as_deref().is_some_and(|w| w.trim().is_empty()) {
                    return Err(cx.error("catalog.warehouse", "an empty warehouse name"));
                }
                if !warehouse_dir.is_absolute() {
                    return Err(cx.error(
                        "catalog.warehouse_dir",
                        format!("'{}' is not an absolute path: the local directory the catalog's tables lie under", warehouse_dir.display()),
                    ));
                }
                cx.path("catalog.warehouse_dir", warehouse_dir)?;
                if let Some(v) = token_env
                    && (v.is_empty() || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
                {
                    return Err(cx.error("catalog.token_env", format!("'{v}' is not an environment variable's name")));
                }
                Ok(())
            }
        }
    }

    /// The local directory a catalog's tables lie under.
    pub fn warehouse_dir(&self) -> Option<&Path> {
        match self {
            CatalogConfig::Sql { warehouse, .. } => Some(warehouse),
            CatalogConfig::Rest { warehouse_dir, .. } => Some(warehouse_dir),
        }
    }

    /// The catalog's address, for messages.
    pub fn uri(&self) -> &str {
        match self {
            CatalogConfig::Sql { uri, .. } | CatalogConfig::Rest { uri, .. } => uri,
        }
    }
}

/// A REST catalog's base URI, checked: http or https, a host, no query.
pub fn rest_uri(uri: &str) -> Result<&str, String> {
    let rest = uri.strip_prefix("http://").or_else(|| uri.strip_prefix("https://"));
    let Some(rest) = rest else {
        return Err(format!("'{uri}' is not an http:// or https:// URI (the REST catalog's base, e.g. http://127.0.0.1:8181)"));
    };
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() || host.contains('@') {
        return Err(format!("'{uri}' names no host (or carries credentials; use token_env)"));
    }
    if rest.contains(['?', '#']) {
        return Err(format!("'{uri}' has a query or fragment; give the catalog's base URI"));
    }
    Ok(uri.trim_end_matches('/'))
}

/// A column of a declared `schema:`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnDef {
    pub name: String,
    /// An Iceberg primitive type: boolean, int, long, float, double,
    /// decimal(P,S), date, time, timestamp, timestamptz, string, uuid, binary.
    #[serde(rename = "type")]
    pub kind: String,
    /// NOT NULL (default false).
    #[serde(default)]
    pub required: bool,
}

/// `mode:` of an Iceberg sink.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SinkMode {
    #[default]
    Append,
    Upsert,
}

/// `type: iceberg` in `sinks:`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IcebergSinkConfig {
    pub catalog: CatalogConfig,
    /// `namespace.table` (nested namespaces as `a.b.table`).
    pub table: String,
    /// The table's columns, to create it when missing; an existing table is
    /// written by its own schema (a declared one must match it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schema: Vec<ColumnDef>,
    /// Partition fields of a created table: `col`, `identity(col)`,
    /// `year|month|day|hour(col)`, `bucket(N, col)`, `truncate(W, col)`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partition: Vec<String>,
    #[serde(default)]
    pub mode: SinkMode,
    /// mode upsert: the columns that identify a row (the table's identifier
    /// fields; required, primitive, not floating point). A record replaces
    /// the row of its key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key: Vec<String>,
    /// mode upsert: a top-level field that, when `true` (or `"true"`, as
    /// Debezium's `ExtractNewRecordState` writes `__deleted`), makes the
    /// record a delete of its key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_field: Option<String>,
    /// The size at which a data file is closed and another started (default 128 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_file_size: Option<Bytes>,
    /// Table properties of a created table.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
}

/// `type: iceberg` in `sources:`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IcebergSourceConfig {
    pub catalog: CatalogConfig,
    pub table: String,
    /// The snapshot to read (default: the current one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<i64>,
    /// Read the snapshot that was current at this time (RFC 3339, or
    /// milliseconds since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of: Option<String>,
    /// Rows per read batch (default 4096).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
}

pub const DEFAULT_TARGET_FILE_SIZE: usize = 128 << 20;

/// `ns.table` split into its namespace parts and name.
pub fn table_parts(table: &str) -> Result<(Vec<String>, String), String> {
    let parts: Vec<&str> = table.split('.').collect();
    if parts.len() < 2 || parts.iter().any(|p| p.trim().is_empty() || *p != p.trim()) {
        return Err(format!("'{table}' is not namespace.table"));
    }
    let (name, ns) = parts.split_last().unwrap();
    Ok((ns.iter().map(|s| s.to_string()).collect(), name.to_string()))
}

/// Parse a column's type ("long", "decimal(10,2)", ...).
pub fn column_type(kind: &str) -> Result<PrimitiveType, String> {
    let t = kind.trim().to_ascii_lowercase().replace(' ', "");
    serde_json::from_value::<PrimitiveType>(serde_json::Value::String(t)).map_err(|_| {
        format!(
            "'{kind}' is not an Iceberg primitive type (boolean, int, long, float, double, decimal(P,S), date, time, timestamp, timestamptz, string, uuid, binary)"
        )
    })
}

/// The Iceberg schema of a declared column list (field ids 1..).
pub fn schema_of(cols: &[ColumnDef]) -> Result<Schema, (usize, String)> {
    let mut fields = Vec::with_capacity(cols.len());
    let mut seen = std::collections::HashSet::new();
    for (i, c) in cols.iter().enumerate() {
        if c.name.trim().is_empty() {
            return Err((i, "an empty column name".into()));
        }
        if !seen.insert(c.name.as_str()) {
            return Err((i, format!("column '{}' is declared twice", c.name)));
        }
        let t = Type::Primitive(column_type(&c.kind).map_err(|m| (i, m))?);
        let id = i as i32 + 1;
        fields.push(if c.required { NestedField::required(id, &c.name, t) } else { NestedField::optional(id, &c.name, t) }.into());
    }
    Schema::builder().with_schema_id(0).with_fields(fields).build().map_err(|e| (0, e.to_string()))
}

/// One partition field: its transform and source column.
pub fn partition_field(text: &str) -> Result<(Transform, String), String> {
    let t = text.trim();
    let Some(open) = t.find('(') else {
        return if t.is_empty() || t.contains(|c: char| c == ')' || c == ',') {
            Err(format!("'{text}' is not a partition field"))
        } else {
            Ok((Transform::Identity, t.to_string()))
        };
    };
    let Some(inner) = t[open + 1..].strip_suffix(')') else {
        return Err(format!("'{text}': a missing ')'"));
    };
    let func = t[..open].trim().to_ascii_lowercase();
    let args: Vec<&str> = inner.split(',').map(str::trim).collect();
    let col = |a: &str| if a.is_empty() { Err(format!("'{text}' names no column")) } else { Ok(a.to_string()) };
    let num = |a: &str| a.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| format!("'{text}': '{a}' is not a positive number"));
    match (func.as_str(), args.as_slice()) {
        ("identity", [c]) => Ok((Transform::Identity, col(c)?)),
        ("year", [c]) => Ok((Transform::Year, col(c)?)),
        ("month", [c]) => Ok((Transform::Month, col(c)?)),
        ("day", [c]) => Ok((Transform::Day, col(c)?)),
        ("hour", [c]) => Ok((Transform::Hour, col(c)?)),
        ("bucket", [n, c]) => Ok((Transform::Bucket(num(n)?), col(c)?)),
        ("truncate", [w, c]) => Ok((Transform::Truncate(num(w)?), col(c)?)),
        _ => Err(format!(
            "'{text}' is not a partition field: write col, identity(col), year|month|day|hour(col), bucket(N, col) or truncate(W, col)"
        )),
    }
}

/// The partition spec of `fields` over `schema`.
pub fn partition_spec(schema: &Schema, fields: &[String]) -> Result<UnboundPartitionSpec, (usize, String)> {
    let mut b = UnboundPartitionSpec::builder().with_spec_id(0);
    for (i, f) in fields.iter().enumerate() {
        let (transform, col) = partition_field(f).map_err(|m| (i, m))?;
        let field = schema.field_by_name(&col).ok_or_else(|| (i, format!("'{f}': the schema has no column '{col}'")))?;
        let name = match transform {
            Transform::Identity => col.clone(),
            Transform::Bucket(_) => format!("{col}_bucket"),
            Transform::Truncate(_) => format!("{col}_trunc"),
            Transform::Year => format!("{col}_year"),
            Transform::Month => format!("{col}_month"),
            Transform::Day => format!("{col}_day"),
            Transform::Hour => format!("{col}_hour"),
            _ => col.clone(),
        };
        if transform.result_type(&field.field_type).is_err() {
            return Err((i, format!("'{f}': {transform} does not apply to column '{col}' of type {}", field.field_type)));
        }
        b = b.add_partition_field(field.id, name, transform).map_err(|e| (i, format!("'{f}': {}", e.message())))?;
    }
    Ok(b.build())
}

impl IcebergSinkConfig {
    pub fn check(&self, cx: &Check<'_>) -> Result<(), SpecError> {
        self.catalog.check(cx)?;
        table_parts(&self.table).map_err(|m| cx.error("table", m))?;
        if self.mode == SinkMode::Append {
            if !self.key.is_empty() {
                return Err(cx.error("key", "a key is for mode: upsert (an appending sink keeps every record)"));
            }
            if self.deleted_field.is_some() {
                return Err(cx.error("deleted_field", "deletes are for mode: upsert (an appending sink keeps every record)"));
            }
        } else {
            self.check_upsert(cx)?;
        }
        if !self.schema.is_empty() {
            let schema = schema_of(&self.schema).map_err(|(i, m)| cx.error(&format!("schema.{i}"), m))?;
            let spec = partition_spec(&schema, &self.partition).map_err(|(i, m)| cx.error(&format!("partition.{i}"), m))?;
            if self.mode == SinkMode::Upsert {
                upsert_key(&schema, &self.key).map_err(|(i, m)| cx.error(&format!("key.{i}"), m))?;
                for (i, f) in spec.fields().iter().enumerate() {
                    let col = schema.name_by_field_id(f.source_id).unwrap_or_default();
                    if !self.key.iter().any(|k| k == col) {
                        return Err(cx.error(
                            &format!("partition.{i}"),
                            format!("mode: upsert partitions by key columns only ('{col}' is not in key: [{}]): a key's rows must stay in one partition", self.key.join(", ")),
                        ));
                    }
                }
            }
        } else if !self.partition.is_empty() {
            return Err(cx.error("partition", "a partition spec is for a table the sink creates: declare its schema too"));
        }
        if let Some(Bytes(n)) = self.target_file_size
            && !(1 << 20..=1 << 34).contains(&n)
        {
            return Err(cx.error("target_file_size", "between 1 MiB and 16 GiB"));
        }
        Ok(())
    }
}

impl IcebergSinkConfig {
    fn check_upsert(&self, cx: &Check<'_>) -> Result<(), SpecError> {
        if self.key.is_empty() {
            return Err(cx.error("key", "mode: upsert needs key: [columns] (the columns that identify a row)"));
        }
        if let Some((i, _)) = self.key.iter().enumerate().find(|(i, k)| self.key[..*i].contains(k)) {
            return Err(cx.error(&format!("key.{i}"), format!("'{}' is named twice", self.key[i])));
        }
        if self.deleted_field.as_deref().is_some_and(|f| f.trim().is_empty()) {
            return Err(cx.error("deleted_field", "an empty field name"));
        }
        upsert_routing(&self.key, cx.key_by, cx.parallelism).map_err(|m| cx.error(if cx.key_by.is_some() { "key_by" } else { "parallelism" }, m))
    }
}

/// Every change of a key must reach one task: a sink of parallelism above 1
/// is keyed by the record key or by one of the key columns.
pub fn upsert_routing(key: &[String], key_by: Option<&weir_engine::KeySelector>, parallelism: Option<u32>) -> Result<(), String> {
    use weir_engine::KeySelector;
    match key_by {
        Some(KeySelector::RecordKey) => Ok(()),
        Some(KeySelector::JsonField(path)) if path.len() == 1 && key.contains(&path[0]) => Ok(()),
        Some(KeySelector::JsonField(path)) => Err(format!(
            "mode: upsert sends every change of a key to one task: key_by $.{} is not a key column (key: [{}]); write key_by: $.{}",
            path.join("."),
            key.join(", "),
            key[0]
        )),
        None if parallelism.is_some_and(|p| p > 1) => Err(format!(
            "mode: upsert with parallelism {} needs key_by: $.{} so that every change of a key reaches the same task",
            parallelism.unwrap_or_default(),
            key[0]
        )),
        None => Ok(()),
    }
}

/// The field ids of an upsert key in `schema`: each column present,
/// required, primitive and not floating point (Iceberg's rule for
/// identifier fields).
pub fn upsert_key(schema: &Schema, key: &[String]) -> Result<Vec<i32>, (usize, String)> {
    let mut ids = Vec::with_capacity(key.len());
    for (i, k) in key.iter().enumerate() {
        let f = schema.field_by_name(k).ok_or_else(|| (i, format!("the table has no column '{k}'")))?;
        if !f.required {
            return Err((i, format!("key column '{k}' must be required (declare required: true): a key is never null")));
        }
        match &*f.field_type {
            Type::Primitive(PrimitiveType::Float | PrimitiveType::Double) => {
                return Err((i, format!("key column '{k}' is {}: a key cannot be floating point", f.field_type)));
            }
            Type::Primitive(_) => {}
            t => return Err((i, format!("key column '{k}' is {t}: a key is of primitive columns"))),
        }
        ids.push(f.id);
    }
    Ok(ids)
}

impl IcebergSourceConfig {
    pub fn check(&self, cx: &Check<'_>) -> Result<(), SpecError> {
        self.catalog.check(cx)?;
        table_parts(&self.table).map_err(|m| cx.error("table", m))?;
        if self.snapshot_id.is_some() && self.as_of.is_some() {
            return Err(cx.error("as_of", "give snapshot_id or as_of, not both"));
        }
        if let Some(t) = &self.as_of {
            parse_time_ms(t).map_err(|m| cx.error("as_of", m))?;
        }
        if let Some(n) = self.batch_size
            && !(1..=1 << 20).contains(&n)
        {
            return Err(cx.error("batch_size", "between 1 and 1048576 rows"));
        }
        Ok(())
    }
}

/// Milliseconds since the epoch of an RFC 3339 time or a number.
pub fn parse_time_ms(t: &str) -> Result<i64, String> {
    if let Ok(ms) = t.trim().parse::<i64>() {
        return Ok(ms);
    }
    weir_engine::parse_rfc3339(t.trim()).ok_or_else(|| format!("'{t}' is not a time: write RFC 3339 (2026-12-03T10:00:00Z) or milliseconds since 1970"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_fields_parse_as_spark_writes_them() {
        assert_eq!(partition_field("id").unwrap(), (Transform::Identity, "id".into()));
        assert_eq!(partition_field("day(ts)").unwrap(), (Transform::Day, "ts".into()));
        assert_eq!(partition_field("bucket(16, id)").unwrap(), (Transform::Bucket(16), "id".into()));
        assert_eq!(partition_field("truncate(4,name)").unwrap(), (Transform::Truncate(4), "name".into()));
        assert!(partition_field("bucket(0, id)").unwrap_err().contains("not a positive number"));
        assert!(partition_field("week(ts)").unwrap_err().contains("is not a partition field"));
        assert!(partition_field("day(ts").unwrap_err().contains("missing ')'"));
    }

    #[test]
    fn types_and_tables() {
        assert_eq!(column_type("decimal(10, 2)").unwrap(), PrimitiveType::Decimal { precision: 10, scale: 2 });
        assert_eq!(column_type("timestamptz").unwrap(), PrimitiveType::Timestamptz);
        assert!(column_type("varchar").unwrap_err().contains("not an Iceberg primitive type"));
        assert_eq!(table_parts("db.events").unwrap(), (vec!["db".to_string()], "events".to_string()));
        assert!(table_parts("events").is_err());
        assert!(table_parts("db..events").is_err());
        assert_eq!(CatalogConfig::sqlite_file("sqlite:///tmp/c.db"), Some(PathBuf::from("/tmp/c.db")));
        assert_eq!(CatalogConfig::sqlite_file("sqlite:c.db?mode=rwc"), Some(PathBuf::from("c.db")));
        assert_eq!(CatalogConfig::sqlite_file("postgres://x"), None);
        assert_eq!(rest_uri("http://127.0.0.1:8181/").unwrap(), "http://127.0.0.1:8181");
        assert_eq!(rest_uri("https://cat.example/api/catalog").unwrap(), "https://cat.example/api/catalog");
        assert!(rest_uri("thrift://hms:9083").unwrap_err().contains("not an http:// or https:// URI"));
        assert!(rest_uri("http://user:pw@host").unwrap_err().contains("credentials"));
        assert!(rest_uri("http:///v1").unwrap_err().contains("names no host"));
        assert!(rest_uri("http://h/?x=1").unwrap_err().contains("query"));
    }

    #[test]
    fn times() {
        assert_eq!(parse_time_ms("1700000000000").unwrap(), 1_700_000_000_000);
        assert_eq!(parse_time_ms("1970-01-01T00:00:01Z").unwrap(), 1000);
        assert_eq!(parse_time_ms("2023-11-14T22:13:20.5Z").unwrap(), 1_700_000_000_500);
        assert_eq!(parse_time_ms("2023-11-14T23:13:20+01:00").unwrap(), 1_700_000_000_000);
        assert!(parse_time_ms("yesterday").is_err());
    }
}
