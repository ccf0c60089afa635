//! `type: kafka` sources: each task reads the partitions it owns (see
//! `assign.rs`) with its own consumer in assign mode (no group rebalancing:
//! assignment is Weir's, and survives restores at another parallelism);
//! offsets are part of checkpoints, and committed to `group` when a
//! checkpoint completes, so lag shows in Kafka's own tools. Records carry the
//! Kafka key, value, headers and timestamp (the event time unless the spec's
//! `timestamp:` names a field); each partition is a split, so watermarks are
//! kept per partition.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Headers, Message, Timestamp};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use weir_engine::{Header, Origin, RecordBatch, Rejected, RowKind, Source, SourceError, SourceFactory, SourcePoll, TaskContext, NO_TIMESTAMP};
use weir_spec::units::Dur;
use weir_spec::{BuildContext, BuildError, Changelog, Check, RecordShape, SourceConnector, SpecError};

use crate::client::{self, KafkaError};
use weir_connectors::debezium::Rows;

/// How record keys and values are read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Bytes as they are.
    #[default]
    Raw,
    /// JSON: a record that is not fails the source, naming it.
    Json,
    /// Debezium change events (values only): a changelog of inserts,
    /// updates and deletes (`debezium.rs`).
    #[serde(rename = "debezium-json")]
    DebeziumJson,
    /// JSON values as upserts by key, a record without a value deleting its
    /// key (Flink's `upsert-kafka`): a changelog of +U and -D rows, a delete's
    /// row being its key (a JSON object of the key's fields).
    Upsert,
}

impl Format {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Json => "json",
            Format::DebeziumJson => "debezium-json",
            Format::Upsert => "upsert",
        }
    }
}

/// Where a partition starts reading when no checkpoint says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Start {
    Earliest,
    Latest,
    /// The group's committed offsets (earliest where it has none).
    Committed,
    /// The first record at or after this time (ms since the epoch).
    At(i64),
}

/// `type: kafka` in `sources:`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSourceConfig {
    /// `host:port[,host:port...]`
    pub bootstrap: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topics: Vec<String>,
    /// A regular expression over topic names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// The consumer group offsets are committed to when checkpoints complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// `earliest` (default), `latest`, `committed`, or a time (RFC 3339 or ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// Bounded: stop at the offsets that were latest when the job first
    /// started (`latest`), or at the first record at or after a time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// Of values.
    #[serde(default)]
    pub format: Format,
    #[serde(default)]
    pub key_format: Format,
    /// How often to look for new partitions (unbounded sources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery_interval: Option<Dur>,
    /// Passed to librdkafka (security, SASL, TLS, tuning).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
}

/// A time in a spec: RFC 3339 or milliseconds since the epoch.
fn time(s: &str) -> Result<i64, String> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    weir_engine::parse_rfc3339(s)
        .ok_or_else(|| format!("'{s}' is not a time (milliseconds since the epoch, or RFC 3339 like 2026-01-02T03:04:05Z)"))
}

impl KafkaSourceConfig {
    fn start(&self) -> Result<Start, String> {
        Ok(match self.start.as_deref() {
            None | Some("earliest") => Start::Earliest,
            Some("latest") => Start::Latest,
            Some("committed") => Start::Committed,
            Some(t) => Start::At(time(t)?),
        })
    }

    fn until(&self) -> Result<Option<Start>, String> {
        Ok(match self.until.as_deref() {
            None => None,
            Some("latest") => Some(Start::Latest),
            Some(t) => Some(Start::At(time(t)?)),
        })
    }

    fn topic_choice(&self) -> Result<TopicChoice, String> {
        match (&self.topic, self.topics.is_empty(), &self.pattern) {
            (Some(t), true, None) => Ok(TopicChoice::Names(vec![t.clone()])),
            (None, false, None) => Ok(TopicChoice::Names(self.topics.clone())),
            (None, true, Some(p)) => regex::Regex::new(p).map(TopicChoice::Pattern).map_err(|e| format!("not a regular expression: {e}")),
            (None, true, None) => Err("name the topic to read: topic, topics or pattern".into()),
            _ => Err("give one of topic, topics and pattern".into()),
        }
    }
}

#[derive(Clone, Debug)]
enum TopicChoice {
    Names(Vec<String>),
    Pattern(regex::Regex),
}

