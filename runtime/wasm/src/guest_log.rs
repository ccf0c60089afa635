//! What a guest writes to the host log, bounded per task: lines of its `log`
//! calls and of its stdout/stderr ([`crate::log_stream`]) are cut to
//! `limits.log_line` bytes, and at most `limits.log_rate` bytes a second are
//! logged; lines over that are dropped and counted, with one warning a second
//! saying how many. Also [`cut`], which bounds guest error and panic messages.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::bindings::runtime::Level;
use crate::Limits;

/// A task's guest log. Clones share its budget.
#[derive(Clone)]
pub(crate) struct GuestLog(Arc<Inner>);

struct Inner {
    /// `plugin@version/operator[task]`, the `plugin` field of every line.
    tag: Arc<str>,
    /// The pipeline, the `pipeline` field of every line.
    pipeline: Arc<str>,
    /// For the warnings: plugin, operator and task in words.
    who: String,
    line_max: usize,
    rate: usize,
    budget: Mutex<Budget>,
    /// The last few stderr lines (cut short), for a trap's message: a guest
    /// without Weir's imports (a SQL function) panics onto stderr only.
    recent: Mutex<std::collections::VecDeque<String>>,
}

/// How many stderr lines a trap's message may quote, and how long each.
const RECENT_LINES: usize = 4;
const RECENT_BYTES: usize = 300;

/// Log volume of the current second.
struct Budget {
    since: Instant,
    used: usize,
    dropped_lines: u64,
    dropped_bytes: usize,
}

impl GuestLog {
    pub fn new(pipeline: &str, plugin: &str, operator: &str, task: u32, limits: &Limits) -> Self {
        GuestLog(Arc::new(Inner {
            tag: format!("{plugin}/{operator}[{task}]").into(),
            pipeline: pipeline.into(),
            who: format!("plugin {plugin} in operator '{operator}' (task {task})"),
            line_max: limits.log_line,
            rate: limits.log_rate,
            budget: Mutex::new(Budget { since: Instant::now(), used: 0, dropped_lines: 0, dropped_bytes: 0 }),
            recent: Mutex::default(),
        }))
    }

    /// Forget the stderr lines kept so far (a call starts).
    pub fn clear_recent(&self) {
        self.0.recent.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// The stderr lines of the current call kept (the last few), oldest first.
    pub fn take_recent(&self) -> Vec<String> {
        self.0.recent.lock().unwrap_or_else(|p| p.into_inner()).drain(..).collect()
    }

    /// The longest line logged, in bytes.
    pub fn line_max(&self) -> usize {
        self.0.line_max
    }

    /// Log one line of `stream` (`None`: a `log` call), of which `cut` more
    /// bytes were already left out; it is cut to the line limit and dropped if
    /// this second's volume is spent.
    pub fn line(&self, level: Level, stream: Option<&'static str>, text: &[u8], cut: usize) {
        if stream == Some("stderr") {
            let mut recent = self.0.recent.lock().unwrap_or_else(|p| p.into_inner());
            if recent.len() == RECENT_LINES {
                recent.pop_front();
            }
            recent.push_back(self::cut(String::from_utf8_lossy(text).trim_end().to_string(), RECENT_BYTES));
        }
        let keep = text.len().min(self.0.line_max);
        let cut = cut + text.len() - keep;
        // A line costs at least a byte, so empty lines are rate-limited too.
        if !self.0.admit(keep + 1) {
            return;
        }
        let text = String::from_utf8_lossy(&text[..keep]);
        let text = text.trim_end_matches('\r');
        let marker = if cut > 0 { format!("… ({cut} bytes cut)") } else { String::new() };
        let (plugin, pipeline) = (&*self.0.tag, &*self.0.pipeline);
        match level {
            Level::Trace => tracing::trace!(target: "weir::plugin", pipeline, plugin, stream, "{text}{marker}"),
            Level::Debug => tracing::debug!(target: "weir::plugin", pipeline, plugin, stream, "{text}{marker}"),
            Level::Info => tracing::info!(target: "weir::plugin", pipeline, plugin, stream, "{text}{marker}"),
            Level::Warn => tracing::warn!(target: "weir::plugin", pipeline, plugin, stream, "{text}{marker}"),
            Level::Error => tracing::error!(target: "weir::plugin", pipeline, plugin, stream, "{text}{marker}"),
        }
    }
}

impl Inner {
    /// Whether a line of `bytes` fits this second's volume; counts it if not.
    fn admit(&self, bytes: usize) -> bool {
        let mut b = self.budget.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if now.duration_since(b.since) >= Duration::from_secs(1) {
            self.report(&mut b);
            b.since = now;
            b.used = 0;
        }
        if b.used + bytes > self.rate {
            b.dropped_lines += 1;
            b.dropped_bytes += bytes;
            return false;
        }
        b.used += bytes;
        true
    }

    /// Warn about the lines dropped since the last warning, if any.
    fn report(&self, b: &mut Budget) {
        if b.dropped_lines > 0 {
            tracing::warn!(
                target: "weir::plugin",
                plugin = &*self.tag,
                "{} logged more than {} bytes in a second: {} lines ({} bytes) dropped (limits.log_rate)",
                self.who,
                self.rate,
                b.dropped_lines,
                b.dropped_bytes
            );
        }
        b.dropped_lines = 0;
        b.dropped_bytes = 0;
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let mut b = self.budget.lock().unwrap_or_else(|p| p.into_inner());
        self.report(&mut b);
    }
}

/// `message` cut to at most `max` bytes (at a character boundary), followed
/// by "… (N bytes cut)" if anything was.
pub(crate) fn cut(mut message: String, max: usize) -> String {
    if message.len() <= max {
        return message;
    }
    let keep = message.floor_char_boundary(max);
    let n = message.len() - keep;
    message.truncate(keep);
    message.push_str(&format!("… ({n} bytes cut)"));
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_keeps_whole_characters() {
        assert_eq!(cut("short".into(), 8), "short");
        assert_eq!(cut("0123456789".into(), 4), "0123… (6 bytes cut)");
        // 'é' is two bytes: cutting inside it keeps neither.
        assert_eq!(cut("aé".into(), 2), "a… (2 bytes cut)");
    }
}
