//! What a spec can name: source and sink connectors, operator kinds and
//! state backends, each registered under its type name with its own typed
//! config (a serde struct), its own checks and its own factory. The spec keeps
//! only the fields every node has (`name`, `type`, `input(s)`, `key_by`,
//! `parallelism`, and for sources `timestamp` and `watermark`); the rest of an
//! entry is the config of its type.
//!
//! A binary builds one [`Registry`] with every connector it links
//! (`weir_connectors::register`, `weir_wasm::register`, ...). Validation
//! turns each entry into a [`Descriptor`] (type name and the checked config as
//! JSON), which the engine's logical dataflow keeps; planning, and rebuilding
//! a serialised dataflow anywhere, turns descriptors into factories.

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use marked_yaml::Node;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use weir_engine::{Descriptor, KeySelector, OperatorFactory, Replacement, SinkFactory, SourceFactory};
use weir_state::StateBackendFactory;

use crate::SpecError;

/// Why a node's factory could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A descriptor's config does not deserialise into its type's config
    /// (a descriptor not made by validation).
    #[error("its config is not a valid {kind} config: {source}")]
    Config {
        kind: String,
        #[source]
        source: serde_json::Error,
    },
    /// No connector, operator kind or backend of that type is registered.
    #[error("there is no {role} type '{kind}' (there are: {known})")]
    Unknown { role: &'static str, kind: String, known: String },
    #[error(transparent)]
    Failed(Box<dyn std::error::Error + Send + Sync>),
}

impl BuildError {
    pub fn new(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        BuildError::Failed(e.into())
    }
}

/// Typed values a binary gives every build (a Wasm operator's plugin loader,
/// say), looked up by type.
#[derive(Clone, Default)]
pub struct Extensions {
    map: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
}

impl Extensions {
    pub fn insert<T: Any + Send + Sync>(&mut self, value: T) -> &mut Self {
        self.map.insert(TypeId::of::<T>(), Arc::new(value));
        self
    }

    pub fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.map.get(&TypeId::of::<T>()).and_then(|v| v.downcast_ref())
    }
}

/// Where the nodes of one pipeline are built.
#[derive(Clone)]
pub struct BuildEnv {
    pub pipeline: String,
    /// Sinks publish only for complete checkpoints (exactly once).
    pub checkpointing: bool,
    /// The pipeline's local scratch space.
    pub local_dir: PathBuf,
    /// Where operators keep keyed state.
    pub state: Arc<dyn StateBackendFactory>,
    pub extensions: Extensions,
}

/// What a factory is built for: one node of a pipeline.
pub struct BuildContext<'a> {
    pub env: &'a BuildEnv,
    pub node: &'a str,
    pub parallelism: u32,
    /// The side outputs of the node that the dataflow reads, port `i + 1` each.
    pub side_outputs: &'a [String],
    /// How its input is keyed, if it is (every record of a key reaches one task).
    pub key_by: Option<&'a KeySelector>,
    /// What kind of stream it reads: inserts only, or a changelog.
    pub changelog: Changelog,
}

/// What kind of stream a node reads or writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Changelog {
    /// Inserts only (every row +I).
    #[default]
    Append,
    /// A full changelog: +I, -U/+U pairs carrying the row before and after,
    /// and -D carrying the whole row removed (Debezium, Flink's retract
    /// streams).
    Retract,
    /// Changes by key only: +U replaces its key's row (whatever it was) and
    /// -D removes it, carrying its key and maybe no more; no -U rows (Kafka
    /// `format: upsert`, Flink's upsert-kafka).
    Upsert,
}

impl Changelog {
    /// The kind of several inputs read together: the weakest promise wins.
    pub fn merge(self, other: Changelog) -> Changelog {
        use Changelog::*;
        match (self, other) {
            (Upsert, _) | (_, Upsert) => Upsert,
            (Retract, _) | (_, Retract) => Retract,
            _ => Append,
        }
    }

