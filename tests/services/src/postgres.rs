//! `Postgres`: a PostgreSQL server (with logical decoding on, for Debezium) in a
//! fresh `initdb` cluster in a temporary directory, on a free loopback port, and
//! `psql` against it. initdb and postgres refuse to run as root, so when this
//! process is root both run as the user `nobody`, owning the temporary directory.

use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::proc::{self, Proc, SIGINT, ctx};

/// How long `start` waits for the server to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running PostgreSQL server; user `postgres`, trust authentication, database
/// `postgres`. Dropping it stops the server and removes its data.
pub struct Postgres {
    proc: Option<Proc>,
    port: u16,
    bin: PathBuf,
    dir: tempfile::TempDir,
}

impl Postgres {
    /// Creates a cluster with `initdb`, starts `postgres` with `wal_level=logical`
    /// and waits (up to 30 s) until `pg_isready` says it accepts connections.
    pub fn start() -> io::Result<Postgres> {
        let bin = bin_dir()?;
        let dir = proc::temp_dir("postgres")?;
        let d = dir.path();
        let user = if proc::is_root() { Some(nobody()?) } else { None };
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(d, Some(uid), Some(gid)).map_err(|e| ctx(e, format!("chown nobody {}", d.display())))?;
        }
        let command = |program: &str| {
            let mut cmd = Command::new(bin.join(program));
            cmd.current_dir(d).env("LC_ALL", "C");
            if let Some((uid, gid)) = user {
                // std drops the supplementary groups too when it switches from root.
                cmd.uid(uid).gid(gid);
            }
            cmd
        };
        let data = d.join("data");
        let mut initdb = command("initdb");
        initdb.arg("-D").arg(&data).args(["-U", "postgres", "--auth=trust", "--encoding=UTF8", "--no-locale", "--no-sync", "--no-instructions"]);
        proc::run_logged(&mut initdb, "initdb", &d.join("initdb.log"))?;
        let port = proc::free_port()?;
        let mut server = command("postgres");
        server.arg("-D").arg(&data).arg("-k").arg(d).arg("-p").arg(port.to_string());
        for setting in ["listen_addresses=127.0.0.1", "wal_level=logical", "max_wal_senders=4", "max_replication_slots=4", "fsync=off"] {
            server.args(["-c", setting]);
        }
        let log = d.join("postgres.log");
        let mut p = Proc::spawn(&mut server, "postgres", &log)?;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if p.exited().is_some() {
                return Err(p.error("postgres did not start"));
            }
            let ready = Command::new(bin.join("pg_isready")).args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()]).status();
            if ready.is_ok_and(|s| s.success()) {
                break;
            }
            if Instant::now() > deadline {
                return Err(p.error(&format!("postgres did not accept connections on 127.0.0.1:{port} within {} s", READY_TIMEOUT.as_secs())));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(Postgres { proc: Some(p), port, bin, dir })
    }

    /// The port it listens on at 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs `sql` (one or more statements) with `psql -Atc` as user `postgres` on
    /// database `postgres`, stopping at the first error; its output (unaligned,
    /// tuples only, `|` between columns, no command tags) without the final newline.
    pub fn psql(&self, sql: &str) -> io::Result<String> {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-Atc", sql])
            .output()
            .map_err(|e| ctx(e, "running psql".to_string()))?;
        if !out.status.success() {
            return Err(io::Error::other(format!("psql -c {sql:?} exited with {}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim_end())));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim_end_matches('\n').to_string())
    }

    /// The `psql` of this server's installation.
    pub fn psql_path(&self) -> PathBuf {
        self.bin.join("psql")
    }

    /// The server's log.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// The last `n` lines of the server's log.
    pub fn log_tail(&self, n: usize) -> String {
        proc::log_tail(&self.log_path(), n)
    }

    /// Stops the server: SIGINT (fast shutdown: disconnects clients), up to 10 s,
    /// then SIGKILL to its process group.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.stop(SIGINT, Duration::from_secs(10));
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// PostgreSQL's server binaries: `pg_config --bindir` if it has `initdb`, else
/// the newest `/usr/lib/postgresql/<version>/bin`.
fn bin_dir() -> io::Result<PathBuf> {
    let has_initdb = |d: &Path| d.join("initdb").is_file();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let d = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has_initdb(&d) {
            return Ok(d);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, d)| has_initdb(d))
        .collect();
    versions.sort();
    let missing = "no PostgreSQL server binaries: neither `pg_config --bindir` nor /usr/lib/postgresql/*/bin has initdb";
    versions.pop().map(|(_, d)| d).ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, missing))
}

/// The uid and gid of `nobody`, from /etc/passwd.
fn nobody() -> io::Result<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd")?;
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 3 && f[0] == "nobody")
        .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "running as root, and there is no user `nobody` in /etc/passwd to run PostgreSQL as"))
}
