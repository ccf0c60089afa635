//! `type: kafka` sinks. Keys are the records' keys, partitions chosen by
//! murmur2 of the key as Kafka's Java default partitioner does (so Java
//! consumers and Kafka Streams co-partition with Weir's output), the topic
//! fixed or taken from a field of each record's JSON value.
//!
//! `delivery: exactly-once` (the default when the pipeline checkpoints): the
//! records of each checkpoint epoch go into a Kafka transaction, flushed at
//! the epoch's barrier (pre-commit) and committed when the checkpoint
//! completes. Each task has a few transactional producers
//! (`<prefix>-<task>-<slot>`), one per epoch in flight. The records of epochs
//! not yet committed are also kept in the sink's part of the checkpoint, and
//! every transaction records its epoch in the task's progress group
//! (`progress.rs`), so that after a crash `recover` fences the old producers,
//! finds which of the checkpoint's epochs did not commit, and sends them
//! again in a transaction of their own: nothing lost, nothing twice
//! (`docs/kafka-exactly-once.md`). `delivery: at-least-once` flushes at
//! barriers and the end, without transactions.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::message::{Header as KafkaHeader, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use serde::{Deserialize, Serialize};
use weir_engine::{NodeRestore, RecordBatch, RowKind, Sink, SinkError, SinkFactory, SnapshotFile, SnapshotWriter, TaskContext, FINAL_EPOCH};
use weir_state::StateError;
use weir_spec::{BuildContext, BuildError, Check, SinkConnector, SpecError};

use crate::client::{self, KafkaError};
use crate::progress::Progress;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Delivery {
    ExactlyOnce,
    AtLeastOnce,
}

/// `type: kafka` in `sinks:`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSinkConfig {
    pub bootstrap: String,
    /// A topic, or `$.field`: the topic is that field of each record's JSON value.
    pub topic: String,
    /// `exactly-once` (default when the pipeline checkpoints) or `at-least-once`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<Delivery>,
    /// Values must be JSON (`json`) or are bytes as they are (`raw`,
    /// default); a changelog is written as upserts by key (`upsert`: -D a
    /// tombstone, -U left out) or as Debezium events (`debezium-json`).
    #[serde(default)]
    pub format: crate::source::Format,
    /// The prefix of the transactional ids and progress groups (default
    /// `weir-<pipeline>-<sink>`): unique per sink in the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transactional_id_prefix: Option<String>,
    /// The topic whose partition 0 carries the progress offsets (default:
    /// `topic`; needed when `topic` is a field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_topic: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
}

impl KafkaSinkConfig {
    fn topic_field(&self) -> Option<Vec<String>> {
        self.topic.strip_prefix("$.").map(|p| p.split('.').map(str::to_string).collect())
    }
}

/// The `kafka` sink type.
pub struct KafkaSinks;

impl SinkConnector for KafkaSinks {
    type Config = KafkaSinkConfig;
    const TYPE: &'static str = "kafka";

    fn check(&self, c: &KafkaSinkConfig, cx: &Check<'_>) -> Result<(), SpecError> {
        if c.bootstrap.trim().is_empty() {
            return Err(cx.error("bootstrap", "the brokers to connect to, as host:port[,host:port...]"));
        }
        if c.topic.trim().is_empty() || c.topic_field().is_some_and(|p| p.iter().any(String::is_empty)) {
            return Err(cx.error("topic", "a topic name, or '$.field' naming the topic in each record's JSON value"));
        }
        if c.topic_field().is_some() && c.progress_topic.is_none() && c.delivery != Some(Delivery::AtLeastOnce) {
            return Err(cx.error(
                "progress_topic",
                "with a topic per record, exactly-once needs a progress_topic (an existing topic whose partition 0 records which transactions committed)",
            ));
        }
        client::check_properties(&c.properties).map_err(|m| cx.error("properties", m))?;
        client::check_property_paths(&c.properties, cx)
    }

    fn rejects_changelog(&self, c: &KafkaSinkConfig) -> Option<String> {
        use crate::source::Format;
        match c.format {
            Format::Upsert | Format::DebeziumJson => None,
            Format::Raw | Format::Json => Some(
                "a Kafka sink with format raw or json writes every row as a new record: give it format: upsert (deletes as tombstones) or format: debezium-json".into(),
            ),
        }
    }

