//! Commits of our own making to a REST catalog: the protocol's table commit
//! (`POST /v1/{prefix}/namespaces/{namespace}/tables/{table}` with
//! requirements and updates), which iceberg-rust's REST catalog makes only
//! for the commits iceberg-rust builds. The catalog checks the requirements
//! (the table's UUID, the main branch's head) and writes the new metadata
//! itself: its compare-and-swap. The prefix comes from the catalog's
//! `GET /v1/config`, as every REST client reads it.

use iceberg::{TableIdent, TableRequirement, TableUpdate};
use reqwest::{Client, StatusCode, Url};
use serde::Serialize;
use tokio::sync::OnceCell;

/// What a commit needs of a REST catalog: its base URI, its warehouse
/// parameter, a bearer token, and (read once) its prefix.
pub struct RestCommits {
    base: String,
    warehouse: Option<String>,
    token: Option<String>,
    http: Client,
    prefix: OnceCell<Option<String>>,
}

#[derive(Serialize)]
struct Identifier<'a> {
    namespace: &'a [String],
    name: &'a str,
}

#[derive(Serialize)]
struct CommitTable<'a> {
    identifier: Identifier<'a>,
    requirements: &'a [TableRequirement],
    updates: &'a [TableUpdate],
}

#[derive(serde::Deserialize, Default)]
struct ConfigBody {
    #[serde(default)]
    defaults: std::collections::HashMap<String, String>,
    #[serde(default)]
    overrides: std::collections::HashMap<String, String>,
}

impl RestCommits {
    pub fn new(base: String, warehouse: Option<String>, token: Option<String>) -> Self {
        let http = Client::builder().timeout(std::time::Duration::from_secs(60)).build().unwrap_or_default();
        RestCommits { base, warehouse, token, http, prefix: OnceCell::new() }
    }

    fn authed(&self, r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    fn url(&self, segments: &[&str]) -> Result<Url, String> {
        let mut u = Url::parse(&self.base).map_err(|e| format!("REST catalog {}: {e}", self.base))?;
        u.path_segments_mut().map_err(|_| format!("REST catalog {} cannot have paths", self.base))?.pop_if_empty().extend(segments);
        Ok(u)
    }

    /// The catalog's prefix (its config's override, else its default).
    async fn prefix(&self) -> Result<Option<String>, String> {
        self.prefix
            .get_or_try_init(|| async {
                let mut u = self.url(&["v1", "config"])?;
                if let Some(w) = &self.warehouse {
                    u.query_pairs_mut().append_pair("warehouse", w);
                }
                let what = format!("REST catalog {}: GET {u}", self.base);
                let r = self.authed(self.http.get(u.clone())).send().await.map_err(|e| format!("{what}: {e}"))?;
                let status = r.status();
                let body = r.text().await.map_err(|e| format!("{what}: {e}"))?;
                if !status.is_success() {
                    return Err(format!("{what}: {status}: {}", clip(&body)));
                }
                let c: ConfigBody = serde_json::from_str(&body).map_err(|e| format!("{what}: not a catalog config ({e}): {}", clip(&body)))?;
                Ok(c.overrides.get("prefix").or(c.defaults.get("prefix")).filter(|p| !p.is_empty()).cloned())
            })
            .await
            .cloned()
    }

    /// Commit `updates` to table `ident` if `requirements` hold; false when
    /// the catalog says they do not (409: another writer committed first).
    /// Any other failure is an error: the commit's fate is then unknown, and
    /// the caller looks for it in the table before trying again.
    pub async fn commit(&self, ident: &TableIdent, requirements: &[TableRequirement], updates: &[TableUpdate]) -> Result<bool, String> {
        let prefix = self.prefix().await?;
        let ns = ident.namespace().join("\u{1f}");
        let mut segs = vec!["v1"];
        if let Some(p) = &prefix {
            segs.extend(p.split('/').filter(|s| !s.is_empty()));
        }
        segs.extend(["namespaces", &ns, "tables", ident.name()]);
        let u = self.url(&segs)?;
        let body = CommitTable { identifier: Identifier { namespace: ident.namespace().as_ref(), name: ident.name() }, requirements, updates };
        let what = format!("REST catalog {}: commit to {ident} (POST {u})", self.base);
        let r = self.authed(self.http.post(u.clone())).json(&body).send().await.map_err(|e| format!("{what}: {e}"))?;
        let status = r.status();
        if status.is_success() {
            return Ok(true);
        }
        let text = r.text().await.unwrap_or_default();
        match status {
            StatusCode::CONFLICT => Ok(false),
            _ => Err(format!("{what}: {status}: {}", clip(&text))),
        }
    }
}

/// A response body, cut for a message.
fn clip(s: &str) -> &str {
    match s.char_indices().nth(500) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
