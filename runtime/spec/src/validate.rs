//! From the spec as written to a checked pipeline definition: the common
//! fields here, each entry's own fields by its registered type.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::time::Duration;

use marked_yaml::{Node, Spanned};
use weir_engine::{
    Descriptor, EngineOptions, ErrorPolicy, EventTime, KeySelector, OnError, Role, TimeUnit, DEAD_LETTER_OUTPUT, DEFAULT_MAX_PARALLELISM,
};

use crate::model::{self, RawNode, RawSource, RawSpec, RawState, S};
use crate::registry::{Changelog, Check, Registry, DEFAULT_OPERATOR};
use crate::units::{duration_in_range, in_range, parse_duration};
use crate::SpecError;

/// Bounds of the numbers of a spec.
pub(crate) mod limits {
    use std::time::Duration;
    pub const MAX_PARALLELISM: u64 = 32768;
    pub const BATCH_SIZE: u64 = 1_000_000;
    pub const BATCH_TIMEOUT: (Duration, Duration) = (Duration::from_micros(1), Duration::from_secs(60));
    pub const CHECKPOINT_INTERVAL: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(24 * 3600));
    pub const RETAIN: u64 = 1000;
    pub const DEAD_LETTERS_PER_MINUTE: u64 = 1_000_000;
    /// Event-time durations: lateness, out-of-orderness, idleness, window sizes.
    pub const EVENT_TIME: Duration = Duration::from_secs(366 * 24 * 3600);
}

/// A checked pipeline. Operators are in topological order.
#[derive(Clone, Debug)]
pub struct PipelineSpec {
    /// The file it came from (for messages).
    pub file: String,
    pub name: String,
    pub engine: EngineOptions,
    pub sources: Vec<NodeDef>,
    pub operators: Vec<NodeDef>,
    pub sinks: Vec<NodeDef>,
    pub state: StateDef,
    /// `None`: no checkpoints (sinks are at-least-once).
    pub checkpoint: Option<CheckpointDef>,
}

/// Where keyed state lives and where checkpoints go.
#[derive(Clone, Debug)]
pub struct StateDef {
    /// The backend (`heap`, `rocksdb`) and its settings.
    pub backend: Descriptor,
    /// Checkpoint storage: a directory or an `s3://` URL.
    pub dir: Option<String>,
    /// Local scratch space (RocksDB working files, snapshot staging); by
    /// default `<dir>/local` for a local `dir`, else under the temp directory.
    pub local_dir: Option<PathBuf>,
}

impl Default for StateDef {
    fn default() -> Self {
        StateDef { backend: Descriptor::new("heap", serde_json::json!({})), dir: None, local_dir: None }
    }
}

impl PipelineSpec {
    /// Local scratch space of the pipeline: `state.local_dir`, else
    /// `<state.dir>/local` for a local `state.dir`, else `weir-<name>` in the
    /// temp directory.
    pub fn local_dir(&self) -> PathBuf {
        self.state.local_dir.clone().unwrap_or_else(|| match &self.state.dir {
            Some(d) if !d.contains("://") => PathBuf::from(d).join("local"),
            _ => std::env::temp_dir().join(format!("weir-{}", self.name)),
        })
    }

    /// Every node, sources first, then operators (in topological order), then sinks.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeDef> {
        self.sources.iter().chain(&self.operators).chain(&self.sinks)
    }

    pub fn node(&self, name: &str) -> Option<&NodeDef> {
        self.nodes().find(|n| n.name == name)
    }
}

#[derive(Clone, Debug)]
pub struct CheckpointDef {
    /// `None`: only the final checkpoint of a bounded run.
    pub interval: Option<Duration>,
    /// Complete checkpoints kept.
    pub retain: usize,
}

/// `node` or `node.side_output`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputRef {
    pub node: String,
    pub output: Option<String>,
    pub line: usize,
}

/// The plugin a node runs, as the spec names it (a path, or `name@version`
/// on a node), and the line that names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginRef {
    pub reference: String,
    pub line: usize,
}

