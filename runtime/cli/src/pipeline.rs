//! `weir pipeline create|list|show|stop|start|delete|checkpoints` and `weir
//! swap`, against a node (`weir serve`).

use std::path::PathBuf;

use anyhow::Context as _;

use crate::serve::Client;

#[derive(clap::Subcommand)]
pub enum PipelineCommand {
    /// Create a pipeline from a spec (YAML or JSON) whose operators name
    /// plugins of the node's registry as NAME@VERSION; it starts at once.
    Create {
        spec: PathBuf,
        #[command(flatten)]
        client: Client,
    },
    /// List the node's pipelines.
    List {
        #[command(flatten)]
        client: Client,
    },
    /// A pipeline's status: operators, records, plugin versions, checkpoints, last swap.
    Show {
        id: String,
        #[command(flatten)]
        client: Client,
    },
    /// Stop a pipeline after a savepoint.
    Stop {
        id: String,
        #[command(flatten)]
        client: Client,
    },
    /// Start a stopped pipeline; it resumes from its latest checkpoint.
    Start {
        id: String,
        /// Start afresh: delete its checkpoints and run it from the beginning.
        #[arg(long)]
        fresh: bool,
        #[command(flatten)]
        client: Client,
    },
    /// Stop a pipeline and delete it with its checkpoints.
    Delete {
        id: String,
        #[command(flatten)]
        client: Client,
    },
    /// A pipeline's stored checkpoints and savepoints.
    Checkpoints {
        id: String,
        #[command(flatten)]
        client: Client,
    },
}

#[derive(clap::Args)]
pub struct SwapArgs {
    /// The pipeline.
    pipeline: String,
    /// The operator whose plugin changes.
    operator: String,
    /// The new version, NAME@VERSION, in the node's registry.
    plugin: String,
    /// The new version runs at least this long before the checkpoint that
    /// confirms it; a failure before rolls it back (e.g. 5s).
    #[arg(long)]
    probation: Option<String>,
    #[command(flatten)]
    client: Client,
}

fn http() -> anyhow::Result<reqwest::blocking::Client> {
    Ok(reqwest::blocking::Client::builder().timeout(std::time::Duration::from_secs(300)).build()?)
}

pub fn pipeline(command: PipelineCommand) -> anyhow::Result<()> {
    let http = http()?;
    let (client, answer) = match &command {
        PipelineCommand::Create { spec, client } => {
            let text = std::fs::read_to_string(spec).with_context(|| format!("cannot read {}", spec.display()))?;
            (client, client.send(http.post(client.url("/api/v1/pipelines")).body(text))?)
        }
        PipelineCommand::List { client } => (client, client.send(http.get(client.url("/api/v1/pipelines")))?),
        PipelineCommand::Show { id, client } => (client, client.send(http.get(client.url(&format!("/api/v1/pipelines/{id}"))))?),
        PipelineCommand::Stop { id, client } => {
            (client, client.send(http.post(client.url(&format!("/api/v1/pipelines/{id}/stop"))))?)
        }
        PipelineCommand::Start { id, fresh, client } => {
            let url = client.url(&format!("/api/v1/pipelines/{id}/start"));
            (client, client.send(http.post(url).query(&[("fresh", fresh)]))?)
        }
        PipelineCommand::Delete { id, client } => {
            (client, client.send(http.delete(client.url(&format!("/api/v1/pipelines/{id}"))))?)
        }
        PipelineCommand::Checkpoints { id, client } => {
            let v = client.send(http.get(client.url(&format!("/api/v1/pipelines/{id}/checkpoints"))))?;
            if !client.json() {
                for c in v["checkpoints"].as_array().into_iter().flatten() {
                    println!("{} {} bytes {}", c["name"].as_str().unwrap_or("?"), c["bytes"], if c["complete"] == true { "complete" } else { "incomplete" });
                }
                for s in v["savepoints"].as_array().into_iter().flatten() {
                    println!("savepoint {}", s.as_str().unwrap_or("?"));
                }
                return Ok(());
            }
            (client, v)
        }
    };
    if client.json() {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else if let Some(list) = answer.as_array() {
        for p in list {
            println!("{}", line(p));
        }
    } else {
        print_pipeline(&answer);
    }
    Ok(())
}

fn line(p: &serde_json::Value) -> String {
    let plugins: Vec<String> = p["plugins"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(op, v)| format!("{op}={}", v.as_str().unwrap_or("?")))
        .collect();
    let mut s = format!("{} {} [{}]", p["id"].as_str().unwrap_or("?"), p["status"].as_str().unwrap_or("?"), plugins.join(" "));
    if let Some(e) = p["error"].as_str() {
        s.push_str(&format!(" error: {e}"));
    }
    s
}

fn print_pipeline(p: &serde_json::Value) {
    if p["deleted"] == true {
        println!("deleted {}", p["id"].as_str().unwrap_or("?"));
        return;
    }
    println!("{}", line(p));
    for n in p["nodes"].as_array().into_iter().flatten() {
        let plugin = n["plugin"].as_str().map(|s| format!(" {s}")).unwrap_or_default();
        let dead = n["dead_letters"].as_u64().filter(|&d| d > 0).map(|d| format!(" dead letters {d}")).unwrap_or_default();
        println!(
            "  {}{plugin} x{}: in {} out {}{dead}",
            n["name"].as_str().unwrap_or("?"),
            n["parallelism"],
            n["records_in"],
            n["records_out"]
        );
    }
    if let Some(c) = p["checkpoints"].as_object() {
        println!("  checkpoints: {} completed, {} failed, last {}", c["completed"], c["failed"], c["last"]["epoch"]);
    }
    if let Some(r) = p["retry"].as_object() {
        println!("  retry: attempt {} failed, the next in {} s", r["attempt"], r["backoff_s"]);
    }
    if let Some(s) = p["savepoint"].as_str() {
        println!("  savepoint: {s}");
    }
    if let Some(s) = p["swap"].as_object() {
        let reason = s.get("reason").and_then(|r| r.as_str()).map(|r| format!(": {r}")).unwrap_or_default();
        println!(
            "  swap of '{}' {} -> {}: {}{reason}",
            s["operator"].as_str().unwrap_or("?"),
            s["from"].as_str().unwrap_or("?"),
            s["to"].as_str().unwrap_or("?"),
            s["status"].as_str().unwrap_or("?")
        );
    }
}

pub fn swap(args: SwapArgs) -> anyhow::Result<()> {
    let http = http()?;
    let c = &args.client;
    let mut body = serde_json::json!({ "plugin": args.plugin });
    if let Some(p) = &args.probation {
        body["probation"] = p.clone().into();
    }
    let url = c.url(&format!("/api/v1/pipelines/{}/operators/{}/swap", args.pipeline, args.operator));
    let answer = c.send(http.post(url).header("content-type", "application/json").body(body.to_string()))?;
    if c.json() {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        print_pipeline(&answer);
    }
    Ok(())
}
