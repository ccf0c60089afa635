//! Guest stdout/stderr, forwarded line by line to the host log through the
//! task's [`GuestLog`] (tagged with plugin, operator and task; lines cut to
//! its line limit, volume rate-limited). A line is held until its newline (or
//! the instance's end) in at most the line limit of memory.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use crate::bindings::runtime::Level;
use crate::guest_log::GuestLog;

#[derive(Clone)]
pub(crate) struct LogStream {
    inner: Arc<Mutex<Pending>>,
}

/// The line being written: its first bytes, up to the line limit, and how
/// many more there were.
struct Pending {
    log: GuestLog,
    stream: &'static str,
    line: Vec<u8>,
    cut: usize,
}

impl Pending {
    fn push(&mut self, bytes: &[u8]) {
        let take = bytes.len().min(self.log.line_max().saturating_sub(self.line.len()));
        self.line.extend_from_slice(&bytes[..take]);
        self.cut += bytes.len() - take;
    }

    fn end_line(&mut self) {
        self.log.line(Level::Info, Some(self.stream), &self.line, self.cut);
        self.line.clear();
        self.cut = 0;
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.line.is_empty() || self.cut > 0 {
            self.end_line();
        }
    }
}

impl LogStream {
    pub fn new(log: GuestLog, stream: &'static str) -> Self {
        LogStream { inner: Arc::new(Mutex::new(Pending { log, stream, line: Vec::new(), cut: 0 })) }
    }

    fn write_bytes(&self, mut bytes: &[u8]) {
        let mut p = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(nl) = bytes.iter().position(|&b| b == b'\n') {
            p.push(&bytes[..nl]);
            p.end_line();
            bytes = &bytes[nl + 1..];
        }
        p.push(bytes);
    }
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl OutputStream for LogStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.write_bytes(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[async_trait::async_trait]
impl Pollable for LogStream {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for LogStream {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.write_bytes(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