/// A checked source, operator or sink.
#[derive(Clone, Debug)]
pub struct NodeDef {
    pub name: String,
    pub line: usize,
    pub role: Role,
    /// Its registered type and that type's checked config.
    pub descriptor: Descriptor,
    pub inputs: Vec<InputRef>,
    pub key_by: Option<KeySelector>,
    /// As written; `None`: 1 for sources and operators, the inputs' for sinks.
    pub parallelism: Option<u32>,
    /// A source's timestamps and watermarks.
    pub event_time: Option<EventTime>,
    /// The plugin it runs, if its type runs one.
    pub plugin: Option<PluginRef>,
    /// What it does with a record it fails on (sources and operators).
    pub on_error: ErrorPolicy,
    /// What kind of stream it reads (operators and sinks; `Append` for sources).
    pub reads: Changelog,
}

impl NodeDef {
    /// Its config as its type's config struct.
    pub fn config<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_value(self.descriptor.config.clone())
    }
}

pub(crate) struct Ctx<'a> {
    pub file: &'a str,
    /// For a spec sent to a node: its pipelines directory (default state
    /// directory `<dir>/<name>/state`, checkpoints every second by default).
    pub node_dir: Option<&'a std::path::Path>,
    /// For a spec sent to a node: where its files may be.
    pub paths: Option<&'a crate::PathPolicy>,
    pub registry: &'a Registry,
}

impl Ctx<'_> {
    pub(crate) fn err<T>(&self, span: &Spanned<T>, message: impl Into<String>) -> SpecError {
        SpecError::at(self.file, span.span().start(), message)
    }
}

fn line<T>(s: &Spanned<T>) -> usize {
    s.span().start().map(|m| m.line()).unwrap_or(0)
}

fn duration(cx: &Ctx, v: &S, field: &str, range: (Duration, Duration)) -> Result<Duration, SpecError> {
    let d = parse_duration(v).map_err(|m| cx.err(v, format!("{field}: {m}")))?;
    duration_in_range(d, range.0, range.1).map_err(|m| cx.err(v, format!("{field}: {m}")))
}

pub(crate) fn validate(
    root: &Node,
    file: &str,
    on_node: Option<(&std::path::Path, &crate::PathPolicy)>,
    registry: &Registry,
) -> Result<PipelineSpec, SpecError> {
    let cx = Ctx { file, node_dir: on_node.map(|n| n.0), paths: on_node.map(|n| n.1), registry };
    let raw: RawSpec = marked_yaml::from_node(root).map_err(|e| SpecError::from_serde(file, e))?;
    let mut engine = EngineOptions { pipeline: raw.name.to_string(), ..Default::default() };
    check_name(&cx, &raw.name, "name")?;
    engine.max_parallelism = match &raw.max_parallelism {
        Some(mp) => {
            let v = in_range(**mp, 1, limits::MAX_PARALLELISM).map_err(|m| cx.err(mp, format!("max_parallelism: {m}")))?;
            v as u32
        }
        None => DEFAULT_MAX_PARALLELISM,
    };
    if let Some(b) = &raw.batch {
        if let Some(size) = &b.size {
            engine.batch_size =
                in_range(**size, 1, limits::BATCH_SIZE).map_err(|m| cx.err(size, format!("batch.size: {m}")))? as usize;
        }
        if let Some(t) = &b.timeout {
            engine.batch_timeout = duration(&cx, t, "batch.timeout", limits::BATCH_TIMEOUT)?;
        }
    }
    let raw_sources = model::entries(file, root, "sources")?;
    let raw_operators = model::entries(file, root, "operators")?;
    let raw_sinks = model::entries(file, root, "sinks")?;
    if raw_sources.is_empty() {
        return Err(SpecError::File { file: file.into(), message: "sources: a pipeline needs at least one source".into() });
    }
    if raw_sinks.is_empty() {
        return Err(SpecError::File { file: file.into(), message: "sinks: a pipeline needs at least one sink".into() });
    }
    let sources = raw_sources
        .iter()
        .enumerate()
        .map(|(i, n)| model::split::<RawSource>(file, &format!("sources[{i}]"), n, model::SOURCE_COMMON))
        .collect::<Result<Vec<_>, _>>()?;
    let operators = raw_operators
        .iter()
        .enumerate()
        .map(|(i, n)| model::split::<RawNode>(file, &format!("operators[{i}]"), n, model::OPERATOR_COMMON))
        .collect::<Result<Vec<_>, _>>()?;
    let sinks = raw_sinks
        .iter()
        .enumerate()
        .map(|(i, n)| model::split::<RawNode>(file, &format!("sinks[{i}]"), n, model::SINK_COMMON))
        .collect::<Result<Vec<_>, _>>()?;

    let mut names: HashMap<String, Role> = HashMap::new();
    let mut declare = |name: &S, role: Role, field: String| -> Result<(), SpecError> {
        check_name(&cx, name, &field)?;
        if let Some(prev) = names.insert(name.to_string(), role) {
            return Err(cx.err(name, format!("{field}: a {} is already named '{}'", prev.name(), **name)));
        }
        Ok(())
    };
    for (i, s) in sources.iter().enumerate() {
        declare(&s.common.name, Role::Source, format!("sources[{i}].name"))?;
    }
    for (i, o) in operators.iter().enumerate() {
        declare(&o.common.name, Role::Operator, format!("operators[{i}].name"))?;
    }
    for (i, s) in sinks.iter().enumerate() {
        declare(&s.common.name, Role::Sink, format!("sinks[{i}].name"))?;
    }

    let max = engine.max_parallelism;
    let sources = sources.iter().enumerate().map(|(i, s)| source(&cx, i, s, max)).collect::<Result<Vec<_>, _>>()?;
    let operators =
        operators.iter().enumerate().map(|(i, o)| node(&cx, Role::Operator, i, o, &names, max)).collect::<Result<Vec<_>, _>>()?;
    let sinks = sinks.iter().enumerate().map(|(i, s)| node(&cx, Role::Sink, i, s, &names, max)).collect::<Result<Vec<_>, _>>()?;
    check_side_outputs(&cx, &operators, &sinks)?;
    check_dead_letters(&cx, &sources, &operators, &sinks)?;
    check_keys(&cx, &sources, &operators, &sinks)?;
    let mut operators = topo_sort(&cx, operators, &raw_operators)?;
    let mut sinks = sinks;
    check_changelogs(&cx, &sources, &mut operators, &mut sinks)?;
    let (state, checkpoint) = state_and_checkpoint(&cx, root, &raw)?;
    Ok(PipelineSpec { file: file.into(), name: raw.name.to_string(), engine, sources, operators, sinks, state, checkpoint })
}

