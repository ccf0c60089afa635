//! The web dashboard of `weir serve`: what the API tells it (the dataflow
//! graph, per-node back-pressure, watermarks, state size and latency, the
//! checkpoint history, swaps, plugin log lines, server-sent event streams),
//! the page's files served without the token under a strict content
//! security policy, the Grafana dashboard's metrics existing, and the page
//! itself driven in headless Chromium by Playwright (`tests/dashboard`):
//! plugins uploaded through the page, a pipeline created, its rates, a swap
//! through the form, a stop; screenshots of every page into
//! `$CARGO_TARGET_DIR/dashboard-screenshots`.

use std::io::Read;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::node::{wasm, Node};

const TOKEN: &str = "dashboard-token";

/// A counting pipeline (generator → counter keyed, parallelism 2 → file
/// sink) and a printing one (misbehave's `print` at open).
fn start_pipelines(node: &Node) {
    assert_eq!(node.upload("counter", "1", wasm("counter_v1"), None).0, 201);
    assert_eq!(node.upload("misbehave", "1", wasm("misbehave"), None).0, 201);
    let out = node.dir.path().join("out");
    let spec = format!(
        "name: counts\ncheckpoint: {{interval: 200ms}}\n\
         sources: [{{name: events, type: generator, seed: 7, rate: 5000, keys: 50, timestamp: $.ts, watermark: {{strategy: monotonic}}}}]\n\
         operators: [{{name: count, plugin: counter@1, input: events, key_by: key, parallelism: 2}}]\n\
         sinks: [{{name: out, type: file, path: '{}', input: count}}]\n",
        out.display()
    );
    let (status, body) = node.post("/api/v1/pipelines", spec);
    assert_eq!(status, 201, "{body}");
    let spec = format!(
        "name: printer\n\
         sources: [{{name: events, type: generator, seed: 1, rate: 10, keys: 2}}]\n\
         operators: [{{name: m, plugin: misbehave@1, input: events, config: {{print: hello-dashboard}}}}]\n\
         sinks: [{{name: out, type: file, path: '{}', input: m}}]\n",
        node.dir.path().join("printed").display()
    );
    let (status, body) = node.post("/api/v1/pipelines", spec);
    assert_eq!(status, 201, "{body}");
}

/// The first `n` events of a server-sent event stream: (event, data).
fn sse(node: &Node, path: &str, n: usize) -> Vec<(String, serde_json::Value)> {
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let mut resp = client.get(format!("{}{path}", node.url)).bearer_auth(TOKEN).send().unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let (mut text, mut buf, mut events) = (String::new(), [0u8; 8192], Vec::new());
    while events.len() < n {
        let got = resp.read(&mut buf).unwrap();
        assert!(got > 0, "the stream ended after {} events", events.len());
        text.push_str(&String::from_utf8_lossy(&buf[..got]));
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let field = |f: &str| block.lines().find_map(|l| l.strip_prefix(f)).map(|v| v.trim_start().to_string());
            if let (Some(e), Some(d)) = (field("event:"), field("data:")) {
                events.push((e, serde_json::from_str(&d).unwrap()));
            }
        }
    }
    events
}

