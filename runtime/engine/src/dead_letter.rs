//! Dead letters: what a node does with a record it fails on (`on_error`).
//!
//! `fail` (the default) fails the job, as before. `skip` and `dead-letter`
//! isolate the record: an operator's failed call is undone and the rest of
//! its batch runs again without the record; a source leaves out a record it
//! cannot decode (or take the event time of). With `dead-letter` the record
//! goes, wrapped in an envelope naming the error, the node, the plugin and
//! the source position, to the node's side output `<node>.dead-letter`, in
//! the same stream as the node's output, so checkpoints cover it exactly
//! once. A budget per task (`max_dead_letters_per_minute`) turns a storm of
//! bad records back into a failure.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::batch::{Origin, RecordBatch};

/// The side output that dead letters go to.
pub const DEAD_LETTER_OUTPUT: &str = "dead-letter";

/// What a node does with a record it fails on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnError {
    #[default]
    Fail,
    Skip,
    DeadLetter,
}

impl OnError {
    pub fn name(self) -> &'static str {
        match self {
            OnError::Fail => "fail",
            OnError::Skip => "skip",
            OnError::DeadLetter => "dead-letter",
        }
    }

    /// Whether failing records are taken out instead of failing the job.
    pub fn isolates(self) -> bool {
        self != OnError::Fail
    }
}

/// A node's `on_error` with its budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorPolicy {
    pub on_error: OnError,
    /// Records a task may skip or dead-letter within any minute before it fails.
    pub max_per_minute: u32,
}

impl ErrorPolicy {
    pub const DEFAULT_MAX_PER_MINUTE: u32 = 1000;
}

impl Default for ErrorPolicy {
    fn default() -> Self {
        ErrorPolicy { on_error: OnError::Fail, max_per_minute: Self::DEFAULT_MAX_PER_MINUTE }
    }
}

/// A record a source left out, with why (a source's own decoding errors).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub timestamp: i64,
    /// As in a batch: the engine fills `source`.
    pub origin: Origin,
    pub error: String,
}

/// Counts dead letters over the last minute in one-second buckets (constant
/// memory whatever the budget).
#[derive(Debug)]
pub(crate) struct Budget {
    max: u32,
    start: Instant,
    /// Dead letters per second, for the 60 seconds up to `second`.
    buckets: [u32; 60],
    second: u64,
}

impl Budget {
    pub fn new(max: u32) -> Self {
        Budget { max, start: Instant::now(), buckets: [0; 60], second: 0 }
    }

    /// Count one; false once more than `max` fell within the last minute.
    pub fn take(&mut self) -> bool {
        self.take_at(self.start.elapsed())
    }

    fn take_at(&mut self, since_start: Duration) -> bool {
        let now = since_start.as_secs();
        if now >= self.second + 60 {
            self.buckets = [0; 60];
        } else {
            for s in self.second + 1..=now {
                self.buckets[(s % 60) as usize] = 0;
            }
        }
        self.second = self.second.max(now);
        self.buckets[(now % 60) as usize] += 1;
        self.buckets.iter().map(|&b| u64::from(b)).sum::<u64>() <= u64::from(self.max)
    }
}

/// Bounds the warning lines dead letters write: the first [`LogLimit::LINES`]
/// of each [`LogLimit::WINDOW`] get a line each; the rest are counted and
/// summed up in one line when the next window opens (a storm of bad records
/// must not flood the log, nor block a process whose stderr is a pipe).
pub(crate) struct LogLimit {
    window_start: Instant,
    lines: u32,
    suppressed: u64,
}

/// What [`LogLimit::admit`] says about one failure.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LogLine {
    /// Write its line; `earlier` failures went unlogged in the window before.
    Write { earlier: u64 },
    /// Count it without a line.
    Suppress,
}

impl LogLimit {
    pub const LINES: u32 = 10;
    pub const WINDOW: Duration = Duration::from_secs(10);

    pub fn new() -> Self {
        LogLimit { window_start: Instant::now(), lines: 0, suppressed: 0 }
    }

    pub fn admit(&mut self) -> LogLine {
        self.admit_at(Instant::now())
    }

    fn admit_at(&mut self, now: Instant) -> LogLine {
        let mut earlier = 0;
        if now.duration_since(self.window_start) >= Self::WINDOW {
            self.window_start = now;
            self.lines = 0;
            earlier = std::mem::take(&mut self.suppressed);
        }
        if self.lines < Self::LINES {
            self.lines += 1;
            LogLine::Write { earlier }
        } else {
            self.suppressed += 1;
            LogLine::Suppress
        }
    }
}

