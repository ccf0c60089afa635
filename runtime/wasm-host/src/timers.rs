//! Per-task timer service: timers per (key, time), deduplicated, in time order.

use std::collections::BTreeSet;

#[derive(Default)]
pub(crate) struct TimerService {
    event: BTreeSet<(i64, Vec<u8>)>,
    processing: BTreeSet<(i64, Vec<u8>)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Domain {
    Event,
    Processing,
}

impl TimerService {
    fn set(&mut self, d: Domain) -> &mut BTreeSet<(i64, Vec<u8>)> {
        match d {
            Domain::Event => &mut self.event,
            Domain::Processing => &mut self.processing,
        }
    }

    pub fn register(&mut self, d: Domain, time: i64, key: &[u8]) {
        self.set(d).insert((time, key.to_vec()));
    }

    pub fn delete(&mut self, d: Domain, time: i64, key: &[u8]) {
        self.set(d).remove(&(time, key.to_vec()));
    }

    /// Remove and return up to `max` timers of domain `d` due at `now`, in time order.
    pub fn due(&mut self, d: Domain, now: i64, max: usize) -> Vec<(i64, Vec<u8>)> {
        let set = self.set(d);
        let mut out = Vec::new();
        while out.len() < max {
            match set.first() {
                Some((t, _)) if *t <= now => out.push(set.pop_first().expect("first")),
                _ => break,
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_dedup_and_fire_in_order() {
        let mut t = TimerService::default();
        t.register(Domain::Event, 20, b"b");
        t.register(Domain::Event, 10, b"a");
        t.register(Domain::Event, 10, b"a");
        t.register(Domain::Event, 30, b"c");
        t.delete(Domain::Event, 30, b"c");
        t.register(Domain::Processing, 5, b"p");
        assert_eq!(t.due(Domain::Event, 15, 100), vec![(10, b"a".to_vec())]);
        assert_eq!(t.due(Domain::Event, i64::MAX, 100), vec![(20, b"b".to_vec())]);
        assert_eq!(t.due(Domain::Event, i64::MAX, 100), vec![]);
        assert_eq!(t.due(Domain::Processing, 4, 100), vec![]);
        assert_eq!(t.due(Domain::Processing, 5, 100), vec![(5, b"p".to_vec())]);
    }
}
