//! Committing a checkpoint's data files to the table: one `append` snapshot
//! per checkpoint, its summary stamped with `weir.pipeline`,
//! `weir.operator`, `weir.run-id`, `weir.checkpoint-id` and a `weir.commit-id`
//! unique to the attempt. A failed commit is retried only after reloading
//! the table and finding that commit id in none of its snapshots (a commit
//! whose response was lost must not land twice); recovery reads the highest
//! committed checkpoint of the run from the snapshot history, as Flink's
//! IcebergFilesCommitter does with `flink.max-committed-checkpoint-id`.
//!
//! Fault injection for tests: `WEIR_FAULT=iceberg-before-commit:N` aborts
//! the process before the N-th commit of the process (after its checkpoint
//! completed), `iceberg-after-commit:N` right after it landed.

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
}

fn landed(table: &Table, commit_id: &str) -> Option<i64> {
    table
        .metadata()
        .snapshots()
        .find(|s| s.summary().additional_properties.get(COMMIT).map(String::as_str) == Some(commit_id))
        .map(|s| s.snapshot_id())
}

static COMMITS: AtomicU64 = AtomicU64::new(0);

fn fault(kind: &str) -> Option<u64> {
    std::env::var("WEIR_FAULT").ok()?.strip_prefix(kind)?.strip_prefix(':')?.parse().ok()
}

/// Commit `files` as checkpoint `checkpoint`'s snapshot; the snapshot's id.
pub fn commit(lake: &Lake, stamp: &Stamp, checkpoint: u64, files: Vec<DataFile>) -> Result<i64, IcebergError> {
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
    let mut attempt = 0;
    loop {
        attempt += 1;
        let table = lake.load()?;
        if let Some(id) = landed(&table, &commit_id) {
            return Ok(id);
        }
        let tx = Transaction::new(&table);
        let append = tx.fast_append().add_data_files(files.clone()).set_snapshot_properties(props.clone());
        let r = append
            .apply(tx)
            .and_then(|tx| lake.rt.block_on(tx.commit(&lake.catalog)));
        match r {
            Ok(t) => {
                let id = landed(&t, &commit_id).or_else(|| t.metadata().current_snapshot_id()).unwrap_or_default();
                if fault("iceberg-after-commit") == Some(n) {
                    tracing::error!(checkpoint, "fault injection: stopping right after an Iceberg commit");
                    std::process::abort();
                }
                return Ok(id);
            }
            Err(e) if attempt < 5 => {
                tracing::warn!(table = lake.table, checkpoint, attempt, "Iceberg commit failed, retrying after checking it did not land: {e}");
                std::thread::sleep(Duration::from_millis(100 << attempt));
            }
            Err(e) => return Err(IcebergError::iceberg(&lake.table, e)),
        }
    }
}
