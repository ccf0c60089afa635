//! From the spec as written to a checked pipeline definition.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use marked_yaml::Spanned;
use weir_connectors::{FileFormat, GeneratorSpec};
use weir_engine::{EngineOptions, EventTime, KeySelector, DEFAULT_MAX_PARALLELISM};
use weir_wasm::{Limits, WindowSpec};

use crate::model::{RawLimits, RawOperator, RawSink, RawSource, RawSpec};
use crate::window::window;
use crate::units::{parse_bytes, parse_duration};
use crate::SpecError;

/// A checked pipeline. Operators are in topological order.
#[derive(Clone, Debug)]
pub struct PipelineSpec {
    /// The file it came from (for messages).
    pub file: String,
    pub name: String,
    pub engine: EngineOptions,
    pub sources: Vec<SourceDef>,
    pub operators: Vec<OperatorDef>,
    pub sinks: Vec<SinkDef>,
    pub state: StateDef,
    /// `None`: no checkpoints (sinks are at-least-once).
    pub checkpoint: Option<CheckpointDef>,
}

/// Where keyed state lives and where checkpoints go.
#[derive(Clone, Debug, Default)]
pub struct StateDef {
    pub backend: Backend,
    /// Checkpoint storage: a directory or an `s3://` URL.
    pub dir: Option<String>,
    /// Local scratch space (RocksDB working files, snapshot staging); by
    /// default `<dir>/local` for a local `dir`, else under the temp directory.
    pub local_dir: Option<PathBuf>,
    /// RocksDB only: the record cache of each task, in bytes (`state.cache`).
    pub cache_bytes: Option<usize>,
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
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Backend {
    #[default]
    Heap,
    RocksDb,
}

#[derive(Clone, Debug)]
pub struct CheckpointDef {
    /// `None`: only the final checkpoint of a bounded run.
    pub interval: Option<std::time::Duration>,
    /// Complete checkpoints kept.
    pub retain: usize,
}

#[derive(Clone, Debug)]
pub struct SourceDef {
    pub name: String,
    pub line: usize,
    pub parallelism: u32,
    pub kind: SourceKind,
    /// Timestamps and watermarks, when the source has `timestamp` or `watermark`.
    pub event_time: Option<EventTime>,
}

#[derive(Clone, Debug)]
pub enum SourceKind {
    File { path: PathBuf, format: FileFormat },
    Generator(Arc<GeneratorSpec>),
}

/// `node` or `node.side_output`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputRef {
    pub node: String,
    pub output: Option<String>,
    pub line: usize,
}

#[derive(Clone, Debug)]
pub struct PluginRef {
    pub path: PathBuf,
    pub line: usize,
}

#[derive(Clone, Debug)]
pub struct OperatorDef {
    pub name: String,
    pub line: usize,
    pub plugin: PluginRef,
    pub inputs: Vec<InputRef>,
    pub key_by: Option<KeySelector>,
    pub parallelism: u32,
    pub config: Vec<(String, String)>,
    pub limits: Limits,
    /// `Some` for a window operator (its plugin is a window function).
    pub window: Option<WindowSpec>,
}

#[derive(Clone, Debug)]
pub struct SinkDef {
    pub name: String,
    pub line: usize,
    /// `None`: the parallelism of its input.
    pub parallelism: Option<u32>,
    pub kind: SinkKind,
    pub inputs: Vec<InputRef>,
    pub key_by: Option<KeySelector>,
}

#[derive(Clone, Debug)]
pub enum SinkKind {
    File { dir: PathBuf },
    Stdout,
}

pub(crate) struct Ctx<'a> {
    pub file: &'a str,
    /// For a spec sent to a node: its pipelines directory (default state
    /// directory `<dir>/<name>/state`, checkpoints every second by default).
    pub node_dir: Option<&'a std::path::Path>,
}

impl Ctx<'_> {
    pub(crate) fn err<T>(&self, span: &Spanned<T>, message: impl Into<String>) -> SpecError {
        SpecError::at(self.file, span.span().start(), message)
    }
}

