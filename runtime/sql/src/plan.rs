//! A script to a job: its statements in order — `SET 'name' = 'value'`,
//! `CREATE TABLE`, `CREATE VIEW`, `INSERT INTO t SELECT ...` (several, sharing
//! the tables they read), `EXPLAIN INSERT ...` — each query planned by
//! DataFusion's SQL planner (views inlined, types coerced, a few rewrites of
//! its optimizer) and translated onto Weir nodes (`translate.rs`).

use std::sync::Arc;

use datafusion_common::tree_node::{Transformed, TreeNode};
use datafusion_common::{DataFusionError, ExprSchema, Result};
use datafusion_expr::planner::ContextProvider;
use datafusion_expr::{cast, col, Expr, LogicalPlan, LogicalPlanBuilder};
use datafusion_optimizer::{Analyzer, Optimizer, OptimizerContext, OptimizerRule};
use datafusion_sql::planner::{ParserOptions, SqlToRel};

use crate::catalog::{Catalog, Source};
use crate::error::sqlparser::ast::{CreateView, Expr as SqlExpr, Query, Set, Statement, TableObject, Value};
use crate::error::sqlparser::dialect::GenericDialect;
use crate::error::sqlparser::parser::{Parser, ParserError};
use crate::error::sqlparser::ast::Spanned;
use crate::error::{pos, Pos, SqlError};
use crate::job::Job;
use crate::script::FunctionDecl;
use crate::udf::{FunctionRef, FunctionSource, WasmUdf};
use crate::translate::Translator;

/// A DataFusion error's message, without its kind's prefix.
pub fn df_message(e: &DataFusionError) -> String {
    let s = e.to_string();
    for prefix in ["Error during planning: ", "Schema error: ", "SQL error: ", "This feature is not implemented: ", "Optimizer rule", "type_coercion\ncaused by\n"] {
        if let Some(rest) = s.strip_prefix(prefix) {
            return rest.trim().to_string();
        }
    }
    s
}

/// sqlparser's "... at Line: 3, Column: 5" as a place.
fn parse_error(file: &str, e: ParserError) -> SqlError {
    let s = e.to_string();
    let s = s.strip_prefix("sql parser error: ").unwrap_or(&s).to_string();
    if let Some(i) = s.rfind(" at Line: ") {
        let rest = &s[i + " at Line: ".len()..];
        let mut parts = rest.split(", Column: ");
        let line = parts.next().and_then(|l| l.trim().parse().ok());
        let column = parts.next().and_then(|c| c.trim().parse().ok());
        if let (Some(l), Some(c)) = (line, column) {
            return SqlError::at(file, (l, c), s[..i].to_string());
        }
    }
    SqlError::File { file: file.into(), message: s }
}

/// The planner's options: identifiers keep their case (as Flink's do).
fn options() -> ParserOptions {
    ParserOptions { enable_ident_normalization: false, collect_spans: true, ..ParserOptions::new() }
}

/// The optimizer rules a streaming plan goes through: expression
/// simplification, join equalities taken into the join's keys (and `FROM a,
/// b WHERE a.x = b.y` made a join), filters merged and pushed down, common subexpressions,
/// projections merged and pruned. (Rules that rewrite aggregations, such as
/// COUNT(DISTINCT) into two levels of GROUP BY, would change what the
/// translator sees and are left out.) Without `prune`, projections are
/// neither merged nor pruned: a temporal join's probe time column, which
/// only its `FOR SYSTEM_TIME AS OF` (taken out of the text) reads, stays.
fn optimizer(prune: bool) -> Optimizer {
    use datafusion_optimizer::{
        common_subexpr_eliminate::CommonSubexprEliminate, eliminate_cross_join::EliminateCrossJoin, eliminate_filter::EliminateFilter,
        extract_equijoin_predicate::ExtractEquijoinPredicate, optimize_projections::OptimizeProjections, push_down_filter::PushDownFilter,
        simplify_expressions::SimplifyExpressions,
    };
    let mut rules: Vec<Arc<dyn OptimizerRule + Send + Sync>> = vec![
        Arc::new(SimplifyExpressions::new()),
        Arc::new(ExtractEquijoinPredicate::new()),
        Arc::new(EliminateFilter::new()),
        Arc::new(EliminateCrossJoin::new()),
        Arc::new(PushDownFilter::new()),
        Arc::new(CommonSubexprEliminate::new()),
    ];
    if prune {
        rules.push(Arc::new(OptimizeProjections::new()));
    }
    Optimizer::with_rules(rules)
}

