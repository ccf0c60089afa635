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
    /// A directory whose files the node's pipelines may read and write, besides
    /// the data directory (repeatable). A spec naming a file elsewhere is
    /// refused.
    #[arg(long = "allow-path", value_name = "DIR")]
    allow_path: Vec<PathBuf>,
    /// Address to listen on (port 0: any free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    /// Require `Authorization: Bearer TOKEN` on every request.
    #[arg(long, env = "WEIR_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Serve `/metrics` without the token.
    #[arg(long)]
    public_metrics: bool,
    /// Allow listening on a non-loopback address without a token (anyone who
    /// reaches the node could then upload and run code on it).
    #[arg(long)]
    insecure_no_token: bool,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Largest accepted upload (e.g. 64MiB).
    #[arg(long, default_value = "64MiB")]
    max_upload: String,
    /// A client must send a request's headers within this (e.g. 10s).
    #[arg(long, default_value = "10s")]
    header_timeout: String,
    /// A client must send a request's body within this (e.g. 60s).
    #[arg(long, default_value = "60s")]
    body_timeout: String,
    /// Connections open at once; more are answered 503 and closed.
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// On SIGINT or SIGTERM, how long to wait for open requests (e.g. 5s).
    #[arg(long, default_value = "5s")]
    shutdown_timeout: String,
    #[command(flatten)]
    cache: CacheArgs,
}

fn duration(flag: &str, value: &str) -> anyhow::Result<std::time::Duration> {
    weir_spec::parse_duration(value).map_err(|e| anyhow::anyhow!("{flag}: {e}"))
}

/// A node without a token may listen on loopback addresses only, unless told.
fn check_exposure(args: &ServeArgs) -> anyhow::Result<()> {
    use std::net::ToSocketAddrs as _;
    if args.token.is_some() || args.insecure_no_token {
        return Ok(());
    }
    let addrs: Vec<_> = args.addr.to_socket_addrs().with_context(|| format!("--addr {}: not an address", args.addr))?.collect();
    if let Some(a) = addrs.iter().find(|a| !a.ip().is_loopback()) {
        bail!(
            "--addr {}: refusing to listen on {} without a token, since anyone who reaches it could upload and run code on this node; \
             set --token (or WEIR_TOKEN), listen on 127.0.0.1, or pass --insecure-no-token to allow it",
            args.addr,
            a.ip()
        );
    }
    Ok(())
}

pub fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let max_upload = weir_spec::parse_bytes(&args.max_upload).map_err(|e| anyhow::anyhow!("--max-upload: {e}"))?;
    let header_timeout = duration("--header-timeout", &args.header_timeout)?;
    let body_timeout = duration("--body-timeout", &args.body_timeout)?;
    let shutdown_grace = duration("--shutdown-timeout", &args.shutdown_timeout)?;
    if args.max_connections == 0 {
        bail!("--max-connections: at least 1");
    }
    if args.token.as_deref() == Some("") {
        bail!("--token: an empty token would let anyone in; give one, or none");
    }
    check_exposure(&args)?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(weir_api::tls_config(cert, key).map_err(anyhow::Error::msg)?),
        _ => None,
    };
    let loader = PluginLoader::new(LoaderConfig { cache_dir: cache_dir(&args.cache) })?;
    let config = weir_api::ApiConfig {
        data_dir: args.data_dir.clone(),
        allowed_paths: args.allow_path.clone(),
        token: args.token.clone(),
        public_metrics: args.public_metrics,
        max_upload,
        body_timeout,
    };
    let sql: std::sync::Arc<dyn weir_api::SqlCompiler> = std::sync::Arc::new(crate::sql::SqlJobs);
    let state = weir_api::AppState::new(config, loader, std::sync::Arc::new(crate::types::registry()), Some(sql))?;
    let rt = tokio::runtime::Runtime::new().context("cannot start the node's runtime")?;
    let opts = weir_api::ServeOptions { header_timeout, max_connections: args.max_connections, shutdown_grace, tls };
    let scheme = if opts.tls.is_some() { "https" } else { "http" };
    let served = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(&args.addr).await.with_context(|| format!("cannot listen on {}", args.addr))?;
        let addr = listener.local_addr()?;
        println!("weir serve: listening on {scheme}://{addr} (data in {})", args.data_dir.display());
        use std::io::Write as _;
        std::io::stdout().flush()?;
        weir_api::serve(listener, weir_api::router(state), opts, stop_signal()).await;
        tracing::info!("the node stopped");
        anyhow::Ok(())
    });
    // Requests still running on blocking threads (a start, say) are not waited for.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    served
}

/// SIGINT or SIGTERM.
async fn stop_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        Some(()) = async { match term.as_mut() { Some(t) => t.recv().await, None => std::future::pending().await } } => {}
    }
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
