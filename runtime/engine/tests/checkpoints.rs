//! Checkpoints through the whole engine with an in-memory store: a stop with
//! a savepoint publishes what the savepoint covers before the job ends, and a
//! chain of thousands of operators runs in one task's bounded stack.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use weir_engine::*;

/// Counts from 0, forever; replayable.
struct Count;

impl SourceFactory for Count {
    fn create(&self, _: &TaskContext) -> Result<Box<dyn Source>, SourceError> {
        Ok(Box::new(Counting(0)))
    }
}

struct Counting(u64);

impl Source for Counting {
    fn poll(&mut self, out: &mut RecordBatch, max: usize) -> Result<SourcePoll, SourceError> {
        for _ in 0..max.min(64) {
            out.push(b"k", self.0.to_string().as_bytes(), NO_TIMESTAMP, Origin::at(self.0));
            self.0 += 1;
        }
        std::thread::sleep(Duration::from_millis(1));
        Ok(SourcePoll::Ready)
    }

    fn position(&self) -> Option<Vec<u8>> {
        Some(self.0.to_le_bytes().to_vec())
    }
}

/// Stages rows per epoch and publishes them on commit (two-phase).
#[derive(Clone, Default)]
struct Staged {
    published: Arc<Mutex<Vec<u64>>>,
}

struct StagedSink {
    s: Staged,
    open: Vec<u64>,
    staged: BTreeMap<u64, Vec<u64>>,
}

impl SinkFactory for Staged {
    fn create(&self, _: &TaskContext) -> Result<Box<dyn Sink>, SinkError> {
        Ok(Box::new(StagedSink { s: self.clone(), open: Vec::new(), staged: BTreeMap::new() }))
    }
}

impl Sink for StagedSink {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        self.open.extend(batch.rows().map(|r| std::str::from_utf8(r.value).unwrap().parse::<u64>().unwrap()));
        Ok(())
    }

    fn pre_commit(&mut self, epoch: u64) -> Result<(), SinkError> {
        self.staged.insert(epoch, std::mem::take(&mut self.open));
        Ok(())
    }

    fn commit(&mut self, epoch: u64) -> Result<(), SinkError> {
        let later = self.staged.split_off(&(epoch.saturating_add(1)));
        let done = std::mem::replace(&mut self.staged, later);
        self.s.published.lock().unwrap().extend(done.into_values().flatten());
        Ok(())
    }
}

/// Keeps nothing: every part is "stored" as given.
#[derive(Default)]
struct NullStore {
    savepoints: Mutex<Vec<(u64, String)>>,
}

impl CheckpointStore for NullStore {
    fn store_task(&self, _: u64, states: &[TaskState]) -> Result<Vec<StoredTask>, StoreError> {
        Ok(states
            .iter()
            .map(|s| StoredTask {
                node: s.node.clone(),
                task: s.task,
                parallelism: s.parallelism,
                position: s.position.clone(),
                watermark: s.watermark,
                files: Vec::new(),
                finished: false,
            })
            .collect())
    }

    fn complete(&self, _: u64, _: bool, _: &[StoredTask]) -> Result<(), StoreError> {
        Ok(())
    }

    fn keep_as_savepoint(&self, epoch: u64, name: &str) -> Result<(), StoreError> {
        self.savepoints.lock().unwrap().push((epoch, name.into()));
        Ok(())
    }
}

fn checkpointing(store: Arc<NullStore>, dir: &std::path::Path) -> CheckpointConfig {
    CheckpointConfig { interval: Some(Duration::from_millis(20)), store, staging_dir: dir.to_path_buf(), first_epoch: 1 }
}

#[test]
fn a_stop_with_savepoint_publishes_everything_the_savepoint_covers() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(NullStore::default());
    let sink = Staged::default();
    let mut df = Dataflow::new(EngineOptions { batch_size: 16, ..Default::default() });
    let src = df.add_source("count", 1, Arc::new(Count)).unwrap();
    let pass = Arc::new(|_: &TaskContext| Ok(Box::new(Pass) as Box<dyn Operator>));
    // Parallelism 2 behind a rebalance: the sinks run in other tasks than the source.
    let op = df.add_operator("pass", 2, pass, vec![Edge { from: src, port: 0, partitioning: Partitioning::Rebalance }], vec![]).unwrap();
    df.add_sink("out", 2, Arc::new(sink.clone()), vec![Edge::forward(op)]).unwrap();
    df.set_checkpointing(checkpointing(store.clone(), dir.path()));
    let job = df.start().unwrap();
    let control = job.control();
    std::thread::sleep(Duration::from_millis(200));
    let epoch = control.stop_with_savepoint("stop", Duration::from_secs(10)).unwrap();
    assert!(matches!(job.wait(), Err(EngineError::Stopped)));
    assert_eq!(*store.savepoints.lock().unwrap(), vec![(epoch, "stop".to_string())]);
    // Every row before the savepoint's barrier, each once, and nothing after.
    let mut got = sink.published.lock().unwrap().clone();
    got.sort();
    assert!(!got.is_empty());
    assert_eq!(got, (0..got.len() as u64).collect::<Vec<_>>(), "a prefix of the input, each row once");
}

struct Pass;

impl Operator for Pass {
    fn process(&mut self, input: RecordBatch, out: &mut Emitter) -> Result<(), OperatorError> {
        out.main().append(&input);
        Ok(())
    }
}

/// Bounded: 0..n.
struct Upto(u64);

impl SourceFactory for Upto {
    fn create(&self, _: &TaskContext) -> Result<Box<dyn Source>, SourceError> {
        Ok(Box::new(UptoIter(0, self.0)))
    }
}

struct UptoIter(u64, u64);

impl Source for UptoIter {
    fn poll(&mut self, out: &mut RecordBatch, max: usize) -> Result<SourcePoll, SourceError> {
        for _ in 0..max {
            if self.0 >= self.1 {
                return Ok(SourcePoll::Exhausted);
            }
            out.push(b"", self.0.to_string().as_bytes(), NO_TIMESTAMP, Origin::at(self.0));
            self.0 += 1;
        }
        Ok(SourcePoll::Ready)
    }
}

#[derive(Clone, Default)]
struct Tally(Arc<AtomicU64>);

impl SinkFactory for Tally {
    fn create(&self, _: &TaskContext) -> Result<Box<dyn Sink>, SinkError> {
        Ok(Box::new(self.clone()))
    }
}

impl Sink for Tally {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        self.0.fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

#[test]
fn a_chain_of_twenty_thousand_operators_runs_in_one_task() {
    let mut df = Dataflow::new(EngineOptions::default());
    let mut prev = df.add_source("src", 1, Arc::new(Upto(1_000))).unwrap();
    let pass = Arc::new(|_: &TaskContext| Ok(Box::new(Pass) as Box<dyn Operator>));
    for i in 0..20_000 {
        prev = df.add_operator(&format!("op{i}"), 1, pass.clone(), vec![Edge::forward(prev)], vec![]).unwrap();
    }
    let tally = Tally::default();
    df.add_sink("out", 1, Arc::new(tally.clone()), vec![Edge::forward(prev)]).unwrap();
    assert_eq!(PhysicalPlan::of(df.logical()).tasks.len(), 1, "one chained task");
    df.start().unwrap().wait().unwrap();
    assert_eq!(tally.0.load(Ordering::Relaxed), 1_000);
}
