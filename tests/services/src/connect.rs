//! `KafkaConnect`: a Kafka Connect standalone worker running one connector, with
//! its offsets in a file and its REST API on a free loopback port, and the tiny
//! HTTP/1.1 GET used to wait until the connector and its tasks are RUNNING.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::jars;
use crate::proc::{self, Proc, SIGTERM, ctx};

/// How long `start` waits for the connector and its tasks to run.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// A running Connect standalone worker. Dropping it kills the JVM and removes
/// its directory (offsets included).
pub struct KafkaConnect {
    proc: Option<Proc>,
    port: u16,
    name: String,
    dir: tempfile::TempDir,
}

impl KafkaConnect {
    /// Starts a worker against `bootstrap` running the connector configured by
    /// `connector` (which must have `name` and `connector.class`), and waits (up
    /// to 120 s) until `GET /connectors/<name>/status` shows it and a task RUNNING.
    /// Keys and values go through JsonConverter without schemas; a connector can
    /// override that with its own `key.converter` / `value.converter` settings.
    pub fn start(bootstrap: &str, connector: &[(&str, &str)]) -> io::Result<KafkaConnect> {
        Self::start_with(bootstrap, &[], connector)
    }

    /// A worker running Debezium's PostgreSQL connector `cdc` (pgoutput, an
    /// initial snapshot, replication slot `slot`) on `pg`'s `tables` (a
    /// comma-separated include list such as `public.t`), writing to topics
    /// `cdc.<schema>.<table>` (created with one partition if missing).
    pub fn debezium_postgres(bootstrap: &str, pg: &crate::Postgres, tables: &str, slot: &str) -> io::Result<KafkaConnect> {
        let port = pg.port().to_string();
        Self::start(
            bootstrap,
            &[
                ("name", "cdc"),
                ("connector.class", "io.debezium.connector.postgresql.PostgresConnector"),
                ("plugin.name", "pgoutput"),
                ("database.hostname", "127.0.0.1"),
                ("database.port", &port),
                ("database.user", "postgres"),
                ("database.dbname", "postgres"),
                ("topic.prefix", "cdc"),
                ("table.include.list", tables),
                ("slot.name", slot),
                ("publication.autocreate.mode", "filtered"),
                ("snapshot.mode", "initial"),
                // The broker does not create topics on first use; Connect does, with these.
                ("topic.creation.default.replication.factor", "1"),
                ("topic.creation.default.partitions", "1"),
            ],
        )
    }

