//! The aggregate functions of the SQL aggregations (COUNT, SUM, MIN, MAX,
//! AVG, COUNT(DISTINCT ...)), with accumulators that serialise into keyed
//! state and take rows back out (for changelogs: COUNT, SUM and AVG), and
//! the config the planner writes for `sql-window` and `sql-aggregate`.

use std::collections::BTreeMap;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, TimestampMillisecondType, UInt16Type,
    UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{Array, ArrayRef};
use arrow_schema::DataType;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::expr::ColumnDef;
use crate::tvf::WindowShape;

/// An aggregate function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AggFn {
    Count,
    Sum,
    Min,
    Max,
    Avg,
}

impl AggFn {
    pub fn of(name: &str) -> Option<AggFn> {
        Some(match name.to_ascii_lowercase().as_str() {
            "count" => AggFn::Count,
            "sum" => AggFn::Sum,
            "min" => AggFn::Min,
            "max" => AggFn::Max,
            "avg" | "mean" => AggFn::Avg,
            _ => return None,
        })
    }
}

/// One aggregate of an aggregation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AggSpec {
    pub function: AggFn,
    #[serde(default)]
    pub distinct: bool,
    /// The input column holding its argument; none for COUNT(*).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arg: Option<usize>,
    /// Its output type.
    #[serde(rename = "type")]
    pub data_type: DataType,
}

/// A grouping column of the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupField {
    /// Input (and record key) column `n`.
    Key(usize),
    WindowStart,
    WindowEnd,
}

/// The config of `sql-window` and `sql-aggregate` entries.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateConfig {
    /// Input columns: the group keys (also the record key), then arguments.
    #[serde(rename = "columns")]
    pub input: Vec<ColumnDef>,
    /// How many of `input` are group keys.
    pub keys: usize,
    /// The output's grouping columns, in order.
    pub group: Vec<GroupField>,
    pub aggregates: Vec<AggSpec>,
    /// The output columns: `group`'s, then the aggregates'.
    pub output: Vec<ColumnDef>,
    /// The windows (`sql-window`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowShape>,
    /// An updating aggregate's group state is dropped after this long
    /// without being written (`sql-aggregate`; a window's goes with it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
}

impl AggregateConfig {
    /// Checks the planner's config holds together.
    pub fn check(&self) -> Result<(), String> {
        if self.keys > self.input.len() {
            return Err(format!("{} keys of {} input columns", self.keys, self.input.len()));
        }
        if self.output.len() != self.group.len() + self.aggregates.len() {
            return Err(format!("{} output columns for {} group columns and {} aggregates", self.output.len(), self.group.len(), self.aggregates.len()));
        }
        for g in &self.group {
            if let GroupField::Key(k) = g
                && *k >= self.keys
            {
                return Err(format!("group column {k} is not a key"));
            }
        }
        if let Some(a) = self.aggregates.iter().find(|a| a.arg.is_some_and(|i| i >= self.input.len())) {
            return Err(format!("an aggregate's argument {:?} is not an input column", a.arg));
        }
        Ok(())
    }
}

