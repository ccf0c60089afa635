//! Connectors and an operator kind registered from outside the spec crate:
//! they get typed configs, checks with positions, a place in `weir
//! validate`'s list of types, and they run in a pipeline, also one rebuilt
//! from its serialised logical dataflow.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use weir_engine::{
    Dataflow, Emitter, LogicalDataflow, Operator, OperatorError, OperatorFactory, Origin, RecordBatch, Sink, SinkError, SinkFactory,
    Source, SourceError, SourceFactory, SourcePoll, TaskContext, NO_TIMESTAMP,
};
use weir_spec::{
    BuildContext, BuildError, BuiltOperator, Check, Extensions, OperatorKind, Registry, RegistryResolver, SinkConnector,
    SourceConnector, SpecError,
};

/// `type: count-up`: the numbers `from..to`, keyed by their last digit.
struct CountUp;

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CountUpConfig {
    #[serde(default)]
    from: u64,
    to: u64,
}

impl SourceConnector for CountUp {
    type Config = CountUpConfig;
    const TYPE: &'static str = "count-up";

    fn check(&self, c: &CountUpConfig, cx: &Check<'_>) -> Result<(), SpecError> {
        if c.to < c.from {
            return Err(cx.error("to", format!("must not be below from ({})", c.from)));
        }
        Ok(())
    }

    fn build(&self, c: CountUpConfig, _: &BuildContext<'_>) -> Result<Arc<dyn SourceFactory>, BuildError> {
        Ok(Arc::new(c))
    }
}

impl SourceFactory for CountUpConfig {
    fn create(&self, ctx: &TaskContext) -> Result<Box<dyn Source>, SourceError> {
        let step = u64::from(ctx.parallelism);
        Ok(Box::new(Counting { next: self.from + u64::from(ctx.task_index), to: self.to, step }))
    }
}

struct Counting {
    next: u64,
    to: u64,
    step: u64,
}

impl Source for Counting {
    fn poll(&mut self, out: &mut RecordBatch, max: usize) -> Result<SourcePoll, SourceError> {
        for _ in 0..max {
            if self.next >= self.to {
                return Ok(SourcePoll::Exhausted);
            }
            let n = self.next;
            out.push((n % 10).to_string().as_bytes(), format!("n{n}").as_bytes(), NO_TIMESTAMP, Origin::at(n));
            self.next += self.step;
        }
        Ok(SourcePoll::Ready)
    }
}

/// `type: upper`: upper-cases values, natively (no plugin).
struct Upper;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpperConfig {
    #[serde(default)]
    suffix: String,
}

impl OperatorKind for Upper {
    type Config = UpperConfig;
    const TYPE: &'static str = "upper";

    fn build(&self, c: UpperConfig, _: &BuildContext<'_>) -> Result<BuiltOperator, BuildError> {
        let suffix = c.suffix;
        let factory: Arc<dyn OperatorFactory> =
            Arc::new(move |_: &TaskContext| Ok(Box::new(UpperOp(suffix.clone())) as Box<dyn Operator>));
        Ok(BuiltOperator { factory, logic: None, state_shape: None })
    }
}

struct UpperOp(String);

impl Operator for UpperOp {
    fn process(&mut self, input: RecordBatch, out: &mut Emitter) -> Result<(), OperatorError> {
        for r in input.rows() {
            let v = format!("{}{}", String::from_utf8_lossy(r.value).to_uppercase(), self.0);
            out.main().push(r.key, v.as_bytes(), r.timestamp, r.origin);
        }
        Ok(())
    }
}

/// `type: collect`: records into a map, by the sink's `into` name.
struct Collect;

static COLLECTED: Mutex<BTreeMap<String, Vec<(String, String)>>> = Mutex::new(BTreeMap::new());

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CollectConfig {
    into: String,
}

impl SinkConnector for Collect {
    type Config = CollectConfig;
    const TYPE: &'static str = "collect";

    fn build(&self, c: CollectConfig, _: &BuildContext<'_>) -> Result<Arc<dyn SinkFactory>, BuildError> {
        Ok(Arc::new(c))
    }
}