    fn build(&self, c: KafkaSinkConfig, cx: &BuildContext<'_>) -> Result<Arc<dyn SinkFactory>, BuildError> {
        let delivery = match (c.delivery, cx.env.checkpointing) {
            (Some(Delivery::ExactlyOnce), false) => {
                return Err(BuildError::new(
                    "delivery: exactly-once commits a transaction per checkpoint, but the pipeline does not checkpoint (set checkpoint.interval and state.dir)",
                ));
            }
            (Some(d), _) => d,
            (None, true) => Delivery::ExactlyOnce,
            (None, false) => Delivery::AtLeastOnce,
        };
        let prefix = c.transactional_id_prefix.clone().unwrap_or_else(|| format!("weir-{}-{}", cx.env.pipeline, cx.node));
        let progress_topic = c.progress_topic.clone().unwrap_or_else(|| c.topic.clone());
        let topic = match c.topic_field() {
            Some(path) => Topic::Field(path),
            None => Topic::Fixed(c.topic.clone()),
        };
        Ok(Arc::new(KafkaSink { shared: Arc::new(Shared { config: c, delivery, prefix, progress_topic, topic }), run: Mutex::default() }))
    }
}

#[derive(Clone, Debug)]
enum Topic {
    Fixed(String),
    Field(Vec<String>),
}

struct KafkaSink {
    shared: Arc<Shared>,
    /// The run's id: new on a fresh start, the restored checkpoint's after a
    /// restore; progress offsets carry it.
    run: Mutex<Option<String>>,
}

/// What a sink and its tasks' writers share.
struct Shared {
    config: KafkaSinkConfig,
    delivery: Delivery,
    prefix: String,
    progress_topic: String,
    topic: Topic,
}

impl std::ops::Deref for KafkaSink {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.shared
    }
}

/// A record as sent, and kept for the checkpoint until its epoch commits;
/// `value: None` is a tombstone.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Rec {
    topic: String,
    key: Vec<u8>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Vec<u8>)>,
    timestamp: Option<i64>,
}

/// A task's part of a checkpoint.
#[derive(Serialize, Deserialize)]
struct SinkState {
    run: String,
    /// Slots this task's producers used so far (all are fenced on recovery).
    slots: u32,
    /// Epochs pre-committed and not known to be committed, with their records.
    pending: Vec<(u64, Vec<Rec>)>,
}

/// The sink state of checkpoints of Weir before tombstones (values always
/// present), still restored.
mod v1 {
    use serde::Deserialize;

    #[derive(Deserialize)]
    pub(super) struct Rec {
        topic: String,
        key: Vec<u8>,
        value: Vec<u8>,
        headers: Vec<(String, Vec<u8>)>,
        timestamp: Option<i64>,
    }

    #[derive(Deserialize)]
    pub(super) struct SinkState {
        run: String,
        slots: u32,
        pending: Vec<(u64, Vec<Rec>)>,
    }

    pub(super) const STATE_FILE: &str = "kafka-sink.state";

    impl From<SinkState> for super::SinkState {
        fn from(s: SinkState) -> Self {
            let rec = |r: Rec| super::Rec { topic: r.topic, key: r.key, value: Some(r.value), headers: r.headers, timestamp: r.timestamp };
            super::SinkState { run: s.run, slots: s.slots, pending: s.pending.into_iter().map(|(e, rs)| (e, rs.into_iter().map(rec).collect())).collect() }
        }
    }
}

const STATE_FILE: &str = "kafka-sink.v2.state";
/// How long a flush or commit may wait for the cluster (a broker outage
/// shorter than this is ridden out).
const FLUSH_TIMEOUT: Duration = Duration::from_secs(120);
/// How long recording an epoch's progress may take before its producer
/// counts as stuck and is replaced: librdkafka 2.10 and later can wait
/// forever for a group coordinator it cached before a broker restart
/// (confluentinc/librdkafka#5511), ignoring the call's timeout, while the
/// broker aborts the idle transaction when `transaction.timeout.ms` passes.
const STUCK_AFTER: Duration = Duration::from_secs(15);

