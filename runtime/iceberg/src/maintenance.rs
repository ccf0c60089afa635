//! Operating a table: finding (and removing) orphan data files, the files
//! under a table's `data/` directory that no snapshot references: written by
//! a sink task that crashed before its checkpoint completed. As Iceberg's
//! `remove_orphan_files`, only files older than a given age count, so that
//! files a running job is writing (and will commit at its next checkpoint)
//! are left alone. And expiring old snapshots, keeping the ones recovery
//! reads (each sink run's latest committed checkpoint).

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

/// What `expire_snapshots` removed and kept.
#[derive(Debug, Default)]
pub struct Expired {
    pub removed: Vec<i64>,
    /// Snapshots kept because they carry the latest committed checkpoint of
    /// a sink's run (recovery reads them).
    pub protected: Vec<i64>,
    pub kept: usize,
}

/// Expire the snapshots of `table` older than `older_than`, keeping the
/// `retain_last` newest, the current one, and for every sink run (pipeline,
/// operator, run id) the snapshot with its highest checkpoint id: without it,
/// a job restored from an older checkpoint of that run would commit its files
/// again. Data files stay (an append table's later snapshots reference them).
pub fn expire_snapshots(catalog: &CatalogConfig, table: &str, older_than: Duration, retain_last: usize) -> Result<Expired, IcebergError> {
    use iceberg::transaction::{ApplyTransactionAction, Transaction};

    use crate::commit::{CHECKPOINT, OPERATOR, PIPELINE, RUN};

    let lake = Lake::open(catalog, table)?;
    let t = lake.load()?;
    let m = t.metadata();
    let mut latest: std::collections::HashMap<(String, String, String), (u64, i64)> = Default::default();
    for s in m.snapshots() {
        let p = &s.summary().additional_properties;
        let (Some(pl), Some(op), Some(run), Some(c)) = (p.get(PIPELINE), p.get(OPERATOR), p.get(RUN), p.get(CHECKPOINT)) else { continue };
        let Ok(c) = c.parse::<u64>() else { continue };
        let e = latest.entry((pl.clone(), op.clone(), run.clone())).or_insert((c, s.snapshot_id()));
        if c >= e.0 {
            *e = (c, s.snapshot_id());
        }
    }
    let protected: HashSet<i64> = latest.values().map(|(_, id)| *id).collect();
    let cutoff = SystemTime::now().checked_sub(older_than).unwrap_or(SystemTime::UNIX_EPOCH);
    let cutoff_ms = cutoff.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let mut by_age: Vec<_> = m.snapshots().map(|s| (s.sequence_number(), s.snapshot_id(), s.timestamp_ms())).collect();
    by_age.sort();
    let newest: HashSet<i64> = by_age.iter().rev().take(retain_last.max(1)).map(|(_, id, _)| *id).collect();
    let current = m.current_snapshot_id();
    let removed: Vec<i64> = by_age
        .iter()
        .filter(|(_, id, ts)| *ts < cutoff_ms && !newest.contains(id) && Some(*id) != current && !protected.contains(id))
        .map(|(_, id, _)| *id)
        .collect();
    let kept = by_age.len() - removed.len();
    let mut protected: Vec<i64> = protected.into_iter().collect();
    protected.sort();
    if removed.is_empty() {
        return Ok(Expired { removed, protected, kept });
    }
    let tx = Transaction::new(&t);
    // Expire by id alone: the age cutoff is pinned before every snapshot.
    let action = tx.expire_snapshots().expire_snapshot_ids(removed.clone()).expire_older_than_ms(0).retain_last(1);
    let tx = action.apply(tx).map_err(|e| IcebergError::iceberg(table, e))?;
    lake.rt.block_on(tx.commit(lake.catalog.as_ref())).map_err(|e| IcebergError::iceberg(table, e))?;
    Ok(Expired { removed, protected, kept })
}
