//! Event time: timestamps taken from records, watermarks generated at the
//! sources and combined downstream, as in Flink.
//!
//! A source with [`EventTime`] sets each record's timestamp (from a JSON field
//! of its value, or keeps the one the connector gave) and, after each batch,
//! emits the watermark `max timestamp seen - out_of_orderness - 1`: a promise
//! that no later record is older than it (later ones are *late*). A source that
//! has produced nothing for `idle_timeout` is marked idle, so it does not hold
//! back the watermark downstream. A task's watermark is the minimum over its
//! live, non-idle inputs; when it advances, operators see it (event-time
//! timers fire) and it goes downstream. At the end of input the watermark is
//! the end of time.

use std::time::{Duration, Instant};

use crate::batch::{RecordBatch, NO_TIMESTAMP};

/// Event-time settings of a source.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EventTime {
    /// The JSON field (path of object field names) holding each record's event
    /// time in milliseconds since the Unix epoch (a number, or an RFC 3339
    /// string); `None`: keep the timestamps the connector sets.
    pub field: Option<Vec<String>>,
    /// How late records may arrive relative to the latest one (0: monotonic).
    pub out_of_orderness: Duration,
    /// Mark the source idle after this long without records.
    pub idle_timeout: Option<Duration>,
    /// The unit of numeric timestamps in `field`; `None`: milliseconds, and
    /// numbers that look like seconds are refused rather than read as 1970.
    #[serde(default)]
    pub unit: Option<TimeUnit>,
}

/// The unit of numeric epoch timestamps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TimeUnit {
    Seconds,
    Millis,
    Micros,
    Nanos,
}

/// A source task's watermark generator. Records come from splits (a Kafka
/// partition, say: `Origin::split`); each split's greatest timestamp is kept,
/// and the watermark follows the slowest split that is not idle, as Flink's
/// per-partition watermarks do. A source of one split is the same thing with
/// one entry.
pub(crate) struct WatermarkGenerator {
    pub config: EventTime,
    /// The watermark's basis (the slowest active split's greatest timestamp),
    /// recorded in checkpoints.
    pub max_ts: i64,
    splits: std::collections::HashMap<u32, Split>,
    emitted: i64,
    last_record: Instant,
    idle: bool,
}

struct Split {
    max_ts: i64,
    /// When it last had a record (or was first known).
    last: Instant,
}

/// What the generator wants sent downstream.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum WatermarkEvent {
    Watermark(i64),
    Idle(bool),
}

impl WatermarkGenerator {
    pub fn new(config: EventTime, restored_max: Option<i64>) -> Self {
        let max_ts = restored_max.unwrap_or(NO_TIMESTAMP);
        let mut g = WatermarkGenerator {
            config,
            max_ts,
            splits: Default::default(),
            emitted: NO_TIMESTAMP,
            last_record: Instant::now(),
            idle: false,
        };
        // After a restore the watermark goes on from where it was, never back.
        if max_ts != NO_TIMESTAMP {
            g.emitted = g.watermark_of(max_ts);
        }
        g
    }

    fn watermark_of(&self, basis: i64) -> i64 {
        let ooo = self.config.out_of_orderness.as_millis().min(i64::MAX as u128) as i64;
        basis.saturating_sub(ooo).saturating_sub(1)
    }

    /// Take every row's timestamp; rows whose timestamp cannot be read get
    /// none and are listed, in order, with why.
    pub fn assign_each(&self, batch: &mut RecordBatch) -> Vec<(usize, String)> {
        let Some(path) = &self.config.field else { return Vec::new() };
        let mut bad = Vec::new();
        for i in 0..batch.len() {
            batch.timestamps[i] = match timestamp_of(batch.value(i), path, self.config.unit) {
                Ok(t) => t,
                Err(m) => {
                    bad.push((i, m));
                    NO_TIMESTAMP
                }
            };
        }
        bad
    }

    /// After a batch (possibly empty): what to send downstream, if anything.
    /// `splits`, if the source says, are the splits it reads now: a known
    /// split without records holds the watermark back until it has some or
    /// is idle; a split no longer read is forgotten.
    pub fn after_batch(&mut self, batch: &RecordBatch, splits: Option<&[u32]>, out: &mut Vec<WatermarkEvent>) {
        let now = Instant::now();
        if let Some(known) = splits {
            self.splits.retain(|s, _| known.contains(s));
            for &s in known {
                self.splits.entry(s).or_insert(Split { max_ts: NO_TIMESTAMP, last: now });
            }
        }
        for (t, o) in batch.timestamps.iter().zip(&batch.origins) {
            let split = self.splits.entry(o.split).or_insert(Split { max_ts: NO_TIMESTAMP, last: now });
            split.last = now;
            if *t != NO_TIMESTAMP {
                split.max_ts = split.max_ts.max(*t);
            }
        }
        if !batch.is_empty() {
            self.last_record = now;
            if self.idle {
                self.idle = false;
                out.push(WatermarkEvent::Idle(false));
            }
        }
        let idle_after = self.config.idle_timeout;
        let active = self.splits.values().filter(|s| idle_after.is_none_or(|t| now.duration_since(s.last) < t));
        if let Some(basis) = active.map(|s| s.max_ts).min()
            && basis != NO_TIMESTAMP
        {
            self.max_ts = self.max_ts.max(basis);
            let wm = self.watermark_of(self.max_ts);
            if wm > self.emitted {
                self.emitted = wm;
                out.push(WatermarkEvent::Watermark(wm));
            }
        }
        let all_idle = self.splits.values().all(|s| idle_after.is_some_and(|t| now.duration_since(s.last) >= t));
        if let Some(t) = idle_after
            && !self.idle
            && now.duration_since(self.last_record) >= t
            && all_idle
        {
            self.idle = true;
            out.push(WatermarkEvent::Idle(true));
        }
    }
}

