//! JSON lines files in a directory: task `i` writes `part-<i>.jsonl`, one record
//! value per line. A value that is not JSON is written as a JSON string.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use weir_engine::{RecordBatch, Sink, SinkError, SinkFactory, TaskContext};

/// The sink's definition.
#[derive(Clone, Debug)]
pub struct FileSink {
    pub dir: PathBuf,
}

impl FileSink {
    fn part(&self, task: u32) -> PathBuf {
        self.dir.join(format!("part-{task:04}.jsonl"))
    }
}

impl SinkFactory for FileSink {
    fn create(&self, ctx: &TaskContext) -> Result<Box<dyn Sink>, SinkError> {
        fs::create_dir_all(&self.dir)
            .map_err(|e| SinkError::msg(format!("cannot create output directory {}: {e}", self.dir.display())))?;
        if ctx.task_index == 0 {
            // Parts of an earlier run at a higher parallelism would mix in.
            for entry in fs::read_dir(&self.dir)?.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let index = name.strip_prefix("part-").and_then(|n| n.strip_suffix(".jsonl")).and_then(|n| n.parse::<u32>().ok());
                if index.is_some_and(|i| i >= ctx.parallelism) {
                    fs::remove_file(entry.path())?;
                }
            }
        }
        let path = self.part(ctx.task_index);
        let file = File::create(&path).map_err(|e| SinkError::msg(format!("cannot create {}: {e}", path.display())))?;
        Ok(Box::new(FileWriter { path, out: BufWriter::with_capacity(1 << 20, file) }))
    }
}

struct FileWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl FileWriter {
    fn io(&self, e: std::io::Error) -> SinkError {
        SinkError::msg(format!("cannot write {}: {e}", self.path.display()))
    }
}

impl Sink for FileWriter {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        for i in 0..batch.len() {
            let v = batch.value(i);
            let is_json = !v.contains(&b'\n') && serde_json::from_slice::<serde::de::IgnoredAny>(v).is_ok();
            let r = if is_json {
                self.out.write_all(v)
            } else {
                serde_json::to_writer(&mut self.out, &String::from_utf8_lossy(v)).map_err(std::io::Error::other)
            };
            r.and_then(|()| self.out.write_all(b"\n")).map_err(|e| self.io(e))?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.out.flush().map_err(|e| self.io(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use weir_engine::{Origin, NO_TIMESTAMP};

    #[test]
    fn writes_json_lines_per_task_and_removes_stale_parts() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("part-0005.jsonl"), "stale\n").unwrap();
        std::fs::write(dir.path().join("keep.txt"), "x").unwrap();
        let sink = FileSink { dir: dir.path().into() };
        let ctx = TaskContext {
            pipeline: "p".into(),
            node: "out".into(),
            task_index: 0,
            parallelism: 2,
            max_parallelism: 128,
            side_outputs: Arc::new([]),
        };
        let mut w = sink.create(&ctx).unwrap();
        let mut b = RecordBatch::default();
        b.push(b"k", br#"{"a":1}"#, NO_TIMESTAMP, Origin::default());
        b.push(b"k", b"plain \"text\"", NO_TIMESTAMP, Origin::default());
        w.write(&b).unwrap();
        w.finish().unwrap();
        let got = std::fs::read_to_string(dir.path().join("part-0000.jsonl")).unwrap();
        assert_eq!(got, "{\"a\":1}\n\"plain \\\"text\\\"\"\n");
        assert!(!dir.path().join("part-0005.jsonl").exists());
        assert!(dir.path().join("keep.txt").exists());
    }
}
