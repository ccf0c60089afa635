//! A table of an Iceberg catalog, opened for a sink or source: the catalog
//! connection, the async runtime iceberg-rust runs on (a small one of the
//! node's own, entered by blocking calls from the engine's task threads), and
//! the table's creation when a sink declares a schema for a missing one.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use iceberg::spec::Schema;
use iceberg::table::Table;
use iceberg::{Catalog, CatalogBuilder, NamespaceIdent, TableCreation, TableIdent};
use iceberg_catalog_sql::{SqlBindStyle, SqlCatalog, SqlCatalogBuilder};

use crate::IcebergError;
use crate::config::{self, CatalogConfig};
use crate::storage::WarehouseFsFactory;

/// An open catalog and one of its tables' identifiers.
pub struct Lake {
    pub rt: tokio::runtime::Runtime,
    pub catalog: SqlCatalog,
    pub ident: TableIdent,
    /// `ns.table`, for messages.
    pub table: String,
    /// The catalog's name in its database, and the database.
    name: String,
    db: PathBuf,
    /// A connection of our own for the commits iceberg-rust cannot make.
    pool: std::sync::OnceLock<sqlx::SqlitePool>,
}

fn abs(p: &std::path::Path) -> Result<PathBuf, IcebergError> {
    let p = if p.is_absolute() { p.to_path_buf() } else { std::env::current_dir().map_err(IcebergError::io("the working directory"))?.join(p) };
    Ok(p)
}

impl Lake {
    pub fn open(catalog: &CatalogConfig, table: &str) -> Result<Lake, IcebergError> {
        let CatalogConfig::Sql { uri, warehouse, name } = catalog else {
            return Err(IcebergError::Config("only the SQL catalog is supported".into()));
        };
        let db = CatalogConfig::sqlite_file(uri).ok_or_else(|| IcebergError::Config(format!("'{uri}' is not a sqlite file")))?;
        let db = abs(&db)?;
        let warehouse = abs(warehouse)?;
        for d in [db.parent().unwrap_or(&warehouse), &warehouse] {
            std::fs::create_dir_all(d).map_err(IcebergError::io(&format!("cannot create {}", d.display())))?;
        }
        let (ns, name_) = config::table_parts(table).map_err(IcebergError::Config)?;
        let ident = TableIdent::new(NamespaceIdent::from_vec(ns).map_err(|e| IcebergError::iceberg(table, e))?, name_);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("weir-iceberg")
            .enable_all()
            .build()
            .map_err(IcebergError::io("cannot start the Iceberg runtime"))?;
        let props = HashMap::from([
            ("uri".to_string(), format!("sqlite://{}?mode=rwc", db.display())),
            ("warehouse".to_string(), format!("file://{}", warehouse.display())),
            ("sql_bind_style".to_string(), SqlBindStyle::QMark.to_string()),
        ]);
        let catalog = rt
            .block_on(
                SqlCatalogBuilder::default()
                    .with_storage_factory(Arc::new(WarehouseFsFactory { root: warehouse.clone() }))
                    .with_runtime(iceberg::Runtime::new(&rt))
                    .load(name.clone().unwrap_or_else(|| "weir".into()), props),
            )
            .map_err(|e| IcebergError::Catalog { uri: uri.clone(), source: e })?;
        let name = name.clone().unwrap_or_else(|| "weir".into());
        Ok(Lake { rt, catalog, ident, table: table.to_string(), name, db, pool: Default::default() })
    }

    /// Point the catalog's entry of the table from metadata file `current`
    /// to `next`, if it still names `current` (the SQL catalog's own
    /// compare-and-swap, for a commit of our own making: iceberg-rust has no
    /// row-delta commit, and its table commits are not for crates to build).
    /// False: another writer committed first.
    pub fn swap_metadata(&self, current: &str, next: &str) -> Result<bool, IcebergError> {
        let db_err = |e: sqlx::Error| IcebergError::Config(format!("Iceberg catalog {}: {e}", self.db.display()));
        self.rt.block_on(async {
            let pool = match self.pool.get() {
                Some(p) => p.clone(),
                None => {
                    let opts = sqlx::sqlite::SqliteConnectOptions::new()
                        .filename(&self.db)
                        .busy_timeout(std::time::Duration::from_secs(30));
                    let p = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect_with(opts).await.map_err(db_err)?;
                    self.pool.get_or_init(|| p).clone()
                }
            };
            let r = sqlx::query(
                "UPDATE iceberg_tables SET metadata_location = ?, previous_metadata_location = ? \
                 WHERE catalog_name = ? AND table_name = ? AND table_namespace = ? \
                 AND (iceberg_type = 'TABLE' OR iceberg_type IS NULL) AND metadata_location = ?",
            )
            .bind(next)
            .bind(current)
            .bind(&self.name)
            .bind(self.ident.name())
            .bind(self.ident.namespace().join("."))
            .bind(current)
            .execute(&pool)
            .await
            .map_err(db_err)?;
            Ok(r.rows_affected() == 1)
        })
    }