/// Delivery failures, reported by librdkafka's callback.
#[derive(Default)]
struct Failures(Mutex<Option<String>>);

impl ClientContext for Failures {}

impl ProducerContext for Failures {
    type DeliveryOpaque = ();

    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        if let Err((e, m)) = r {
            use rdkafka::message::Message;
            let mut f = self.0.lock().unwrap();
            if f.is_none() {
                *f = Some(format!("a record for topic {} partition {} was not delivered: {e}", m.topic(), m.partition()));
            }
        }
    }
}

type Prod = Arc<BaseProducer<Failures>>;

fn sink_err(e: KafkaError) -> SinkError {
    SinkError(Box::new(e))
}

/// A random id for a run.
fn new_run() -> String {
    let mut h = std::hash::DefaultHasher::new();
    std::hash::Hash::hash(&(std::time::SystemTime::now(), std::process::id(), std::thread::current().id()), &mut h);
    format!("{:016x}{:08x}", std::hash::Hasher::finish(&h), std::process::id())
}

impl Shared {
    fn producer(&self, transactional_id: Option<&str>) -> Result<Prod, KafkaError> {
        let c = &self.config;
        let mut ours = vec![("enable.idempotence", "true"), ("partitioner", "murmur2_random"), ("acks", "all")];
        if let Some(id) = transactional_id {
            ours.push(("transactional.id", id));
        }
        let cfg = client::config(&c.bootstrap, &ours, &c.properties);
        cfg.create_with_context(Failures::default())
            .map(Arc::new)
            .map_err(|e| KafkaError::client(format!("cannot create a producer for {}", c.bootstrap), e))
    }

    /// A transactional producer, fenced in: any older producer with its id
    /// (a zombie of a failed run) can no longer commit, and its open
    /// transaction is aborted.
    fn transactional(&self, task: u32, slot: u32) -> Result<Prod, KafkaError> {
        let id = format!("{}-{task}-{slot}", self.prefix);
        let p = self.producer(Some(&id))?;
        p.init_transactions(FLUSH_TIMEOUT).map_err(|e| self.unreachable_or(e, format!("cannot start transactions as {id}")))?;
        Ok(p)
    }

    fn unreachable_or(&self, e: rdkafka::error::KafkaError, what: String) -> KafkaError {
        match e.rdkafka_error_code() {
            Some(RDKafkaErrorCode::OperationTimedOut) | Some(RDKafkaErrorCode::AllBrokersDown) | Some(RDKafkaErrorCode::BrokerTransportFailure) => {
                KafkaError::Unreachable { bootstrap: self.config.bootstrap.clone(), message: format!("{what}: {e}") }
            }
            _ => KafkaError::client(what, e),
        }
    }

    fn progress(&self, task: u32) -> Result<Progress, KafkaError> {
        Progress::new(&self.config.bootstrap, &self.config.properties, &format!("{}-{task}", self.prefix), &self.progress_topic)
    }

    /// Send `records` and the progress of `epoch` in one transaction of `p`
    /// (slot `slot` of task `task`), and commit it.
    fn resend(&self, task: u32, slot: u32, p: Prod, progress: &Progress, run: &str, epoch: u64, records: &[Rec]) -> Result<Prod, KafkaError> {
        p.begin_transaction().map_err(|e| KafkaError::client("cannot begin a transaction", e))?;
        for r in records {
            send(&p, r)?;
        }
        let p = self.record_progress(task, slot, p, progress, run, epoch, records)?;
        p.commit_transaction(FLUSH_TIMEOUT).map_err(|e| KafkaError::client(format!("cannot commit the resent epoch {epoch}"), e))?;
        delivered(&p)?;
        Ok(p)
    }

