//! Prometheus text for the pipelines of a node.

use std::fmt::Write as _;

use crate::pipelines::Pipelines;

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

pub(crate) fn pipelines(p: &Pipelines, out: &mut String) {
    let entries: Vec<_> = p.entries.lock().unwrap().values().cloned().collect();
    let mut status = String::new();
    let mut records_in = String::new();
    let mut records_out = String::new();
    let mut busy = String::new();
    let mut bytes_in = String::new();
    let mut bytes_out = String::new();
    let mut batches = String::new();
    let mut plugin = String::new();
    let mut ckpt = String::new();
    let mut ckpt_failed = String::new();
    let mut ckpt_ms = String::new();
    let mut swaps = String::new();
    let mut restarts = String::new();
    let mut failures = String::new();
    for e in &entries {
        let id = esc(&e.id);
        let l = e.live.lock().unwrap();
        let plugins = e.record.lock().unwrap().plugins.clone();
        let _ = writeln!(status, "weir_pipeline_up{{pipeline=\"{id}\",status=\"{}\"}} {}", l.status, u8::from(l.running.is_some()));
        let _ = writeln!(restarts, "weir_pipeline_restarts_total{{pipeline=\"{id}\"}} {}", l.restarts);
        for (op, v) in &plugins {
            let _ = writeln!(plugin, "weir_operator_plugin_info{{pipeline=\"{id}\",operator=\"{}\",plugin=\"{}\"}} 1", esc(op), esc(v));
        }
        for (kind, n) in &l.failures {
            let _ = writeln!(failures, "weir_pipeline_failures_total{{pipeline=\"{id}\",kind=\"{kind}\"}} {n}");
        }
        for (result, n) in &l.swaps {
            let _ = writeln!(swaps, "weir_swaps_total{{pipeline=\"{id}\",result=\"{result}\"}} {n}");
        }
        if let Some(run) = &l.running {
            for tasks in run.control.metrics().tasks() {
                for (t, n) in tasks.iter().enumerate() {
                    let labels = format!("pipeline=\"{id}\",node=\"{}\",task=\"{t}\"", esc(&n.node));
                    let _ = writeln!(records_in, "weir_node_records_in_total{{{labels}}} {}", n.records_in);
                    let _ = writeln!(records_out, "weir_node_records_out_total{{{labels}}} {}", n.records_out);
                    let _ = writeln!(bytes_in, "weir_node_bytes_in_total{{{labels}}} {}", n.bytes_in);
                    let _ = writeln!(bytes_out, "weir_node_bytes_out_total{{{labels}}} {}", n.bytes_out);
                    let _ = writeln!(batches, "weir_node_batches_in_total{{{labels}}} {}", n.batches_in);
                    let _ = writeln!(busy, "weir_node_busy_seconds_total{{{labels}}} {}", n.busy_nanos as f64 / 1e9);
                }
            }
            let c = run.control.checkpoints();
            let _ = writeln!(ckpt, "weir_checkpoints_completed_total{{pipeline=\"{id}\"}} {}", c.completed);
            let _ = writeln!(ckpt_failed, "weir_checkpoints_failed_total{{pipeline=\"{id}\"}} {}", c.failed);
            if let Some(ms) = c.last_duration_ms {
                let _ = writeln!(ckpt_ms, "weir_checkpoint_last_duration_seconds{{pipeline=\"{id}\"}} {}", ms as f64 / 1e3);
            }
        }
    }
    let families = [
        ("weir_pipeline_up", "gauge", "1 while the pipeline's job runs, by status.", status),
        ("weir_pipeline_restarts_total", "counter", "Restarts of the pipeline's job after failures (traps, deadlines, memory limits, I/O).", restarts),
        ("weir_pipeline_failures_total", "counter", "Job failures by kind: trap (a plugin trapped or panicked), deadline (a call ran over its time), memory (over its memory limit), other.", failures),
        ("weir_operator_plugin_info", "gauge", "The plugin version each operator runs.", plugin),
        ("weir_node_records_in_total", "counter", "Records into a node (since the job started).", records_in),
        ("weir_node_records_out_total", "counter", "Records out of a node (since the job started).", records_out),
        ("weir_node_bytes_in_total", "counter", "Key and value bytes into a node.", bytes_in),
        ("weir_node_bytes_out_total", "counter", "Key and value bytes out of a node.", bytes_out),
        ("weir_node_batches_in_total", "counter", "Batches into a node (records_in / batches_in is the mean batch size).", batches),
        ("weir_node_busy_seconds_total", "counter", "Time spent in a node's code: for a Wasm operator, the time in guest calls and the host calls they make.", busy),
        ("weir_checkpoints_completed_total", "counter", "Completed checkpoints (since the job started).", ckpt),
        ("weir_checkpoints_failed_total", "counter", "Failed checkpoints (since the job started).", ckpt_failed),
        ("weir_checkpoint_last_duration_seconds", "gauge", "From trigger to completion of the last checkpoint.", ckpt_ms),
        ("weir_swaps_total", "counter", "Hot swaps by result: confirmed, rolled-back, refused.", swaps),
    ];
    for (name, kind, help, body) in families {
        family(out, name, kind, help);
        out.push_str(&body);
    }
}
