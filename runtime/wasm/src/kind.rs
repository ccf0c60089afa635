//! The `wasm` operator kind (the default of an operator entry): `plugin`,
//! `config`, `limits` and `window`, checked with errors at their fields, and
//! built into a stream or window operator over the pipeline's state backend.
//! Where `plugin:` comes from is the binary's choice: `.wasm` files
//! ([`PluginFiles`]) for `weir run`, a node's registry for `weir serve`
//! (a [`PluginSource`] in the build's extensions, as [`Plugins`]).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use weir_engine::window::{WindowKind, WindowSpec};
use weir_engine::{OperatorFactory, Replacement, TaskContext};
use weir_spec::units::{Bytes, Dur};
use weir_spec::{BuildContext, BuildError, BuiltOperator, Changelog, Check, Logic, OperatorKind, SpecError};

use crate::{
    Limits, OperatorSettings, Plugin, PluginLoader, WasmError, WasmOperatorFactory, WindowOperatorFactory, CHANGELOG_WORLD,
    WINDOW_WORLD, WORLD,
};

/// Resolves an operator's `plugin:` into a loaded plugin.
pub trait PluginSource: Send + Sync {
    fn load(&self, reference: &str) -> Result<Plugin, WasmError>;
}

/// The plugin source of a build, in its [`weir_spec::Extensions`].
#[derive(Clone)]
pub struct Plugins(pub Arc<dyn PluginSource>);

/// Plugins from `.wasm` files, each file loaded once.
pub struct PluginFiles {
    loader: PluginLoader,
    loaded: Mutex<HashMap<PathBuf, Plugin>>,
}

impl PluginFiles {
    pub fn new(loader: PluginLoader) -> Self {
        PluginFiles { loader, loaded: Mutex::default() }
    }
}

impl PluginSource for PluginFiles {
    fn load(&self, reference: &str) -> Result<Plugin, WasmError> {
        let path = PathBuf::from(reference);
        if let Some(p) = self.loaded.lock().unwrap().get(&path) {
            return Ok(p.clone());
        }
        let p = self.loader.load_file(&path)?;
        self.loaded.lock().unwrap().insert(path, p.clone());
        Ok(p)
    }
}

/// An operator entry's own fields.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WasmConfig {
    /// A `.wasm` file, or `name@version` on a node.
    pub plugin: String,
    /// Given to the guest's `open`.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Makes it a window operator running a window function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowConfig>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Bytes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_timeout: Option<Dur>,
}

/// `window: {type, size, slide, gap, allowed_lateness, late_output}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slide: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gap: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_lateness: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_output: Option<String>,
}

/// Bounds of the limits a spec may set.
const MEMORY: (usize, usize) = (64 << 10, 4 << 30);
const CALL_TIMEOUT: (Duration, Duration) = (Duration::from_millis(1), Duration::from_secs(3600));
/// Window sizes, slides, gaps and lateness: at most a year (leap or not).
const WINDOW_SPAN: Duration = Duration::from_secs(366 * 24 * 3600);

impl WasmConfig {
    pub fn limits(&self) -> Limits {
        let d = Limits::default();
        Limits {
            memory: self.limits.memory.map_or(d.memory, |b| b.0),
            call_timeout: self.limits.call_timeout.map_or(d.call_timeout, |t| t.0),
            ..d
        }
    }

    /// The window spec, for a window operator (the config is checked).
    pub fn window_spec(&self) -> Option<WindowSpec> {
        let w = self.window.as_ref()?;
        let ms = |d: Option<Dur>| d.map_or(0, Dur::millis);
        let kind = match w.kind.as_str() {
            "tumbling" => WindowKind::Tumbling { size: ms(w.size) },
            "sliding" | "hop" => WindowKind::Sliding { size: ms(w.size), slide: ms(w.slide) },
            _ => WindowKind::Session { gap: ms(w.gap) },
        };
        let late_output = w.late_output.clone().unwrap_or_else(|| WindowSpec::DEFAULT_LATE_OUTPUT.to_string());
        Some(WindowSpec { kind, allowed_lateness: ms(w.allowed_lateness), late_output })
    }

    fn settings(&self, cx: &BuildContext<'_>) -> OperatorSettings {
        OperatorSettings {
            config: self.config.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            changelog: cx.changelog.is_changelog(),
            limits: self.limits(),
            state: cx.env.state.clone(),
        }
    }
}

