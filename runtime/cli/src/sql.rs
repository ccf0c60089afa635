//! `weir sql FILE.sql`: a SQL script compiled into a pipeline (weir-sql) and
//! run like `weir run` runs a spec; `--explain` prints its dataflow (each
//! operator with its state) and `--print-spec` the spec it compiles to,
//! without running it.

use std::path::PathBuf;

use anyhow::Context as _;

use crate::run::{plan, run_planned, RunOptions};

#[derive(clap::Args)]
pub struct SqlArgs {
    /// The SQL script.
    script: PathBuf,
    /// Print the job's dataflow, with each operator's state, and exit.
    #[arg(long, conflicts_with = "print_spec")]
    explain: bool,
    /// Print the pipeline spec the script compiles to (JSON), and exit.
    #[arg(long)]
    print_spec: bool,
    #[command(flatten)]
    opts: RunOptions,
}

pub fn sql(args: SqlArgs) -> anyhow::Result<()> {
    let file = args.script.display().to_string();
    let text = std::fs::read_to_string(&args.script).with_context(|| format!("cannot read {file}"))?;
    // CREATE FUNCTION's plugins: `.wasm` files, relative to the script.
    let loader = weir_wasm::PluginLoader::new(weir_wasm::LoaderConfig { cache_dir: crate::run::cache_dir(args.opts.cache()) })?;
    let base = std::path::absolute(&args.script)?.parent().map(|p| p.to_path_buf());
    let functions = crate::functions::WasmFunctions::new(std::sync::Arc::new(weir_wasm::PluginFiles::new(loader)), base);
    let job = weir_sql::compile_with(&text, &file, Some(&functions))?;
    let stem = args.script.file_stem().map_or("sql".into(), |s| s.to_string_lossy().into_owned());
    let spec = serde_json::to_string_pretty(&job.to_spec(&stem)).expect("a spec serialises");
    if args.print_spec {
        println!("{spec}");
        return Ok(());
    }
    let types = crate::types::registry();
    // The spec is checked as any spec is (the connectors' options, the
    // changelogs, paths); `${VAR}` in the script's strings is interpolated.
    let parsed = match weir_spec::parse(&spec, &format!("{file} (compiled)"), &|name| std::env::var(name).ok(), &types) {
        Ok(p) => p,
        // An error about a table's option is placed at the option.
        Err(e) => match job.place(&e.to_string()) {
            Some(((line, column), message)) if line > 0 => anyhow::bail!("{file}:{line}:{column}: {message}"),
            _ => return Err(e.into()),
        },
    };
    if args.explain || job.explain {
        print!("{}", job.explain());
        return Ok(());
    }
    let (spec, planned) = plan(parsed, &types, args.opts.cache())?;
    run_planned(spec, planned, &args.opts)
}

/// SQL jobs sent to `weir serve` (`Content-Type: application/sql`): compiled
/// here, checked by the node, errors placed in the script (`sql:LINE:COL`).
pub struct SqlJobs;

impl weir_api::SqlCompiler for SqlJobs {
    fn compile(
        &self,
        script: &str,
        plugins: std::sync::Arc<dyn weir_wasm::PluginSource>,
        check: &dyn Fn(&str) -> Result<(), String>,
    ) -> Result<String, weir_api::SqlCompileError> {
        let fail = |message: String| weir_api::SqlCompileError { message };
        // CREATE FUNCTION f AS 'name@version': a plugin of the node's registry.
        let functions = crate::functions::WasmFunctions::new(plugins, None);
        let job = weir_sql::compile_with(script, "sql", Some(&functions)).map_err(|e| fail(e.to_string()))?;
        if job.explain {
            return Err(fail("sql: EXPLAIN is for `weir sql --explain`; a node runs the job".into()));
        }
        if job.settings.name.is_none() {
            return Err(fail("sql: a SQL job sent to a node names itself (its id there): SET 'pipeline.name' = 'my-job';".into()));
        }
        let spec = serde_json::to_string_pretty(&job.to_spec("sql")).expect("a spec serialises");
        // The node's complaint is about the compiled spec's text ("spec:12: sources[0].path: ...").
        check(&spec).map_err(|e| match job.place(&e) {
            Some(((line, column), message)) if line > 0 => fail(format!("sql:{line}:{column}: {message}")),
            _ => fail(format!("the SQL job's spec: {e}")),
        })?;
        Ok(spec)
    }

    fn extend(&self, extensions: &mut weir_spec::Extensions, plugins: std::sync::Arc<dyn weir_wasm::PluginSource>) {
        extensions.insert(weir_sql::udf::Functions(std::sync::Arc::new(crate::functions::WasmFunctions::new(plugins, None))));
    }
}
