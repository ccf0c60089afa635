//! `format: debezium-json`: Debezium change events (with or without the
//! `schema`/`payload` envelope of its JSON converter) as changelog rows, as
//! Flink's `debezium-json` format maps them: a create or snapshot read
//! (`c`, `r`) is an insert of `after`; an update (`u`) is `-U before` then
//! `+U after`; a delete (`d`) is `-D before`. Delete tombstones (records
//! without a value) carry nothing and are skipped by the source.

use serde::Deserialize;
use serde_json::value::RawValue;
use weir_engine::RowKind;

/// A change event's fields that matter here; `before` and `after` stay raw
/// JSON, so a row's value is the event's own bytes for it.
#[derive(Deserialize)]
struct Event<'a> {
    #[serde(borrow, default)]
    before: Option<&'a RawValue>,
    #[serde(borrow, default)]
    after: Option<&'a RawValue>,
    #[serde(default)]
    op: Option<String>,
    #[serde(default)]
    source: Option<SourceInfo>,
    /// The JSON converter's envelope (`schemas.enable=true`).
    #[serde(borrow, default)]
    payload: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
struct SourceInfo {
    #[serde(default)]
    schema: Option<String>,
    #[serde(default)]
    table: Option<String>,
}

impl SourceInfo {
    fn table(&self) -> String {
        match (&self.schema, &self.table) {
            (Some(s), Some(t)) => format!("{s}.{t}"),
            (None, Some(t)) => t.clone(),
            _ => "the captured table".into(),
        }
    }
}

/// The rows of one record (none, one, or an update's two), in order, kept
/// inline: the source makes one per Kafka record.
#[derive(Debug, Default)]
pub struct Rows<'a> {
    len: usize,
    rows: [(RowKind, &'a [u8]); 2],
}

impl<'a> Rows<'a> {
    pub fn none() -> Self {
        Rows { len: 0, rows: [(RowKind::Insert, &[]); 2] }
    }

    pub fn one(kind: RowKind, row: &'a [u8]) -> Self {
        Rows { len: 1, rows: [(kind, row), (RowKind::Insert, &[])] }
    }

    fn two(a: (RowKind, &'a [u8]), b: (RowKind, &'a [u8])) -> Self {
        Rows { len: 2, rows: [a, b] }
    }
}

impl<'a> IntoIterator for Rows<'a> {
    type Item = (RowKind, &'a [u8]);
    type IntoIter = std::iter::Take<std::array::IntoIter<(RowKind, &'a [u8]), 2>>;
    fn into_iter(self) -> Self::IntoIter {
        self.rows.into_iter().take(self.len)
    }
}

/// Decode one record's value.
pub fn decode(value: &[u8]) -> Result<Rows<'_>, String> {
    let e: Event<'_> = serde_json::from_slice(value).map_err(|e| format!("not a Debezium change event (format: debezium-json): {e}"))?;
    match (&e.op, e.payload) {
        (None, Some(p)) => {
            let inner: Event<'_> = serde_json::from_str(p.get())
                .map_err(|e| format!("the envelope's payload is not a Debezium change event (format: debezium-json): {e}"))?;
            rows(inner)
        }
        _ => rows(e),
    }
}

fn row<'a>(v: Option<&'a RawValue>) -> Option<&'a [u8]> {
    v.map(|v| v.get().as_bytes())
}

