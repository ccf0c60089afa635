//! An invalid spec, and where: every error names the file and, where it is
//! known, the line, column and field.

use marked_yaml::Marker;

use crate::registry::BuildError;

/// An invalid spec. The message starts with `file:line:column:` where known,
/// then the field and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("{file}:{line}:{column}: {message}")]
    At { file: String, line: usize, column: usize, message: String },
    #[error("{file}: {message}")]
    File { file: String, message: String },
    /// A node's factory could not be built (a plugin that does not load, a
    /// connector that cannot start).
    #[error("{file}:{line}: {role} '{node}': {source}")]
    Build {
        file: String,
        line: usize,
        role: &'static str,
        node: String,
        #[source]
        source: BuildError,
    },
    #[error("{file}: {0}", file = .1)]
    Engine(Box<weir_engine::EngineError>, String),
}

impl SpecError {
    pub(crate) fn at(file: &str, marker: Option<&Marker>, message: impl Into<String>) -> Self {
        match marker {
            Some(m) => SpecError::At { file: file.into(), line: m.line(), column: m.column(), message: message.into() },
            None => SpecError::File { file: file.into(), message: message.into() },
        }
    }

    pub(crate) fn from_load(file: &str, e: marked_yaml::LoadError) -> Self {
        use marked_yaml::LoadError as L;
        let (m, msg) = match &e {
            L::TopLevelMustBeMapping(m) => (Some(*m), "the spec must be a mapping (name:, sources:, ...)".to_string()),
            L::ScanError(m, s) => (Some(*m), format!("invalid YAML: {}", s.info())),
            L::DuplicateKey(d) => (d.key.span().start().copied(), format!("duplicate key '{}'", d.key.as_str())),
            _ => (None, format!("invalid YAML: {e}")),
        };
        SpecError::at(file, m.as_ref(), msg)
    }

    pub(crate) fn from_serde(file: &str, e: marked_yaml::FromNodeError) -> Self {
        Self::from_serde_in(file, "", &[], e)
    }

    /// A deserialisation error of part of the spec: `prefix` is where that
    /// part is ("sources[0]"), `common` the fields that part shares with every
    /// entry of its kind (listed first among the expected ones).
    pub(crate) fn from_serde_in(file: &str, prefix: &str, common: &[&str], e: marked_yaml::FromNodeError) -> Self {
        let marker = e.start_mark();
        let what = match &*e {
            marked_yaml::Error::UnknownFieldError(field, expected, _) => {
                let all: Vec<&str> = common.iter().copied().chain(expected.iter().copied()).collect();
                format!("unknown field '{field}', expected one of: {}", all.join(", "))
            }
            marked_yaml::Error::NotBoolean(_) => "expected true or false".to_string(),
            marked_yaml::Error::IntegerParseFailure(err, _) => format!("expected a whole number: {err}"),
            marked_yaml::Error::FloatParseFailure(err, _) => format!("expected a number: {err}"),
            marked_yaml::Error::Other(msg, _) => msg.clone(),
        };
        let path = e.path().filter(|p| !p.is_empty() && *p != ".");
        let message = match (prefix, path) {
            ("", Some(p)) => format!("{p}: {what}"),
            ("", None) => what,
            (pre, Some(p)) => format!("{pre}.{p}: {what}"),
            (pre, None) => format!("{pre}: {what}"),
        };
        SpecError::at(file, marker.as_ref(), message)
    }
}
