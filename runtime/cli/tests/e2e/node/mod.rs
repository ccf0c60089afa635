//! A real `weir serve` node for integration tests: started on a loopback port
//! with its data and log in a temporary directory, driven over HTTP(S) with
//! its token, killed (SIGKILL) when dropped. Shared by the node tests (serve, schemathesis).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Node {
    pub child: Child,
    pub url: String,
    pub dir: Arc<tempfile::TempDir>,
    /// Sent as `Authorization: Bearer` by `http()`.
    pub token: Option<String>,
    /// A CA certificate (PEM) `http()` trusts, for a node with TLS.
    pub root: Option<Vec<u8>>,
}

impl Node {
    pub fn start(extra: &[&str]) -> Node {
        Node::start_in(Arc::new(tempfile::tempdir().unwrap()), extra)
    }

    /// A node with its data in `dir/data` and its log in `dir/node-<n>.log`;
    /// `--token T` among `extra` makes `http()` send it; `--addr` among them
    /// replaces `127.0.0.1:0`.
    pub fn start_in(dir: Arc<tempfile::TempDir>, extra: &[&str]) -> Node {
        let data = dir.path().join("data");
        let logs = std::fs::read_dir(dir.path()).unwrap().filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".log")).count();
        let log = std::fs::File::create(dir.path().join(format!("node-{logs}.log"))).unwrap();
        let mut args = vec!["serve", "--data-dir", data.to_str().unwrap()];
        if !extra.contains(&"--addr") {
            args.extend(["--addr", "127.0.0.1:0"]);
        }
        // Specs may use the test's directory (outputs beside the data),
        // unless the test says what is allowed.
        if !extra.contains(&"--allow-path") {
            args.extend(["--allow-path", dir.path().to_str().unwrap()]);
        }
        args.extend_from_slice(extra);
        let token = extra.iter().position(|a| *a == "--token").map(|i| extra[i + 1].to_string());
        let mut child = crate::common::weir_cmd(&args, &[("RUST_LOG", "info")]).stdout(Stdio::piped()).stderr(log).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let mut node = Node { child, url: String::new(), dir, token, root: None };
        let url = line.split_whitespace().find(|w| w.starts_with("http://") || w.starts_with("https://"));
        node.url = url.unwrap_or_else(|| panic!("the node did not start: {line}\n{}", node.log())).to_string();
        node
    }

    pub fn log(&self) -> String {
        let mut out = String::new();
        for e in std::fs::read_dir(self.dir.path()).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "log") {
                out += &format!("--- {}\n{}", p.display(), std::fs::read_to_string(&p).unwrap_or_default());
            }
        }
        out
    }

    /// The node's address, `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        self.url.rsplit('/').next().unwrap().to_string()
    }

    pub fn send(&self, req: reqwest::blocking::RequestBuilder) -> (u16, serde_json::Value) {
        let resp = req.send().unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().unwrap();
        (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}")))
    }

    pub fn post(&self, path: &str, body: impl Into<reqwest::blocking::Body>) -> (u16, serde_json::Value) {
        self.send(self.http().post(format!("{}{path}", self.url)).body(body))
    }

    pub fn json(&self, path: &str) -> serde_json::Value {
        let (status, text) = self.get(path);
        assert_eq!(status, 200, "{path}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// Poll `path` until `done` holds for its JSON (at most 60 s).
    pub fn wait_for(&self, path: &str, what: &str, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let v = self.json(path);
            if done(&v) {
                return v;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}: {v:#}\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A client that sends the node's token (and trusts its TLS root).
    pub fn http(&self) -> reqwest::blocking::Client {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(t) = &self.token {
            headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {t}").parse().unwrap());
        }
        let mut b = reqwest::blocking::Client::builder().default_headers(headers);
        if let Some(pem) = &self.root {
            b = b.use_rustls_tls().add_root_certificate(reqwest::Certificate::from_pem(pem).unwrap());
        }
        b.build().unwrap()
    }

    /// A client without the token.
    pub fn anonymous(&self) -> reqwest::blocking::Client {
        reqwest::blocking::Client::new()
    }

    pub fn upload(&self, name: &str, version: &str, body: Vec<u8>, token: Option<&str>) -> (u16, serde_json::Value) {
        let client = if token.is_some() { self.anonymous() } else { self.http() };
        let mut req = client.post(format!("{}/api/v1/plugins", self.url)).query(&[("name", name), ("version", version)]).body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().unwrap();
        (resp.status().as_u16(), serde_json::from_str(&resp.text().unwrap()).unwrap())
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        let resp = self.http().get(format!("{}{path}", self.url)).send().unwrap();
        (resp.status().as_u16(), resp.text().unwrap())
    }

    pub fn stored_blobs(&self) -> usize {
        std::fs::read_dir(self.dir.path().join("data/plugins/sha256")).map(|r| r.count()).unwrap_or(0)
    }

    /// SIGINT, then how long the node took to exit (it is killed after 30 s).
    pub fn interrupt(&mut self) -> Duration {
        let t = Instant::now();
        let pid = self.child.id().to_string();
        assert!(std::process::Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
        while t.elapsed() < Duration::from_secs(30) {
            if self.child.try_wait().unwrap().is_some() {
                return t.elapsed();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        t.elapsed()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn wasm(name: &str) -> Vec<u8> {
    std::fs::read(weir_test_support::fixture(name)).unwrap()
}
