//! Spec parsing, interpolation, validation and planning, with the exact
//! errors a user sees.

use std::sync::Arc;

use weir_connectors::{FileSinkConfig, GeneratorSpec};
use weir_engine::KeySelector;
use weir_spec::{Extensions, PipelineSpec, Planned, Registry, SpecError};
use weir_test_support::{fixture, root};
use weir_wasm::{LoaderConfig, PluginFiles, PluginLoader, Plugins, WasmConfig};

/// What `weir` registers (the built-in connectors and the Wasm operator kind).
fn registry() -> Registry {
    let mut r = Registry::new();
    weir_connectors::register(&mut r);
    weir_wasm::register(&mut r);
    r
}

fn parse(text: &str, file: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<PipelineSpec, SpecError> {
    weir_spec::parse(text, file, env, &registry())
}

/// Plugins from files, as `weir run` plans.
fn plan(spec: &PipelineSpec) -> Result<Planned, SpecError> {
    let mut x = Extensions::default();
    x.insert(Plugins(Arc::new(PluginFiles::new(PluginLoader::new(LoaderConfig::default()).unwrap()))));
    weir_spec::plan(spec, &registry(), x)
}

fn wasm(n: &weir_spec::NodeDef) -> WasmConfig {
    n.config().expect("a wasm operator's config")
}

fn env(name: &str) -> Option<String> {
    match name {
        "PAR" => Some("3".into()),
        "PLUGINS" => Some(weir_test_support::plugin_dir().display().to_string()),
        _ => None,
    }
}

fn ok(text: &str) -> PipelineSpec {
    parse(text, "p.yaml", &env).unwrap_or_else(|e| panic!("{e}"))
}

fn err(text: &str) -> String {
    parse(text, "p.yaml", &env).map(|_| ()).expect_err("an error").to_string()
}

const GOOD: &str = r#"
name: demo
batch: { size: 256, timeout: 2ms }
sources:
  - name: events
    type: generator
    count: 10
    seed: 7
operators:
  - name: count
    plugin: ${PLUGINS}/word_count.wasm
    input: split
    key_by: key
    parallelism: ${PAR:1}
    limits: { memory: 16MiB, call_timeout: 250ms }
  - name: split
    plugin: ${PLUGINS}/word_count.wasm
    input: events
    key_by: $.user.id
    config: { stage: tokenize, n: 5 }
sinks:
  - name: out
    type: file
    path: ${OUT_DIR:out/demo}
    input: count
  - name: dups
    type: stdout
    inputs: [split, count]
"#;

#[test]
fn a_valid_spec_is_interpolated_checked_and_ordered() {
    let s = ok(GOOD);
    assert_eq!(s.name, "demo");
    assert_eq!(s.engine.batch_size, 256);
    assert_eq!(s.engine.batch_timeout, std::time::Duration::from_millis(2));
    let g: GeneratorSpec = s.sources[0].config().unwrap();
    assert!(g.count == Some(10) && g.seed == 7);
    // Operators come after their inputs.
    let names: Vec<_> = s.operators.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["split", "count"]);
    let count = &s.operators[1];
    assert_eq!(count.parallelism, Some(3));
    assert_eq!(count.key_by, Some(KeySelector::RecordKey));
    assert_eq!(wasm(count).limits().memory, 16 << 20);
    let plugin = count.plugin.as_ref().unwrap();
    assert_eq!(plugin.line, 11);
    assert!(plugin.reference.ends_with("wasm32-wasip2/release/word_count.wasm"));
    assert_eq!(s.operators[0].key_by, Some(KeySelector::JsonField(vec!["user".into(), "id".into()])));
    let config: Vec<_> = wasm(&s.operators[0]).config.into_iter().collect();
    assert_eq!(config, vec![("n".into(), "5".into()), ("stage".into(), "tokenize".into())]);
    let out: FileSinkConfig = s.sinks[0].config().unwrap();
    assert_eq!(out.path.to_str(), Some("out/demo"));
    assert_eq!(s.sinks[1].inputs.len(), 2);
}

