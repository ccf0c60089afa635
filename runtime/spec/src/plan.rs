//! From a checked spec to an engine dataflow: every node's descriptor built
//! into its factory by the registry (plugins are loaded and checked here,
//! before anything runs), nodes and edges wired.

use std::collections::HashMap;
use std::sync::Arc;

use weir_engine::{Dataflow, Descriptor, Edge, EngineError, LogicalNode, NodeId, Partitioning, Resolver, Role};

use crate::registry::{BuildContext, BuildEnv, BuildError, Changelog, Extensions, Logic, Registry};
use crate::validate::{InputRef, PipelineSpec};
use crate::SpecError;

/// A dataflow ready to start, with what was planned of each node.
pub struct Planned {
    pub dataflow: Dataflow,
    /// Every node: its name, role, parallelism and the logic it runs.
    pub nodes: Vec<PlannedNode>,
    /// Where the nodes were built (what a swap builds replacements with).
    pub env: BuildEnv,
}

#[derive(Clone, Debug)]
pub struct PlannedNode {
    pub name: String,
    pub role: Role,
    pub parallelism: u32,
    pub descriptor: Descriptor,
    /// The side outputs the dataflow reads from it.
    pub side_outputs: Vec<String>,
    /// The plugin it runs, if it runs one.
    pub logic: Option<Logic>,
    /// What its keyed state's layout depends on (see [`crate::BuiltOperator`]).
    pub state_shape: Option<String>,
    /// What kind of stream it reads (a swap's replacement must read it too).
    pub reads: Changelog,
}

impl Planned {
    /// The operators, with the logic each runs.
    pub fn operators(&self) -> impl Iterator<Item = &PlannedNode> {
        self.nodes.iter().filter(|n| n.role == Role::Operator)
    }

    pub fn node(&self, name: &str) -> Option<&PlannedNode> {
        self.nodes.iter().find(|n| n.name == name)
    }
}

/// The environment of a spec's builds: its state backend, checkpointing,
/// local directory, and the binary's `extensions`.
pub fn build_env(spec: &PipelineSpec, registry: &Registry, extensions: Extensions) -> Result<BuildEnv, SpecError> {
    let local_dir = spec.local_dir();
    let state = registry.build_state(&spec.state.backend, &local_dir).map_err(|source| SpecError::Build {
        file: spec.file.clone(),
        line: 0,
        role: "state backend",
        node: spec.state.backend.kind.clone(),
        source,
    })?;
    Ok(BuildEnv { pipeline: spec.name.clone(), checkpointing: spec.checkpoint.is_some(), local_dir, state, extensions })
}

