//! Kafka end to end against a real Apache Kafka 4.4.0 broker (KRaft, started
//! by `weir-test-services` on a loopback port): a keyed word count Kafka ->
//! Wasm -> Kafka read back by Kafka's own Java console consumer at
//! read_committed, exactly once through `kill -9`s, the fault hook between a
//! checkpoint's completion and its transaction's commit, and a broker outage;
//! partitions as Java's default partitioner puts them; offsets committed to
//! the group; and clear errors for an unreachable cluster, a missing topic and
//! a value that is not JSON.


use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::{finish, kill, reference_counts, stderr, weir, weir_cmd, words_text};
use weir_test_services::{KafkaBroker, kafka_tool};

const CONSOLE_CONSUMER: &str = "org.apache.kafka.tools.consumer.ConsoleConsumer";
const GROUP_COMMAND: &str = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand";

/// A broker with an input topic of `lines` text lines over 3 partitions and an
/// empty output topic of 2, and a word-count spec between them.
struct Job {
    kafka: KafkaBroker,
    dir: tempfile::TempDir,
    text: String,
}

impl Job {
    fn new(lines: usize, seed: u64) -> Job {
        let kafka = KafkaBroker::start().unwrap();
        kafka.create_topic("lines", 3).unwrap();
        kafka.create_topic("counts", 2).unwrap();
        let text = words_text(lines, seed);
        produce(&kafka, "lines", text.lines().map(|l| (None, l.as_bytes().to_vec())));
        let dir = tempfile::tempdir().unwrap();
        let job = Job { kafka, dir, text };
        std::fs::write(job.spec(), job.spec_text("100ms")).unwrap();
        job
    }

    fn spec(&self) -> PathBuf {
        self.dir.path().join("pipeline.yaml")
    }

    fn spec_text(&self, interval: &str) -> String {
        let plugin = weir_test_support::plugin_dir().join("word_count.wasm");
        format!(
            r#"name: kafka-wordcount
state:
  dir: {state}
checkpoint:
  interval: {interval}
sources:
  - name: lines
    type: kafka
    bootstrap: {bootstrap}
    topic: lines
    group: wordcount-readers
    until: latest
operators:
  - name: tokenize
    plugin: {plugin}
    input: lines
    config:
      stage: tokenize
  - name: count
    plugin: {plugin}
    input: tokenize
    key_by: key
    parallelism: 2
    config:
      stage: count
sinks:
  - name: out
    type: kafka
    bootstrap: {bootstrap}
    topic: counts
    input: count
"#,
            state = self.dir.path().join("state").display(),
            bootstrap = self.kafka.bootstrap(),
            plugin = plugin.display(),
        )
    }

    fn spawn(&self, env: &[(&str, &str)]) -> Child {
        let spec = self.spec();
        let mut env = env.to_vec();
        env.push(("WEIR_LOG", "info"));
        weir_cmd(&["run", spec.to_str().unwrap(), "--progress", "0"], &env).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()
    }

    fn checkpoints(&self) -> usize {
        let Ok(entries) = std::fs::read_dir(self.dir.path().join("state/checkpoints")) else { return 0 };
        entries.flatten().filter(|e| e.path().join("_manifest.json").exists()).count()
    }