/// The `kafka` source type.
pub struct KafkaSources;

/// Bounds of `discovery_interval`.
const DISCOVERY: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(24 * 3600));

impl SourceConnector for KafkaSources {
    type Config = KafkaSourceConfig;
    const TYPE: &'static str = "kafka";

    fn check(&self, c: &KafkaSourceConfig, cx: &Check<'_>) -> Result<(), SpecError> {
        if c.bootstrap.trim().is_empty() {
            return Err(cx.error("bootstrap", "the brokers to connect to, as host:port[,host:port...]"));
        }
        let at = if c.pattern.is_some() { "pattern" } else if c.topics.is_empty() { "topic" } else { "topics" };
        c.topic_choice().map_err(|m| cx.error(at, m))?;
        let start = c.start().map_err(|m| cx.error("start", m))?;
        if start == Start::Committed && c.group.is_none() {
            return Err(cx.error("start", "'committed' reads the offsets of a group: set group"));
        }
        c.until().map_err(|m| cx.error("until", m))?;
        if matches!(c.key_format, Format::DebeziumJson | Format::Upsert) {
            return Err(cx.error("key_format", format!("{} describes values; keys are raw or json", c.key_format.name())));
        }
        if let Some(d) = c.discovery_interval {
            weir_spec::units::duration_in_range(d.0, DISCOVERY.0, DISCOVERY.1).map_err(|m| cx.error("discovery_interval", m))?;
        }
        client::check_properties(&c.properties).map_err(|m| cx.error("properties", m))?;
        client::check_property_paths(&c.properties, cx)
    }

    fn build(&self, c: KafkaSourceConfig, cx: &BuildContext<'_>) -> Result<Arc<dyn SourceFactory>, BuildError> {
        let topics = c.topic_choice().map_err(BuildError::new)?;
        let start = c.start().map_err(BuildError::new)?;
        let until = c.until().map_err(BuildError::new)?;
        let group = c.group.clone().unwrap_or_else(|| format!("weir-{}-{}", cx.env.pipeline, cx.node));
        Ok(Arc::new(KafkaSource { config: c, topics, start, until, group, splits: Arc::default() }))
    }

    fn records(&self, c: &KafkaSourceConfig) -> RecordShape {
        match c.format {
            Format::DebeziumJson => RecordShape {
                keyed: None,
                json: Some(true),
                described: "Kafka records of Debezium change events, format: debezium-json",
                changelog: Changelog::Retract,
            },
            Format::Upsert => RecordShape {
                keyed: Some(true),
                json: Some(true),
                described: "Kafka records as upserts by key, format: upsert",
                changelog: Changelog::Upsert,
            },
            f => RecordShape { keyed: None, json: Some(f == Format::Json), described: "Kafka records", changelog: Changelog::Append },
        }
    }
}

/// The partitions of all tasks, numbered in the order tasks first read them:
/// `Origin::split` is that number.
#[derive(Default)]
struct Splits(Mutex<Vec<(String, i32)>>);

impl Splits {
    fn id(&self, topic: &str, partition: i32) -> u32 {
        let mut v = self.0.lock().unwrap();
        match v.iter().position(|(t, p)| t == topic && *p == partition) {
            Some(i) => i as u32,
            None => {
                v.push((topic.to_string(), partition));
                (v.len() - 1) as u32
            }
        }
    }

    fn get(&self, split: u32) -> Option<(String, i32)> {
        self.0.lock().unwrap().get(split as usize).cloned()
    }
}

struct KafkaSource {
    config: KafkaSourceConfig,
    topics: TopicChoice,
    start: Start,
    until: Option<Start>,
    group: String,
    splits: Arc<Splits>,
}

/// One partition as a checkpoint records it: the next offset to read, and
/// for a bounded source the offset it ends at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Position {
    topic: String,
    partition: i32,
    next: i64,
    end: Option<i64>,
}

fn source_err(e: KafkaError) -> SourceError {
    SourceError(Box::new(e))
}

