//! The logical dataflow: named nodes, their parallelism and the edges between
//! them. [`LogicalDataflow`] is a plain value that serialises (each node holds
//! a [`Descriptor`]: a type name and its config, as a connector registry knows
//! it), so it can be stored, sent to another machine and rebuilt there with a
//! [`Resolver`]. [`Dataflow`] is a logical dataflow with the factory of each
//! node, ready to start.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::checkpoint::{CheckpointConfig, RestorePlan};
use crate::event_time::EventTime;
use crate::executor::{self, Job};
use crate::{EngineError, OperatorFactory, SinkFactory, SourceFactory, DEFAULT_MAX_PARALLELISM};

/// Engine-wide settings of one pipeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeId(pub usize);

/// How records of an edge are spread over the consumer's parallel tasks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Partitioning {
    /// Task `i` feeds task `i` (needs equal parallelism; otherwise rebalanced).
    Forward,
    /// Batches go round-robin to the consumer's tasks.
    Rebalance,
    /// Each record goes to the task owning its key's key group.
    KeyBy(KeySelector),
}

/// What a record is keyed by.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeySelector {
    /// The record's key as it is.
    RecordKey,
    /// A field of the record's JSON value (a path of object field names); the
    /// record's key becomes the field's JSON text (strings without quotes).
    JsonField(Vec<String>),
}

/// An input of a node: output `port` of node `from` (0 = main output, `n` =
/// side output `n`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

/// What a node runs: a registered type name (`generator`, `file`, `wasm`, ...)
/// and that type's config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub config: serde_json::Value,
}

impl Descriptor {
    /// The kind of a node built from a factory in this process, which no
    /// registry can rebuild.
    pub const LOCAL: &'static str = "local";

    pub fn new(kind: impl Into<String>, config: serde_json::Value) -> Self {
        Descriptor { kind: kind.into(), config }
    }

    fn local() -> Self {
        Descriptor { kind: Self::LOCAL.into(), config: serde_json::Value::Null }
    }
}

/// Whether a node is a source, an operator or a sink.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Source,
    Operator,
    Sink,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Source => "source",
            Role::Operator => "operator",
            Role::Sink => "sink",
        }
    }
}

/// One node of a logical dataflow.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogicalNode {
    pub name: String,
    pub role: Role,
    pub parallelism: u32,
    pub descriptor: Descriptor,
    #[serde(default)]
    pub inputs: Vec<Edge>,
    /// Consumed side outputs, port `i + 1` each.
    #[serde(default)]
    pub side_outputs: Vec<String>,
    /// A source's event time and watermarks.
    #[serde(default)]
    pub event_time: Option<EventTime>,
    /// What the node does with a record it fails on (sources and operators).
    #[serde(default)]
    pub on_error: crate::ErrorPolicy,
}

/// A dataflow as a plain value: nodes after their inputs (so it is acyclic),
/// each with its descriptor.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LogicalDataflow {
    pub options: EngineOptions,
    pub nodes: Vec<LogicalNode>,
}

impl LogicalDataflow {
    /// Node `id`'s chain parent: the node whose task it runs in, when its only
    /// input is a forward edge between nodes of equal parallelism.
    pub fn chain_parent(&self, id: usize) -> Option<usize> {
        let node = &self.nodes[id];
        match node.inputs.as_slice() {
            [e] if e.partitioning == Partitioning::Forward && self.nodes[e.from.0].parallelism == node.parallelism => {
                Some(e.from.0)
            }
            _ => None,
        }
    }

    /// Check that every edge reads an earlier node's existing port, names are
    /// unique and parallelism is in range.
    pub fn check(&self) -> Result<(), EngineError> {
        let mut names = std::collections::HashSet::new();
        for i in 0..self.nodes.len() {
            if !names.insert(self.nodes[i].name.as_str()) {
                return Err(EngineError::Plan(format!("two nodes are named '{}'", self.nodes[i].name)));
            }
            self.check_node(i)?;
        }
        Ok(())
    }

    /// Check node `i` against the nodes before it (not its name's uniqueness).
    fn check_node(&self, i: usize) -> Result<(), EngineError> {
        let n = &self.nodes[i];
        if n.parallelism == 0 || n.parallelism > self.options.max_parallelism {
            return Err(EngineError::Plan(format!(
                "node '{}' has parallelism {}; it must be between 1 and the max parallelism {}",
                n.name, n.parallelism, self.options.max_parallelism
            )));
        }
        match (n.role, n.inputs.is_empty()) {
            (Role::Source, false) => return Err(EngineError::Plan(format!("source '{}' has inputs", n.name))),
            (Role::Operator | Role::Sink, true) => {
                return Err(EngineError::Plan(format!("{} '{}' has no input", n.role.name(), n.name)))
            }
            _ => {}
        }
        if n.event_time.is_some() && n.role != Role::Source {
            return Err(EngineError::Plan(format!("'{}' is not a source; only sources have event time", n.name)));
        }
        for e in &n.inputs {
            let Some(from) = self.nodes[..i].get(e.from.0) else {
                return Err(EngineError::Plan(format!("node '{}' reads a node that does not come before it", n.name)));
            };
            if from.role == Role::Sink {
                return Err(EngineError::Plan(format!("node '{}' reads sink '{}'", n.name, from.name)));
            }
            if e.port as usize > from.side_outputs.len() {
                return Err(EngineError::Plan(format!(
                    "node '{}' reads output port {} of '{}', which has {} side outputs",
                    n.name,
                    e.port,
                    from.name,
                    from.side_outputs.len()
                )));
            }
        }
        Ok(())
    }
}

