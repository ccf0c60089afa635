//! `weir serve` end to end: a real node on a loopback port, driven over HTTP
//! and with `weir plugin ...`.


use crate::common::{stderr, weir};
use crate::node::{wasm, Node};
use weir_test_support::fixture;

#[test]
fn plugins_are_uploaded_listed_and_deleted_over_http_and_the_cli() {
    let node = Node::start(&[]);
    let server = node.url.clone();
    let file = fixture("word_count");
    let up = |version: &str| {
        weir(&["plugin", "upload", file.to_str().unwrap(), "--name", "word-count", "--version", version, "--server", &server], &[])
    };
    let o = up("1.0.0");
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.starts_with("uploaded word-count@1.0.0 sha256:") && out.contains("weir:operator/operator@0.1.0"), "{out}");
    assert!(up("1.0.0").status.success(), "the same content again is fine");
    assert!(up("1.1.0").status.success());
    assert_eq!(node.stored_blobs(), 1, "content-addressed: one component for both versions");

    // A multipart form works as well.
    let mut form = Vec::new();
    for (field, value) in [("name", "word-count"), ("version", "1.2.0")] {
        form.extend(format!("--XyZ\r\nContent-Disposition: form-data; name=\"{field}\"\r\n\r\n{value}\r\n").as_bytes());
    }
    form.extend(b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"wc.wasm\"\r\nContent-Type: application/wasm\r\n\r\n");
    form.extend(std::fs::read(&file).unwrap());
    form.extend(b"\r\n--XyZ--\r\n");
    let (status, body) = node.send(
        node.http().post(format!("{}/api/v1/plugins", node.url)).header("content-type", "multipart/form-data; boundary=XyZ").body(form),
    );
    assert_eq!((status, body["version"].as_str()), (201, Some("1.2.0")), "{body}");
    assert!(weir(&["plugin", "delete", "word-count", "1.2.0", "--server", &server], &[]).status.success());

    let o = weir(&["plugin", "list", "--server", &server, "--output", "json"], &[]);
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let versions: Vec<&str> = list.as_array().unwrap().iter().map(|v| v["version"].as_str().unwrap()).collect();
    assert_eq!(versions, ["1.0.0", "1.1.0"]);

    let (status, body) = node.upload("word-count", "1.0.0", wasm("dedup"), None);
    assert_eq!(status, 409);
    assert!(body["error"].as_str().unwrap().starts_with("plugin word-count@1.0.0 is already stored with other content"), "{body}");

    let o = weir(&["plugin", "delete", "word-count", "1.0.0", "--server", &server], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (status, body) = node.get("/api/v1/plugins/word-count");
    assert_eq!(status, 200);
    assert!(body.contains("1.1.0") && !body.contains("\"1.0.0\""), "{body}");
    assert!(weir(&["plugin", "delete", "word-count", "1.1.0", "--server", &server], &[]).status.success());
    assert_eq!(node.get("/api/v1/plugins/word-count"), (404, r#"{"error":"no plugin named 'word-count'"}"#.into()));
    assert_eq!(node.stored_blobs(), 0);
    let o = weir(&["plugin", "delete", "word-count", "1.1.0", "--server", &server], &[]);
    assert_eq!(stderr(&o).trim(), "error: no plugin named 'word-count' (404 Not Found)");
}

#[test]
fn bad_uploads_get_json_errors_and_store_nothing() {
    let node = Node::start(&["--max-upload", "1MiB"]);
    let cases: Vec<(Vec<u8>, &str, u16, &str)> = vec![
        (b"definitely not wasm".to_vec(), "junk", 400, "plugin junk@1 is not a WebAssembly binary"),
        (b"\0asm\x01\0\0\0".to_vec(), "core", 400, "plugin core@1 is a core WebAssembly module, not a component"),
        (wasm("not-an-operator"), "command", 400, "plugin command@1 does not implement the weir:operator/operator@0.1.0 world"),
        (vec![0u8; 2 << 20], "big", 413, "the upload is larger than this node's limit of 1048576 bytes (weir serve --max-upload)"),
        (wasm("word_count"), "a/b", 400, "plugin name 'a/b': use 1 to 64 letters, digits or '-' '_'"),
        (Vec::new(), "empty", 400, "the upload is empty: send the component's bytes as the request body"),
    ];
    for (body, name, status, message) in cases {
        let (got, json) = node.upload(name, "1", body, None);
        assert_eq!(got, status, "{name}: {json}");
        assert!(json["error"].as_str().unwrap().starts_with(message), "{name}: {json}");
    }
    let resp = node.http().post(format!("{}/api/v1/plugins?name=x", node.url)).body(wasm("word_count")).send().unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert!(resp.text().unwrap().contains("missing query parameter 'version'"));
    assert_eq!(node.stored_blobs(), 0, "nothing half-stored");
    assert_eq!(node.get("/api/v1/plugins"), (200, "[]".into()));
    let (_, metrics) = node.get("/metrics");
    assert!(metrics.contains("weir_plugin_upload_rejections_total 7\n") && metrics.contains("weir_plugins 0\n"), "{metrics}");
}

#[test]
fn a_token_guards_every_route_and_the_api_describes_itself() {
    let node = Node::start(&["--token", "s3cret"]);
    let anonymous = node.anonymous();
    let needs_token = (401, serde_json::json!({"error": "this request needs the node's token: Authorization: Bearer <token>"}));
    let (status, body) = node.send(anonymous.post(format!("{}/api/v1/plugins?name=word-count&version=1", node.url)).body(wasm("word_count")));
    assert_eq!((status, body), needs_token.clone());
    assert_eq!(node.upload("word-count", "1", wasm("word_count"), Some("wrong")).0, 401);
    assert_eq!(node.upload("word-count", "1", wasm("word_count"), Some("s3cret-and-more")).0, 401);
    let (status, body) = node.upload("word-count", "1", wasm("word_count"), Some("s3cret"));
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["world"], "weir:operator/operator@0.1.0");
    let resp = anonymous.delete(format!("{}/api/v1/plugins/word-count/1", node.url)).send().unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    // Reads need it too, every one of them, and unknown routes.
    for path in [
        "/api/v1/plugins",
        "/api/v1/plugins/word-count",
        "/api/v1/pipelines",
        "/api/v1/pipelines/x",
        "/api/v1/pipelines/x/logs",
        "/api/v1/pipelines/x/events",
        "/api/v1/events",
        "/api/v1/openapi.json",
        "/metrics",
        "/nope",
    ] {
        let resp = anonymous.get(format!("{}{path}", node.url)).send().unwrap();
        assert_eq!(resp.headers()["www-authenticate"], "Bearer", "{path}");
        let got = (resp.status().as_u16(), serde_json::from_str::<serde_json::Value>(&resp.text().unwrap()).unwrap());
        assert_eq!(got, needs_token, "{path}");
    }
    assert_eq!(node.get("/api/v1/plugins").0, 200, "with the token");
    let (_, metrics) = node.get("/metrics");
    assert!(metrics.contains("weir_plugins 1\n") && metrics.contains("weir_plugin_uploads_total 1\n"), "{metrics}");

    // Unknown routes and methods answer JSON.
    let (status, body) = node.send(node.http().get(format!("{}/x", node.url)));
    assert_eq!((status, body), (404, serde_json::json!({"error": "no route GET /x; see /api/v1/openapi.json"})));
    let (status, body) = node.send(node.http().put(format!("{}/api/v1/pipelines/x/y/z", node.url)));
    assert_eq!((status, body), (404, serde_json::json!({"error": "no route PUT /api/v1/pipelines/x/y/z; see /api/v1/openapi.json"})));
    let resp = node.http().patch(format!("{}/api/v1/plugins", node.url)).send().unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&resp.text().unwrap()).unwrap(), serde_json::json!({"error": "/api/v1/plugins does not take PATCH; see /api/v1/openapi.json"}));

    let (status, doc) = node.get("/api/v1/openapi.json");
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_str(&doc).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/api/v1/plugins",
        "/api/v1/plugins/{name}",
        "/api/v1/plugins/{name}/{version}",
        "/api/v1/pipelines",
        "/api/v1/pipelines/{id}",
        "/api/v1/pipelines/{id}/stop",
        "/api/v1/pipelines/{id}/start",
        "/api/v1/pipelines/{id}/checkpoints",
        "/api/v1/pipelines/{id}/operators/{op}/swap",
        "/api/v1/pipelines/{id}/logs",
        "/api/v1/pipelines/{id}/events",
        "/api/v1/events",
        "/metrics",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} is documented");
    }
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert_eq!(op["security"], serde_json::json!([{"token": []}]), "{method} {path}");
            assert!(op["responses"].get("401").is_some(), "{method} {path} documents its 401");
            operations += 1;
        }
    }
    assert_eq!(operations, 16);
    drop(node);

    // With --public-metrics, only /metrics is open.
    let node = Node::start(&["--token", "s3cret", "--public-metrics"]);
    let resp = anonymous.get(format!("{}/metrics", node.url)).send().unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.text().unwrap().contains("weir_plugins 0"));
    assert_eq!(anonymous.get(format!("{}/api/v1/pipelines", node.url)).send().unwrap().status().as_u16(), 401);
}

