//! Hot swap: replacing an operator's logic in a running job at a checkpoint
//! barrier, keeping its state.
//!
//! A swap asked for with [`Job::swap`](crate::Job::swap) waits for the next
//! checkpoint the coordinator triggers (it triggers one at once). Every task of
//! the operator switches right after its snapshot for that checkpoint, so each
//! record is processed by exactly one version: records before the barrier by
//! the old logic (and covered by the checkpoint), records after it by the new.
//! The checkpoint taken at the switch is the rollback point: if the new logic
//! fails before a later checkpoint completes, restoring that checkpoint with the
//! old logic loses and duplicates nothing. The coordinator waits at least the
//! probation time before the next checkpoint, so that window is never shorter.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The new logic of an operator, as the operator's own type understands it
/// (a Wasm operator takes its factory).
pub type Replacement = Arc<dyn Any + Send + Sync>;

/// Where a swap is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SwapState {
    /// Waiting for its checkpoint barrier.
    Pending,
    /// Every task of the operator runs the new logic since checkpoint `epoch`.
    Switched { epoch: u64 },
    /// A task could not switch (the job fails; restoring `epoch` with the old
    /// logic is safe).
    Failed { epoch: u64, message: String },
}

struct Request {
    node: String,
    replacement: Replacement,
    probation: Duration,
    ticket: Arc<Ticket>,
}

struct Scheduled {
    epoch: u64,
    replacement: Replacement,
    tasks: u32,
    switched: u32,
    ticket: Arc<Ticket>,
}

/// Follows one swap.
#[derive(Debug)]
pub struct Ticket {
    pub node: String,
    pub requested: Instant,
    state: Mutex<(SwapState, Option<Instant>)>,
    changed: Condvar,
}

impl Ticket {
    pub fn state(&self) -> SwapState {
        self.state.lock().unwrap().0.clone()
    }

    /// When every task had switched.
    pub fn switched_at(&self) -> Option<Instant> {
        self.state.lock().unwrap().1
    }

    fn set(&self, s: SwapState) {
        let mut g = self.state.lock().unwrap();
        if matches!(s, SwapState::Switched { .. }) {
            g.1 = Some(Instant::now());
        }
        g.0 = s;
        self.changed.notify_all();
    }

    /// Wait until the swap is no longer pending, at most `timeout`.
    pub fn wait(&self, timeout: Duration) -> SwapState {
        let g = self.state.lock().unwrap();
        let (g, _) = self.changed.wait_timeout_while(g, timeout, |s| s.0 == SwapState::Pending).unwrap();
        g.0.clone()
    }
}

/// Swaps between the job's handle, the coordinator and the tasks.
#[derive(Default)]
pub(crate) struct SwapBoard {
    inner: Mutex<Board>,
}

#[derive(Default)]
struct Board {
    requested: Vec<Request>,
    scheduled: HashMap<String, Scheduled>,
}

impl SwapBoard {
    pub fn request(&self, node: &str, replacement: Replacement, probation: Duration) -> Arc<Ticket> {
        let ticket = Arc::new(Ticket {
            node: node.to_string(),
            requested: Instant::now(),
            state: Mutex::new((SwapState::Pending, None)),
            changed: Condvar::new(),
        });
        let r = Request { node: node.to_string(), replacement, probation, ticket: ticket.clone() };
        self.inner.lock().unwrap().requested.push(r);
        ticket
    }

    pub fn has_requests(&self) -> bool {
        !self.inner.lock().unwrap().requested.is_empty()
    }

    /// The coordinator triggers checkpoint `epoch`: requested swaps happen at
    /// its barrier. `tasks(node)` is the node's parallelism. Returns the
    /// longest probation asked for.
    pub fn schedule(&self, epoch: u64, tasks: impl Fn(&str) -> u32) -> Option<Duration> {
        let mut b = self.inner.lock().unwrap();
        let mut probation = None;
        for r in std::mem::take(&mut b.requested) {
            // A later request for the same operator replaces an earlier one not yet switched.
            if let Some(old) = b.scheduled.remove(&r.node) {
                old.ticket.set(SwapState::Failed { epoch: old.epoch, message: format!("replaced by a later swap of '{}'", r.node) });
            }
            probation = probation.max(Some(r.probation));
            let s = Scheduled { epoch, replacement: r.replacement, tasks: tasks(&r.node), switched: 0, ticket: r.ticket };
            b.scheduled.insert(r.node, s);
        }
        probation
    }

    /// A task of `node` passes the barrier of `epoch`: the replacement to
    /// switch to, if a swap happens there.
    pub fn due(&self, node: &str, epoch: u64) -> Option<Replacement> {
        let b = self.inner.lock().unwrap();
        b.scheduled.get(node).filter(|s| s.epoch == epoch).map(|s| s.replacement.clone())
    }

    /// A task of `node` switched (or failed to) at `epoch`.
    pub fn report(&self, node: &str, epoch: u64, result: Result<(), String>) {
        let mut b = self.inner.lock().unwrap();
        let Some(s) = b.scheduled.get_mut(node).filter(|s| s.epoch == epoch) else { return };
        match result {
            Ok(()) => {
                s.switched += 1;
                if s.switched == s.tasks {
                    s.ticket.set(SwapState::Switched { epoch });
                    b.scheduled.remove(node);
                }
            }
            Err(message) => {
                s.ticket.set(SwapState::Failed { epoch, message });
                b.scheduled.remove(node);
            }
        }
    }

    /// The checkpoint `epoch` was abandoned (failed, or the job stopped):
    /// swaps scheduled at it did not all happen.
    pub fn abandon(&self, why: &str) {
        let mut b = self.inner.lock().unwrap();
        for (_, s) in b.scheduled.drain() {
            s.ticket.set(SwapState::Failed { epoch: s.epoch, message: why.to_string() });
        }
        for r in b.requested.drain(..) {
            r.ticket.set(SwapState::Failed { epoch: 0, message: why.to_string() });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_swap_happens_at_the_next_triggered_barrier_on_every_task() {
        let board = SwapBoard::default();
        let ticket = board.request("count", Arc::new(2u32), Duration::from_secs(3));
        assert!(board.has_requests());
        assert!(board.due("count", 7).is_none(), "not scheduled yet");
        assert_eq!(board.schedule(7, |n| if n == "count" { 2 } else { 0 }), Some(Duration::from_secs(3)));
        assert!(!board.has_requests());
        assert!(board.due("count", 6).is_none() && board.due("other", 7).is_none());
        let r = board.due("count", 7).expect("due at 7");
        assert_eq!(r.downcast_ref::<u32>(), Some(&2));
        board.report("count", 7, Ok(()));
        assert_eq!(ticket.state(), SwapState::Pending, "one of two tasks");
        board.report("count", 7, Ok(()));
        assert_eq!(ticket.wait(Duration::from_secs(1)), SwapState::Switched { epoch: 7 });
        assert!(ticket.switched_at().is_some());
        assert!(board.due("count", 7).is_none(), "done");
    }

    #[test]
    fn a_failed_task_or_a_stopped_job_fails_the_swap() {
        let board = SwapBoard::default();
        let t = board.request("count", Arc::new(()), Duration::ZERO);
        board.schedule(3, |_| 2);
        board.report("count", 3, Err("open failed".into()));
        assert_eq!(t.state(), SwapState::Failed { epoch: 3, message: "open failed".into() });

        let t = board.request("count", Arc::new(()), Duration::ZERO);
        board.abandon("the job stopped");
        assert_eq!(t.state(), SwapState::Failed { epoch: 0, message: "the job stopped".into() });
    }
}
