//! Barrier alignment of a task fed by a channel, as a state machine without
//! I/O: messages from the task's producers go in, what the task must do comes
//! out, in order.
//!
//! After a producer's barrier `n`, that producer's messages are held back
//! until every live producer has sent barrier `n`; then the task snapshots
//! for `n` and the held messages are handled, in their order, before anything
//! read later. An ended producer counts as aligned. Watermarks are combined
//! over the producers (the minimum over live, non-idle ones).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::batch::RecordBatch;
use crate::error::EngineError;
use crate::event_time::WatermarkTracker;
use crate::transport::{Body, Message};

/// What the task does with a message.
#[derive(Debug, PartialEq)]
pub(crate) enum Step {
    Process(RecordBatch),
    /// The task's watermark advanced.
    Watermark(i64),
    /// Nothing (the message was held back, or it changed no watermark).
    Nothing,
}

pub(crate) struct Aligner {
    producers: usize,
    live: usize,
    ended: Vec<bool>,
    blocked: Vec<bool>,
    aligning: Option<u64>,
    /// Messages of blocked producers, in arrival order.
    held: VecDeque<Message>,
    /// Messages to handle before reading the channel again.
    replay: VecDeque<Message>,
    watermarks: WatermarkTracker,
    /// When the first barrier of the checkpoint being aligned arrived.
    started: Option<Instant>,
    /// How long the last alignment took (first barrier to last).
    alignment: Duration,
}

impl Aligner {
    pub fn new(producers: usize) -> Self {
        Aligner {
            producers,
            live: producers,
            ended: vec![false; producers],
            blocked: vec![false; producers],
            aligning: None,
            held: VecDeque::new(),
            replay: VecDeque::new(),
            watermarks: WatermarkTracker::new(producers),
            started: None,
            alignment: Duration::ZERO,
        }
    }

    /// How long the last aligned checkpoint waited, from its first barrier
    /// to its last (the time a producer's input was held back).
    pub fn alignment(&self) -> Duration {
        self.alignment
    }

    /// Some producer has not ended yet.
    pub fn live(&self) -> bool {
        self.live > 0
    }

    /// The next message to handle that is not on the channel.
    pub fn replayed(&mut self) -> Option<Message> {
        self.replay.pop_front()
    }

    /// Whether data batches may be merged with what is queued behind them
    /// (not while aligning or replaying: that would reorder messages).
    pub fn may_coalesce(&self) -> bool {
        self.aligning.is_none() && self.replay.is_empty()
    }

    /// A message read behind a data batch while coalescing: handle it next.
    pub fn put_back(&mut self, msg: Message) {
        self.replay.push_back(msg);
    }

    /// Handle one message.
    pub fn accept(&mut self, msg: Message) -> Result<Step, EngineError> {
        let from = msg.from as usize;
        if from >= self.producers {
            return Err(EngineError::Checkpoint(format!(
                "a message from producer {from} on a channel with {} producers",
                self.producers
            )));
        }
        if self.blocked[from] {
            self.held.push_back(msg);
            return Ok(Step::Nothing);
        }
        Ok(match msg.body {
            Body::Data(batch) => Step::Process(batch),
            Body::Watermark(wm) => self.watermarks.watermark(from, wm).map_or(Step::Nothing, Step::Watermark),
            Body::Idle(idle) => self.watermarks.idle(from, idle).map_or(Step::Nothing, Step::Watermark),
            Body::Barrier(epoch) => {
                match self.aligning {
                    Some(a) if a != epoch => {
                        return Err(EngineError::Checkpoint(format!("barrier {epoch} arrived while aligning barrier {a}")));
                    }
                    Some(_) => {}
                    None => {
                        self.aligning = Some(epoch);
                        self.started = Some(Instant::now());
                    }
                }
                self.blocked[from] = true;
                Step::Nothing
            }
            Body::End => {
                if self.ended[from] {
                    return Err(EngineError::Checkpoint(format!("producer {from} ended twice")));
                }
                self.ended[from] = true;
                self.live -= 1;
                self.watermarks.ended(from).map_or(Step::Nothing, Step::Watermark)
            }
        })
    }

