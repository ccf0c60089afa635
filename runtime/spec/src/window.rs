//! The `window:` block of an operator.

use marked_yaml::Spanned;
use weir_wasm::{WindowKind, WindowSpec};

use crate::model::RawWindow;
use crate::units::parse_duration;
use crate::validate::{Ctx, OperatorDef, SinkDef};
use crate::SpecError;

/// A positive duration in milliseconds.
fn millis(cx: &Ctx, f: &str, field: &str, v: &Spanned<String>) -> Result<i64, SpecError> {
    let d = parse_duration(v).map_err(|m| cx.err(v, format!("{f}.window.{field}: {m}")))?;
    let ms = d.as_millis();
    if ms == 0 {
        return Err(cx.err(v, format!("{f}.window.{field}: must be at least 1ms")));
    }
    Ok(ms.min(i64::MAX as u128 / 4) as i64)
}

fn required<'a>(cx: &Ctx, f: &str, w: &'a RawWindow, v: &'a Option<Spanned<String>>, field: &str) -> Result<&'a Spanned<String>, SpecError> {
    v.as_ref().ok_or_else(|| cx.err(&w.kind, format!("{f}.window.{field}: a {} window needs a {field}", w.kind.as_str())))
}

fn absent(cx: &Ctx, f: &str, w: &RawWindow, v: &Option<Spanned<String>>, field: &str) -> Result<(), SpecError> {
    match v {
        Some(v) => Err(cx.err(v, format!("{f}.window.{field}: not a setting of a {} window", w.kind.as_str()))),
        None => Ok(()),
    }
}

/// `{type: tumbling, size}`, `{type: sliding, size, slide}` or `{type: session, gap}`,
/// each with optional `allowed_lateness` and `late_output`.
pub(crate) fn window(cx: &Ctx, f: &str, w: &RawWindow) -> Result<WindowSpec, SpecError> {
    let kind = match w.kind.as_str() {
        "tumbling" => {
            absent(cx, f, w, &w.slide, "slide")?;
            absent(cx, f, w, &w.gap, "gap")?;
            WindowKind::Tumbling { size: millis(cx, f, "size", required(cx, f, w, &w.size, "size")?)? }
        }
        "sliding" | "hop" => {
            absent(cx, f, w, &w.gap, "gap")?;
            let size = millis(cx, f, "size", required(cx, f, w, &w.size, "size")?)?;
            let s = required(cx, f, w, &w.slide, "slide")?;
            let slide = millis(cx, f, "slide", s)?;
            if slide > size {
                return Err(cx.err(s, format!("{f}.window.slide: must not exceed the size ({}ms), or records fall between windows", size)));
            }
            WindowKind::Sliding { size, slide }
        }
        "session" => {
            absent(cx, f, w, &w.size, "size")?;
            absent(cx, f, w, &w.slide, "slide")?;
            WindowKind::Session { gap: millis(cx, f, "gap", required(cx, f, w, &w.gap, "gap")?)? }
        }
        other => {
            return Err(cx.err(&w.kind, format!("{f}.window.type: '{other}' is not a window type (tumbling, sliding, session)")))
        }
    };
    let allowed_lateness = match &w.allowed_lateness {
        Some(l) => {
            let d = parse_duration(l).map_err(|m| cx.err(l, format!("{f}.window.allowed_lateness: {m}")))?;
            d.as_millis().min(i64::MAX as u128 / 4) as i64
        }
        None => 0,
    };
    let late_output = match &w.late_output {
        Some(n) => {
            if n.is_empty() || !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                return Err(cx.err(n, format!("{f}.window.late_output: '{}' is not a valid name (use letters, digits, '_' and '-')", n.as_str())));
            }
            n.to_string()
        }
        None => WindowSpec::DEFAULT_LATE_OUTPUT.to_string(),
    };
    Ok(WindowSpec { kind, allowed_lateness, late_output })
}

/// A window operator's only side output is its late output.
pub(crate) fn check_side_outputs(cx: &Ctx, ops: &[OperatorDef], sinks: &[SinkDef]) -> Result<(), SpecError> {
    let readers = ops.iter().map(|o| (format!("operator '{}'", o.name), &o.inputs)).chain(sinks.iter().map(|s| (format!("sink '{}'", s.name), &s.inputs)));
    for (who, inputs) in readers {
        for i in inputs {
            let (Some(out), Some(w)) = (&i.output, ops.iter().find(|o| o.name == i.node).and_then(|o| o.window.as_ref())) else {
                continue;
            };
            if *out != w.late_output {
                return Err(SpecError::At {
                    file: cx.file.into(),
                    line: i.line,
                    column: 1,
                    message: format!(
                        "{who} reads '{}.{out}', but window operator '{}' has one side output, its late output '{}' (window.late_output)",
                        i.node, i.node, w.late_output
                    ),
                });
            }
        }
    }
    Ok(())
}