#[test]
fn a_node_without_a_token_listens_on_loopback_only_unless_told() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let o = weir(&["serve", "--addr", "0.0.0.0:0", "--data-dir", data.to_str().unwrap()], &[]);
    assert!(!o.status.success());
    assert_eq!(
        stderr(&o).trim(),
        "error: --addr 0.0.0.0:0: refusing to listen on 0.0.0.0 without a token, since anyone who reaches it could upload and run code on this node; \
         set --token (or WEIR_TOKEN), listen on 127.0.0.1, or pass --insecure-no-token to allow it"
    );
    assert!(!data.exists(), "nothing was created");
    // Told, it listens (reached here over loopback).
    let mut node = Node::start(&["--addr", "0.0.0.0:0", "--insecure-no-token"]);
    node.url = format!("http://127.0.0.1:{}", node.url.rsplit(':').next().unwrap());
    assert_eq!(node.get("/api/v1/plugins"), (200, "[]".into()));
}

#[test]
fn a_node_serves_https_with_its_certificate() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let rcgen::CertifiedKey { cert, key_pair } = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key_pair.serialize_pem()).unwrap();
    let mut node = Node::start_in(dir.clone(), &["--token", "t0k", "--tls-cert", cert_file.to_str().unwrap(), "--tls-key", key_file.to_str().unwrap()]);
    assert!(node.url.starts_with("https://127.0.0.1:"), "{}", node.url);
    node.root = Some(cert.pem().into_bytes());
    assert_eq!(node.get("/api/v1/plugins"), (200, "[]".into()));
    let (status, body) = node.upload("word-count", "1", wasm("word_count"), None);
    assert_eq!(status, 201, "{body}");
    // A client that does not trust the certificate gets no answer, nor does plain HTTP.
    let untrusting = reqwest::blocking::Client::builder().use_rustls_tls().build().unwrap();
    let e = untrusting.get(format!("{}/api/v1/plugins", node.url)).send().unwrap_err();
    assert!(format!("{e:?}").contains("UnknownIssuer"), "{e:?}");
    assert!(node.anonymous().get(format!("http://{}/api/v1/plugins", node.addr())).send().is_err());
    assert_eq!(node.get("/api/v1/plugins/word-count").0, 200, "the node still serves");

    // Bad TLS files are named.
    let o = weir(&["serve", "--addr", "127.0.0.1:0", "--tls-cert", key_file.to_str().unwrap(), "--tls-key", key_file.to_str().unwrap()], &[]);
    assert!(!o.status.success());
    assert_eq!(stderr(&o).trim(), format!("error: --tls-cert {}: no PEM certificate in it", key_file.display()));
}

/// A pipeline that counts into `out`, and how many records it counted.
fn counted(v: &serde_json::Value) -> u64 {
    v["nodes"].as_array().map_or(0, |n| n.iter().find(|n| n["name"] == "count").unwrap()["records_out"].as_u64().unwrap())
}