    /// Rows have kinds other than +I.
    pub fn is_changelog(self) -> bool {
        self != Changelog::Append
    }

    /// How messages say it.
    pub fn describe(self) -> &'static str {
        match self {
            Changelog::Append => "an append-only stream",
            Changelog::Retract => "a changelog of inserts, updates and deletes",
            Changelog::Upsert => "an upsert changelog (updates and deletes by key, without the rows they replace)",
        }
    }
}

/// A spec entry being checked: its position, for errors that name the field.
pub struct Check<'a> {
    pub(crate) file: &'a str,
    /// "sources[0]"
    pub(crate) field: &'a str,
    pub(crate) entry: &'a Node,
    /// The node's name.
    pub node: &'a str,
    /// The parallelism written in the spec, if any.
    pub parallelism: Option<u32>,
    /// How its input is keyed, if it is.
    pub key_by: Option<&'a KeySelector>,
    /// On a node: the directories its specs may read and write.
    pub(crate) paths: Option<&'a crate::PathPolicy>,
}

impl Check<'_> {
    /// The spec was sent to a node (and runs with the node's rights, not its
    /// author's).
    pub fn on_node(&self) -> bool {
        self.paths.is_some()
    }

    /// A file or directory the entry reads or writes (`field` names it): on a
    /// node, it must lie under the directories the node lets specs use.
    pub fn path(&self, field: &str, path: &std::path::Path) -> Result<(), SpecError> {
        match self.paths {
            Some(p) => p.check(path).map(|_| ()).map_err(|m| self.error(field, m)),
            None => Ok(()),
        }
    }

    /// An error at `field` (a path of this entry, like `limits.memory`),
    /// reported as `file:line:column: sources[0].limits.memory: message`.
    pub fn error(&self, field: &str, message: impl std::fmt::Display) -> SpecError {
        self.error_at(field, field, message)
    }

    /// An error about `field`, reported at the position of field `at` (for a
    /// field that is missing, say).
    pub fn error_at(&self, at: &str, field: &str, message: impl std::fmt::Display) -> SpecError {
        let mut node = self.entry;
        for part in at.split('.') {
            match node.as_mapping().and_then(|m| m.get_node(part)) {
                Some(n) => node = n,
                None => break,
            }
        }
        SpecError::at(self.file, node.span().start(), format!("{}.{field}: {message}", self.field))
    }
}

/// A logic version an operator runs (a plugin and its digest), recorded in
/// checkpoints and shown by the API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Logic {
    /// `name@version`
    pub label: String,
    pub digest: String,
}

/// An operator's factory and the logic it runs.
pub struct BuiltOperator {
    pub factory: Arc<dyn OperatorFactory>,
    pub logic: Option<Logic>,
    /// What of its config its keyed state depends on (a window operator's
    /// windows, say), recorded in checkpoints: restoring state written under
    /// another shape is refused, as restoring into a renamed operator is.
    pub state_shape: Option<String>,
}

/// What the records of a source look like, as far as its type knows: the
/// checks of the nodes reading it use it (`None`: not known).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordShape {
    /// Records carry keys (not all empty).
    pub keyed: Option<bool>,
    /// Values are JSON.
    pub json: Option<bool>,
    /// How to say what the records are, in messages ("lines of text (format: lines)").
    pub described: &'static str,
    /// Rows have kinds (inserts, updates and deletes: a changelog, such as
    /// `format: debezium-json`), or inserts only.
    pub changelog: Changelog,
}

/// A source connector: `type: NAME` in `sources:`.
pub trait SourceConnector: Send + Sync + 'static {
    /// Its config: the entry's fields besides the common ones.
    type Config: Serialize + DeserializeOwned + Send + Sync + 'static;
    const TYPE: &'static str;

    /// Checks beyond the config's shape, with errors at the field concerned.
    fn check(&self, _config: &Self::Config, _cx: &Check<'_>) -> Result<(), SpecError> {
        Ok(())
    }

    fn build(&self, config: Self::Config, cx: &BuildContext<'_>) -> Result<Arc<dyn SourceFactory>, BuildError>;

    /// What its records look like (for the checks of `key_by` on readers).
    fn records(&self, _config: &Self::Config) -> RecordShape {
        RecordShape::default()
    }
}

