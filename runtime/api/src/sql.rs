//! SQL jobs over the API: `POST /api/v1/pipelines` with `Content-Type:
//! application/sql` sends a SQL script instead of a spec. The node compiles
//! it into a pipeline spec with the compiler the binary plugs in (weir-sql,
//! kept out of this crate), and from there it is a pipeline like any other:
//! stored, checkpointed, restarted, resumed and swapped.

use std::sync::Arc;

use weir_wasm::PluginSource;

/// Compiles a SQL script into a pipeline spec.
pub trait SqlCompiler: Send + Sync {
    /// The spec of `script` (JSON or YAML text). `plugins` are the node's
    /// (`CREATE FUNCTION f AS 'name@version'` names one of its registry).
    /// `check` is the node's own check of a spec (its paths, its plugins);
    /// the compiler runs it on the spec and answers its complaint placed in
    /// the script (the table or option it comes from).
    fn compile(
        &self,
        script: &str,
        plugins: Arc<dyn PluginSource>,
        check: &dyn Fn(&str) -> Result<(), String>,
    ) -> Result<String, SqlCompileError>;

    /// What the builds of the node's pipelines need for the operators SQL
    /// jobs compile to (their functions' plugins, from `plugins`).
    fn extend(&self, _extensions: &mut weir_spec::Extensions, _plugins: Arc<dyn PluginSource>) {}
}

/// A script that does not compile, or whose spec the node refuses.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SqlCompileError {
    /// What is wrong and where (`sql:LINE:COLUMN: ...`).
    pub message: String,
}

/// Whether a request's content type says its body is SQL.
pub(crate) fn is_sql(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/sql")))
}