/// A task's inputs' watermarks and idleness; the task's watermark is their
/// minimum over live, non-idle inputs.
pub(crate) struct WatermarkTracker {
    inputs: Vec<i64>,
    idle: Vec<bool>,
    ended: Vec<bool>,
    pub current: i64,
}

impl WatermarkTracker {
    pub fn new(inputs: usize) -> Self {
        WatermarkTracker {
            inputs: vec![NO_TIMESTAMP; inputs],
            idle: vec![false; inputs],
            ended: vec![false; inputs],
            current: NO_TIMESTAMP,
        }
    }

    pub fn watermark(&mut self, from: usize, wm: i64) -> Option<i64> {
        self.inputs[from] = self.inputs[from].max(wm);
        self.idle[from] = false;
        self.advance()
    }

    pub fn idle(&mut self, from: usize, idle: bool) -> Option<i64> {
        self.idle[from] = idle;
        self.advance()
    }

    pub fn ended(&mut self, from: usize) -> Option<i64> {
        self.ended[from] = true;
        self.advance()
    }

    /// The new watermark, if it advanced. An ended input is at the end of
    /// time; idle inputs are left out (all idle: no progress).
    fn advance(&mut self) -> Option<i64> {
        let active = (0..self.inputs.len()).filter(|&i| self.ended[i] || !self.idle[i]);
        let min = active.map(|i| if self.ended[i] { i64::MAX } else { self.inputs[i] }).min()?;
        (min > self.current).then(|| {
            self.current = min;
            min
        })
    }
}