fn line<T>(s: &Spanned<T>) -> usize {
    s.span().start().map(|m| m.line()).unwrap_or(0)
}

pub(crate) fn validate(raw: RawSpec, file: &str, node_dir: Option<&std::path::Path>) -> Result<PipelineSpec, SpecError> {
    let cx = Ctx { file, node_dir };
    let mut engine = EngineOptions { pipeline: raw.name.to_string(), ..Default::default() };
    check_name(&cx, &raw.name, "name")?;
    if let Some(mp) = &raw.max_parallelism {
        if **mp == 0 || **mp > 32768 {
            return Err(cx.err(mp, "max_parallelism: must be between 1 and 32768"));
        }
        engine.max_parallelism = **mp;
    } else {
        engine.max_parallelism = DEFAULT_MAX_PARALLELISM;
    }
    if let Some(b) = &raw.batch {
        if let Some(size) = &b.size {
            if **size == 0 {
                return Err(cx.err(size, "batch.size: must be at least 1"));
            }
            engine.batch_size = **size;
        }
        if let Some(t) = &b.timeout {
            engine.batch_timeout = parse_duration(t).map_err(|m| cx.err(t, format!("batch.timeout: {m}")))?;
        }
    }
    if raw.sources.is_empty() {
        return Err(SpecError::File { file: file.into(), message: "sources: a pipeline needs at least one source".into() });
    }
    if raw.sinks.is_empty() {
        return Err(SpecError::File { file: file.into(), message: "sinks: a pipeline needs at least one sink".into() });
    }

    let mut names: HashMap<String, &'static str> = HashMap::new();
    let mut declare = |name: &Spanned<String>, what: &'static str, field: String| -> Result<(), SpecError> {
        check_name(&cx, name, &field)?;
        if let Some(prev) = names.insert(name.to_string(), what) {
            return Err(cx.err(name, format!("{field}: a {prev} is already named '{}'", **name)));
        }
        Ok(())
    };
    for (i, s) in raw.sources.iter().enumerate() {
        declare(&s.name, "source", format!("sources[{i}].name"))?;
    }
    for (i, o) in raw.operators.iter().enumerate() {
        declare(&o.name, "operator", format!("operators[{i}].name"))?;
    }
    for (i, s) in raw.sinks.iter().enumerate() {
        declare(&s.name, "sink", format!("sinks[{i}].name"))?;
    }

    let sources = raw.sources.iter().enumerate().map(|(i, s)| source(&cx, i, s, engine.max_parallelism)).collect::<Result<Vec<_>, _>>()?;
    let mut operators = raw
        .operators
        .iter()
        .enumerate()
        .map(|(i, o)| operator(&cx, i, o, &names, engine.max_parallelism))
        .collect::<Result<Vec<_>, _>>()?;
    let sinks = raw.sinks.iter().enumerate().map(|(i, s)| sink(&cx, i, s, &names, engine.max_parallelism)).collect::<Result<Vec<_>, _>>()?;
    crate::window::check_side_outputs(&cx, &operators, &sinks)?;
    operators = topo_sort(&cx, operators, &raw.operators)?;
    let (state, checkpoint) = state_and_checkpoint(&cx, &raw)?;
    Ok(PipelineSpec { file: file.into(), name: raw.name.to_string(), engine, sources, operators, sinks, state, checkpoint })
}