/// Replace each scan of a view by the view's plan.
fn inline_views(plan: LogicalPlan) -> Result<LogicalPlan> {
    plan.transform_up(|p| {
        let LogicalPlan::TableScan(s) = &p else { return Ok(Transformed::no(p)) };
        let Some(view) = s.source.downcast_ref::<Source>().and_then(|v| v.view.clone()) else { return Ok(Transformed::no(p)) };
        let b = LogicalPlanBuilder::from(view).alias(s.table_name.clone())?;
        let b = match &s.projection {
            Some(cols) => {
                let schema = b.schema().clone();
                b.project(cols.iter().map(|&i| Expr::Column(schema.columns()[i].clone())))?
            }
            None => b,
        };
        Ok(Transformed::yes(b.build()?))
    })
    .map(|t| t.data)
}

/// Plan a query: planned, views inlined, analysed (types coerced).
fn plan_query(catalog: &Catalog, query: Query) -> Result<LogicalPlan> {
    let planner = SqlToRel::new_with_options(catalog, options());
    let plan = planner.sql_statement_to_plan(Statement::Query(Box::new(query)))?;
    let plan = inline_views(plan)?;
    Analyzer::new().execute_and_check(plan, catalog.options(), |_, _| {})
}

fn optimize(plan: LogicalPlan, prune: bool) -> Result<LogicalPlan> {
    optimizer(prune).optimize(plan, &OptimizerContext::new(), |_, _| {})
}

fn setting_value(e: &SqlExpr) -> Option<String> {
    match e {
        SqlExpr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) | Value::Number(s, _) => Some(s.clone()),
            _ => None,
        },
        SqlExpr::Identifier(i) => Some(i.value.clone()),
        _ => None,
    }
}

/// Compile a script into a job. `file` names it in errors.
pub fn compile(text: &str, file: &str) -> Result<Job, SqlError> {
    compile_with(text, file, None)
}

/// Compile a script whose `CREATE FUNCTION`s load plugins from `functions`.
pub fn compile_with(text: &str, file: &str, functions: Option<&dyn FunctionSource>) -> Result<Job, SqlError> {
    let prepared = crate::script::prepare(text, file)?;
    let statements = Parser::new(&GenericDialect {})
        .try_with_sql(&prepared.text)
        .and_then(|mut p| p.parse_statements())
        .map_err(|e| parse_error(file, e))?;
    let mut catalog = Catalog::new();
    let mut job = Job::default();
    for decl in &prepared.functions {
        define_function(&mut catalog, file, decl, functions)?;
    }
    for st in statements {
        let explain = matches!(st, Statement::Explain { .. });
        let st = match st {
            Statement::Explain { statement, .. } => *statement,
            st => st,
        };
        let span = st.span();
        job.explain |= explain;
        statement(&mut catalog, &mut job, file, &text_of(text, &st), st, span, &prepared)?;
    }
    if job.sinks.is_empty() {
        return Err(SqlError::File { file: file.into(), message: "the script has no INSERT INTO ... SELECT: there is nothing to run".into() });
    }
    Ok(job)
}

/// `CREATE FUNCTION`: the plugin's declared function, callable by `name`.
fn define_function(catalog: &mut Catalog, file: &str, decl: &FunctionDecl, source: Option<&dyn FunctionSource>) -> Result<(), SqlError> {
    let err = |m: String| SqlError::at(file, decl.at, m);
    if catalog.has_function(&decl.name) {
        if decl.if_not_exists {
            return Ok(());
        }
        return Err(err(format!("CREATE FUNCTION {}: a function of that name exists already (a built-in one, or defined above)", decl.name)));
    }
    if !decl.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(err(format!("CREATE FUNCTION {}: a function's name is letters, digits and _", decl.name)));
    }
    let source = source.ok_or_else(|| err(format!("CREATE FUNCTION {}: this binary loads no function plugins", decl.name)))?;
    let (plugin, function) = match decl.reference.rsplit_once('#') {
        Some((p, f)) => (p, f.to_string()),
        None => (decl.reference.as_str(), decl.name.clone()),
    };
    let d = source.describe(plugin).map_err(|e| err(format!("CREATE FUNCTION {}: {e}", decl.name)))?;
    let Some(sig) = d.functions.iter().find(|s| s.name.eq_ignore_ascii_case(&function)) else {
        let names: Vec<&str> = d.functions.iter().map(|s| s.name.as_str()).collect();
        return Err(err(format!(
            "CREATE FUNCTION {}: plugin {} has no function {function} (it has: {}); name another with AS '{plugin}#function'",
            decl.name,
            d.plugin,
            if names.is_empty() { "none".to_string() } else { names.join(", ") }
        )));
    };
    let func = FunctionRef { name: decl.name.to_ascii_lowercase(), plugin: d.reference.clone(), function: sig.name.clone(), args: sig.args.clone(), returns: sig.returns.clone() };
    catalog.add_function(WasmUdf::udf(func, None));
    Ok(())
}

