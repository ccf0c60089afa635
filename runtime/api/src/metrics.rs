//! `/metrics`: the node's Prometheus metrics, through `prometheus-client`.
//! The registry's own counters (uploads) are live metrics; the pipelines'
//! families are read from the running jobs at each scrape by a collector.
//! Label values are names the API has checked (letters, digits, `-`, `_`,
//! `.`, `+`, `@`), so they need no escaping.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::pipelines::Pipelines;

/// The node's metrics registry and the counters the API bumps.
pub(crate) struct NodeMetrics {
    registry: Registry,
    pub uploads: Counter,
    pub rejected: Counter,
}

impl NodeMetrics {
    pub fn new(pipelines: Arc<Pipelines>, plugins: Arc<crate::Registry>) -> Self {
        let mut registry = Registry::default();
        let (uploads, rejected) = (Counter::default(), Counter::default());
        registry.register("weir_plugin_uploads", "Plugin uploads accepted.", uploads.clone());
        registry.register("weir_plugin_upload_rejections", "Plugin uploads refused.", rejected.clone());
        registry.register_collector(Box::new(PluginCount(plugins)));
        registry.register_collector(Box::new(PipelineFamilies(pipelines)));
        NodeMetrics { registry, uploads, rejected }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String");
        out
    }
}

struct PluginCount(Arc<crate::Registry>);

impl std::fmt::Debug for PluginCount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PluginCount")
    }
}

impl Collector for PluginCount {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let g = ConstGauge::new(self.0.count() as i64);
        g.encode(encoder.encode_descriptor("weir_plugins", "Plugin versions in the registry.", None, g.metric_type())?)
    }
}

/// Every pipeline's families, read at scrape time.
struct PipelineFamilies(Arc<Pipelines>);

impl std::fmt::Debug for PipelineFamilies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PipelineFamilies")
    }
}

