//! Isolating failing records (`on_error: skip | dead-letter`, see
//! `dead_letter.rs`) in a task: an operator's failed batch is undone and run
//! again in parts around the failing record; records a source rejects or
//! whose event time cannot be read are taken out. Either way the record is
//! counted, sent to the node's dead-letter output (or skipped) and charged to
//! the task's budget; a spent budget fails the task as `fail` would have.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;

use crate::batch::RecordBatch;
use crate::dead_letter::{push_dead_letter, Budget, ErrorPolicy, Failure, LogLimit, LogLine, OnError, Rejected, DEAD_LETTER_OUTPUT};
use crate::operator::Emitter;
use crate::task::{guard, NodeImpl, Task};
use crate::{EngineError, OperatorError, Source, SourceError};

/// A member's `on_error` and what it needs at run time.
pub(crate) struct DeadLetters {
    pub policy: ErrorPolicy,
    /// The output port of its `dead-letter` side output, if it sends there.
    port: Option<usize>,
    budget: Budget,
    log: LogLimit,
}

impl DeadLetters {
    pub fn new(policy: ErrorPolicy, side_outputs: &[String]) -> Self {
        let port = match policy.on_error {
            OnError::DeadLetter => side_outputs.iter().position(|s| s == DEAD_LETTER_OUTPUT).map(|p| p + 1),
            _ => None,
        };
        DeadLetters { policy, port, budget: Budget::new(policy.max_per_minute), log: LogLimit::new() }
    }

    pub fn isolates(&self) -> bool {
        self.policy.on_error.isolates()
    }
}

/// Rows `range` of `b`, with their headers.
fn rows(b: &RecordBatch, range: std::ops::Range<usize>) -> RecordBatch {
    let mut out = RecordBatch::with_capacity(range.len());
    for i in range {
        out.push_row_from(b, i, None);
    }
    out
}

impl Task {
    /// Run operator member `i` on `batch`, taking out the records it fails on.
    pub(crate) fn process_isolating(&mut self, i: usize, batch: RecordBatch) -> Result<(), EngineError> {
        let mut queue = VecDeque::from([batch]);
        while let Some(piece) = queue.pop_front() {
            let node = &mut self.nodes[i];
            let NodeImpl::Operator(op) = &mut node.imp else { unreachable!("only operators process batches") };
            let mut scratch = Emitter::new(node.emitter.port_count());
            let input = piece.clone();
            let r = guard(&node.ctx, || op.process(input, &mut scratch))?;
            let e = match r {
                Ok(()) => {
                    for p in 0..scratch.port_count() {
                        let b = scratch.port(p);
                        if b.is_empty() {
                            continue;
                        }
                        let to = node.emitter.port(p);
                        if to.is_empty() { *to = std::mem::take(b) } else { to.append(b) }
                    }
                    continue;
                }
                Err(e) => e,
            };
            if let Err(u) = guard(&node.ctx, || op.undo())? {
                let msg = format!("{e}; then undoing the failed call failed too: {u}");
                return Err(self.op_error(i, OperatorError::new(msg).at(e.origin)));
            }
            match e.row.filter(|&r| r < piece.len()).or((piece.len() == 1).then_some(0)) {
                Some(r) => {
                    self.reject(i, &piece, r, &e.to_string())?;
                    if r + 1 < piece.len() {
                        queue.push_front(rows(&piece, r + 1..piece.len()));
                    }
                    if r > 0 {
                        queue.push_front(rows(&piece, 0..r));
                    }
                }
                // The operator did not say which record: halve until it is one.
                None => {
                    let mid = piece.len() / 2;
                    queue.push_front(rows(&piece, mid..piece.len()));
                    queue.push_front(rows(&piece, 0..mid));
                }
            }
        }
        Ok(())
    }

    /// The source task's records that its source rejected, and those whose
    /// event time cannot be read (taken out of `batch`), as dead letters.
    /// Without isolation, the first of the latter fails the task.
    pub(crate) fn isolate_source_rows(&mut self, source: &mut dyn Source, index: u16, batch: &mut RecordBatch) -> Result<(), EngineError> {
        if self.nodes[0].dead_letters.isolates() {
            let mut rejected: Vec<Rejected> = Vec::new();
            source.rejected(&mut rejected);
            for r in rejected {
                let mut one = RecordBatch::with_capacity(1);
                one.push(&r.key, &r.value, r.timestamp, crate::Origin { source: index, ..r.origin });
                self.reject(0, &one, 0, &r.error)?;
            }
        }
        let Some(g) = &self.watermarks else { return Ok(()) };
        let bad = g.assign_each(batch);
        let Some((first, message)) = bad.first().map(|(f, m)| (*f, m.clone())) else { return Ok(()) };
        if !self.nodes[0].dead_letters.isolates() {
            let at = self.sources.describe(batch.origins.get(first).copied());
            return Err(self.source_error(SourceError::msg(format!("cannot take the event time{at}: {message}"))));
        }
        for (row, message) in &bad {
            self.reject(0, batch, *row, &format!("cannot take the event time: {message}"))?;
        }
        let mut kept = RecordBatch::with_capacity(batch.len() - bad.len());
        let mut next_bad = bad.iter().map(|(r, _)| *r).peekable();
        for i in 0..batch.len() {
            if next_bad.peek() == Some(&i) {
                next_bad.next();
            } else {
                kept.push_row_from(batch, i, None);
            }
        }
        *batch = kept;
        Ok(())
    }

    /// Take row `row` of `batch` out of member `m`'s stream: count it, send it
    /// to the dead-letter output (or skip it), or fail once the budget is spent.
    fn reject(&mut self, m: usize, batch: &RecordBatch, row: usize, error: &str) -> Result<(), EngineError> {
        let origin = batch.origins[row];
        let located = self.sources.locate(origin);
        let node = &mut self.nodes[m];
        node.metrics.dead_letters.fetch_add(1, Relaxed);
        let policy = node.dead_letters.policy;
        if !node.dead_letters.budget.take() {
            let msg = format!(
                "more than {} records failed within a minute (max_dead_letters_per_minute), so on_error: {} gives up; the last: {error}",
                policy.max_per_minute,
                policy.on_error.name()
            );
            return Err(match &self.nodes[m].imp {
                NodeImpl::Source => {
                    let at = self.sources.describe(Some(origin));
                    self.source_error(SourceError::msg(format!("{msg} (it failed{at})")))
                }
                _ => self.op_error(m, OperatorError::new(msg).at(Some(origin))),
            });
        }
        let ctx = &node.ctx;
        let position = located.as_ref().map(|(n, at)| (n.as_str(), at.clone()));
        if let LogLine::Write { earlier } = node.dead_letters.log.admit() {
            if earlier > 0 {
                tracing::warn!(
                    node = &*ctx.node,
                    task = ctx.task_index,
                    "{earlier} more records failed in the last {} s without a line each (see the dead-letter output and weir_node_dead_letters)",
                    LogLimit::WINDOW.as_secs()
                );
            }
            tracing::warn!(
                node = &*ctx.node,
                task = ctx.task_index,
                at = position.as_ref().map(|p| p.1.as_str()).unwrap_or("?"),
                on_error = policy.on_error.name(),
                "a record failed: {error}"
            );
        }
        if let Some(port) = node.dead_letters.port {
            let logic = match &node.imp {
                NodeImpl::Operator(op) => op.logic(),
                _ => None,
            };
            let f = Failure { node: &*ctx.node, task: ctx.task_index, plugin: logic.as_deref(), source: position, error };
            push_dead_letter(node.emitter.port(port), batch, row, &f);
        }
        Ok(())
    }
}
