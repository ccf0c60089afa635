//! The engine with native operators: routing, chaining, back-pressure,
//! batching, side outputs, unions and failures.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use weir_engine::*;

fn opts(batch_size: usize) -> EngineOptions {
    EngineOptions { pipeline: "test".into(), batch_size, ..Default::default() }
}

/// A bounded source of fixed rows (offsets 1..); or unbounded repeating.
struct Rows {
    rows: Vec<(String, String)>,
    repeat: bool,
    produced: Arc<AtomicU64>,
}

impl SourceFactory for Rows {
    fn create(&self, _: &TaskContext) -> Result<Box<dyn Source>, SourceError> {
        Ok(Box::new(RowsIter { rows: self.rows.clone(), next: 0, repeat: self.repeat, produced: self.produced.clone() }))
    }

    fn describe_offset(&self, offset: u64) -> String {
        format!("row {offset}")
    }
}

fn rows(rows: &[(&str, &str)]) -> Arc<Rows> {
    Arc::new(Rows {
        rows: rows.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        repeat: false,
        produced: Arc::default(),
    })
}

struct RowsIter {
    rows: Vec<(String, String)>,
    next: usize,
    repeat: bool,
    produced: Arc<AtomicU64>,
}

impl Source for RowsIter {
    fn poll(&mut self, out: &mut RecordBatch, max: usize) -> Result<SourcePoll, SourceError> {
        for _ in 0..max {
            if self.next >= self.rows.len() && !self.repeat {
                return Ok(SourcePoll::Exhausted);
            }
            let (k, v) = &self.rows[self.next % self.rows.len()];
            self.next += 1;
            out.push(k.as_bytes(), v.as_bytes(), NO_TIMESTAMP, Origin::at(self.next as u64));
            self.produced.fetch_add(1, Ordering::Relaxed);
        }
        Ok(SourcePoll::Ready)
    }
}

type Received = (u32, String, String, String);

/// Collects (task, thread, key, value) of everything it receives.
#[derive(Clone, Default)]
struct Collect {
    /// (task, thread, key, value) of each record.
    got: Arc<Mutex<Vec<Received>>>,
    delay_per_batch: Duration,
    consumed: Arc<AtomicU64>,
}

impl SinkFactory for Collect {
    fn create(&self, ctx: &TaskContext) -> Result<Box<dyn Sink>, SinkError> {
        Ok(Box::new(CollectSink { c: self.clone(), task: ctx.task_index }))
    }
}

struct CollectSink {
    c: Collect,
    task: u32,
}

