//! The changelog world (`weir:operator@0.3.0`) against real components: row
//! kinds cross the boundary both ways, keyed state works under them, and a
//! guest of each world is held to what its world and its input allow.

use std::time::Duration;

use weir_engine::{Emitter, Operator, Origin, RecordBatch, RowKind, TaskContext, NO_TIMESTAMP};
use weir_test_support::fixture;
use weir_wasm::{Limits, LoaderConfig, OperatorSettings, PluginLoader, WasmOperator, CHANGELOG_WORLD, WORLD};

fn instance(plugin: &str, config: &[(&str, &str)], changelog: bool) -> WasmOperator {
    let loader = PluginLoader::new(LoaderConfig::default()).unwrap();
    let settings = OperatorSettings {
        config: config.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        changelog,
        limits: Limits { memory: 32 << 20, call_timeout: Duration::from_secs(2), ..Default::default() },
        ..Default::default()
    };
    loader.load_file(&fixture(plugin)).unwrap().instantiate(&TaskContext::new("test", "op", 0, 1), &settings).unwrap()
}

fn batch(rows: &[(RowKind, &str, &str)]) -> RecordBatch {
    let mut b = RecordBatch::default();
    for (i, (kind, k, v)) in rows.iter().enumerate() {
        b.push_kind(k.as_bytes(), v.as_bytes(), NO_TIMESTAMP, Origin::at(100 + i as u64), *kind);
    }
    b
}

fn rows(b: &RecordBatch) -> Vec<(RowKind, String, String, u64)> {
    (0..b.len())
        .map(|i| (b.kind(i), String::from_utf8_lossy(b.key(i)).into(), String::from_utf8_lossy(b.value(i)).into(), b.row(i).origin.offset))
        .collect()
}

fn r(kind: RowKind, k: &str, v: &str, origin: u64) -> (RowKind, String, String, u64) {
    (kind, k.into(), v.into(), origin)
}

#[test]
fn worlds_are_told_apart() {
    let loader = PluginLoader::new(LoaderConfig::default()).unwrap();
    assert_eq!(loader.load_file(&fixture("changelog_count")).unwrap().meta().world, CHANGELOG_WORLD);
    assert_eq!(loader.load_file(&fixture("mask")).unwrap().meta().world, CHANGELOG_WORLD);
    assert_eq!(loader.load_file(&fixture("misbehave")).unwrap().meta().world, WORLD);
}