    pub fn load(&self) -> Result<Table, IcebergError> {
        self.rt.block_on(self.catalog.load_table(&self.ident)).map_err(|e| IcebergError::iceberg(&self.table, e))
    }

    pub fn exists(&self) -> Result<bool, IcebergError> {
        self.rt.block_on(self.catalog.table_exists(&self.ident)).map_err(|e| IcebergError::iceberg(&self.table, e))
    }

    /// The table, created from `schema` and `partition` when missing; an
    /// existing table must have the declared columns.
    /// `key`: an upsert sink's key, which a created table gets as its
    /// identifier fields and an existing one must be able to take.
    pub fn load_or_create(
        &self,
        declared: Option<(Schema, iceberg::spec::UnboundPartitionSpec)>,
        properties: &std::collections::BTreeMap<String, String>,
        key: &[String],
    ) -> Result<Table, IcebergError> {
        if self.exists()? {
            let t = self.load()?;
            if let Some((schema, _)) = &declared {
                check_columns(&self.table, t.metadata().current_schema(), schema)?;
            }
            if !key.is_empty() {
                check_upsert_table(&self.table, &t, key)?;
            }
            return Ok(t);
        }
        let Some((schema, spec)) = declared else {
            return Err(IcebergError::Config(format!(
                "table {} does not exist in the catalog; declare its schema: (and partition:) in the sink to create it",
                self.table
            )));
        };
        let schema = if key.is_empty() {
            schema
        } else {
            let ids = config::upsert_key(&schema, key).map_err(|(i, m)| IcebergError::Config(format!("key[{i}]: {m}")))?;
            schema.into_builder().with_identifier_field_ids(ids).build().map_err(|e| IcebergError::iceberg(&self.table, e))?
        };
        let ns = self.ident.namespace();
        self.rt.block_on(async {
            if !self.catalog.namespace_exists(ns).await? {
                self.catalog.create_namespace(ns, HashMap::new()).await?;
            }
            let creation = TableCreation::builder()
                .name(self.ident.name().to_string())
                .schema(schema)
                .partition_spec(spec)
                .properties(properties.clone())
                .build();
            self.catalog.create_table(ns, creation).await
        })
        .map_err(|e| IcebergError::iceberg(&self.table, e))
    }
}

/// An existing table an upsert sink writes: format 2 or later (delete
/// files), the key's columns fit to be identifier fields and match the
/// table's own identifier fields if it has them, and the partition spec
/// partitions by key columns only.
fn check_upsert_table(name: &str, t: &Table, key: &[String]) -> Result<(), IcebergError> {
    let m = t.metadata();
    if m.format_version() < iceberg::spec::FormatVersion::V2 {
        return Err(IcebergError::Config(format!(
            "table {name} is an Iceberg {} table, which has no delete files: mode: upsert needs format version 2 or later (upgrade the table, or write it with mode: append)",
            m.format_version()
        )));
    }
    let schema = m.current_schema();
    let ids = config::upsert_key(schema, key).map_err(|(i, msg)| IcebergError::Config(format!("table {name}, key[{i}]: {msg}")))?;
    let mut own: Vec<i32> = schema.identifier_field_ids().collect();
    if !own.is_empty() {
        own.sort_unstable();
        let mut want = ids.clone();
        want.sort_unstable();
        if own != want {
            let names: Vec<&str> = own.iter().filter_map(|id| schema.name_by_field_id(*id)).collect();
            return Err(IcebergError::Config(format!(
                "table {name}'s identifier fields are [{}], but the sink's key is [{}]",
                names.join(", "),
                key.join(", ")
            )));
        }
    }
    for f in m.default_partition_spec().fields() {
        if !ids.contains(&f.source_id) {
            let col = schema.name_by_field_id(f.source_id).unwrap_or("?");
            return Err(IcebergError::Config(format!(
                "table {name} is partitioned by '{col}', which is not in the sink's key [{}]: an upsert's rows of one key must stay in one partition",
                key.join(", ")
            )));
        }
    }
    Ok(())
}

/// The declared columns are the table's, with the same types and nullability.
fn check_columns(table: &str, actual: &Schema, declared: &Schema) -> Result<(), IcebergError> {
    for f in declared.as_struct().fields() {
        match actual.field_by_name(&f.name) {
            None => {
                return Err(IcebergError::Config(format!("table {table} has no column '{}' that the sink's schema declares", f.name)));
            }
            Some(a) if a.field_type != f.field_type || a.required != f.required => {
                let show = |r: bool, t: &iceberg::spec::Type| format!("{t}{}", if r { " required" } else { "" });
                return Err(IcebergError::Config(format!(
                    "column '{}' of table {table} is {}, but the sink's schema declares {}",
                    f.name,
                    show(a.required, &a.field_type),
                    show(f.required, &f.field_type)
                )));
            }
            Some(_) => {}
        }
    }
    Ok(())
}