    /// Asked after each step: the barrier every live producer has now sent,
    /// if any. The task snapshots for it and passes it on; the messages held
    /// back are handled next, in their order.
    pub fn aligned(&mut self) -> Option<u64> {
        let epoch = self.aligning?;
        if !(0..self.producers).all(|p| self.blocked[p] || self.ended[p]) {
            return None;
        }
        self.aligning = None;
        self.alignment = self.started.take().map_or(Duration::ZERO, |s| s.elapsed());
        self.blocked.fill(false);
        while let Some(m) = self.held.pop_back() {
            self.replay.push_front(m);
        }
        Some(epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::Origin;

    fn data(from: u32, tag: &str) -> Message {
        let mut b = RecordBatch::default();
        b.push(tag.as_bytes(), b"", 0, Origin::default());
        Message { from, body: Body::Data(b) }
    }

    fn msg(from: u32, body: Body) -> Message {
        Message { from, body }
    }

    /// Run messages through an aligner the way a task does (replayed
    /// messages first, alignment asked after each step) and describe what
    /// happens: "a" for data tagged a, "wm:N", "chk:N".
    fn script(producers: usize, input: Vec<Message>) -> Result<Vec<String>, EngineError> {
        let mut a = Aligner::new(producers);
        let mut out = Vec::new();
        let mut input = input.into_iter();
        loop {
            let m = match a.replayed() {
                Some(m) => m,
                None => match input.next() {
                    Some(m) => m,
                    None => break,
                },
            };
            match a.accept(m)? {
                Step::Process(b) => out.push(String::from_utf8(b.key(0).to_vec()).unwrap()),
                Step::Watermark(w) => out.push(format!("wm:{w}")),
                Step::Nothing => {}
            }
            if let Some(e) = a.aligned() {
                out.push(format!("chk:{e}"));
            }
        }
        Ok(out)
    }

    #[test]
    fn a_producer_past_the_barrier_waits_for_the_others() {
        let steps = script(
            2,
            vec![
                data(0, "a1"),
                msg(0, Body::Barrier(1)),
                data(0, "a2"), // after the barrier: held
                data(1, "b1"), // before its barrier: processed
                data(0, "a3"),
                msg(1, Body::Barrier(1)),
                data(1, "b2"),
            ],
        )
        .unwrap();
        assert_eq!(steps, ["a1", "b1", "chk:1", "a2", "a3", "b2"]);
    }

    #[test]
    fn held_messages_keep_their_order_and_include_the_next_barrier() {
        let steps = script(
            2,
            vec![
                msg(0, Body::Barrier(1)),
                data(0, "a1"),
                msg(0, Body::Barrier(2)),
                data(0, "a2"),
                msg(1, Body::Barrier(1)),
                data(1, "b1"),
                msg(1, Body::Barrier(2)),
            ],
        )
        .unwrap();
        assert_eq!(steps, ["chk:1", "a1", "b1", "chk:2", "a2"]);
    }

    #[test]
    fn an_ended_producer_counts_as_aligned() {
        let steps = script(
            3,
            vec![
                msg(2, Body::End),
                msg(0, Body::Barrier(4)),
                data(0, "late"),
                msg(1, Body::End), // the last live producer besides 0 ends: aligned
                data(0, "more"),
                msg(0, Body::End),
            ],
        )
        .unwrap();
        assert_eq!(steps, ["chk:4", "late", "more", "wm:9223372036854775807"]);
    }

    #[test]
    fn watermarks_are_the_minimum_of_the_producers() {
        let steps = script(
            2,
            vec![
                msg(0, Body::Watermark(10)),
                msg(1, Body::Watermark(5)),
                msg(1, Body::Watermark(20)),
                msg(0, Body::Idle(true)),
                msg(0, Body::Watermark(30)), // active again, ahead of producer 1: no change
                msg(1, Body::Watermark(40)),
            ],
        )
        .unwrap();
        assert_eq!(steps, ["wm:5", "wm:10", "wm:20", "wm:30"]);
    }

    #[test]
    fn a_watermark_behind_a_barrier_waits_with_its_producer() {
        let steps = script(
            2,
            vec![
                msg(1, Body::Watermark(1)),
                msg(0, Body::Barrier(1)),
                msg(0, Body::Watermark(100)),
                msg(1, Body::Watermark(50)),
                msg(1, Body::Barrier(1)),
            ],
        )
        .unwrap();
        // Producer 0's watermark 100 is only seen after the snapshot.
        assert_eq!(steps, ["chk:1", "wm:50"]);
    }

    #[test]
    fn protocol_violations_are_errors() {
        let e = script(2, vec![msg(0, Body::Barrier(1)), msg(1, Body::Barrier(2))]).unwrap_err();
        assert!(e.to_string().contains("barrier 2 arrived while aligning barrier 1"), "{e}");
        let e = script(1, vec![msg(3, Body::End)]).unwrap_err();
        assert!(e.to_string().contains("producer 3 on a channel with 1 producers"), "{e}");
        let e = script(2, vec![msg(0, Body::End), msg(0, Body::End)]).unwrap_err();
        assert!(e.to_string().contains("ended twice"), "{e}");
    }
}