/// Builds the factory of a node from its descriptor (a connector registry does).
pub trait Resolver {
    fn source(&self, node: &LogicalNode) -> Result<Arc<dyn SourceFactory>, EngineError>;
    fn operator(&self, node: &LogicalNode) -> Result<Arc<dyn OperatorFactory>, EngineError>;
    fn sink(&self, node: &LogicalNode) -> Result<Arc<dyn SinkFactory>, EngineError>;
}

/// A node's factory.
#[derive(Clone)]
pub(crate) enum Factory {
    Source(Arc<dyn SourceFactory>),
    Operator(Arc<dyn OperatorFactory>),
    Sink(Arc<dyn SinkFactory>),
}

/// A logical dataflow with the factory of every node, under construction or
/// ready to start.
pub struct Dataflow {
    pub(crate) logical: LogicalDataflow,
    pub(crate) factories: Vec<Factory>,
    pub(crate) checkpoint: Option<CheckpointConfig>,
    pub(crate) restore: Option<RestorePlan>,
    /// Node names so far (adding a node checks only the new node).
    names: std::collections::HashSet<String>,
}

impl Dataflow {
    pub fn new(options: EngineOptions) -> Self {
        let logical = LogicalDataflow { options, nodes: Vec::new() };
        Dataflow { logical, factories: Vec::new(), checkpoint: None, restore: None, names: Default::default() }
    }

    /// Rebuild a dataflow from its logical form, each node's factory from its
    /// descriptor.
    pub fn from_logical(logical: LogicalDataflow, resolver: &dyn Resolver) -> Result<Self, EngineError> {
        logical.check()?;
        let mut factories = Vec::with_capacity(logical.nodes.len());
        for n in &logical.nodes {
            if n.descriptor.kind == Descriptor::LOCAL {
                return Err(EngineError::Plan(format!(
                    "node '{}' was built from a factory in another process; it has no descriptor to rebuild it from",
                    n.name
                )));
            }
            factories.push(match n.role {
                Role::Source => Factory::Source(resolver.source(n)?),
                Role::Operator => Factory::Operator(resolver.operator(n)?),
                Role::Sink => Factory::Sink(resolver.sink(n)?),
            });
        }
        let names = logical.nodes.iter().map(|n| n.name.clone()).collect();
        Ok(Dataflow { logical, factories, checkpoint: None, restore: None, names })
    }

    /// The dataflow as a plain value (what a cluster would send around).
    pub fn logical(&self) -> &LogicalDataflow {
        &self.logical
    }

    pub fn options(&self) -> &EngineOptions {
        &self.logical.options
    }

    /// Take checkpoints (and a final one at the end of a bounded run); sinks
    /// then publish output only for complete checkpoints.
    pub fn set_checkpointing(&mut self, config: CheckpointConfig) {
        self.checkpoint = Some(config);
    }

    /// Give source `source` event time: timestamps and watermarks.
    pub fn set_event_time(&mut self, source: NodeId, event_time: EventTime) -> Result<(), EngineError> {
        let node = self.logical.nodes.get_mut(source.0).ok_or_else(|| EngineError::Plan("no such node".into()))?;
        if node.role != Role::Source {
            return Err(EngineError::Plan(format!("'{}' is not a source; only sources have event time", node.name)));
        }
        node.event_time = Some(event_time);
        Ok(())
    }

    /// What source or operator `node` does with a record it fails on. A
    /// source with `dead-letter` gets the side output `dead-letter` (port 1);
    /// an operator's is among the side outputs it was added with.
    pub fn set_error_policy(&mut self, node: NodeId, policy: crate::ErrorPolicy) -> Result<(), EngineError> {
        let n = self.logical.nodes.get_mut(node.0).ok_or_else(|| EngineError::Plan("no such node".into()))?;
        if n.role == Role::Sink && policy.on_error.isolates() {
            return Err(EngineError::Plan(format!("sink '{}': on_error is a setting of sources and operators", n.name)));
        }
        if n.role == Role::Source && policy.on_error == crate::OnError::DeadLetter && n.side_outputs.is_empty() {
            n.side_outputs.push(crate::DEAD_LETTER_OUTPUT.to_string());
        }
        n.on_error = policy;
        Ok(())
    }