/// A value an aggregate sees: ordered within a type (numbers as numbers).
#[derive(Clone, Debug, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl Scalar {
    fn as_f64(&self) -> f64 {
        match self {
            Scalar::Int(i) => *i as f64,
            Scalar::Float(f) => *f,
            Scalar::Bool(b) => *b as i64 as f64,
            Scalar::Str(_) => f64::NAN,
        }
    }

    fn json(&self) -> Value {
        match self {
            Scalar::Bool(b) => json!(b),
            Scalar::Int(i) => json!(i),
            Scalar::Float(f) => json!(f),
            Scalar::Str(s) => json!(s),
        }
    }

    /// A key for DISTINCT sets.
    fn distinct_key(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Row `i` of `a` as a scalar (`None`: null).
pub fn scalar(a: &ArrayRef, i: usize) -> Result<Option<Scalar>, String> {
    if a.is_null(i) {
        return Ok(None);
    }
    Ok(Some(match a.data_type() {
        DataType::Boolean => Scalar::Bool(a.as_boolean().value(i)),
        DataType::Int8 => Scalar::Int(a.as_primitive::<Int8Type>().value(i) as i64),
        DataType::Int16 => Scalar::Int(a.as_primitive::<Int16Type>().value(i) as i64),
        DataType::Int32 => Scalar::Int(a.as_primitive::<Int32Type>().value(i) as i64),
        DataType::Int64 => Scalar::Int(a.as_primitive::<Int64Type>().value(i)),
        DataType::UInt8 => Scalar::Int(a.as_primitive::<UInt8Type>().value(i) as i64),
        DataType::UInt16 => Scalar::Int(a.as_primitive::<UInt16Type>().value(i) as i64),
        DataType::UInt32 => Scalar::Int(a.as_primitive::<UInt32Type>().value(i) as i64),
        DataType::UInt64 => Scalar::Int(a.as_primitive::<UInt64Type>().value(i) as i64),
        DataType::Float32 => Scalar::Float(a.as_primitive::<Float32Type>().value(i) as f64),
        DataType::Float64 => Scalar::Float(a.as_primitive::<Float64Type>().value(i)),
        DataType::Date32 => Scalar::Int(a.as_primitive::<Date32Type>().value(i) as i64),
        DataType::Timestamp(arrow_schema::TimeUnit::Millisecond, _) => Scalar::Int(a.as_primitive::<TimestampMillisecondType>().value(i)),
        DataType::Utf8 => Scalar::Str(a.as_string::<i32>().value(i).to_string()),
        DataType::LargeUtf8 => Scalar::Str(a.as_string::<i64>().value(i).to_string()),
        other => {
            let v = arrow_cast::cast(&a.slice(i, 1), &DataType::Float64).map_err(|_| format!("aggregates of {other} are not supported"))?;
            Scalar::Float(v.as_primitive::<Float64Type>().value(0))
        }
    }))
}

/// An accumulator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "f", rename_all = "lowercase")]
pub enum Acc {
    /// COUNT: non-null values (or rows, for COUNT(*)).
    Count { n: i64 },
    /// SUM of integers; `n` counts the values (an empty SUM is null).
    SumInt { sum: i64, n: i64 },
    SumFloat { sum: f64, n: i64 },
    Min { v: Option<Scalar> },
    Max { v: Option<Scalar> },
    Avg { sum: f64, n: i64 },
    /// DISTINCT: each value with how often it was seen.
    Distinct { values: BTreeMap<String, (Scalar, i64)> },
}

impl Acc {
    pub fn new(a: &AggSpec) -> Acc {
        if a.distinct {
            return Acc::Distinct { values: BTreeMap::new() };
        }
        match a.function {
            AggFn::Count => Acc::Count { n: 0 },
            AggFn::Sum if matches!(a.data_type, DataType::Float32 | DataType::Float64) => Acc::SumFloat { sum: 0.0, n: 0 },
            AggFn::Sum => Acc::SumInt { sum: 0, n: 0 },
            AggFn::Min => Acc::Min { v: None },
            AggFn::Max => Acc::Max { v: None },
            AggFn::Avg => Acc::Avg { sum: 0.0, n: 0 },
        }
    }

    /// Add (`sign` 1) or take out (`sign` -1) a value (`None`: null, or
    /// COUNT(*)'s row when `star`).
    pub fn update(&mut self, v: Option<&Scalar>, star: bool, sign: i64) -> Result<(), String> {
        match self {
            Acc::Count { n } => {
                if star || v.is_some() {
                    *n += sign;
                }
            }
            Acc::SumInt { sum, n } => {
                if let Some(v) = v {
                    let x = match v {
                        Scalar::Int(i) => *i,
                        other => other.as_f64() as i64,
                    };
                    *sum = sum.checked_add(sign * x).ok_or("SUM overflows a BIGINT")?;
                    *n += sign;
                }
            }
            Acc::SumFloat { sum, n } | Acc::Avg { sum, n } => {
                if let Some(v) = v {
                    *sum += sign as f64 * v.as_f64();
                    *n += sign;
                }
            }
            Acc::Min { v: cur } => {
                if let Some(v) = v
                    && cur.as_ref().is_none_or(|c| v < c)
                {
                    *cur = Some(v.clone());
                }
            }
            Acc::Max { v: cur } => {
                if let Some(v) = v
                    && cur.as_ref().is_none_or(|c| v > c)
                {
                    *cur = Some(v.clone());
                }
            }
            Acc::Distinct { values } => {
                if let Some(v) = v {
                    let k = v.distinct_key();
                    let e = values.entry(k.clone()).or_insert((v.clone(), 0));
                    e.1 += sign;
                    if e.1 <= 0 {
                        values.remove(&k);
                    }
                }
            }
        }
        Ok(())
    }

    /// Take in `other`'s values (two session windows becoming one).
    pub fn merge(&mut self, other: Acc) -> Result<(), String> {
        match (self, other) {
            (Acc::Count { n }, Acc::Count { n: m }) => *n += m,
            (Acc::SumInt { sum, n }, Acc::SumInt { sum: s, n: m }) => {
                *sum = sum.checked_add(s).ok_or("SUM overflows a BIGINT")?;
                *n += m;
            }
            (Acc::SumFloat { sum, n }, Acc::SumFloat { sum: s, n: m }) | (Acc::Avg { sum, n }, Acc::Avg { sum: s, n: m }) => {
                *sum += s;
                *n += m;
            }
            (Acc::Min { v }, Acc::Min { v: w }) => {
                if let Some(w) = w
                    && v.as_ref().is_none_or(|c| &w < c)
                {
                    *v = Some(w);
                }
            }
            (Acc::Max { v }, Acc::Max { v: w }) => {
                if let Some(w) = w
                    && v.as_ref().is_none_or(|c| &w > c)
                {
                    *v = Some(w);
                }
            }
            (Acc::Distinct { values }, Acc::Distinct { values: other }) => {
                for (k, (v, n)) in other {
                    values.entry(k).or_insert((v, 0)).1 += n;
                }
            }
            _ => return Err("accumulators of different aggregates cannot merge".into()),
        }
        Ok(())
    }

    /// The result, as JSON of the output type.
    pub fn result(&self, spec: &AggSpec) -> Value {
        match self {
            Acc::Count { n } => json!(n),
            Acc::SumInt { sum, n } => {
                if *n > 0 {
                    json!(sum)
                } else {
                    Value::Null
                }
            }
            Acc::SumFloat { sum, n } => {
                if *n > 0 {
                    json!(sum)
                } else {
                    Value::Null
                }
            }
            Acc::Avg { sum, n } => {
                if *n > 0 {
                    json!(sum / *n as f64)
                } else {
                    Value::Null
                }
            }
            Acc::Min { v } | Acc::Max { v } => v.as_ref().map_or(Value::Null, Scalar::json),
            Acc::Distinct { values } => match spec.function {
                AggFn::Count => json!(values.len()),
                AggFn::Sum | AggFn::Avg => {
                    let s: f64 = values.values().map(|(v, _)| v.as_f64()).sum();
                    if values.is_empty() {
                        Value::Null
                    } else if spec.function == AggFn::Avg {
                        json!(s / values.len() as f64)
                    } else if matches!(spec.data_type, DataType::Float32 | DataType::Float64) {
                        json!(s)
                    } else {
                        json!(s as i64)
                    }
                }
                AggFn::Min => values.values().map(|(v, _)| v).min_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal)).map_or(Value::Null, Scalar::json),
                AggFn::Max => values.values().map(|(v, _)| v).max_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal)).map_or(Value::Null, Scalar::json),
            },
        }
    }
}