#[test]
fn errors_name_file_line_column_and_field() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "    plugin: ${PLUGINS}/word_count.wasm\n    input: events",
            "    plugn: x\n    input: events",
            "p.yaml:17:5: operators[1].plugn: unknown field 'plugn', expected one of: name, type, input, inputs, key_by, parallelism, on_error, max_dead_letters_per_minute, plugin, config, limits, window",
        ),
        (
            "input: events",
            "input: evnts",
            "p.yaml:18:12: operators[1].input: no source or operator is named 'evnts' (there are: count, events, split)",
        ),
        ("input: events", "input: out", "p.yaml:18:12: operators[1].input: 'out' is a sink; sinks have no output"),
        ("input: events", "input: count", "p.yaml:10:11: operators form a cycle: count -> split -> count"),
        (
            "parallelism: ${PAR:1}",
            "parallelism: 0",
            "p.yaml:14:18: operators[0].parallelism: must be between 1 and max_parallelism (128), not 0",
        ),
        (
            "key_by: key",
            "key_by: user",
            "p.yaml:13:13: operators[0].key_by: 'user' is not a key: use 'key' (the record key) or '$.field.path' (a JSON field)",
        ),
        (
            "path: ${OUT_DIR:out/demo}",
            "path: ${OUT_DIR}",
            "p.yaml:24:11: environment variable OUT_DIR is not set and '${OUT_DIR}' has no default (write '${OUT_DIR:default}')",
        ),
        (
            "memory: 16MiB",
            "memory: 16 apples",
            "p.yaml:15:23: operators[0].limits.memory: 'apples' is not a size unit (B, KB, MB, GB, KiB, MiB, GiB)",
        ),
        ("type: stdout", "type: kafak", "p.yaml:27:11: sinks[1].type: 'kafak' is not a sink type (file, stdout)"),
        ("name: dups", "name: out", "p.yaml:26:11: sinks[1].name: a sink is already named 'out'"),
        ("count: 10", "count: ten", "p.yaml:7:12: sources[0].count: expected a whole number: invalid digit found in string"),
        (
            "seed: 7",
            "seed: 7\n    path: x.txt",
            "p.yaml:9:5: sources[0].path: unknown field 'path', expected one of: name, type, parallelism, timestamp, timestamp_unit, watermark, on_error, max_dead_letters_per_minute, seed, count, rate, keys, start_ms, deletes",
        ),
        (
            "    input: count\n  - name: dups",
            "  - name: dups",
            "p.yaml:22:11: sinks[0].input: missing (name the source or operator it reads)",
        ),
    ];
    for (from, to, expected) in cases {
        assert!(GOOD.contains(from), "{from}");
        let text = GOOD.replacen(from, to, 1);
        assert_eq!(&err(&text), expected, "replacing {from:?} with {to:?}");
    }
}

#[test]
fn yaml_and_shape_errors() {
    assert_eq!(err("name: [unclosed\n"), "p.yaml:2:1: invalid YAML: while parsing a flow sequence, expected ',' or ']'");
    assert_eq!(err("- a\n"), "p.yaml:1:1: the spec must be a mapping (name:, sources:, ...)");
    assert_eq!(err("name: x\nname: y\n"), "p.yaml:2:1: duplicate key 'name'");
    assert_eq!(err("name: x\nsinks: []\n"), "p.yaml: sources: a pipeline needs at least one source");
    assert!(err("sources: []\n").contains("name"), "a missing name is reported");
}

fn plan_err(text: &str) -> SpecError {
    plan(&ok(text)).map(|_| ()).expect_err("a planning error")
}

#[test]
fn plugins_are_checked_before_anything_runs() {
    let e = plan_err(&GOOD.replace("${PLUGINS}/word_count.wasm\n    input: split", "/nonexistent/count.wasm\n    input: split"));
    assert_eq!(
        e.to_string(),
        "p.yaml:11: operator 'count': cannot read plugin file /nonexistent/count.wasm: No such file or directory (os error 2)"
    );
    let e = plan_err(&GOOD.replace(
        "${PLUGINS}/word_count.wasm\n    input: events",
        &format!("{}\n    input: events", fixture("not-an-operator").display()),
    ));
    let msg = e.to_string();
    assert!(msg.starts_with("p.yaml:17: operator 'split': plugin not-an-operator@sha256:"), "{msg}");
    assert!(msg.ends_with("does not implement the weir:operator/operator@0.1.0 world: no exported instance named `weir:operator/handler@0.1.0`"), "{msg}");
}

