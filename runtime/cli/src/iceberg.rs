//! `weir iceberg orphans | expire-snapshots`: operating the Iceberg tables
//! that sinks write.

use std::path::PathBuf;

use anyhow::Context as _;
use weir_iceberg::CatalogConfig;

/// A table of a SQL catalog.
#[derive(clap::Args)]
pub struct TableArgs {
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
}

impl TableArgs {
    fn catalog(&self) -> CatalogConfig {
        CatalogConfig::Sql { uri: self.catalog.clone(), warehouse: self.warehouse.clone(), name: Some(self.catalog_name.clone()) }
    }
}

#[derive(clap::Subcommand)]
pub enum IcebergCommand {
    /// List (or, with --delete, remove) the data files of a table that no
    /// snapshot references: left by a sink task that crashed before its
    /// checkpoint completed. Only files older than --older-than count, so a
    /// running job's files in progress are left alone.
    Orphans {
        #[command(flatten)]
        table: TableArgs,
        #[arg(long, default_value = "1h")]
        older_than: String,
        #[arg(long)]
        delete: bool,
    },
    /// Expire snapshots older than --older-than, keeping the --retain-last
    /// newest, the current one, and each sink run's latest committed
    /// checkpoint (which recovery reads).
    ExpireSnapshots {
        #[command(flatten)]
        table: TableArgs,
        #[arg(long, default_value = "120h")]
        older_than: String,
        #[arg(long, default_value_t = 1)]
        retain_last: usize,
    },
}

fn age(flag: &str, text: &str) -> anyhow::Result<std::time::Duration> {
    weir_spec::parse_duration(text).map_err(|e| anyhow::anyhow!("{flag}: {e}"))
}

pub fn iceberg(command: IcebergCommand) -> anyhow::Result<()> {
    match command {
        IcebergCommand::Orphans { table, older_than, delete } => {
            let name = &table.table;
            let o = weir_iceberg::maintenance::orphan_files(&table.catalog(), name, age("--older-than", &older_than)?, delete)
                .with_context(|| format!("table {name}"))?;
            for f in &o.files {
                println!("{}", f.display());
            }
            eprintln!(
                "table {name}: {} orphan data files ({} bytes) older than {older_than}{}; {} data files referenced by its snapshots",
                o.files.len(),
                o.bytes,
                if delete { ", removed" } else { "" },
                o.referenced
            );
            Ok(())
        }
        IcebergCommand::ExpireSnapshots { table, older_than, retain_last } => {
            let name = &table.table;
            let e = weir_iceberg::maintenance::expire_snapshots(&table.catalog(), name, age("--older-than", &older_than)?, retain_last)
                .with_context(|| format!("table {name}"))?;
            for id in &e.removed {
                println!("{id}");
            }
            eprintln!(
                "table {name}: expired {} snapshots older than {older_than}; kept {} (the {retain_last} newest, the current one, and {} carrying a sink run's latest checkpoint)",
                e.removed.len(),
                e.kept,
                e.protected.len()
            );
            Ok(())
        }
    }
}