/// A sink connector: `type: NAME` in `sinks:`.
pub trait SinkConnector: Send + Sync + 'static {
    type Config: Serialize + DeserializeOwned + Send + Sync + 'static;
    const TYPE: &'static str;

    fn check(&self, _config: &Self::Config, _cx: &Check<'_>) -> Result<(), SpecError> {
        Ok(())
    }

    fn build(&self, config: Self::Config, cx: &BuildContext<'_>) -> Result<Arc<dyn SinkFactory>, BuildError>;

    /// Why it cannot take a changelog (rows that update and delete), if it
    /// cannot; the default: it writes every row as a new record.
    fn rejects_changelog(&self, _config: &Self::Config) -> Option<String> {
        Some(format!("a '{}' sink writes every row as a new record and would lose the updates and deletes", Self::TYPE))
    }
}

/// An operator kind: `type: NAME` in `operators:` (an entry with no `type`
/// is of kind [`DEFAULT_OPERATOR`]).
pub trait OperatorKind: Send + Sync + 'static {
    type Config: Serialize + DeserializeOwned + Send + Sync + 'static;
    const TYPE: &'static str;
    /// The config field naming the plugin the operator runs, if it runs one:
    /// a node resolves it from its registry and a swap replaces it.
    const PLUGIN_FIELD: Option<&'static str> = None;

    fn check(&self, _config: &Self::Config, _cx: &Check<'_>) -> Result<(), SpecError> {
        Ok(())
    }

    /// If the operator has a fixed set of side outputs and `output` is not
    /// one of them: why not ("window operator 'w' has one side output, ...").
    fn undeclared_output(&self, _config: &Self::Config, _node: &str, _output: &str) -> Option<String> {
        None
    }

    /// Why its operators cannot take `on_error: skip | dead-letter` (they
    /// cannot undo a failed call), if they cannot.
    fn cannot_isolate(&self, _config: &Self::Config) -> Option<String> {
        Some(format!("operators of type '{}' cannot undo a failed call", Self::TYPE))
    }

    fn build(&self, config: Self::Config, cx: &BuildContext<'_>) -> Result<BuiltOperator, BuildError>;

    /// What its output is when it reads `input`, or why it cannot read it.
    /// The default: it reads and writes inserts only.
    fn changelog(&self, _config: &Self::Config, input: Changelog) -> Result<Changelog, String> {
        match input {
            Changelog::Append => Ok(Changelog::Append),
            _ => Err(format!("operators of type '{}' see every record as an insert", Self::TYPE)),
        }
    }

    /// Hot swap: the new logic for the running tasks of an operator of this
    /// kind, built from its new config and tried out first. Kinds that
    /// cannot swap keep the default.
    fn replacement(&self, _config: Self::Config, _cx: &BuildContext<'_>) -> Result<Replacement, BuildError> {
        Err(BuildError::new(format!("operators of type '{}' cannot swap their logic", Self::TYPE)))
    }
}

/// A keyed state backend: `state: {backend: NAME}`.
pub trait StateBackend: Send + Sync + 'static {
    /// The `state:` fields besides `backend`, `dir` and `local_dir`.
    type Config: Serialize + DeserializeOwned + Send + Sync + 'static;
    const NAME: &'static str;

    fn check(&self, _config: &Self::Config, _cx: &Check<'_>) -> Result<(), SpecError> {
        Ok(())
    }

    /// `local_dir` is the pipeline's local scratch space.
    fn build(&self, config: Self::Config, local_dir: &std::path::Path) -> Result<Arc<dyn StateBackendFactory>, BuildError>;
}

