//! The logical dataflow: named nodes, their parallelism and the edges between them.

use std::sync::Arc;
use std::time::Duration;

use crate::checkpoint::{CheckpointConfig, RestorePlan};
use crate::event_time::EventTime;
use crate::executor::{self, Job};
use crate::{EngineError, OperatorFactory, SinkFactory, SourceFactory, DEFAULT_MAX_PARALLELISM};

/// Engine-wide settings of one pipeline.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    pub pipeline: String,
    /// A batch closes at this many records...
    pub batch_size: usize,
    /// ...or this long after its first record, whichever comes first.
    pub batch_timeout: Duration,
    /// Batches a channel between two tasks holds before the sender blocks.
    pub channel_capacity: usize,
    /// The number of key groups.
    pub max_parallelism: u32,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            pipeline: "pipeline".into(),
            batch_size: 1024,
            batch_timeout: Duration::from_micros(500),
            channel_capacity: 8,
            max_parallelism: DEFAULT_MAX_PARALLELISM,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub usize);

/// How records of an edge are spread over the consumer's parallel tasks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Partitioning {
    /// Task `i` feeds task `i` (needs equal parallelism; otherwise rebalanced).
    Forward,
    /// Batches go round-robin to the consumer's tasks.
    Rebalance,
    /// Each record goes to the task owning its key's key group.
    KeyBy(KeySelector),
}

/// What a record is keyed by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySelector {
    /// The record's key as it is.
    RecordKey,
    /// A field of the record's JSON value (a path of object field names); the
    /// record's key becomes the field's JSON text (strings without quotes).
    JsonField(Vec<String>),
}

/// An input of a node: output `port` of node `from` (0 = main output, `n` =
/// side output `n`).
#[derive(Clone, Debug)]
pub struct Edge {
    pub from: NodeId,
    pub port: u32,
    pub partitioning: Partitioning,
}

impl Edge {
    pub fn forward(from: NodeId) -> Self {
        Edge { from, port: 0, partitioning: Partitioning::Forward }
    }

    pub fn key_by(from: NodeId, selector: KeySelector) -> Self {
        Edge { from, port: 0, partitioning: Partitioning::KeyBy(selector) }
    }
}

pub(crate) enum NodeKind {
    Source(Arc<dyn SourceFactory>),
    Operator(Arc<dyn OperatorFactory>),
    Sink(Arc<dyn SinkFactory>),
}

pub(crate) struct NodeDef {
    pub name: String,
    pub parallelism: u32,
    pub kind: NodeKind,
    pub inputs: Vec<Edge>,
    /// Consumed side outputs, port `i + 1` each.
    pub side_outputs: Vec<String>,
    /// A source's event time and watermarks.
    pub event_time: Option<EventTime>,
}

/// A dataflow under construction. Nodes must be added after their inputs, which
/// makes every dataflow acyclic by construction.
pub struct Dataflow {
    pub(crate) options: EngineOptions,
    pub(crate) nodes: Vec<NodeDef>,
    pub(crate) checkpoint: Option<CheckpointConfig>,
    pub(crate) restore: Option<RestorePlan>,
}

impl Dataflow {
    pub fn new(options: EngineOptions) -> Self {
        Dataflow { options, nodes: Vec::new(), checkpoint: None, restore: None }
    }

    /// Take checkpoints (and a final one at the end of a bounded run); sinks
    /// then publish output only for complete checkpoints.
    pub fn set_checkpointing(&mut self, config: CheckpointConfig) {
        self.checkpoint = Some(config);
    }

    /// Give source `source` event time: timestamps and watermarks.
    pub fn set_event_time(&mut self, source: NodeId, event_time: EventTime) -> Result<(), EngineError> {
        let node = self.nodes.get_mut(source.0).ok_or_else(|| EngineError::Plan("no such node".into()))?;
        if !matches!(node.kind, NodeKind::Source(_)) {
            return Err(EngineError::Plan(format!("'{}' is not a source; only sources have event time", node.name)));
        }
        node.event_time = Some(event_time);
        Ok(())
    }

