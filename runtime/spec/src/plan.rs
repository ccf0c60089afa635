//! From a checked spec to an engine dataflow: load plugins (compiled, cached,
//! checked against the world), wire nodes and edges.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use weir_connectors::{FileSink, FileSource, GeneratorSource, StdoutSink};
use weir_engine::{Dataflow, Edge, NodeId, Partitioning, SinkFactory, SourceFactory};
use weir_engine::OperatorFactory;
use weir_wasm::{
    OperatorSettings, Plugin, PluginEngine, PluginMeta, StateBackendKind, WasmError, WasmOperatorFactory, WindowOperatorFactory,
    WINDOW_WORLD, WORLD,
};

use crate::validate::{Backend, InputRef, OperatorDef, PipelineSpec, SinkKind, SourceKind};
use crate::SpecError;

/// A dataflow ready to start, and the plugin each operator runs.
pub struct Planned {
    pub dataflow: Dataflow,
    pub plugins: Vec<(String, PluginMeta)>,
    /// How each operator runs its plugin, by operator.
    pub operators: Vec<PlannedOperator>,
}

/// An operator as planned: what a replacement of its plugin (hot swap) needs.
#[derive(Clone, Debug)]
pub struct PlannedOperator {
    pub name: String,
    pub parallelism: u32,
    pub settings: OperatorSettings,
    /// The side outputs the dataflow reads from it.
    pub side_outputs: Vec<String>,
    /// A window operator's windows (it runs a window function).
    pub window: Option<weir_wasm::WindowSpec>,
}

/// Plan a spec whose operators name plugin files.
pub fn plan(spec: &PipelineSpec, engine: &PluginEngine) -> Result<Planned, SpecError> {
    plan_with(spec, &|o: &OperatorDef| engine.load_file(&o.plugin.path))
}

/// Plan a spec, loading each operator's plugin with `load` (a node resolves
/// `name@version` from its registry). Operators naming the same plugin share
/// one load.
pub fn plan_with(spec: &PipelineSpec, load: &dyn Fn(&OperatorDef) -> Result<Plugin, WasmError>) -> Result<Planned, SpecError> {
    let file = &spec.file;
    let mut df = Dataflow::new(spec.engine.clone());
    let engine_err = |e| SpecError::Engine(Box::new(e), file.clone());

    // Side outputs read anywhere, per operator, in order of first use: port i+1.
    let mut side: HashMap<&str, Vec<String>> = HashMap::new();
    let all_inputs = spec.operators.iter().flat_map(|o| &o.inputs).chain(spec.sinks.iter().flat_map(|s| &s.inputs));
    for i in all_inputs {
        if let Some(o) = &i.output {
            let v = side.entry(i.node.as_str()).or_default();
            if !v.contains(o) {
                v.push(o.clone());
            }
        }
    }

    let mut ids: HashMap<&str, NodeId> = HashMap::new();
    let mut par: HashMap<&str, u32> = HashMap::new();
    for s in &spec.sources {
        let factory: Arc<dyn SourceFactory> = match &s.kind {
            SourceKind::File { path, format } => Arc::new(FileSource { path: path.clone(), format: *format }),
            SourceKind::Generator(g) => Arc::new(GeneratorSource(g.clone())),
        };
        let id = df.add_source(&s.name, s.parallelism, factory).map_err(engine_err)?;
        if let Some(et) = &s.event_time {
            df.set_event_time(id, et.clone()).map_err(engine_err)?;
        }
        ids.insert(&s.name, id);
        par.insert(&s.name, s.parallelism);
    }

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

    let mut loaded: HashMap<PathBuf, Plugin> = HashMap::new();
    let mut plugins = Vec::new();
    let mut operators = Vec::new();
    for o in &spec.operators {
        let plugin = match loaded.get(&o.plugin.path) {
            Some(p) => p.clone(),
            None => {
                let p = load(o).map_err(|source| SpecError::Plugin {
                    file: file.clone(),
                    line: o.plugin.line,
                    operator: o.name.clone(),
                    source: Box::new(source),
                })?;
                loaded.insert(o.plugin.path.clone(), p.clone());
                p
            }
        };
        plugins.push((o.name.clone(), plugin.meta().clone()));
        check_world(o, &plugin, file)?;
        let settings = OperatorSettings {
            config: o.config.clone(),
            limits: o.limits.clone(),
            state: match spec.state.backend {
                Backend::Heap => StateBackendKind::Heap,
                Backend::RocksDb => StateBackendKind::RocksDb {
                    dir: spec.local_dir().join("rocksdb"),
                    cache_bytes: spec.state.cache_bytes,
                },
            },
        };
        let side_outputs = side.get(o.name.as_str()).cloned().unwrap_or_default();
        operators.push(PlannedOperator {
            name: o.name.clone(),
            parallelism: o.parallelism,
            settings: settings.clone(),
            side_outputs: side_outputs.clone(),
            window: o.window.clone(),
        });
        let factory: Arc<dyn OperatorFactory> = match &o.window {
            Some(w) => Arc::new(WindowOperatorFactory { plugin, settings, window: w.clone() }),
            None => Arc::new(WasmOperatorFactory { plugin, settings }),
        };
        let id = df
            .add_operator(&o.name, o.parallelism, factory, edges(&o.inputs, &o.key_by, &ids), side_outputs)
            .map_err(engine_err)?;
        ids.insert(&o.name, id);
        par.insert(&o.name, o.parallelism);
    }

    for s in &spec.sinks {
        let factory: Arc<dyn SinkFactory> = match &s.kind {
            SinkKind::File { dir } => Arc::new(FileSink { dir: dir.clone(), exactly_once: spec.checkpoint.is_some() }),
            SinkKind::Stdout => Arc::new(StdoutSink),
        };
        // By default a sink runs beside its input (and chains to it).
        let parallelism = s.parallelism.unwrap_or_else(|| {
            let ps: Vec<u32> = s.inputs.iter().map(|i| par[i.node.as_str()]).collect();
            if s.key_by.is_none() && ps.windows(2).all(|w| w[0] == w[1]) { ps[0] } else { 1 }
        });
        df.add_sink(&s.name, parallelism, factory, edges(&s.inputs, &s.key_by, &ids)).map_err(engine_err)?;
    }
    Ok(Planned { dataflow: df, plugins, operators })
}

/// A window operator runs a window function, any other operator a stream operator.
fn check_world(o: &OperatorDef, plugin: &Plugin, file: &str) -> Result<(), SpecError> {
    let world = plugin.meta().world;
    let needs = match (&o.window, world) {
        (Some(_), WINDOW_WORLD) | (None, WORLD) => return Ok(()),
        (Some(_), _) => format!(
            "its `window:` block needs a window function: a component exporting the `window` interface (open, add, \
             merge, get-result) of {WINDOW_WORLD}, e.g. built with weir_sdk::export_window!"
        ),
        (None, _) => format!(
            "an operator without a `window:` block runs a stream operator ({WORLD}); a window function needs a \
             `window:` block (type, size/slide/gap)"
        ),
    };
    Err(SpecError::Plugin {
        file: file.into(),
        line: o.plugin.line,
        operator: o.name.clone(),
        source: Box::new(WasmError::WrongWorld {
            plugin: plugin.meta().to_string(),
            operator: o.name.clone(),
            found: world,
            needs,
        }),
    })
}
