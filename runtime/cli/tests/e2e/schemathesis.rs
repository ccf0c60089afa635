//! The node's API against its own OpenAPI document, checked by schemathesis
//! (property-based API testing, from PyPI): installed once into
//! `$CARGO_TARGET_DIR/pytools-schemathesis`, run against a node on a loopback
//! port with a token, a bounded number of examples per operation. It fails
//! with schemathesis's report if a response is a server error or does not
//! match the document (status code, content type, body schema).


use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::node::{wasm, Node};

const VERSION: &str = "4.3.18";
/// hypothesis-jsonschema (which schemathesis uses) needs an internal API
/// that later hypothesis versions dropped.
const HYPOTHESIS: &str = "6.131.0";

/// Where schemathesis is installed (installing it if it is not).
fn schemathesis() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| weir_test_support::root().join("target"));
    let dir = target.join("pytools-schemathesis");
    let installed = |p: &str, v: &str| dir.join(format!("{p}-{v}.dist-info")).exists();
    if !installed("schemathesis", VERSION) || !installed("hypothesis", HYPOTHESIS) {
        let _ = std::fs::remove_dir_all(&dir);
        let mut cmd = Command::new("python3");
        cmd.args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target"]).arg(&dir).arg(format!("schemathesis=={VERSION}")).arg(format!("hypothesis=={HYPOTHESIS}"));
        let o = cmd.output().expect("python3 runs");
        assert!(o.status.success(), "cannot install schemathesis: {cmd:?} failed:\n{}", String::from_utf8_lossy(&o.stderr));
    }
    dir
}

#[test]
fn the_api_answers_as_its_openapi_document_says() {
    let tools = schemathesis();
    let node = Node::start(&["--token", "schemathesis-token"]);
    assert_eq!(node.upload("word-count", "1.0.0", wasm("word_count"), None).0, 201);
    let work = tempfile::tempdir().unwrap();
    let (status, doc) = node.get("/api/v1/openapi.json");
    assert_eq!(status, 200);
    let schema = work.path().join("openapi.json");
    std::fs::write(&schema, doc).unwrap();
    let report = work.path().join("report.txt");
    let mut cmd = Command::new("python3");
    cmd.env("PYTHONPATH", &tools)
        .env("NO_COLOR", "1")
        .current_dir(work.path())
        .args(["-m", "schemathesis.cli", "run"])
        .arg(&schema)
        .args(["--url", &node.url])
        .args(["--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"])
        .args(["--max-examples", "30", "--seed", "7", "--workers", "2", "--request-timeout", "20"])
        .args(["--generation-database", "none", "--no-color"])
        // Server-sent event streams do not end: request and response checks do not fit them.
        .args(["--exclude-path-regex", "/events$"])
        .args(["--header", "Authorization: Bearer schemathesis-token"])
        .stdout(std::fs::File::create(&report).unwrap())
        .stderr(Stdio::inherit());
    let mut child = cmd.spawn().expect("python3 runs");
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if t.elapsed() > Duration::from_secs(150) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = std::fs::read_to_string(&report).unwrap_or_default();
    eprintln!("schemathesis took {:?}", t.elapsed());
    assert!(status.is_some(), "schemathesis did not finish within 150 s:\n{out}");
    assert!(status.unwrap().success(), "schemathesis found problems:\n{out}\n{}", node.log());
    drop(node);
}