/// The accumulators of one group (or one window of a group), and how many
/// rows are in it (a group without rows is gone).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupState {
    pub accs: Vec<Acc>,
    pub rows: i64,
    /// The row it last emitted (`sql-aggregate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<String>,
}

impl GroupState {
    pub fn new(specs: &[AggSpec]) -> Self {
        GroupState { accs: specs.iter().map(Acc::new).collect(), rows: 0, last: None }
    }

    /// Take in `other` (two session windows becoming one).
    pub fn merge(&mut self, other: GroupState) -> Result<(), String> {
        for (a, b) in self.accs.iter_mut().zip(other.accs) {
            a.merge(b)?;
        }
        self.rows += other.rows;
        Ok(())
    }

    /// Add (`sign` 1) or take out (-1) input row `i` of `args`.
    pub fn update(&mut self, specs: &[AggSpec], args: &[ArrayRef], i: usize, sign: i64) -> Result<(), String> {
        for (acc, spec) in self.accs.iter_mut().zip(specs) {
            match spec.arg {
                Some(a) => acc.update(scalar(&args[a], i)?.as_ref(), false, sign)?,
                None => acc.update(None, true, sign)?,
            }
        }
        self.rows += sign;
        Ok(())
    }

    pub fn results(&self, specs: &[AggSpec]) -> Vec<Value> {
        self.accs.iter().zip(specs).map(|(a, s)| a.result(s)).collect()
    }
}