#[test]
fn idle_connections_starve_neither_the_api_nor_a_running_pipeline() {
    use std::io::Read;
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    // The default connection cap (1024); a header timeout longer than opening
    // the connections takes here (seconds: see below).
    let node = Node::start_in(dir.clone(), &["--header-timeout", "15s"]);
    assert_eq!(node.upload("counter", "1", wasm("counter_v1"), None).0, 201);
    let (status, body) = node.post("/api/v1/pipelines", counting_spec("counts", "counter@1", &dir.path().join("out"), 5_000));
    assert_eq!(status, 201, "{body}");
    node.wait_for("/api/v1/pipelines/counts", "records", |v| counted(v) > 1_000);

    // 2 000 idle connections (loopback; closed at the end of the test).
    const IDLE: usize = 2_000;
    let opened = std::time::Instant::now();
    // Opened from 10 threads: a connect now and then waits a second for its
    // SYN to be sent again (the loopback's SYN queue), so that they overlap.
    let idle: Vec<std::net::TcpStream> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..10).map(|_| s.spawn(|| (0..IDLE / 10).map(|_| std::net::TcpStream::connect(node.addr()).unwrap()).collect::<Vec<_>>())).collect();
        threads.into_iter().flat_map(|t| t.join().unwrap()).collect()
    });
    eprintln!("opened {IDLE} idle connections in {:?}", opened.elapsed());
    // Over the cap: a JSON 503 at once.
    let (status, body) = node.send(node.anonymous().get(format!("{}/api/v1/pipelines", node.url)));
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (503, "this node has 1024 connections open, its limit (weir serve --max-connections); try again later")
    );
    // The node closes the idle ones after the header timeout; then it answers again.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    let mut refused = 0;
    for mut c in &idle {
        c.set_read_timeout(Some(deadline.saturating_duration_since(std::time::Instant::now()).max(std::time::Duration::from_millis(1)))).unwrap();
        let mut got = Vec::new();
        let r = c.read_to_end(&mut got);
        assert!(r.is_ok(), "the node closed every idle connection within 40 s: {r:?}");
        refused += usize::from(got.starts_with(b"HTTP/1.1 503"));
    }
    let closed = opened.elapsed();
    eprintln!("all {IDLE} closed by the node after {closed:?}: {refused} refused over the cap, {} after the header timeout", IDLE - refused);
    // Those it held: at most its cap (fewer if some it held timed out before
    // all were opened, making room for others).
    assert!((1000..=1024).contains(&(IDLE - refused)), "the cap held {} connections", IDLE - refused);
    assert!(closed > std::time::Duration::from_secs(15), "held ones lasted the header timeout: {closed:?}");
    let before = counted(&node.json("/api/v1/pipelines/counts"));
    std::thread::sleep(std::time::Duration::from_millis(500));
    let v = node.json("/api/v1/pipelines/counts");
    assert_eq!((v["status"].as_str(), v["restarts"].as_u64()), (Some("running"), Some(0)), "{v:#}\n{}", node.log());
    assert!(counted(&v) > before, "the pipeline runs on");
    drop(idle);
}