/// Plan a spec: build every node with `registry`.
pub fn plan(spec: &PipelineSpec, registry: &Registry, extensions: Extensions) -> Result<Planned, SpecError> {
    let env = build_env(spec, registry, extensions)?;
    let file = &spec.file;
    let mut df = Dataflow::new(spec.engine.clone());
    let engine_err = |e| SpecError::Engine(Box::new(e), file.clone());

    // Side outputs read anywhere, per operator, in order of first use: port i+1.
    let mut side: HashMap<&str, Vec<String>> = HashMap::new();
    for i in spec.nodes().flat_map(|n| &n.inputs) {
        if let Some(o) = &i.output {
            let v = side.entry(i.node.as_str()).or_default();
            if !v.contains(o) {
                v.push(o.clone());
            }
        }
    }
    let mut ids: HashMap<&str, NodeId> = HashMap::new();
    let mut par: HashMap<&str, u32> = HashMap::new();
    let mut nodes = Vec::new();
    let edges = |inputs: &[InputRef], key_by: &Option<weir_engine::KeySelector>, ids: &HashMap<&str, NodeId>| {
        inputs
            .iter()
            .map(|i| Edge {
                from: ids[i.node.as_str()],
                port: match &i.output {
                    Some(o) => side[i.node.as_str()].iter().position(|s| s == o).expect("collected") as u32 + 1,
                    None => 0,
                },
                partitioning: match key_by {
                    Some(k) => Partitioning::KeyBy(k.clone()),
                    None => Partitioning::Forward,
                },
            })
            .collect::<Vec<_>>()
    };
    for n in spec.nodes() {
        let parallelism = match (n.role, n.parallelism) {
            (_, Some(p)) => p,
            // By default a sink runs beside its input (and chains to it).
            (Role::Sink, None) => {
                let ps: Vec<u32> = n.inputs.iter().map(|i| par[i.node.as_str()]).collect();
                if n.key_by.is_none() && ps.windows(2).all(|w| w[0] == w[1]) { ps[0] } else { 1 }
            }
            (_, None) => 1,
        };
        let side_outputs = side.get(n.name.as_str()).cloned().unwrap_or_default();
        let cx = BuildContext {
            env: &env,
            node: &n.name,
            parallelism,
            side_outputs: &side_outputs,
            key_by: n.key_by.as_ref(),
            changelog: n.reads,
        };
        let failed = |source: BuildError| SpecError::Build {
            file: file.clone(),
            line: n.plugin.as_ref().map_or(n.line, |p| p.line),
            role: n.role.name(),
            node: n.name.clone(),
            source,
        };
        let d = n.descriptor.clone();
        let (mut logic, mut state_shape) = (None, None);
        let id = match n.role {
            Role::Source => {
                let f = registry.build_source(&d, &cx).map_err(failed)?;
                let id = df.add_source_described(&n.name, parallelism, d.clone(), f).map_err(engine_err)?;
                df.set_error_policy(id, n.on_error).map_err(engine_err)?;
                if let Some(et) = &n.event_time {
                    df.set_event_time(id, et.clone()).map_err(engine_err)?;
                }
                id
            }
            Role::Operator => {
                let built = registry.build_operator(&d, &cx).map_err(failed)?;
                logic = built.logic;
                state_shape = built.state_shape;
                let inputs = edges(&n.inputs, &n.key_by, &ids);
let id = df
                    .add_operator_described(&n.name, parallelism, d.clone(), built.factory, inputs, side_outputs.clone())
                    .map_err(engine_err)?;
                df.set_error_policy(id, n.on_error).map_err(engine_err)?;
                id
            }
            Role::Sink => {
                let f = registry.build_sink(&d, &cx).map_err(failed)?;
                df.add_sink_described(&n.name, parallelism, d.clone(), f, edges(&n.inputs, &n.key_by, &ids)).map_err(engine_err)?
            }
        };
        ids.insert(&n.name, id);
        par.insert(&n.name, parallelism);
        nodes.push(PlannedNode {
            name: n.name.clone(),
            role: n.role,
            parallelism,
            descriptor: d,
            side_outputs,
            logic,
            state_shape,
            reads: n.reads,
        });
    }
    Ok(Planned { dataflow: df, nodes, env })
}

/// Rebuilds the factories of a serialised dataflow's nodes from their
/// descriptors (on any machine that has the same registry).
pub struct RegistryResolver<'a> {
    pub registry: &'a Registry,
    pub env: &'a BuildEnv,
}

impl RegistryResolver<'_> {
    fn cx<'b>(&'b self, n: &'b LogicalNode) -> BuildContext<'b> {
        let key_by = n.inputs.iter().find_map(|e| match &e.partitioning {
            weir_engine::Partitioning::KeyBy(k) => Some(k),
            _ => None,
        });
        // A logical dataflow does not record what kind of stream each node
        // reads: nodes are rebuilt as readers of inserts.
        BuildContext {
            env: self.env,
            node: &n.name,
            parallelism: n.parallelism,
            side_outputs: &n.side_outputs,
            key_by,
            changelog: Changelog::Append,
        }
    }
}

fn plan_err(n: &LogicalNode, e: BuildError) -> EngineError {
    EngineError::Plan(format!("{} '{}': {e}", n.role.name(), n.name))
}

impl Resolver for RegistryResolver<'_> {
    fn source(&self, n: &LogicalNode) -> Result<Arc<dyn weir_engine::SourceFactory>, EngineError> {
        self.registry.build_source(&n.descriptor, &self.cx(n)).map_err(|e| plan_err(n, e))
    }

    fn operator(&self, n: &LogicalNode) -> Result<Arc<dyn weir_engine::OperatorFactory>, EngineError> {
        self.registry.build_operator(&n.descriptor, &self.cx(n)).map(|b| b.factory).map_err(|e| plan_err(n, e))
    }

    fn sink(&self, n: &LogicalNode) -> Result<Arc<dyn weir_engine::SinkFactory>, EngineError> {
        self.registry.build_sink(&n.descriptor, &self.cx(n)).map_err(|e| plan_err(n, e))
    }
}
