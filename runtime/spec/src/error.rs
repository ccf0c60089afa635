use marked_yaml::Marker;

/// An invalid spec. The message starts with `file:line:column:` where known,
/// then the field and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("{file}:{line}:{column}: {message}")]
    At { file: String, line: usize, column: usize, message: String },
    #[error("{file}: {message}")]
    File { file: String, message: String },
    #[error("{file}:{line}: operator '{operator}': {source}")]
    Plugin {
        file: String,
        line: usize,
        operator: String,
        #[source]
        source: Box<weir_wasm::WasmError>,
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
        let marker = e.start_mark();
        let what = match &*e {
            marked_yaml::Error::UnknownFieldError(field, expected, _) => {
                format!("unknown field '{field}', expected one of: {}", expected.join(", "))
            }
            marked_yaml::Error::NotBoolean(_) => "expected true or false".to_string(),
            marked_yaml::Error::IntegerParseFailure(err, _) => format!("expected a whole number: {err}"),
            marked_yaml::Error::FloatParseFailure(err, _) => format!("expected a number: {err}"),
            marked_yaml::Error::Other(msg, _) => msg.clone(),
        };
        let message = match e.path() {
            Some(p) if !p.is_empty() && p != "." => format!("{p}: {what}"),
            _ => what,
        };
        SpecError::at(file, marker.as_ref(), message)
    }
}