    /// Wait until more than `n` checkpoints are complete; false if the run ended first.
    fn await_checkpoint(&self, child: &mut Child, n: usize) -> bool {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(120) {
            if child.try_wait().unwrap().is_some() {
                return false;
            }
            if self.checkpoints() > n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("no checkpoint completed within 120 s\nbroker log:\n{}", self.kafka.log_tail(30));
    }

    /// The committed output is the reference word count, every running count
    /// exactly once and nothing else, each record keyed by its word in the
    /// partition Java's default partitioner picks for that key.
    fn assert_exactly_once(&self) {
        let expected = reference_counts(&self.text);
        let got = consume_committed(&self.kafka, "counts", expected.len());
        let mut values: Vec<String> = got.iter().map(|r| r.value.clone()).collect();
        values.sort();
        let dups = values.windows(2).filter(|w| w[0] == w[1]).count();
        assert_eq!(dups, 0, "duplicated output records");
        assert_eq!(values.len(), expected.len(), "committed output records vs expected");
        assert!(values == expected, "output differs from the reference word count");
        for r in &got {
            let word: serde_json::Value = serde_json::from_str(&r.value).unwrap();
            assert_eq!(r.key, word["word"].as_str().unwrap(), "the record key is the word");
            assert_eq!(r.partition, java_partition(r.key.as_bytes(), 2), "key {} is not where Java's partitioner puts it", r.key);
        }
    }
}

/// Produce `records` (key, value) to `topic` and wait until all are acknowledged.
fn produce(kafka: &KafkaBroker, topic: &str, records: impl Iterator<Item = (Option<Vec<u8>>, Vec<u8>)>) {
    crate::common::produce(kafka, topic, records.map(|(k, v)| (k, Some(v))));
}

#[derive(Debug)]
struct Consumed {
    partition: i32,
    key: String,
    value: String,
}

/// Everything committed in `topic`, read with Kafka's console consumer at
/// read_committed: it asks for one more record than `expected` and stops when
/// none comes for 10 s, so that extra records show.
fn consume_committed(kafka: &KafkaBroker, topic: &str, expected: usize) -> Vec<Consumed> {
    let max = (expected + 1).to_string();
    let bootstrap = kafka.bootstrap();
    let args = [
        "--bootstrap-server",
        &bootstrap,
        "--topic",
        topic,
        "--from-beginning",
        "--max-messages",
        &max,
        "--timeout-ms",
        "10000",
        "--command-property",
        "isolation.level=read_committed",
        "--formatter-property",
        "print.key=true",
        "--formatter-property",
        "print.partition=true",
        "--formatter-property",
        "key.separator=\t",
    ];
    let out = kafka_tool(CONSOLE_CONSUMER, &args).unwrap_or_else(|e| panic!("{e}\nbroker log:\n{}", kafka.log_tail(30)));
    out.lines()
        .map(|l| {
            let mut f = l.splitn(3, '\t');
            let (p, k, v) = (f.next().unwrap(), f.next().unwrap_or_default(), f.next().unwrap_or_default());
            let partition = p.strip_prefix("Partition:").unwrap_or_else(|| panic!("unexpected console consumer line {l:?}"));
            Consumed { partition: partition.parse().unwrap(), key: k.to_string(), value: v.to_string() }
        })
        .collect()
}

/// The partition Kafka's Java default partitioner picks for a keyed record:
/// murmur2 of the key, made positive, modulo the partition count (written
/// here from Kafka's `Utils.murmur2`, independently of librdkafka).
fn java_partition(key: &[u8], partitions: i32) -> i32 {
    ((murmur2(key) & 0x7fff_ffff) % partitions as u32) as i32
}

/// Kafka's `Utils.murmur2`.
fn murmur2(key: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ key.len() as u32;
    let chunks = key.chunks_exact(4);
    let tail = chunks.remainder();
    for c in chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// The committed offsets of `group`, per `topic` partition, as Kafka's own
/// consumer-group tool shows them.
fn group_offsets(kafka: &KafkaBroker, group: &str) -> BTreeMap<i32, (i64, i64)> {
    let out = kafka_tool(GROUP_COMMAND, &["--bootstrap-server", &kafka.bootstrap(), "--describe", "--group", group]).unwrap();
    let mut m = BTreeMap::new();
    eprintln!("{out}");
    for l in out.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        // GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG ...
        if f.len() >= 6 && f[0] == group
            && let (Ok(p), Ok(c), Ok(e)) = (f[2].parse(), f[3].parse(), f[4].parse())
        {
            m.insert(p, (c, e));
        }
    }
    m
}

#[test]
fn kafka_to_wasm_to_kafka_is_exact_and_commits_offsets_to_the_group() {
    let job = Job::new(20_000, 3);
    finish(job.spawn(&[]));
    job.assert_exactly_once();
    let offsets = group_offsets(&job.kafka, "wordcount-readers");
    assert_eq!(offsets.len(), 3, "{offsets:?}");
    assert_eq!(offsets.values().map(|(c, _)| c).sum::<i64>(), 20_000, "committed offsets cover every line: {offsets:?}");
    assert!(offsets.values().all(|(c, e)| c == e), "no lag left: {offsets:?}");
}

#[test]
fn killed_runs_and_a_crash_before_the_commit_publish_every_count_exactly_once() {
    let job = Job::new(200_000, 5);
    let mut seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    let start_seed = seed;
    let (mut kills, mut resumed, mut faults) = (0, 0, 0);
    loop {
        // The third run aborts itself between a checkpoint's completion and
        // its transaction's commit (the second commit of that run).
        let fault = kills == 2 && faults == 0;
        let env: Vec<(&str, &str)> = if fault { vec![("WEIR_FAULT", "kafka-before-commit:2")] } else { vec![] };
        let mut child = job.spawn(&env);
        if fault {
            let o = child.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&o.stderr).into_owned();
            assert!(!o.status.success() && err.contains("fault injection"), "the fault hook did not fire: {err}");
            resumed += usize::from(err.contains("resuming from chk-"));
            faults += 1;
            continue;
        }
        if kills >= 6 || !job.await_checkpoint(&mut child, job.checkpoints()) {
            let err = finish(child);
            resumed += usize::from(err.contains("resuming from chk-"));
            break;
        }
        // Within the checkpoint interval that follows (longer waits let a
        // fast machine finish the job before six kills).
        std::thread::sleep(Duration::from_millis(seed % 100));
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        if child.try_wait().unwrap().is_some() {
            finish(child);
            break;
        }
        let err = kill(child);
        kills += 1;
        resumed += usize::from(err.contains("resuming from chk-"));
    }
    assert!(kills >= 5, "only {kills} runs were killed mid-run (seed {start_seed})");
    assert_eq!(faults, 1);
    assert!(resumed >= 5, "only {resumed} runs resumed from a checkpoint (seed {start_seed})");
    job.assert_exactly_once();
}