    /// `start`, with `worker` settings added to (or replacing) the worker's defaults.
    pub fn start_with(bootstrap: &str, worker: &[(&str, &str)], connector: &[(&str, &str)]) -> io::Result<KafkaConnect> {
        let name = connector.iter().find(|(k, _)| *k == "name").map(|(_, v)| v.to_string());
        let name = name.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "connector properties need a `name`"))?;
        let libs = jars::libs("connect")?;
        let dir = proc::temp_dir("connect")?;
        let d = dir.path();
        let port = proc::free_port()?;
        let mut props: Vec<(String, String)> = [
            ("bootstrap.servers", bootstrap.to_string()),
            ("listeners", format!("http://127.0.0.1:{port}")),
            ("key.converter", "org.apache.kafka.connect.json.JsonConverter".to_string()),
            ("value.converter", "org.apache.kafka.connect.json.JsonConverter".to_string()),
            ("key.converter.schemas.enable", "false".to_string()),
            ("value.converter.schemas.enable", "false".to_string()),
            ("offset.storage.file.filename", d.join("connect.offsets").display().to_string()),
            ("offset.flush.interval.ms", "1000".to_string()),
            // The jars on the classpath all have ServiceLoader manifests; scanning
            // them by reflection as well (the default) takes 5 s more.
            ("plugin.discovery", "service_load".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for (k, v) in worker {
            props.retain(|(key, _)| key != k);
            props.push((k.to_string(), v.to_string()));
        }
        proc::write_properties(&d.join("worker.properties"), &props)?;
        let connector: Vec<(String, String)> = connector.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        proc::write_properties(&d.join("connector.properties"), &connector)?;
        proc::write_log4j2(&d.join("log4j2.properties"), "info", "SYSTEM_OUT")?;
        // Every plugin is on the classpath, so no plugin.path.
        let mut cmd = proc::java("512m", &d.join("log4j2.properties"), &libs);
        cmd.args(["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]); // quicker start, as for the broker
        cmd.arg("org.apache.kafka.connect.cli.ConnectStandalone").arg(d.join("worker.properties")).arg(d.join("connector.properties")).current_dir(d);
        let log = d.join("connect.log");
        let mut p = Proc::spawn(&mut cmd, "kafka connect", &log)?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let path = format!("/connectors/{name}/status");
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut last = String::from("no answer yet");
        loop {
            if p.exited().is_some() {
                return Err(p.error(&format!("kafka connect did not start (last status: {last})")));
            }
            if let Ok((status, body)) = http_get(addr, &path) {
                if status == 200 && running(&body) {
                    return Ok(KafkaConnect { proc: Some(p), port, name, dir });
                }
                if body.contains("\"FAILED\"") {
                    return Err(p.error(&format!("connector {name} failed: {body}")));
                }
                last = format!("{status} {body}");
            }
            if Instant::now() > deadline {
                return Err(p.error(&format!("connector {name} was not RUNNING within {} s (last status: {last})", READY_TIMEOUT.as_secs())));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// The REST API's base URL, `http://127.0.0.1:PORT`.
    pub fn rest_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `GET path` on the REST API: the status code and the body.
    pub fn rest_get(&self, path: &str) -> io::Result<(u16, String)> {
        http_get(SocketAddr::from(([127, 0, 0, 1], self.port)), path)
    }

    /// The connector's current status JSON (`GET /connectors/<name>/status`).
    pub fn status(&self) -> io::Result<String> {
        self.rest_get(&format!("/connectors/{}/status", self.name)).map(|(_, body)| body)
    }

    /// The worker's log.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("connect.log")
    }

    /// The last `n` lines of the worker's log.
    pub fn log_tail(&self, n: usize) -> String {
        proc::log_tail(&self.log_path(), n)
    }

    /// Stops the worker: SIGTERM, up to 10 s, then SIGKILL.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.stop(SIGTERM, Duration::from_secs(10));
        }
    }
}

impl Drop for KafkaConnect {
    fn drop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }
}

/// Whether a status JSON shows the connector RUNNING and at least one task, all RUNNING.
fn running(status: &str) -> bool {
    let Some((connector, tasks)) = status.split_once("\"tasks\"") else { return false };
    let is_running = |s: &str| s.contains("\"state\":\"RUNNING\"");
    is_running(connector) && is_running(tasks) && tasks.matches("\"state\":").count() == tasks.matches("\"state\":\"RUNNING\"").count()
}

/// A minimal HTTP/1.1 GET (`Connection: close`, identity or chunked body).
pub(crate) fn http_get(addr: SocketAddr, path: &str) -> io::Result<(u16, String)> {
    let timeout = Duration::from_secs(5);
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\nConnection: close\r\n\r\n")?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| ctx(e, format!("reading GET {path} from {addr}")))?;
    let text = String::from_utf8_lossy(&raw);
    let bad = || io::Error::new(io::ErrorKind::InvalidData, format!("GET {path} from {addr}: not an HTTP response: {text:?}"));
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(bad)?;
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).ok_or_else(bad)?;
    let chunked = head.lines().any(|l| l.to_ascii_lowercase().replace(' ', "") == "transfer-encoding:chunked");
    let body = if chunked { dechunk(body).ok_or_else(bad)? } else { body.to_string() };
    Ok((status, body))
}

/// The data of a chunked body.
fn dechunk(mut rest: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(after.get(..size)?);
        rest = after.get(size..)?.strip_prefix("\r\n")?;
    }
}
