//! Every connector, operator kind and state backend this binary has, in the
//! registry that specs are checked and built with.

/// The registry of `weir run`, `weir validate` and `weir serve`.
pub fn registry() -> weir_spec::Registry {
    let mut r = weir_spec::Registry::new();
    weir_connectors::register(&mut r);
    weir_wasm::register(&mut r);
    weir_operators::register(&mut r);
    weir_sql::register(&mut r);
    weir_state_rocksdb::register(&mut r);
    weir_kafka::register(&mut r);
    weir_iceberg::register(&mut r);
    r
}
