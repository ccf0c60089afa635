//! `IcebergRest`: Apache Iceberg's own REST catalog server (the one the
//! apache/iceberg-rest-fixture image runs: `RESTCatalogServer` from
//! iceberg-open-api's test fixtures, a JdbcCatalog on sqlite behind
//! iceberg-core's REST adapter) on a free port, its warehouse a directory of
//! its temporary directory, on local disk through HadoopFileIO. The catalog
//! lives as long as the server; the table files stay in the directory.
//!
//! The server binds every interface (RESTCatalogServer takes a port, not an
//! address); it serves only its temporary warehouse and dies with the test.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::connect::http_get;
use crate::jars;
use crate::proc::{self, Proc, SIGTERM};

/// How long `start` waits for the server to answer `GET /v1/config`.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running REST catalog server. Dropping it kills the JVM and removes its
/// directory (the warehouse with it).
pub struct IcebergRest {
    proc: Option<Proc>,
    port: u16,
    dir: tempfile::TempDir,
}

impl IcebergRest {
    /// Starts the server and waits (up to 60 s) until `GET /v1/config` answers 200.
    pub fn start() -> io::Result<IcebergRest> {
        let libs = jars::libs("iceberg-rest")?;
        let dir = proc::temp_dir("iceberg-rest")?;
        let d = dir.path();
        let warehouse = d.join("warehouse");
        std::fs::create_dir_all(&warehouse)?;
        let port = proc::free_port()?;
        let mut cmd = std::process::Command::new("java");
        cmd.args(["-Xmx384m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Dorg.slf4j.simpleLogger.defaultLogLevel=info", "-cp"])
            .arg(libs.join("*"))
            .arg("org.apache.iceberg.rest.RESTCatalogServer")
            .current_dir(d)
            // RESTCatalogServer reads CATALOG_* variables as catalog properties
            // (CATALOG_REST_PORT is rest.port).
            .env("CATALOG_WAREHOUSE", format!("file://{}", warehouse.display()))
            // A sqlite file rather than the default in-memory database, which
            // each of the pool's connections would see empty.
            .env("CATALOG_URI", format!("jdbc:sqlite:{}", d.join("catalog.db").display()))
            .env("CATALOG_REST_PORT", port.to_string());
        let log = d.join("rest.log");
        let mut p = Proc::spawn(&mut cmd, "iceberg rest catalog", &log)?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if p.exited().is_some() {
                return Err(p.error("the Iceberg REST catalog server did not start"));
            }
            if let Ok((200, _)) = http_get(addr, "/v1/config") {
                return Ok(IcebergRest { proc: Some(p), port, dir });
            }
            if Instant::now() > deadline {
                return Err(p.error(&format!("the Iceberg REST catalog did not answer within {} s", READY_TIMEOUT.as_secs())));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The catalog's base URI, `http://127.0.0.1:PORT`.
    pub fn uri(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The directory the catalog's tables lie under.
    pub fn warehouse(&self) -> PathBuf {
        self.dir.path().join("warehouse")
    }

    /// `GET path` on the catalog: the status code and the body.
    pub fn get(&self, path: &str) -> io::Result<(u16, String)> {
        http_get(SocketAddr::from(([127, 0, 0, 1], self.port)), path)
    }

    /// The last `n` lines of the server's log.
    pub fn log_tail(&self, n: usize) -> String {
        proc::log_tail(&self.dir.path().join("rest.log"), n)
    }

    /// Stops the server: SIGTERM, up to 10 s, then SIGKILL.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.stop(SIGTERM, Duration::from_secs(10));
        }
    }
}

impl Drop for IcebergRest {
    fn drop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }
}
