//! Serving the node's router over TCP (optionally TLS) with hyper, bounded in
//! every way a client could hold the node: a cap on open connections, a
//! deadline for a request's headers (and for a TLS handshake), and a
//! graceful shutdown that waits a bounded time for open connections.
//!
//! Connections over the cap are accepted and refused: a plain connection
//! gets a `503` with a JSON error once its request's head arrived (or after
//! a second), a TLS connection is closed at once. The request body's deadline is a layer of the
//! router (see `lib.rs`), since it must answer `408` as JSON.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::rustls;

/// How the node serves connections.
#[derive(Clone)]
pub struct ServeOptions {
    /// A connection must send a request's headers within this (also between
    /// requests of a kept-alive connection), or it is closed.
    pub header_timeout: Duration,
    /// Connections open at once; more are refused.
    pub max_connections: usize,
    /// How long a shutdown waits for open connections to finish.
    pub shutdown_grace: Duration,
    /// TLS, if the node serves HTTPS.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// A TLS configuration from PEM files: a certificate chain and its private key.
pub fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("--tls-cert {}: no PEM certificate in it", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("--tls-key {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| format!("--tls-cert/--tls-key: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serve `app` on `listener` until `shutdown` completes, then wait at most
/// `shutdown_grace` for open connections.
pub async fn serve(listener: TcpListener, app: Router, opts: ServeOptions, shutdown: impl Future<Output = ()>) {
    let open = Arc::new(Semaphore::new(opts.max_connections));
    // Refusals in flight are bounded too (each takes a file handle briefly).
    let refusing = Arc::new(Semaphore::new(opts.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(opts.header_timeout);
    let tls = opts.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file handles, say: wait a little rather than spin.
                    tracing::warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            if let Ok(p) = refusing.clone().try_acquire_owned() {
                let (max, plain) = (opts.max_connections, tls.is_none());
                tokio::spawn(async move {
                    if plain {
                        refuse(stream, max).await;
                    }
                    drop(p);
                });
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (http, app, watcher, tls, timeout) = (http.clone(), app.clone(), graceful.watcher(), tls.clone(), opts.header_timeout);
        tokio::spawn(async move {
            let service = TowerToHyperService::new(app);
            match tls {
                None => {
                    let _ = watcher.watch(http.serve_connection(TokioIo::new(stream), service)).await;
                }
                Some(acceptor) => match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => {
                        let _ = watcher.watch(http.serve_connection(TokioIo::new(stream), service)).await;
                    }
                    Ok(Err(e)) => tracing::debug!("TLS handshake failed: {e}"),
                    Err(_) => tracing::debug!("TLS handshake timed out"),
                },
            }
            drop(permit);
        });
    }
    drop(listener);
    let open = graceful.count();
    if open > 0 {
        tracing::info!("waiting up to {:?} for {open} open connection(s)", opts.shutdown_grace);
    }
    if tokio::time::timeout(opts.shutdown_grace, graceful.shutdown()).await.is_err() {
        tracing::warn!("connections still open after {:?}; closing them", opts.shutdown_grace);
    }
}

/// Answer a connection over the cap with a 503 and close it: after its
/// request's head (so that a client reads it as the answer to its request),
/// or after a second without one. Bounded: about two seconds at most.
async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, max: usize) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while let Ok(n @ 1..) = stream.read(&mut buf).await {
            head.extend_from_slice(&buf[..n]);
            if head.windows(4).any(|w| w == b"\r\n\r\n") || head.len() > 16 * 1024 {
                break;
            }
        }
    })
    .await;
    let body = format!(
        "{{\"error\":\"this node has {max} connections open, its limit (weir serve --max-connections); try again later\"}}"
    );
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\nretry-after: 1\r\n\r\n{body}",
        body.len()
    );
    let wrote = tokio::time::timeout(Duration::from_secs(1), stream.write_all(response.as_bytes())).await;
    if matches!(wrote, Ok(Ok(()))) {
        let _ = stream.shutdown().await;
        // Read what else the client sent (a body), so that closing does not
        // reset the connection before it reads the answer.
        let _ = tokio::time::timeout(Duration::from_millis(200), async {
            while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
        })
        .await;
    }
}
