//! Child processes of the services: each runs in its own process group with its
//! stdout and stderr appended to a log file, and is signalled as a whole group so
//! that stopping it stops everything it started. Also the small helpers the
//! services share (free ports, log tails, waiting).

use std::fs::{File, OpenOptions};
use std::io;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

unsafe extern "C" {
    safe fn kill(pid: i32, sig: i32) -> i32;
    safe fn geteuid() -> u32;
}

pub(crate) const SIGINT: i32 = 2;
pub(crate) const SIGKILL: i32 = 9;
pub(crate) const SIGTERM: i32 = 15;

/// Whether this process runs as root (effective uid 0).
pub(crate) fn is_root() -> bool {
    geteuid() == 0
}

/// A running service process, leader of its own process group.
pub(crate) struct Proc {
    child: Child,
    what: String,
    log: PathBuf,
    exited: Option<ExitStatus>,
}

impl Proc {
    /// Spawns `cmd` in a new process group, stdin closed, stdout and stderr
    /// appended to `log`. `what` names it in error messages.
    pub(crate) fn spawn(cmd: &mut Command, what: &str, log: &Path) -> io::Result<Proc> {
        let out = OpenOptions::new().create(true).append(true).open(log).map_err(|e| ctx(e, format!("opening {}", log.display())))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .process_group(0)
            .spawn()
            .map_err(|e| ctx(e, format!("starting {what} ({:?})", cmd.get_program())))?;
        Ok(Proc { child, what: what.to_string(), log: log.to_path_buf(), exited: None })
    }

    /// The exit status if the process has exited.
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().ok().flatten();
        }
        self.exited
    }

    /// An error "`doing`: `what` exited with ..." (or the given reason) with the log's last 40 lines.
    pub(crate) fn error(&mut self, reason: &str) -> io::Error {
        let reason = match self.exited() {
            Some(status) => format!("{reason}: {} exited with {status}", self.what),
            None => reason.to_string(),
        };
        io::Error::other(format!("{reason}; last 40 lines of {}:\n{}", self.log.display(), log_tail(&self.log, 40)))
    }

    /// Sends `sig` to the whole process group.
    pub(crate) fn signal(&mut self, sig: i32) {
        // The group outlives its leader only while some member lives, so its id
        // cannot have been reused; ESRCH (nothing left) is fine.
        kill(-(self.child.id() as i32), sig);
    }

    /// Sends `sig`, waits up to `grace` for the leader to exit, then kills the group.
    pub(crate) fn stop(&mut self, sig: i32, grace: Duration) {
        if self.exited().is_none() {
            self.signal(sig);
            let deadline = Instant::now() + grace;
            while self.exited().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        self.kill();
    }

    /// Kills the whole group (SIGKILL) and reaps the leader.
    pub(crate) fn kill(&mut self) {
        self.signal(SIGKILL);
        if self.exited.is_none() {
            self.exited = self.child.wait().ok();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `cmd` to completion with stdout and stderr appended to `log`; an error
/// with the log's tail unless it exits 0.
pub(crate) fn run_logged(cmd: &mut Command, what: &str, log: &Path) -> io::Result<()> {
    let mut p = Proc::spawn(cmd, what, log)?;
    let status = p.child.wait().map_err(|e| ctx(e, format!("waiting for {what}")))?;
    p.exited = Some(status);
    if status.success() { Ok(()) } else { Err(p.error(&format!("{what} failed"))) }
}

/// A loopback port that was free a moment ago.
pub(crate) fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The last `n` lines of a log file (lossy UTF-8; empty if it cannot be read).
pub(crate) fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Adds what was being done to an error, keeping its kind.
pub(crate) fn ctx(e: io::Error, doing: String) -> io::Error {
    io::Error::new(e.kind(), format!("{doing}: {e}"))
}

/// Writes `key=value` lines to `path`.
pub(crate) fn write_properties(path: &Path, props: &[(String, String)]) -> io::Result<()> {
    let text: String = props.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    std::fs::write(path, text).map_err(|e| ctx(e, format!("writing {}", path.display())))
}

/// A log4j2 configuration that sends everything at `level` and above to
/// `target` (`SYSTEM_OUT` or `SYSTEM_ERR`).
pub(crate) fn write_log4j2(path: &Path, level: &str, target: &str) -> io::Result<()> {
    let text = format!(
        "status = warn\n\
        appender.out.type = Console\n\
        appender.out.name = out\n\
        appender.out.target = {target}\n\
        appender.out.layout.type = PatternLayout\n\
        appender.out.layout.pattern = [%d] %p %m (%c)%n\n\
        rootLogger.level = {level}\n\
        rootLogger.appenderRef.out.ref = out\n"
    );
    std::fs::write(path, text).map_err(|e| ctx(e, format!("writing {}", path.display())))
}

/// `java` with a heap limit, a log4j2 configuration and a wildcard classpath.
pub(crate) fn java(heap: &str, log4j2: &Path, libs: &Path) -> Command {
    let mut cmd = Command::new("java");
    cmd.arg(format!("-Xmx{heap}"))
        .arg(format!("-Dlog4j2.configurationFile={}", log4j2.display()))
        .arg("-cp")
        .arg(libs.join("*"));
    cmd
}

/// A fresh temporary directory `weir-<name>-XXXX`.
pub(crate) fn temp_dir(name: &str) -> io::Result<tempfile::TempDir> {
    tempfile::Builder::new().prefix(&format!("weir-{name}-")).tempdir().map_err(|e| ctx(e, format!("creating a temporary directory for {name}")))
}

/// 16 random bytes from the kernel.
pub(crate) fn random_bytes() -> io::Result<[u8; 16]> {
    use std::io::Read;
    let mut b = [0u8; 16];
    File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(b)
}