#[test]
fn the_api_gives_the_dashboard_its_graph_rates_checkpoints_and_logs() {
    let node = Node::start(&["--token", TOKEN]);
    start_pipelines(&node);
    let d = node.wait_for("/api/v1/pipelines/counts", "three checkpoints and records at the sink", |d| {
        d["checkpoints"]["completed"].as_u64().unwrap_or(0) >= 3
            && d["nodes"].as_array().is_some_and(|n| n.iter().any(|n| n["name"] == "out" && n["latency_count"].as_u64() > Some(0)))
    });

    // The graph as planned: the keyed operator and the sink chained, the source apart.
    let graph = d["graph"]["nodes"].as_array().unwrap();
    let g = |name: &str| graph.iter().find(|n| n["name"] == name).unwrap();
    assert_eq!((g("events")["role"].as_str(), g("events")["type"].as_str()), (Some("source"), Some("generator")));
    assert_eq!((g("count")["plugin"].as_str(), g("count")["parallelism"].as_u64()), (Some("counter@1"), Some(2)));
    assert_eq!(g("count")["inputs"][0]["partitioning"], "key_by");
    assert_eq!(g("out")["inputs"][0]["partitioning"], "forward");
    assert_eq!(g("out")["chain"], g("count")["chain"], "the sink runs in the operator's tasks");
    assert_ne!(g("events")["chain"], g("count")["chain"]);

    // Per node: roles, back-pressure, watermarks, state size, latency.
    let nodes = d["nodes"].as_array().unwrap();
    let n = |name: &str| nodes.iter().find(|n| n["name"] == name).unwrap();
    assert_eq!(n("out")["role"], "sink");
    let wm = |name: &str| n(name)["watermark_ms"].as_i64().unwrap_or_else(|| panic!("{name} has a watermark: {d:#}"));
    for name in ["events", "count", "out"] {
        assert!(n(name)["blocked_s"].as_f64().unwrap() >= 0.0);
        assert!(wm(name) > 0);
    }
    assert!(n("count")["state_bytes"].as_u64().unwrap() > 0, "the counts are state: {d:#}");
    let latency = n("out")["latency_sum_s"].as_f64().unwrap() / n("out")["latency_count"].as_f64().unwrap();
    assert!(latency > 0.0 && latency < 30.0, "mean latency {latency} s");
    assert_eq!(n("events")["latency_count"], 0, "latency is measured at sinks");

    // The checkpoint history: sizes, incremental sizes, alignment.
    let history = d["checkpoints"]["history"].as_array().unwrap();
    assert!(history.len() >= 3);
    let first = &history[0];
    assert!(first["bytes"].as_u64().unwrap() > 0 && first["incremental_bytes"].as_u64().unwrap() > 0, "{first}");
    assert!(first["incremental_bytes"].as_u64() <= first["bytes"].as_u64());
    assert!(history.iter().all(|h| h["failure"].is_null() && h["alignment_ms"].is_u64()));

    // The summaries the pipelines page shows.
    let list = node.json("/api/v1/pipelines");
    let counts = list.as_array().unwrap().iter().find(|p| p["id"] == "counts").unwrap();
    assert!(counts["records_in"].as_u64().unwrap() > 0 && counts["records_out"].as_u64().unwrap() > 0, "{counts}");
    assert!(counts["last_checkpoint_ms"].as_i64().unwrap() > 0 && counts["at_ms"].as_i64().unwrap() > 0);

    // Plugin log lines, tagged, per pipeline.
    let logs = node.wait_for("/api/v1/pipelines/printer/logs", "the printer's lines", |l| l["lines"].as_array().unwrap().len() >= 2);
    let lines = logs["lines"].as_array().unwrap();
    let stdout = lines.iter().find(|l| l["stream"] == "stdout").unwrap();
    assert_eq!((stdout["message"].as_str(), stdout["plugin"].as_str(), stdout["level"].as_str()), (Some("hello-dashboard"), Some("misbehave@1/m[0]"), Some("info")));
    assert!(lines.iter().any(|l| l["stream"] == "stderr" && l["message"] == "stderr: hello-dashboard"));
    assert!(node.json("/api/v1/pipelines/counts/logs")["lines"].as_array().unwrap().is_empty(), "lines stay with their pipeline");
    assert_eq!(node.get("/api/v1/pipelines/nope/logs").0, 404);

    // Where plugins are used.
    let plugins = node.json("/api/v1/plugins");
    let counter = plugins.as_array().unwrap().iter().find(|p| p["name"] == "counter").unwrap();
    assert_eq!(counter["used_by"], serde_json::json!(["counts/count"]));

    // Live: the status every second, and the node's list.
    let events = sse(&node, "/api/v1/pipelines/counts/events", 2);
    assert!(events.iter().all(|(e, d)| e == "pipeline" && d["id"] == "counts"), "{events:?}");
    let (a, b) = (&events[0].1, &events[1].1);
    assert!(b["at_ms"].as_i64() > a["at_ms"].as_i64() && b["summary"].is_null());
    let rate_in = |d: &serde_json::Value| d["records_in"].as_u64().unwrap();
    assert!(rate_in(b) > rate_in(a), "records flow between two events");
    let events = sse(&node, "/api/v1/events", 1);
    assert_eq!(events[0].0, "pipelines");
    assert_eq!(events[0].1.as_array().unwrap().len(), 2);
    let resp = node.anonymous().get(format!("{}/api/v1/events", node.url)).send().unwrap();
    assert_eq!(resp.status().as_u16(), 401, "streams need the token");

    // Every metric the Grafana dashboard charts exists.
    let metrics = node.get("/metrics").1;
    let grafana = std::fs::read_to_string(weir_test_support::root().join("docs/grafana/weir-node.json")).unwrap();
    let used: std::collections::BTreeSet<String> = grafana
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("weir_") && w.len() > 5)
        .map(str::to_string)
        .collect();
    assert!(used.len() >= 15, "{used:?}");
    for m in &used {
        // A family is declared even while it has no sample (no failure yet, say).
        let family = m.strip_suffix("_total").unwrap_or(m);
        assert!(metrics.contains(&format!("# TYPE {family} ")), "the node exposes no {m}:\n{metrics}");
    }
}

