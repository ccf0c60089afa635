//! Deterministic synthetic events: the same seed gives the same events, at any
//! parallelism. Event `n` (0-based) has key `k<j>` with `j` drawn from the seed
//! and `n`, event time `start_ms + n`, and a JSON value
//! `{"id":n,"key":"k<j>","amount":<0..1000>,"ts":<event time>}`. With
//! `deletes: F`, a change stream as Debezium's `ExtractNewRecordState` writes
//! it: every value also carries `"__deleted":"true"` (a fraction F of the
//! events, drawn from the seed) or `"__deleted":"false"`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use weir_engine::{Origin, RecordBatch, Source, SourceError, SourceFactory, SourcePoll, TaskContext};
use weir_spec::{BuildContext, BuildError, Changelog, Check, RecordShape, SourceConnector, SpecError};

/// A generator source's definition: `type: generator` (`seed`, `count`
/// (omitted: unbounded), `rate`, `keys`, `start_ms`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorSpec {
    #[serde(default)]
    pub seed: u64,
    /// Events in total; `None` for an unbounded stream.
    #[serde(default)]
    pub count: Option<u64>,
    /// Events per second over all tasks; `None` for as fast as possible.
    #[serde(default)]
    pub rate: Option<f64>,
    /// Number of distinct keys.
    #[serde(default = "default_keys")]
    pub keys: u64,
    /// Event time of event 0, in ms since the Unix epoch.
    #[serde(default = "default_start_ms")]
    pub start_ms: i64,
    /// The fraction of events that are deletes of their key (0: none, and no
    /// `__deleted` field).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub deletes: f64,
}

fn is_zero(f: &f64) -> bool {
    *f == 0.0
}

fn default_keys() -> u64 {
    100
}

fn default_start_ms() -> i64 {
    1_700_000_000_000
}

/// The `generator` source type.
pub struct Generators;

/// Most events per second a generator makes.
const MAX_RATE: f64 = 1e9;
/// Most distinct keys.
const MAX_KEYS: u64 = 1 << 40;

impl SourceConnector for Generators {
    type Config = GeneratorSpec;
    const TYPE: &'static str = "generator";

    fn check(&self, g: &GeneratorSpec, cx: &Check<'_>) -> Result<(), SpecError> {
        if let Some(r) = g.rate
            && !(r > 0.0 && r <= MAX_RATE)
        {
            let shown = if r.abs() >= 1e6 { format!("{r:e}") } else { r.to_string() };
            return Err(cx.error("rate", format!("must be a positive number of events per second, at most {MAX_RATE:e}, not {shown}")));
        }
        if !(0.0..=1.0).contains(&g.deletes) {
            return Err(cx.error("deletes", format!("must be a fraction between 0 and 1, not {}", g.deletes)));
        }
        if !(1..=MAX_KEYS).contains(&g.keys) {
            return Err(cx.error("keys", format!("must be between 1 and {MAX_KEYS}, not {}", g.keys)));
        }
        Ok(())
    }

    fn build(&self, g: GeneratorSpec, _: &BuildContext<'_>) -> Result<Arc<dyn SourceFactory>, BuildError> {
        Ok(Arc::new(GeneratorSource(Arc::new(g))))
    }

    fn records(&self, _: &GeneratorSpec) -> RecordShape {
        RecordShape { keyed: Some(true), json: Some(true), described: "generated events", changelog: Changelog::Append }
    }
}

impl Default for GeneratorSpec {
    fn default() -> Self {
        GeneratorSpec { seed: 0, count: Some(1000), rate: None, keys: default_keys(), start_ms: default_start_ms(), deletes: 0.0 }
    }
}