    /// Add the progress of `epoch` to the open transaction of `p` (slot
    /// `slot` of task `task`), which holds `records`. A producer stuck at it
    /// is replaced by a new one with its transactional id, which fences it
    /// (the broker aborts its transaction), and the epoch's records are sent
    /// again in the new producer's transaction. Returns the producer whose
    /// transaction now holds the epoch.
    #[allow(clippy::too_many_arguments)]
    fn record_progress(&self, task: u32, slot: u32, mut p: Prod, progress: &Progress, run: &str, epoch: u64, records: &[Rec]) -> Result<Prod, KafkaError> {
        let deadline = Instant::now() + FLUSH_TIMEOUT;
        loop {
            match send_offsets_watched(&p, progress.offsets(epoch, run)?, progress.group_metadata()?)? {
                Some(r) => {
                    r.map_err(|e| KafkaError::client(format!("epoch {epoch}: cannot record progress"), e))?;
                    return Ok(p);
                }
                None if Instant::now() >= deadline => {
                    return Err(KafkaError::Other(format!(
                        "epoch {epoch}: the transaction's progress could not be recorded within {}s (group coordinator of {}-{task} unreachable)",
                        FLUSH_TIMEOUT.as_secs(),
                        self.prefix
                    )));
                }
                None => {
                    tracing::warn!(
                        sink = self.prefix,
                        task,
                        epoch,
                        records = records.len(),
                        "recording the progress of epoch {epoch} is stuck after {}s; replacing the transactional producer and sending the epoch's records again",
                        STUCK_AFTER.as_secs()
                    );
                    p = self.transactional(task, slot)?;
                    p.begin_transaction().map_err(|e| KafkaError::client("cannot begin a transaction", e))?;
                    for r in records {
                        send(&p, r)?;
                    }
                }
            }
        }
    }
}

/// Fault injection for tests (`WEIR_FAULT=kafka-progress-stuck:N`): the
/// N-th progress record of the process hangs, as librdkafka's does when it
/// waits for a group coordinator it cached before a broker restart.
fn progress_fault() -> bool {
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    static AT: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    let at = AT.get_or_init(|| {
        std::env::var("WEIR_FAULT").ok().and_then(|f| f.strip_prefix("kafka-progress-stuck:").and_then(|n| n.parse().ok()))
    });
    at.is_some_and(|n| CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == n)
}

/// `send_offsets_to_transaction` on a thread of its own, waited for at most
/// `STUCK_AFTER` (`None`: still running; the thread keeps its producer until
/// the call returns, failing once the producer is fenced).
fn send_offsets_watched(
    p: &Prod,
    offsets: rdkafka::TopicPartitionList,
    group: rdkafka::consumer::ConsumerGroupMetadata,
) -> Result<Option<rdkafka::error::KafkaResult<()>>, KafkaError> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let p = p.clone();
    let stuck = progress_fault();
    std::thread::Builder::new()
        .name("weir-kafka-progress".into())
        .spawn(move || {
            if stuck {
                tracing::error!("fault injection: recording progress hangs (as librdkafka#5511 does) for {}s", 2 * STUCK_AFTER.as_secs());
                std::thread::sleep(2 * STUCK_AFTER);
            }
            let _ = tx.send(p.send_offsets_to_transaction(&offsets, &group, FLUSH_TIMEOUT));
        })
        .map_err(|e| KafkaError::Other(format!("cannot start a thread to record progress: {e}")))?;
    match rx.recv_timeout(STUCK_AFTER) {
        Ok(r) => Ok(Some(r)),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Ok(None),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(KafkaError::Other("the thread recording progress ended without an answer".into())),
    }
}

/// Send one record, waiting while librdkafka's queue is full.
fn send(p: &Prod, r: &Rec) -> Result<(), KafkaError> {
    let mut headers = OwnedHeaders::new_with_capacity(r.headers.len());
    for (k, v) in &r.headers {
        headers = headers.insert(KafkaHeader { key: k, value: Some(v) });
    }
    let mut rec = BaseRecord::to(&r.topic).key(&r.key[..]).headers(headers);
    if let Some(v) = &r.value {
        rec = rec.payload(&v[..]);
    }
    if let Some(t) = r.timestamp {
        rec = rec.timestamp(t);
    }
    loop {
        match p.send(rec) {
            Ok(()) => return Ok(()),
            Err((e, back)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                p.poll(Duration::from_millis(50));
                rec = back;
            }
            Err((e, _)) => return Err(KafkaError::client(format!("cannot send a record to topic {}", r.topic), e)),
        }
    }
}