impl SourceFactory for KafkaSource {
    fn create(&self, ctx: &TaskContext) -> Result<Box<dyn Source>, SourceError> {
        let c = &self.config;
        let consumer: BaseConsumer = client::config(
            &c.bootstrap,
            &[
                ("group.id", &self.group),
                ("enable.auto.commit", "false"),
                ("enable.auto.offset.store", "false"),
                ("isolation.level", "read_committed"),
                ("auto.offset.reset", "earliest"),
                ("enable.partition.eof", "false"),
            ],
            &c.properties,
        )
        .create()
        .map_err(|e| source_err(KafkaError::client(format!("cannot create a consumer for {}", c.bootstrap), e)))?;
        // Every task's positions in the checkpoint: this task takes its partitions'.
        let mut restored: HashMap<(String, i32), Position> = HashMap::new();
        if let Some(r) = &ctx.restore {
            for p in r.positions.iter().flatten() {
                let ps: Vec<Position> = postcard::from_bytes(p)
                    .map_err(|e| SourceError::msg(format!("unreadable Kafka positions in the checkpoint: {e}")))?;
                restored.extend(ps.into_iter().map(|p| ((p.topic.clone(), p.partition), p)));
            }
        }
        let mut reader = Reader {
            source: self.config.clone(),
            consumer,
            topics: self.topics.clone(),
            group: self.group.clone(),
            task: ctx.task_index,
            parallelism: ctx.parallelism,
            parts: Vec::new(),
            split_ids: Vec::new(),
            splits: self.splits.clone(),
            bounded: self.until.is_some(),
            commit: Default::default(),
            next_discovery: Instant::now(),
            warned: None,
            final_committed: false,
            isolate: ctx.on_error.isolates(),
            rejected: Vec::new(),
        };
        let fresh = ctx.restore.is_none();
        let owned = reader.owned_partitions()?;
        reader.add(owned, |tp| match restored.get(tp) {
            Some(p) => Ok(Some(p.clone())),
            None if fresh => Ok(None),
            // A partition the checkpoint does not know is new since: all of it.
            None => Ok(Some(Position { topic: tp.0.clone(), partition: tp.1, next: -2, end: None })),
        }, &self.start, self.until.as_ref())?;
        Ok(Box::new(reader))
    }

    fn describe_origin(&self, origin: Origin) -> String {
        match self.splits.get(origin.split) {
            Some((t, p)) => format!("topic {t} partition {p} offset {}", origin.offset),
            None => format!("offset {}", origin.offset),
        }
    }

    fn rescalable(&self) -> bool {
        true
    }
}

/// One partition a task reads.
struct Part {
    topic: String,
    partition: i32,
    split: u32,
    next: i64,
    end: Option<i64>,
}

impl Part {
    fn done(&self) -> bool {
        self.end.is_some_and(|e| self.next >= e)
    }
}

struct Reader {
    source: KafkaSourceConfig,
    consumer: BaseConsumer,
    topics: TopicChoice,
    group: String,
    task: u32,
    parallelism: u32,
    parts: Vec<Part>,
    split_ids: Vec<u32>,
    splits: Arc<Splits>,
    bounded: bool,
    /// The positions of the last checkpoint, committed when it completes.
    commit: std::cell::RefCell<Option<Vec<Position>>>,
    next_discovery: Instant,
    /// The last transient error logged, and when.
    warned: Option<Instant>,
    /// A bounded source committed its final offsets.
    final_committed: bool,
    /// `on_error: skip | dead-letter`: a record whose key or value is not in
    /// its format is left out (into `rejected`) instead of failing the read.
    isolate: bool,
    rejected: Vec<Rejected>,
}

const DEFAULT_DISCOVERY: Duration = Duration::from_secs(30);
const TIMEOUT: Duration = client::METADATA_TIMEOUT;

impl Reader {
    fn bootstrap(&self) -> &str {
        &self.source.bootstrap
    }

    /// The (topic, partition)s of the cluster this task owns now.
    fn owned_partitions(&self) -> Result<Vec<(String, i32)>, SourceError> {
        let names: Vec<String> = match &self.topics {
            TopicChoice::Names(n) => n.clone(),
            TopicChoice::Pattern(re) => {
                let md = client::metadata(&self.consumer, self.bootstrap(), None).map_err(source_err)?;
                let mut n: Vec<String> =
                    md.topics().iter().map(|t| t.name().to_string()).filter(|t| re.is_match(t) && !t.starts_with("__")).collect();
                n.sort();
                n
            }
        };
        let mut owned = Vec::new();
        for t in names {
            for p in client::partitions(&self.consumer, self.bootstrap(), &t).map_err(source_err)? {
                if crate::assign::owner(&t, p, self.parallelism) == self.task {
                    owned.push((t.clone(), p));
                }
            }
        }
        Ok(owned)
    }

