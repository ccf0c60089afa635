//! `weir iceberg orphans | expire-snapshots | compact`: operating the Iceberg tables
//! that sinks write, in a SQL or a REST catalog.

use std::path::PathBuf;

use anyhow::Context as _;
use weir_iceberg::CatalogConfig;

/// A table of a catalog.
#[derive(clap::Args)]
pub struct TableArgs {
    /// The table, `namespace.table`.
    table: String,
    /// The catalog: a SQL catalog's database, `sqlite:///path/catalog.db`,
    /// or a REST catalog's base URI, `http(s)://host:port`.
    #[arg(long)]
    catalog: String,
    /// The local directory the catalog's tables lie under (a SQL catalog's
    /// warehouse).
    #[arg(long)]
    warehouse: PathBuf,
    /// A SQL catalog's name in its database.
    #[arg(long, default_value = "weir")]
    catalog_name: String,
    /// A REST catalog's warehouse parameter, if it serves several.
    #[arg(long)]
    rest_warehouse: Option<String>,
    /// The environment variable holding a REST catalog's bearer token.
    #[arg(long)]
    token_env: Option<String>,
}

impl TableArgs {
    fn catalog(&self) -> CatalogConfig {
        if self.catalog.starts_with("http://") || self.catalog.starts_with("https://") {
            CatalogConfig::Rest {
                uri: self.catalog.clone(),
                warehouse: self.rest_warehouse.clone(),
                warehouse_dir: std::path::absolute(&self.warehouse).unwrap_or_else(|_| self.warehouse.clone()),
                token_env: self.token_env.clone(),
            }
        } else {
            CatalogConfig::Sql { uri: self.catalog.clone(), warehouse: self.warehouse.clone(), name: Some(self.catalog_name.clone()) }
        }
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
    /// Rewrite the small data files of each partition (under 75 % of the
    /// target size), and the data files delete files reach, into files of
    /// the target size, as one `replace` snapshot; the delete files no data
    /// file needs any more go with them. Safe beside a streaming sink: its
    /// commits meanwhile are kept (the compaction commits on top of them).
    Compact {
        #[command(flatten)]
        table: TableArgs,
        /// The size of the files written (default: the table's
        /// write.target-file-size-bytes, else 128 MiB).
        #[arg(long)]
        target_file_size: Option<String>,
        /// Small files a partition needs to be rewritten (a partition with
        /// deletes is rewritten whatever its count).
        #[arg(long, default_value_t = 2)]
        min_files: usize,
        /// Only this partition, by its path (`key=a/id_bucket=3`, as its data
        /// files' directory is named).
        #[arg(long)]
        partition: Option<String>,
    },
}

fn size(flag: &str, text: &str) -> anyhow::Result<usize> {
    let n = weir_spec::units::parse_bytes(text).map_err(|e| anyhow::anyhow!("{flag}: {e}"))?;
    weir_spec::units::in_range(n, 1 << 20, 16 << 30).map_err(|e| anyhow::anyhow!("{flag}: {e}"))
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
        IcebergCommand::Compact { table, target_file_size, min_files, partition } => {
            let name = &table.table;
            let opts = weir_iceberg::compact::CompactOptions {
                target_file_size: target_file_size.as_deref().map(|t| size("--target-file-size", t)).transpose()?,
                min_files,
                partition,
            };
            let c = weir_iceberg::compact::compact(&table.catalog(), name, &opts).with_context(|| format!("table {name}"))?;
            for p in &c.partitions {
                println!("{p}");
            }
            match c.snapshot {
                None => eprintln!("table {name}: nothing to compact"),
                Some(id) => eprintln!(
                    "table {name}: rewrote {} data files ({} bytes) of {} partitions into {} files ({} bytes, {} rows), removed {} delete files; snapshot {id}{}{}",
                    c.rewritten_files,
                    c.rewritten_bytes,
                    c.partitions.len(),
                    c.added_files,
                    c.added_bytes,
                    c.rows,
                    c.removed_delete_files,
                    if c.rebased > 0 { format!(", committed on top of {} newer commits", c.rebased) } else { String::new() },
                    if c.redone > 0 { format!(" (rows read again {} times: position deletes of the files being rewritten were committed meanwhile)", c.redone) } else { String::new() }
                ),
            }
            Ok(())
        }
    }
}
