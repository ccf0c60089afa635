//! A compiled SQL job: the sources, SQL operators and sinks its statements
//! plan onto, as a Weir pipeline spec (so it is validated, built, run,
//! checkpointed, restarted and served like any spec), and its `EXPLAIN`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{json, Map, Value};

use crate::ddl::TableDef;
use crate::error::Pos;

/// One node of the job.
#[derive(Clone, Debug)]
pub struct Node {
    pub name: String,
    /// Its registered type: a connector, or a SQL operator kind.
    pub kind: String,
    pub input: Option<String>,
    /// A second input (a join's right side).
    pub right_input: Option<String>,
    /// Keyed by the record key (`key_by: key`).
    pub keyed: bool,
    pub parallelism: Option<u32>,
    /// The type's own fields.
    pub config: Map<String, Value>,
    /// What it does, for EXPLAIN (one line).
    pub explain: String,
    /// Its keyed state, for EXPLAIN.
    pub state: Option<String>,
    /// The statement it comes from (EXPLAIN groups by it).
    pub statement: Option<usize>,
    /// For a source or sink: its table, where it is defined, and where each
    /// of its options is (errors about them are placed there).
    pub table: Option<(String, Pos, BTreeMap<String, Pos>)>,
}

/// Job-wide settings (`SET 'name' = 'value'`).
#[derive(Clone, Debug, Default)]
pub struct Settings {
    pub name: Option<String>,
    pub checkpoint_interval: Option<String>,
    pub state_backend: Option<String>,
    pub state_dir: Option<String>,
    pub parallelism: Option<u32>,
    /// How long a join keeps a row not written since (`table.exec.state.ttl`).
    pub state_ttl_ms: Option<u64>,
}

/// The job: its nodes in data-flow order.
#[derive(Clone, Debug, Default)]
pub struct Job {
    pub settings: Settings,
    pub sources: Vec<Node>,
    pub operators: Vec<Node>,
    pub sinks: Vec<Node>,
    /// The INSERT statements, by number: (their text's first line, the sink).
    pub statements: Vec<(String, String)>,
    /// The script asked for EXPLAIN (of some statement): show, do not run.
    pub explain: bool,
}

/// An option value as the spec's field wants it: numbers and booleans as
/// such, lists of strings from `a;b`-free text, the rest as strings.
pub fn option_value(v: &str) -> Value {
    if let Ok(i) = v.parse::<i64>() {
        return json!(i);
    }
    if let Ok(f) = v.parse::<f64>()
        && v.contains('.')
    {
        return json!(f);
    }
    match v {
        "true" => json!(true),
        "false" => json!(false),
        _ => json!(v),
    }
}

/// A node name from free text: letters, digits, `_` and `-`.
pub fn node_name(s: &str) -> String {
    let n: String = s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect();
    if n.is_empty() { "t".into() } else { n }
}

impl Job {
    pub fn has_node(&self, name: &str) -> bool {
        self.sources.iter().chain(&self.operators).chain(&self.sinks).any(|n| n.name == name)
    }

    /// A node name not used yet, from `base`.
    pub fn fresh_name(&self, base: &str) -> String {
        let base = node_name(base);
        if !self.has_node(&base) {
            return base;
        }
        (2..).map(|i| format!("{base}-{i}")).find(|n| !self.has_node(n)).expect("some name is free")
    }

    /// The source node reading `table` (added the first time).
    pub fn source_of(&mut self, t: &TableDef) -> String {
        if let Some(s) = self.sources.iter().find(|s| s.config.get("__table").and_then(Value::as_str) == Some(t.name.as_str())) {
            return s.name.clone();
        }
        let name = self.fresh_name(&t.name);
        let mut config = Map::new();
        for (k, v) in &t.options {
            if k != "connector" {
                config.insert(k.clone(), option_value(v));
            }
        }
        // SQL reads JSON: a file table is JSON lines unless it says otherwise.
        if t.connector() == "file" && !config.contains_key("format") {
            config.insert("format".into(), json!("json_lines"));
        }
        if t.connector() == "kafka" && !config.contains_key("format") {
            config.insert("format".into(), json!("json"));
        }
        if let Some(w) = &t.watermark {
            config.insert("timestamp".into(), json!(format!("$.{}", w.column)));
            config.insert("watermark".into(), json!({"out_of_orderness": format!("{}ms", w.delay_ms)}));
        }
        config.insert("__table".into(), json!(t.name));
        let explain = format!(
            "source {} ({}){}",
            t.name,
            t.connector(),
            t.watermark.as_ref().map_or(String::new(), |w| format!(", watermark {} - {} ms", w.column, w.delay_ms))
        );
        let parallelism = t.options.get("parallelism").and_then(|p| p.parse().ok());
        self.sources.push(Node {
            name: name.clone(),
            kind: t.connector().to_string(),
            input: None,
            right_input: None,
            keyed: false,
            parallelism,
            config,
            explain,
            state: None,
            statement: None,
            table: Some((t.name.clone(), t.at, t.option_at.clone())),
        });
        name
    }