    /// A concrete offset for a start rule.
    fn resolve(&self, topic: &str, partition: i32, rule: &Start) -> Result<i64, SourceError> {
        let what = |e| source_err(KafkaError::client(format!("topic {topic} partition {partition}: cannot look up offsets"), e));
        let (low, high) = self.consumer.fetch_watermarks(topic, partition, TIMEOUT).map_err(what)?;
        Ok(match rule {
            Start::Earliest => low,
            Start::Latest => high,
            Start::Committed => {
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition(topic, partition);
                let c = self.consumer.committed_offsets(tpl, TIMEOUT).map_err(what)?;
                match c.find_partition(topic, partition).map(|e| e.offset()) {
                    Some(Offset::Offset(o)) => o,
                    _ => {
                        tracing::info!(topic, partition, group = self.group, "no committed offset; reading from the earliest");
                        low
                    }
                }
            }
            Start::At(ms) => {
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition_offset(topic, partition, Offset::Offset(*ms)).map_err(what)?;
                let r = self.consumer.offsets_for_times(tpl, TIMEOUT).map_err(what)?;
                match r.find_partition(topic, partition).map(|e| e.offset()) {
                    Some(Offset::Offset(o)) => o,
                    // No record at or after the time: the end.
                    _ => high,
                }
            }
        })
    }

    /// Start reading `tps`: from their restored position (`Some`; `next: -2`
    /// means from the earliest), else by the start rule.
    fn add(
        &mut self,
        tps: Vec<(String, i32)>,
        restored: impl Fn(&(String, i32)) -> Result<Option<Position>, SourceError>,
        start: &Start,
        until: Option<&Start>,
    ) -> Result<(), SourceError> {
        let mut tpl = TopicPartitionList::new();
        for tp in tps {
            let (next, end) = match restored(&tp)? {
                Some(p) if p.next == -2 => (self.resolve(&tp.0, tp.1, &Start::Earliest)?, None),
                Some(p) => (p.next, p.end),
                None => {
                    let next = self.resolve(&tp.0, tp.1, start)?;
                    let end = match until {
                        Some(u) => Some(self.resolve(&tp.0, tp.1, u)?),
                        None => None,
                    };
                    (next, end)
                }
            };
            // A bounded source that restored a partition without an end ends it where it is.
            let end = if self.bounded { Some(end.unwrap_or(next)) } else { None };
            tpl.add_partition_offset(&tp.0, tp.1, Offset::Offset(next))
                .map_err(|e| source_err(KafkaError::client("cannot assign partitions", e)))?;
            let split = self.splits.id(&tp.0, tp.1);
            self.parts.push(Part { topic: tp.0, partition: tp.1, split, next, end });
            self.split_ids.push(split);
        }
        if tpl.count() > 0 {
            self.consumer.incremental_assign(&tpl).map_err(|e| source_err(KafkaError::client("cannot assign partitions", e)))?;
        }
        Ok(())
    }