type Labels = Vec<(&'static str, String)>;

/// A sample's value: whole numbers stay whole in the text.
#[derive(Clone, Copy)]
enum Value {
    Int(u64),
    Float(f64),
}

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::Int(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}

/// One metric family: its samples, by label set.
struct Family {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    samples: Vec<(Labels, Value)>,
}

impl Family {
    fn new(name: &'static str, kind: MetricType, help: &'static str) -> Self {
        Family { name, help, kind, samples: Vec::new() }
    }

    fn add(&mut self, labels: Labels, v: impl Into<Value>) {
        self.samples.push((labels, v.into()));
    }

    fn encode(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut m = encoder.encode_descriptor(self.name, self.help, None, self.kind)?;
        for (labels, v) in &self.samples {
            let e = m.encode_family(labels)?;
            match (self.kind, *v) {
                (MetricType::Counter, Value::Int(n)) => ConstCounter::new(n).encode(e)?,
                (MetricType::Counter, Value::Float(x)) => ConstCounter::new(x).encode(e)?,
                (_, Value::Int(n)) => ConstGauge::new(n as i64).encode(e)?,
                (_, Value::Float(x)) => ConstGauge::new(x).encode(e)?,
            }
        }
        Ok(())
    }
}

impl Collector for PipelineFamilies {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use MetricType::{Counter as C, Gauge as G};
        let mut up = Family::new("weir_pipeline_up", G, "1 while the pipeline's job runs, by status.");
        let mut restarts = Family::new(
            "weir_pipeline_restarts",
            C,
            "Restarts of the pipeline's job after failures (traps, deadlines, memory limits, I/O).",
        );
        let mut failures = Family::new(
            "weir_pipeline_failures",
            C,
            "Job failures by kind: trap (a plugin trapped or panicked), deadline (a call ran over its time), memory (over its memory limit), other.",
        );
        let mut plugin = Family::new("weir_operator_plugin_info", G, "The plugin version each operator runs.");
        let mut records_in = Family::new("weir_node_records_in", C, "Records into a node (since the job started).");
        let mut records_out = Family::new("weir_node_records_out", C, "Records out of a node (since the job started).");
        let mut bytes_in = Family::new("weir_node_bytes_in", C, "Key and value bytes into a node.");
        let mut bytes_out = Family::new("weir_node_bytes_out", C, "Key and value bytes out of a node.");
        let mut batches = Family::new("weir_node_batches_in", C, "Batches into a node (records_in / batches_in is the mean batch size).");
        let mut busy = Family::new(
            "weir_node_busy_seconds",
            C,
            "Time spent in a node's code: for a Wasm operator, the time in guest calls and the host calls they make.",
        );
        let mut dead = Family::new(
            "weir_node_dead_letters",
            C,
            "Records a node failed on and skipped or sent to its dead-letter output (on_error: skip | dead-letter).",
        );
        let mut blocked = Family::new(
            "weir_node_blocked_seconds",
            C,
            "Time a node's task waited for room in its output channels (back-pressure from downstream).",
        );
        let mut watermark = Family::new(
            "weir_node_watermark_seconds",
            G,
            "A node task's event-time watermark, in seconds since the Unix epoch (time() minus it is the watermark lag).",
        );
        let mut latency = Family::new(
            "weir_node_latency_seconds",
            C,
            "At sinks: for each batch written, the seconds since its first record was read by a source, summed.",
        );
        let mut latency_n = Family::new("weir_node_latency_batches", C, "At sinks: the batches weir_node_latency_seconds sums over.");
        let mut state = Family::new("weir_node_state_bytes", G, "Bytes of a node's keyed state in the last completed checkpoint.");
        let mut ckpt_bytes = Family::new(
            "weir_checkpoint_last_incremental_bytes",
            G,
            "Bytes the last completed checkpoint stored that no earlier checkpoint of the run stored.",
        );
        let mut ckpt_align = Family::new(
            "weir_checkpoint_last_alignment_seconds",
            G,
            "The longest time a task held input back aligning the barriers of the last completed checkpoint.",
        );
        let mut ckpt = Family::new("weir_checkpoints_completed", C, "Completed checkpoints (since the job started).");
        let mut ckpt_failed = Family::new("weir_checkpoints_failed", C, "Failed checkpoints (since the job started).");
        let mut ckpt_s = Family::new("weir_checkpoint_last_duration_seconds", G, "From trigger to completion of the last checkpoint.");
        let mut swaps = Family::new("weir_swaps", C, "Hot swaps by result: confirmed, rolled-back, refused.");
        let entries: Vec<_> = self.0.entries.lock().unwrap().values().cloned().collect();
        for e in &entries {
            let id = || ("pipeline", e.id.clone());
            let l = e.live.lock().unwrap();
            let plugins = e.record.lock().unwrap().plugins.clone();
            up.add(vec![id(), ("status", l.status.as_str().into())], u64::from(l.running.is_some()));
            restarts.add(vec![id()], l.restarts);
            for (op, v) in &plugins {
                plugin.add(vec![id(), ("operator", op.clone()), ("plugin", v.clone())], 1u64);
            }
            for (kind, n) in &l.failures {
                failures.add(vec![id(), ("kind", kind.as_str().into())], *n);
            }
            for (result, n) in &l.swaps {
                swaps.add(vec![id(), ("result", result.as_str().into())], *n);
            }
            let Some(run) = &l.running else { continue };
            for tasks in run.control.metrics().tasks() {
                for (t, n) in tasks.iter().enumerate() {
                    let labels = || vec![id(), ("node", n.node.clone()), ("task", t.to_string())];
                    records_in.add(labels(), n.records_in);
                    records_out.add(labels(), n.records_out);
                    bytes_in.add(labels(), n.bytes_in);
                    bytes_out.add(labels(), n.bytes_out);
                    batches.add(labels(), n.batches_in);
                    busy.add(labels(), n.busy_nanos as f64 / 1e9);
                    dead.add(labels(), n.dead_letters);
                    blocked.add(labels(), n.blocked_nanos as f64 / 1e9);
                    if let Some(wm) = n.watermark.filter(|w| *w > i64::MIN && *w < i64::MAX) {
                        watermark.add(labels(), wm as f64 / 1e3);
                    }
                    if n.latency_batches > 0 {
                        latency.add(labels(), n.latency_nanos as f64 / 1e9);
                        latency_n.add(labels(), n.latency_batches);
                    }
                }
            }
            let c = run.control.checkpoints();
            for (node, bytes) in &c.node_bytes {
                state.add(vec![id(), ("node", node.clone())], *bytes);
            }
            if let Some(last) = c.history.iter().rev().find(|h| h.failure.is_none()) {
                ckpt_bytes.add(vec![id()], last.incremental_bytes);
                ckpt_align.add(vec![id()], last.alignment_ms as f64 / 1e3);
            }
            ckpt.add(vec![id()], c.completed);
            ckpt_failed.add(vec![id()], c.failed);
            if let Some(ms) = c.last_duration_ms {
                ckpt_s.add(vec![id()], ms as f64 / 1e3);
            }
        }
        for f in [
            up, restarts, failures, plugin, records_in, records_out, bytes_in, bytes_out, batches, busy, dead, blocked, watermark, latency,
            latency_n, state, ckpt, ckpt_failed, ckpt_s, ckpt_bytes, ckpt_align, swaps,
        ] {
            f.encode(&mut encoder)?;
        }
        Ok(())
    }
}