/// The output row: the grouping columns (keys from the record key's JSON
/// object `{"k0": ..}`, the window's bounds as milliseconds), then the
/// aggregates, as a JSON object with the output's column names.
pub fn output_row(cfg: &AggregateConfig, key: &[u8], window: Option<(i64, i64)>, results: Vec<Value>) -> Result<Vec<u8>, String> {
    let keys: serde_json::Map<String, Value> = if cfg.keys == 0 && key.is_empty() {
        serde_json::Map::new()
    } else {
        serde_json::from_slice(key).map_err(|e| format!("the record key is not the group's JSON object: {e}"))?
    };
    let mut row = serde_json::Map::new();
    for (g, col) in cfg.group.iter().zip(&cfg.output) {
        let v = match (g, window) {
            (GroupField::Key(k), _) => keys.get(&cfg.input[*k].name).cloned().unwrap_or(Value::Null),
            (GroupField::WindowStart, Some((s, _))) => json!(s),
            (GroupField::WindowEnd, Some((_, e))) => json!(e),
            _ => Value::Null,
        };
        row.insert(col.name.clone(), v);
    }
    for (v, col) in results.into_iter().zip(&cfg.output[cfg.group.len()..]) {
        row.insert(col.name.clone(), v);
    }
    Ok(serde_json::to_vec(&Value::Object(row)).expect("JSON serialises"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(function: AggFn, distinct: bool, t: DataType) -> AggSpec {
        AggSpec { function, distinct, arg: Some(0), data_type: t }
    }

    #[test]
    fn accumulators_add_and_take_out() {
        let mut sum = Acc::new(&spec(AggFn::Sum, false, DataType::Int64));
        let mut avg = Acc::new(&spec(AggFn::Avg, false, DataType::Float64));
        let mut cnt = Acc::new(&spec(AggFn::Count, false, DataType::Int64));
        let mut dis = Acc::new(&spec(AggFn::Count, true, DataType::Int64));
        for (v, sign) in [(Some(Scalar::Int(3)), 1), (Some(Scalar::Int(5)), 1), (None, 1), (Some(Scalar::Int(3)), 1), (Some(Scalar::Int(3)), -1)] {
            for a in [&mut sum, &mut avg, &mut cnt, &mut dis] {
                a.update(v.as_ref(), false, sign).unwrap();
            }
        }
        assert_eq!(sum.result(&spec(AggFn::Sum, false, DataType::Int64)), json!(8));
        assert_eq!(avg.result(&spec(AggFn::Avg, false, DataType::Float64)), json!(4.0));
        assert_eq!(cnt.result(&spec(AggFn::Count, false, DataType::Int64)), json!(2));
        assert_eq!(dis.result(&spec(AggFn::Count, true, DataType::Int64)), json!(2));
        let mut min = Acc::new(&spec(AggFn::Min, false, DataType::Utf8));
        for v in ["b", "a", "c"] {
            min.update(Some(&Scalar::Str(v.into())), false, 1).unwrap();
        }
        assert_eq!(min.result(&spec(AggFn::Min, false, DataType::Utf8)), json!("a"));
        // Through state and back.
        let back: Acc = serde_json::from_str(&serde_json::to_string(&dis).unwrap()).unwrap();
        assert_eq!(back, dis);
        let empty = Acc::new(&spec(AggFn::Sum, false, DataType::Int64));
        assert_eq!(empty.result(&spec(AggFn::Sum, false, DataType::Int64)), Value::Null);
    }
}
