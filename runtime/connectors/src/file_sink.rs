//! JSON lines files in a directory, one record value per line (a value that is
//! not JSON is written as a JSON string). With `format: changelog-json` each
//! line is a row with its kind, `{"op":"+I","data":VALUE}` (the layout of
//! Flink CDC's changelog-json format), so the sink takes a changelog.
//!
//! With checkpointing on, the sink is exactly-once (as Flink's `FileSink`):
//! task `t` writes into a hidden in-progress file `.part-<t>.inprogress`; at
//! checkpoint `n`'s barrier the file is closed, synced and renamed to the hidden
//! pending name `.part-<t>-<n>.jsonl.pending`; when checkpoint `n` completes it
//! is renamed atomically to `part-<t>-<n>.jsonl`. The last part of a bounded run
//! is `part-<t>-final.jsonl`. Reading the committed parts in name order gives
//! each task's output in order. On recovery, pending parts the restored
//! checkpoint covers are published and everything else of the failed attempt
//! is deleted, so no output of a failed attempt is ever visible.
//!
//! Without checkpointing, task `t` writes `part-<t>.jsonl` directly
//! (at-least-once: a failed run leaves what it wrote).

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use weir_engine::{RecordBatch, Sink, SinkError, SinkFactory, TaskContext, FINAL_EPOCH};
use weir_spec::{BuildContext, BuildError, Check, SinkConnector, SpecError};

/// The sink's definition.
#[derive(Clone, Debug)]
pub struct FileSink {
    pub dir: PathBuf,
    /// Stage output and publish it on checkpoint completion.
    pub exactly_once: bool,
    pub format: SinkFormat,
}

/// What a line of a file sink holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SinkFormat {
    /// The record's value.
    #[default]
    Values,
    /// `{"op":"+I|-U|+U|-D","data":VALUE}`: the row with its kind.
    ChangelogJson,
}

/// `type: file`: `path` is the output directory.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    pub path: PathBuf,
    #[serde(default, skip_serializing_if = "is_values")]
    pub format: SinkFormat,
}

fn is_values(f: &SinkFormat) -> bool {
    *f == SinkFormat::Values
}

/// The `file` sink type: exactly once when the pipeline checkpoints.
pub struct FileSinks;

impl SinkConnector for FileSinks {
    type Config = FileSinkConfig;
    const TYPE: &'static str = "file";

    fn check(&self, c: &FileSinkConfig, cx: &Check<'_>) -> Result<(), SpecError> {
        cx.path("path", &c.path)
    }

    fn build(&self, c: FileSinkConfig, cx: &BuildContext<'_>) -> Result<Arc<dyn SinkFactory>, BuildError> {
        Ok(Arc::new(FileSink { dir: c.path, exactly_once: cx.env.checkpointing, format: c.format }))
    }

    fn rejects_changelog(&self, c: &FileSinkConfig) -> Option<String> {
        (c.format == SinkFormat::Values).then(|| {
            "a 'file' sink writes every row as a new record and would lose the updates and deletes: give it \
             format: changelog-json to write each row with its kind"
                .to_string()
        })
    }
}

/// What a file name in the output directory is.
#[derive(Debug, PartialEq, Eq)]
enum Part {
    /// `part-<t>.jsonl` (at-least-once).
    Direct,
    /// `.part-<t>.inprogress`
    InProgress,
    /// `.part-<t>-<epoch>.jsonl.pending`
    Pending { task: u32, epoch: u64 },
    /// `part-<t>-<epoch>.jsonl`
    Committed { task: u32, epoch: u64 },
}

fn epoch_name(epoch: u64) -> String {
    if epoch == FINAL_EPOCH { "final".into() } else { format!("{epoch:010}") }
}

fn parse_epoch(s: &str) -> Option<u64> {
    if s == "final" { Some(FINAL_EPOCH) } else { s.parse().ok() }
}

fn classify(name: &str) -> Option<Part> {
    if let Some(rest) = name.strip_prefix(".part-") {
        if rest.strip_suffix(".inprogress").is_some_and(|t| t.parse::<u32>().is_ok()) {
            return Some(Part::InProgress);
        }
        let (task, epoch) = rest.strip_suffix(".jsonl.pending")?.split_once('-')?;
        return Some(Part::Pending { task: task.parse().ok()?, epoch: parse_epoch(epoch)? });
    }
    let rest = name.strip_prefix("part-")?.strip_suffix(".jsonl")?;
    match rest.split_once('-') {
        None => rest.parse::<u32>().ok().map(|_| Part::Direct),
        Some((task, epoch)) => Some(Part::Committed { task: task.parse().ok()?, epoch: parse_epoch(epoch)? }),
    }
}