/// The kind of an operator entry without `type:`.
pub const DEFAULT_OPERATOR: &str = "wasm";

fn config<T: DeserializeOwned>(kind: &str, config: &serde_json::Value) -> Result<T, BuildError> {
    serde_json::from_value(config.clone()).map_err(|source| BuildError::Config { kind: kind.into(), source })
}

/// Deserialise an entry's own fields into a type's config.
fn parse<T: DeserializeOwned + Serialize>(rest: &Node, cx: &Check<'_>, common: &[&str]) -> Result<(T, serde_json::Value), SpecError> {
    let config: T = marked_yaml::from_node(rest).map_err(|e| SpecError::from_serde_in(cx.file, cx.field, common, e))?;
    let json = serde_json::to_value(&config)
        .map_err(|e| SpecError::File { file: cx.file.into(), message: format!("{}: cannot record its config: {e}", cx.field) })?;
    Ok((config, json))
}

/// The type-erased forms of the traits above, as the registry holds them.
pub(crate) trait Erased<F>: Send + Sync {
    fn validate(&self, rest: &Node, cx: &Check<'_>, common: &[&str]) -> Result<serde_json::Value, SpecError>;
    fn build(&self, config: &serde_json::Value, cx: &BuildContext<'_>) -> Result<F, BuildError>;
}

struct Source<C>(C);
struct Sink<C>(C);
struct Operator<K>(K);
struct Backend<B>(B);

impl<C: SourceConnector> Erased<Arc<dyn SourceFactory>> for Source<C> {
    fn validate(&self, rest: &Node, cx: &Check<'_>, common: &[&str]) -> Result<serde_json::Value, SpecError> {
        let (c, json) = parse::<C::Config>(rest, cx, common)?;
        self.0.check(&c, cx)?;
        Ok(json)
    }

    fn build(&self, c: &serde_json::Value, cx: &BuildContext<'_>) -> Result<Arc<dyn SourceFactory>, BuildError> {
        self.0.build(config(C::TYPE, c)?, cx)
    }
}

impl<C: SinkConnector> Erased<Arc<dyn SinkFactory>> for Sink<C> {
    fn validate(&self, rest: &Node, cx: &Check<'_>, common: &[&str]) -> Result<serde_json::Value, SpecError> {
        let (c, json) = parse::<C::Config>(rest, cx, common)?;
        self.0.check(&c, cx)?;
        Ok(json)
    }

    fn build(&self, c: &serde_json::Value, cx: &BuildContext<'_>) -> Result<Arc<dyn SinkFactory>, BuildError> {
        self.0.build(config(C::TYPE, c)?, cx)
    }
}

/// What the registry needs of a source beyond validate and build.
pub(crate) trait ErasedSource: Erased<Arc<dyn SourceFactory>> {
    fn records(&self, config: &serde_json::Value) -> RecordShape;
}

impl<C: SourceConnector> ErasedSource for Source<C> {
    fn records(&self, c: &serde_json::Value) -> RecordShape {
        config(C::TYPE, c).map(|c| self.0.records(&c)).unwrap_or_default()
    }
}

/// What the registry needs of a sink beyond validate and build.
pub(crate) trait ErasedSink: Erased<Arc<dyn SinkFactory>> {
    fn rejects_changelog(&self, config: &serde_json::Value) -> Option<String>;
}

impl<C: SinkConnector> ErasedSink for Sink<C> {
    fn rejects_changelog(&self, c: &serde_json::Value) -> Option<String> {
        config(C::TYPE, c).ok().and_then(|c| self.0.rejects_changelog(&c))
    }
}

/// What the registry needs of an operator kind beyond validate and build.
pub(crate) trait ErasedOperator: Erased<BuiltOperator> {
    fn plugin_field(&self) -> Option<&'static str>;
    fn undeclared_output(&self, config: &serde_json::Value, node: &str, output: &str) -> Option<String>;
    fn cannot_isolate(&self, config: &serde_json::Value) -> Option<String>;
    fn replacement(&self, config: &serde_json::Value, cx: &BuildContext<'_>) -> Result<Replacement, BuildError>;
    fn changelog(&self, config: &serde_json::Value, input: Changelog) -> Result<Changelog, String>;
}

impl<K: OperatorKind> Erased<BuiltOperator> for Operator<K> {
    fn validate(&self, rest: &Node, cx: &Check<'_>, common: &[&str]) -> Result<serde_json::Value, SpecError> {
        let (c, json) = parse::<K::Config>(rest, cx, common)?;
        self.0.check(&c, cx)?;
        Ok(json)
    }

    fn build(&self, c: &serde_json::Value, cx: &BuildContext<'_>) -> Result<BuiltOperator, BuildError> {
        self.0.build(config(K::TYPE, c)?, cx)
    }
}

impl<K: OperatorKind> ErasedOperator for Operator<K> {
    fn plugin_field(&self) -> Option<&'static str> {
        K::PLUGIN_FIELD
    }

    fn undeclared_output(&self, c: &serde_json::Value, node: &str, output: &str) -> Option<String> {
        self.0.undeclared_output(&config(K::TYPE, c).ok()?, node, output)
    }

    fn replacement(&self, c: &serde_json::Value, cx: &BuildContext<'_>) -> Result<Replacement, BuildError> {
        self.0.replacement(config(K::TYPE, c)?, cx)
    }

    fn changelog(&self, c: &serde_json::Value, input: Changelog) -> Result<Changelog, String> {
        self.0.changelog(&config(K::TYPE, c).map_err(|e| e.to_string())?, input)
    }

    fn cannot_isolate(&self, c: &serde_json::Value) -> Option<String> {
        match config(K::TYPE, c) {
            Ok(c) => self.0.cannot_isolate(&c),
            Err(e) => Some(e.to_string()),
        }
    }
}

/// A state backend's build needs the local directory, not a node.
pub(crate) trait ErasedBackend: Send + Sync {
    fn validate(&self, rest: &Node, cx: &Check<'_>, common: &[&str]) -> Result<serde_json::Value, SpecError>;
    fn build(&self, config: &serde_json::Value, local_dir: &std::path::Path) -> Result<Arc<dyn StateBackendFactory>, BuildError>;
}

impl<B: StateBackend> ErasedBackend for Backend<B> {
    fn validate(&self, rest: &Node, cx: &Check<'_>, common: &[&str]) -> Result<serde_json::Value, SpecError> {
        let (c, json) = parse::<B::Config>(rest, cx, common)?;
        self.0.check(&c, cx)?;
        Ok(json)
    }

    fn build(&self, c: &serde_json::Value, local_dir: &std::path::Path) -> Result<Arc<dyn StateBackendFactory>, BuildError> {
        self.0.build(config(B::NAME, c)?, local_dir)
    }
}

/// The registered types. [`Registry::new`] has the `heap` state backend;
/// connectors and operator kinds come from the crates that define them.
pub struct Registry {
    pub(crate) sources: BTreeMap<&'static str, Arc<dyn ErasedSource>>,
    pub(crate) sinks: BTreeMap<&'static str, Arc<dyn ErasedSink>>,
    pub(crate) operators: BTreeMap<&'static str, Arc<dyn ErasedOperator>>,
    pub(crate) backends: BTreeMap<&'static str, Arc<dyn ErasedBackend>>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    pub fn new() -> Self {
        let mut r = Registry {
            sources: BTreeMap::new(),
            sinks: BTreeMap::new(),
            operators: BTreeMap::new(),
            backends: BTreeMap::new(),
        };
        r.state_backend(crate::heap::Heap);
        r
    }

    pub fn source<C: SourceConnector>(&mut self, connector: C) -> &mut Self {
        self.sources.insert(C::TYPE, Arc::new(Source(connector)));
        self
    }

    pub fn sink<C: SinkConnector>(&mut self, connector: C) -> &mut Self {
        self.sinks.insert(C::TYPE, Arc::new(Sink(connector)));
        self
    }

    pub fn operator<K: OperatorKind>(&mut self, kind: K) -> &mut Self {
        self.operators.insert(K::TYPE, Arc::new(Operator(kind)));
        self
    }

    pub fn state_backend<B: StateBackend>(&mut self, backend: B) -> &mut Self {
        self.backends.insert(B::NAME, Arc::new(Backend(backend)));
        self
    }

    /// The registered type names of sources, sinks, operators and state
    /// backends, sorted.
    pub fn source_types(&self) -> Vec<&'static str> {
        self.sources.keys().copied().collect()
    }

    pub fn sink_types(&self) -> Vec<&'static str> {
        self.sinks.keys().copied().collect()
    }

