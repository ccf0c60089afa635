//! Operating a table: finding (and removing) orphan data files, the files
//! under a table's `data/` directory that no snapshot references: written by
//! a sink task that crashed before its checkpoint completed. As Iceberg's
//! `remove_orphan_files`, only files older than a given age count, so that
//! files a running job is writing (and will commit at its next checkpoint)
//! are left alone.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use iceberg::spec::ManifestList;

use crate::IcebergError;
use crate::catalog::Lake;
use crate::config::CatalogConfig;

/// Orphan data files of a table.
#[derive(Debug, Default)]
pub struct Orphans {
    pub files: Vec<PathBuf>,
    pub bytes: u64,
    /// Data files the table's snapshots reference.
    pub referenced: usize,
}

fn local(path: &str) -> PathBuf {
    PathBuf::from(path.strip_prefix("file://").or_else(|| path.strip_prefix("file:")).unwrap_or(path))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    for e in entries {
        let e = e?;
        if e.file_type()?.is_dir() {
            walk(&e.path(), out)?;
        } else {
            out.push(e.path());
        }
    }
    Ok(())
}

/// The orphan data files of `table` last modified more than `older_than` ago;
/// with `delete`, removed.
pub fn orphan_files(catalog: &CatalogConfig, table: &str, older_than: Duration, delete: bool) -> Result<Orphans, IcebergError> {
    let lake = Lake::open(catalog, table)?;
    let t = lake.load()?;
    let m = t.metadata();
    let io = t.file_io();
    let ice = |e| IcebergError::iceberg(table, e);
    let mut referenced = HashSet::new();
    lake.rt.block_on(async {
        for s in m.snapshots() {
            let bytes = io.new_input(s.manifest_list())?.read().await?;
            let list = ManifestList::parse_with_version(&bytes, m.format_version())?;
            for mf in list.entries() {
                let manifest = mf.load_manifest(io).await?;
                for e in manifest.entries() {
                    referenced.insert(local(e.data_file().file_path()));
                }
            }
        }
        Ok::<_, iceberg::Error>(())
    })
    .map_err(ice)?;
    let data = local(m.location()).join("data");
    let mut all = Vec::new();
    walk(&data, &mut all).map_err(IcebergError::io(&format!("cannot list {}", data.display())))?;
    let cutoff = SystemTime::now().checked_sub(older_than).unwrap_or(SystemTime::UNIX_EPOCH);
    let mut out = Orphans { referenced: referenced.len(), ..Orphans::default() };
    all.sort();
    for f in all {
        if referenced.contains(&f) {
            continue;
        }
        let meta = std::fs::metadata(&f).map_err(IcebergError::io(&format!("cannot stat {}", f.display())))?;
        if meta.modified().is_ok_and(|t| t > cutoff) {
            continue;
        }
        out.bytes += meta.len();
        if delete {
            std::fs::remove_file(&f).map_err(IcebergError::io(&format!("cannot remove {}", f.display())))?;
        }
        out.files.push(f);
    }
    Ok(out)
}