fn pending_name(task: u32, epoch: u64) -> String {
    format!(".part-{task:04}-{}.jsonl.pending", epoch_name(epoch))
}

fn committed_name(task: u32, epoch: u64) -> String {
    format!("part-{task:04}-{}.jsonl", epoch_name(epoch))
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> SinkError {
    SinkError::msg(format!("cannot {what} {}: {e}", path.display()))
}

impl SinkFactory for FileSink {
    fn create(&self, ctx: &TaskContext) -> Result<Box<dyn Sink>, SinkError> {
        let task = ctx.task_index;
        let path = if self.exactly_once {
            self.dir.join(format!(".part-{task:04}.inprogress"))
        } else {
            self.dir.join(format!("part-{task:04}.jsonl"))
        };
        let mut w = FileWriter { dir: self.dir.clone(), task, path, out: None, pending: Vec::new(), format: self.format };
        if !self.exactly_once {
            w.open()?;
        }
        Ok(Box::new(w))
    }

    fn recover(&self, restored: Option<(u64, bool)>, state: Option<&weir_engine::NodeRestore>) -> Result<(), SinkError> {
        fs::create_dir_all(&self.dir).map_err(|e| io_err("create output directory", &self.dir, e))?;
        let covered = restored.map(|(epoch, _)| epoch);
        let covers = |task, epoch| weir_engine::covers(restored, state, task, epoch);
        for entry in fs::read_dir(&self.dir).map_err(|e| io_err("read", &self.dir, e))?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            let Some(part) = classify(&name) else { continue };
            match (part, covered) {
                (Part::Pending { task, epoch }, Some(c)) if covers(task, epoch) => {
                    let to = self.dir.join(committed_name(task, epoch));
                    fs::rename(&path, &to).map_err(|e| io_err("publish", &path, e))?;
                    tracing::info!("published {} (covered by the restored checkpoint {c})", to.display());
                }
                (Part::Committed { task, epoch }, Some(_)) if covers(task, epoch) => {}
                (Part::Committed { .. }, Some(c)) => {
                    tracing::warn!("removing {} (published after checkpoint {c}, which the run resumes from)", path.display());
                    fs::remove_file(&path).map_err(|e| io_err("remove", &path, e))?;
                }
                // A fresh run replaces all output; a failed attempt's staged
                // output is discarded.
                _ => fs::remove_file(&path).map_err(|e| io_err("remove", &path, e))?,
            }
        }
        Ok(())
    }
}

struct FileWriter {
    dir: PathBuf,
    task: u32,
    /// The file being written.
    path: PathBuf,
    out: Option<BufWriter<File>>,
    /// Staged parts not yet published: (epoch, pending path).
    pending: Vec<(u64, PathBuf)>,
    format: SinkFormat,
}

impl FileWriter {
    fn io(&self, e: std::io::Error) -> SinkError {
        io_err("write", &self.path, e)
    }

    fn open(&mut self) -> Result<&mut BufWriter<File>, SinkError> {
        if self.out.is_none() {
            let file = File::create(&self.path).map_err(|e| io_err("create", &self.path, e))?;
            self.out = Some(BufWriter::with_capacity(1 << 20, file));
        }
        Ok(self.out.as_mut().expect("just opened"))
    }
}

