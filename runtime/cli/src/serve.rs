//! `weir serve` and `weir plugin upload|list|delete` (against a node).

use std::path::PathBuf;

use anyhow::{bail, Context as _};
use weir_wasm::{LoaderConfig, PluginLoader};

use crate::run::{cache_dir, CacheArgs};

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Where the node keeps its plugin registry (and, later, pipelines and
    /// checkpoints).
    #[arg(long, default_value = "weir-data")]
    data_dir: PathBuf,
    /// Address to listen on (port 0: any free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    /// Require `Authorization: Bearer TOKEN` on every mutating request.
    #[arg(long, env = "WEIR_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Largest accepted upload (e.g. 64MiB).
    #[arg(long, default_value = "64MiB")]
    max_upload: String,
    #[command(flatten)]
    cache: CacheArgs,
}

pub fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let max_upload = weir_spec::parse_bytes(&args.max_upload).map_err(|e| anyhow::anyhow!("--max-upload: {e}"))?;
    let loader = PluginLoader::new(LoaderConfig { cache_dir: cache_dir(&args.cache) })?;
    let config = weir_api::ApiConfig { data_dir: args.data_dir.clone(), token: args.token, max_upload };
    let state = weir_api::AppState::new(config, loader, std::sync::Arc::new(crate::types::registry()))?;
    let rt = tokio::runtime::Runtime::new().context("cannot start the node's runtime")?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(&args.addr).await.with_context(|| format!("cannot listen on {}", args.addr))?;
        let addr = listener.local_addr()?;
        println!("weir serve: listening on http://{addr} (data in {})", args.data_dir.display());
        use std::io::Write as _;
        std::io::stdout().flush()?;
        axum::serve(listener, weir_api::router(state))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .context("the node stopped")
    })
}

#[derive(clap::Args)]
pub(crate) struct Client {
    /// The node.
    #[arg(long, env = "WEIR_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// The node's token, if it has one.
    #[arg(long, env = "WEIR_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print the node's JSON answer instead of text.
    #[arg(long, value_parser = ["text", "json"], default_value = "text")]
    output: String,
}

#[derive(clap::Subcommand)]
pub enum PluginCommand {
    /// Upload a component as NAME@VERSION.
    Upload {
        file: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long)]
        version: String,
        #[command(flatten)]
        client: Client,
    },
    /// List the plugins of the node.
    List {
        #[command(flatten)]
        client: Client,
    },
    /// Remove NAME@VERSION from the node.
    Delete {
        name: String,
        version: String,
        #[command(flatten)]
        client: Client,
    },
}

impl Client {
    pub(crate) fn json(&self) -> bool {
        self.output == "json"
    }

    pub(crate) fn send(&self, req: reqwest::blocking::RequestBuilder) -> anyhow::Result<serde_json::Value> {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let resp = req.send().with_context(|| format!("cannot reach the node at {}", self.server))?;
        let status = resp.status();
        let text = resp.text().with_context(|| format!("no answer from the node at {}", self.server))?;
        let body: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("the node at {} did not answer JSON: {text}", self.server))?;
        if !status.is_success() {
            bail!("{} ({status})", body["error"].as_str().unwrap_or("the node refused the request"));
        }
        Ok(body)
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.trim_end_matches('/'))
    }
}

fn describe(v: &serde_json::Value) -> String {
    format!("{}@{} sha256:{} ({}, {} bytes)", v["name"].as_str().unwrap_or("?"), v["version"].as_str().unwrap_or("?"), v["digest"].as_str().unwrap_or("?"), v["world"].as_str().unwrap_or("?"), v["size"])
}

pub fn plugin(command: PluginCommand) -> anyhow::Result<()> {
    let http = reqwest::blocking::Client::builder().timeout(std::time::Duration::from_secs(300)).build()?;
    let (client, answer, verb) = match &command {
        PluginCommand::Upload { file, name, version, client } => {
            let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
            let req = http.post(client.url("/api/v1/plugins")).query(&[("name", name), ("version", version)]).body(bytes);
            (client, client.send(req)?, "uploaded")
        }
        PluginCommand::List { client } => (client, client.send(http.get(client.url("/api/v1/plugins")))?, ""),
        PluginCommand::Delete { name, version, client } => {
            let req = http.delete(client.url(&format!("/api/v1/plugins/{name}/{version}")));
            (client, client.send(req)?, "deleted")
        }
    };
    if client.output == "json" {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else if let Some(list) = answer.as_array() {
        for v in list {
            println!("{}", describe(v));
        }
    } else {
        println!("{verb} {}", describe(&answer));
    }
    Ok(())
}
