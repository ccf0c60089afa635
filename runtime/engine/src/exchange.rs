//! Exchanges: the bounded channels between tasks and how records are spread
//! over them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::batch::RecordBatch;
use crate::dataflow::{KeySelector, Partitioning};
use crate::error::EngineError;
use crate::metrics::NodeMetrics;
use crate::transport::{Body, Message, Outbox, SendError};
use weir_state::keys::{key_group, task_for_key_group};

const POLL: Duration = Duration::from_millis(50);

/// Send, waking up regularly to see whether the job was cancelled. Time
/// spent waiting for room (back-pressure) is added to `blocked`.
pub(crate) fn send(tx: &dyn Outbox, msg: Message, cancel: &AtomicBool, blocked: &NodeMetrics) -> Result<(), EngineError> {
    // Without a wait first: the common case costs no clock reading.
    let mut msg = match tx.send_timeout(msg, Duration::ZERO) {
        Ok(()) => return Ok(()),
        Err(SendError::Timeout(m)) => m,
        Err(SendError::Disconnected) => return Err(EngineError::Cancelled),
    };
    let start = Instant::now();
    let r = loop {
        match tx.send_timeout(msg, POLL) {
            Ok(()) => break Ok(()),
            Err(SendError::Timeout(m)) => {
                if cancel.load(Ordering::Relaxed) {
                    break Err(EngineError::Cancelled);
                }
                msg = m;
            }
            Err(SendError::Disconnected) => break Err(EngineError::Cancelled),
        }
    };
    blocked.add_blocked(start.elapsed());
    r
}

/// The sending side of one edge in one producer task.
pub(crate) struct ExchangeWriter {
    pub partitioning: Partitioning,
    /// One sender per consumer task (only the matching one for forward edges).
    pub senders: Vec<Arc<dyn Outbox>>,
    pub max_parallelism: u32,
    pub next: usize,
    /// This writer's producer number at its consumers.
    pub from: u32,
    /// The producing node's counters in this task (back-pressure).
    pub metrics: Arc<NodeMetrics>,
}

impl ExchangeWriter {
    /// Send a batch, split by the edge's partitioning. Returns the first record's
    /// failure to yield a key, if the selector cannot key it.
    pub fn write(&mut self, batch: RecordBatch, cancel: &AtomicBool) -> Result<(), ExchangeFailure> {
        match &self.partitioning {
            Partitioning::Forward | Partitioning::Rebalance if self.senders.len() == 1 => {
                send(&*self.senders[0], self.msg(Body::Data(batch)), cancel, &self.metrics).map_err(ExchangeFailure::Engine)
            }
            Partitioning::Forward | Partitioning::Rebalance => {
                let i = self.next % self.senders.len();
                self.next = self.next.wrapping_add(1);
                send(&*self.senders[i], self.msg(Body::Data(batch)), cancel, &self.metrics).map_err(ExchangeFailure::Engine)
            }
            Partitioning::KeyBy(selector) => {
                let n = self.senders.len() as u32;
                let mut parts: Vec<RecordBatch> = (0..n).map(|_| RecordBatch::with_capacity(batch.len() / n as usize + 1)).collect();
                let mut scratch = Vec::new();
                let rekey = matches!(selector, KeySelector::JsonField(_));
                for i in 0..batch.len() {
                    let key: &[u8] = match selector {
                        KeySelector::RecordKey => batch.key(i),
                        KeySelector::JsonField(path) => {
                            scratch.clear();
                            json_field_key(batch.value(i), path, &mut scratch).map_err(|message| {
                                ExchangeFailure::Key { row: i, message, origin: batch.origins[i] }
                            })?;
                            &scratch
                        }
                    };
                    let t = task_for_key_group(key_group(key, self.max_parallelism), self.max_parallelism, n);
                    parts[t as usize].push_row_from(&batch, i, rekey.then_some(key));
                }
                for (t, mut part) in parts.into_iter().enumerate() {
                    if !part.is_empty() {
                        part.born = batch.born;
                        send(&*self.senders[t], self.msg(Body::Data(part)), cancel, &self.metrics).map_err(ExchangeFailure::Engine)?;
                    }
                }
                Ok(())
            }
        }
    }

    fn msg(&self, body: Body) -> Message {
        Message { from: self.from, body }
    }

    /// Send a control message (barrier, watermark, idleness, end) to every
    /// consumer task.
    pub fn broadcast(&self, body: impl Fn() -> Body, cancel: &AtomicBool) -> Result<(), EngineError> {
        for tx in &self.senders {
            send(&**tx, self.msg(body()), cancel, &self.metrics)?;
        }
        Ok(())
    }
}

pub(crate) enum ExchangeFailure {
    Engine(EngineError),
    Key { row: usize, message: String, origin: crate::Origin },
}

/// The key of a JSON value's field: a string's contents, or other values' JSON text.
fn json_field_key(value: &[u8], path: &[String], out: &mut Vec<u8>) -> Result<(), String> {
    let v: serde_json::Value =
        serde_json::from_slice(value).map_err(|e| format!("value is not JSON ({e}), so it has no key field"))?;
    let mut cur = &v;
    for (depth, name) in path.iter().enumerate() {
        cur = cur.get(name).ok_or_else(|| format!("value has no field '{}'", path[..=depth].join(".")))?;
    }
    match cur {
        serde_json::Value::String(s) => out.extend_from_slice(s.as_bytes()),
        other => out.extend_from_slice(other.to_string().as_bytes()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_field_keys() {
        let mut out = Vec::new();
        json_field_key(br#"{"user":{"id":"u7"}}"#, &["user".into(), "id".into()], &mut out).unwrap();
        assert_eq!(out, b"u7");
        out.clear();
        json_field_key(br#"{"n":42}"#, &["n".into()], &mut out).unwrap();
        assert_eq!(out, b"42");
        let err = json_field_key(br#"{"user":{}}"#, &["user".into(), "id".into()], &mut out).unwrap_err();
        assert_eq!(err, "value has no field 'user.id'");
        assert!(json_field_key(b"nope", &["a".into()], &mut out).unwrap_err().contains("not JSON"));
    }
}