fn state_and_checkpoint(cx: &Ctx, raw: &RawSpec) -> Result<(StateDef, Option<CheckpointDef>), SpecError> {
    let mut state = StateDef::default();
    if let Some(s) = &raw.state {
        if let Some(b) = &s.backend {
            state.backend = match b.as_str() {
                "heap" => Backend::Heap,
                "rocksdb" => Backend::RocksDb,
                other => return Err(cx.err(b, format!("state.backend: unknown backend '{other}' (expected heap or rocksdb)"))),
            };
        }
        if let Some(d) = &s.dir {
            if d.is_empty() {
                return Err(cx.err(d, "state.dir: must not be empty"));
            }
            state.dir = Some(d.to_string());
        }
        state.local_dir = s.local_dir.as_ref().map(|d| PathBuf::from(d.as_str()));
        if let Some(c) = &s.cache {
            if state.backend != Backend::RocksDb {
                return Err(cx.err(c, "state.cache: only the rocksdb backend has a record cache (the heap backend keeps all state in memory); set `backend: rocksdb` or remove `cache`"));
            }
            state.cache_bytes = Some(parse_bytes(c).map_err(|m| cx.err(c, format!("state.cache: {m}")))?);
        }
    }
    if let Some(dir) = cx.node_dir {
        if state.dir.is_none() {
            state.dir = Some(dir.join(raw.name.as_str()).join("state").to_string_lossy().into_owned());
        }
        if raw.checkpoint.is_none() {
            return Ok((state, Some(CheckpointDef { interval: Some(std::time::Duration::from_secs(1)), retain: 3 })));
        }
    }
    let Some(c) = &raw.checkpoint else { return Ok((state, None)) };
    let mut def = CheckpointDef { interval: None, retain: 3 };
    if let Some(i) = &c.interval {
        let d = parse_duration(i).map_err(|m| cx.err(i, format!("checkpoint.interval: {m}")))?;
        if d < std::time::Duration::from_millis(10) {
            return Err(cx.err(i, "checkpoint.interval: must be at least 10ms"));
        }
        def.interval = Some(d);
    }
    if let Some(r) = &c.retain {
        if **r == 0 {
            return Err(cx.err(r, "checkpoint.retain: must be at least 1"));
        }
        def.retain = **r;
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

fn check_name(cx: &Ctx, name: &Spanned<String>, field: &str) -> Result<(), SpecError> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(cx.err(name, format!("{field}: '{}' is not a valid name (use letters, digits, '_' and '-')", **name)));
    }
    Ok(())
}

fn parallelism(cx: &Ctx, p: &Option<Spanned<u32>>, field: &str, max: u32) -> Result<Option<u32>, SpecError> {
    match p {
        Some(p) if **p == 0 || **p > max => {
            Err(cx.err(p, format!("{field}.parallelism: must be between 1 and max_parallelism ({max}), not {}", **p)))
        }
        Some(p) => Ok(Some(**p)),
        None => Ok(None),
    }
}

fn not_for<T>(cx: &Ctx, v: &Option<Spanned<T>>, field: &str, kind: &str) -> Result<(), SpecError> {
    match v {
        Some(v) => Err(cx.err(v, format!("{field}: not a setting of a {kind} source"))),
        None => Ok(()),
    }
}

