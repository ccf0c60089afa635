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
        Ok(Lake { rt, catalog, ident, table: table.to_string() })
    }

    pub fn load(&self) -> Result<Table, IcebergError> {
        self.rt.block_on(self.catalog.load_table(&self.ident)).map_err(|e| IcebergError::iceberg(&self.table, e))
    }

    pub fn exists(&self) -> Result<bool, IcebergError> {
        self.rt.block_on(self.catalog.table_exists(&self.ident)).map_err(|e| IcebergError::iceberg(&self.table, e))
    }

    /// The table, created from `schema` and `partition` when missing; an
    /// existing table must have the declared columns.
    pub fn load_or_create(
        &self,
        declared: Option<(Schema, iceberg::spec::UnboundPartitionSpec)>,
        properties: &std::collections::BTreeMap<String, String>,
    ) -> Result<Table, IcebergError> {
        if self.exists()? {
            let t = self.load()?;
            if let Some((schema, _)) = &declared {
                check_columns(&self.table, t.metadata().current_schema(), schema)?;
            }
            return Ok(t);
        }
        let Some((schema, spec)) = declared else {
            return Err(IcebergError::Config(format!(
                "table {} does not exist in the catalog; declare its schema: (and partition:) in the sink to create it",
                self.table
            )));
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
