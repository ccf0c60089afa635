//! `weir`: run stream pipelines whose operators are WebAssembly components.

mod build;
mod functions;
mod iceberg;
mod new;
mod types;
mod pipeline;
mod run;
mod savepoint;
mod serve;
mod sql;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "weir", version, about = "Stream processing with operators as sandboxed WebAssembly components")]
struct Cli {
    /// Log filter (tracing syntax), e.g. `info` or `weir=debug`.
    #[arg(long, global = true, env = "WEIR_LOG", default_value = "info")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a pipeline in this process until its bounded sources are exhausted.
    Run(run::RunArgs),
    /// Run a SQL script (CREATE TABLE, CREATE VIEW, INSERT INTO ... SELECT)
    /// as a pipeline; --explain prints its dataflow instead.
    Sql(sql::SqlArgs),
    /// Check a pipeline spec and its plugins without running anything.
    Validate {
        /// The pipeline spec (YAML).
        spec: PathBuf,
        #[command(flatten)]
        cache: run::CacheArgs,
    },
    /// Take a named savepoint of a pipeline: of the running job (through its
    /// state directory), or else from its latest complete checkpoint.
    Savepoint(savepoint::SavepointArgs),
    /// Run a node: the REST API under /api/v1 (plugin registry), /metrics.
    Serve(serve::ServeArgs),
    /// Plugins in a node's registry.
    Plugin {
        #[command(subcommand)]
        command: serve::PluginCommand,
    },
    /// Pipelines on a node.
    Pipeline {
        #[command(subcommand)]
        command: pipeline::PipelineCommand,
    },
    /// Hot swap: replace an operator's plugin in a running pipeline, keeping its state.
    Swap(pipeline::SwapArgs),
    /// Build the plugin in DIR to a WebAssembly component.
    Build(build::BuildArgs),
    /// Create a new Rust plugin that builds as is.
    New(new::NewArgs),
    /// Iceberg tables written by sinks: orphan data files, snapshot expiry.
    Iceberg {
        #[command(subcommand)]
        command: iceberg::IcebergCommand,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|e| {
        eprintln!("warning: invalid log filter {:?} ({e}); using 'info'", cli.log);
        tracing_subscriber::EnvFilter::new("info")
    });
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // The log on stderr as --log says; and every plugin log line, whatever
    // --log says, kept by pipeline for a node's API and dashboard.
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::Layer as _;
    let plugin_lines = tracing_subscriber::filter::Targets::new().with_target("weir::plugin", tracing::Level::TRACE);
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_target(false).with_ansi(ansi).with_filter(filter))
        .with(weir_api::PluginLogLayer.with_filter(plugin_lines))
        .init();
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Sql(args) => sql::sql(args),
        Command::Validate { spec, cache } => run::validate(&spec, &cache),
        Command::Savepoint(args) => savepoint::savepoint(args),
        Command::Serve(args) => serve::serve(args),
        Command::Plugin { command } => serve::plugin(command),
        Command::Pipeline { command } => pipeline::pipeline(command),
        Command::Swap(args) => pipeline::swap(args),
        Command::Build(args) => build::build(args).map(|_| ()),
        Command::New(args) => new::new(args),
        Command::Iceberg { command } => iceberg::iceberg(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes, each cause once: errors that already quote their
/// cause in their message do not repeat it.
fn describe(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg.push_str(": ");
            msg.push_str(&c);
        }
    }
    msg
}