#[test]
fn a_crash_between_the_last_checkpoint_and_its_commit_loses_nothing_of_that_run() {
    let job = Job::new(5_000, 23);
    let o = job.spawn(&[("WEIR_FAULT", "before-final-commit")]).wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success() && err.contains("fault injection"), "the fault hook did not fire: {err}");
    // The run's last checkpoint completed, so the next start begins a new run,
    // but first commits the crashed run's last transaction: every count twice.
    let err = finish(job.spawn(&[]));
    assert!(err.contains("starting a new run"), "{err}");
    let expected = reference_counts(&job.text);
    let mut twice: Vec<String> = expected.iter().flat_map(|c| [c.clone(), c.clone()]).collect();
    twice.sort();
    let mut got: Vec<String> = consume_committed(&job.kafka, "counts", twice.len()).into_iter().map(|r| r.value).collect();
    got.sort();
    assert_eq!(got.len(), twice.len(), "committed records: the crashed run's and the new run's");
    assert!(got == twice, "each run's counts, exactly once each");
}

#[test]
fn a_broker_outage_of_ten_seconds_is_ridden_out() {
    let mut job = Job::new(100_000, 9);
    std::fs::write(job.spec(), job.spec_text("200ms")).unwrap();
    let mut child = job.spawn(&[]);
    assert!(job.await_checkpoint(&mut child, 0), "the run ended before its first checkpoint");
    job.kafka.stop();
    std::thread::sleep(Duration::from_secs(10));
    assert!(child.try_wait().unwrap().is_none(), "the job gave up while the broker was down");
    job.kafka.restart().unwrap();
    let err = finish(child);
    // librdkafka may wait forever for the group coordinator it knew before
    // the restart (confluentinc/librdkafka#5511); the sink replaces such a
    // producer. Which happens varies from run to run.
    if err.contains("replacing the transactional producer") {
        eprintln!("a transactional producer was stuck after the restart and was replaced");
    }
    job.assert_exactly_once();
}

/// A producer stuck recording an epoch's progress (as librdkafka's can be
/// after a broker restart) is replaced by a new one that fences it and sends
/// the epoch again: the job ends with every count once.
#[test]
fn a_transactional_producer_stuck_recording_progress_is_replaced() {
    let job = Job::new(20_000, 12);
    std::fs::write(job.spec(), job.spec_text("200ms")).unwrap();
    let child = job.spawn(&[("WEIR_FAULT", "kafka-progress-stuck:1")]);
    let err = finish(child);
    assert!(err.contains("fault injection: recording progress hangs"), "the fault hook did not fire: {err}");
    assert!(err.contains("is stuck after 15s; replacing the transactional producer"), "{err}");
    job.assert_exactly_once();
}

fn run_spec(dir: &Path, spec: &str) -> (Output, Duration) {
    let path = dir.join("bad.yaml");
    std::fs::write(&path, spec).unwrap();
    let t = Instant::now();
    let o = weir(&["run", path.to_str().unwrap(), "--progress", "0"], &[]);
    (o, t.elapsed())
}

fn source_to_stdout(bootstrap: &str, topic: &str, format: &str) -> String {
    format!(
        "name: bad\nsources:\n  - name: in\n    type: kafka\n    bootstrap: {bootstrap}\n    topic: {topic}\n    format: {format}\n    until: latest\nsinks:\n  - name: out\n    type: stdout\n    input: in\n"
    )
}