    /// Resume from a checkpoint: sources seek, operators restore their key
    /// groups, sinks publish what it covers and discard the rest.
    pub fn set_restore(&mut self, plan: RestorePlan) {
        self.restore = Some(plan);
    }

    /// `plan` is the last checkpoint of a bounded run that completed, and a
    /// new run is about to start: the sinks first publish what that run
    /// staged last, which a crash between the checkpoint's completion and
    /// their commit leaves staged (each sink's `recover` with the checkpoint
    /// as a finished one; doing it again is harmless).
    pub fn publish_finished(&self, plan: &RestorePlan) -> Result<(), EngineError> {
        for (f, node) in self.factories.iter().zip(&self.logical.nodes) {
            if let Factory::Sink(f) = f {
                f.recover(Some((plan.epoch, true)), plan.nodes.get(&node.name)).map_err(|source| EngineError::Sink {
                    node: node.name.clone(),
                    task: 0,
                    parallelism: node.parallelism,
                    at: String::new(),
                    source,
                })?;
            }
        }
        Ok(())
    }

    /// The nodes' names, roles and parallelism, in order.
    pub fn node_names(&self) -> Vec<(&str, Role, u32)> {
        self.logical.nodes.iter().map(|n| (n.name.as_str(), n.role, n.parallelism)).collect()
    }

    fn add(&mut self, node: LogicalNode, factory: Factory) -> Result<NodeId, EngineError> {
        if self.names.contains(&node.name) {
            return Err(EngineError::Plan(format!("two nodes are named '{}'", node.name)));
        }
        self.logical.nodes.push(node);
        if let Err(e) = self.logical.check_node(self.logical.nodes.len() - 1) {
            self.logical.nodes.pop();
            return Err(e);
        }
        self.names.insert(self.logical.nodes.last().expect("pushed").name.clone());
        self.factories.push(factory);
        Ok(NodeId(self.logical.nodes.len() - 1))
    }

    fn node(name: &str, role: Role, parallelism: u32, descriptor: Descriptor, inputs: Vec<Edge>, side_outputs: Vec<String>) -> LogicalNode {
        LogicalNode { name: name.into(), role, parallelism, descriptor, inputs, side_outputs, event_time: None, on_error: Default::default() }
    }

    /// A source built by `factory` in this process.
    pub fn add_source(&mut self, name: &str, parallelism: u32, factory: Arc<dyn SourceFactory>) -> Result<NodeId, EngineError> {
        self.add_source_described(name, parallelism, Descriptor::local(), factory)
    }

    /// A source with its descriptor and the factory built from it.
    pub fn add_source_described(
        &mut self,
        name: &str,
        parallelism: u32,
        descriptor: Descriptor,
        factory: Arc<dyn SourceFactory>,
    ) -> Result<NodeId, EngineError> {
        self.add(Self::node(name, Role::Source, parallelism, descriptor, vec![], vec![]), Factory::Source(factory))
    }

    pub fn add_operator(
        &mut self,
        name: &str,
        parallelism: u32,
        factory: Arc<dyn OperatorFactory>,
        inputs: Vec<Edge>,
        side_outputs: Vec<String>,
    ) -> Result<NodeId, EngineError> {
        self.add_operator_described(name, parallelism, Descriptor::local(), factory, inputs, side_outputs)
    }

    pub fn add_operator_described(
        &mut self,
        name: &str,
        parallelism: u32,
        descriptor: Descriptor,
        factory: Arc<dyn OperatorFactory>,
        inputs: Vec<Edge>,
        side_outputs: Vec<String>,
    ) -> Result<NodeId, EngineError> {
        let node = Self::node(name, Role::Operator, parallelism, descriptor, inputs, side_outputs);
        self.add(node, Factory::Operator(factory))
    }

    pub fn add_sink(
        &mut self,
        name: &str,
        parallelism: u32,
        factory: Arc<dyn SinkFactory>,
        inputs: Vec<Edge>,
    ) -> Result<NodeId, EngineError> {
        self.add_sink_described(name, parallelism, Descriptor::local(), factory, inputs)
    }

    pub fn add_sink_described(
        &mut self,
        name: &str,
        parallelism: u32,
        descriptor: Descriptor,
        factory: Arc<dyn SinkFactory>,
        inputs: Vec<Edge>,
    ) -> Result<NodeId, EngineError> {
        self.add(Self::node(name, Role::Sink, parallelism, descriptor, inputs, vec![]), Factory::Sink(factory))
    }

    /// Instantiate every task (operators' `open` runs here, so a failing plugin
    /// fails the start, before any record flows) and start them on threads of
    /// this process.
    pub fn start(self) -> Result<Job, EngineError> {
        self.start_on(&crate::transport::LocalTransport)
    }

    /// Start with the channels of `transport`.
    pub fn start_on(self, transport: &dyn crate::transport::Transport) -> Result<Job, EngineError> {
        executor::start(self, transport)
    }
}
