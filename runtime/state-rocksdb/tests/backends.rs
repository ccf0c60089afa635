//! Conformance suite: every test of `conformance!` runs against both the heap
//! and the RocksDB backend; `rocks_only` tests the RocksDB backend's record
//! cache and incremental snapshots.

use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tempfile::TempDir;
use weir_state::keys::key_group;
use weir_state_rocksdb::{RocksBackend, RocksOptions};
use weir_state::{
    HeapBackend, KeyGroups, KeyedStateBackend, Reducer, RestoreFiles, SnapshotFile,
    StateDescriptor, StateError, StateKind,
};

/// A backend under test, with the scratch directory it may need.
struct Backend {
    b: Box<dyn KeyedStateBackend>,
    // Dropped after the backend.
    _dir: Option<TempDir>,
}

impl Deref for Backend {
    type Target = dyn KeyedStateBackend;
    fn deref(&self) -> &Self::Target {
        &*self.b
    }
}

impl DerefMut for Backend {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut *self.b
    }
}

type Make = fn(KeyGroups) -> Backend;

fn heap(kg: KeyGroups) -> Backend {
    Backend { b: Box::new(HeapBackend::new(kg)), _dir: None }
}

fn rocks_with(kg: KeyGroups, configure: impl FnOnce(RocksOptions) -> RocksOptions) -> Backend {
    let dir = TempDir::new().unwrap();
    let opts = configure(RocksOptions::new(dir.path().join("work")));
    Backend { b: Box::new(RocksBackend::open(opts, kg).unwrap()), _dir: Some(dir) }
}

fn rocks(kg: KeyGroups) -> Backend {
    rocks_with(kg, |o| o)
}

fn desc(name: &str, kind: StateKind) -> StateDescriptor {
    StateDescriptor { name: name.into(), kind, ttl: None }
}

fn ttl_desc(name: &str, kind: StateKind, ttl_ms: u64) -> StateDescriptor {
    StateDescriptor { name: name.into(), kind, ttl: Some(Duration::from_millis(ttl_ms)) }
}

/// Where "uploaded" snapshot files go: each stored under its name, as a
/// checkpoint store would.
struct Store {
    dir: TempDir,
    snapshots: usize,
}

impl Store {
    fn new() -> Self {
        Store { dir: TempDir::new().unwrap(), snapshots: 0 }
    }

    /// Snapshot `b` into a fresh directory.
    fn snapshot(&mut self, b: &mut Backend) -> Vec<SnapshotFile> {
        self.snapshots += 1;
        let dir = self.dir.path().join(format!("local-{}", self.snapshots));
        std::fs::create_dir(&dir).unwrap();
        b.snapshot(&dir).unwrap()().unwrap()
    }

    /// Copy the files to the store under their names (shared files in one
    /// directory, the others in one per snapshot) and return them as a
    /// snapshot to restore.
    fn upload(&mut self, files: &[SnapshotFile]) -> RestoreFiles {
        self.snapshots += 1;
        let shared = self.dir.path().join("shared");
        let private = self.dir.path().join(format!("private-{}", self.snapshots));
        std::fs::create_dir_all(&shared).unwrap();
        std::fs::create_dir_all(&private).unwrap();
        files
            .iter()
            .map(|f| {
                let to = if f.shared { shared.join(&f.name) } else { private.join(&f.name) };
                if !(f.shared && to.exists()) {
                    std::fs::copy(&f.path, &to).unwrap();
                }
                (f.name.clone(), to)
            })
            .collect()
    }

    fn snapshot_and_upload(&mut self, b: &mut Backend) -> RestoreFiles {
        let files = self.snapshot(b);
        self.upload(&files)
    }
}

