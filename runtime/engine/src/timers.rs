//! Per-task timer service: event-time and processing-time timers per (key,
//! time), deduplicated, fired in time order, snapshotted with the task's state
//! and restored by key group. Any operator keeps its timers here (Wasm
//! operators, window operators, SQL operators).

use std::collections::BTreeSet;

use weir_state::keys::key_group;
use weir_state::{KeyGroups, StateError};

/// The timers of one task.
#[derive(Default)]
pub struct TimerService {
    event: BTreeSet<(i64, Vec<u8>)>,
    processing: BTreeSet<(i64, Vec<u8>)>,
}

/// The time a timer is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Domain {
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

    pub fn contains(&self, d: Domain, time: i64, key: &[u8]) -> bool {
        let set = match d {
            Domain::Event => &self.event,
            Domain::Processing => &self.processing,
        };
        set.contains(&(time, key.to_vec()))
    }

    /// How many timers are registered (both domains).
    pub fn len(&self) -> usize {
        self.event.len() + self.processing.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every timer, encoded for a checkpoint.
    pub fn snapshot(&self) -> Vec<u8> {
        let sets = (&self.event, &self.processing);
        postcard::to_allocvec(&sets).expect("timers encode")
    }

    /// Add the timers of the key groups in `groups` from a snapshot.
    /// `file` names the snapshot file in errors.
    pub fn restore(&mut self, bytes: &[u8], groups: &KeyGroups, file: &str) -> Result<(), StateError> {
        type Timers = Vec<(i64, Vec<u8>)>;
        let (event, processing): (Timers, Timers) = postcard::from_bytes(bytes)
            .map_err(|e| StateError::Restore { file: file.to_string(), message: format!("unreadable timers: {e}") })?;
        let mine = |(_, key): &(i64, Vec<u8>)| groups.contains(key_group(key, groups.max_parallelism));
        self.event.extend(event.into_iter().filter(mine));
        self.processing.extend(processing.into_iter().filter(mine));
        Ok(())
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

    #[test]
    fn timers_restore_only_the_key_groups_of_the_task() {
        let mut t = TimerService::default();
        let keys: Vec<Vec<u8>> = (0..200).map(|i| format!("k{i}").into_bytes()).collect();
        for (i, k) in keys.iter().enumerate() {
            t.register(Domain::Event, i as i64, k);
        }
        let snap = t.snapshot();
        let mut total = 0;
        for task in 0..3 {
            let groups = KeyGroups::of_task(task, 3, 128);
            let mut r = TimerService::default();
            r.restore(&snap, &groups, "timers.bin").unwrap();
            let due = r.due(Domain::Event, i64::MAX, 1000);
            assert!(due.iter().all(|(_, k)| groups.contains(key_group(k, 128))));
            total += due.len();
        }
        assert_eq!(total, 200);
    }
}
