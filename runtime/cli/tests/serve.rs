//! `weir serve` end to end: a real node on a loopback port, driven over HTTP
//! and with `weir plugin ...`.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

use common::{stderr, weir};
use weir_test_support::fixture;

struct Node {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Node {
    fn start(extra: &[&str]) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut args = vec!["serve", "--addr", "127.0.0.1:0", "--data-dir", data.to_str().unwrap()];
        args.extend_from_slice(extra);
        let mut child = common::weir_cmd(&args, &[]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.split_whitespace().find(|w| w.starts_with("http://")).unwrap_or_else(|| panic!("{line}")).to_string();
        Node { child, url, dir }
    }

    fn http(&self) -> reqwest::blocking::Client {
        reqwest::blocking::Client::new()
    }

    fn upload(&self, name: &str, version: &str, body: Vec<u8>, token: Option<&str>) -> (u16, serde_json::Value) {
        let mut req = self.http().post(format!("{}/api/v1/plugins", self.url)).query(&[("name", name), ("version", version)]).body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().unwrap();
        (resp.status().as_u16(), serde_json::from_str(&resp.text().unwrap()).unwrap())
    }

    fn get(&self, path: &str) -> (u16, String) {
        let resp = self.http().get(format!("{}{path}", self.url)).send().unwrap();
        (resp.status().as_u16(), resp.text().unwrap())
    }

    fn stored_blobs(&self) -> usize {
        std::fs::read_dir(self.dir.path().join("data/plugins/sha256")).map(|r| r.count()).unwrap_or(0)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wasm(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap()
}

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
fn a_token_guards_every_mutation_and_the_api_describes_itself() {
    let node = Node::start(&["--token", "s3cret"]);
    let (status, body) = node.upload("word-count", "1", wasm("word_count"), None);
    assert_eq!(status, 401);
    assert_eq!(body["error"], "this request needs the node's token: Authorization: Bearer <token>");
    assert_eq!(node.upload("word-count", "1", wasm("word_count"), Some("wrong")).0, 401);
    let (status, body) = node.upload("word-count", "1", wasm("word_count"), Some("s3cret"));
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["world"], "weir:operator/operator@0.1.0");
    let resp = node.http().delete(format!("{}/api/v1/plugins/word-count/1", node.url)).send().unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(node.get("/api/v1/plugins").0, 200, "reading needs no token");
    let (_, metrics) = node.get("/metrics");
    assert!(metrics.contains("weir_plugins 1\n") && metrics.contains("weir_plugin_uploads_total 1\n"), "{metrics}");

    let (status, doc) = node.get("/api/v1/openapi.json");
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_str(&doc).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for path in ["/api/v1/plugins", "/api/v1/plugins/{name}", "/api/v1/plugins/{name}/{version}", "/metrics"] {
        assert!(doc["paths"].get(path).is_some(), "{path} is documented");
    }
}