/// The generator as a source.
#[derive(Clone, Debug)]
pub struct GeneratorSource(pub Arc<GeneratorSpec>);

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl GeneratorSpec {
    /// Event `n`: (key, value, event time).
    pub fn event(&self, n: u64, key: &mut Vec<u8>, value: &mut Vec<u8>) -> i64 {
        use std::io::Write;
        let r = splitmix64(self.seed ^ splitmix64(n));
        let k = r % self.keys.max(1);
        let amount = (r >> 32) % 1000;
        let ts = self.start_ms.saturating_add(n as i64);
        key.clear();
        value.clear();
        let _ = write!(key, "k{k}");
        if self.deletes > 0.0 {
            let deleted = ((splitmix64(r ^ 0xde1e_7e5) >> 11) as f64 / (1u64 << 53) as f64) < self.deletes;
            let _ = write!(value, r#"{{"id":{n},"key":"k{k}","amount":{amount},"ts":{ts},"__deleted":"{deleted}"}}"#);
        } else {
            let _ = write!(value, r#"{{"id":{n},"key":"k{k}","amount":{amount},"ts":{ts}}}"#);
        }
        ts
    }
}

impl SourceFactory for GeneratorSource {
    fn create(&self, ctx: &TaskContext) -> Result<Box<dyn Source>, SourceError> {
        Ok(Box::new(Generator {
            spec: self.0.clone(),
            next: u64::from(ctx.task_index),
            step: u64::from(ctx.parallelism),
            started: Instant::now(),
            emitted: 0,
            task_rate: self.0.rate.map(|r| r / f64::from(ctx.parallelism)),
            key: Vec::new(),
            value: Vec::new(),
        }))
    }

    fn describe_offset(&self, offset: u64) -> String {
        format!("event #{offset}")
    }
}

struct Generator {
    spec: Arc<GeneratorSpec>,
    /// The next event number; this task makes every `step`-th event.
    next: u64,
    step: u64,
    started: Instant,
    emitted: u64,
    task_rate: Option<f64>,
    key: Vec<u8>,
    value: Vec<u8>,
}

impl Source for Generator {
    fn poll(&mut self, out: &mut RecordBatch, max_records: usize) -> Result<SourcePoll, SourceError> {
        let mut budget = max_records as u64;
        if let Some(rate) = self.task_rate {
            let due = (self.started.elapsed().as_secs_f64() * rate) as u64;
            let allowed = due.saturating_sub(self.emitted);
            if allowed == 0 {
                let wait = ((self.emitted + 1) as f64 / rate) - self.started.elapsed().as_secs_f64();
                return Ok(SourcePoll::Pending(Duration::from_secs_f64(wait.clamp(0.0, 0.1))));
            }
            budget = budget.min(allowed);
        }
        for _ in 0..budget {
            if self.spec.count.is_some_and(|c| self.next >= c) {
                return Ok(SourcePoll::Exhausted);
            }
            let ts = self.spec.event(self.next, &mut self.key, &mut self.value);
            out.push(&self.key, &self.value, ts, Origin::at(self.next));
            self.next += self.step;
            self.emitted += 1;
        }
        Ok(SourcePoll::Ready)
    }

    fn position(&self) -> Option<Vec<u8>> {
        Some(self.next.to_le_bytes().to_vec())
    }

    fn seek(&mut self, position: &[u8]) -> Result<(), SourceError> {
        let b: [u8; 8] = position.try_into().map_err(|_| SourceError::msg("invalid generator position"))?;
        self.next = u64::from_le_bytes(b);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(task: u32, par: u32) -> TaskContext {
        TaskContext {
            pipeline: "p".into(),
            node: "gen".into(),
            task_index: task,
            parallelism: par,
            max_parallelism: 128,
            side_outputs: Arc::new([]),
            restore: None,
            on_error: Default::default(),
        }
    }

    fn all(spec: GeneratorSpec, par: u32) -> Vec<(u64, Vec<u8>)> {
        let g = GeneratorSource(Arc::new(spec));
        let mut events = Vec::new();
        for t in 0..par {
            let mut s = g.create(&ctx(t, par)).unwrap();
            let mut b = RecordBatch::default();
            while s.poll(&mut b, 7).unwrap() != SourcePoll::Exhausted {}
            events.extend(b.rows().map(|r| (r.origin.offset, r.value.to_vec())));
        }
        events.sort();
        events
    }

    #[test]
    fn same_events_at_any_parallelism() {
        let spec = GeneratorSpec { seed: 7, count: Some(100), ..Default::default() };
        let one = all(spec.clone(), 1);
        assert_eq!(one.len(), 100);
        assert_eq!(one, all(spec.clone(), 3));
        assert_ne!(one, all(GeneratorSpec { seed: 8, ..spec }, 1));
        let first = String::from_utf8(one[0].1.clone()).unwrap();
        assert!(first.starts_with(r#"{"id":0,"key":"k"#), "{first}");
        assert!(first.ends_with(r#","ts":1700000000000}"#), "{first}");
    }

    #[test]
    fn deletes_flag_a_fraction_of_the_events() {
        let spec = GeneratorSpec { seed: 3, count: Some(20000), deletes: 0.1, ..Default::default() };
        let events = all(spec.clone(), 2);
        let texts: Vec<String> = events.iter().map(|(_, v)| String::from_utf8(v.clone()).unwrap()).collect();
        let deleted = texts.iter().filter(|t| t.ends_with(r#","__deleted":"true"}"#)).count();
        let kept = texts.iter().filter(|t| t.ends_with(r#","__deleted":"false"}"#)).count();
        assert_eq!(deleted + kept, 20000, "every event carries the flag");
        assert!((1800..2200).contains(&deleted), "about a tenth are deletes: {deleted}");
        // The same events as without deletes, but for the flag.
        let plain = all(GeneratorSpec { deletes: 0.0, ..spec }, 1);
        assert!(texts[7].starts_with(std::str::from_utf8(&plain[7].1[..plain[7].1.len() - 1]).unwrap()));
        assert!(!String::from_utf8_lossy(&plain[7].1).contains("__deleted"));
    }

    #[test]
    fn rate_limits() {
        let spec = GeneratorSpec { count: None, rate: Some(1000.0), ..Default::default() };
        let mut s = GeneratorSource(Arc::new(spec)).create(&ctx(0, 1)).unwrap();
        let mut b = RecordBatch::default();
        assert!(matches!(s.poll(&mut b, 100).unwrap(), SourcePoll::Pending(_)));
        std::thread::sleep(Duration::from_millis(20));
        s.poll(&mut b, 1000).unwrap();
        assert!(b.len() >= 10 && b.len() <= 100, "{} events after ~20 ms at 1000/s", b.len());
    }
}