    /// An error of the compiled spec about a source's or sink's field
    /// (`sources[0].topic: ...`), as the table option it comes from:
    /// (where, message).
    pub fn place(&self, message: &str) -> Option<(Pos, String)> {
        for (list, nodes) in [("sources", &self.sources), ("sinks", &self.sinks)] {
            let Some(at) = message.find(&format!("{list}[")) else { continue };
            let rest = &message[at + list.len() + 1..];
            let (index, rest) = rest.split_once(']')?;
            let node = nodes.get(index.parse::<usize>().ok()?)?;
            let (table, table_at, options) = node.table.as_ref()?;
            let (field, text) = match rest.strip_prefix('.') {
                Some(r) => r.split_once(": ").map(|(f, t)| (Some(f), t))?,
                None => (None, rest.trim_start_matches(':').trim()),
            };
            let option = field.map(|f| f.split('.').next().unwrap_or(f));
            let at = option.and_then(|o| options.get(o)).copied().unwrap_or(*table_at);
            let what = match option {
                Some(o) => format!("table {table}, option '{o}'"),
                None => format!("table {table}"),
            };
            return Some((at, format!("{what}: {text}")));
        }
        None
    }

    /// The spec (JSON, which the spec parser reads as YAML).
    pub fn to_spec(&self, default_name: &str) -> Value {
        let entry = |n: &Node| {
            let mut m = Map::new();
            m.insert("name".into(), json!(n.name));
            m.insert("type".into(), json!(n.kind));
            match (&n.input, &n.right_input) {
                (Some(l), Some(r)) => {
                    m.insert("inputs".into(), json!([l, r]));
                }
                (Some(i), None) => {
                    m.insert("input".into(), json!(i));
                }
                _ => {}
            }
            if n.keyed {
                m.insert("key_by".into(), json!("key"));
            }
            if let Some(p) = n.parallelism {
                m.insert("parallelism".into(), json!(p));
            }
            for (k, v) in &n.config {
                if !k.starts_with("__") && k != "parallelism" {
                    m.insert(k.clone(), v.clone());
                }
            }
            Value::Object(m)
        };
        let mut spec = Map::new();
        spec.insert("name".into(), json!(self.settings.name.clone().unwrap_or_else(|| node_name(default_name))));
        if let Some(i) = &self.settings.checkpoint_interval {
            spec.insert("checkpoint".into(), json!({"interval": i}));
        }
        let mut state = Map::new();
        if let Some(b) = &self.settings.state_backend {
            state.insert("backend".into(), json!(b));
        }
        if let Some(d) = &self.settings.state_dir {
            state.insert("dir".into(), json!(d));
        }
        if !state.is_empty() {
            spec.insert("state".into(), Value::Object(state));
        }
        spec.insert("sources".into(), self.sources.iter().map(entry).collect());
        if !self.operators.is_empty() {
            spec.insert("operators".into(), self.operators.iter().map(entry).collect());
        }
        spec.insert("sinks".into(), self.sinks.iter().map(entry).collect());
        Value::Object(spec)
    }

    /// EXPLAIN: the dataflow, node by node, with what each keeps in state.
    pub fn explain(&self) -> String {
        let mut out = String::new();
        let parallel = |n: &Node| n.parallelism.map_or(String::new(), |p| format!(" x{p}"));
        let _ = writeln!(out, "sources:");
        for s in &self.sources {
            let _ = writeln!(out, "  {}{}: {}", s.name, parallel(s), s.explain);
        }
        for (i, (text, sink)) in self.statements.iter().enumerate() {
            let _ = writeln!(out, "statement {}: {text}", i + 1);
            let mut chain: Vec<&Node> = self.operators.iter().filter(|n| n.statement == Some(i)).collect();
            chain.extend(self.sinks.iter().filter(|n| n.name == *sink));
            for n in chain {
                let edge = if n.keyed { "--key_by-->" } else { "-->" };
                let from = match (&n.input, &n.right_input) {
                    (Some(l), Some(r)) => format!("{l} + {r}"),
                    (l, _) => l.as_deref().unwrap_or("?").to_string(),
                };
                let _ = writeln!(out, "  {from} {edge} {}{}: {}", n.name, parallel(n), n.explain);
                if let Some(s) = &n.state {
                    let _ = writeln!(out, "      state: {s}");
                }
            }
        }
        out
    }
}