#[test]
fn the_page_is_served_without_the_token_under_a_strict_policy() {
    let node = Node::start(&["--token", TOKEN]);
    let client = node.anonymous();
    let page = client.get(format!("{}/", node.url)).send().unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("default-src 'self'") && csp.contains("script-src 'self'") && !csp.contains("unsafe"), "{csp}");
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let html = page.text().unwrap();
    assert!(!html.contains("<script>") && !html.contains(" onclick="), "no inline scripts");
    // Every file the page names is served, with its type.
    for asset in html.split('"').filter(|s| s.starts_with("/assets/")) {
        let r = client.get(format!("{}{asset}", node.url)).send().unwrap();
        assert_eq!(r.status().as_u16(), 200, "{asset}");
        let ty = r.headers()["content-type"].to_str().unwrap().to_string();
        let want = match asset.rsplit('.').next() {
            Some("js") => "text/javascript",
            Some("css") => "text/css",
            Some("svg") => "image/svg+xml",
            other => panic!("{asset}: {other:?}"),
        };
        assert!(ty.starts_with(want), "{asset}: {ty}");
    }
    assert_eq!(client.get(format!("{}/assets/nope.js", node.url)).send().unwrap().status().as_u16(), 404);
    assert_eq!(client.get(format!("{}/assets/../api/v1/pipelines", node.url)).send().unwrap().status().as_u16(), 401);
    assert_eq!(client.get(format!("{}/api/v1/pipelines", node.url)).send().unwrap().status().as_u16(), 401);
}

#[test]
fn the_dashboard_in_headless_chromium_uploads_creates_swaps_and_stops() {
    let root = weir_test_support::root();
    let script = root.join("tests/dashboard/dashboard.mjs");
    assert!(
        root.join("tests/dashboard/node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: run `npm ci` in tests/dashboard (.ci/run does)"
    );
    assert!(std::path::Path::new("/usr/bin/chromium").exists(), "Chromium is missing: apt-get install chromium (.ci/run does)");
    let node = Node::start(&["--token", TOKEN]);
    let shots = weir_test_services::target_dir().join("dashboard-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();
    let out = node.dir.path().join("dash-out");
    let start = Instant::now();
    let o = Command::new("node")
        .arg(&script)
        .args(["--url", &node.url, "--token", TOKEN])
        .arg("--v1")
        .arg(weir_test_support::fixture("counter_v1"))
        .arg("--v2")
        .arg(weir_test_support::fixture("counter_v2"))
        .arg("--out")
        .arg(&shots)
        .arg("--spec-out")
        .arg(&out)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "the browser test failed after {:?} (screenshots in {}):\n{text}\n{}", start.elapsed(), shots.display(), node.log());
    for page in ["pipelines", "plugins", "pipeline", "checkpoints", "swaps", "logs", "token"] {
        let png = shots.join(format!("{page}.png"));
        let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
        assert!(bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000, "{} is a screenshot", png.display());
    }
    // What the page did, as the node saw it.
    let d = node.json("/api/v1/pipelines/dash");
    assert_eq!(d["status"], "stopped");
    assert_eq!(d["plugins"]["count"], "counter@2");
    let swaps = d["swaps"].as_array().unwrap();
    assert!(swaps.iter().any(|s| s["to"] == "counter@2" && s["status"] == "confirmed" && s["probation_ms"] == 2000), "{d:#}");
    let plugins = node.json("/api/v1/plugins");
    let versions: Vec<&str> = plugins.as_array().unwrap().iter().filter(|p| p["name"] == "counter").map(|p| p["version"].as_str().unwrap()).collect();
    assert_eq!(versions, ["1", "2"]);
}

#[test]
fn the_dashboards_modules_pass_their_unit_tests() {
    // SSE parsing, rates, graph layout, formatting and routes, in Node (no browser).
    let o = Command::new("node").arg("--test").arg(weir_test_support::root().join("tests/dashboard/unit.test.mjs")).output().unwrap();
    assert!(o.status.success(), "{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
}