impl Sink for CollectSink {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        std::thread::sleep(self.c.delay_per_batch);
        let thread = std::thread::current().name().unwrap_or("").to_string();
        let mut g = self.c.got.lock().unwrap();
        for r in batch.rows() {
            g.push((
                self.task,
                thread.clone(),
                String::from_utf8_lossy(r.key).into(),
                String::from_utf8_lossy(r.value).into(),
            ));
        }
        self.c.consumed.fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

impl Collect {
    fn values(&self) -> Vec<String> {
        let mut v: Vec<String> = self.got.lock().unwrap().iter().map(|r| r.3.clone()).collect();
        v.sort();
        v
    }
}

/// A native operator from a closure over each row.
struct MapOp<F>(Arc<F>);

impl<F> OperatorFactory for MapOp<F>
where
    F: Fn(&TaskContext, RecordRef<'_>, &mut Emitter) -> Result<(), String> + Send + Sync + 'static,
{
    fn create(&self, ctx: &TaskContext) -> Result<Box<dyn Operator>, OperatorError> {
        Ok(Box::new(MapInst { f: self.0.clone(), ctx: ctx.clone() }))
    }
}

struct MapInst<F> {
    f: Arc<F>,
    ctx: TaskContext,
}

impl<F> Operator for MapInst<F>
where
    F: Fn(&TaskContext, RecordRef<'_>, &mut Emitter) -> Result<(), String> + Send + Sync,
{
    fn process(&mut self, input: RecordBatch, out: &mut Emitter) -> Result<(), OperatorError> {
        for r in input.rows() {
            (self.f)(&self.ctx, r, out).map_err(|e| OperatorError::new(e).at(Some(r.origin)))?;
        }
        Ok(())
    }
}

fn map<F>(f: F) -> Arc<MapOp<F>>
where
    F: Fn(&TaskContext, RecordRef<'_>, &mut Emitter) -> Result<(), String> + Send + Sync + 'static,
{
    Arc::new(MapOp(Arc::new(f)))
}

#[test]
fn keyed_records_reach_the_task_owning_their_key_group() {
    let words: Vec<(String, String)> = (0..500).map(|i| (format!("w{}", i % 37), i.to_string())).collect();
    let refs: Vec<(&str, &str)> = words.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut df = Dataflow::new(opts(16));
    let src = df.add_source("src", 1, rows(&refs)).unwrap();
    let tag = map(|ctx, r, out| {
        out.main().push(r.key, ctx.task_index.to_string().as_bytes(), r.timestamp, r.origin);
        Ok(())
    });
    let op = df.add_operator("tag", 3, tag, vec![Edge::key_by(src, KeySelector::RecordKey)], vec![]).unwrap();
    let sink = Collect::default();
    df.add_sink("out", 3, Arc::new(sink.clone()), vec![Edge::forward(op)]).unwrap();
    let report = df.start().unwrap().wait().unwrap();

    let got = sink.got.lock().unwrap();
    assert_eq!(got.len(), 500);
    for (sink_task, _, key, op_task) in got.iter() {
        let expected = task_for_key_group(key_group(key.as_bytes(), 128), 128, 3);
        assert_eq!(op_task, &expected.to_string(), "key {key}");
        assert_eq!(*sink_task, expected, "forward edge keeps the task");
    }
    let tag = report.nodes.iter().find(|n| n.node == "tag").unwrap();
    assert_eq!((tag.records_in, tag.records_out, tag.parallelism), (500, 500, 3));
}

#[test]
fn forward_edges_with_equal_parallelism_are_chained_into_one_thread() {
    let mut df = Dataflow::new(opts(4));
    let src = df.add_source("src", 1, rows(&[("a", "1"), ("b", "2")])).unwrap();
    let up = df
        .add_operator("upper", 1, map(|_, r, out| {
            let v = String::from_utf8_lossy(r.value).to_uppercase() + "!";
            out.main().push(r.key, v.as_bytes(), r.timestamp, r.origin);
            Ok(())
        }), vec![Edge::forward(src)], vec![])
        .unwrap();
    let sink = Collect::default();
    df.add_sink("out", 1, Arc::new(sink.clone()), vec![Edge::forward(up)]).unwrap();
    df.start().unwrap().wait().unwrap();
    let got = sink.got.lock().unwrap();
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|r| r.1 == "src-0"), "sink ran on the source's thread: {got:?}");
    assert_eq!(got.iter().map(|r| r.3.as_str()).collect::<Vec<_>>(), ["1!", "2!"]);
}

#[test]
fn side_outputs_unions_and_json_key_fields() {
    let input = [
        ("", r#"{"user":"ann","n":1}"#),
        ("", r#"{"user":"bob","n":-2}"#),
        ("", r#"{"user":"ann","n":3}"#),
    ];
    let mut df = Dataflow::new(opts(2));
    let src = df.add_source("src", 1, rows(&input)).unwrap();
    // Port 1: negative amounts.
    let split = map(|_, r, out| {
        let port = if String::from_utf8_lossy(r.value).contains("\"n\":-") { 1 } else { 0 };
        out.port(port).push(r.key, r.value, r.timestamp, r.origin);
        Ok(())
    });
    let op = df
        .add_operator("split", 1, split, vec![Edge::forward(src)], vec!["negative".into()])
        .unwrap();
    let by_user = map(|_, r, out| {
        let v = format!("{}:{}", String::from_utf8_lossy(r.key), String::from_utf8_lossy(r.value));
        out.main().push(r.key, v.as_bytes(), r.timestamp, r.origin);
        Ok(())
    });
    let keyed = df
        .add_operator(
            "by-user",
            2,
            by_user,
            vec![Edge::key_by(op, KeySelector::JsonField(vec!["user".into()]))],
            vec![],
        )
        .unwrap();
    let neg = Collect::default();
    df.add_sink("neg", 1, Arc::new(neg.clone()), vec![Edge { from: op, port: 1, partitioning: Partitioning::Forward }])
        .unwrap();
    let all = Collect::default();
    // A union of the main output of `split` and of `by-user`.
    df.add_sink("all", 1, Arc::new(all.clone()), vec![Edge::forward(op), Edge::forward(keyed)]).unwrap();
    df.start().unwrap().wait().unwrap();

    assert_eq!(neg.values(), vec![r#"{"user":"bob","n":-2}"#.to_string()]);
    assert_eq!(
        all.values(),
        vec![
            r#"ann:{"user":"ann","n":1}"#.to_string(),
            r#"ann:{"user":"ann","n":3}"#.to_string(),
            r#"{"user":"ann","n":1}"#.to_string(),
            r#"{"user":"ann","n":3}"#.to_string(),
        ]
    );
}

#[test]
fn a_slow_sink_back_pressures_an_unbounded_source() {
    let source = Arc::new(Rows { rows: vec![("k".into(), "v".into())], repeat: true, produced: Arc::default() });
    let produced = source.produced.clone();
    let mut df = Dataflow::new(EngineOptions { batch_size: 10, channel_capacity: 2, ..opts(10) });
    let src = df.add_source("src", 1, source).unwrap();
    let sink = Collect { delay_per_batch: Duration::from_millis(2), ..Default::default() };
    // Parallelism 2 on the sink forces a channel between the tasks.
    df.add_sink("out", 2, Arc::new(sink.clone()), vec![Edge { from: src, port: 0, partitioning: Partitioning::Rebalance }])
        .unwrap();
    let job = df.start().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let (p, c) = (produced.load(Ordering::Relaxed), sink.consumed.load(Ordering::Relaxed));
    job.cancel();
    assert!(matches!(job.wait(), Err(EngineError::Cancelled)));
    assert!(c > 0, "the sink consumed nothing");
    // In flight at most: 2 channels x 2 batches x 10 records, a batch being
    // written by each sink task and one being produced.
    assert!(p <= c + 80, "source ran ahead of a slow sink: produced {p}, consumed {c}");
}

#[test]
fn a_batch_closes_at_its_timeout_when_records_trickle_in() {
    struct Trickle;
    struct TrickleIter(u32, Instant);
    impl SourceFactory for Trickle {
        fn create(&self, _: &TaskContext) -> Result<Box<dyn Source>, SourceError> {
            Ok(Box::new(TrickleIter(0, Instant::now())))
        }
    }
    impl Source for TrickleIter {
        fn poll(&mut self, out: &mut RecordBatch, _: usize) -> Result<SourcePoll, SourceError> {
            match self.0 {
                0 => {
                    out.push(b"k", b"first", NO_TIMESTAMP, Origin::default());
                    self.0 = 1;
                    Ok(SourcePoll::Ready)
                }
                1 if self.1.elapsed() < Duration::from_millis(600) => Ok(SourcePoll::Pending(Duration::from_millis(5))),
                1 => {
                    out.push(b"k", b"second", NO_TIMESTAMP, Origin::default());
                    self.0 = 2;
                    Ok(SourcePoll::Ready)
                }
                _ => Ok(SourcePoll::Exhausted),
            }
        }
    }
    struct Stamp(Arc<Mutex<Vec<(String, Instant)>>>);
    impl SinkFactory for Stamp {
        fn create(&self, _: &TaskContext) -> Result<Box<dyn Sink>, SinkError> {
            Ok(Box::new(Stamp(self.0.clone())))
        }
    }
    impl Sink for Stamp {
        fn write(&mut self, b: &RecordBatch) -> Result<(), SinkError> {
            let now = Instant::now();
            self.0.lock().unwrap().extend(b.rows().map(|r| (String::from_utf8_lossy(r.value).into_owned(), now)));
            Ok(())
        }
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut df = Dataflow::new(EngineOptions { batch_size: 1000, batch_timeout: Duration::from_millis(1), ..opts(1000) });
    let src = df.add_source("src", 1, Arc::new(Trickle)).unwrap();
    df.add_sink("out", 2, Arc::new(Stamp(seen.clone())), vec![Edge::key_by(src, KeySelector::RecordKey)]).unwrap();
    let started = Instant::now();
    df.start().unwrap().wait().unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.iter().map(|s| s.0.as_str()).collect::<Vec<_>>(), ["first", "second"]);
    // The first record is delivered long before the second exists, not when
    // 1000 records have gathered or the input ends.
    assert!(seen[0].1 - started < Duration::from_millis(300), "first record waited {:?}", seen[0].1 - started);
}

#[test]
fn an_operator_failure_names_the_source_record_and_stops_the_job() {
    let source = Arc::new(Rows {
        rows: vec![("a".into(), "ok".into()), ("b".into(), "ok".into()), ("c".into(), "boom".into())],
        repeat: true,
        produced: Arc::default(),
    });
    let mut df = Dataflow::new(opts(2));
    let src = df.add_source("src", 1, source).unwrap();
    let fail = map(|_, r, out| {
        if r.value == b"boom" {
            return Err(format!("cannot handle key {}", String::from_utf8_lossy(r.key)));
        }
        out.main().push(r.key, r.value, r.timestamp, r.origin);
        Ok(())
    });
    let op = df.add_operator("check", 2, fail, vec![Edge::key_by(src, KeySelector::RecordKey)], vec![]).unwrap();
    df.add_sink("out", 2, Arc::new(Collect::default()), vec![Edge::forward(op)]).unwrap();
    let err = df.start().unwrap().wait().unwrap_err().to_string();
    let task = task_for_key_group(key_group(b"c", 128), 128, 2);
    assert_eq!(
        err,
        format!("operator 'check' (task {task} of 2) failed on the record from source 'src' at row 3: cannot handle key c")
    );
}

#[test]
fn a_panicking_operator_fails_the_job_not_the_process() {
    let mut df = Dataflow::new(opts(2));
    let src = df.add_source("src", 1, rows(&[("a", "1")])).unwrap();
    let op = df
        .add_operator("bad", 1, map(|_, _, _| panic!("operator bug")), vec![Edge::forward(src)], vec![])
        .unwrap();
    df.add_sink("out", 1, Arc::new(Collect::default()), vec![Edge::forward(op)]).unwrap();
    let err = df.start().unwrap().wait().unwrap_err();
    assert!(matches!(&err, EngineError::Panicked { node, message, .. } if node == "bad" && message == "operator bug"), "{err}");
    assert_eq!(err.to_string(), "'bad' (task 0) panicked: operator bug");
}

#[test]
fn invalid_dataflows_are_refused() {
    let mut df = Dataflow::new(opts(2));
    let src = df.add_source("src", 1, rows(&[])).unwrap();
    let e = df.add_source("src", 1, rows(&[])).unwrap_err().to_string();
    assert_eq!(e, "invalid dataflow: two nodes are named 'src'");
    let e = df.add_sink("out", 0, Arc::new(Collect::default()), vec![Edge::forward(src)]).unwrap_err().to_string();
    assert!(e.contains("parallelism 0"), "{e}");
    let e = df
        .add_sink("out", 1, Arc::new(Collect::default()), vec![Edge { from: src, port: 1, partitioning: Partitioning::Forward }])
        .unwrap_err()
        .to_string();
    assert!(e.contains("reads output port 1 of 'src', which has 0 side outputs"), "{e}");
    let empty = Dataflow::new(opts(2));
    assert!(empty.start().is_err());
}

/// Records with given timestamps, then (optionally) nothing for a while before
/// ending; sets `ended` when it is exhausted.
struct Timed {
    ts: Vec<i64>,
    quiet: Duration,
    ended: Arc<std::sync::atomic::AtomicBool>,
}

impl SourceFactory for Timed {
    fn create(&self, _: &TaskContext) -> Result<Box<dyn Source>, SourceError> {
        Ok(Box::new(TimedIter { ts: self.ts.clone(), next: 0, quiet_until: None, quiet: self.quiet, ended: self.ended.clone() }))
    }
}

struct TimedIter {
    ts: Vec<i64>,
    next: usize,
    quiet_until: Option<Instant>,
    quiet: Duration,
    ended: Arc<std::sync::atomic::AtomicBool>,
}

impl Source for TimedIter {
    fn poll(&mut self, out: &mut RecordBatch, max: usize) -> Result<SourcePoll, SourceError> {
        while self.next < self.ts.len() && out.len() < max {
            out.push(b"k", b"v", self.ts[self.next], Origin::at(self.next as u64));
            self.next += 1;
        }
        if self.next < self.ts.len() {
            return Ok(SourcePoll::Ready);
        }
        let until = *self.quiet_until.get_or_insert_with(|| Instant::now() + self.quiet);
        if Instant::now() < until {
            return Ok(SourcePoll::Pending(Duration::from_millis(5)));
        }
        self.ended.store(true, Ordering::Relaxed);
        Ok(SourcePoll::Exhausted)
    }

    fn position(&self) -> Option<Vec<u8>> {
        Some((self.next as u64).to_le_bytes().to_vec())
    }
}

/// Records the watermarks it sees, and whether the quiet source had ended.
struct WatermarkLog(Arc<Mutex<Vec<(i64, bool)>>>, Arc<std::sync::atomic::AtomicBool>);

impl Operator for WatermarkLog {
    fn process(&mut self, _input: RecordBatch, _out: &mut Emitter) -> Result<(), OperatorError> {
        Ok(())
    }

    fn on_watermark(&mut self, wm: i64, _out: &mut Emitter) -> Result<(), OperatorError> {
        self.0.lock().unwrap().push((wm, self.1.load(Ordering::Relaxed)));
        Ok(())
    }
}

#[test]
fn watermarks_are_the_minimum_of_the_inputs_and_an_idle_input_is_left_out() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let quiet_ended = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut df = Dataflow::new(opts(4));
    let busy = Timed { ts: (0..40).map(|i| i * 100).collect(), quiet: Duration::ZERO, ended: Arc::default() };
    let quiet = Timed { ts: vec![500], quiet: Duration::from_millis(600), ended: quiet_ended.clone() };
    let a = df.add_source("busy", 1, Arc::new(busy)).unwrap();
    let b = df.add_source("quiet", 1, Arc::new(quiet)).unwrap();
    let ooo = Duration::from_millis(50);
    df.set_event_time(a, EventTime { field: None, out_of_orderness: ooo, idle_timeout: None, unit: None }).unwrap();
    df.set_event_time(b, EventTime { field: None, out_of_orderness: ooo, idle_timeout: Some(Duration::from_millis(100)), unit: None }).unwrap();
    let (l, e) = (log.clone(), quiet_ended.clone());
    let op = df
        .add_operator(
            "log",
            1,
            Arc::new(move |_: &TaskContext| Ok(Box::new(WatermarkLog(l.clone(), e.clone())) as Box<dyn Operator>)),
            vec![Edge::forward(a), Edge::forward(b)],
            vec![],
        )
        .unwrap();
    df.add_sink("out", 1, Arc::new(Collect::default()), vec![Edge::forward(op)]).unwrap();
    df.start().unwrap().wait().unwrap();
    let log = log.lock().unwrap().clone();
    assert!(log.windows(2).all(|w| w[0].0 < w[1].0), "watermarks only advance: {log:?}");
    // While the quiet source was active, its 500 - 50 - 1 held the watermark
    // back; once it was idle (long before it ended), the busy one's went through.
    assert_eq!(log.first(), Some(&(449, false)), "{log:?}");
    assert!(log.iter().any(|&(wm, ended)| wm > 449 && !ended), "the idle input was not left out: {log:?}");
}