impl SinkFactory for CollectConfig {
    fn create(&self, _: &TaskContext) -> Result<Box<dyn Sink>, SinkError> {
        Ok(Box::new(self.clone()))
    }
}

impl Sink for CollectConfig {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        let mut all = COLLECTED.lock().unwrap();
        let rows = all.entry(self.into.clone()).or_default();
        for r in batch.rows() {
            rows.push((String::from_utf8_lossy(r.key).into(), String::from_utf8_lossy(r.value).into()));
        }
        Ok(())
    }
}

fn registry() -> Registry {
    let mut r = Registry::new();
    weir_connectors::register(&mut r);
    r.source(CountUp).operator(Upper).sink(Collect);
    r
}

fn spec(into: &str, extra: &str) -> String {
    format!(
        "name: outside\nsources:\n  - {{name: nums, type: count-up, to: 50, parallelism: 2{extra}}}\noperators:\n  - {{name: up, type: upper, suffix: '!', input: nums, key_by: key, parallelism: 3}}\nsinks:\n  - {{name: out, type: collect, into: {into}, input: up}}\n"
    )
}

fn taken(into: &str) -> Vec<(String, String)> {
    let mut rows = COLLECTED.lock().unwrap().remove(into).unwrap_or_default();
    rows.sort();
    rows
}

fn expected() -> Vec<(String, String)> {
    let mut rows: Vec<_> = (0..50).map(|n| ((n % 10).to_string(), format!("N{n}!"))).collect();
    rows.sort();
    rows
}

#[test]
fn a_connector_registered_outside_the_spec_crate_runs_in_a_pipeline() {
    let r = registry();
    let s = weir_spec::parse(&spec("direct", ""), "o.yaml", &|_| None, &r).unwrap();
    let planned = weir_spec::plan(&s, &r, Extensions::default()).unwrap();
    planned.dataflow.start().unwrap().wait().unwrap();
    assert_eq!(taken("direct"), expected());
}

#[test]
fn a_serialised_dataflow_is_rebuilt_from_its_descriptors() {
    let r = registry();
    let s = weir_spec::parse(&spec("rebuilt", ""), "o.yaml", &|_| None, &r).unwrap();
    let planned = weir_spec::plan(&s, &r, Extensions::default()).unwrap();
    let json = serde_json::to_string(planned.dataflow.logical()).unwrap();
    assert!(json.contains(r#""type":"count-up""#) && json.contains(r#""suffix":"!""#), "{json}");
    let logical: LogicalDataflow = serde_json::from_str(&json).unwrap();
    let df = Dataflow::from_logical(logical, &RegistryResolver { registry: &r, env: &planned.env }).unwrap();
    df.start().unwrap().wait().unwrap();
    assert_eq!(taken("rebuilt"), expected());
}

#[test]
fn registered_types_check_their_configs_and_are_listed() {
    let r = registry();
    let e = weir_spec::parse(&spec("x", ", from: 60"), "o.yaml", &|_| None, &r).unwrap_err().to_string();
    assert_eq!(e, "o.yaml:3:38: sources[0].to: must not be below from (60)");
    let e = weir_spec::parse(&spec("x", ", count: 3"), "o.yaml", &|_| None, &r).unwrap_err().to_string();
    assert_eq!(
        e,
        "o.yaml:3:58: sources[0].count: unknown field 'count', expected one of: name, type, parallelism, timestamp, timestamp_unit, watermark, on_error, max_dead_letters_per_minute, from, to"
    );
    let text = spec("x", "").replace("type: count-up", "type: count-down");
    let e = weir_spec::parse(&text, "o.yaml", &|_| None, &r).unwrap_err().to_string();
    assert_eq!(e, "o.yaml:3:24: sources[0].type: 'count-down' is not a source type (count-up, file, generator)");
    let text = spec("x", "").replace("type: upper", "type: lower");
    let e = weir_spec::parse(&text, "o.yaml", &|_| None, &r).unwrap_err().to_string();
    assert_eq!(e, "o.yaml:5:22: operators[0].type: 'lower' is not an operator type (upper)");
}