#[test]
fn slow_or_half_sent_requests_time_out_and_do_not_block_shutdown() {
    use std::io::{Read, Write};
    let mut node = Node::start(&["--header-timeout", "60s", "--body-timeout", "1s"]);
    // A body that never arrives whole: 408 after the body timeout.
    let mut slow = std::net::TcpStream::connect(node.addr()).unwrap();
    slow.write_all(b"POST /api/v1/pipelines HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nname: x").unwrap();
    let t = std::time::Instant::now();
    let mut answer = vec![0u8; 4096];
    let n = slow.read(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]).into_owned();
    assert!(t.elapsed() < std::time::Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.ends_with(r#"{"error":"the request body did not arrive within 1 s (weir serve --body-timeout)"}"#), "{answer}");

    // Half-sent headers and a half-sent body hold the node's shutdown at most 5 s.
    let mut half_head = std::net::TcpStream::connect(node.addr()).unwrap();
    half_head.write_all(b"GET /api/v1/pipel").unwrap();
    let mut half_body = std::net::TcpStream::connect(node.addr()).unwrap();
    half_body.write_all(b"POST /api/v1/pipelines HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nname").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let took = node.interrupt();
    eprintln!("SIGINT with two half-sent requests: the node exited after {took:?}");
    assert!(took < std::time::Duration::from_secs(8), "{took:?}\n{}", node.log());
    assert!(node.log().contains("connections still open after 5s; closing them"), "{}", node.log());
}

/// A counting pipeline over an unbounded generator into an exactly-once file sink.
fn counting_spec(name: &str, plugin: &str, out: &std::path::Path, rate: u32) -> String {
    format!(
        "name: {name}\n\
         checkpoint:\n  interval: 200ms\n\
         sources:\n  - name: events\n    type: generator\n    seed: 7\n    rate: {rate}\n    keys: 20\n\
         operators:\n  - name: count\n    plugin: {plugin}\n    input: events\n    key_by: key\n    parallelism: 2\n\
         sinks:\n  - name: out\n    type: file\n    path: {}\n    input: count\n",
        out.display()
    )
}

/// What a counting pipeline published: per key, (n, version) in count order;
/// every input id exactly once (ids 0..N, no gap, no duplicate); per key the
/// counts 1..=n without gap or duplicate; versions never going back. Returns
/// the versions seen and the number of records.
fn check_counts(out: &std::path::Path) -> (std::collections::BTreeSet<u64>, usize) {
    let mut ids = Vec::new();
    let mut per_key: std::collections::BTreeMap<String, Vec<(u64, u64)>> = Default::default();
    for line in crate::common::parts(out).into_iter().flatten() {
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
        ids.push(v["id"].as_u64().unwrap());
        per_key.entry(v["key"].as_str().unwrap().to_string()).or_default().push((v["n"].as_u64().unwrap(), v["v"].as_u64().unwrap()));
    }
    ids.sort_unstable();
    let n = ids.len();
    assert!(n > 0, "nothing published in {}", out.display());
    let expected: Vec<u64> = (0..n as u64).collect();
    if ids != expected {
        let dup = ids.windows(2).find(|w| w[0] == w[1]);
        let gap = ids.iter().enumerate().find(|(i, id)| **id != *i as u64);
        panic!("every input exactly once: {n} records, first duplicate {dup:?}, first gap {gap:?}");
    }
    let mut versions = std::collections::BTreeSet::new();
    for (key, mut seen) in per_key {
        seen.sort_unstable();
        for (i, (c, v)) in seen.iter().enumerate() {
            assert_eq!(*c, i as u64 + 1, "key {key}: counts go on without gap or duplicate");
            versions.insert(*v);
            if i > 0 {
                assert!(*v >= seen[i - 1].1, "key {key}: version {v} after {} at count {c}", seen[i - 1].1);
            }
        }
    }
    (versions, n)
}

#[test]
fn pipelines_run_swap_with_state_roll_back_a_broken_version_and_resume_after_a_node_restart() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let node = Node::start_in(dir.clone(), &[]);
    let server = node.url.clone();
    for (v, guest) in [("1", "counter_v1"), ("2", "counter_v2"), ("3", "counter_trap"), ("4", "counter_bad_open")] {
        assert_eq!(node.upload("counter", v, wasm(guest), None).0, 201);
    }
    let counts_out = dir.path().join("counts-out");
    let other_out = dir.path().join("other-out");

    // Bad specs: a plugin that is not in the registry, a plugin file path.
    let (status, body) = node.post("/api/v1/pipelines", counting_spec("counts", "counter@9", &counts_out, 1000));
    assert_eq!(status, 400);
    assert_eq!(
        body["error"],
        "spec:12: operators[0].plugin: plugin counter@9 is not in this node's registry (versions 1, 2, 3, 4); upload it first: POST /api/v1/plugins?name=counter&version=9"
    );
    let (status, body) = node.post("/api/v1/pipelines", counting_spec("counts", "/tmp/x.wasm", &counts_out, 1000));
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("'/tmp/x.wasm' is not a plugin of the registry"), "{body}");
    let (status, body) = node.post("/api/v1/pipelines", "name: x\nsources: 3\n");
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().starts_with("spec:2"), "names the line: {body}");
    assert_eq!(node.json("/api/v1/pipelines"), serde_json::json!([]), "nothing half-stored");

    // Two pipelines; the second must run on untouched by what happens to the first.
    let spec_file = dir.path().join("counts.yaml");
    std::fs::write(&spec_file, counting_spec("counts", "counter@1", &counts_out, 20_000)).unwrap();
    let o = weir(&["pipeline", "create", spec_file.to_str().unwrap(), "--server", &server, "--output", "json"], &[]);
    assert!(o.status.success(), "{}\n{}", stderr(&o), node.log());
    let created: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(created["status"], "running");
    let (status, body) = node.post("/api/v1/pipelines", counting_spec("other", "counter@1", &other_out, 5_000));
    assert_eq!(status, 201, "{body}");
    let (status, body) = node.post("/api/v1/pipelines", counting_spec("other", "counter@1", &other_out, 5_000));
    assert_eq!(status, 409, "{body}");

    let records = |v: &serde_json::Value| v["nodes"].as_array().map_or(0, |n| n.iter().find(|n| n["name"] == "count").unwrap()["records_out"].as_u64().unwrap());
    node.wait_for("/api/v1/pipelines/counts", "v1 to count", |v| records(v) > 5_000 && v["checkpoints"]["completed"].as_u64() > Some(1));
    let other_before = records(&node.json("/api/v1/pipelines/other"));

    // Swap to v2 under load.
    let o = weir(&["swap", "counts", "count", "counter@2", "--probation", "500ms", "--server", &server, "--output", "json"], &[]);
    assert!(o.status.success(), "{}\n{}", stderr(&o), node.log());
    let swapped: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(swapped["swap"]["status"], "switched", "{swapped:#}");
    assert_eq!((swapped["swap"]["from"].as_str(), swapped["swap"]["to"].as_str()), (Some("counter@1"), Some("counter@2")));
    let v = node.wait_for("/api/v1/pipelines/counts", "the swap's confirmation", |v| v["swap"]["status"] == "confirmed");
    assert_eq!(v["plugins"]["count"], "counter@2");
    assert_eq!(v["restarts"], 0);

    // A version whose open fails is refused before anything changes.
    let swap = |plugin: &str| node.send(node.http().post(format!("{}/api/v1/pipelines/counts/operators/count/swap", node.url)).header("content-type", "application/json").body(serde_json::json!({"plugin": plugin, "probation": "10s"}).to_string()));
    let (status, body) = swap("counter@4");
    assert_eq!(status, 422, "{body}");
    let e = body["error"].as_str().unwrap();
    assert!(e.starts_with("counter@4 cannot replace counter@2 in operator 'count': plugin counter@4 failed to open operator 'count'") && e.contains("counter v4 refuses to open") && e.ends_with("nothing changed"), "{e}");
    assert_eq!(swap("counter@9").0, 404);
    assert_eq!(swap("counter@2").0, 409, "already runs it");
    let (status, body) = node.send(node.http().post(format!("{}/api/v1/pipelines/counts/operators/nope/swap", node.url)).header("content-type", "application/json").body(serde_json::json!({"plugin": "counter@1"}).to_string()));
    assert_eq!((status, body["error"].as_str().unwrap()), (404, "pipeline 'counts' has no operator 'nope' (operators: count)"));

    // A version that traps in its probation is rolled back from the swap's checkpoint.
    let (status, body) = swap("counter@3");
    assert_eq!(status, 200, "{body}");
    let v = node.wait_for("/api/v1/pipelines/counts", "the rollback", |v| v["swap"]["status"] == "rolled-back" && v["status"] == "running");
    let reason = v["swap"]["reason"].as_str().unwrap();
    assert!(reason.starts_with("counter@3 was rolled back to counter@2: ") && reason.contains("counter v3 is broken"), "{reason}");
    assert_eq!(v["plugins"]["count"], "counter@2");
    node.wait_for("/api/v1/pipelines/counts", "v2 to count again", |v| records(v) > 2_000);

    // A plugin a pipeline runs cannot be deleted.
    let resp = node.http().delete(format!("{}/api/v1/plugins/counter/2", node.url)).send().unwrap();
    assert_eq!(resp.status().as_u16(), 409);
    assert!(resp.text().unwrap().contains("plugin counter@2 is used by pipeline(s) counts"));

    // Stop with a savepoint; everything published so far is exactly once.
    let o = weir(&["pipeline", "stop", "counts", "--server", &server, "--output", "json"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let stopped: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(stopped["status"], "stopped");
    assert!(stopped["savepoint"].as_str().unwrap().starts_with("stop-"), "{stopped:#}");
    let (versions, n1) = check_counts(&counts_out);
    assert_eq!(versions.into_iter().collect::<Vec<_>>(), [1, 2], "v3's output was never published");
    // The savepoint's output is published, not left staged until a next start.
    let staged: Vec<String> = std::fs::read_dir(&counts_out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".pending"))
        .collect();
    assert!(staged.is_empty(), "staged after the stop: {staged:?}");
    let v = node.json("/api/v1/pipelines/other");
    assert_eq!((v["status"].as_str(), v["restarts"].as_u64()), (Some("running"), Some(0)), "{v:#}");
    assert!(records(&v) > other_before, "the other pipeline went on");
    let ck = node.json("/api/v1/pipelines/counts/checkpoints");
    assert!(ck["savepoints"].as_array().unwrap().iter().any(|s| s == &stopped["savepoint"]), "{ck:#}");
    assert!(ck["checkpoints"][0]["plugins"].as_array().unwrap().iter().any(|p| p == &serde_json::json!(["count", "counter@2"])), "{ck:#}");

    let (_, metrics) = node.get("/metrics");
    assert!(metrics.contains("weir_swaps_total{pipeline=\"counts\",result=\"confirmed\"} 1"), "{metrics}");
    assert!(metrics.contains("weir_swaps_total{pipeline=\"counts\",result=\"rolled-back\"} 1"), "{metrics}");
    assert!(metrics.contains("weir_swaps_total{pipeline=\"counts\",result=\"refused\"} 1"), "{metrics}");
    assert!(metrics.contains("weir_pipeline_failures_total{pipeline=\"counts\",kind=\"trap\"} 1"), "{metrics}");

    // Kill the node; a new one resumes what was running and keeps what was stopped.
    drop(node);
    let node = Node::start_in(dir.clone(), &[]);
    let server = node.url.clone();
    node.wait_for("/api/v1/pipelines/other", "other to resume", |v| v["status"] == "running" && records(v) > 0);
    assert!(node.json("/api/v1/pipelines/other")["resumed_from"].as_str().unwrap().starts_with("chk-"));
    assert_eq!(node.json("/api/v1/pipelines/counts")["status"], "stopped");
    let o = weir(&["pipeline", "start", "counts", "--server", &server], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    node.wait_for("/api/v1/pipelines/counts", "counts to go on", |v| records(v) > 2_000 && v["checkpoints"]["completed"].as_u64() > Some(1));
    let o = weir(&["pipeline", "stop", "counts", "--server", &server], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (versions, n2) = check_counts(&counts_out);
    eprintln!("published exactly once: {n1} records before the node restart, {n2} after");
    assert!(n2 > n1, "counts went on from its savepoint ({n1} -> {n2})");
    assert_eq!(versions.into_iter().collect::<Vec<_>>(), [1, 2]);
    let (_, metrics) = node.get("/metrics");
    assert!(metrics.contains("weir_operator_plugin_info{pipeline=\"counts\",operator=\"count\",plugin=\"counter@2\"} 1"), "{metrics}");
    for family in ["weir_node_records_in_total", "weir_node_bytes_out_total", "weir_node_batches_in_total", "weir_node_busy_seconds_total"] {
        assert!(metrics.contains(&format!("{family}{{pipeline=\"other\",node=\"count\",task=\"1\"}} ")), "{family}: {metrics}");
    }
    assert!(metrics.contains("weir_pipeline_up{pipeline=\"other\",status=\"running\"} 1"), "{metrics}");
    assert!(metrics.contains("weir_pipeline_up{pipeline=\"counts\",status=\"stopped\"} 0"), "{metrics}");
    let other = node.json("/api/v1/pipelines/other");
    let count = other["nodes"].as_array().unwrap().iter().find(|n| n["name"] == "count").unwrap();
    assert!(count["backlog"].is_u64() && count["bytes_in"].as_u64() > Some(0), "{other:#}");
    let o = weir(&["pipeline", "stop", "other", "--server", &server], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    check_counts(&other_out);
    let o = weir(&["pipeline", "delete", "counts", "--server", &server], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(node.get("/api/v1/pipelines/counts").0, 404);
    assert!(!dir.path().join("data/pipelines/counts").exists());
}

#[test]
fn a_swap_carries_rocksdb_state_over() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let node = Node::start_in(dir.clone(), &[]);
    for (v, guest) in [("1", "counter_v1"), ("2", "counter_v2")] {
        assert_eq!(node.upload("counter", v, wasm(guest), None).0, 201);
    }
    let out = dir.path().join("out");
    let spec = counting_spec("rocks", "counter@1", &out, 20_000).replace("checkpoint:\n", "state:\n  backend: rocksdb\ncheckpoint:\n");
    let (status, body) = node.post("/api/v1/pipelines", spec);
    assert_eq!(status, 201, "{body}");
    let records = |v: &serde_json::Value| v["nodes"].as_array().map_or(0, |n| n.iter().find(|n| n["name"] == "count").unwrap()["records_out"].as_u64().unwrap());
    node.wait_for("/api/v1/pipelines/rocks", "v1 to count", |v| records(v) > 3_000);
    let (status, body) = node.send(
        node.http()
            .post(format!("{}/api/v1/pipelines/rocks/operators/count/swap", node.url))
            .header("content-type", "application/json")
            .body(r#"{"plugin": "counter@2", "probation": "300ms"}"#),
    );
    assert_eq!((status, body["swap"]["status"].as_str()), (200, Some("switched")), "{body}");
    node.wait_for("/api/v1/pipelines/rocks", "the confirmation", |v| v["swap"]["status"] == "confirmed" && records(v) > 6_000);
    assert_eq!(node.post("/api/v1/pipelines/rocks/stop", "").0, 200);
    let (versions, _) = check_counts(&out);
    assert_eq!(versions.into_iter().collect::<Vec<_>>(), [1, 2]);
}

#[test]
fn a_window_operator_swaps_its_window_function_and_keeps_its_windows() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let node = Node::start_in(dir.clone(), &[]);
    assert_eq!(node.upload("window-count", "1", wasm("window_count"), None).0, 201);
    assert_eq!(node.upload("window-count", "2", wasm("window_count_v2"), None).0, 201);
    assert_eq!(node.upload("counter", "1", wasm("counter_v1"), None).0, 201);
    let out = dir.path().join("out");
    let spec = format!(
        "name: windows\n\
         checkpoint:\n  interval: 200ms\n\
         sources:\n  - name: events\n    type: generator\n    seed: 3\n    rate: 20000\n    keys: 10\n    timestamp: $.ts\n    watermark: {{strategy: monotonic}}\n\
         operators:\n  - name: per-second\n    plugin: window-count@1\n    input: events\n    key_by: key\n    parallelism: 2\n    window: {{type: tumbling, size: 1s}}\n\
         sinks:\n  - name: out\n    type: file\n    path: {}\n    input: per-second\n",
        out.display()
    );
    let (status, body) = node.post("/api/v1/pipelines", spec);
    assert_eq!(status, 201, "{body}");
    let records = |v: &serde_json::Value| v["nodes"].as_array().map_or(0, |n| n.iter().find(|n| n["name"] == "per-second").unwrap()["records_out"].as_u64().unwrap());
    node.wait_for("/api/v1/pipelines/windows", "windows to fire", |v| records(v) > 100);
    let swap = |plugin: &str| {
        node.send(
            node.http()
                .post(format!("{}/api/v1/pipelines/windows/operators/per-second/swap", node.url))
                .header("content-type", "application/json")
                .body(serde_json::json!({"plugin": plugin, "probation": "300ms"}).to_string()),
        )
    };
    let (status, body) = swap("counter@1");
    assert_eq!(status, 422, "a stream operator cannot replace a window function: {body}");
    assert!(body["error"].as_str().unwrap().contains("needs a window function"), "{body}");
    let (status, body) = swap("window-count@2");
    assert_eq!((status, body["swap"]["status"].as_str()), (200, Some("switched")), "{body}");
    node.wait_for("/api/v1/pipelines/windows", "the confirmation", |v| v["swap"]["status"] == "confirmed" && records(v) > 300);
    assert_eq!(node.post("/api/v1/pipelines/windows/stop", "").0, 200);

    // Every published window holds exactly the generator's events of its key
    // and second, whichever version fired it; none is missing or repeated.
    let generator = weir_connectors::GeneratorSpec { seed: 3, count: None, rate: Some(20000.0), keys: 10, ..Default::default() };
    let (mut key, mut value) = (Vec::new(), Vec::new());
    let mut windows: std::collections::BTreeMap<(String, i64), (u64, u64)> = Default::default();
    for line in crate::common::parts(&out).into_iter().flatten() {
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let id = (v["key"].as_str().unwrap().to_string(), v["start"].as_i64().unwrap());
        let version = v["v"].as_u64().unwrap_or(1);
        assert!(windows.insert(id.clone(), (v["count"].as_u64().unwrap(), version)).is_none(), "{id:?} published twice");
    }
    let mut versions = std::collections::BTreeSet::new();
    let mut last: std::collections::BTreeMap<&str, (i64, u64)> = Default::default();
    for ((k, start), (count, version)) in &windows {
        let expected = (start - generator.start_ms..start - generator.start_ms + 1000)
            .filter(|&n| {
                generator.event(n as u64, &mut key, &mut value);
                key == k.as_bytes()
            })
            .count() as u64;
        assert_eq!(*count, expected, "window {k} at {start} (v{version})");
        if let Some((prev, prev_version)) = last.insert(k, (*start, *version)) {
            assert_eq!(*start, prev + 1000, "key {k}: no window missing");
            assert!(*version >= prev_version, "key {k}: versions never go back");
        }
        versions.insert(*version);
    }
    assert_eq!(versions.into_iter().collect::<Vec<_>>(), [1, 2], "both versions fired windows");
}

/// Rewrite the JSON file at `path` with `f`.
fn edit_json(path: &std::path::Path, f: impl FnOnce(&mut serde_json::Value)) {
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

#[test]
fn failures_that_may_pass_are_retried_with_back_off_and_others_stay_failed() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let node = Node::start_in(dir.clone(), &[]);
    assert_eq!(node.upload("counter", "1", wasm("counter_v1"), None).0, 201);
    assert_eq!(node.upload("other", "1", wasm("counter_v1"), None).0, 201);
    let out = dir.path().join("out-flaky");
    for (id, plugin, out) in [("flaky", "counter@1", out.clone()), ("orphan", "other@1", dir.path().join("o")), ("garbled", "counter@1", dir.path().join("g"))] {
        let (status, body) = node.post("/api/v1/pipelines", counting_spec(id, plugin, &out, 2_000));
        assert_eq!(status, 201, "{body}");
    }
    node.wait_for("/api/v1/pipelines/flaky", "checkpoints", |v| v["checkpoints"]["completed"].as_u64() > Some(2));
    drop(node);

    // While the node is down: flaky's output directory becomes a file (an
    // I/O error that can pass), orphan's plugin leaves the registry, and
    // garbled's spec stops parsing.
    let data = dir.path().join("data");
    std::fs::rename(&out, dir.path().join("out-flaky.kept")).unwrap();
    std::fs::write(&out, "in the way").unwrap();
    edit_json(&data.join("plugins/index.json"), |v| drop(v.as_object_mut().unwrap().remove("other")));
    edit_json(&data.join("pipelines/garbled/pipeline.json"), |v| v["spec"] = "name: garbled\nsources: [".into());

    let node = Node::start_in(dir.clone(), &[]);
    let v = node.wait_for("/api/v1/pipelines/flaky", "a second retry", |v| v["retry"]["attempt"].as_u64() >= Some(2));
    assert_eq!(v["status"], "restarting", "{v:#}");
    let error = v["error"].as_str().unwrap();
    assert!(error.contains(&format!("cannot create output directory {}: File exists (os error 17)", out.display())), "{error}");
    let backoff = v["retry"]["backoff_s"].as_f64().unwrap();
    let attempt = v["retry"]["attempt"].as_u64().unwrap();
    assert_eq!(backoff, 0.5 * f64::from(1 << (attempt - 1)), "{v:#}");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let next = v["retry"]["next_retry_ms"].as_i64().unwrap();
    assert!(next > now - 1_000 && next <= now + (backoff * 1e3) as i64 + 1_000, "next retry at {next}, now {now}");
    for (id, message) in [
        ("orphan", "spec:12: operators[0].plugin: plugin other@1 is not in this node's registry (no versions); upload it first: POST /api/v1/plugins?name=other&version=1"),
        ("garbled", "spec:3:1: invalid YAML: "),
    ] {
        let v = node.wait_for(&format!("/api/v1/pipelines/{id}"), "failed", |v| v["status"] == "failed");
        assert!(v["error"].as_str().unwrap().starts_with(message), "{id}: {v:#}");
        assert!(v.get("retry").is_none(), "{id} is not retried: {v:#}");
    }
    let o = weir(&["pipeline", "show", "flaky", "--server", &node.url], &[]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("  retry: attempt "), "{}", String::from_utf8_lossy(&o.stdout));

    // Once the directory is back, the next attempt runs, from its checkpoint.
    std::fs::remove_file(&out).unwrap();
    std::fs::rename(dir.path().join("out-flaky.kept"), &out).unwrap();
    let v = node.wait_for("/api/v1/pipelines/flaky", "flaky to run", |v| v["status"] == "running" && counted(v) > 0);
    assert!(v.get("retry").is_none() && v["error"].is_null(), "{v:#}");
    assert!(v["resumed_from"].as_str().unwrap().starts_with("chk-"), "{v:#}");
    assert!(node.log().contains("pipeline 'flaky' cannot start: "), "{}", node.log());
    node.wait_for("/api/v1/pipelines/flaky", "a checkpoint", |v| v["checkpoints"]["completed"].as_u64() > Some(1));
    assert_eq!(node.post("/api/v1/pipelines/flaky/stop", "").0, 200);
    check_counts(&out);
}

#[test]
fn finished_pipelines_stay_finished_and_damaged_files_are_skipped() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let node = Node::start_in(dir.clone(), &[]);
    assert_eq!(node.upload("counter", "1", wasm("counter_v1"), None).0, 201);
    let bounded_out = dir.path().join("bounded-out");
    let bounded = counting_spec("bounded", "counter@1", &bounded_out, 1).replace("    rate: 1\n", "    count: 3000\n");
    let (status, body) = node.post("/api/v1/pipelines", bounded);
    assert_eq!(status, 201, "{body}");
    for id in ["steady", "victim"] {
        let (status, body) = node.post("/api/v1/pipelines", counting_spec(id, "counter@1", &dir.path().join(id), 2_000));
        assert_eq!(status, 201, "{body}");
    }
    node.wait_for("/api/v1/pipelines/bounded", "bounded to finish", |v| v["status"] == "finished");
    node.wait_for("/api/v1/pipelines/steady", "records", |v| counted(v) > 100);
    let (_, n) = check_counts(&bounded_out);
    assert_eq!(n, 3000);
    let output = |d: &std::path::Path| {
        let mut v: Vec<_> = std::fs::read_dir(d).unwrap().flatten().map(|e| (e.file_name(), e.metadata().unwrap().modified().unwrap())).collect();
        v.sort();
        v
    };
    let published = output(&bounded_out);
    drop(node);

    let data = dir.path().join("data");
    let victim = data.join("pipelines/victim/pipeline.json");
    std::fs::write(&victim, "{not json").unwrap();
    let node = Node::start_in(dir.clone(), &[]);
    node.wait_for("/api/v1/pipelines/steady", "steady to resume", |v| v["status"] == "running" && counted(v) > 0);
    let why = format!("{} cannot be read: key must be a string at line 1 column 2", victim.display());
    let list = node.json("/api/v1/pipelines");
    let listed = |id: &str| list.as_array().unwrap().iter().find(|p| p["id"] == id).cloned().unwrap();
    assert_eq!((listed("victim")["status"].as_str(), listed("victim")["error"].as_str()), (Some("damaged"), Some(why.as_str())), "{list:#}");
    assert_eq!(listed("bounded")["status"], "finished", "a finished pipeline stays finished: {list:#}");
    assert!(node.log().contains(&format!("skipping a pipeline: {why}")), "{}", node.log());
    let (status, body) = node.post("/api/v1/pipelines/victim/start", "");
    assert_eq!(status, 409);
    assert_eq!(body["error"].as_str().unwrap(), format!("pipeline 'victim' is damaged: {why}; fix the file and restart the node, or delete the pipeline"));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "{not json", "a damaged file is left as it is");
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(output(&bounded_out), published, "the finished pipeline did not run again");
    assert_eq!(node.send(node.http().delete(format!("{}/api/v1/pipelines/victim", node.url))).0, 200);
    assert!(!victim.exists());
    drop(node);

    // A damaged plugin index: the node starts with an empty registry and keeps the file.
    let index = data.join("plugins/index.json");
    std::fs::write(&index, "[1, 2").unwrap();
    let node = Node::start_in(dir.clone(), &[]);
    assert_eq!(node.get("/api/v1/plugins"), (200, "[]".into()));
    let kept: Vec<_> = std::fs::read_dir(data.join("plugins")).unwrap().flatten().map(|e| e.path()).filter(|p| p.to_string_lossy().contains("index.json.damaged-")).collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(std::fs::read_to_string(&kept[0]).unwrap(), "[1, 2");
    assert!(node.log().contains(&format!("the plugin index {} cannot be read", index.display())) && node.log().contains(&format!("it was moved to {} and the registry starts empty", kept[0].display())), "{}", node.log());
    let v = node.wait_for("/api/v1/pipelines/steady", "steady to fail", |v| v["status"] == "failed");
    assert!(v["error"].as_str().unwrap().contains("plugin counter@1 is not in this node's registry"), "{v:#}");
    assert_eq!(node.upload("counter", "1", wasm("counter_v1"), None).0, 201, "uploads write a new index");
    assert_eq!(std::fs::read_to_string(&kept[0]).unwrap(), "[1, 2");
    assert_eq!(node.post("/api/v1/pipelines/steady/start", "").0, 200);
}

#[test]
fn a_swap_in_probation_when_the_node_is_killed_is_rolled_back_and_says_so() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let node = Node::start_in(dir.clone(), &[]);
    for (v, guest) in [("1", "counter_v1"), ("2", "counter_v2")] {
        assert_eq!(node.upload("counter", v, wasm(guest), None).0, 201);
    }
    let out = dir.path().join("out");
    let (status, body) = node.post("/api/v1/pipelines", counting_spec("counts", "counter@1", &out, 5_000));
    assert_eq!(status, 201, "{body}");
    node.wait_for("/api/v1/pipelines/counts", "checkpoints", |v| v["checkpoints"]["completed"].as_u64() > Some(1));
    let (status, body) = node.send(
        node.http()
            .post(format!("{}/api/v1/pipelines/counts/operators/count/swap", node.url))
            .header("content-type", "application/json")
            .body(r#"{"plugin": "counter@2", "probation": "1h"}"#),
    );
    assert_eq!((status, body["swap"]["status"].as_str()), (200, Some("switched")), "{body}");
    let stored = dir.path().join("data/pipelines/counts/pipeline.json");
    let record: serde_json::Value = serde_json::from_slice(&std::fs::read(&stored).unwrap()).unwrap();
    assert_eq!((record["swap"]["status"].as_str(), record["swap"]["to"].as_str()), (Some("switched"), Some("counter@2")), "{record:#}");
    node.wait_for("/api/v1/pipelines/counts", "v2 to count", |v| counted(v) > 0);
    drop(node); // SIGKILL, during the probation

    let node = Node::start_in(dir.clone(), &[]);
    let v = node.wait_for("/api/v1/pipelines/counts", "the resumed run", |v| v["status"] == "running" && v["swap"]["reason"].is_string());
    let resumed = v["resumed_from"].as_str().unwrap();
    let reason = format!("the node stopped during the swap's probation; the pipeline resumed from checkpoint {resumed} with counter@1");
    assert_eq!((v["swap"]["status"].as_str(), v["swap"]["reason"].as_str()), (Some("rolled-back"), Some(reason.as_str())), "{v:#}");
    assert_eq!(v["plugins"]["count"], "counter@1");
    assert!(node.log().contains(&format!("pipeline 'counts': the swap of 'count' to counter@2 was rolled back: {reason}")), "{}", node.log());
    let record: serde_json::Value = serde_json::from_slice(&std::fs::read(&stored).unwrap()).unwrap();
    assert!(record.get("swap").is_none(), "forgotten once reported: {record:#}");
    let (_, metrics) = node.get("/metrics");
    assert!(metrics.contains("weir_swaps_total{pipeline=\"counts\",result=\"rolled-back\"} 1"), "{metrics}");
    node.wait_for("/api/v1/pipelines/counts", "checkpoints", |v| v["checkpoints"]["completed"].as_u64() > Some(1));
    assert_eq!(node.post("/api/v1/pipelines/counts/stop", "").0, 200);
    let (versions, _) = check_counts(&out);
    assert_eq!(versions.into_iter().collect::<Vec<_>>(), [1], "v2's probation output was never published");
}

#[test]
fn a_pipeline_whose_checkpoints_are_all_damaged_waits_for_a_fresh_start() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let node = Node::start_in(dir.clone(), &[]);
    assert_eq!(node.upload("counter", "1", wasm("counter_v1"), None).0, 201);
    let out = dir.path().join("out");
    let (status, body) = node.post("/api/v1/pipelines", counting_spec("counts", "counter@1", &out, 5_000));
    assert_eq!(status, 201, "{body}");
    node.wait_for("/api/v1/pipelines/counts", "checkpoints", |v| v["checkpoints"]["completed"].as_u64() > Some(2));
    drop(node);
    let checkpoints = dir.path().join("data/pipelines/counts/state/checkpoints");
    let mut damaged = 0;
    for c in std::fs::read_dir(&checkpoints).unwrap().flatten() {
        let manifest = c.path().join("_manifest.json");
        if manifest.exists() {
            std::fs::write(&manifest, "garbage").unwrap();
            damaged += 1;
        }
    }
    assert!(damaged > 0);
    let published = crate::common::parts(&out);

    let node = Node::start_in(dir.clone(), &[]);
    let v = node.wait_for("/api/v1/pipelines/counts", "counts to fail", |v| v["status"] == "failed");
    let error = v["error"].as_str().unwrap();
    assert!(error.contains(&format!("none of the checkpoints of pipeline 'counts' in {} can be resumed from: chk-", checkpoints.parent().unwrap().display())), "{error}");
    assert!(error.contains(": unreadable manifest: expected value at line 1 column 1;"), "{error}");
    assert!(error.ends_with("or on a node POST /api/v1/pipelines/counts/start?fresh=true"), "{error}");
    assert!(v.get("retry").is_none(), "{v:#}");
    assert_eq!(crate::common::parts(&out), published, "the published output is untouched");
    let (status, body) = node.post("/api/v1/pipelines/counts/start", "");
    assert_eq!((status, body["error"].as_str()), (400, Some(error)), "{body}");
    let (status, body) = node.post("/api/v1/pipelines/counts/start?fresh=maybe", "");
    assert_eq!(status, 400, "{body}");
    let o = weir(&["pipeline", "start", "counts", "--fresh", "--server", &node.url, "--output", "json"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((v["status"].as_str(), v["resumed_from"].as_str()), (Some("running"), None), "{v:#}");
}

#[test]
fn specs_sent_to_a_node_read_and_write_only_under_its_allowed_directories() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let extra = dir.path().join("shared");
    std::fs::create_dir_all(&extra).unwrap();
    // Allowed: the data directory (always) and `shared`; not the rest of `dir`.
    let node = Node::start_in(dir.clone(), &["--allow-path", extra.to_str().unwrap()]);
    let data = dir.path().join("data");
    std::os::unix::fs::symlink("/etc", data.join("etc-link")).unwrap();
    let spec = |source: &str, sink: &std::path::Path, more: &str| {
        format!(
            "name: paths\n{more}sources:\n  - name: in\n    type: file\n    path: {source}\n\
             sinks:\n  - name: out\n    type: file\n    path: {}\n    input: in\n",
            sink.display()
        )
    };
    let refused = |text: String, expected: &str| {
        let (status, body) = node.post("/api/v1/pipelines", text);
        assert_eq!(status, 400, "{body}");
        let e = body["error"].as_str().unwrap();
        assert!(e.contains(expected), "expected '{expected}' in: {e}");
        assert!(e.contains("is outside the directories specs may use on this node") || e.contains("not allowed in a spec sent to a node"), "{e}");
    };
    let out = data.join("out");
    refused(spec("/etc/passwd", &out, ""), "sources[0].path: '/etc/passwd' is outside the directories specs may use on this node (");
    let (_, body) = node.post("/api/v1/pipelines", spec("/etc/passwd", &out, ""));
    assert!(body["error"].as_str().unwrap().starts_with("spec:5:"), "names the line of the path: {body}");
    refused(spec(&format!("{}/etc-link/passwd", data.display()), &out, ""), "(that is /etc/passwd)");
    let escape = data.join("../elsewhere");
    refused(spec("/etc/hostname", &escape, ""), "sources[0].path");
    std::fs::write(data.join("in.txt"), "a\nb\n").unwrap();
    let input = data.join("in.txt");
    let input = input.to_str().unwrap();
    let e = {
        let (status, body) = node.post("/api/v1/pipelines", spec(input, &escape, ""));
        assert_eq!(status, 400, "{body}");
        body["error"].as_str().unwrap().to_string()
    };
    let real = dir.path().canonicalize().unwrap().join("elsewhere");
    assert!(e.contains("sinks[0].path: '") && e.contains(&format!("(that is {})", real.display())), "{e}");
    refused(spec(input, &out, "state:\n  dir: /var/tmp/weir-state\n"), "state.dir: '/var/tmp/weir-state' is outside");
    let kafka = |prop: &str| {
        format!(
            "name: k\nsources:\n  - name: in\n    type: kafka\n    bootstrap: 127.0.0.1:1\n    topic: t\n    properties:\n      {prop}\n\
             sinks:\n  - name: out\n    type: file\n    path: {}\n    input: in\n",
            out.display()
        )
    };
    refused(kafka("ssl.ca.location: /etc/ssl/certs/ca-certificates.crt"), "sources[0].properties.ssl.ca.location: '/etc/ssl/certs/ca-certificates.crt' is outside");
    refused(kafka("plugin.library.paths: /tmp/evil.so"), "sources[0].properties.plugin.library.paths: runs a command or loads a library");
    assert_eq!(node.json("/api/v1/pipelines"), serde_json::json!([]), "nothing stored");

    // Inside the data directory and the allowed one, the same spec runs.
    let shared_out = extra.join("out");
    let (status, body) = node.post("/api/v1/pipelines", spec(input, &shared_out, ""));
    assert_eq!(status, 201, "{body}\n{}", node.log());
    node.wait_for("/api/v1/pipelines/paths", "the pipeline to finish", |v| v["status"] == "finished");
    let lines: Vec<String> = crate::common::parts(&shared_out).into_iter().flatten().collect();
    assert_eq!(lines, ["\"a\"", "\"b\""]);
}
