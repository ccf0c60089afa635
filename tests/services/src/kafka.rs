//! `KafkaBroker`: a single-node KRaft Kafka (broker and controller in one JVM) on
//! loopback ports in a temporary directory, its readiness probe (an ApiVersions
//! request over TCP), and `kafka_tool` for running Kafka's command-line classes.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::jars;
use crate::proc::{self, Proc, SIGTERM, ctx};

/// How long `start` and `restart` wait for the broker to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running single-node KRaft broker. Dropping it kills the JVM and removes its data.
pub struct KafkaBroker {
    proc: Option<Proc>,
    port: u16,
    libs: PathBuf,
    dir: tempfile::TempDir,
}

impl KafkaBroker {
    /// Formats a fresh data directory with a random cluster id, starts the
    /// broker and waits (up to 60 s) until it answers an ApiVersions request.
    pub fn start() -> io::Result<KafkaBroker> {
        let libs = jars::libs("kafka")?;
        let dir = proc::temp_dir("kafka")?;
        let (port, controller) = (proc::free_port()?, proc::free_port()?);
        let d = dir.path();
        let props = [
            ("process.roles", "broker,controller".to_string()),
            ("node.id", "1".to_string()),
            ("listeners", format!("PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}")),
            ("advertised.listeners", format!("PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}")),
            ("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT".to_string()),
            ("inter.broker.listener.name", "PLAINTEXT".to_string()),
            ("controller.listener.names", "CONTROLLER".to_string()),
            ("controller.quorum.bootstrap.servers", format!("127.0.0.1:{controller}")),
            ("log.dirs", d.join("data").display().to_string()),
            ("num.partitions", "1".to_string()),
            ("auto.create.topics.enable", "false".to_string()),
            ("offsets.topic.replication.factor", "1".to_string()),
            ("offsets.topic.num.partitions", "4".to_string()),
            ("transaction.state.log.replication.factor", "1".to_string()),
            ("transaction.state.log.min.isr", "1".to_string()),
            ("transaction.state.log.num.partitions", "4".to_string()),
            ("share.coordinator.state.topic.replication.factor", "1".to_string()),
            ("share.coordinator.state.topic.min.isr", "1".to_string()),
            ("group.initial.rebalance.delay.ms", "0".to_string()),
            // After a kill, a restarted broker waits for its old session to time
            // out (9 s by default) before it serves.
            ("broker.heartbeat.interval.ms", "500".to_string()),
            ("broker.session.timeout.ms", "3000".to_string()),
        ];
        let props: Vec<(String, String)> = props.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        proc::write_properties(&d.join("server.properties"), &props)?;
        proc::write_log4j2(&d.join("log4j2.properties"), "info", "SYSTEM_OUT")?;
        let mut format = tool_command(&libs, "kafka.tools.StorageTool")?;
        format.arg("format").arg("--config").arg(d.join("server.properties"));
        // `=`: an id may start with '-', which would read as an option.
        format.arg(format!("--cluster-id={}", cluster_id()?)).arg("--standalone");
        proc::run_logged(&mut format, "kafka-storage format", &d.join("format.log"))?;
        let mut broker = KafkaBroker { proc: None, port, libs, dir };
        broker.restart()?;
        Ok(broker)
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The broker's log (its JVM's stdout and stderr, all runs).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("broker.log")
    }

    /// The last `n` lines of the broker's log.
    pub fn log_tail(&self, n: usize) -> String {
        proc::log_tail(&self.log_path(), n)
    }

    /// Stops the broker: SIGTERM (a controlled shutdown), up to 10 s, then SIGKILL.
    /// Its data stays for `restart`.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.stop(SIGTERM, Duration::from_secs(10));
        }
    }

    /// Kills the broker at once (SIGKILL); its data stays for `restart`.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }

    /// Starts the broker again on the same ports and data (stopping it first if
    /// it runs) and waits until it answers.
    pub fn restart(&mut self) -> io::Result<()> {
        self.stop();
        let d = self.dir.path();
        let mut cmd = proc::java("512m", &d.join("log4j2.properties"), &self.libs);
        // C1 only and the serial collector: starts ~1.5 s sooner on two cores,
        // at a cost in peak throughput that test volumes do not reach.
        cmd.args(["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]).arg("kafka.Kafka").arg(d.join("server.properties")).current_dir(d);
        let mut p = Proc::spawn(&mut cmd, "kafka broker", &self.log_path())?;
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if p.exited().is_some() {
                return Err(p.error("kafka broker did not start"));
            }
            if api_versions(addr).is_ok() {
                self.proc = Some(p);
                return Ok(());
            }
            if Instant::now() > deadline {
                let err = p.error(&format!("kafka broker did not answer ApiVersions on {addr} within {} s", READY_TIMEOUT.as_secs()));
                p.kill();
                return Err(err);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Creates `name` with `partitions` partitions (replication factor 1) with
    /// Kafka's TopicCommand.
    pub fn create_topic(&self, name: &str, partitions: u32) -> io::Result<()> {
        let partitions = partitions.to_string();
        let args = ["--bootstrap-server", &self.bootstrap(), "--create", "--topic", name, "--partitions", &partitions, "--replication-factor", "1"];
        kafka_tool("org.apache.kafka.tools.TopicCommand", &args).map(drop)
    }
}

impl Drop for KafkaBroker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs one of Kafka's command-line classes (e.g.
/// `org.apache.kafka.tools.consumer.ConsoleConsumer`) with the Kafka jars and
/// returns its stdout; an error with its stderr unless it exits 0.
pub fn kafka_tool(class: &str, args: &[&str]) -> io::Result<String> {
    let libs = jars::libs("kafka")?;
    let mut cmd = tool_command(&libs, class)?;
    cmd.args(args).stdin(Stdio::null());
    let out = cmd.output().map_err(|e| ctx(e, format!("running java {class}")))?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "java {class} {} exited with {}:\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `java` set up for a short-lived Kafka tool: small heap, quick start, log
/// lines at WARN and above to stderr (log4j2's default would print to stdout).
fn tool_command(libs: &Path, class: &str) -> io::Result<Command> {
    let log4j2 = libs.with_file_name("log4j2-tools.properties");
    if !log4j2.exists() {
        // Concurrent writers write the same text; the rename makes each write whole.
        let tmp = log4j2.with_extension(format!("{}.tmp", std::process::id()));
        proc::write_log4j2(&tmp, "warn", "SYSTEM_ERR")?;
        std::fs::rename(&tmp, &log4j2)?;
    }
    let mut cmd = proc::java("256m", &log4j2, libs);
    cmd.args(["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", class]);
    Ok(cmd)
}

/// A random Kafka cluster id: 16 random bytes in URL-safe base64 without padding.
fn cluster_id() -> io::Result<String> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let b = proc::random_bytes()?;
    let n = u128::from_be_bytes(b);
    // 21 six-bit digits from the top, then the last 2 bits padded with 4 zero bits.
    let digit = |i: u32| if i < 21 { (n >> (122 - 6 * i)) & 63 } else { (n & 3) << 4 };
    Ok((0..22).map(|i| ALPHABET[digit(i) as usize] as char).collect())
}

/// Sends ApiVersions v0 to `addr` and checks the answer; the number of APIs
/// the broker lists.
fn api_versions(addr: SocketAddr) -> io::Result<usize> {
    const CORRELATION: i32 = 0x5745_4952;
    let timeout = Duration::from_secs(2);
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let client = b"weir-test-services";
    // Request header v1: api_key, api_version, correlation_id, client_id; v0 has no body.
    let mut req = Vec::new();
    req.extend(18i16.to_be_bytes());
    req.extend(0i16.to_be_bytes());
    req.extend(CORRELATION.to_be_bytes());
    req.extend((client.len() as i16).to_be_bytes());
    req.extend(client);
    s.write_all(&(req.len() as i32).to_be_bytes())?;
    s.write_all(&req)?;
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let len = i32::from_be_bytes(len);
    let bad = |what: String| io::Error::new(io::ErrorKind::InvalidData, format!("ApiVersions from {addr}: {what}"));
    if !(10..=1 << 20).contains(&len) {
        return Err(bad(format!("response size {len}")));
    }
    let mut body = vec![0u8; len as usize];
    s.read_exact(&mut body)?;
    // Response header v0: correlation_id; body v0: error_code, [api_key, min_version, max_version].
    let correlation = i32::from_be_bytes(body[0..4].try_into().unwrap());
    let error = i16::from_be_bytes(body[4..6].try_into().unwrap());
    let apis = i32::from_be_bytes(body[6..10].try_into().unwrap());
    if correlation != CORRELATION || error != 0 || apis <= 0 || len as usize != 10 + 6 * apis as usize {
        return Err(bad(format!("correlation id {correlation:#x}, error {error}, {apis} APIs in {len} bytes")));
    }
    Ok(apis as usize)
}