    /// Unbounded sources look for new partitions now and then.
    fn discover(&mut self) -> Result<(), SourceError> {
        if self.bounded || Instant::now() < self.next_discovery {
            return Ok(());
        }
        self.next_discovery = Instant::now() + self.source.discovery_interval.map_or(DEFAULT_DISCOVERY, |d| d.0);
        let owned = match self.owned_partitions() {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!("kafka source: cannot look for new partitions: {e}");
                return Ok(());
            }
        };
        let new: Vec<_> = owned.into_iter().filter(|(t, p)| !self.parts.iter().any(|x| x.topic == *t && x.partition == *p)).collect();
        if !new.is_empty() {
            tracing::info!(task = self.task, "kafka source: reading new partitions {new:?} from the earliest");
            self.add(new, |_| Ok(None), &Start::Earliest, None)?;
        }
        Ok(())
    }

    fn positions(&self) -> Vec<Position> {
        self.parts
            .iter()
            .map(|p| Position { topic: p.topic.clone(), partition: p.partition, next: p.next, end: p.end })
            .collect()
    }

    /// A bounded source at its ends commits them to the group now and waits
    /// for the commit: a source task is not told when the final checkpoint
    /// completes, and the process may end right after it. (Committed offsets
    /// are for monitoring and `start: committed`; the checkpoint, which
    /// holds these same final positions, is what restores read.)
    fn exhausted(&mut self) -> SourcePoll {
        if !self.final_committed {
            self.final_committed = true;
            let mut tpl = TopicPartitionList::new();
            for p in &self.parts {
                let _ = tpl.add_partition_offset(&p.topic, p.partition, Offset::Offset(p.next));
            }
            if tpl.count() > 0 {
                match self.consumer.commit(&tpl, CommitMode::Async) {
                    Err(e) => tracing::warn!(group = self.group, "kafka source: cannot commit the final offsets: {e}"),
                    Ok(()) => self.await_committed(&tpl),
                }
            }
        }
        SourcePoll::Exhausted
    }

    /// Wait, for a bounded time, until the group's committed offsets are
    /// `tpl`'s (a blocking commit would wait as long as the group
    /// coordinator is away, however long that is).
    fn await_committed(&self, tpl: &TopicPartitionList) {
        let deadline = Instant::now() + TIMEOUT;
        let want: Vec<(String, i32, Offset)> = tpl.elements().iter().map(|e| (e.topic().to_string(), e.partition(), e.offset())).collect();
        while Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Ok(got) = self.consumer.committed_offsets(tpl.clone(), left.min(Duration::from_secs(2)))
                && want.iter().all(|(t, p, o)| got.find_partition(t, *p).map(|e| e.offset()) == Some(*o))
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        tracing::warn!(group = self.group, "kafka source: the final offsets were not confirmed committed within {}s (the checkpoint holds them)", TIMEOUT.as_secs());
    }

    /// Pause the partitions a bounded source is done with, so that it reads
    /// nothing past their ends.
    fn pause_done(&self, topic: &str, partition: i32) {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(topic, partition);
        if let Err(e) = self.consumer.pause(&tpl) {
            tracing::warn!("kafka source: cannot pause {topic}/{partition} at its end: {e}");
        }
    }
}

fn check(format: Format, bytes: &[u8], what: &str) -> Result<(), String> {
    match format {
        // Decoded as the rows are made.
        Format::Raw | Format::DebeziumJson => Ok(()),
        Format::Json | Format::Upsert => serde_json::from_slice::<serde::de::IgnoredAny>(bytes)
            .map(drop)
            .map_err(|e| format!("the record's {what} is not JSON (format: json): {e}")),
    }
}