/// The first delivery failure since the last look, if any.
fn delivered(p: &Prod) -> Result<(), KafkaError> {
    match p.context().0.lock().unwrap().take() {
        Some(m) => Err(KafkaError::Other(m)),
        None => Ok(()),
    }
}

impl SinkFactory for KafkaSink {
    fn create(&self, ctx: &TaskContext) -> Result<Box<dyn Sink>, SinkError> {
        // The topic must exist (a record for a missing one would wait and fail late).
        if let Topic::Fixed(t) = &self.topic {
            let probe: rdkafka::consumer::BaseConsumer = client::config(&self.config.bootstrap, &[], &self.config.properties)
                .create()
                .map_err(|e| sink_err(KafkaError::client("cannot create a metadata client", e)))?;
            client::partitions(&probe, &self.config.bootstrap, t).map_err(sink_err)?;
        }
        let mode = match self.delivery {
            Delivery::AtLeastOnce => Mode::AtLeastOnce(self.producer(None).map_err(sink_err)?),
            Delivery::ExactlyOnce => {
                let run = self.run.lock().unwrap().clone().unwrap_or_else(new_run);
                let progress = self.progress(ctx.task_index).map_err(sink_err)?;
                let first = self.transactional(ctx.task_index, 0).map_err(sink_err)?;
                first.begin_transaction().map_err(|e| sink_err(KafkaError::client("cannot begin a transaction", e)))?;
                Mode::ExactlyOnce(Box::new(Eos {
                    run,
                    progress,
                    current: (0, first),
                    free: VecDeque::new(),
                    slots: 1,
                    open: Vec::new(),
                    pending: BTreeMap::new(),
                }))
            }
        };
        let fault = std::env::var("WEIR_FAULT").ok().and_then(|f| f.strip_prefix("kafka-before-commit:").and_then(|n| n.parse().ok()));
        Ok(Box::new(Writer { sink: self.shared.clone(), task: ctx.task_index, mode, fault, commits: 0 }))
    }

    /// Finish what a crash cut short: fence every producer of the
    /// checkpoint's tasks, and send again, in a transaction of their own,
    /// the epochs of the restored checkpoint whose transactions did not
    /// commit (the task's progress group says which did).
    fn recover(&self, restored: Option<(u64, bool)>, state: Option<&NodeRestore>) -> Result<(), SinkError> {
        let states: Vec<(u32, SinkState)> = match state {
            None => Vec::new(),
            Some(n) => {
                let mut v = Vec::new();
                for (task, files) in n.files.iter().enumerate() {
                    let unreadable = |path: &std::path::Path, e: postcard::Error| SinkError::msg(format!("unreadable Kafka sink state {}: {e}", path.display()));
                    let read = |path: &std::path::Path| std::fs::read(path).map_err(|e| SinkError::msg(format!("cannot read {}: {e}", path.display())));
                    if let Some((_, path)) = files.iter().find(|(name, _)| name == STATE_FILE) {
                        let s: SinkState = postcard::from_bytes(&read(path)?).map_err(|e| unreadable(path, e))?;
                        v.push((task as u32, s));
                    } else if let Some((_, path)) = files.iter().find(|(name, _)| name == v1::STATE_FILE) {
                        let s: v1::SinkState = postcard::from_bytes(&read(path)?).map_err(|e| unreadable(path, e))?;
                        v.push((task as u32, s.into()));
                    }
                }
                v
            }
        };
        let run = match (restored, states.first()) {
            (Some(_), Some((_, s))) => s.run.clone(),
            _ => new_run(),
        };
        *self.run.lock().unwrap() = Some(run.clone());
        if self.delivery == Delivery::AtLeastOnce {
            return Ok(());
        }
        for (task, s) in states {
            // Fence every slot the task used; slot 0 resends.
            let mut producers = Vec::new();
            for slot in 0..s.slots.max(1) {
                producers.push(self.transactional(task, slot).map_err(sink_err)?);
            }
            let progress = self.progress(task).map_err(sink_err)?;
            let committed = progress.committed(&run).map_err(sink_err)?;
            for (epoch, records) in s.pending.iter().filter(|(e, _)| weir_engine::covers(restored, state, task, *e)) {
                if committed.is_some_and(|c| c >= *epoch) {
                    continue;
                }
                tracing::warn!(
                    sink = self.prefix,
                    task,
                    epoch,
                    records = records.len(),
                    "the transaction of completed checkpoint {epoch} did not commit before the job stopped; sending its records again"
                );
                producers[0] = self.resend(task, 0, producers[0].clone(), &progress, &run, *epoch, records).map_err(sink_err)?;
            }
        }
        Ok(())
    }
}