#[test]
fn bad_clusters_topics_and_records_fail_clearly_and_soon() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 1.
    let (o, took) = run_spec(dir.path(), &source_to_stdout("127.0.0.1:1", "t", "raw"));
    let err = stderr(&o);
    assert!(!o.status.success());
    assert!(err.contains("cannot reach the Kafka cluster at 127.0.0.1:1"), "{err}");
    assert!(took < Duration::from_secs(60), "took {took:?}");

    let kafka = KafkaBroker::start().unwrap();
    let (o, took) = run_spec(dir.path(), &source_to_stdout(&kafka.bootstrap(), "missing", "raw"));
    let err = stderr(&o);
    assert!(!o.status.success());
    assert!(err.contains(&format!("topic 'missing' does not exist in the Kafka cluster at {}", kafka.bootstrap())), "{err}");
    assert!(took < Duration::from_secs(60), "took {took:?}");

    kafka.create_topic("events", 1).unwrap();
    produce(&kafka, "events", [br#"{"a":1}"#.to_vec(), br#"{"a":2}"#.to_vec(), b"not json".to_vec()].into_iter().map(|v| (None, v)));
    let (o, _) = run_spec(dir.path(), &source_to_stdout(&kafka.bootstrap(), "events", "json"));
    let err = stderr(&o);
    assert!(!o.status.success());
    assert!(err.contains("topic events partition 0 offset 2: the record's value is not JSON (format: json)"), "{err}");

    // A sink topic that does not exist, refused before anything runs.
    let spec = format!(
        "name: bad\nsources:\n  - name: in\n    type: generator\n    count: 10\nsinks:\n  - name: out\n    type: kafka\n    bootstrap: {}\n    topic: nowhere\n    input: in\n",
        kafka.bootstrap()
    );
    let (o, _) = run_spec(dir.path(), &spec);
    let err = stderr(&o);
    assert!(!o.status.success());
    assert!(err.contains("topic 'nowhere' does not exist"), "{err}");
}

#[test]
fn murmur2_matches_kafkas_published_values() {
    // The values of Kafka's own UtilsTest.testMurmur2.
    let cases: [(&[u8], i32); 6] = [
        (b"21", -973932308),
        (b"foobar", -790332482),
        (b"a-little-bit-long-string", -985981536),
        (b"a-little-bit-longer-string", -1486304829),
        (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
        (b"abc", 479470107),
    ];
    for (key, want) in cases {
        assert_eq!(murmur2(key) as i32, want, "{}", String::from_utf8_lossy(key));
    }
}

#[test]
fn the_kafka_clicks_example_counts_every_users_minute_once() {
    let kafka = KafkaBroker::start().unwrap();
    kafka.create_topic("clicks", 3).unwrap();
    kafka.create_topic("clicks-per-user", 2).unwrap();
    // 3000 clicks of 8 users, 0-2 s apart, keyed by user (so each user's clicks
    // are in order in one partition).
    let (mut x, mut t) = (17u64, 1_767_225_600_000i64);
    let mut clicks = Vec::new();
    let mut expected: BTreeMap<(String, i64), u64> = BTreeMap::new();
    for _ in 0..3000 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let user = format!("user-{}", (x >> 33) % 8);
        t += ((x >> 40) % 2000) as i64;
        *expected.entry((user.clone(), t - t % 60_000)).or_default() += 1;
        let value = serde_json::json!({"user": user, "page": "/", "ts": t}).to_string();
        clicks.push((Some(user.into_bytes()), value.into_bytes()));
    }
    produce(&kafka, "clicks", clicks.into_iter());
    let state = tempfile::tempdir().unwrap();
    let plugins = weir_test_support::plugin_dir();
    let bootstrap = kafka.bootstrap();
    let env = [
        ("WEIR_KAFKA", bootstrap.as_str()),
        ("WEIR_PLUGINS", plugins.to_str().unwrap()),
        ("WEIR_STATE", state.path().to_str().unwrap()),
        ("WEIR_CHECKPOINT_INTERVAL", "200ms"),
    ];
    let o = weir(&["run", "examples/kafka-clicks/pipeline.yaml", "--progress", "0"], &env);
    assert!(o.status.success(), "{}", stderr(&o));
    let got = consume_committed(&kafka, "clicks-per-user", expected.len());
    let mut windows: BTreeMap<(String, i64), u64> = BTreeMap::new();
    for r in &got {
        let w: serde_json::Value = serde_json::from_str(&r.value).unwrap();
        let (user, start, end) = (w["key"].as_str().unwrap().to_string(), w["start"].as_i64().unwrap(), w["end"].as_i64().unwrap());
        assert_eq!(end - start, 60_000, "{w}");
        assert_eq!(r.key, user);
        let old = windows.insert((user, start), w["count"].as_u64().unwrap());
        assert!(old.is_none(), "window fired twice: {w}");
    }
    assert_eq!(windows, expected);
}