impl Source for Reader {
    fn poll(&mut self, out: &mut RecordBatch, max_records: usize) -> Result<SourcePoll, SourceError> {
        if self.bounded && self.parts.iter().all(Part::done) {
            return Ok(self.exhausted());
        }
        self.discover()?;
        let mut got = 0;
        while got < max_records {
            let m = match self.consumer.poll(Duration::ZERO) {
                None => break,
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    // Broker outages and the like: librdkafka retries; say so now and then.
                    if self.warned.is_none_or(|w| w.elapsed() > Duration::from_secs(10)) {
                        tracing::warn!(bootstrap = self.source.bootstrap, "kafka source: {e} (retrying)");
                        self.warned = Some(Instant::now());
                    }
                    break;
                }
            };
            let (topic, partition, offset) = (m.topic().to_string(), m.partition(), m.offset());
            let Some(i) = self.parts.iter().position(|p| p.partition == partition && p.topic == topic) else { continue };
            let part = &self.parts[i];
            if part.end.is_some_and(|e| offset >= e) {
                continue;
            }
            let split = part.split;
            let key = m.key().unwrap_or_default();
            let value = m.payload();
            let ts = match m.timestamp() {
                Timestamp::CreateTime(t) | Timestamp::LogAppendTime(t) => t,
                Timestamp::NotAvailable => NO_TIMESTAMP,
            };
            let rows: Result<Rows<'_>, String> = check(self.source.key_format, key, "key").and_then(|()| {
                match (value, self.source.format) {
                    (Some(v), Format::DebeziumJson) => weir_connectors::debezium::decode(v),
                    // A delete's tombstone (for log compaction): the delete came before it.
                    (None, Format::DebeziumJson) => Ok(Rows::none()),
                    (Some(v), Format::Upsert) => check(Format::Json, v, "value").map(|()| Rows::one(RowKind::UpdateAfter, v)),
                    // A delete: its row is its key.
                    (None, Format::Upsert) if key.is_empty() => Err("a record without a value deletes its key, but it has no key (format: upsert)".into()),
                    (None, Format::Upsert) => Ok(Rows::one(RowKind::Delete, key)),
                    (Some(v), f) => check(f, v, "value").map(|()| Rows::one(RowKind::Insert, v)),
                    // A tombstone: no value (JSON null, for JSON values).
                    (None, Format::Json) => Ok(Rows::one(RowKind::Insert, b"null")),
                    (None, _) => Ok(Rows::one(RowKind::Insert, b"")),
                }
            });
            if let Err(message) = rows {
                if !self.isolate {
                    return Err(source_err(KafkaError::Record { topic: topic.clone(), partition, offset, message }));
                }
                let origin = Origin { source: 0, split, offset: offset as u64 };
                let value = value.unwrap_or_default().to_vec();
                self.rejected.push(Rejected { key: key.to_vec(), value, timestamp: ts, origin, error: message });
                let part = &mut self.parts[i];
                part.next = offset + 1;
                if part.done() {
                    self.pause_done(&topic, partition);
                }
                continue;
            }
            for (kind, value) in rows.unwrap_or_default() {
                let row = out.len() as u32;
                out.push_kind(key, value, ts, Origin { source: 0, split, offset: offset as u64 }, kind);
                if let Some(hs) = m.headers() {
                    for h in hs.iter() {
                        out.headers.push(Header { row, name: h.key.to_string(), value: h.value.unwrap_or_default().to_vec() });
                    }
                }
            }
            let part = &mut self.parts[i];
            part.next = offset + 1;
            if part.done() {
                self.pause_done(&topic, partition);
            }
            got += 1;
        }
        if self.bounded {
            // Ends reached by skipping (aborted transactions, compaction, control records).
            let mut tpl_done = Vec::new();
            if let Ok(pos) = self.consumer.position() {
                for p in self.parts.iter_mut().filter(|p| !p.done()) {
                    if let Some(Offset::Offset(o)) = pos.find_partition(&p.topic, p.partition).map(|e| e.offset())
                        && p.end.is_some_and(|e| o >= e)
                    {
                        p.next = p.next.max(p.end.unwrap_or(o));
                        tpl_done.push((p.topic.clone(), p.partition));
                    }
                }
            }
            for (t, p) in tpl_done {
                self.pause_done(&t, p);
            }
            if got == 0 && self.parts.iter().all(Part::done) {
                return Ok(self.exhausted());
            }
        }
        Ok(if got > 0 { SourcePoll::Ready } else { SourcePoll::Pending(Duration::from_millis(5)) })
    }

    fn rejected(&mut self, out: &mut Vec<Rejected>) {
        out.append(&mut self.rejected);
    }

    fn position(&self) -> Option<Vec<u8>> {
        let ps = self.positions();
        let bytes = postcard::to_allocvec(&ps).expect("positions encode");
        // The positions of the checkpoint being taken, committed to the group
        // when it completes: one checkpoint is pending at a time, so the last
        // positions taken are the completed checkpoint's.
        *self.commit.borrow_mut() = Some(ps);
        Some(bytes)
    }

    fn seek(&mut self, _position: &[u8]) -> Result<(), SourceError> {
        // Positions are taken from every task's part of the checkpoint when
        // the task is created (the source is rescalable).
        Ok(())
    }

    fn splits(&self) -> Option<&[u32]> {
        Some(&self.split_ids)
    }

    fn checkpoint_complete(&mut self, epoch: u64) -> Result<(), SourceError> {
        let Some(ps) = self.commit.borrow_mut().take() else { return Ok(()) };
        let mut tpl = TopicPartitionList::new();
        for p in &ps {
            tpl.add_partition_offset(&p.topic, p.partition, Offset::Offset(p.next))
                .map_err(|e| source_err(KafkaError::client("cannot commit offsets", e)))?;
        }
        if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
            // Committed offsets are for monitoring; the checkpoint holds the truth.
            tracing::warn!(group = self.group, epoch, "kafka source: cannot commit offsets: {e}");
        }
        Ok(())
    }
}