fn rows(e: Event<'_>) -> Result<Rows<'_>, String> {
    let table = || e.source.as_ref().map(SourceInfo::table).unwrap_or_else(|| "the captured table".into());
    let Some(op) = e.op.as_deref() else {
        return Err("not a Debezium change event (format: debezium-json): it has no 'op' field".into());
    };
    let after = |what: &str| row(e.after).ok_or_else(|| format!("a Debezium {what} event (op '{op}') of {} has no 'after' row", table()));
    let before = |what: &str| {
        row(e.before).ok_or_else(|| {
            format!(
                "a Debezium {what} event (op '{op}') of {} has no 'before' row: the database logs only the key of changed rows; \
                 set REPLICA IDENTITY FULL on the table (ALTER TABLE {} REPLICA IDENTITY FULL) so that updates and deletes carry the old row",
                table(),
                table()
            )
        })
    };
    Ok(match op {
        "c" | "r" => Rows::one(RowKind::Insert, after("create")?),
        "u" => Rows::two((RowKind::UpdateBefore, before("update")?), (RowKind::UpdateAfter, after("update")?)),
        "d" => Rows::one(RowKind::Delete, before("delete")?),
        "t" => {
            return Err(format!(
                "a Debezium truncate event (op 't') of {}: a truncate removes rows the changelog never names, so it cannot be applied row by row; \
                 leave truncates out in the connector (skipped.operations=t, Debezium's default)",
                table()
            ));
        }
        other => return Err(format!("a Debezium event with op '{other}', which is none of c, r, u, d (format: debezium-json)")),
    })
}

/// A changelog row as a Debezium event, as Flink's `debezium-json` writes
/// them: +I and +U as creates (`c`) of `after`, -U and -D as deletes (`d`)
/// of `before`. `row` is JSON.
pub fn encode(kind: RowKind, row: &[u8]) -> Vec<u8> {
    let (before, after, op) = if kind.retracts() { (row, &b"null"[..], "d") } else { (&b"null"[..], row, "c") };
    let mut out = Vec::with_capacity(row.len() + 40);
    out.extend_from_slice(b"{\"before\":");
    out.extend_from_slice(before);
    out.extend_from_slice(b",\"after\":");
    out.extend_from_slice(after);
    out.extend_from_slice(format!(",\"op\":\"{op}\"}}").as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(rows: Rows<'_>) -> Vec<(String, String)> {
        rows.into_iter().map(|(k, v)| (k.short().to_string(), String::from_utf8(v.to_vec()).unwrap())).collect()
    }

    fn pair(k: &str, v: &str) -> (String, String) {
        (k.into(), v.into())
    }

    #[test]
    fn ops_map_as_flink_maps_them() {
        let c = br#"{"before":null,"after":{"id":1,"name":"a"},"source":{"schema":"public","table":"t"},"op":"c","ts_ms":1}"#;
        assert_eq!(shown(decode(c).unwrap()), [pair("+I", r#"{"id":1,"name":"a"}"#)]);
        let r = br#"{"before":null,"after":{"id":2},"op":"r"}"#;
        assert_eq!(shown(decode(r).unwrap()), [pair("+I", r#"{"id":2}"#)]);
        let u = br#"{"before":{"id":1,"name":"a"},"after":{"id":1,"name":"b"},"op":"u"}"#;
        assert_eq!(shown(decode(u).unwrap()), [pair("-U", r#"{"id":1,"name":"a"}"#), pair("+U", r#"{"id":1,"name":"b"}"#)]);
        let d = br#"{"before":{"id":1,"name":"b"},"after":null,"op":"d"}"#;
        assert_eq!(shown(decode(d).unwrap()), [pair("-D", r#"{"id":1,"name":"b"}"#)]);
    }

    #[test]
    fn encoded_rows_decode_to_the_same_changes() {
        for (kind, back) in [(RowKind::Insert, "+I"), (RowKind::UpdateAfter, "+I"), (RowKind::UpdateBefore, "-D"), (RowKind::Delete, "-D")] {
            let e = encode(kind, br#"{"id":7,"v":"x"}"#);
            assert_eq!(shown(decode(&e).unwrap()), [pair(back, r#"{"id":7,"v":"x"}"#)], "{}", String::from_utf8_lossy(&e));
        }
    }

    #[test]
    fn the_schema_envelope_is_unwrapped() {
        let v = br#"{"schema":{"type":"struct","fields":[]},"payload":{"before":{"id":3},"after":{"id":3,"x":"y"},"op":"u"}}"#;
        assert_eq!(shown(decode(v).unwrap()), [pair("-U", r#"{"id":3}"#), pair("+U", r#"{"id":3,"x":"y"}"#)]);
    }

    #[test]
    fn bad_events_say_what_is_wrong() {
        let u = br#"{"before":null,"after":{"id":1},"source":{"schema":"public","table":"accounts"},"op":"u"}"#;
        let err = decode(u).unwrap_err();
        assert!(err.contains("update event (op 'u') of public.accounts has no 'before' row"), "{err}");
        assert!(err.contains("ALTER TABLE public.accounts REPLICA IDENTITY FULL"), "{err}");
        let d = br#"{"payload":{"before":null,"after":null,"op":"d"}}"#;
        assert!(decode(d).unwrap_err().contains("delete event (op 'd') of the captured table has no 'before' row"));
        let t = br#"{"before":null,"after":null,"op":"t","source":{"table":"x"}}"#;
        assert!(decode(t).unwrap_err().contains("skipped.operations=t"));
        assert!(decode(br#"{"op":"m"}"#).unwrap_err().contains("op 'm', which is none of c, r, u, d"));
        assert!(decode(br#"{"id":1}"#).unwrap_err().contains("no 'op' field"));
        assert!(decode(b"not json").unwrap_err().contains("not a Debezium change event"));
        assert!(decode(br#"{"op":"c","after":null}"#).unwrap_err().contains("has no 'after' row"));
    }
}
