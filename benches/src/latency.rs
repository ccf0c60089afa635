//! End-to-end latency at a fixed input rate: a paced source stamps each record
//! with its creation time, the sink measures how long it took to arrive.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use weir_engine::*;

/// Emits `count` records at `rate` per second; the value's first 8 bytes are
/// the nanoseconds since `base` when the record was made.
pub struct Paced {
    pub rate: f64,
    pub count: u64,
    pub keys: u64,
    pub base: Instant,
}

impl SourceFactory for Paced {
    fn create(&self, _: &TaskContext) -> Result<Box<dyn Source>, SourceError> {
        Ok(Box::new(PacedIter { rate: self.rate, count: self.count, keys: self.keys, base: self.base, start: Instant::now(), sent: 0 }))
    }
}

struct PacedIter {
    rate: f64,
    count: u64,
    keys: u64,
    base: Instant,
    start: Instant,
    sent: u64,
}

impl Source for PacedIter {
    fn poll(&mut self, out: &mut RecordBatch, max: usize) -> Result<SourcePoll, SourceError> {
        if self.sent >= self.count {
            return Ok(SourcePoll::Exhausted);
        }
        let due = ((self.start.elapsed().as_secs_f64() * self.rate) as u64).min(self.count);
        if due <= self.sent {
            let next = Duration::from_secs_f64((self.sent + 1) as f64 / self.rate);
            return Ok(SourcePoll::Pending(next.saturating_sub(self.start.elapsed()).min(Duration::from_millis(1))));
        }
        let mut value = [0u8; 32];
        for _ in 0..(due - self.sent).min(max as u64) {
            let stamp = self.base.elapsed().as_nanos() as u64;
            value[..8].copy_from_slice(&stamp.to_le_bytes());
            let key = format!("k{}", self.sent % self.keys);
            out.push(key.as_bytes(), &value, NO_TIMESTAMP, Origin::at(self.sent));
            self.sent += 1;
        }
        Ok(SourcePoll::Ready)
    }
}

/// Records each record's latency in nanoseconds.
pub struct Latencies {
    pub base: Instant,
    pub samples: Arc<Mutex<Vec<u64>>>,
}

impl SinkFactory for Latencies {
    fn create(&self, _: &TaskContext) -> Result<Box<dyn Sink>, SinkError> {
        Ok(Box::new(Latencies { base: self.base, samples: self.samples.clone() }))
    }
}

impl Sink for Latencies {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        let now = self.base.elapsed().as_nanos() as u64;
        let mut s = self.samples.lock().expect("samples");
        for r in batch.rows() {
            let stamp = u64::from_le_bytes(r.value[..8].try_into().expect("8-byte stamp"));
            s.push(now.saturating_sub(stamp));
        }
        Ok(())
    }
}

/// (p50, p99, max) in microseconds.
pub fn percentiles(mut samples: Vec<u64>) -> (f64, f64, f64) {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize] as f64 / 1e3;
    (at(0.5), at(0.99), at(1.0))
}
