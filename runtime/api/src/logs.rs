//! Plugin log lines by pipeline, for the API and the dashboard: a tracing
//! layer ([`PluginLogLayer`], installed by the binary) takes the events the
//! Wasm host logs for guests (target `weir::plugin`, with the fields
//! `pipeline`, `plugin` and `stream`; they are already cut to the plugin's
//! line limit and rate-limited per task) into a ring of the last
//! [`KEPT`] lines of each pipeline, and broadcasts them for live tails.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

use crate::model::LogLine;

/// Lines kept per pipeline.
pub const KEPT: usize = 500;
/// Pipelines kept at most (the oldest-written one is forgotten first).
const PIPELINES: usize = 1024;
/// Lines a slow live tail may fall behind before it skips.
const BROADCAST: usize = 1024;

/// The node's plugin log lines.
pub struct PluginLogs {
    kept: Mutex<HashMap<String, VecDeque<LogLine>>>,
    seq: AtomicU64,
    live: tokio::sync::broadcast::Sender<(Arc<str>, LogLine)>,
}

impl PluginLogs {
    fn new() -> Self {
        PluginLogs { kept: Mutex::default(), seq: AtomicU64::new(0), live: tokio::sync::broadcast::channel(BROADCAST).0 }
    }

    /// The process's plugin logs (what the layer fills).
    pub fn global() -> Arc<PluginLogs> {
        static LOGS: OnceLock<Arc<PluginLogs>> = OnceLock::new();
        LOGS.get_or_init(|| Arc::new(PluginLogs::new())).clone()
    }

    fn push(&self, pipeline: &str, mut line: LogLine) {
        line.seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        {
            let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
            if !kept.contains_key(pipeline) && kept.len() >= PIPELINES {
                let oldest = kept.iter().min_by_key(|(_, l)| l.back().map_or(0, |l| l.seq)).map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    kept.remove(&k);
                }
            }
            let ring = kept.entry(pipeline.to_string()).or_default();
            if ring.len() == KEPT {
                ring.pop_front();
            }
            ring.push_back(line.clone());
        }
        // No receiver: nobody is watching.
        let _ = self.live.send((pipeline.into(), line));
    }

    /// The kept lines of a pipeline, oldest first.
    pub fn lines(&self, pipeline: &str) -> Vec<LogLine> {
        let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.get(pipeline).map(|r| r.iter().cloned().collect()).unwrap_or_default()
    }

    /// Forget a pipeline's lines (it was deleted).
    pub fn forget(&self, pipeline: &str) {
        self.kept.lock().unwrap_or_else(|p| p.into_inner()).remove(pipeline);
    }

    /// Every line from now on, of every pipeline.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<(Arc<str>, LogLine)> {
        self.live.subscribe()
    }
}

/// The tracing layer that keeps plugin log lines in [`PluginLogs::global`].
#[derive(Clone, Copy, Debug, Default)]
pub struct PluginLogLayer;

impl<S: Subscriber> Layer<S> for PluginLogLayer {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let meta = event.metadata();
        if meta.target() != "weir::plugin" {
            return;
        }
        let mut f = Fields::default();
        event.record(&mut f);
        let Some(pipeline) = f.pipeline else { return };
        let line = LogLine {
            seq: 0,
            at_ms: weir_engine::now_ms(),
            level: meta.level().as_str().to_ascii_lowercase(),
            plugin: f.plugin.unwrap_or_default(),
            stream: f.stream,
            message: f.message,
        };
        PluginLogs::global().push(&pipeline, line);
    }
}

#[derive(Default)]
struct Fields {
    pipeline: Option<String>,
    plugin: Option<String>,
    stream: Option<String>,
    message: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "pipeline" => self.pipeline = Some(value.into()),
            "plugin" => self.plugin = Some(value.into()),
            "stream" => self.stream = Some(value.into()),
            "message" => self.message.push_str(value),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            self.record_str(field, &format!("{value:?}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn plugin_lines_are_kept_per_pipeline_and_broadcast() {
        let subscriber = tracing_subscriber::registry().with(PluginLogLayer);
        let mut live = PluginLogs::global().subscribe();
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..KEPT + 3 {
                tracing::warn!(target: "weir::plugin", pipeline = "logs-a", plugin = "p@1/op[0]", stream = "stdout", "line {i}");
            }
            tracing::info!(target: "weir::plugin", pipeline = "logs-b", plugin = "p@1/op[1]", "hello");
            tracing::info!(target: "weir::other", pipeline = "logs-b", "not a plugin line");
        });
        let a = PluginLogs::global().lines("logs-a");
        assert_eq!(a.len(), KEPT);
        assert_eq!(a[0].message, "line 3");
        assert_eq!((a[KEPT - 1].level.as_str(), a[KEPT - 1].stream.as_deref()), ("warn", Some("stdout")));
        assert!(a.windows(2).all(|w| w[0].seq < w[1].seq));
        let b = PluginLogs::global().lines("logs-b");
        assert_eq!(b.len(), 1);
        assert_eq!((b[0].plugin.as_str(), b[0].message.as_str(), b[0].stream.as_deref()), ("p@1/op[1]", "hello", None));
        let (pipeline, first) = live.try_recv().unwrap();
        assert_eq!((&*pipeline, first.message.as_str()), ("logs-a", "line 0"));
        PluginLogs::global().forget("logs-b");
        assert!(PluginLogs::global().lines("logs-b").is_empty());
    }
}
