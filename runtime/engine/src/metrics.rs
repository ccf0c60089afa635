//! Per-task counters, read by progress reporting, the node's API and
//! `/metrics`.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// No watermark yet.
const NO_WATERMARK: i64 = i64::MIN;

/// Counters of one parallel task of one node.
#[derive(Debug)]
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
    /// Time spent waiting for room downstream (back-pressure).
    pub blocked_nanos: AtomicU64,
    /// The task's event-time watermark (`i64::MIN`: none yet).
    pub watermark: AtomicI64,
    /// At sinks: for each batch written, the time since its first record was
    /// read by its source, summed, and the batches counted.
    pub latency_nanos: AtomicU64,
    pub latency_batches: AtomicU64,
}

impl Default for NodeMetrics {
    fn default() -> Self {
        NodeMetrics {
            records_in: AtomicU64::new(0),
            records_out: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            batches_in: AtomicU64::new(0),
            busy_nanos: AtomicU64::new(0),
            dead_letters: AtomicU64::new(0),
            blocked_nanos: AtomicU64::new(0),
            watermark: AtomicI64::new(NO_WATERMARK),
            latency_nanos: AtomicU64::new(0),
            latency_batches: AtomicU64::new(0),
        }
    }
}

impl NodeMetrics {
    pub(crate) fn add_blocked(&self, d: Duration) {
        self.blocked_nanos.fetch_add(d.as_nanos() as u64, Relaxed);
    }

    pub(crate) fn set_watermark(&self, wm: i64) {
        self.watermark.store(wm, Relaxed);
    }

    pub(crate) fn add_latency(&self, d: Duration) {
        self.latency_nanos.fetch_add(d.as_nanos() as u64, Relaxed);
        self.latency_batches.fetch_add(1, Relaxed);
    }

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
    pub blocked_nanos: u64,
    /// The least watermark of its tasks that have one.
    pub watermark: Option<i64>,
    pub latency_nanos: u64,
    pub latency_batches: u64,
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
            s.blocked_nanos += t.blocked_nanos.load(Relaxed);
            s.latency_nanos += t.latency_nanos.load(Relaxed);
            s.latency_batches += t.latency_batches.load(Relaxed);
            let wm = t.watermark.load(Relaxed);
            if wm != NO_WATERMARK {
                s.watermark = Some(s.watermark.map_or(wm, |w| w.min(wm)));
            }
        }
        s
    }
}