fn source(cx: &Ctx, i: usize, s: &RawSource, max: u32) -> Result<SourceDef, SpecError> {
    let f = format!("sources[{i}]");
    let par = parallelism(cx, &s.parallelism, &f, max)?;
    let kind = match s.kind.as_str() {
        "file" => {
            for (v, n) in [(&s.seed, "seed"), (&s.count, "count"), (&s.keys, "keys")] {
                not_for(cx, v, &format!("{f}.{n}"), "file")?;
            }
            not_for(cx, &s.rate, &format!("{f}.rate"), "file")?;
            not_for(cx, &s.start_ms, &format!("{f}.start_ms"), "file")?;
            let path = s.path.as_ref().ok_or_else(|| cx.err(&s.kind, format!("{f}.path: a file source needs a path")))?;
            if par.is_some_and(|p| p != 1) {
                return Err(cx.err(s.parallelism.as_ref().unwrap(), format!("{f}.parallelism: a file source reads with parallelism 1")));
            }
            let format = match s.format.as_ref().map(|f| f.as_str()) {
                None | Some("lines") => FileFormat::Lines,
                Some("json_lines") | Some("jsonl") => FileFormat::JsonLines,
                Some(other) => {
                    return Err(cx.err(
                        s.format.as_ref().unwrap(),
                        format!("{f}.format: '{other}' is not a file format (lines, json_lines)"),
                    ))
                }
            };
            SourceKind::File { path: PathBuf::from(path.as_str()), format }
        }
        "generator" => {
            not_for(cx, &s.path, &format!("{f}.path"), "generator")?;
            not_for(cx, &s.format, &format!("{f}.format"), "generator")?;
            let d = GeneratorSpec::default();
            if let Some(r) = &s.rate
                && !(**r > 0.0 && r.is_finite())
            {
                return Err(cx.err(r, format!("{f}.rate: must be a positive number of events per second")));
            }
            if let Some(k) = &s.keys
                && **k == 0
            {
                return Err(cx.err(k, format!("{f}.keys: must be at least 1")));
            }
            SourceKind::Generator(Arc::new(GeneratorSpec {
                seed: s.seed.as_ref().map_or(d.seed, |v| **v),
                count: s.count.as_ref().map(|v| **v),
                rate: s.rate.as_ref().map(|v| **v),
                keys: s.keys.as_ref().map_or(d.keys, |v| **v),
                start_ms: s.start_ms.as_ref().map_or(d.start_ms, |v| **v),
            }))
        }
        other => return Err(cx.err(&s.kind, format!("{f}.type: '{other}' is not a source type (file, generator)"))),
    };
    let event_time = event_time(cx, &f, s)?;
    Ok(SourceDef { name: s.name.to_string(), line: line(&s.name), parallelism: par.unwrap_or(1), kind, event_time })
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
        if let Some(o) = &w.out_of_orderness {
            et.out_of_orderness = parse_duration(o).map_err(|m| cx.err(o, format!("{f}.watermark.out_of_orderness: {m}")))?;
        }
        if let Some(i) = &w.idle_timeout {
            et.idle_timeout = Some(parse_duration(i).map_err(|m| cx.err(i, format!("{f}.watermark.idle_timeout: {m}")))?);
        }
    }
    Ok(Some(et))
}