#[test]
fn an_updating_count_reads_and_writes_row_kinds_with_keyed_state() {
    use RowKind::*;
    let mut op = instance("changelog_count", &[], true);
    let mut out = Emitter::new(1);
    let a = |n: i64| format!(r#"{{"g":"a","amount":{n}}}"#);
    let input = batch(&[
        (Insert, "a", &a(5)),
        (Insert, "b", r#"{"g":"b","amount":1}"#),
        (Insert, "a", &a(7)),
        (UpdateBefore, "a", &a(5)),
        (UpdateAfter, "a", &a(6)),
        (Delete, "b", r#"{"g":"b","amount":1}"#),
    ]);
    op.process(input, &mut out).unwrap();
    assert_eq!(
        rows(out.main()),
        vec![
            r(Insert, "a", r#"{"g":"a","n":1,"sum":5}"#, 100),
            r(Insert, "b", r#"{"g":"b","n":1,"sum":1}"#, 101),
            r(UpdateBefore, "a", r#"{"g":"a","n":1,"sum":5}"#, 102),
            r(UpdateAfter, "a", r#"{"g":"a","n":2,"sum":12}"#, 102),
            r(UpdateBefore, "a", r#"{"g":"a","n":2,"sum":12}"#, 103),
            r(UpdateAfter, "a", r#"{"g":"a","n":1,"sum":7}"#, 103),
            r(UpdateBefore, "a", r#"{"g":"a","n":1,"sum":7}"#, 104),
            r(UpdateAfter, "a", r#"{"g":"a","n":2,"sum":13}"#, 104),
            r(Delete, "b", r#"{"g":"b","n":1,"sum":1}"#, 105),
        ]
    );
    assert_eq!(op.counters(), vec![("retractions".to_string(), 2)]);
    // State carries over to the next batch; an append-only batch (no kinds)
    // reads as inserts.
    let mut out = Emitter::new(1);
    let mut plain = RecordBatch::default();
    plain.push(b"b", br#"{"g":"b","amount":2}"#, NO_TIMESTAMP, Origin::at(7));
    op.process(plain, &mut out).unwrap();
    assert_eq!(rows(out.main()), vec![r(Insert, "b", r#"{"g":"b","n":1,"sum":2}"#, 7)]);
    // An error names the row.
    let err = op.process(batch(&[(Delete, "c", r#"{"g":"c","amount":1}"#)]), &mut Emitter::new(1)).unwrap_err();
    assert!(err.to_string().contains("group c: more rows taken out than went in"), "{err}");
    assert_eq!(err.origin, Some(Origin::at(100)));
}

#[test]
fn the_mask_passes_every_kind_through() {
    use RowKind::*;
    let mut op = instance("mask", &[("fields", "email, phone")], true);
    let mut out = Emitter::new(1);
    let input = batch(&[
        (Insert, "1", r#"{"id":1,"email":"a@x","phone":null}"#),
        (UpdateBefore, "1", r#"{"id":1,"email":"a@x"}"#),
        (UpdateAfter, "1", r#"{"id":1,"email":"b@x","phone":"555"}"#),
        (Delete, "1", r#"{"id":1,"email":"b@x"}"#),
    ]);
    op.process(input, &mut out).unwrap();
    assert_eq!(
        rows(out.main()),
        vec![
            r(Insert, "1", r#"{"email":"***","id":1,"phone":null}"#, 100),
            r(UpdateBefore, "1", r#"{"email":"***","id":1}"#, 101),
            r(UpdateAfter, "1", r#"{"email":"***","id":1,"phone":"***"}"#, 102),
            r(Delete, "1", r#"{"email":"***","id":1}"#, 103),
        ]
    );
    assert_eq!(op.counters(), vec![("masked".to_string(), 5)]);
    let err = op.process(batch(&[(Delete, "2", "[1]")]), &mut Emitter::new(1)).unwrap_err();
    assert!(err.to_string().contains("a -D row is not a JSON object, so it has no fields to mask"), "{err}");
}

#[test]
fn each_world_is_held_to_what_it_can_say() {
    // A 0.1.0 operator given a changelog: refused, saying which world to build for.
    let mut op = instance("misbehave", &[], false);
    let err = op.process(batch(&[(RowKind::Delete, "k", "x")]), &mut Emitter::new(1)).unwrap_err().to_string();
    assert!(err.contains("received a changelog (updates and deletes), but it implements weir:operator/operator@0.1.0"), "{err}");
    assert!(err.contains("build it for weir:operator/changelog-operator@0.3.0"), "{err}");
    // A 0.1.0 operator emitting a row kind: its SDK refuses it, naming the row.
    let err = op.process(batch(&[(RowKind::Insert, "k", "delete")]), &mut Emitter::new(1)).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("it emitted a -D row, but it is exported with weir_sdk::export_operator!"), "{text}");
    assert!(text.contains("export it with weir_sdk::export_changelog_operator!"), "{text}");
    assert_eq!(err.origin, Some(Origin::at(100)));
    // A changelog operator reading an append-only stream may not emit kinds:
    // its readers were checked for inserts only.
    let mut op = instance("changelog_count", &[], false);
    let input = batch(&[(RowKind::Insert, "a", r#"{"g":"a","amount":1}"#), (RowKind::Insert, "a", r#"{"g":"a","amount":2}"#)]);
    let err = op.process(input, &mut Emitter::new(1)).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("broke the operator contract: it emitted a -U row (record 1), but its input is append-only"), "{text}");
    assert_eq!(err.origin, Some(Origin::at(101)));
}
