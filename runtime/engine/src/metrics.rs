//! Per-task counters, read by progress reporting and (later) `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters of one parallel task of one node.
#[derive(Debug, Default)]
pub struct NodeMetrics {
    pub records_in: AtomicU64,
    pub records_out: AtomicU64,
    /// Key and value bytes in and out.
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub batches_in: AtomicU64,
    /// Time spent inside the node (operator calls, sink writes, source polls).
    pub busy_nanos: AtomicU64,
    /// Records skipped or sent to the dead-letter output (`on_error`).
    pub dead_letters: AtomicU64,
}

impl NodeMetrics {
    pub(crate) fn add_in(&self, records: usize, bytes: usize) {
        self.records_in.fetch_add(records as u64, Relaxed);
        self.bytes_in.fetch_add(bytes as u64, Relaxed);
        self.batches_in.fetch_add(1, Relaxed);
    }

    pub(crate) fn add_out(&self, records: usize, bytes: usize) {
        self.records_out.fetch_add(records as u64, Relaxed);
        self.bytes_out.fetch_add(bytes as u64, Relaxed);
    }

    pub(crate) fn add_busy(&self, nanos: u64) {
        self.busy_nanos.fetch_add(nanos, Relaxed);
    }
}

/// A node's counters summed over its tasks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeSnapshot {
    pub node: String,
    pub parallelism: u32,
    pub records_in: u64,
    pub records_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub batches_in: u64,
    pub busy_nanos: u64,
    pub dead_letters: u64,
}

impl NodeSnapshot {
    pub(crate) fn sum(node: &str, tasks: &[std::sync::Arc<NodeMetrics>]) -> Self {
        let mut s = NodeSnapshot { node: node.to_string(), parallelism: tasks.len() as u32, ..Default::default() };
        for t in tasks {
            s.records_in += t.records_in.load(Relaxed);
            s.records_out += t.records_out.load(Relaxed);
            s.bytes_in += t.bytes_in.load(Relaxed);
            s.bytes_out += t.bytes_out.load(Relaxed);
            s.batches_in += t.batches_in.load(Relaxed);
            s.busy_nanos += t.busy_nanos.load(Relaxed);
            s.dead_letters += t.dead_letters.load(Relaxed);
        }
        s
    }
}