// `SpecError` is weir-spec's (what `OperatorKind::check` returns); its size is that crate's call.
#[allow(clippy::result_large_err)]
fn check_window(w: &WindowConfig, cx: &Check<'_>) -> Result<(), SpecError> {
    if cx.key_by.is_none() {
        return Err(cx.error_at("window.type", "window", "a window operator needs key_by (windows are per key)"));
    }
    let span = |field: &str, d: Option<Dur>, min: Duration| -> Result<(), SpecError> {
        let at = format!("window.{field}");
        match d {
            Some(d) if d.0 < min => Err(cx.error(&at, format!("must be at least {}", weir_spec::units::show(min)))),
            Some(d) if d.0 > WINDOW_SPAN => Err(cx.error(&at, "must be at most 366 days")),
            _ => Ok(()),
        }
    };
    let required = |field: &str, d: Option<Dur>| -> Result<(), SpecError> {
        match d {
            Some(_) => span(field, d, Duration::from_millis(1)),
            None => Err(cx.error_at("window.type", &format!("window.{field}"), format!("a {} window needs a {field}", w.kind))),
        }
    };
    let absent = |field: &str, d: Option<Dur>| -> Result<(), SpecError> {
        match d {
            Some(_) => Err(cx.error(&format!("window.{field}"), format!("not a setting of a {} window", w.kind))),
            None => Ok(()),
        }
    };
    match w.kind.as_str() {
        "tumbling" => {
            absent("slide", w.slide)?;
            absent("gap", w.gap)?;
            required("size", w.size)?;
        }
        "sliding" | "hop" => {
            absent("gap", w.gap)?;
            required("size", w.size)?;
            required("slide", w.slide)?;
            if let (Some(size), Some(slide)) = (w.size, w.slide)
                && slide.0 > size.0
            {
                return Err(cx.error(
                    "window.slide",
                    format!("must not exceed the size ({}ms), or records fall between windows", size.millis()),
                ));
            }
        }
        "session" => {
            absent("size", w.size)?;
            absent("slide", w.slide)?;
            required("gap", w.gap)?;
        }
        other => {
            return Err(cx.error("window.type", format!("'{other}' is not a window type (tumbling, sliding, session)")));
        }
    }
    span("allowed_lateness", w.allowed_lateness, Duration::ZERO)?;
    if let Some(n) = &w.late_output
        && (n.is_empty() || !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
    {
        return Err(cx.error("window.late_output", format!("'{n}' is not a valid name (use letters, digits, '_' and '-')")));
    }
    Ok(())
}

/// The `wasm` operator kind.
pub struct WasmOperators;

/// A plugin of the world the config needs, loaded through the build's plugin source.
fn load(config: &WasmConfig, cx: &BuildContext<'_>) -> Result<Plugin, BuildError> {
    let Some(Plugins(source)) = cx.env.extensions.get::<Plugins>() else {
        return Err(BuildError::new("this binary gives Wasm operators no plugin source (weir_wasm::Plugins)"));
    };
    let plugin = source.load(&config.plugin).map_err(BuildError::new)?;
    let world = plugin.meta().world;
    let needs = match (&config.window, world) {
        (None, WORLD) if cx.changelog.is_changelog() => format!(
            "operator '{}' reads {}, and that world sees every record as an insert (it would take deletes for new \
             rows): build the plugin for {CHANGELOG_WORLD}, which carries row kinds (Rust: \
             weir_sdk::export_changelog_operator!; Python and JavaScript: world = \"{CHANGELOG_WORLD}\" under \
             [tool.weir] in pyproject.toml or \"weir\" in package.json)",
            cx.node,
            cx.changelog.describe()
        ),
        (Some(_), WINDOW_WORLD) | (None, WORLD) | (None, CHANGELOG_WORLD) => return Ok(plugin),
        (Some(_), _) => format!(
            "its `window:` block needs a window function: a component exporting the `window` interface (open, add, \
             merge, get-result) of {WINDOW_WORLD}, e.g. built with weir_sdk::export_window!"
        ),
        (None, _) => format!(
            "an operator without a `window:` block runs a stream operator ({WORLD} or {CHANGELOG_WORLD}); a window \
             function needs a `window:` block (type, size/slide/gap)"
        ),
    };
    Err(BuildError::new(WasmError::WrongWorld { plugin: plugin.meta().to_string(), operator: cx.node.to_string(), found: world, needs }))
}

impl OperatorKind for WasmOperators {
    type Config = WasmConfig;
    const TYPE: &'static str = "wasm";
    const PLUGIN_FIELD: Option<&'static str> = Some("plugin");

    fn check(&self, c: &WasmConfig, cx: &Check<'_>) -> Result<(), SpecError> {
        if c.plugin.trim().is_empty() {
            return Err(cx.error("plugin", "empty"));
        }
        if let Some(m) = c.limits.memory
            && !(MEMORY.0..=MEMORY.1).contains(&m.0)
        {
            return Err(cx.error("limits.memory", "must be between 64KiB (one Wasm page) and 4GiB (a 32-bit guest's address space)"));
        }
        if let Some(t) = c.limits.call_timeout {
            weir_spec::units::duration_in_range(t.0, CALL_TIMEOUT.0, CALL_TIMEOUT.1).map_err(|m| cx.error("limits.call_timeout", m))?;
        }
        if let Some(w) = &c.window {
            check_window(w, cx)?;
        }
        Ok(())
    }

    /// A stream operator reads a full changelog if its plugin implements the
    /// changelog world (its build checks that), and writes one; an upsert
    /// changelog needs normalising first, and a window function cannot take
    /// records back out of its accumulators.
    fn changelog(&self, c: &WasmConfig, input: Changelog) -> Result<Changelog, String> {
        match (input, &c.window) {
            (Changelog::Append, _) => Ok(Changelog::Append),
            (_, Some(_)) => Err("a window operator adds records to its windows' accumulators and has no way to take one \
                 back out, so it cannot read updates and deletes"
                .into()),
            (Changelog::Upsert, None) => Err("a Wasm operator needs each update to carry the row it replaces and each \
                 delete the row it removes, which an upsert changelog does not: put a `type: changelog-normalize` \
                 operator (key_by the key) before it"
                .into()),
            (Changelog::Retract, None) => Ok(Changelog::Retract),
        }
    }

    fn cannot_isolate(&self, c: &WasmConfig) -> Option<String> {
        c.window.as_ref().map(|_| "a window operator cannot undo a failed call".to_string())
    }

    fn undeclared_output(&self, c: &WasmConfig, node: &str, output: &str) -> Option<String> {
        let w = c.window_spec()?;
        (w.late_output != output).then(|| {
            format!(
                "window operator '{node}' has one side output, its late output '{}' (window.late_output)",
                w.late_output
            )
        })
    }

    /// The operator's factory, after trying the plugin out (see [`tried`]),
    /// so that `weir validate` finds what would fail at start.
    fn build(&self, c: WasmConfig, cx: &BuildContext<'_>) -> Result<BuiltOperator, BuildError> {
        let (factory, plugin) = tried(&c, cx)?;
        let logic = Some(Logic { label: plugin.meta().to_string(), digest: plugin.meta().digest.clone() });
        // A window operator's state is its windows: their shape must not
        // change under restored state.
        let state_shape = c.window_spec().map(|w| serde_json::to_string(&w).expect("a window spec serialises"));
        Ok(BuiltOperator { factory: factory.into_factory(), logic, state_shape })
    }

    /// The new plugin, tried out, before anything switches to it.
    fn replacement(&self, c: WasmConfig, cx: &BuildContext<'_>) -> Result<Replacement, BuildError> {
        Ok(tried(&c, cx)?.0.into_replacement())
    }
}

/// A stream or window operator's factory.
enum Factory {
    Stream(Arc<WasmOperatorFactory>),
    Window(Arc<WindowOperatorFactory>),
}

impl Factory {
    fn into_factory(self) -> Arc<dyn OperatorFactory> {
        match self {
            Factory::Stream(f) => f,
            Factory::Window(f) => f,
        }
    }

    /// As the replacement a running operator's `swap` understands.
    fn into_replacement(self) -> Replacement {
        match self {
            Factory::Stream(f) => f,
            Factory::Window(f) => f,
        }
    }
}

/// Load the plugin and try it out: one instance, instantiated and opened on
/// scratch heap state with the operator's config and the side outputs the
/// pipeline reads from it (a plugin that does not declare one fails here).
fn tried(c: &WasmConfig, cx: &BuildContext<'_>) -> Result<(Factory, Plugin), BuildError> {
    let plugin = load(c, cx)?;
    let settings = c.settings(cx);
    let trial = OperatorSettings { state: Arc::new(weir_state::HeapBackendFactory), ..settings.clone() };
    let mut ctx = TaskContext::new(&cx.env.pipeline, cx.node, 0, cx.parallelism);
    ctx.side_outputs = cx.side_outputs.to_vec().into();
    let factory = match c.window_spec() {
        Some(window) => {
            plugin.instantiate_window(&ctx, &trial, &window).map_err(BuildError::new)?;
            Factory::Window(Arc::new(WindowOperatorFactory { plugin: plugin.clone(), settings, window }))
        }
        None => {
            plugin.instantiate(&ctx, &trial).map_err(BuildError::new)?;
            Factory::Stream(Arc::new(WasmOperatorFactory { plugin: plugin.clone(), settings }))
        }
    };
    Ok((factory, plugin))
}
