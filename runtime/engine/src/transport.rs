//! What travels between tasks, and the [`Transport`] that carries it: a
//! bounded channel into each consumer task, written by all its producers.
//! [`LocalTransport`] is crossbeam channels between threads of one process;
//! a transport between processes implements the same traits.

use std::time::Duration;

use crate::batch::RecordBatch;

/// A message on a channel, tagged with the producer it came from (producers
/// of one channel are numbered from 0; barrier alignment needs to know them).
#[derive(Debug)]
pub struct Message {
    pub from: u32,
    pub body: Body,
}

#[derive(Debug)]
pub enum Body {
    Data(RecordBatch),
    /// Everything the producer sent before belongs to checkpoint `epoch`.
    Barrier(u64),
    /// The producer's event-time watermark.
    Watermark(i64),
    /// The producer is idle (or active again): leave it out of the watermark.
    Idle(bool),
    /// The producer has ended.
    End,
}

/// Why a send did not go through.
#[derive(Debug)]
pub enum SendError {
    /// The channel is full for longer than the timeout; the message comes back.
    Timeout(Message),
    /// The consumer is gone.
    Disconnected,
}

/// Why a receive returned nothing.
#[derive(Debug, PartialEq, Eq)]
pub enum RecvError {
    Timeout,
    /// Every producer is gone.
    Disconnected,
}

/// The writing end of a channel into one consumer task; shared by its producers.
pub trait Outbox: Send + Sync {
    fn send_timeout(&self, msg: Message, timeout: Duration) -> Result<(), SendError>;
}

/// The reading end of a channel, owned by its consumer task. It disconnects
/// when every [`Outbox`] of the channel is dropped.
pub trait Inbox: Send {
    fn recv_timeout(&self, timeout: Duration) -> Result<Message, RecvError>;
    /// A message that is already there, if any.
    fn try_recv(&self) -> Option<Message>;
}

/// Makes the channels of a job.
pub trait Transport: Send + Sync {
    /// A channel holding at most `capacity` messages before writers block.
    fn channel(&self, capacity: usize) -> (std::sync::Arc<dyn Outbox>, Box<dyn Inbox>);
}

/// Channels between threads of this process.
#[derive(Clone, Copy, Debug, Default)]
pub struct LocalTransport;

impl Transport for LocalTransport {
    fn channel(&self, capacity: usize) -> (std::sync::Arc<dyn Outbox>, Box<dyn Inbox>) {
        let (tx, rx) = crossbeam_channel::bounded(capacity);
        (std::sync::Arc::new(LocalOutbox(tx)), Box::new(LocalInbox(rx)))
    }
}

struct LocalOutbox(crossbeam_channel::Sender<Message>);
struct LocalInbox(crossbeam_channel::Receiver<Message>);

impl Outbox for LocalOutbox {
    fn send_timeout(&self, msg: Message, timeout: Duration) -> Result<(), SendError> {
        self.0.send_timeout(msg, timeout).map_err(|e| match e {
            crossbeam_channel::SendTimeoutError::Timeout(m) => SendError::Timeout(m),
            crossbeam_channel::SendTimeoutError::Disconnected(_) => SendError::Disconnected,
        })
    }
}

impl Inbox for LocalInbox {
    fn recv_timeout(&self, timeout: Duration) -> Result<Message, RecvError> {
        self.0.recv_timeout(timeout).map_err(|e| match e {
            crossbeam_channel::RecvTimeoutError::Timeout => RecvError::Timeout,
            crossbeam_channel::RecvTimeoutError::Disconnected => RecvError::Disconnected,
        })
    }

    fn try_recv(&self) -> Option<Message> {
        self.0.try_recv().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_channel_is_bounded_and_disconnects_with_its_writers() {
        let (tx, rx) = LocalTransport.channel(1);
        tx.send_timeout(Message { from: 3, body: Body::End }, Duration::ZERO).unwrap();
        let full = tx.send_timeout(Message { from: 4, body: Body::Barrier(1) }, Duration::from_millis(1));
        assert!(matches!(full, Err(SendError::Timeout(Message { from: 4, .. }))));
        assert!(matches!(rx.try_recv(), Some(Message { from: 3, body: Body::End })));
        drop(tx);
        assert_eq!(rx.recv_timeout(Duration::from_millis(1)).unwrap_err(), RecvError::Disconnected);
    }
}
