//! A row-delta commit: data files and delete files (equality and position)
//! added as one snapshot, which iceberg-rust 0.10 cannot make (its only
//! snapshot-producing action, fast append, refuses delete files). Built from
//! its public parts, as Iceberg's Java `RowDelta` does: a data manifest and a
//! delete manifest of the new files, a manifest list of those and the parent
//! snapshot's manifests, a snapshot of the table's next sequence number
//! (equality deletes apply to data of lower sequence numbers, position deletes
//! to data of the same one too), and the updates that add it as the main
//! branch's head if the head is still its parent, handed to the catalog's
//! compare-and-swap (`Lake::commit_updates`). A writer that committed first
//! makes the swap fail; the caller reloads the table and tries again.

use std::collections::HashMap;

use iceberg::spec::{
    DataContentType, DataFile, ManifestListWriter, ManifestWriterBuilder, Operation, Snapshot, SnapshotReference, SnapshotRetention,
    SnapshotSummaryCollector, Summary, MAIN_BRANCH,
};
use iceberg::table::Table;
use iceberg::{Result, TableRequirement, TableUpdate};

use crate::IcebergError;
use crate::catalog::Lake;

/// Commit `files` with summary properties `props`; the new snapshot's id, or
/// `None` when another writer moved the table first.
pub fn commit(lake: &Lake, table: &Table, files: &[DataFile], props: &HashMap<String, String>) -> std::result::Result<Option<i64>, IcebergError> {
    let snapshot = lake.rt.block_on(stage(table, files, props)).map_err(|e| IcebergError::iceberg(&lake.table, e))?;
    let id = snapshot.snapshot_id();
    let (requirements, updates) = onto_main(table, snapshot);
    Ok(lake.commit_updates(table, requirements, updates)?.then_some(id))
}

/// The requirements and updates that make `snapshot` the head of `table`'s
/// main branch if the head is still the one `table` has.
pub(crate) fn onto_main(table: &Table, snapshot: Snapshot) -> (Vec<TableRequirement>, Vec<TableUpdate>) {
    let m = table.metadata();
    let id = snapshot.snapshot_id();
    let requirements = vec![
        TableRequirement::UuidMatch { uuid: m.uuid() },
        TableRequirement::RefSnapshotIdMatch { r#ref: MAIN_BRANCH.to_string(), snapshot_id: m.current_snapshot_id() },
    ];
    let updates = vec![
        TableUpdate::AddSnapshot { snapshot },
        TableUpdate::SetSnapshotRef {
            ref_name: MAIN_BRANCH.to_string(),
            reference: SnapshotReference::new(id, SnapshotRetention::branch(None, None, None)),
        },
    ];
    (requirements, updates)
}

/// A snapshot id that `table` has not used.
pub(crate) fn unique_id(table: &Table) -> i64 {
    loop {
        let (a, b) = uuid::Uuid::new_v4().as_u64_pair();
        let id = ((a ^ b) & (i64::MAX as u64)) as i64;
        if id != 0 && table.metadata().snapshots().all(|s| s.snapshot_id() != id) {
            return id;
        }
    }
}

/// Write the manifests and the manifest list of the commit; its snapshot.
async fn stage(table: &Table, files: &[DataFile], props: &HashMap<String, String>) -> Result<Snapshot> {
    let m = table.metadata();
    let io = table.file_io();
    let id = unique_id(table);
    let seq = m.next_sequence_number();
    let attempt = uuid::Uuid::new_v4();
    let schema = m.current_schema().clone();
    let spec = m.default_partition_spec().as_ref().clone();
    let (data, deletes): (Vec<&DataFile>, Vec<&DataFile>) = files.iter().partition(|f| f.content_type() == DataContentType::Data);

    let mut manifests = Vec::new();
    for (n, (group, is_deletes)) in [(&data, false), (&deletes, true)].into_iter().enumerate() {
        if group.is_empty() {
            continue;
        }
        let path = format!("{}/metadata/{attempt}-m{n}.avro", m.location());
        let b = ManifestWriterBuilder::new(io.new_output(path)?, Some(id), schema.clone(), spec.clone());
        let mut w = if is_deletes { b.build_v2_deletes() } else { b.build_v2_data() };
        for f in group {
            w.add_file((*f).clone(), seq)?;
        }
        manifests.push(w.write_manifest_file().await?);
    }
    let parent = m.current_snapshot();
    if let Some(s) = parent {
        let list = table.manifest_list_reader(s).load().await?;
        manifests.extend(
            list.entries().iter().filter(|e| e.has_added_files() || e.has_existing_files() || e.has_deleted_files()).cloned(),
        );
    }
    let list_path = format!("{}/metadata/snap-{id}-0-{attempt}.avro", m.location());
    let mut list = ManifestListWriter::v2(io.new_output(&list_path)?.writer().await?, id, parent.map(|s| s.snapshot_id()), seq);
    list.add_manifests(manifests.into_iter())?;
    list.close().await?;

    let mut collect = SnapshotSummaryCollector::default();
    for f in files {
        collect.add_file(f, schema.clone(), m.default_partition_spec().clone());
    }
    let added = collect.build();
    let mut summary = props.clone();
    summary.extend(added.clone());
    add_totals(&mut summary, &added, parent.map(|s| &s.summary().additional_properties));
    let operation = match (data.is_empty(), deletes.is_empty()) {
        (false, true) => Operation::Append,
        (true, false) => Operation::Delete,
        _ => Operation::Overwrite,
    };
    Ok(Snapshot::builder()
        .with_snapshot_id(id)
        .with_parent_snapshot_id(parent.map(|s| s.snapshot_id()))
        .with_sequence_number(seq)
        .with_timestamp_ms(now_ms().max(m.last_updated_ms() + 1))
        .with_manifest_list(list_path)
        .with_summary(Summary { operation, additional_properties: summary })
        .with_schema_id(m.current_schema_id())
        .build())
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// The summary's `total-*` counts: the parent's plus what this commit adds.
fn add_totals(summary: &mut HashMap<String, String>, added: &HashMap<String, String>, parent: Option<&HashMap<String, String>>) {
    let num = |m: Option<&HashMap<String, String>>, k: &str| m.and_then(|m| m.get(k)).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    for (total, add) in [
        ("total-data-files", "added-data-files"),
        ("total-delete-files", "added-delete-files"),
        ("total-records", "added-records"),
        ("total-files-size", "added-files-size"),
        ("total-position-deletes", "added-position-deletes"),
        ("total-equality-deletes", "added-equality-deletes"),
    ] {
        summary.insert(total.to_string(), (num(parent, total) + num(Some(added), add)).to_string());
    }
}