enum Mode {
    AtLeastOnce(Prod),
    ExactlyOnce(Box<Eos>),
}

struct Eos {
    run: String,
    progress: Progress,
    /// The producer of the open transaction, by slot.
    current: (u32, Prod),
    free: VecDeque<(u32, Prod)>,
    /// Slots made so far.
    slots: u32,
    /// Records of the open epoch.
    open: Vec<Rec>,
    /// Pre-committed epochs awaiting their checkpoint's completion.
    pending: BTreeMap<u64, (u32, Prod, Arc<Vec<Rec>>)>,
}

struct Writer {
    sink: Arc<Shared>,
    task: u32,
    mode: Mode,
    /// Fault injection for tests (`WEIR_FAULT=kafka-before-commit:N`): abort
    /// the process before the N-th commit, after its checkpoint completed.
    fault: Option<u64>,
    commits: u64,
}

impl Writer {
    fn topic_of(&self, value: &[u8]) -> Result<String, String> {
        match &self.sink.topic {
            Topic::Fixed(t) => Ok(t.clone()),
            Topic::Field(path) => {
                let v: serde_json::Value =
                    serde_json::from_slice(value).map_err(|e| format!("the value is not JSON ({e}), so it names no topic"))?;
                let mut cur = &v;
                for p in path {
                    cur = cur.get(p).ok_or_else(|| format!("the value has no field '{}' naming its topic", path.join(".")))?;
                }
                match cur {
                    serde_json::Value::String(s) if !s.is_empty() => Ok(s.clone()),
                    other => Err(format!("field '{}' is {other}, not a topic name", path.join("."))),
                }
            }
        }
    }
}

