//! A table of an Iceberg catalog, opened for a sink or source: the catalog
//! connection (a SQL catalog in a sqlite file, or a REST catalog), the async
//! runtime iceberg-rust runs on (a small one of the node's own, entered by
//! blocking calls from the engine's task threads), the table's creation when
//! a sink declares a schema for a missing one, and the catalog's
//! compare-and-swap for the commits iceberg-rust cannot make.

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use iceberg::spec::Schema;
use iceberg::table::Table;
use iceberg::{Catalog, CatalogBuilder, MetadataLocation, NamespaceIdent, TableCreation, TableIdent, TableRequirement, TableUpdate};
use iceberg_catalog_rest::RestCatalogBuilder;
use iceberg_catalog_sql::{SqlBindStyle, SqlCatalogBuilder};

use crate::IcebergError;
use crate::config::{self, CatalogConfig};
use crate::rest::RestCommits;
use crate::storage::WarehouseFsFactory;

/// An open catalog and one of its tables' identifiers.
pub struct Lake {
    pub rt: tokio::runtime::Runtime,
    pub catalog: Arc<dyn Catalog>,
    pub ident: TableIdent,
    /// `ns.table`, for messages.
    pub table: String,
    /// How a commit of our own reaches the catalog.
    swap: Swap,
}

enum Swap {
    /// The SQL catalog's row of the table, in its database: its catalog
    /// name, the database, and a connection of our own.
    Sql { name: String, db: PathBuf, pool: std::sync::OnceLock<sqlx::SqlitePool> },
    /// The REST catalog's commit endpoint.
    Rest(RestCommits),
}

fn abs(p: &std::path::Path) -> Result<PathBuf, IcebergError> {
    let p = if p.is_absolute() { p.to_path_buf() } else { std::env::current_dir().map_err(IcebergError::io("the working directory"))?.join(p) };
    Ok(p)
}

impl Lake {
    pub fn open(catalog: &CatalogConfig, table: &str) -> Result<Lake, IcebergError> {
        let (ns, name_) = config::table_parts(table).map_err(IcebergError::Config)?;
        let ident = TableIdent::new(NamespaceIdent::from_vec(ns).map_err(|e| IcebergError::iceberg(table, e))?, name_);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("weir-iceberg")
            .enable_all()
            .build()
            .map_err(IcebergError::io("cannot start the Iceberg runtime"))?;
        let cat_err = |uri: &str| {
            let uri = uri.to_string();
            move |e| IcebergError::Catalog { uri, source: e }
        };
        let (catalog, swap): (Arc<dyn Catalog>, Swap) = match catalog {
            CatalogConfig::Sql { uri, warehouse, name } => {
                let db = CatalogConfig::sqlite_file(uri).ok_or_else(|| IcebergError::Config(format!("'{uri}' is not a sqlite file")))?;
                let db = abs(&db)?;
                let warehouse = abs(warehouse)?;
                for d in [db.parent().unwrap_or(&warehouse), &warehouse] {
                    std::fs::create_dir_all(d).map_err(IcebergError::io(&format!("cannot create {}", d.display())))?;
                }
                let props = HashMap::from([
                    ("uri".to_string(), format!("sqlite://{}?mode=rwc", db.display())),
                    ("warehouse".to_string(), format!("file://{}", warehouse.display())),
                    ("sql_bind_style".to_string(), SqlBindStyle::QMark.to_string()),
                ]);
                let name = name.clone().unwrap_or_else(|| "weir".into());
                let c = rt
                    .block_on(
                        SqlCatalogBuilder::default()
                            .with_storage_factory(Arc::new(WarehouseFsFactory { root: warehouse.clone() }))
                            .with_runtime(iceberg::Runtime::new(&rt))
                            .load(name.clone(), props),
                    )
                    .map_err(cat_err(uri))?;
                (Arc::new(c), Swap::Sql { name, db, pool: Default::default() })
            }
            CatalogConfig::Rest { uri, warehouse, warehouse_dir, token_env } => {
                let base = config::rest_uri(uri).map_err(IcebergError::Config)?.to_string();
                let token = match token_env {
                    Some(v) => Some(std::env::var(v).map_err(|_| {
                        IcebergError::Config(format!("REST catalog {uri}: environment variable {v} (token_env) is not set"))
                    })?),
                    None => None,
                };
                let mut props = HashMap::from([("uri".to_string(), base.clone())]);
                if let Some(w) = warehouse {
                    props.insert("warehouse".into(), w.clone());
                }
                if let Some(t) = &token {
                    props.insert("token".into(), t.clone());
                }
                let c = rt
                    .block_on(
                        RestCatalogBuilder::default()
                            .with_storage_factory(Arc::new(WarehouseFsFactory { root: abs(warehouse_dir)? }))
                            .with_runtime(iceberg::Runtime::new(&rt))
                            .load("weir", props),
                    )
                    .map_err(cat_err(uri))?;
                (Arc::new(c), Swap::Rest(RestCommits::new(base, warehouse.clone(), token)))
            }
        };
        Ok(Lake { rt, catalog, ident, table: table.to_string(), swap })
    }