    pub fn operator_types(&self) -> Vec<&'static str> {
        self.operators.keys().copied().collect()
    }

    pub fn state_backends(&self) -> Vec<&'static str> {
        self.backends.keys().copied().collect()
    }

    fn unknown(role: &'static str, kind: &str, known: Vec<&'static str>) -> BuildError {
        BuildError::Unknown { role, kind: kind.into(), known: known.join(", ") }
    }

    pub fn build_source(&self, d: &Descriptor, cx: &BuildContext<'_>) -> Result<Arc<dyn SourceFactory>, BuildError> {
        let c = self.sources.get(d.kind.as_str()).ok_or_else(|| Self::unknown("source", &d.kind, self.source_types()))?;
        c.build(&d.config, cx)
    }

    pub fn build_sink(&self, d: &Descriptor, cx: &BuildContext<'_>) -> Result<Arc<dyn SinkFactory>, BuildError> {
        let c = self.sinks.get(d.kind.as_str()).ok_or_else(|| Self::unknown("sink", &d.kind, self.sink_types()))?;
        c.build(&d.config, cx)
    }

    fn operator_kind(&self, kind: &str) -> Result<&Arc<dyn ErasedOperator>, BuildError> {
        self.operators.get(kind).ok_or_else(|| Self::unknown("operator", kind, self.operator_types()))
    }

    pub fn build_operator(&self, d: &Descriptor, cx: &BuildContext<'_>) -> Result<BuiltOperator, BuildError> {
        self.operator_kind(&d.kind)?.build(&d.config, cx)
    }

    /// Hot swap: the new logic of an operator described by `d` (its config
    /// naming the new plugin), built and tried out. The one builder behind
    /// planning is behind swaps too.
    pub fn replacement(&self, d: &Descriptor, cx: &BuildContext<'_>) -> Result<Replacement, BuildError> {
        self.operator_kind(&d.kind)?.replacement(&d.config, cx)
    }

    pub fn build_state(&self, d: &Descriptor, local_dir: &std::path::Path) -> Result<Arc<dyn StateBackendFactory>, BuildError> {
        let b = self.backends.get(d.kind.as_str()).ok_or_else(|| Self::unknown("state backend", &d.kind, self.state_backends()))?;
        b.build(&d.config, local_dir)
    }

    /// The plugin an operator described by `d` runs, if its kind runs one.
    pub fn plugin_of(&self, d: &Descriptor) -> Option<String> {
        let field = self.operators.get(d.kind.as_str())?.plugin_field()?;
        d.config.get(field)?.as_str().map(str::to_string)
    }

    /// `d` with its plugin replaced by `plugin`; `None` if its kind runs none.
    pub fn with_plugin(&self, d: &Descriptor, plugin: &str) -> Option<Descriptor> {
        let field = self.operators.get(d.kind.as_str())?.plugin_field()?;
        let mut d = d.clone();
        d.config.as_object_mut()?.insert(field.to_string(), plugin.into());
        Some(d)
    }
}