#[test]
fn the_example_pipeline_plans() {
    let path = root().join("examples/wordcount/pipeline.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let spec = parse(&text, "pipeline.yaml", &|n| (n == "WEIR_PLUGINS").then(|| weir_test_support::plugin_dir().display().to_string())).unwrap();
    assert_eq!(spec.operators.iter().map(|o| (o.name.as_str(), o.parallelism)).collect::<Vec<_>>(), [("tokenize", None), ("count", Some(2))]);
    let planned = plan(&spec).unwrap();
    let logic: Vec<_> = planned.operators().map(|o| o.logic.clone().unwrap()).collect();
    assert_eq!(logic.len(), 2);
    assert_eq!(logic[0], logic[1], "one plugin, loaded once");
}

fn with_watermark(wm: &str) -> String {
    format!(
        "name: w\nsources: [{{name: in, type: file, path: x, format: json_lines, timestamp: $.ts, watermark: {wm}}}]\nsinks: [{{name: out, type: stdout, input: in}}]\n"
    )
}

#[test]
fn watermark_strategies_bounded_and_monotonic() {
    let ooo = |s: &PipelineSpec| s.sources[0].event_time.as_ref().unwrap().out_of_orderness;
    assert_eq!(ooo(&ok(&with_watermark("{strategy: monotonic}"))), std::time::Duration::ZERO);
    assert_eq!(ooo(&ok(&with_watermark("{out_of_orderness: 5s}"))), std::time::Duration::from_secs(5));
    assert_eq!(
        ooo(&ok(&with_watermark("{strategy: bounded_out_of_orderness, out_of_orderness: 2s}"))),
        std::time::Duration::from_secs(2)
    );
    let e = err(&with_watermark("{strategy: monotonic, out_of_orderness: 5s}"));
    assert!(
        e.starts_with("p.yaml:2:")
            && e.ends_with("sources[0].watermark.out_of_orderness: not a setting of the monotonic strategy (timestamps only increase)"),
        "{e}"
    );
    let e = err(&with_watermark("{strategy: ascending}"));
    assert!(
        e.ends_with("sources[0].watermark.strategy: 'ascending' is not a watermark strategy (bounded_out_of_orderness, monotonic)"),
        "{e}"
    );
}

#[test]
fn window_blocks_become_window_specs() {
    use weir_engine::window::{WindowKind, WindowSpec};
    let spec = |w: &str| {
        format!(
            "name: w\nsources: [{{name: in, type: file, path: x, format: json_lines, timestamp: $.ts}}]\noperators: [{{name: win, plugin: p.wasm, input: in, key_by: $.user, window: {w}}}]\nsinks: [{{name: out, type: stdout, input: win}}, {{name: l, type: stdout, input: win.too-late}}]\n"
        )
    };
    let s = ok(&spec("{type: tumbling, size: 1m, allowed_lateness: 30s, late_output: too-late}"));
    let want = WindowSpec { kind: WindowKind::Tumbling { size: 60_000 }, allowed_lateness: 30_000, late_output: "too-late".into() };
    let window = |s: &PipelineSpec| wasm(&s.operators[0]).window_spec();
    assert_eq!(window(&s), Some(want));
    let s = ok(&spec("{type: sliding, size: 10m, slide: 1m, late_output: too-late}"));
    assert_eq!(window(&s).unwrap().kind, WindowKind::Sliding { size: 600_000, slide: 60_000 });
    let s = ok(&spec("{type: session, gap: 30m, late_output: too-late}"));
    assert_eq!(window(&s).unwrap().kind, WindowKind::Session { gap: 1_800_000 });
    let e = err(&spec("{type: session, gap: 30m}"));
    assert_eq!(e, "p.yaml:4:1: sink 'l' reads 'win.too-late', but window operator 'win' has one side output, its late output 'late' (window.late_output)");
    let e = err(&spec("{type: session, gap: soon, late_output: too-late}"));
    assert!(e.starts_with("p.yaml:3:") && e.contains("operators[0].window.gap: "), "{e}");
}

#[test]
fn the_rocksdb_record_cache_is_sized_in_the_spec() {
    let with = |state: &str| format!("{GOOD}state: {state}\n");
    let rocks = |text: &str| {
        let mut r = registry();
        weir_state_rocksdb::register(&mut r);
        weir_spec::parse(text, "p.yaml", &env, &r)
    };
    let cache = |s: PipelineSpec| serde_json::from_value::<weir_state_rocksdb::RocksConfig>(s.state.backend.config).unwrap().cache;
    assert_eq!(cache(rocks(&with("{ backend: rocksdb, cache: 256MiB }")).unwrap()).map(|b| b.0), Some(256 << 20));
    assert_eq!(cache(rocks(&with("{ backend: rocksdb }")).unwrap()), None);
    assert_eq!(
        err(&with("{ backend: heap, cache: 1GiB }")),
        "p.yaml:29:32: state.cache: only the rocksdb backend has a record cache (the heap backend keeps all state in memory); set `backend: rocksdb` or remove `cache`"
    );
    assert_eq!(
        rocks(&with("{ backend: rocksdb, cache: 64 apples }")).unwrap_err().to_string(),
        "p.yaml:29:35: state.cache: 'apples' is not a size unit (B, KB, MB, GB, KiB, MiB, GiB)"
    );
    assert_eq!(
        err(&with("{ backend: rocksdb }")),
        "p.yaml:29:19: state.backend: unknown backend 'rocksdb' (expected heap)",
        "a binary without RocksDB says so"
    );
}

#[test]
fn every_number_has_a_range_checked_before_anything_runs() {
    let with = |extra: &str| format!("{GOOD}{extra}\n");
    assert_eq!(
        err(&with("batch: { size: 1000000000000 }").replace("batch: { size: 256, timeout: 2ms }\n", "")),
        "p.yaml:28:16: batch.size: must be between 1 and 1000000, not 1000000000000"
    );
    assert_eq!(
        err(&GOOD.replace("size: 256", "size: 18446744073709551615")),
        "p.yaml:3:16: batch.size: must be between 1 and 1000000, not 18446744073709551615"
    );
    assert_eq!(
        err(&with("state: { dir: /tmp/x }\ncheckpoint: { interval: 10000000000000000000s }")),
        "p.yaml:30:25: checkpoint.interval: must be between 10ms and 24h, not 10000000000000000000s"
    );
    assert_eq!(
        err(&GOOD.replace("memory: 16MiB", "memory: 64GiB")),
        "p.yaml:15:23: operators[0].limits.memory: must be between 64KiB (one Wasm page) and 4GiB (a 32-bit guest's address space)"
    );
    assert_eq!(err(&GOOD.replace("seed: 7", "seed: 7\n    rate: 1e300")), "p.yaml:9:11: sources[0].rate: must be a positive number of events per second, at most 1e9, not 1e300");
    assert_eq!(err(&with("max_parallelism: 100000")), "p.yaml:29:18: max_parallelism: must be between 1 and 32768, not 100000");
    assert_eq!(
        err(&with("state: { dir: /tmp/x }\ncheckpoint: { retain: 0 }")),
        "p.yaml:30:23: checkpoint.retain: must be between 1 and 1000, not 0"
    );
}

/// No recursion depth depends on the spec: 50 000 operators, each reading the
/// next one (the worst order for a recursive sort), validate.
#[test]
fn a_spec_of_fifty_thousand_operators_validates() {
    let n = 50_000;
    let mut text = String::from("name: long\nsources: [{name: s, type: generator, count: 1}]\noperators:\n");
    for i in 0..n {
        let input = if i + 1 == n { "s".to_string() } else { format!("op{}", i + 1) };
        text.push_str(&format!("  - {{name: op{i}, plugin: p.wasm, input: {input}}}\n"));
    }
    text.push_str("sinks: [{name: out, type: stdout, input: op0}]\n");
    let s = ok(&text);
    assert_eq!(s.operators.len(), n);
    assert_eq!(s.operators[0].name, format!("op{}", n - 1), "in topological order");
    assert_eq!(s.operators[n - 1].name, "op0");
}