fn sorted(mut v: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<(Vec<u8>, Vec<u8>)> {
    v.sort();
    v
}

fn bytes(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

// ---- The conformance tests (both backends) ----

fn value_state_is_per_key(make: Make) {
    let mut b = make(KeyGroups::all(128));
    let s = b.declare(desc("count", StateKind::Value)).unwrap();
    assert_eq!(b.value_get(s, b"a").unwrap(), None);
    b.value_set(s, b"a", b"1").unwrap();
    b.value_set(s, b"b", b"2").unwrap();
    b.value_set(s, b"a", b"3").unwrap();
    assert_eq!(b.value_get(s, b"a").unwrap().as_deref(), Some(&b"3"[..]));
    assert_eq!(b.value_get(s, b"b").unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(b.len(s).unwrap(), 2);
    b.clear(s, b"a").unwrap();
    assert_eq!(b.value_get(s, b"a").unwrap(), None);
    assert_eq!(b.len(s).unwrap(), 1);
    b.value_set(s, b"empty", b"").unwrap();
    assert_eq!(b.value_get(s, b"empty").unwrap(), Some(Vec::new()), "an empty value is a value");
    assert_eq!(b.len(s).unwrap(), 2);
}

fn prefetched_values_read_the_same(make: Make) {
    let mut b = make(KeyGroups::all(128));
    let s = b.declare(desc("v", StateKind::Value)).unwrap();
    for i in 0..5000u32 {
        b.value_set(s, &i.to_be_bytes(), &(i * 2).to_le_bytes()).unwrap();
    }
    b.len(s).unwrap(); // a disk backend writes its cache back
    let keys: Vec<[u8; 4]> = (4990..5010u32).map(|i| i.to_be_bytes()).collect();
    let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
    b.prefetch(s, &refs).unwrap();
    for i in 4990..5010u32 {
        let want = (i < 5000).then(|| (i * 2).to_le_bytes().to_vec());
        assert_eq!(b.value_get(s, &i.to_be_bytes()).unwrap(), want, "key {i}");
    }
    b.value_set(s, &5005u32.to_be_bytes(), b"new").unwrap();
    assert_eq!(b.value_get(s, &5005u32.to_be_bytes()).unwrap().as_deref(), Some(&b"new"[..]));
    assert_eq!(b.len(s).unwrap(), 5001);
}

/// Batched reads and writes give what the same calls one by one give: keys
/// absent, present, repeated within a batch, cleared, expired by TTL and
/// outside the backend's key groups; wrong use is refused as one by one.
fn batched_reads_and_writes_match_single_calls(make: Make) {
    let owned = KeyGroups::of_task(0, 2, 128);
    let mut b = make(owned.clone());
    let s = b.declare(ttl_desc("v", StateKind::Value, 1000)).unwrap();
    let l = b.declare(desc("l", StateKind::List)).unwrap();
    b.set_time(0);
    let key = |i: u32| format!("key-{i}").into_bytes();
    // Keys 0..300 written one by one at time 0, 300..600 in one batch at 500.
    for i in 0..300u32 {
        b.value_set(s, &key(i), format!("one-{i}").as_bytes()).unwrap();
    }
    b.set_time(500);
    let keys: Vec<Vec<u8>> = (300..600).map(key).collect();
    let vals: Vec<Vec<u8>> = (300..600u32).map(|i| format!("many-{i}").into_bytes()).collect();
    let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
    let values: Vec<Option<&[u8]>> = vals.iter().map(|v| Some(&v[..])).collect();
    b.value_write_many(s, &refs, &values).unwrap();
    // One batch setting a key twice (the last write wins), clearing 5 and
    // 301, and writing an empty value.
    let (k7, k5, k301, k8) = (key(7), key(5), key(301), key(8));
    let refs: Vec<&[u8]> = vec![&k7, &k5, &k7, &k301, &k8];
    let values: Vec<Option<&[u8]>> = vec![Some(b"first"), None, Some(b"second"), None, Some(b"")];
    b.value_write_many(s, &refs, &values).unwrap();
    // At 1200 the keys written at 0 have expired, except those written since.
    b.set_time(1200);
    let expect = |i: u32| -> Option<Vec<u8>> {
        match i {
            7 => Some(b"second".to_vec()),
            8 => Some(Vec::new()),
            5 | 301 => None,
            0..300 => None,
            300..600 => Some(format!("many-{i}").into_bytes()),
            _ => None,
        }
    };
    // Read all, plus absent keys, with repeats, in one batch.
    let order: Vec<u32> = (0..700).chain([7, 300, 650, 7]).collect();
    let keys: Vec<Vec<u8>> = order.iter().map(|&i| key(i)).collect();
    let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
    let (mut out, mut found) = (b"prefix".to_vec(), Vec::new());
    b.value_get_many(s, &refs, &mut out, &mut found).unwrap();
    assert_eq!(found.len(), order.len());
    let mut start = b"prefix".len();
    for (n, &i) in order.iter().enumerate() {
        let (end, present) = found[n];
        let got = present.then(|| out[start..end].to_vec());
        assert_eq!(got, expect(i), "batched read of key {i} (position {n})");
        assert_eq!(b.value_get(s, &key(i)).unwrap(), expect(i), "single read of key {i}");
        if !present {
            assert_eq!(end, start, "an absent key {i} appends nothing");
        }
        start = end;
    }
    // Keys of the other task's key groups are kept too (as single writes
    // keep them: a backend never drops what it was given).
    let foreign = (0..100u32).map(key).find(|k| !owned.contains(key_group(k, 128))).unwrap();
    b.value_write_many(s, &[&foreign], &[Some(b"x")]).unwrap();
    assert_eq!(b.value_get(s, &foreign).unwrap().as_deref(), Some(&b"x"[..]));
    // Refused as single calls are: another kind of state, unknown state,
    // and keys and values that do not pair up.
    let err = b.value_get_many(l, &[&k7], &mut Vec::new(), &mut Vec::new()).unwrap_err();
    assert_eq!(err.to_string(), "state 'l' is a list state; it cannot be used as a value state");
    let err = b.value_write_many(l, &[&k7], &[Some(b"x")]).unwrap_err();
    assert_eq!(err.to_string(), "state 'l' is a list state; it cannot be used as a value state");
    assert!(matches!(b.value_get_many(9, &[&k7], &mut Vec::new(), &mut Vec::new()), Err(StateError::UnknownState(9))));
    let err = b.value_write_many(s, &[&k7, &k5], &[Some(b"x")]).unwrap_err();
    assert_eq!(err.to_string(), "a batched write got 2 keys but 1 values");
    assert_eq!(b.value_get(s, &k7).unwrap().as_deref(), Some(&b"second"[..]), "a refused batch writes nothing");
}

fn map_list_and_reducing_state(make: Make) {
    let mut b = make(KeyGroups::all(128));
    let m = b.declare(desc("seen", StateKind::Map)).unwrap();
    let l = b.declare(desc("events", StateKind::List)).unwrap();
    let r = b.declare(desc("max", StateKind::Reducing(Reducer::Max))).unwrap();
    b.map_put(m, b"k", b"x", b"1").unwrap();
    b.map_put(m, b"k", b"y", b"2").unwrap();
    assert_eq!(b.map_get(m, b"k", b"y").unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(b.map_get(m, b"k", b"z").unwrap(), None);
    assert_eq!(b.map_get(m, b"other", b"y").unwrap(), None);
    let e = sorted(b.map_entries(m, b"k").unwrap());
    assert_eq!(e, vec![(bytes("x"), bytes("1")), (bytes("y"), bytes("2"))]);
    assert_eq!(b.len(m).unwrap(), 1);
    assert!(b.map_remove(m, b"k", b"x").unwrap());
    assert!(!b.map_remove(m, b"k", b"x").unwrap());
    assert!(b.map_remove(m, b"k", b"y").unwrap());
    assert_eq!(b.len(m).unwrap(), 0, "an emptied map leaves no entry");
    assert_eq!(b.map_entries(m, b"k").unwrap(), Vec::new());

    b.list_add(l, b"k", b"a").unwrap();
    b.list_add(l, b"k", b"b").unwrap();
    assert_eq!(b.list_get(l, b"k").unwrap(), vec![bytes("a"), bytes("b")]);
    b.list_update(l, b"k", vec![bytes("c")]).unwrap();
    assert_eq!(b.list_get(l, b"k").unwrap(), vec![bytes("c")]);
    assert_eq!(b.len(l).unwrap(), 1);
    b.list_update(l, b"k", Vec::new()).unwrap();
    assert_eq!(b.list_get(l, b"k").unwrap(), Vec::<Vec<u8>>::new());
    assert_eq!(b.len(l).unwrap(), 0, "updating a list to empty clears it");

    assert_eq!(b.reducing_add(r, b"k", 5).unwrap(), 5);
    assert_eq!(b.reducing_add(r, b"k", 3).unwrap(), 5);
    assert_eq!(b.reducing_add(r, b"k", 9).unwrap(), 9);
    assert_eq!(b.reducing_get(r, b"k").unwrap(), Some(9));
    assert_eq!(b.reducing_get(r, b"other").unwrap(), None);
}

fn reducers_and_clear(make: Make) {
    let mut b = make(KeyGroups::all(128));
    let sum = b.declare(desc("sum", StateKind::Reducing(Reducer::Sum))).unwrap();
    let min = b.declare(desc("min", StateKind::Reducing(Reducer::Min))).unwrap();
    assert_eq!(b.reducing_add(sum, b"k", -4).unwrap(), -4, "a fresh key stores the value as is");
    assert_eq!(b.reducing_add(sum, b"k", 10).unwrap(), 6);
    assert_eq!(b.reducing_add(min, b"k", 7).unwrap(), 7);
    assert_eq!(b.reducing_add(min, b"k", 9).unwrap(), 7);
    assert_eq!(b.reducing_add(min, b"k", -1).unwrap(), -1);
    b.clear(sum, b"k").unwrap();
    assert_eq!(b.reducing_get(sum, b"k").unwrap(), None);
    assert_eq!(b.reducing_add(sum, b"k", 2).unwrap(), 2, "a cleared key starts afresh");

    let m = b.declare(desc("m", StateKind::Map)).unwrap();
    b.map_put(m, b"k", b"a", b"1").unwrap();
    b.map_put(m, b"k", b"b", b"2").unwrap();
    b.map_put(m, b"k2", b"a", b"3").unwrap();
    b.map_put(m, b"k", b"a", b"4").unwrap();
    assert_eq!(sorted(b.map_entries(m, b"k").unwrap()), vec![(bytes("a"), bytes("4")), (bytes("b"), bytes("2"))]);
    b.clear(m, b"k").unwrap();
    assert_eq!(b.map_entries(m, b"k").unwrap(), Vec::new());
    assert_eq!(b.map_get(m, b"k", b"a").unwrap(), None);
    assert_eq!(b.map_entries(m, b"k2").unwrap(), vec![(bytes("a"), bytes("3"))], "clear is per key");
    b.map_put(m, b"k", b"c", b"5").unwrap();
    assert_eq!(b.map_entries(m, b"k").unwrap(), vec![(bytes("c"), bytes("5"))]);
    assert_eq!(b.len(m).unwrap(), 2);
    // Keys that are prefixes of each other stay apart.
    b.map_put(m, b"k2x", b"", b"6").unwrap();
    assert_eq!(b.map_entries(m, b"k2").unwrap(), vec![(bytes("a"), bytes("3"))]);
    assert_eq!(b.map_entries(m, b"k2x").unwrap(), vec![(bytes(""), bytes("6"))]);
    assert_eq!(b.len(m).unwrap(), 3);
}

fn declaring_errors_name_the_state(make: Make) {
    let mut b = make(KeyGroups::all(128));
    let a = b.declare(desc("a", StateKind::Value)).unwrap();
    assert_eq!(b.declare(desc("a", StateKind::Value)).unwrap(), a);
    let err = b.declare(desc("a", StateKind::List)).unwrap_err().to_string();
    assert_eq!(err, "state 'a' is already declared as a value state without TTL; it cannot be declared again as a list state without TTL");
    let err = b.declare(ttl_desc("a", StateKind::Value, 5)).unwrap_err().to_string();
    assert_eq!(err, "state 'a' is already declared as a value state without TTL; it cannot be declared again as a value state with TTL 5ms");
    let err = b.list_add(a, b"k", b"v").unwrap_err().to_string();
    assert_eq!(err, "state 'a' is a value state; it cannot be used as a list state");
    let err = b.map_get(a, b"k", b"m").unwrap_err().to_string();
    assert_eq!(err, "state 'a' is a value state; it cannot be used as a map state");
    let err = b.reducing_add(a, b"k", 1).unwrap_err().to_string();
    assert_eq!(err, "state 'a' is a value state; it cannot be used as a reducing state");
    assert_eq!(b.value_get(7, b"k").unwrap_err(), StateError::UnknownState(7));
    assert_eq!(b.clear(7, b"k").unwrap_err(), StateError::UnknownState(7));
    assert_eq!(b.len(7).unwrap_err(), StateError::UnknownState(7));
    assert_eq!(b.declare(desc("", StateKind::Value)).unwrap_err(), StateError::EmptyName);
    // "default" is an ordinary state name.
    let d = b.declare(desc("default", StateKind::Value)).unwrap();
    b.value_set(d, b"k", b"v").unwrap();
    assert_eq!(b.value_get(d, b"k").unwrap(), Some(bytes("v")));
    assert_eq!(b.descriptors(), vec![desc("a", StateKind::Value), desc("default", StateKind::Value)]);
}

fn ttl_hides_and_purges_entries_not_written_in_time(make: Make) {
    let mut b = make(KeyGroups::all(128));
    let s = b.declare(ttl_desc("s", StateKind::Reducing(Reducer::Sum), 100)).unwrap();
    b.set_time(1_000);
    b.reducing_add(s, b"k", 1).unwrap();
    b.set_time(1_099);
    assert_eq!(b.reducing_add(s, b"k", 1).unwrap(), 2, "a write refreshes the TTL");
    b.set_time(1_198);
    assert_eq!(b.reducing_get(s, b"k").unwrap(), Some(2));
    b.set_time(1_199);
    assert_eq!(b.len(s).unwrap(), 0);
    assert_eq!(b.reducing_get(s, b"k").unwrap(), None);
    assert_eq!(b.reducing_add(s, b"k", 1).unwrap(), 1, "an expired entry starts afresh");
}

fn ttl_of_value_list_and_map_state(make: Make) {
    let mut b = make(KeyGroups::all(128));
    let v = b.declare(ttl_desc("v", StateKind::Value, 100)).unwrap();
    let l = b.declare(ttl_desc("l", StateKind::List, 100)).unwrap();
    let m = b.declare(ttl_desc("m", StateKind::Map, 100)).unwrap();
    b.set_time(1_000);
    b.value_set(v, b"k", b"1").unwrap();
    b.list_add(l, b"k", b"a").unwrap();
    b.map_put(m, b"k", b"x", b"1").unwrap();
    b.set_time(1_050);
    b.list_add(l, b"k", b"b").unwrap();
    b.map_put(m, b"k", b"y", b"2").unwrap();
    b.set_time(1_100);
    assert_eq!(b.value_get(v, b"k").unwrap(), None, "expired after exactly the TTL");
    assert_eq!(b.list_get(l, b"k").unwrap(), vec![bytes("a"), bytes("b")]);
    assert_eq!(
        sorted(b.map_entries(m, b"k").unwrap()),
        vec![(bytes("x"), bytes("1")), (bytes("y"), bytes("2"))],
        "a write refreshes the whole map"
    );
    assert_eq!(b.map_get(m, b"k", b"x").unwrap(), Some(bytes("1")));
    assert_eq!((b.len(v).unwrap(), b.len(l).unwrap(), b.len(m).unwrap()), (0, 1, 1));
    // Removing does not refresh.
    b.map_put(m, b"k2", b"x", b"1").unwrap();
    b.set_time(1_149);
    assert!(b.map_remove(m, b"k", b"x").unwrap());
    b.set_time(1_150);
    assert_eq!(b.map_entries(m, b"k").unwrap(), Vec::new());
    assert_eq!(b.map_get(m, b"k", b"y").unwrap(), None);
    assert!(!b.map_remove(m, b"k", b"y").unwrap(), "an expired map has nothing to remove");
    assert_eq!(b.list_get(l, b"k").unwrap(), Vec::<Vec<u8>>::new());
    assert_eq!((b.len(l).unwrap(), b.len(m).unwrap()), (0, 1));
    // Writes to expired entries start afresh.
    b.list_add(l, b"k", b"c").unwrap();
    assert_eq!(b.list_get(l, b"k").unwrap(), vec![bytes("c")]);
    b.map_put(m, b"k", b"z", b"3").unwrap();
    assert_eq!(b.map_entries(m, b"k").unwrap(), vec![(bytes("z"), bytes("3"))]);
    b.value_set(v, b"k", b"2").unwrap();
    assert_eq!(b.value_get(v, b"k").unwrap(), Some(bytes("2")));
    assert_eq!((b.len(v).unwrap(), b.len(l).unwrap(), b.len(m).unwrap()), (1, 1, 2));
    b.set_time(1_250);
    assert_eq!((b.len(v).unwrap(), b.len(l).unwrap(), b.len(m).unwrap()), (0, 0, 0));
}

fn ttl_entries_are_absent_after_restore(make: Make) {
    let mut store = Store::new();
    let mut b = make(KeyGroups::all(128));
    let v = b.declare(ttl_desc("v", StateKind::Value, 100)).unwrap();
    let m = b.declare(ttl_desc("m", StateKind::Map, 100)).unwrap();
    let kept = b.declare(desc("kept", StateKind::Value)).unwrap();
    b.set_time(1_000);
    b.value_set(v, b"old", b"1").unwrap();
    b.map_put(m, b"old", b"x", b"1").unwrap();
    b.value_set(kept, b"k", b"1").unwrap();
    b.set_time(1_060);
    b.value_set(v, b"new", b"2").unwrap();
    b.map_put(m, b"new", b"x", b"2").unwrap();
    b.set_time(1_120); // "old" expired, "new" live
    let snap = store.snapshot_and_upload(&mut b);

    let mut r = make(KeyGroups::all(128));
    r.restore(std::slice::from_ref(&snap)).unwrap();
    assert_eq!(r.declare(ttl_desc("v", StateKind::Value, 100)).unwrap(), v);
    assert_eq!(r.declare(ttl_desc("m", StateKind::Map, 100)).unwrap(), m);
    assert_eq!(r.value_get(kept, b"k").unwrap(), Some(bytes("1")), "no TTL: kept at any time");
    assert_eq!(r.value_get(v, b"old").unwrap(), None);
    assert_eq!(r.map_entries(m, b"old").unwrap(), Vec::new());
    r.set_time(1_120);
    assert_eq!(r.value_get(v, b"old").unwrap(), None);
    assert_eq!(r.value_get(v, b"new").unwrap(), Some(bytes("2")));
    assert_eq!(r.map_entries(m, b"new").unwrap(), vec![(bytes("x"), bytes("2"))]);
    assert_eq!((r.len(v).unwrap(), r.len(m).unwrap()), (1, 1));
    r.set_time(1_160);
    assert_eq!(r.value_get(v, b"new").unwrap(), None, "restored entries keep their write time");
    assert_eq!((r.len(v).unwrap(), r.len(m).unwrap(), r.len(kept).unwrap()), (0, 0, 1));

    // Restoring at a later time leaves everything expired out.
    let mut r = make(KeyGroups::all(128));
    r.set_time(5_000);
    r.restore(&[snap]).unwrap();
    assert_eq!((r.len(v).unwrap(), r.len(m).unwrap(), r.len(kept).unwrap()), (0, 0, 1));
}

/// Write `n` keys into every kind of state (only keys of `owned`, if given).
fn fill(b: &mut Backend, n: usize, owned: Option<&KeyGroups>) {
    let [v, m, l, r] = declare_all(b);
    for i in 0..n {
        let key = format!("key-{i}");
        if owned.is_some_and(|kg| !kg.contains(key_group(key.as_bytes(), kg.max_parallelism))) {
            continue;
        }
        let key = key.as_bytes();
        b.value_set(v, key, format!("value-{i}").as_bytes()).unwrap();
        for j in 0..i % 3 + 1 {
            b.map_put(m, key, format!("m{j}").as_bytes(), format!("{i}/{j}").as_bytes()).unwrap();
        }
        for j in 0..i % 4 + 1 {
            b.list_add(l, key, format!("{i}.{j}").as_bytes()).unwrap();
        }
        b.reducing_add(r, key, i as i64).unwrap();
        b.reducing_add(r, key, 1).unwrap();
    }
}

fn declare_all(b: &mut Backend) -> [u32; 4] {
    [
        b.declare(desc("v", StateKind::Value)).unwrap(),
        b.declare(desc("m", StateKind::Map)).unwrap(),
        b.declare(desc("l", StateKind::List)).unwrap(),
        b.declare(desc("r", StateKind::Reducing(Reducer::Sum))).unwrap(),
    ]
}

/// Check key `i` as written by `fill`: present in every state or absent from all.
fn check_key(b: &mut Backend, i: usize, present: bool) {
    let [v, m, l, r] = declare_all(b);
    let key = format!("key-{i}");
    let key = key.as_bytes();
    if !present {
        assert_eq!(b.value_get(v, key).unwrap(), None, "key-{i}");
        assert_eq!(b.map_entries(m, key).unwrap(), Vec::new(), "key-{i}");
        assert_eq!(b.list_get(l, key).unwrap(), Vec::<Vec<u8>>::new(), "key-{i}");
        assert_eq!(b.reducing_get(r, key).unwrap(), None, "key-{i}");
        return;
    }
    assert_eq!(b.value_get(v, key).unwrap(), Some(format!("value-{i}").into_bytes()), "key-{i}");
    let map: Vec<_> = (0..i % 3 + 1).map(|j| (format!("m{j}").into_bytes(), format!("{i}/{j}").into_bytes())).collect();
    assert_eq!(sorted(b.map_entries(m, key).unwrap()), map, "key-{i}");
    let list: Vec<_> = (0..i % 4 + 1).map(|j| format!("{i}.{j}").into_bytes()).collect();
    assert_eq!(b.list_get(l, key).unwrap(), list, "key-{i}");
    assert_eq!(b.reducing_get(r, key).unwrap(), Some(i as i64 + 1), "key-{i}");
}

fn lens(b: &mut Backend) -> [usize; 4] {
    declare_all(b).map(|s| b.len(s).unwrap())
}

const KEYS: usize = 10_000;

fn snapshot_then_restore_gives_identical_state(make: Make) {
    let mut store = Store::new();
    let mut b = make(KeyGroups::all(128));
    fill(&mut b, KEYS, None);
    let snap = store.snapshot_and_upload(&mut b);
    // The source goes on unchanged by the snapshot.
    check_key(&mut b, 17, true);
    b.clear(0, b"key-17").unwrap();

    let mut r = make(KeyGroups::all(128));
    r.restore(&[snap]).unwrap();
    assert_eq!(r.descriptors(), b.descriptors());
    assert_eq!(lens(&mut r), [KEYS; 4]);
    for i in 0..KEYS {
        check_key(&mut r, i, true);
    }
    check_key(&mut r, KEYS, false);
}

/// A snapshot holds the state as it was when `snapshot` returned, whatever is
/// written before its writer runs (the heap backend's copy-on-write), and
/// the backend goes on with what was written.
fn writes_before_the_writer_runs_do_not_change_the_snapshot(make: Make) {
    let mut store = Store::new();
    let mut b = make(KeyGroups::all(128));
    fill(&mut b, 1_000, None);
    let [v, m, ..] = declare_all(&mut b);
    let pending = |b: &mut Backend, n: u32| {
        let dir = store.dir.path().join(format!("pending-{n}"));
        std::fs::create_dir(&dir).unwrap();
        b.snapshot(&dir).unwrap()
    };
    // First snapshot, then changes before its writer runs.
    let writer = pending(&mut b, 1);
    b.value_set(v, b"key-1", b"changed").unwrap();
    b.clear(v, b"key-2").unwrap();
    b.map_put(m, b"key-3", b"m9", b"new").unwrap();
    b.value_set(v, b"key-new", b"x").unwrap();
    let first = writer().unwrap();
    // Second snapshot (the first writer is done), then other changes.
    let writer = pending(&mut b, 2);
    b.value_set(v, b"key-1", b"changed again").unwrap();
    b.value_set(v, b"key-2", b"back").unwrap();
    b.map_remove(m, b"key-3", b"m9").unwrap();
    b.clear(v, b"key-new").unwrap();
    let second = writer().unwrap();

    let mut r = make(KeyGroups::all(128));
    r.restore(&[store.upload(&first)]).unwrap();
    for i in 0..1_000 {
        check_key(&mut r, i, true);
    }
    assert_eq!(r.value_get(v, b"key-new").unwrap(), None);
    let mut r = make(KeyGroups::all(128));
    r.restore(&[store.upload(&second)]).unwrap();
    assert_eq!(r.value_get(v, b"key-1").unwrap(), Some(bytes("changed")));
    assert_eq!(r.value_get(v, b"key-2").unwrap(), None);
    assert_eq!(r.map_get(m, b"key-3", b"m9").unwrap(), Some(bytes("new")));
    assert_eq!(r.value_get(v, b"key-new").unwrap(), Some(bytes("x")));
    check_key(&mut r, 4, true);
    // The backend has every write.
    assert_eq!(b.value_get(v, b"key-1").unwrap(), Some(bytes("changed again")));
    assert_eq!(b.value_get(v, b"key-2").unwrap(), Some(bytes("back")));
    assert_eq!(b.map_get(m, b"key-3", b"m9").unwrap(), None);
    assert_eq!(b.value_get(v, b"key-new").unwrap(), None);
}

fn restore_at_another_parallelism_moves_keys_to_their_owner(make: Make) {
    let max = 128;
    let mut store = Store::new();
    let snaps: Vec<RestoreFiles> = (0..2)
        .map(|t| {
            let kg = KeyGroups::of_task(t, 2, max);
            let mut b = make(kg.clone());
            fill(&mut b, 3_000, Some(&kg));
            store.snapshot_and_upload(&mut b)
        })
        .collect();
    let mut targets: Vec<(KeyGroups, Backend)> = (0..3)
        .map(|t| {
            let kg = KeyGroups::of_task(t, 3, max);
            let mut b = make(kg.clone());
            b.restore(&snaps).unwrap();
            (kg, b)
        })
        .collect();
    let mut total = 0;
    for (_, b) in &mut targets {
        let l = lens(b);
        assert!(l.iter().all(|&n| n == l[0]), "{l:?}");
        total += l[0];
    }
    assert_eq!(total, 3_000);
    for i in 0..3_000 {
        let kg = key_group(format!("key-{i}").as_bytes(), max);
        for (range, b) in &mut targets {
            check_key(b, i, range.contains(kg));
        }
    }
}

fn restore_refuses_another_max_parallelism(make: Make) {
    let mut store = Store::new();
    let mut b = make(KeyGroups::all(128));
    fill(&mut b, 10, None);
    let snap = store.snapshot_and_upload(&mut b);
    let mut r = make(KeyGroups::all(256));
    match r.restore(std::slice::from_ref(&snap)).unwrap_err() {
        StateError::Restore { file, message } => {
            assert_eq!(
                message,
                "it was taken with max_parallelism 128 (key groups); this pipeline has 256; the number of key groups cannot change"
            );
            assert!(snap.iter().any(|(_, p)| Path::new(&file) == p), "{file} is not one of {snap:?}");
        }
        e => panic!("unexpected error {e}"),
    }
}

fn restore_merges_states_and_declares(make: Make) {
    let mut store = Store::new();
    let mut b = make(KeyGroups::all(128));
    let s = b.declare(desc("only-in-snapshot", StateKind::List)).unwrap();
    let snap = store.snapshot_and_upload(&mut b);
    let mut r = make(KeyGroups::all(128));
    r.restore(&[snap]).unwrap();
    assert_eq!(r.descriptors(), vec![desc("only-in-snapshot", StateKind::List)]);
    let err = r.declare(desc("only-in-snapshot", StateKind::Value)).unwrap_err().to_string();
    assert_eq!(err, "state 'only-in-snapshot' is already declared as a list state without TTL; it cannot be declared again as a value state without TTL");
    assert_eq!(r.declare(desc("only-in-snapshot", StateKind::List)).unwrap(), s);
    assert_eq!(r.len(s).unwrap(), 0);
    // Restoring nothing is fine.
    let mut r = make(KeyGroups::all(128));
    r.restore(&[]).unwrap();
    assert!(r.descriptors().is_empty());
}

macro_rules! conformance {
    ($($backend:ident),*) => {$(
        mod $backend {
            #[test] fn value_state_is_per_key() { super::value_state_is_per_key(super::$backend) }
            #[test] fn prefetched_values_read_the_same() { super::prefetched_values_read_the_same(super::$backend) }
            #[test] fn batched_reads_and_writes_match_single_calls() { super::batched_reads_and_writes_match_single_calls(super::$backend) }
            #[test] fn map_list_and_reducing_state() { super::map_list_and_reducing_state(super::$backend) }
            #[test] fn reducers_and_clear() { super::reducers_and_clear(super::$backend) }
            #[test] fn declaring_errors_name_the_state() { super::declaring_errors_name_the_state(super::$backend) }
            #[test] fn ttl_hides_and_purges_entries_not_written_in_time() { super::ttl_hides_and_purges_entries_not_written_in_time(super::$backend) }
            #[test] fn ttl_of_value_list_and_map_state() { super::ttl_of_value_list_and_map_state(super::$backend) }
            #[test] fn ttl_entries_are_absent_after_restore() { super::ttl_entries_are_absent_after_restore(super::$backend) }
            #[test] fn snapshot_then_restore_gives_identical_state() { super::snapshot_then_restore_gives_identical_state(super::$backend) }
            #[test] fn writes_before_the_writer_runs_do_not_change_the_snapshot() { super::writes_before_the_writer_runs_do_not_change_the_snapshot(super::$backend) }
            #[test] fn restore_at_another_parallelism_moves_keys_to_their_owner() { super::restore_at_another_parallelism_moves_keys_to_their_owner(super::$backend) }
            #[test] fn restore_refuses_another_max_parallelism() { super::restore_refuses_another_max_parallelism(super::$backend) }
            #[test] fn restore_merges_states_and_declares() { super::restore_merges_states_and_declares(super::$backend) }
        }
    )*};
}

conformance!(heap, rocks);

// ---- RocksDB only ----

mod rocks_only {
    use super::*;

    fn tiny_cache(kg: KeyGroups) -> Backend {
        rocks_with(kg, |o| o.with_cache_bytes(16 * 128))
    }

    /// Hard links to `path` (the stored file and any DB that adopted it).
    fn links(path: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).unwrap().nlink()
    }

    /// A fresh backend restoring one snapshot of its own key groups opens the
    /// snapshot's SST files as its DB (hard links: nothing copied), and the
    /// adopted DB goes on like any other: writes, TTL, snapshots of its own
    /// that restore again. A backend that declared state first, or restores
    /// several snapshots, copies rows instead.
    #[test]
    fn restore_without_rescaling_adopts_the_snapshot_files() {
        let mut store = Store::new();
        let mut b = rocks(KeyGroups::all(128));
        fill(&mut b, KEYS, None);
        let t = b.declare(ttl_desc("t", StateKind::Value, 100)).unwrap();
        b.set_time(1_000);
        b.value_set(t, b"old", b"1").unwrap();
        b.set_time(1_080);
        b.value_set(t, b"new", b"2").unwrap();
        b.set_time(1_150); // "old" expired, "new" live until 1 180
        let snap = store.snapshot_and_upload(&mut b);
        drop(b);
        let ssts: Vec<&PathBuf> = snap.iter().filter(|(n, _)| n.ends_with(".sst")).map(|(_, p)| p).collect();
        assert!(!ssts.is_empty(), "{snap:?}");
        assert!(ssts.iter().all(|p| links(p) == 1));

        let mut r = rocks(KeyGroups::all(128));
        r.restore(std::slice::from_ref(&snap)).unwrap();
        assert!(ssts.iter().all(|p| links(p) == 2), "every stored SST is linked into the restored DB");
        assert_eq!(lens(&mut r), [KEYS; 4]);
        for i in (0..KEYS).step_by(7) {
            check_key(&mut r, i, true);
        }
        // The clock of an earlier process does not bring expired entries back.
        r.set_time(0);
        assert_eq!(r.value_get(t, b"old").unwrap(), None);
        assert_eq!(r.value_get(t, b"new").unwrap(), Some(bytes("2")));
        r.set_time(1_180);
        assert_eq!(r.value_get(t, b"new").unwrap(), None);
        assert_eq!(r.len(t).unwrap(), 0);

        // Writes to the adopted DB, then its own snapshot, restored again.
        let [v, ..] = declare_all(&mut r);
        r.clear(v, b"key-5").unwrap();
        r.value_set(v, b"key-new", b"fresh").unwrap();
        let snap2 = store.snapshot_and_upload(&mut r);
        drop(r);
        let mut r2 = rocks(KeyGroups::all(128));
        r2.restore(&[snap2]).unwrap();
        assert_eq!(r2.value_get(v, b"key-5").unwrap(), None);
        assert_eq!(r2.value_get(v, b"key-new").unwrap(), Some(bytes("fresh")));
        assert_eq!(r2.len(v).unwrap(), KEYS);
        check_key(&mut r2, 6, true);

        // Declared state first: rows are copied, the files not linked.
        let before: Vec<u64> = ssts.iter().map(|p| links(p)).collect();
        let mut c = rocks(KeyGroups::all(128));
        declare_all(&mut c);
        c.restore(std::slice::from_ref(&snap)).unwrap();
        assert_eq!(ssts.iter().map(|p| links(p)).collect::<Vec<_>>(), before);
        assert_eq!(lens(&mut c), [KEYS; 4]);
        check_key(&mut c, 5, true);
    }

    #[test]
    fn record_cache_writes_back_when_more_keys_than_it_holds() {
        let mut b = tiny_cache(KeyGroups::all(128));
        fill(&mut b, KEYS, None);
        // Clears and overwrites of entries written back earlier.
        let [v, _, l, r] = declare_all(&mut b);
        for i in (0..KEYS).step_by(3) {
            let key = format!("key-{i}");
            b.clear(v, key.as_bytes()).unwrap();
            b.list_update(l, key.as_bytes(), Vec::new()).unwrap();
        }
        for i in 0..KEYS {
            assert_eq!(b.reducing_add(r, format!("key-{i}").as_bytes(), 0).unwrap(), i as i64 + 1);
        }
        let check = |b: &mut Backend| {
            for i in 0..KEYS {
                let key = format!("key-{i}");
                let cleared = i % 3 == 0;
                let value = b.value_get(v, key.as_bytes()).unwrap();
                assert_eq!(value, (!cleared).then(|| format!("value-{i}").into_bytes()), "{key}");
                assert_eq!(b.list_get(l, key.as_bytes()).unwrap().is_empty(), cleared, "{key}");
                assert_eq!(b.reducing_get(r, key.as_bytes()).unwrap(), Some(i as i64 + 1), "{key}");
            }
            let cleared = KEYS.div_ceil(3);
            assert_eq!(lens(b), [KEYS - cleared, KEYS, KEYS - cleared, KEYS]);
        };
        check(&mut b);
        let mut store = Store::new();
        let snap = store.snapshot_and_upload(&mut b);
        let mut r2 = tiny_cache(KeyGroups::all(128));
        r2.restore(&[snap]).unwrap();
        check(&mut r2);
        for i in (1..KEYS).step_by(3) {
            check_key(&mut r2, i, true);
        }
    }

    /// Large write-backs (an SST file each, puts and deletes) and the cache's
    /// dirty entries in a snapshot's overlay (puts and deletes over rows
    /// already in RocksDB) restore exactly, at the same and at another
    /// parallelism.
    #[test]
    fn large_write_backs_and_the_overlay_restore_exactly() {
        const N: usize = 15_000;
        // Both write-backs (N puts, N/3 deletes) go in as SST files.
        let mut b = rocks_with(KeyGroups::all(128), |o| o.with_ingest_rows(4096));
        let v = b.declare(desc("v", StateKind::Value)).unwrap();
        let key = |i: usize| format!("key-{i}").into_bytes();
        for i in 0..N {
            b.value_set(v, &key(i), format!("value-{i}").as_bytes()).unwrap();
        }
        assert_eq!(b.len(v).unwrap(), N); // written back: one SST of N puts
        for i in (0..N).step_by(3) {
            b.clear(v, &key(i)).unwrap();
        }
        assert_eq!(b.len(v).unwrap(), N - N.div_ceil(3)); // deletes, in an SST too
        let work = b._dir.as_ref().unwrap().path().join("work");
        let stray: Vec<_> = std::fs::read_dir(&work).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().ends_with(".sst")).collect();
        assert!(stray.is_empty(), "written-back SST files are moved into the DB: {stray:?}");
        // Dirty in the cache at the snapshot: overwrites, clears and new keys.
        for i in (0..N).step_by(5) {
            b.value_set(v, &key(i), b"new").unwrap();
        }
        for i in (1..N).step_by(7) {
            b.clear(v, &key(i)).unwrap();
        }
        for i in N..N + 100 {
            b.value_set(v, &key(i), b"added").unwrap();
        }
        let expect = |i: usize| -> Option<Vec<u8>> {
            if i >= N {
                Some(b"added".to_vec())
            } else if i % 7 == 1 {
                None // cleared last
            } else if i % 5 == 0 {
                Some(b"new".to_vec())
            } else if i % 3 == 0 {
                None
            } else {
                Some(format!("value-{i}").into_bytes())
            }
        };
        let live = (0..N + 100).filter(|&i| expect(i).is_some()).count();
        let mut store = Store::new();
        let snap = store.snapshot_and_upload(&mut b);
        assert!(snap.iter().any(|(n, _)| n == "weir-rocks.overlay"), "{snap:?}");
        // Same parallelism: the checkpoint's files adopted, the overlay applied.
        let mut same = rocks(KeyGroups::all(128));
        same.restore(std::slice::from_ref(&snap)).unwrap();
        // Parallelism 2: rows copied by key group, the overlay's filtered too.
        let mut halves: Vec<Backend> = (0..2).map(|t| rocks(KeyGroups::of_task(t, 2, 128))).collect();
        for h in &mut halves {
            h.restore(std::slice::from_ref(&snap)).unwrap();
        }
        assert_eq!(same.len(v).unwrap(), live);
        assert_eq!(halves.iter_mut().map(|h| h.len(v).unwrap()).sum::<usize>(), live);
        for i in 0..N + 100 {
            assert_eq!(same.value_get(v, &key(i)).unwrap(), expect(i), "key {i} at the same parallelism");
            let owner = (key_group(&key(i), 128) * 2 / 128) as usize;
            assert_eq!(halves[owner].value_get(v, &key(i)).unwrap(), expect(i), "key {i} in task {owner} of 2");
            assert_eq!(b.value_get(v, &key(i)).unwrap(), expect(i), "key {i} in the original");
        }
    }

    #[test]
    fn state_larger_than_the_caches_survives() {
        // A 1 MiB block cache and an 8 KiB record cache for ~12 MiB of state.
        let make = |kg| rocks_with(kg, |o| o.with_cache_bytes(64 * 128).with_block_cache(rocksdb_cache(1 << 20)));
        let mut b = make(KeyGroups::all(128));
        let v = b.declare(desc("big", StateKind::Value)).unwrap();
        let value = |i: usize| format!("{i:>6}").repeat(400).into_bytes();
        for i in 0..5_000 {
            b.value_set(v, format!("k{i}").as_bytes(), &value(i)).unwrap();
        }
        let mut store = Store::new();
        let snap = store.snapshot_and_upload(&mut b);
        for i in (0..5_000).rev() {
            assert_eq!(b.value_get(v, format!("k{i}").as_bytes()).unwrap(), Some(value(i)), "k{i}");
        }
        let mut r = make(KeyGroups::all(128));
        r.restore(&[snap]).unwrap();
        assert_eq!(r.len(v).unwrap(), 5_000);
        for i in 0..5_000 {
            assert_eq!(r.value_get(v, format!("k{i}").as_bytes()).unwrap(), Some(value(i)), "k{i}");
        }
    }

    fn rocksdb_cache(bytes: usize) -> rocksdb::Cache {
        rocksdb::Cache::new_lru_cache(bytes)
    }

    #[test]
    fn consecutive_snapshots_share_their_sst_files() {
        let mut store = Store::new();
        let mut b = rocks(KeyGroups::all(128));
        fill(&mut b, 1_000, None);
        let first = store.snapshot(&mut b);
        let second = store.snapshot(&mut b);
        let shared = |files: &[SnapshotFile]| -> Vec<String> {
            files.iter().filter(|f| f.shared).map(|f| f.name.clone()).collect()
        };
        assert!(!shared(&first).is_empty(), "{first:?}");
        assert!(shared(&first).iter().all(|n| n.ends_with(".sst")));
        assert_eq!(shared(&first), shared(&second), "no writes: the same SST files");
        assert!(first.iter().filter(|f| !f.shared).any(|f| f.name.starts_with("MANIFEST")), "{first:?}");

        // After more writes, the old SSTs are still shared and new ones added.
        let contents: BTreeMap<String, Vec<u8>> =
            first.iter().map(|f| (f.name.clone(), std::fs::read(&f.path).unwrap())).collect();
        let [v, ..] = declare_all(&mut b);
        for i in 0..1_000 {
            b.value_set(v, format!("key-{i}").as_bytes(), b"changed").unwrap();
        }
        // Cached changes go into a snapshot's overlay, not into new SSTs...
        let cached = store.snapshot(&mut b);
        assert_eq!(shared(&cached), shared(&first), "{first:?} {cached:?}");
        let overlay = |files: &[SnapshotFile]| files.iter().find(|f| f.name == "weir-rocks.overlay").map(|f| std::fs::metadata(&f.path).unwrap().len());
        assert!(overlay(&first).is_some() && overlay(&cached).is_some(), "{first:?} {cached:?}");
        // ...until the cache writes them back.
        b.len(v).unwrap();
        let third = store.snapshot(&mut b);
        assert_eq!(overlay(&third), None, "nothing dirty is left in the cache: {third:?}");
        let third_shared = shared(&third);
        assert!(shared(&first).iter().all(|n| third_shared.contains(n)), "{first:?} {third:?}");
        assert!(third_shared.len() > shared(&first).len());
        // Files of an earlier snapshot do not change.
        for f in &first {
            assert_eq!(std::fs::read(&f.path).unwrap(), contents[&f.name], "{}", f.name);
        }
        // Another instance names its files differently.
        let mut other = rocks(KeyGroups::all(128));
        fill(&mut other, 10, None);
        let other = store.snapshot(&mut other);
        assert!(shared(&other).iter().all(|n| !third_shared.contains(n)));

        // The third snapshot restores the changed values.
        let snap = store.upload(&third);
        let mut r = rocks(KeyGroups::all(128));
        r.restore(&[snap]).unwrap();
        assert_eq!(r.value_get(v, b"key-5").unwrap(), Some(bytes("changed")));
        check_key(&mut r, KEYS, false);
    }

    #[test]
    fn a_heap_snapshot_cannot_be_restored_and_vice_versa() {
        let mut store = Store::new();
        let mut h = heap(KeyGroups::all(128));
        fill(&mut h, 10, None);
        let snap = store.snapshot_and_upload(&mut h);
        let mut r = rocks(KeyGroups::all(128));
        match r.restore(&[snap]).unwrap_err() {
            StateError::Restore { file, message } => {
                assert!(file.ends_with("heap.state"), "{file}");
                assert!(message.contains("taken by another state backend (heap)"), "{message}");
            }
            e => panic!("unexpected error {e}"),
        }

        let mut r = rocks(KeyGroups::all(128));
        fill(&mut r, 10, None);
        let snap = store.snapshot_and_upload(&mut r);
        let err = heap(KeyGroups::all(128)).restore(&[snap]).unwrap_err().to_string();
        assert!(err.contains("is not a file of a heap-backend snapshot"), "{err}");
    }

    #[test]
    fn the_working_directory_is_scratch() {
        let dir = TempDir::new().unwrap();
        let work: PathBuf = dir.path().join("work");
        std::fs::create_dir_all(work.join("leftover")).unwrap();
        let b = RocksBackend::open(RocksOptions::new(&work), KeyGroups::all(128)).unwrap();
        assert!(!work.join("leftover").exists(), "open wipes the directory");
        drop(b);
        assert!(!work.exists(), "drop deletes it");
        let err = RocksBackend::open(RocksOptions::new(&work), KeyGroups::all(100_000)).err().unwrap().to_string();
        assert_eq!(err, "state storage: the RocksDB state backend supports 1 to 65536 key groups (max_parallelism), not 100000");
    }
}
