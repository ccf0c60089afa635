//! The web dashboard: the files of `runtime/api/dashboard` (embedded by
//! `build.rs`), served at `/` and `/assets/<file>` without the token (they
//! hold no data; the page asks for the token and sends it with its API
//! calls), with a strict content security policy: the page runs only its own
//! scripts and talks only to this node.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

include!(concat!(env!("OUT_DIR"), "/dashboard_assets.rs"));

const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; \
                   object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

fn asset(name: &str) -> Response {
    let Some((_, mime, bytes)) = ASSETS.iter().find(|(n, _, _)| *n == name) else {
        return (StatusCode::NOT_FOUND, format!("no dashboard file {name}")).into_response();
    };
    let mut r = (*bytes).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    r
}

/// `GET /`: the dashboard's page.
pub(crate) async fn index() -> Response {
    asset("index.html")
}

/// `GET /assets/{file}`: its scripts and styles.
pub(crate) async fn file(Path(file): Path<String>) -> Response {
    asset(&file)
}

/// Paths the dashboard serves without the token.
pub(crate) fn is_public(path: &str) -> bool {
    path == "/" || path.strip_prefix("/assets/").is_some_and(|f| !f.is_empty() && !f.contains('/'))
}
