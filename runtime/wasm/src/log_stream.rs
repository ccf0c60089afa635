//! Guest stdout/stderr, forwarded line by line to the host log, tagged with the
//! plugin and operator.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Longest line kept; longer output is logged in pieces of this size.
const MAX_LINE: usize = 16 * 1024;

#[derive(Clone)]
pub(crate) struct LogStream {
    inner: Arc<Mutex<Vec<u8>>>,
    tag: Arc<str>,
    stream: &'static str,
}

impl LogStream {
    pub fn new(tag: Arc<str>, stream: &'static str) -> Self {
        LogStream { inner: Arc::default(), tag, stream }
    }

    fn write_bytes(&self, bytes: &[u8]) {
        let mut buf = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        buf.extend_from_slice(bytes);
        while let Some(nl) = buf.iter().position(|&b| b == b'\n').or((buf.len() >= MAX_LINE).then_some(MAX_LINE)) {
            let cut = nl.min(buf.len());
            let line: Vec<u8> = buf.drain(..cut).collect();
            if buf.first() == Some(&b'\n') {
                buf.remove(0);
            }
            let line = String::from_utf8_lossy(&line);
            tracing::info!(target: "weir::plugin", plugin = %self.tag, stream = self.stream, "{}", line.trim_end_matches('\r'));
        }
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