/// A record's event time from a JSON field: a number of `unit`s since the
/// epoch (milliseconds by default) or an RFC 3339 string.
pub(crate) fn timestamp_of(value: &[u8], path: &[String], unit: Option<TimeUnit>) -> Result<i64, String> {
    let v: serde_json::Value =
        serde_json::from_slice(value).map_err(|e| format!("value is not JSON ({e}), so it has no timestamp field"))?;
    let mut cur = &v;
    for (depth, name) in path.iter().enumerate() {
        cur = cur.get(name).ok_or_else(|| format!("value has no timestamp field '{}'", path[..=depth].join(".")))?;
    }
    let field = path.join(".");
    match cur {
        serde_json::Value::Number(n) => {
            let v = n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
                .ok_or_else(|| format!("timestamp field '{field}' is {n}, not a number of milliseconds since the epoch"))?;
            match unit {
                // 10^9..10^11 ms is January to March 1970, but seconds of 2001 to 5138.
                None if (1_000_000_000..100_000_000_000).contains(&v) => Err(format!(
                    "timestamp field '{field}' is {v}: as milliseconds that is in January 1970, as seconds it is a recent time; \
                     set the source's timestamp_unit (s or ms) to say which"
                )),
                None | Some(TimeUnit::Millis) => Ok(v),
                Some(TimeUnit::Seconds) => Ok(v.saturating_mul(1000)),
                Some(TimeUnit::Micros) => Ok(v / 1000),
                Some(TimeUnit::Nanos) => Ok(v / 1_000_000),
            }
        }
        serde_json::Value::String(s) => parse_rfc3339(s)
            .ok_or_else(|| format!("timestamp field '{field}' is \"{s}\", not an RFC 3339 time like 2026-01-02T03:04:05Z")),
        other => Err(format!("timestamp field '{field}' is {other}, not a number of milliseconds or an RFC 3339 string")),
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM)` to milliseconds since the epoch.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, sec) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut ms = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let f = &frac[..digits.min(3)];
        ms = f.parse::<i64>().ok()? * 10i64.pow(3 - f.len() as u32);
        rest = &frac[digits..];
    }
    let offset_min = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) && &rest[3..4] == ":" => {
            let m = rest[1..3].parse::<i64>().ok()? * 60 + rest[4..6].parse::<i64>().ok()?;
            if rest.starts_with('-') { -m } else { m }
        }
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, m) = if mo <= 2 { (y - 1, mo + 9) } else { (y, mo - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + h) * 60 + mi - offset_min) * 60_000 + sec * 1000 + ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Origin;

    #[test]
    fn timestamps_from_json_fields() {
        let p = |s: &str| s.split('.').map(String::from).collect::<Vec<_>>();
        assert_eq!(timestamp_of(br#"{"ts":1700000000123}"#, &p("ts"), None), Ok(1_700_000_000_123));
        assert_eq!(timestamp_of(br#"{"e":{"at":"1970-01-01T00:00:01.5Z"}}"#, &p("e.at"), None), Ok(1500));
        assert_eq!(timestamp_of(br#"{"t":"2024-02-29T12:00:00+01:00"}"#, &p("t"), None), Ok(1_709_204_400_000));
        assert_eq!(timestamp_of(br#"{"x":1}"#, &p("ts"), None), Err("value has no timestamp field 'ts'".into()));
        assert_eq!(
            timestamp_of(br#"{"ts":"yesterday"}"#, &p("ts"), None),
            Err("timestamp field 'ts' is \"yesterday\", not an RFC 3339 time like 2026-01-02T03:04:05Z".into())
        );
        assert!(timestamp_of(b"nope", &p("ts"), None).unwrap_err().contains("not JSON"));
        // Epoch seconds are not read as 1970 milliseconds: the unit must be said.
        let e = timestamp_of(br#"{"ts":1700000000}"#, &p("ts"), None).unwrap_err();
        assert!(e.contains("is 1700000000: as milliseconds that is in January 1970") && e.contains("timestamp_unit"), "{e}");
        assert_eq!(timestamp_of(br#"{"ts":1700000000}"#, &p("ts"), Some(TimeUnit::Seconds)), Ok(1_700_000_000_000));
        assert_eq!(timestamp_of(br#"{"ts":1700000000123456}"#, &p("ts"), Some(TimeUnit::Micros)), Ok(1_700_000_000_123));
        assert_eq!(timestamp_of(br#"{"ts":5000}"#, &p("ts"), None), Ok(5000), "small times (tests) stay milliseconds");
    }

    #[test]
    fn bounded_out_of_orderness_watermarks() {
        let mut g = WatermarkGenerator::new(
            EventTime { field: None, out_of_orderness: Duration::from_millis(100), idle_timeout: None, unit: None },
            None,
        );
        let mut b = RecordBatch::default();
        for t in [1000, 1300, 1200] {
            b.push(b"k", b"v", t, Origin::default());
        }
        let mut out = Vec::new();
        g.after_batch(&b, None, &mut out);
        assert_eq!(out, vec![WatermarkEvent::Watermark(1199)]);
        out.clear();
        g.after_batch(&RecordBatch::default(), None, &mut out);
        assert!(out.is_empty(), "no progress, no watermark");
    }

    #[test]
    fn the_watermark_follows_the_slowest_split_and_idle_splits_are_left_out() {
        let mut g = WatermarkGenerator::new(
            EventTime { field: None, out_of_orderness: Duration::ZERO, idle_timeout: Some(Duration::from_millis(30)), unit: None },
            None,
        );
        let batch = |rows: &[(u32, i64)]| {
            let mut b = RecordBatch::default();
            for &(split, t) in rows {
                b.push(b"k", b"v", t, Origin { source: 0, offset: 0, split });
            }
            b
        };
        let mut out = Vec::new();
        // Split 2 is known but has nothing yet: no watermark.
        g.after_batch(&batch(&[(0, 100), (1, 500)]), Some(&[0, 1, 2]), &mut out);
        assert!(out.is_empty(), "{out:?}");
        g.after_batch(&batch(&[(2, 300)]), Some(&[0, 1, 2]), &mut out);
        assert_eq!(out, vec![WatermarkEvent::Watermark(99)], "the slowest split");
        out.clear();
        std::thread::sleep(Duration::from_millis(40));
        // Splits 0 and 2 go idle; 1 has a record: the watermark follows 1.
        g.after_batch(&batch(&[(1, 600)]), Some(&[0, 1, 2]), &mut out);
        assert_eq!(out, vec![WatermarkEvent::Watermark(599)]);
        out.clear();
        // A split no longer read is forgotten.
        g.after_batch(&batch(&[(0, 700)]), Some(&[0]), &mut out);
        assert_eq!(out, vec![WatermarkEvent::Watermark(699)]);
    }

    #[test]
    fn the_task_watermark_is_the_minimum_of_active_inputs() {
        let mut t = WatermarkTracker::new(2);
        assert_eq!(t.watermark(0, 100), None, "input 1 has none yet");
        assert_eq!(t.watermark(1, 50), Some(50));
        assert_eq!(t.watermark(1, 200), Some(100));
        assert_eq!(t.watermark(0, 150), Some(150));
        assert_eq!(t.idle(0, true), Some(200), "an idle input does not hold it back");
        assert_eq!(t.watermark(0, 160), None, "active again, but behind: no regression");
        assert_eq!(t.ended(0), None);
        assert_eq!(t.watermark(1, 300), Some(300));
        assert_eq!(t.idle(1, true), Some(i64::MAX), "only an ended input is left: the end of time");
    }
}
