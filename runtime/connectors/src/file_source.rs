//! A bounded file of lines or JSON lines. Each line becomes a record with an
//! empty key, the line as value (without its line break), and its 1-based line
//! number as offset. With `json_lines`, every line must be a JSON value; a bad
//! line fails the source with its file and line number. With `debezium-json`,
//! every line is a Debezium change event (a dump of a CDC topic, say), read
//! as changelog rows as the Kafka source reads them ([`crate::debezium`]).

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use weir_engine::{Origin, RecordBatch, Rejected, Source, SourceError, SourceFactory, SourcePoll, TaskContext, NO_TIMESTAMP};
use weir_spec::{BuildContext, BuildError, Changelog, Check, RecordShape, SourceConnector, SpecError};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    #[default]
    Lines,
    #[serde(alias = "jsonl")]
    JsonLines,
    /// One Debezium change event per line: a changelog.
    #[serde(rename = "debezium-json", alias = "debezium_json")]
    DebeziumJson,
}

/// The source's definition, `type: file` (`path`, `format`); one task reads
/// the whole file (parallelism 1).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSource {
    pub path: PathBuf,
    #[serde(default)]
    pub format: FileFormat,
}

/// The `file` source type.
pub struct FileSources;

impl SourceConnector for FileSources {
    type Config = FileSource;
    const TYPE: &'static str = "file";

    fn check(&self, c: &FileSource, cx: &Check<'_>) -> Result<(), SpecError> {
        cx.path("path", &c.path)?;
        match cx.parallelism {
            Some(p) if p != 1 => Err(cx.error("parallelism", "a file source reads with parallelism 1")),
            _ => Ok(()),
        }
    }

    fn build(&self, config: FileSource, _: &BuildContext<'_>) -> Result<Arc<dyn SourceFactory>, BuildError> {
        Ok(Arc::new(config))
    }

    /// Records have empty keys; values are JSON with `format: json_lines`.
    fn records(&self, config: &FileSource) -> RecordShape {
        let (json, described, changelog) = match config.format {
            FileFormat::Lines => (false, "lines of text (format: lines)", Changelog::Append),
            FileFormat::JsonLines => (true, "JSON lines", Changelog::Append),
            FileFormat::DebeziumJson => (true, "Debezium change events, format: debezium-json", Changelog::Retract),
        };
        RecordShape { keyed: Some(false), json: Some(json), described, changelog }
    }
}

impl SourceFactory for FileSource {
    fn create(&self, ctx: &TaskContext) -> Result<Box<dyn Source>, SourceError> {
        if ctx.parallelism != 1 {
            return Err(SourceError::msg(format!(
                "a file source reads with parallelism 1, not {}",
                ctx.parallelism
            )));
        }
        let file = File::open(&self.path)
            .map_err(|e| SourceError::msg(format!("cannot open {}: {e}", self.path.display())))?;
        Ok(Box::new(FileReader {
            path: Arc::new(self.path.clone()),
            format: self.format,
            reader: BufReader::with_capacity(1 << 20, file),
            line: 0,
            byte_offset: 0,
            buf: Vec::new(),
            isolate: ctx.on_error.isolates(),
            rejected: Vec::new(),
        }))
    }

    fn describe_offset(&self, offset: u64) -> String {
        format!("line {offset} of {}", self.path.display())
    }
}

struct FileReader {
    path: Arc<PathBuf>,
    format: FileFormat,
    reader: BufReader<File>,
    /// Lines read so far.
    line: u64,
    /// Bytes consumed so far (the replay position).
    byte_offset: u64,
    buf: Vec<u8>,
    /// `on_error: skip | dead-letter`: a line that is not JSON is left out
    /// (into `rejected`) instead of failing the read.
    isolate: bool,
    rejected: Vec<Rejected>,
}

impl Source for FileReader {
    fn poll(&mut self, out: &mut RecordBatch, max_records: usize) -> Result<SourcePoll, SourceError> {
        for _ in 0..max_records {
            self.buf.clear();
            let n = self
                .reader
                .read_until(b'\n', &mut self.buf)
                .map_err(|e| SourceError::msg(format!("cannot read {}: {e}", self.path.display())))?;
            if n == 0 {
                return Ok(SourcePoll::Exhausted);
            }
            self.line += 1;
            self.byte_offset += n as u64;
            let mut line = &self.buf[..];
            if line.last() == Some(&b'\n') {
                line = &line[..line.len() - 1];
            }
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            if self.format == FileFormat::DebeziumJson {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                match crate::debezium::decode(line) {
                    Ok(rows) => {
                        for (kind, row) in rows {
                            out.push_kind(b"", row, NO_TIMESTAMP, Origin::at(self.line), kind);
                        }
                    }
                    Err(error) if self.isolate => {
                        self.rejected.push(Rejected { key: Vec::new(), value: line.to_vec(), timestamp: NO_TIMESTAMP, origin: Origin::at(self.line), error });
                    }
                    Err(e) => return Err(SourceError::msg(format!("{} line {}: {e}", self.path.display(), self.line))),
                }
                continue;
            }
            if self.format == FileFormat::JsonLines {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(line) {
                    if self.isolate {
                        let error = format!("not a JSON value: {e}");
                        self.rejected.push(Rejected { key: Vec::new(), value: line.to_vec(), timestamp: NO_TIMESTAMP, origin: Origin::at(self.line), error });
                        continue;
                    }
                    return Err(SourceError::msg(format!(
                        "{} line {}: not a JSON value: {e}",
                        self.path.display(),
                        self.line
                    )));
                }
            }
            out.push(b"", line, NO_TIMESTAMP, Origin::at(self.line));
        }
        Ok(SourcePoll::Ready)
    }