impl Sink for Writer {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        use crate::source::Format;
        let format = self.sink.config.format;
        for i in 0..batch.len() {
            let r = batch.row(i);
            if format != Format::Raw && let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(r.value) {
                return Err(SinkError::in_row(i, KafkaError::Other(format!("the record's value is not JSON (format: {}): {e}", format.name()))));
            }
            let kind = batch.kind(i);
            let value = match format {
                Format::Raw | Format::Json => Some(r.value.to_vec()),
                Format::Upsert => match kind {
                    // The +U after it writes the key's new row.
                    RowKind::UpdateBefore => continue,
                    RowKind::Delete => None,
                    RowKind::Insert | RowKind::UpdateAfter => Some(r.value.to_vec()),
                },
                Format::DebeziumJson => Some(weir_connectors::debezium::encode(kind, r.value)),
            };
            let topic = self.topic_of(r.value).map_err(SinkError::msg)?;
            let rec = Rec {
                topic,
                key: r.key.to_vec(),
                value,
                headers: batch.headers_of(i).map(|h| (h.name.clone(), h.value.clone())).collect(),
                timestamp: (r.timestamp != weir_engine::NO_TIMESTAMP).then_some(r.timestamp),
            };
            match &mut self.mode {
                Mode::AtLeastOnce(p) => send(p, &rec).map_err(sink_err)?,
                Mode::ExactlyOnce(e) => {
                    send(&e.current.1, &rec).map_err(sink_err)?;
                    e.open.push(rec);
                }
            }
        }
        let p = match &self.mode {
            Mode::AtLeastOnce(p) => p,
            Mode::ExactlyOnce(e) => &e.current.1,
        };
        p.poll(Duration::ZERO);
        delivered(p).map_err(sink_err)
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        match &self.mode {
            Mode::AtLeastOnce(p) => {
                p.flush(FLUSH_TIMEOUT).map_err(|e| sink_err(KafkaError::client("cannot flush", e)))?;
                delivered(p).map_err(sink_err)
            }
            // Output becomes visible at commits only.
            Mode::ExactlyOnce(_) => Ok(()),
        }
    }

    /// Close epoch `epoch`'s transaction for writing: its records and its
    /// progress are flushed (the first phase), and the next epoch goes on in
    /// another producer's transaction.
    fn pre_commit(&mut self, epoch: u64) -> Result<(), SinkError> {
        let sink = self.sink.clone();
        let task = self.task;
        let Mode::ExactlyOnce(e) = &mut self.mode else { return self.flush() };
        let slot = e.current.0;
        let p = sink.record_progress(task, slot, e.current.1.clone(), &e.progress, &e.run, epoch, &e.open).map_err(sink_err)?;
        e.current.1 = p;
        let p = &e.current.1;
        p.flush(FLUSH_TIMEOUT).map_err(|err| sink_err(KafkaError::client(format!("epoch {epoch}: cannot flush"), err)))?;
        delivered(p).map_err(sink_err)?;
        let next = match e.free.pop_front() {
            Some(n) => n,
            None => {
                let slot = e.slots;
                e.slots += 1;
                (slot, sink.transactional(task, slot).map_err(sink_err)?)
            }
        };
        next.1.begin_transaction().map_err(|err| sink_err(KafkaError::client("cannot begin a transaction", err)))?;
        let (slot, done) = std::mem::replace(&mut e.current, next);
        e.pending.insert(epoch, (slot, done, Arc::new(std::mem::take(&mut e.open))));
        Ok(())
    }

    fn snapshot(&mut self, _epoch: u64, dir: &std::path::Path) -> Result<Option<SnapshotWriter>, SinkError> {
        let Mode::ExactlyOnce(e) = &self.mode else { return Ok(None) };
        let pending: Vec<(u64, Arc<Vec<Rec>>)> = e.pending.iter().map(|(ep, (_, _, r))| (*ep, r.clone())).collect();
        let (run, slots, path) = (e.run.clone(), e.slots, dir.join(STATE_FILE));
        Ok(Some(Box::new(move || {
            let state = SinkState { run, slots, pending: pending.into_iter().map(|(ep, r)| (ep, r.to_vec())).collect() };
            let bytes = postcard::to_allocvec(&state).map_err(|e| StateError::Storage(format!("cannot encode the Kafka sink's state: {e}")))?;
            std::fs::write(&path, bytes).map_err(|e| StateError::Storage(format!("cannot write {}: {e}", path.display())))?;
            Ok(vec![SnapshotFile { path, name: STATE_FILE.into(), shared: false }])
        })))
    }

    /// Checkpoint `epoch` is complete: commit the transactions of the epochs
    /// up to it (the second phase).
    fn commit(&mut self, epoch: u64) -> Result<(), SinkError> {
        let Mode::ExactlyOnce(e) = &mut self.mode else { return Ok(()) };
        let later = e.pending.split_off(&epoch.saturating_add(1).min(FINAL_EPOCH));
        let due = std::mem::replace(&mut e.pending, later);
        let mut due: Vec<_> = due.into_iter().collect();
        if epoch == FINAL_EPOCH {
            due.extend(std::mem::take(&mut e.pending));
        }
        for (ep, (slot, p, _)) in due {
            self.commits += 1;
            if self.fault == Some(self.commits) {
                tracing::error!(epoch = ep, "fault injection: stopping before the commit of a completed checkpoint's transaction");
                std::process::abort();
            }
            p.commit_transaction(FLUSH_TIMEOUT)
                .map_err(|err| sink_err(KafkaError::client(format!("cannot commit the transaction of checkpoint {ep}"), err)))?;
            delivered(&p).map_err(sink_err)?;
            let Mode::ExactlyOnce(e) = &mut self.mode else { unreachable!() };
            e.free.push_back((slot, p));
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.flush()
    }
}
