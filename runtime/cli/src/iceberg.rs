//! `weir iceberg orphans`: operating the Iceberg tables that sinks write.

use std::path::PathBuf;

use anyhow::Context as _;
use weir_iceberg::CatalogConfig;

#[derive(clap::Subcommand)]
pub enum IcebergCommand {
    /// List (or, with --delete, remove) the data files of a table that no
    /// snapshot references: left by a sink task that crashed before its
    /// checkpoint completed. Only files older than --older-than count, so a
    /// running job's files in progress are left alone.
    Orphans {
        /// The table, `namespace.table`.
        table: String,
        /// The SQL catalog: `sqlite:///path/catalog.db`.
        #[arg(long)]
        catalog: String,
        /// The catalog's warehouse directory.
        #[arg(long)]
        warehouse: PathBuf,
        /// The catalog's name in its database.
        #[arg(long, default_value = "weir")]
        catalog_name: String,
        #[arg(long, default_value = "1h")]
        older_than: String,
        #[arg(long)]
        delete: bool,
    },
}

pub fn iceberg(command: IcebergCommand) -> anyhow::Result<()> {
    match command {
        IcebergCommand::Orphans { table, catalog, warehouse, catalog_name, older_than, delete } => {
            let age = weir_spec::parse_duration(&older_than).map_err(|e| anyhow::anyhow!("--older-than: {e}"))?;
            let c = CatalogConfig::Sql { uri: catalog, warehouse, name: Some(catalog_name) };
            let o = weir_iceberg::maintenance::orphan_files(&c, &table, age, delete).with_context(|| format!("table {table}"))?;
            for f in &o.files {
                println!("{}", f.display());
            }
            eprintln!(
                "table {table}: {} orphan data files ({} bytes) older than {older_than}{}; {} data files referenced by its snapshots",
                o.files.len(),
                o.bytes,
                if delete { ", removed" } else { "" },
                o.referenced
            );
            Ok(())
        }
    }
}