    fn rejected(&mut self, out: &mut Vec<Rejected>) {
        out.append(&mut self.rejected);
    }

    fn position(&self) -> Option<Vec<u8>> {
        let mut p = self.byte_offset.to_le_bytes().to_vec();
        p.extend_from_slice(&self.line.to_le_bytes());
        Some(p)
    }

    fn seek(&mut self, position: &[u8]) -> Result<(), SourceError> {
        let (Some(b), Some(l)) = (position.get(..8), position.get(8..16)) else {
            return Err(SourceError::msg(format!("invalid position for {}", self.path.display())));
        };
        self.byte_offset = u64::from_le_bytes(b.try_into().expect("8 bytes"));
        self.line = u64::from_le_bytes(l.try_into().expect("8 bytes"));
        self.reader.seek(SeekFrom::Start(self.byte_offset))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn ctx() -> TaskContext {
        TaskContext {
            pipeline: "p".into(),
            node: "src".into(),
            task_index: 0,
            parallelism: 1,
            max_parallelism: 128,
            side_outputs: Arc::new([]),
            restore: None,
            on_error: Default::default(),
        }
    }

    fn read_all(src: &mut dyn Source, max: usize) -> Result<RecordBatch, SourceError> {
        let mut out = RecordBatch::default();
        while src.poll(&mut out, max)? != SourcePoll::Exhausted {}
        Ok(out)
    }

    #[test]
    fn reads_lines_with_line_numbers_and_replays_from_a_position() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        write!(f, "one\r\ntwo\n\nfour").unwrap();
        let def = FileSource { path: f.path().into(), format: FileFormat::Lines };
        let mut src = def.create(&ctx()).unwrap();
        let mut first = RecordBatch::default();
        assert_eq!(src.poll(&mut first, 2).unwrap(), SourcePoll::Ready);
        let pos = src.position().unwrap();
        let rest = read_all(&mut *src, 10).unwrap();
        let values: Vec<_> = first.rows().chain(rest.rows()).map(|r| (r.value.to_vec(), r.origin.offset)).collect();
        assert_eq!(
            values,
            vec![(b"one".to_vec(), 1), (b"two".to_vec(), 2), (b"".to_vec(), 3), (b"four".to_vec(), 4)]
        );
        let mut again = def.create(&ctx()).unwrap();
        again.seek(&pos).unwrap();
        let replay = read_all(&mut *again, 10).unwrap();
        assert_eq!(replay.len(), 2);
        assert_eq!(replay.value(0), b"");
        assert_eq!(replay.row(1).origin.offset, 4);
        assert_eq!(def.describe_offset(4), format!("line 4 of {}", f.path().display()));
    }

    #[test]
    fn bad_json_line_names_file_and_line() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "{{\"a\":1}}\n\n{{\"a\":").unwrap();
        let def = FileSource { path: f.path().into(), format: FileFormat::JsonLines };
        let mut src = def.create(&ctx()).unwrap();
        let err = read_all(&mut *src, 10).unwrap_err().to_string();
        assert!(err.starts_with(&format!("{} line 3: not a JSON value", f.path().display())), "{err}");
    }

    #[test]
    fn debezium_lines_become_changelog_rows_and_a_bad_one_names_its_line() {
        use weir_engine::RowKind;
        let mut f = tempfile::NamedTempFile::new().unwrap();
        let r = |n: i32| format!("{{\"id\":1,\"n\":{n}}}");
        writeln!(f, "{{\"op\":\"c\",\"after\":{}}}", r(1)).unwrap();
        writeln!(f, "{{\"op\":\"u\",\"before\":{},\"after\":{}}}", r(1), r(2)).unwrap();
        writeln!(f).unwrap();
        writeln!(f, "{{\"op\":\"d\",\"before\":{}}}", r(2)).unwrap();
        writeln!(f, "{{\"op\":\"u\",\"after\":{},\"source\":{{\"schema\":\"public\",\"table\":\"t\"}}}}", r(3)).unwrap();
        let def = FileSource { path: f.path().into(), format: FileFormat::DebeziumJson };
        let mut src = def.create(&ctx()).unwrap();
        let mut out = RecordBatch::default();
        let err = loop {
            match src.poll(&mut out, 10) {
                Ok(SourcePoll::Exhausted) => panic!("the last line is refused"),
                Ok(_) => {}
                Err(e) => break e.to_string(),
            }
        };
        let rows: Vec<_> = (0..out.len()).map(|i| (out.kind(i), String::from_utf8(out.value(i).to_vec()).unwrap(), out.row(i).origin.offset)).collect();
        assert_eq!(
            rows,
            vec![
                (RowKind::Insert, r(1), 1),
                (RowKind::UpdateBefore, r(1), 2),
                (RowKind::UpdateAfter, r(2), 2),
                (RowKind::Delete, r(2), 4)
            ]
        );
        assert!(err.starts_with(&format!("{} line 5: a Debezium update event (op 'u') of public.t has no 'before' row", f.path().display())), "{err}");
        assert!(err.contains("ALTER TABLE public.t REPLICA IDENTITY FULL"), "{err}");
    }

    #[test]
    fn missing_file_is_named() {
        let def = FileSource { path: "/nonexistent/in.txt".into(), format: FileFormat::Lines };
        let err = def.create(&ctx()).err().unwrap().to_string();
        assert!(err.starts_with("cannot open /nonexistent/in.txt:"), "{err}");
    }
}