impl Sink for FileWriter {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        let changelog = self.format == SinkFormat::ChangelogJson;
        let out = self.open()?;
        let mut r = Ok(());
        for i in 0..batch.len() {
            let v = batch.value(i);
            if changelog {
                r = write!(out, "{{\"op\":\"{}\",\"data\":", batch.kind(i));
            }
            let is_json = !v.contains(&b'\n') && serde_json::from_slice::<serde::de::IgnoredAny>(v).is_ok();
            r = r.and_then(|()| {
                if is_json {
                    out.write_all(v)
                } else {
                    serde_json::to_writer(&mut *out, &String::from_utf8_lossy(v)).map_err(std::io::Error::other)
                }
            });
            r = r.and_then(|()| out.write_all(if changelog { b"}\n" } else { b"\n" }));
            if r.is_err() {
                break;
            }
        }
        r.map_err(|e| self.io(e))
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        match self.out.as_mut().map(|o| o.flush()) {
            Some(Err(e)) => Err(self.io(e)),
            _ => Ok(()),
        }
    }

    fn pre_commit(&mut self, epoch: u64) -> Result<(), SinkError> {
        let Some(out) = self.out.take() else { return Ok(()) };
        let file = out.into_inner().map_err(|e| io_err("write", &self.path, e.into_error()))?;
        file.sync_all().map_err(|e| self.io(e))?;
        let to = self.dir.join(pending_name(self.task, epoch));
        fs::rename(&self.path, &to).map_err(|e| io_err("stage", &self.path, e))?;
        self.pending.push((epoch, to));
        Ok(())
    }

    fn commit(&mut self, epoch: u64) -> Result<(), SinkError> {
        let (done, keep) = std::mem::take(&mut self.pending).into_iter().partition(|(e, _)| *e <= epoch);
        self.pending = keep;
        for (e, from) in done {
            let to = self.dir.join(committed_name(self.task, e));
            fs::rename(&from, &to).map_err(|err| io_err("publish", &from, err))?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        match self.out.take() {
            Some(out) => out.into_inner().map(drop).map_err(|e| io_err("write", &self.path, e.into_error())),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_engine::{Origin, NO_TIMESTAMP};

    fn batch(values: &[&[u8]]) -> RecordBatch {
        let mut b = RecordBatch::default();
        for v in values {
            b.push(b"k", v, NO_TIMESTAMP, Origin::default());
        }
        b
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        v.sort();
        v
    }

    #[test]
    fn writes_json_lines_per_task_and_a_fresh_run_removes_old_parts() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("part-0005.jsonl"), "stale\n").unwrap();
        fs::write(dir.path().join("part-0001-0000000003.jsonl"), "stale\n").unwrap();
        fs::write(dir.path().join("keep.txt"), "x").unwrap();
        let sink = FileSink { dir: dir.path().into(), exactly_once: false, format: SinkFormat::Values };
        sink.recover(None, None).unwrap();
        let mut w = sink.create(&TaskContext::new("p", "out", 0, 2)).unwrap();
        w.write(&batch(&[br#"{"a":1}"#, b"plain \"text\""])).unwrap();
        w.finish().unwrap();
        let got = fs::read_to_string(dir.path().join("part-0000.jsonl")).unwrap();
        assert_eq!(got, "{\"a\":1}\n\"plain \\\"text\\\"\"\n");
        assert_eq!(names(dir.path()), ["keep.txt", "part-0000.jsonl"]);
    }

    #[test]
    fn changelog_json_writes_each_row_with_its_kind() {
        use weir_engine::{Origin, RowKind};
        let dir = tempfile::tempdir().unwrap();
        let sink = FileSink { dir: dir.path().into(), exactly_once: false, format: SinkFormat::ChangelogJson };
        sink.recover(None, None).unwrap();
        let mut w = sink.create(&TaskContext::new("p", "out", 0, 1)).unwrap();
        let mut b = RecordBatch::default();
        for (i, (v, k)) in [(r#"{"n":1}"#, RowKind::Insert), (r#"{"n":1}"#, RowKind::UpdateBefore), ("two", RowKind::UpdateAfter), ("{}", RowKind::Delete)]
            .into_iter()
            .enumerate()
        {
            b.push_kind(b"", v.as_bytes(), weir_engine::NO_TIMESTAMP, Origin::at(i as u64), k);
        }
        w.write(&b).unwrap();
        w.finish().unwrap();
        let got = fs::read_to_string(dir.path().join("part-0000.jsonl")).unwrap();
        assert_eq!(
            got,
            "{\"op\":\"+I\",\"data\":{\"n\":1}}\n{\"op\":\"-U\",\"data\":{\"n\":1}}\n{\"op\":\"+U\",\"data\":\"two\"}\n{\"op\":\"-D\",\"data\":{}}\n"
        );
        let values = FileSinkConfig { path: dir.path().into(), format: SinkFormat::Values };
        assert!(FileSinks.rejects_changelog(&values).unwrap().contains("format: changelog-json"));
        let changelog = FileSinkConfig { format: SinkFormat::ChangelogJson, ..values };
        assert_eq!(FileSinks.rejects_changelog(&changelog), None);
    }

    #[test]
    fn exactly_once_parts_appear_only_when_their_checkpoint_completes() {
        let dir = tempfile::tempdir().unwrap();
        let sink = FileSink { dir: dir.path().into(), exactly_once: true, format: SinkFormat::Values };
        sink.recover(None, None).unwrap();
        let mut w = sink.create(&TaskContext::new("p", "out", 1, 2)).unwrap();
        w.write(&batch(&[b"1", b"2"])).unwrap();
        w.flush().unwrap();
        assert_eq!(names(dir.path()), [".part-0001.inprogress"]);
        w.pre_commit(1).unwrap();
        w.pre_commit(2).unwrap(); // nothing written: no part
        w.write(&batch(&[b"3"])).unwrap();
        w.pre_commit(3).unwrap();
        assert_eq!(names(dir.path()), [".part-0001-0000000001.jsonl.pending", ".part-0001-0000000003.jsonl.pending"]);
        w.commit(2).unwrap();
        assert_eq!(names(dir.path()), [".part-0001-0000000003.jsonl.pending", "part-0001-0000000001.jsonl"]);
        w.write(&batch(&[b"4"])).unwrap();
        w.pre_commit(FINAL_EPOCH).unwrap();
        w.commit(FINAL_EPOCH).unwrap();
        assert_eq!(names(dir.path()), ["part-0001-0000000001.jsonl", "part-0001-0000000003.jsonl", "part-0001-final.jsonl"]);
        let all: String = names(dir.path()).iter().map(|n| fs::read_to_string(dir.path().join(n)).unwrap()).collect();
        assert_eq!(all, "1\n2\n3\n4\n");
    }

    #[test]
    fn recovery_publishes_what_the_checkpoint_covers_and_drops_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for (name, body) in [
            ("part-0000-0000000001.jsonl", "a\n"),
            (".part-0000-0000000002.jsonl.pending", "b\n"),
            (".part-0001-0000000002.jsonl.pending", "c\n"),
            (".part-0000-0000000003.jsonl.pending", "lost attempt\n"),
            (".part-0000-final.jsonl.pending", "lost attempt\n"),
            ("part-0001-0000000004.jsonl", "after the checkpoint\n"),
            (".part-0000.inprogress", "lost attempt\n"),
            ("other.txt", "not ours\n"),
        ] {
            fs::write(d.join(name), body).unwrap();
        }
        FileSink { dir: d.into(), exactly_once: true, format: SinkFormat::Values }.recover(Some((2, false)), None).unwrap();
        assert_eq!(names(d), ["other.txt", "part-0000-0000000001.jsonl", "part-0000-0000000002.jsonl", "part-0001-0000000002.jsonl"]);
    }

    /// A crash between the completion of the last checkpoint of a bounded
    /// run and the sink's commit leaves the last parts staged: the restored
    /// checkpoint covers them (it is the final one, or holds the task's final
    /// snapshot), so recovery publishes them; a task whose final snapshot the
    /// checkpoint does not hold had not ended, and its last part goes.
    #[test]
    fn recovery_publishes_last_parts_of_tasks_whose_end_the_checkpoint_holds() {
        let staged = [
            ("part-0000-0000000001.jsonl", "a\n"),
            (".part-0000-final.jsonl.pending", "last of 0\n"),
            (".part-0001-final.jsonl.pending", "last of 1\n"),
            ("part-0002-final.jsonl", "published before the crash\n"),
        ];
        let run = |restored: (u64, bool), finished: Vec<bool>| {
            let dir = tempfile::tempdir().unwrap();
            for (name, body) in staged {
                fs::write(dir.path().join(name), body).unwrap();
            }
            let state = weir_engine::NodeRestore { parallelism: 3, finished, ..Default::default() };
            FileSink { dir: dir.path().into(), exactly_once: true, format: SinkFormat::Values }.recover(Some(restored), Some(&state)).unwrap();
            names(dir.path())
        };
        let all = ["part-0000-0000000001.jsonl", "part-0000-final.jsonl", "part-0001-final.jsonl", "part-0002-final.jsonl"];
        assert_eq!(run((7, true), vec![]), all, "the final checkpoint of the run covers every task's last part");
        assert_eq!(run((7, false), vec![true, true, true]), all);
        assert_eq!(
            run((7, false), vec![false, true, false]),
            ["part-0000-0000000001.jsonl", "part-0001-final.jsonl"],
            "only task 1 had ended at checkpoint 7"
        );
    }
}