/// What a dead letter says about where its record failed.
pub(crate) struct Failure<'a> {
    pub node: &'a str,
    pub task: u32,
    /// `name@version` of the plugin, for operators that run one.
    pub plugin: Option<&'a str>,
    /// The source that read the record and its position there, as messages name it.
    pub source: Option<(&'a str, String)>,
    pub error: &'a str,
}

/// The dead letter of row `i` of `batch`: the record's key, its timestamp and
/// origin, and as value a JSON envelope with the error and the record's value
/// (as JSON when it is JSON, else as text, else as hex).
pub(crate) fn push_dead_letter(out: &mut RecordBatch, batch: &RecordBatch, i: usize, f: &Failure<'_>) {
    let mut env = serde_json::Map::new();
    env.insert("error".into(), f.error.into());
    env.insert("node".into(), f.node.into());
    env.insert("task".into(), f.task.into());
    if let Some(p) = f.plugin {
        env.insert("plugin".into(), p.into());
    }
    if let Some((name, at)) = &f.source {
        env.insert("source".into(), (*name).into());
        env.insert("position".into(), at.clone().into());
    }
    let o = batch.origins[i];
    env.insert("split".into(), o.split.into());
    env.insert("offset".into(), o.offset.into());
    let (name, v) = bytes_field("key", batch.key(i));
    env.insert(name, v);
    let (name, v) = bytes_field("value", batch.value(i));
    env.insert(name, v);
    let value = serde_json::to_vec(&serde_json::Value::Object(env)).expect("a JSON map serialises");
    out.push(batch.key(i), &value, batch.timestamps[i], o);
}

/// `value` as JSON, `value_text` as a string, or `value_hex`.
fn bytes_field(name: &str, bytes: &[u8]) -> (String, serde_json::Value) {
    if name == "value"
        && let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes)
    {
        return (name.into(), v);
    }
    match std::str::from_utf8(bytes) {
        Ok(s) if name == "key" => (name.into(), s.into()),
        Ok(s) => (format!("{name}_text"), s.into()),
        Err(_) => {
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            (format!("{name}_hex"), hex.into())
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn log_lines_are_bounded_per_window_and_the_rest_summed_up() {
        let mut l = LogLimit::new();
        let t0 = l.window_start;
        for _ in 0..LogLimit::LINES {
            assert_eq!(l.admit_at(t0), LogLine::Write { earlier: 0 });
        }
        for _ in 0..25 {
            assert_eq!(l.admit_at(t0 + Duration::from_secs(9)), LogLine::Suppress);
        }
        assert_eq!(l.admit_at(t0 + LogLimit::WINDOW), LogLine::Write { earlier: 25 });
        assert_eq!(l.admit_at(t0 + LogLimit::WINDOW), LogLine::Write { earlier: 0 });
    }

    use super::*;

    #[test]
    fn the_budget_counts_the_last_minute() {
        let mut b = Budget::new(3);
        assert!(b.take_at(Duration::from_secs(0)));
        assert!(b.take_at(Duration::from_secs(10)));
        assert!(b.take_at(Duration::from_secs(59)));
        assert!(!b.take_at(Duration::from_secs(59)), "a fourth within the minute");
        // Second 0's and 10's have left the window at 70: 59, 59 and this one.
        assert!(b.take_at(Duration::from_secs(70)));
        assert!(!b.take_at(Duration::from_secs(71)));
        assert!(b.take_at(Duration::from_secs(1000)), "a long pause empties it");
    }

    #[test]
    fn an_envelope_keeps_the_record_and_names_the_failure() {
        let mut batch = RecordBatch::default();
        batch.push(b"k1", br#"{"n":1}"#, 5, Origin { source: 0, split: 2, offset: 7 });
        batch.push(b"k2", b"not json", 6, Origin { source: 0, split: 0, offset: 8 });
        batch.push(&[0xff], &[0xfe, 0x00], 7, Origin { source: 0, split: 0, offset: 9 });
        let mut out = RecordBatch::default();
        let f = Failure { node: "parse", task: 1, plugin: Some("p@1.0.0"), source: Some(("in", "line 7".into())), error: "boom" };
        for i in 0..3 {
            push_dead_letter(&mut out, &batch, i, &f);
        }
        let v: Vec<serde_json::Value> = (0..3).map(|i| serde_json::from_slice(out.value(i)).unwrap()).collect();
        assert_eq!(
            v[0],
            serde_json::json!({"error": "boom", "node": "parse", "task": 1, "plugin": "p@1.0.0", "source": "in",
                "position": "line 7", "split": 2, "offset": 7, "key": "k1", "value": {"n": 1}})
        );
        assert_eq!(v[1]["value_text"], "not json");
        assert_eq!(v[2]["key_hex"], "ff");
        assert_eq!(v[2]["value_hex"], "fe00");
        assert_eq!((out.key(0), out.timestamps[1], out.origins[2].offset), (&b"k1"[..], 6, 9));
    }
}