fn inputs(
    cx: &Ctx,
    field: &str,
    anchor: &Spanned<String>,
    input: &Option<Spanned<String>>,
    inputs: &Option<Vec<Spanned<String>>>,
    names: &HashMap<String, &'static str>,
) -> Result<Vec<InputRef>, SpecError> {
    let list: Vec<&Spanned<String>> = match (input, inputs) {
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
                    let known: Vec<_> = names.iter().filter(|(_, k)| **k != "sink").map(|(n, _)| n.as_str()).collect();
                    let mut known = known;
                    known.sort();
                    return Err(cx.err(s, format!("{field}.input: no source or operator is named '{node}' (there are: {})", known.join(", "))));
                }
                Some(&"sink") => return Err(cx.err(s, format!("{field}.input: '{node}' is a sink; sinks have no output"))),
                Some(&"source") if output.is_some() => {
                    return Err(cx.err(s, format!("{field}.input: source '{node}' has no side outputs")))
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

fn key_by(cx: &Ctx, field: &str, k: &Option<Spanned<String>>) -> Result<Option<KeySelector>, SpecError> {
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

fn limits(cx: &Ctx, field: &str, l: &Option<RawLimits>) -> Result<Limits, SpecError> {
    let mut limits = Limits::default();
    if let Some(l) = l {
        if let Some(m) = &l.memory {
            limits.memory = parse_bytes(m).map_err(|e| cx.err(m, format!("{field}.limits.memory: {e}")))?;
            if limits.memory < 1 << 16 {
                return Err(cx.err(m, format!("{field}.limits.memory: must be at least 64KiB (one Wasm page)")));
            }
        }
        if let Some(t) = &l.call_timeout {
            limits.call_timeout = parse_duration(t).map_err(|e| cx.err(t, format!("{field}.limits.call_timeout: {e}")))?;
            if limits.call_timeout.is_zero() {
                return Err(cx.err(t, format!("{field}.limits.call_timeout: must be more than 0")));
            }
        }
    }
    Ok(limits)
}

fn operator(
    cx: &Ctx,
    i: usize,
    o: &RawOperator,
    names: &HashMap<String, &'static str>,
    max: u32,
) -> Result<OperatorDef, SpecError> {
    let f = format!("operators[{i}]");
    if o.plugin.trim().is_empty() {
        return Err(cx.err(&o.plugin, format!("{f}.plugin: empty")));
    }
    let window = match &o.window {
        Some(w) => {
            if o.key_by.is_none() {
                return Err(cx.err(&w.kind, format!("{f}.window: a window operator needs key_by (windows are per key)")));
            }
            Some(window(cx, &f, w)?)
        }
        None => None,
    };
    Ok(OperatorDef {
        name: o.name.to_string(),
        line: line(&o.name),
        plugin: PluginRef { path: PathBuf::from(o.plugin.as_str()), line: line(&o.plugin) },
        inputs: inputs(cx, &f, &o.name, &o.input, &o.inputs, names)?,
        key_by: key_by(cx, &f, &o.key_by)?,
        parallelism: parallelism(cx, &o.parallelism, &f, max)?.unwrap_or(1),
        config: o.config.iter().flatten().map(|(k, v)| (k.clone(), v.to_string())).collect(),
        limits: limits(cx, &f, &o.limits)?,
        window,
    })
}

fn sink(cx: &Ctx, i: usize, s: &RawSink, names: &HashMap<String, &'static str>, max: u32) -> Result<SinkDef, SpecError> {
    let f = format!("sinks[{i}]");
    let kind = match s.kind.as_str() {
        "file" => {
            let p = s.path.as_ref().ok_or_else(|| cx.err(&s.kind, format!("{f}.path: a file sink needs a directory path")))?;
            SinkKind::File { dir: PathBuf::from(p.as_str()) }
        }
        "stdout" => {
            if let Some(p) = &s.path {
                return Err(cx.err(p, format!("{f}.path: not a setting of a stdout sink")));
            }
            SinkKind::Stdout
        }
        other => return Err(cx.err(&s.kind, format!("{f}.type: '{other}' is not a sink type (file, stdout)"))),
    };
    Ok(SinkDef {
        name: s.name.to_string(),
        line: line(&s.name),
        parallelism: parallelism(cx, &s.parallelism, &f, max)?,
        kind,
        inputs: inputs(cx, &f, &s.name, &s.input, &s.inputs, names)?,
        key_by: key_by(cx, &f, &s.key_by)?,
    })
}

/// Order operators so each comes after the operators it reads; a cycle is an error.
fn topo_sort(cx: &Ctx, ops: Vec<OperatorDef>, raw: &[RawOperator]) -> Result<Vec<OperatorDef>, SpecError> {
    let index: HashMap<&str, usize> = ops.iter().enumerate().map(|(i, o)| (o.name.as_str(), i)).collect();
    // 0 = unvisited, 1 = on the stack, 2 = done.
    let mut mark = vec![0u8; ops.len()];
    let mut order = Vec::with_capacity(ops.len());
    fn visit(
        i: usize,
        ops: &[OperatorDef],
        index: &HashMap<&str, usize>,
        mark: &mut [u8],
        order: &mut Vec<usize>,
        path: &mut Vec<usize>,
    ) -> Result<(), Vec<usize>> {
        match mark[i] {
            2 => return Ok(()),
            1 => {
                let start = path.iter().position(|&p| p == i).expect("on the stack");
                return Err(path[start..].to_vec());
            }
            _ => {}
        }
        mark[i] = 1;
        path.push(i);
        for input in &ops[i].inputs {
            if let Some(&j) = index.get(input.node.as_str()) {
                visit(j, ops, index, mark, order, path)?;
            }
        }
        path.pop();
        mark[i] = 2;
        order.push(i);
        Ok(())
    }
    for i in 0..ops.len() {
        if let Err(cycle) = visit(i, &ops, &index, &mut mark, &mut order, &mut Vec::new()) {
            let names: Vec<&str> = cycle.iter().chain(cycle.first()).map(|&c| ops[c].name.as_str()).collect();
            return Err(cx.err(&raw[cycle[0]].name, format!("operators form a cycle: {}", names.join(" -> "))));
        }
    }
    let mut slots: Vec<Option<OperatorDef>> = ops.into_iter().map(Some).collect();
    Ok(order.into_iter().map(|i| slots[i].take().expect("each operator once")).collect())
}