/// A statement's first line, for EXPLAIN.
fn text_of(text: &str, st: &Statement) -> String {
    let line = st.span().start.line as usize;
    let l = text.lines().nth(line.saturating_sub(1)).unwrap_or("").trim();
    let l: String = l.chars().take(100).collect();
    l
}

fn statement(
    catalog: &mut Catalog,
    job: &mut Job,
    file: &str,
    text: &str,
    st: Statement,
    span: crate::error::sqlparser::tokenizer::Span,
    prepared: &crate::script::Prepared,
) -> Result<(), SqlError> {
    let watermarks = &prepared.watermarks;
    // The STATE_TTL hints inside the statement.
    let inside = |p: Pos| (span.start.line, span.start.column) <= p && p <= (span.end.line, span.end.column);
    let hints: Vec<&crate::script::StateTtlHint> = prepared.hints.iter().filter(|h| inside(h.at)).collect();
    if let Some(a) = prepared.as_of.iter().find(|a| inside(a.at)).filter(|_| !matches!(st, Statement::Insert(_))) {
        return Err(SqlError::at(file, a.at, "FOR SYSTEM_TIME AS OF goes in the query of an INSERT INTO (views of temporal joins are not supported yet)"));
    }
    if let Some(h) = hints.first().filter(|_| !matches!(st, Statement::Insert(_))) {
        return Err(SqlError::at(file, h.at, "a STATE_TTL hint goes in the SELECT of an INSERT INTO (SELECT /*+ STATE_TTL('t' = '1 h') */ ...)"));
    }
    let at: Pos = pos(span);
    let df = |e: DataFusionError| SqlError::at(file, at, df_message(&e));
    match st {
        Statement::Set(Set::SingleAssignment { variable, values, .. }) => {
            let name = variable.to_string().trim_matches('"').to_ascii_lowercase();
            let value = values.first().and_then(setting_value).ok_or_else(|| SqlError::at(file, at, format!("SET '{name}': give the value as a string")))?;
            let s = &mut job.settings;
            match name.as_str() {
                "pipeline.name" | "name" => s.name = Some(value),
                "execution.checkpointing.interval" | "checkpoint.interval" => s.checkpoint_interval = Some(value),
                "state.backend" | "state.backend.type" => s.state_backend = Some(value),
                "state.dir" => s.state_dir = Some(value),
                "table.exec.state.ttl" | "state.ttl" => {
                    s.state_ttl_ms = Some(crate::script::duration_ms(&value).ok_or_else(|| {
                        SqlError::at(file, at, format!("SET '{name}' = '{value}': a duration such as '1 h', '30 min', '10 s' or '500 ms'"))
                    })?)
                }
                "parallelism.default" | "parallelism" => {
                    s.parallelism = Some(value.parse().ok().filter(|p| (1..=1024).contains(p)).ok_or_else(|| {
                        SqlError::at(file, at, format!("SET '{name}' = '{value}': a parallelism is a whole number from 1 to 1024"))
                    })?)
                }
                _ => {
                    return Err(SqlError::at(
                        file,
                        at,
                        format!("SET '{name}': not a setting (pipeline.name, checkpoint.interval, state.backend, state.dir, parallelism.default, table.exec.state.ttl)"),
                    ))
                }
            }
        }
        Statement::CreateTable(c) => {
            let t = crate::ddl::table(file, &c, span, watermarks)?;
            if catalog.has(&t.name) {
                return Err(SqlError::at(file, at, format!("table {} is already defined", t.name)));
            }
            catalog.tables.insert(t.name.to_ascii_lowercase(), Arc::new(t));
        }
        Statement::CreateView(CreateView { name, query, columns, .. }) => {
            let name = name.to_string();
            if catalog.has(&name) {
                return Err(SqlError::at(file, at, format!("a table or view {name} is already defined")));
            }
            if !columns.is_empty() {
                return Err(SqlError::at(file, at, format!("CREATE VIEW {name} (columns): name the columns in the query instead")));
            }
            let plan = plan_query(catalog, *query).map_err(df)?;
            catalog.views.insert(name.to_ascii_lowercase(), (plan, at));
        }
        Statement::Insert(ins) => {
            let TableObject::TableName(target) = &ins.table else {
                return Err(SqlError::at(file, at, "INSERT INTO takes a table name"));
            };
            let target = target.to_string();
            let t = catalog.table(&target).cloned().ok_or_else(|| {
                SqlError::at(file, at, format!("INSERT INTO {target}: no such table; define it with CREATE TABLE ... WITH ('connector' = ...)"))
            })?;
            if !ins.columns.is_empty() {
                return Err(SqlError::at(file, at, format!("INSERT INTO {target} (columns): list every column of the table in the SELECT instead")));
            }
            let Some(query) = ins.source else {
                return Err(SqlError::at(file, at, format!("INSERT INTO {target}: needs a SELECT")));
            };
            let plan = plan_query(catalog, *query).map_err(df)?;
            // The table's columns, by position, cast to its types.
            let fields = t.schema.fields();
            if plan.schema().fields().len() != fields.len() {
                return Err(SqlError::at(
                    file,
                    at,
                    format!("INSERT INTO {target}: the query gives {} columns, the table has {} ({})", plan.schema().fields().len(), fields.len(), t.schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")),
                ));
            }
            let mut exprs = Vec::with_capacity(fields.len());
            for (c, f) in plan.schema().columns().into_iter().zip(fields) {
                let from = plan.schema().field_from_column(&c).map_err(df)?.data_type().clone();
                if !arrow_cast::can_cast_types(&from, f.data_type()) {
                    return Err(SqlError::at(file, at, format!("INSERT INTO {target}: column {} is {from}, which cannot become {} ({})", f.name(), f.data_type(), c.name)));
                }
                exprs.push(cast(col(c), f.data_type().clone()).alias(f.name()));
            }
            let plan = LogicalPlanBuilder::from(plan).project(exprs).and_then(|b| b.build()).map_err(df)?;
            let plan = optimize(plan, !prepared.as_of.iter().any(|a| inside(a.at))).map_err(df)?;
            let stmt = job.statements.len();
            let ttl_hints = hints.iter().flat_map(|h| h.ttl_ms.iter().map(|(n, ms)| (n.clone(), (*ms, false)))).collect();
            let as_of = prepared.as_of.iter().filter(|a| inside(a.at)).map(|a| (a.clone(), false)).collect();
            let mut tr = Translator { job, file, at, stmt, ranked: None, ttl_hints, as_of };
            let stream = tr.go(&plan)?;
            if let Some((a, _)) = tr.as_of.iter().find(|(_, used)| !used) {
                return Err(SqlError::at(file, a.at, format!("FOR SYSTEM_TIME AS OF: {} is not the right side of a JOIN here (a temporal join: FROM probe JOIN versioned FOR SYSTEM_TIME AS OF probe.t ON ...)", a.table)));
            }
            let unused: Vec<&str> = tr.ttl_hints.iter().filter(|(_, (_, used))| !used).map(|(n, _)| n.as_str()).collect();
            if !unused.is_empty() {
                let at = hints.first().map_or(at, |h| h.at);
                return Err(SqlError::at(
                    file,
                    at,
                    format!("STATE_TTL names {}, which no join or GROUP BY of the statement reads (name a table or alias a join side or aggregation reads)", unused.join(", ")),
                ));
            }
            let sink = tr.insert(&t, stream, at)?;
            job.statements.push((text.to_string(), sink));
        }
        Statement::Query(_) => {
            return Err(SqlError::at(file, at, "a SELECT on its own has nowhere to go: write INSERT INTO table SELECT ..."));
        }
        other => {
            let name = other.to_string();
            let first: String = name.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
            return Err(SqlError::at(
                file,
                at,
                format!("{first} ... is not supported (SET, CREATE TABLE, CREATE VIEW, CREATE FUNCTION, INSERT INTO ... SELECT, EXPLAIN INSERT ...)"),
            ));
        }
    }
    Ok(())
}