    /// Apply `updates` to `table` if `requirements` hold at the catalog: the
    /// catalog's compare-and-swap, for a commit of our own making (iceberg-rust
    /// has no row-delta commit, and its table commits are not for crates to
    /// build). A SQL catalog: the new metadata file written beside the old,
    /// the catalog's row moved to it only if it still names the old one. A
    /// REST catalog: its commit endpoint, which checks the requirements and
    /// writes the metadata itself. False: another writer committed first.
    pub fn commit_updates(&self, table: &Table, requirements: Vec<TableRequirement>, updates: Vec<TableUpdate>) -> Result<bool, IcebergError> {
        let ice = |e| IcebergError::iceberg(&self.table, e);
        match &self.swap {
            Swap::Rest(rest) => self.rt.block_on(rest.commit(&self.ident, &requirements, &updates)).map_err(|m| IcebergError::data(&self.table, m)),
            Swap::Sql { .. } => {
                let m = table.metadata();
                for r in &requirements {
                    if r.check(Some(m)).is_err() {
                        return Ok(false);
                    }
                }
                let current = table.metadata_location_result().map_err(ice)?;
                let mut b = m.clone().into_builder(Some(current.to_string()));
                for u in updates {
                    b = u.apply(b).map_err(ice)?;
                }
                let next = b.build().map_err(ice)?.metadata;
                let location = MetadataLocation::from_str(current).map_err(ice)?.with_next_version().with_new_metadata(&next);
                self.rt.block_on(next.write_to(table.file_io(), &location)).map_err(ice)?;
                self.swap_metadata(current, &location.to_string())
            }
        }
    }

    /// Point the SQL catalog's entry of the table from metadata file
    /// `current` to `next`, if it still names `current`. False: another
    /// writer committed first.
    fn swap_metadata(&self, current: &str, next: &str) -> Result<bool, IcebergError> {
        let Swap::Sql { name, db, pool } = &self.swap else { unreachable!("a SQL catalog's swap") };
        let db_err = |e: sqlx::Error| IcebergError::Config(format!("Iceberg catalog {}: {e}", db.display()));
        self.rt.block_on(async {
            let pool = match pool.get() {
                Some(p) => p.clone(),
                None => {
                    let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(db).busy_timeout(std::time::Duration::from_secs(30));
                    let p = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect_with(opts).await.map_err(db_err)?;
                    pool.get_or_init(|| p).clone()
                }
            };
            let r = sqlx::query(
                "UPDATE iceberg_tables SET metadata_location = ?, previous_metadata_location = ? \
                 WHERE catalog_name = ? AND table_name = ? AND table_namespace = ? \
                 AND (iceberg_type = 'TABLE' OR iceberg_type IS NULL) AND metadata_location = ?",
            )
            .bind(next)
            .bind(current)
            .bind(name)
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