fn state_and_checkpoint(cx: &Ctx, root: &Node, raw: &RawSpec) -> Result<(StateDef, Option<CheckpointDef>), SpecError> {
    let mut state = StateDef::default();
    if let Some(node) = root.as_mapping().and_then(|m| m.get_node("state")) {
        let e = model::split::<RawState>(cx.file, "state", node, model::STATE_COMMON)?;
        let kind = match &e.common.backend {
            Some(b) => b.to_string(),
            None => "heap".to_string(),
        };
        let backend = cx.registry.backends.get(kind.as_str()).ok_or_else(|| {
            let b = e.common.backend.as_ref().expect("heap is always registered");
            let known = one_of(&cx.registry.state_backends());
            cx.err(b, format!("state.backend: unknown backend '{kind}' (expected {known})"))
        })?;
        let check = Check { file: cx.file, field: "state", entry: &e.node, node: "state", parallelism: None, key_by: None, paths: cx.paths };
        let config = backend.validate(&e.rest, &check, model::STATE_COMMON)?;
        state.backend = Descriptor::new(kind, config);
        if let Some(d) = &e.common.dir {
            if d.is_empty() {
                return Err(cx.err(d, "state.dir: must not be empty"));
            }
            if let Some(p) = cx.paths {
                p.check_location(d).map_err(|m| cx.err(d, format!("state.dir: {m}")))?;
            }
            state.dir = Some(d.to_string());
        }
        if let (Some(p), Some(d)) = (cx.paths, &e.common.local_dir) {
            p.check(std::path::Path::new(d.as_str())).map_err(|m| cx.err(d, format!("state.local_dir: {m}")))?;
        }
        state.local_dir = e.common.local_dir.as_ref().map(|d| PathBuf::from(d.as_str()));
    }
    if let Some(dir) = cx.node_dir {
        if state.dir.is_none() {
            state.dir = Some(dir.join(raw.name.as_str()).join("state").to_string_lossy().into_owned());
        }
        if raw.checkpoint.is_none() {
            return Ok((state, Some(CheckpointDef { interval: Some(Duration::from_secs(1)), retain: 3 })));
        }
    }
    let Some(c) = &raw.checkpoint else { return Ok((state, None)) };
    let mut def = CheckpointDef { interval: None, retain: 3 };
    if let Some(i) = &c.interval {
        def.interval = Some(duration(cx, i, "checkpoint.interval", limits::CHECKPOINT_INTERVAL)?);
    }
    if let Some(r) = &c.retain {
        def.retain = in_range(**r, 1, limits::RETAIN).map_err(|m| cx.err(r, format!("checkpoint.retain: {m}")))? as usize;
    }
    if state.dir.is_none() {
        let msg = "checkpoint: checkpoints need a place to go: set state.dir (a directory or an s3:// URL)";
        return Err(match &c.interval {
            Some(i) => cx.err(i, msg),
            None => SpecError::File { file: cx.file.into(), message: msg.into() },
        });
    }
    Ok((state, Some(def)))
}

