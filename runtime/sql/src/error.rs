//! Errors of a SQL script: each names the file and, where the problem has
//! one, the line and column of the construct concerned.

/// A script that cannot be compiled into a job.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error("{file}:{line}:{column}: {message}")]
    At { file: String, line: u64, column: u64, message: String },
    #[error("{file}: {message}")]
    File { file: String, message: String },
}

impl SqlError {
    pub fn at(file: &str, (line, column): (u64, u64), message: impl Into<String>) -> Self {
        if line == 0 {
            return SqlError::File { file: file.into(), message: message.into() };
        }
        SqlError::At { file: file.into(), line, column, message: message.into() }
    }

    /// The message without the place.
    pub fn message(&self) -> &str {
        match self {
            SqlError::At { message, .. } | SqlError::File { message, .. } => message,
        }
    }
}

/// A place in the script: line and column, 1-based (0: unknown).
pub type Pos = (u64, u64);

/// Where a sqlparser span starts.
pub fn pos(span: sqlparser::tokenizer::Span) -> Pos {
    (span.start.line, span.start.column)
}

pub(crate) use datafusion_sql::sqlparser;