    /// Resume from a checkpoint: sources seek, operators restore their key
    /// groups, sinks publish what it covers and discard the rest.
    pub fn set_restore(&mut self, plan: RestorePlan) {
        self.restore = Some(plan);
    }

    /// The nodes' names and kinds ("source", "operator", "sink"), in order.
    pub fn node_names(&self) -> Vec<(&str, &'static str, u32)> {
        self.nodes
            .iter()
            .map(|n| {
                let kind = match n.kind {
                    NodeKind::Source(_) => "source",
                    NodeKind::Operator(_) => "operator",
                    NodeKind::Sink(_) => "sink",
                };
                (n.name.as_str(), kind, n.parallelism)
            })
            .collect()
    }

    fn add(&mut self, def: NodeDef) -> Result<NodeId, EngineError> {
        if self.nodes.iter().any(|n| n.name == def.name) {
            return Err(EngineError::Plan(format!("two nodes are named '{}'", def.name)));
        }
        if def.parallelism == 0 || def.parallelism > self.options.max_parallelism {
            return Err(EngineError::Plan(format!(
                "node '{}' has parallelism {}; it must be between 1 and the max parallelism {}",
                def.name, def.parallelism, self.options.max_parallelism
            )));
        }
        for e in &def.inputs {
            let Some(from) = self.nodes.get(e.from.0) else {
                return Err(EngineError::Plan(format!("node '{}' reads a node that does not exist", def.name)));
            };
            if matches!(from.kind, NodeKind::Sink(_)) {
                return Err(EngineError::Plan(format!("node '{}' reads sink '{}'", def.name, from.name)));
            }
            if e.port as usize > from.side_outputs.len() {
                return Err(EngineError::Plan(format!(
                    "node '{}' reads output port {} of '{}', which has {} side outputs",
                    def.name,
                    e.port,
                    from.name,
                    from.side_outputs.len()
                )));
            }
        }
        self.nodes.push(def);
        Ok(NodeId(self.nodes.len() - 1))
    }

    pub fn add_source(
        &mut self,
        name: &str,
        parallelism: u32,
        factory: Arc<dyn SourceFactory>,
    ) -> Result<NodeId, EngineError> {
        self.add(NodeDef {
            name: name.into(),
            parallelism,
            kind: NodeKind::Source(factory),
            inputs: vec![],
            side_outputs: vec![],
            event_time: None,
        })
    }

    pub fn add_operator(
        &mut self,
        name: &str,
        parallelism: u32,
        factory: Arc<dyn OperatorFactory>,
        inputs: Vec<Edge>,
        side_outputs: Vec<String>,
    ) -> Result<NodeId, EngineError> {
        if inputs.is_empty() {
            return Err(EngineError::Plan(format!("operator '{name}' has no input")));
        }
        self.add(NodeDef { name: name.into(), parallelism, kind: NodeKind::Operator(factory), inputs, side_outputs, event_time: None })
    }

    pub fn add_sink(
        &mut self,
        name: &str,
        parallelism: u32,
        factory: Arc<dyn SinkFactory>,
        inputs: Vec<Edge>,
    ) -> Result<NodeId, EngineError> {
        if inputs.is_empty() {
            return Err(EngineError::Plan(format!("sink '{name}' has no input")));
        }
        self.add(NodeDef {
            name: name.into(),
            parallelism,
            kind: NodeKind::Sink(factory),
            inputs,
            side_outputs: vec![],
            event_time: None,
        })
    }

    /// Instantiate every task (operators' `open` runs here, so a failing plugin
    /// fails the start, before any record flows) and start them on threads.
    pub fn start(self) -> Result<Job, EngineError> {
        executor::start(self)
    }

    /// Node `id`'s chain parent: the node whose task it runs in, when its only
    /// input is a forward edge between nodes of equal parallelism.
    pub(crate) fn chain_parent(&self, id: usize) -> Option<usize> {
        let node = &self.nodes[id];
        match node.inputs.as_slice() {
            [e] if e.partitioning == Partitioning::Forward
                && self.nodes[e.from.0].parallelism == node.parallelism =>
            {
                Some(e.from.0)
            }
            _ => None,
        }
    }
}
