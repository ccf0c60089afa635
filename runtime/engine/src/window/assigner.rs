//! Window assignment: the windows of a record's event time.

/// A window of event time, `[start, end)` in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct Bounds {
    pub start: i64,
    pub end: i64,
}

impl Bounds {
    /// The last event time in the window; the window fires when the
    /// watermark reaches it (as Flink's `maxTimestamp`).
    pub fn max_timestamp(&self) -> i64 {
        self.end - 1
    }

    /// Whether two session windows touch or overlap (so they merge).
    pub fn touches(&self, other: &Bounds) -> bool {
        self.start <= other.end && other.start <= self.end
    }

    pub fn cover(&self, other: &Bounds) -> Bounds {
        Bounds { start: self.start.min(other.start), end: self.end.max(other.end) }
    }
}

/// The shape of a window operator's windows. Durations are milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum WindowKind {
    /// Back-to-back windows of `size`, aligned to the epoch.
    Tumbling { size: i64 },
    /// Windows of `size` starting every `slide` (a record is in `size / slide` of them).
    Sliding { size: i64, slide: i64 },
    /// Per key, records closer than `gap` to each other share a window.
    Session { gap: i64 },
}

/// A window operator's settings.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WindowSpec {
    pub kind: WindowKind,
    /// How long after its end (in event time) a window still takes late
    /// records, each batch of which fires it again with the updated result.
    pub allowed_lateness: i64,
    /// The side output records later than that go to.
    pub late_output: String,
}

impl WindowSpec {
    /// The default name of the late side output.
    pub const DEFAULT_LATE_OUTPUT: &'static str = "late";

    /// The event time at which a window's state is purged.
    pub fn cleanup_time(&self, w: &Bounds) -> i64 {
        w.max_timestamp().saturating_add(self.allowed_lateness)
    }

    /// Whether a window is past its allowed lateness at `watermark`.
    pub fn is_late(&self, w: &Bounds, watermark: i64) -> bool {
        self.cleanup_time(w) <= watermark
    }
}

impl WindowKind {
    /// The windows of a record at event time `ts`, earliest first. A session
    /// record's window is `[ts, ts + gap)`, to be merged with its key's others.
    pub fn assign(&self, ts: i64) -> Vec<Bounds> {
        match *self {
            WindowKind::Tumbling { size } => {
                let start = ts - ts.rem_euclid(size);
                vec![Bounds { start, end: start.saturating_add(size) }]
            }
            WindowKind::Sliding { size, slide } => {
                let last = ts - ts.rem_euclid(slide);
                let mut out = Vec::with_capacity((size / slide) as usize + 1);
                let mut start = last;
                while start > ts - size {
                    out.push(Bounds { start, end: start.saturating_add(size) });
                    start -= slide;
                }
                out.reverse();
                out
            }
            WindowKind::Session { gap } => vec![Bounds { start: ts, end: ts.saturating_add(gap) }],
        }
    }

    pub fn is_session(&self) -> bool {
        matches!(self, WindowKind::Session { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(start: i64, end: i64) -> Bounds {
        Bounds { start, end }
    }

    #[test]
    fn tumbling_windows_align_to_the_epoch_also_before_it() {
        let t = WindowKind::Tumbling { size: 60 };
        assert_eq!(t.assign(0), vec![b(0, 60)]);
        assert_eq!(t.assign(59), vec![b(0, 60)]);
        assert_eq!(t.assign(60), vec![b(60, 120)]);
        assert_eq!(t.assign(-1), vec![b(-60, 0)]);
    }

    #[test]
    fn sliding_windows_hold_a_record_size_over_slide_times() {
        let s = WindowKind::Sliding { size: 30, slide: 10 };
        assert_eq!(s.assign(25), vec![b(0, 30), b(10, 40), b(20, 50)]);
        assert_eq!(s.assign(30), vec![b(10, 40), b(20, 50), b(30, 60)]);
        // A slide that does not divide the size.
        let s = WindowKind::Sliding { size: 25, slide: 10 };
        assert_eq!(s.assign(24), vec![b(0, 25), b(10, 35), b(20, 45)]);
        assert_eq!(s.assign(25), vec![b(10, 35), b(20, 45)]);
    }

    #[test]
    fn lateness_and_cleanup() {
        let spec = WindowSpec { kind: WindowKind::Tumbling { size: 60 }, allowed_lateness: 30, late_output: "late".into() };
        let w = b(0, 60);
        assert_eq!(w.max_timestamp(), 59);
        assert_eq!(spec.cleanup_time(&w), 89);
        assert!(!spec.is_late(&w, 88));
        assert!(spec.is_late(&w, 89));
        assert!(b(0, 10).touches(&b(10, 20)));
        assert!(!b(0, 10).touches(&b(11, 20)));
    }
}