fn check_name(cx: &Ctx, name: &S, field: &str) -> Result<(), SpecError> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(cx.err(name, format!("{field}: '{}' is not a valid name (use letters, digits, '_' and '-')", **name)));
    }
    Ok(())
}

fn parallelism(cx: &Ctx, p: &Option<Spanned<u64>>, field: &str, max: u32) -> Result<Option<u32>, SpecError> {
    match p {
        Some(p) if **p == 0 || **p > u64::from(max) => {
            Err(cx.err(p, format!("{field}.parallelism: must be between 1 and max_parallelism ({max}), not {}", **p)))
        }
        Some(p) => Ok(Some(**p as u32)),
        None => Ok(None),
    }
}

fn unknown_type(cx: &Ctx, field: &str, kind: &S, role: &str, known: Vec<&str>) -> SpecError {
    let article = if role.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
    cx.err(kind, format!("{field}.type: '{}' is not {article} {role} type ({})", **kind, known.join(", ")))
}

/// "a", "a or b", "a, b or c".
fn one_of(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => one.to_string(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

fn source(cx: &Ctx, i: usize, e: &model::Entry<RawSource>, max: u32) -> Result<NodeDef, SpecError> {
    let f = format!("sources[{i}]");
    let s = &e.common;
    let par = parallelism(cx, &s.parallelism, &f, max)?;
    let Some(connector) = cx.registry.sources.get(s.kind.as_str()) else {
        return Err(unknown_type(cx, &f, &s.kind, "source", cx.registry.source_types()));
    };
    let check = Check { file: cx.file, field: &f, entry: &e.node, node: &s.name, parallelism: par, key_by: None, paths: cx.paths };
    let config = connector.validate(&e.rest, &check, model::SOURCE_COMMON)?;
    Ok(NodeDef {
        name: s.name.to_string(),
        line: line(&s.name),
        role: Role::Source,
        descriptor: Descriptor::new(s.kind.as_str(), config),
        inputs: Vec::new(),
        key_by: None,
        parallelism: par,
        event_time: event_time(cx, &f, s)?,
        plugin: None,
        on_error: error_policy(cx, &f, &s.on_error, &s.max_dead_letters_per_minute)?,
        reads: Changelog::Append,
    })
}

/// `timestamp: $.field.path` and `watermark: {out_of_orderness, idle_timeout}`.
fn event_time(cx: &Ctx, f: &str, s: &RawSource) -> Result<Option<EventTime>, SpecError> {
    if s.timestamp.is_none() && s.watermark.is_none() {
        return Ok(None);
    }
    let mut et = EventTime::default();
    if let Some(t) = &s.timestamp {
        let parts: Option<Vec<String>> = t
            .strip_prefix("$.")
            .map(|p| p.split('.').map(str::to_string).collect::<Vec<_>>())
            .filter(|parts| parts.iter().all(|p| !p.is_empty()));
        et.field = Some(parts.ok_or_else(|| {
            cx.err(t, format!("{f}.timestamp: '{}' is not a JSON field: use '$.field.path' (milliseconds or an RFC 3339 string)", **t))
        })?);
    }
    if let Some(u) = &s.timestamp_unit {
        if s.timestamp.is_none() {
            return Err(cx.err(u, format!("{f}.timestamp_unit: set with timestamp (the field whose unit it is)")));
        }
        et.unit = Some(match u.as_str() {
            "s" => TimeUnit::Seconds,
            "ms" => TimeUnit::Millis,
            "us" => TimeUnit::Micros,
            "ns" => TimeUnit::Nanos,
            other => return Err(cx.err(u, format!("{f}.timestamp_unit: '{other}' is not a unit of epoch time (s, ms, us, ns)"))),
        });
    }
    if let Some(w) = &s.watermark {
        match (w.strategy.as_ref().map(|s| s.as_str()), &w.out_of_orderness) {
            (None | Some("bounded_out_of_orderness"), _) => {}
            (Some("monotonic"), None) => {}
            (Some("monotonic"), Some(o)) => {
                return Err(cx.err(o, format!("{f}.watermark.out_of_orderness: not a setting of the monotonic strategy (timestamps only increase)")))
            }
            (Some(other), _) => {
                return Err(cx.err(
                    w.strategy.as_ref().unwrap(),
                    format!("{f}.watermark.strategy: '{other}' is not a watermark strategy (bounded_out_of_orderness, monotonic)"),
                ))
            }
        }
        let range = (Duration::ZERO, limits::EVENT_TIME);
        if let Some(o) = &w.out_of_orderness {
            et.out_of_orderness = duration(cx, o, &format!("{f}.watermark.out_of_orderness"), range)?;
        }
        if let Some(i) = &w.idle_timeout {
            et.idle_timeout = Some(duration(cx, i, &format!("{f}.watermark.idle_timeout"), (Duration::from_millis(1), limits::EVENT_TIME))?);
        }
    }
    Ok(Some(et))
}

fn inputs(cx: &Ctx, field: &str, n: &RawNode, names: &HashMap<String, Role>) -> Result<Vec<InputRef>, SpecError> {
    let anchor = &n.name;
    let list: Vec<&S> = match (&n.input, &n.inputs) {
        (Some(_), Some(_)) => return Err(cx.err(anchor, format!("{field}: give either input or inputs, not both"))),
        (Some(i), None) => vec![i],
        (None, Some(is)) if !is.is_empty() => is.iter().collect(),
        _ => return Err(cx.err(anchor, format!("{field}.input: missing (name the source or operator it reads)"))),
    };
    let mut seen = HashSet::new();
    list.into_iter()
        .map(|s| {
            let (node, output) = match s.split_once('.') {
                Some((n, o)) => (n.to_string(), Some(o.to_string())),
                None => (s.to_string(), None),
            };
            match names.get(&node) {
                None => {
                    let mut known: Vec<_> = names.iter().filter(|(_, k)| **k != Role::Sink).map(|(n, _)| n.as_str()).collect();
                    known.sort();
                    return Err(cx.err(s, format!("{field}.input: no source or operator is named '{node}' (there are: {})", known.join(", "))));
                }
                Some(Role::Sink) => return Err(cx.err(s, format!("{field}.input: '{node}' is a sink; sinks have no output"))),
                Some(Role::Source) if output.as_deref().is_some_and(|o| o != DEAD_LETTER_OUTPUT) => {
                    return Err(cx.err(
                        s,
                        format!("{field}.input: source '{node}' has no side outputs but '{DEAD_LETTER_OUTPUT}' (with on_error: dead-letter)"),
                    ))
                }
                _ => {}
            }
            if !seen.insert(s.to_string()) {
                return Err(cx.err(s, format!("{field}.input: '{}' is listed twice", **s)));
            }
            Ok(InputRef { node, output, line: line(s) })
        })
        .collect()
}

fn key_by(cx: &Ctx, field: &str, k: &Option<S>) -> Result<Option<KeySelector>, SpecError> {
    let Some(k) = k else { return Ok(None) };
    if k.as_str() == "key" {
        return Ok(Some(KeySelector::RecordKey));
    }
    if let Some(path) = k.strip_prefix("$.") {
        let parts: Vec<String> = path.split('.').map(str::to_string).collect();
        if parts.iter().all(|p| !p.is_empty()) {
            return Ok(Some(KeySelector::JsonField(parts)));
        }
    }
    Err(cx.err(k, format!("{field}.key_by: '{}' is not a key: use 'key' (the record key) or '$.field.path' (a JSON field)", **k)))
}

/// An operator or a sink.
fn node(cx: &Ctx, role: Role, i: usize, e: &model::Entry<RawNode>, names: &HashMap<String, Role>, max: u32) -> Result<NodeDef, SpecError> {
    let n = &e.common;
    let f = format!("{}s[{i}]", role.name());
    let par = parallelism(cx, &n.parallelism, &f, max)?;
    let inputs = inputs(cx, &f, n, names)?;
    let key_by = key_by(cx, &f, &n.key_by)?;
    let check = Check { file: cx.file, field: &f, entry: &e.node, node: &n.name, parallelism: par, key_by: key_by.as_ref(), paths: cx.paths };
    let (kind, config, plugin) = match role {
        Role::Sink => {
            let Some(kind) = &n.kind else {
                return Err(cx.err(&n.name, format!("{f}.type: missing (one of: {})", cx.registry.sink_types().join(", "))));
            };
            let Some(connector) = cx.registry.sinks.get(kind.as_str()) else {
                return Err(unknown_type(cx, &f, kind, "sink", cx.registry.sink_types()));
            };
            (kind.to_string(), connector.validate(&e.rest, &check, model::SINK_COMMON)?, None)
        }
        _ => {
            let name = n.kind.as_ref().map_or(DEFAULT_OPERATOR, |k| k.as_str());
            let Some(op) = cx.registry.operators.get(name) else {
                return Err(match &n.kind {
                    Some(k) => unknown_type(cx, &f, k, "operator", cx.registry.operator_types()),
                    None => cx.err(&n.name, format!("{f}.type: missing, and this binary has no default ({DEFAULT_OPERATOR}) operator type")),
                });
            };
            let config = op.validate(&e.rest, &check, model::OPERATOR_COMMON)?;
            if let Some(at) = n.on_error.as_ref().filter(|o| o.as_str() != OnError::Fail.name())
                && let Some(why) = op.cannot_isolate(&config)
            {
                return Err(cx.err(at, format!("{f}.on_error: {why}, so it takes only on_error: fail")));
            }
            let plugin = op.plugin_field().and_then(|field| {
                let reference = config.get(field)?.as_str()?.to_string();
                let at = e.node.as_mapping()?.get_node(field)?.span().start()?.line();
                Some(PluginRef { reference, line: at })
            });
            (name.to_string(), config, plugin)
        }
    };
    Ok(NodeDef {
        name: n.name.to_string(),
        line: line(&n.name),
        role,
        descriptor: Descriptor::new(kind, config),
        inputs,
        key_by,
        parallelism: par,
        event_time: None,
        plugin,
        on_error: error_policy(cx, &f, &n.on_error, &n.max_dead_letters_per_minute)?,
        reads: Changelog::Append,
    })
}

/// `on_error` and `max_dead_letters_per_minute`.
fn error_policy(cx: &Ctx, f: &str, on_error: &Option<S>, max: &Option<Spanned<u64>>) -> Result<ErrorPolicy, SpecError> {
    let mut p = ErrorPolicy::default();
    if let Some(o) = on_error {
        p.on_error = match o.as_str() {
            "fail" => OnError::Fail,
            "skip" => OnError::Skip,
            "dead-letter" => OnError::DeadLetter,
            other => return Err(cx.err(o, format!("{f}.on_error: '{other}' is not a choice (fail, skip, dead-letter)"))),
        };
    }
    if let Some(m) = max {
        if !p.on_error.isolates() {
            return Err(cx.err(m, format!("{f}.max_dead_letters_per_minute: set with on_error: skip or dead-letter")));
        }
        let v = in_range(**m, 1, limits::DEAD_LETTERS_PER_MINUTE)
            .map_err(|msg| cx.err(m, format!("{f}.max_dead_letters_per_minute: {msg}")))?;
        p.max_per_minute = v as u32;
    }
    Ok(p)
}

/// `<node>.dead-letter` is read exactly from nodes with `on_error:
/// dead-letter`, and each such node's is read (else its dead letters would be
/// lost without a word).
fn check_dead_letters(cx: &Ctx, sources: &[NodeDef], ops: &[NodeDef], sinks: &[NodeDef]) -> Result<(), SpecError> {
    let policy: HashMap<&str, OnError> = sources.iter().chain(ops).map(|n| (n.name.as_str(), n.on_error.on_error)).collect();
    let mut read = HashSet::new();
    for reader in ops.iter().chain(sinks) {
        for i in reader.inputs.iter().filter(|i| i.output.as_deref() == Some(DEAD_LETTER_OUTPUT)) {
            let on_error = policy.get(i.node.as_str()).copied().unwrap_or_default();
            if on_error != OnError::DeadLetter {
                return Err(SpecError::At {
                    file: cx.file.into(),
                    line: i.line,
                    column: 1,
                    message: format!(
                        "{} '{}' reads '{}.{DEAD_LETTER_OUTPUT}', but '{}' has on_error: {} (set on_error: dead-letter on it)",
                        reader.role.name(),
                        reader.name,
                        i.node,
                        i.node,
                        on_error.name()
                    ),
                });
            }
            read.insert(i.node.as_str());
        }
    }
    if let Some(n) = sources.iter().chain(ops).find(|n| n.on_error.on_error == OnError::DeadLetter && !read.contains(n.name.as_str())) {
        return Err(SpecError::At {
            file: cx.file.into(),
            line: n.line,
            column: 1,
            message: format!(
                "{} '{}' has on_error: dead-letter, but nothing reads '{}.{DEAD_LETTER_OUTPUT}' (add a sink with input: {}.{DEAD_LETTER_OUTPUT}, or use on_error: skip)",
                n.role.name(),
                n.name,
                n.name,
                n.name
            ),
        });
    }
    Ok(())
}

/// Side outputs read from operators whose type fixes their side outputs.
fn check_side_outputs(cx: &Ctx, ops: &[NodeDef], sinks: &[NodeDef]) -> Result<(), SpecError> {
    let by_name: HashMap<&str, &NodeDef> = ops.iter().map(|o| (o.name.as_str(), o)).collect();
    for reader in ops.iter().chain(sinks) {
        for i in &reader.inputs {
            let (Some(out), Some(op)) = (&i.output, by_name.get(i.node.as_str())) else { continue };
            if out == DEAD_LETTER_OUTPUT {
                continue; // check_dead_letters
            }
            let Some(kind) = cx.registry.operators.get(op.descriptor.kind.as_str()) else { continue };
            if let Some(why) = kind.undeclared_output(&op.descriptor.config, &op.name, out) {
                return Err(SpecError::At {
                    file: cx.file.into(),
                    line: i.line,
                    column: 1,
                    message: format!("{} '{}' reads '{}.{out}', but {why}", reader.role.name(), reader.name, i.node),
                });
            }
        }
    }
    Ok(())
}

/// `key_by` of nodes that read a source directly, against what the source's
/// records are: a field of values that are not JSON, or the record key of a
/// source whose records have none.
fn check_keys(cx: &Ctx, sources: &[NodeDef], ops: &[NodeDef], sinks: &[NodeDef]) -> Result<(), SpecError> {
    let shapes: HashMap<&str, crate::RecordShape> = sources
        .iter()
        .filter_map(|s| Some((s.name.as_str(), cx.registry.sources.get(s.descriptor.kind.as_str())?.records(&s.descriptor.config))))
        .collect();
    for reader in ops.iter().chain(sinks) {
        let Some(key_by) = &reader.key_by else { continue };
        for i in &reader.inputs {
            let Some(shape) = shapes.get(i.node.as_str()) else { continue };
            let what = shape.described;
            let problem = match key_by {
                KeySelector::RecordKey if shape.keyed == Some(false) => format!(
                    "key_by: key, but source '{}' reads {what} without keys, so every record would be under one empty key; \
                     key by a field of JSON values instead ('$.field')",
                    i.node
                ),
                KeySelector::JsonField(path) if shape.json == Some(false) => format!(
                    "key_by: $.{}, but source '{}' reads {what}, not JSON values, so they have no fields",
                    path.join("."),
                    i.node
                ),
                _ => continue,
            };
            return Err(SpecError::At {
                file: cx.file.into(),
                line: reader.line,
                column: 1,
                message: format!("{} '{}': {problem}", reader.role.name(), reader.name),
            });
        }
    }
    Ok(())
}

/// What kind of stream every node reads and writes, from the sources'
/// records through the operators (in data-flow order) to the sinks: an
/// operator's type says what it makes of a changelog (a Wasm operator reads
/// one only through the changelog world, which its build checks), and a sink
/// must say it applies one.
fn check_changelogs(cx: &Ctx, sources: &[NodeDef], ops: &mut [NodeDef], sinks: &mut [NodeDef]) -> Result<(), SpecError> {
    // The kind of each node's output, and the changelog source it comes from.
    let mut out: HashMap<String, (Changelog, String)> = HashMap::new();
    for s in sources {
        let shape = cx.registry.sources.get(s.descriptor.kind.as_str()).map(|k| k.records(&s.descriptor.config)).unwrap_or_default();
        let what = format!("'{}', {} ({})", s.name, shape.changelog.describe(), shape.described);
        out.insert(s.name.clone(), (shape.changelog, what));
    }
    let reads = |out: &HashMap<String, (Changelog, String)>, n: &NodeDef| {
        let mut kind = Changelog::Append;
        let (mut from, mut node) = (String::new(), String::new());
        for i in &n.inputs {
            let (k, what) = out.get(i.node.as_str()).cloned().unwrap_or_default();
            if k.is_changelog() && from.is_empty() {
                (from, node) = (what, i.node.clone());
            }
            kind = kind.merge(k);
        }
        (kind, from, node)
    };
    let refuse = |n: &NodeDef, from: &str, problem: String| SpecError::At {
        file: cx.file.into(),
        line: n.line,
        column: 1,
        message: format!("{} '{}' reads {from}, but {problem}", n.role.name(), n.name),
    };
    for op in ops.iter_mut() {
        let (kind, from, node) = reads(&out, op);
        op.reads = kind;
        let Some(k) = cx.registry.operators.get(op.descriptor.kind.as_str()) else { continue };
        let output = k.changelog(&op.descriptor.config, kind).map_err(|problem| refuse(op, &from, problem))?;
        // What a reader of this operator names as where its changelog comes from.
        let what = match (output, kind) {
            (Changelog::Append, _) => String::new(),
            (_, Changelog::Append) => format!("'{}', {}", op.name, output.describe()),
            _ => format!("'{}', {} (made from '{node}')", op.name, output.describe()),
        };
        out.insert(op.name.clone(), (output, what));
    }
    for sink in sinks.iter_mut() {
        let (kind, from, _) = reads(&out, sink);
        sink.reads = kind;
        if !kind.is_changelog() {
            continue;
        }
        if let Some(why) = cx.registry.sinks.get(sink.descriptor.kind.as_str()).and_then(|k| k.rejects_changelog(&sink.descriptor.config)) {
            return Err(refuse(sink, &from, why));
        }
    }
    Ok(())
}

/// Order operators so each comes after the operators it reads (Kahn's
/// algorithm: no recursion, whatever the spec's size); a cycle is an error.
fn topo_sort(cx: &Ctx, ops: Vec<NodeDef>, raw: &[&Node]) -> Result<Vec<NodeDef>, SpecError> {
    let index: HashMap<&str, usize> = ops.iter().enumerate().map(|(i, o)| (o.name.as_str(), i)).collect();
    let mut readers: Vec<Vec<usize>> = vec![Vec::new(); ops.len()];
    let mut waiting: Vec<usize> = vec![0; ops.len()];
    for (i, o) in ops.iter().enumerate() {
        for input in &o.inputs {
            if let Some(&j) = index.get(input.node.as_str()) {
                readers[j].push(i);
                waiting[i] += 1;
            }
        }
    }
    let mut ready: VecDeque<usize> = (0..ops.len()).filter(|&i| waiting[i] == 0).collect();
    let mut order = Vec::with_capacity(ops.len());
    while let Some(i) = ready.pop_front() {
        order.push(i);
        for &r in &readers[i] {
            waiting[r] -= 1;
            if waiting[r] == 0 {
                ready.push_back(r);
            }
        }
    }
    if order.len() < ops.len() {
        // Walk back along inputs from an operator left over until one repeats.
        let left: HashSet<usize> = (0..ops.len()).filter(|i| waiting[*i] > 0).collect();
        let start = *left.iter().min().expect("some operator is left");
        let mut path = vec![start];
        let mut seen = HashMap::from([(start, 0usize)]);
        let cycle = loop {
            let cur = *path.last().expect("a path");
            let prev = ops[cur]
                .inputs
                .iter()
                .filter_map(|i| index.get(i.node.as_str()).copied())
                .find(|j| left.contains(j))
                .expect("an operator in a cycle reads another");
            if let Some(&at) = seen.get(&prev) {
                break path[at..].to_vec();
            }
            seen.insert(prev, path.len());
            path.push(prev);
        };
        // `cycle` follows inputs backwards; report it in data-flow order.
        let mut cycle: Vec<usize> = cycle.into_iter().rev().collect();
        let first = cycle.iter().enumerate().min_by_key(|(_, c)| **c).map(|(p, _)| p).expect("non-empty");
        cycle.rotate_left(first);
        let names: Vec<&str> = cycle.iter().chain(cycle.first()).map(|&c| ops[c].name.as_str()).collect();
        let at = raw[cycle[0]].as_mapping().and_then(|m| m.get_node("name")).and_then(|n| n.span().start());
        return Err(SpecError::at(cx.file, at, format!("operators form a cycle: {}", names.join(" -> "))));
    }
    let mut slots: Vec<Option<NodeDef>> = ops.into_iter().map(Some).collect();
    Ok(order.into_iter().map(|i| slots[i].take().expect("each operator once")).collect())
}
