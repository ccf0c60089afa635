//! Committing a checkpoint's files to the table: one snapshot per
//! checkpoint (an `append` of data files, or a row delta with delete files,
//! `crate::delta`), its summary stamped with `weir.pipeline`,
//! `weir.operator`, `weir.run-id`, `weir.checkpoint-id` and a `weir.commit-id`
//! unique to the attempt. A failed commit is retried only after reloading
//! the table and finding that commit id in none of its snapshots (a commit
//! whose response was lost must not land twice); recovery reads the highest
//! committed checkpoint of the run from the snapshot history, as Flink's
//! IcebergFilesCommitter does with `flink.max-committed-checkpoint-id`.
//!
//! Fault injection for tests: `WEIR_FAULT=iceberg-before-commit:N` aborts
//! the process before the N-th commit of the process (after its checkpoint
//! completed), `iceberg-after-commit:N` right after it landed (and
//! `iceberg-fail-every-snapshot:N`, in `sink.rs`, fails checkpoints).

use std::collections::HashMap;
use std::time::Duration;

use iceberg::spec::DataFile;
use iceberg::table::Table;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::IcebergError;
use crate::catalog::Lake;

pub const PIPELINE: &str = "weir.pipeline";
pub const OPERATOR: &str = "weir.operator";
pub const RUN: &str = "weir.run-id";
pub const CHECKPOINT: &str = "weir.checkpoint-id";
pub const COMMIT: &str = "weir.commit-id";
/// Tasks (comma-separated) whose last files — staged when their input ended,
/// before checkpoint `weir.checkpoint-id` — a recovery committed with it.
pub const ENDED: &str = "weir.ended-tasks";

/// Who commits: a sink of a pipeline in one run (a run lasts across
/// restores from its checkpoints; a fresh start is a new run).
#[derive(Clone, Debug)]
pub struct Stamp {
    pub pipeline: String,
    pub operator: String,
    pub run: String,
}

impl Stamp {
    fn ours(&self, p: &HashMap<String, String>) -> bool {
        p.get(PIPELINE) == Some(&self.pipeline) && p.get(OPERATOR) == Some(&self.operator) && p.get(RUN) == Some(&self.run)
    }

    /// The highest checkpoint of this run committed to `table`.
    pub fn committed(&self, table: &Table) -> Option<u64> {
        table
            .metadata()
            .snapshots()
            .filter(|s| self.ours(&s.summary().additional_properties))
            .filter_map(|s| s.summary().additional_properties.get(CHECKPOINT)?.parse::<u64>().ok())
            .max()
    }

    /// Tasks whose last files a recovery from `checkpoint` of this run
    /// committed (the `weir.ended-tasks` of its snapshots).
    pub fn ended(&self, table: &Table, checkpoint: u64) -> Vec<u32> {
        let at = checkpoint.to_string();
        table
            .metadata()
            .snapshots()
            .map(|s| &s.summary().additional_properties)
            .filter(|p| self.ours(p) && p.get(CHECKPOINT) == Some(&at))
            .filter_map(|p| p.get(ENDED))
            .flat_map(|t| t.split(',').filter_map(|t| t.parse().ok()).collect::<Vec<u32>>())
            .collect()
    }
}

fn landed(table: &Table, commit_id: &str) -> Option<i64> {
    table
        .metadata()
        .snapshots()
        .find(|s| s.summary().additional_properties.get(COMMIT).map(String::as_str) == Some(commit_id))
        .map(|s| s.snapshot_id())
}

enum Retry {
    /// Another writer moved the table between our load and our swap.
    Conflict,
    Weir(IcebergError),
}

static COMMITS: AtomicU64 = AtomicU64::new(0);

pub(crate) fn fault(kind: &str) -> Option<u64> {
    std::env::var("WEIR_FAULT").ok()?.strip_prefix(kind)?.strip_prefix(':')?.parse().ok()
}

/// Commit `files` as checkpoint `checkpoint`'s snapshot (with the last files
/// of the `ended` tasks, at a recovery); the snapshot's id.
pub fn commit(lake: &Lake, stamp: &Stamp, checkpoint: u64, files: Vec<DataFile>, ended: &[u32]) -> Result<i64, IcebergError> {
    let n = COMMITS.fetch_add(1, Ordering::SeqCst) + 1;
    if fault("iceberg-before-commit") == Some(n) {
        tracing::error!(checkpoint, "fault injection: stopping before the Iceberg commit of a completed checkpoint");
        std::process::abort();
    }
    let commit_id = uuid::Uuid::new_v4().to_string();
    let props = HashMap::from([
        (PIPELINE.to_string(), stamp.pipeline.clone()),
        (OPERATOR.to_string(), stamp.operator.clone()),
        (RUN.to_string(), stamp.run.clone()),
        (CHECKPOINT.to_string(), checkpoint.to_string()),
        (COMMIT.to_string(), commit_id.clone()),
    ]);
    let mut props = props;
    if !ended.is_empty() {
        props.insert(ENDED.to_string(), ended.iter().map(u32::to_string).collect::<Vec<_>>().join(","));
    }
    // Delete files need a row-delta commit, which iceberg-rust has none of.
    let delta = files.iter().any(|f| f.content_type() != iceberg::spec::DataContentType::Data);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let table = lake.load()?;
        if let Some(id) = landed(&table, &commit_id) {
            return Ok(id);
        }
        let r = if delta {
            match crate::delta::commit(lake, &table, &files, &props) {
                Ok(Some(id)) => Ok(id),
                Ok(None) => Err(Retry::Conflict),
                Err(e) => Err(Retry::Weir(e)),
            }
        } else {
            let tx = Transaction::new(&table);
            let append = tx.fast_append().add_data_files(files.clone()).set_snapshot_properties(props.clone());
            append
                .apply(tx)
                .and_then(|tx| lake.rt.block_on(tx.commit(lake.catalog.as_ref())))
                .map(|t| landed(&t, &commit_id).or_else(|| t.metadata().current_snapshot_id()).unwrap_or_default())
                .map_err(|e| Retry::Weir(IcebergError::iceberg(&lake.table, e)))
        };
        match r {
            Ok(id) => {
                if fault("iceberg-after-commit") == Some(n) {
                    tracing::error!(checkpoint, "fault injection: stopping right after an Iceberg commit");
                    std::process::abort();
                }
                return Ok(id);
            }
            Err(Retry::Conflict) if attempt < 20 => {
                tracing::info!(table = lake.table, checkpoint, attempt, "another writer committed to the table first; committing on top of it");
            }
            Err(Retry::Conflict) => {
                return Err(IcebergError::data(&lake.table, format!("checkpoint {checkpoint}'s commit lost the race to other writers {attempt} times")));
            }
            Err(Retry::Weir(e)) if attempt < 5 => {
                tracing::warn!(table = lake.table, checkpoint, attempt, "Iceberg commit failed, retrying after checking it did not land: {e}");
                std::thread::sleep(Duration::from_millis(100 << attempt));
            }
            Err(Retry::Weir(e)) => return Err(e),
        }
    }
}
