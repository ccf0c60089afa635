//! What DataFusion's SQL planner asks of a script: its tables (from CREATE
//! TABLE) and views (from CREATE VIEW, as the plans they stand for), the
//! built-in scalar and aggregate functions, and the window table functions'
//! relation planner. Names of tables and functions are matched without regard
//! to case; column names are as written (case-sensitive, as in Flink).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow_schema::{DataType, SchemaRef};
use datafusion_common::config::ConfigOptions;
use datafusion_common::{plan_err, Result, TableReference};
use datafusion_expr::planner::{ContextProvider, RelationPlanner};
use datafusion_expr::{AggregateUDF, HigherOrderUDF, LogicalPlan, ScalarUDF, TableSource, WindowUDF};

use crate::ddl::TableDef;
use crate::error::Pos;

/// A table or view as the planner sees it.
#[derive(Debug)]
pub struct Source {
    pub schema: SchemaRef,
    /// A view's plan (the planner inlines it, `plan.rs`).
    pub view: Option<LogicalPlan>,
    /// A table's definition.
    pub table: Option<Arc<TableDef>>,
}

impl TableSource for Source {

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn get_logical_plan(&'_ self) -> Option<Cow<'_, LogicalPlan>> {
        self.view.as_ref().map(Cow::Borrowed)
    }
}

/// The tables, views and functions of a script, as far as it has got.
#[derive(Debug)]
pub struct Catalog {
    pub tables: BTreeMap<String, Arc<TableDef>>,
    pub views: BTreeMap<String, (LogicalPlan, Pos)>,
    scalars: HashMap<String, Arc<ScalarUDF>>,
    aggregates: HashMap<String, Arc<AggregateUDF>>,
    /// Window functions (`ROW_NUMBER() OVER (...)`): planned, then refused
    /// unless they rank rows for a Top-N.
    windows: HashMap<String, Arc<WindowUDF>>,
    options: ConfigOptions,
    planners: Vec<Arc<dyn RelationPlanner>>,
}

impl Default for Catalog {
    fn default() -> Self {
        Self::new()
    }
}

impl Catalog {
    pub fn new() -> Self {
        let scalars = datafusion_functions::all_default_functions().into_iter().flat_map(|f| {
            let names: Vec<String> = std::iter::once(f.name().to_string()).chain(f.aliases().iter().cloned()).collect();
            names.into_iter().map(move |n| (n.to_ascii_lowercase(), f.clone()))
        });
        let aggregates = datafusion_functions_aggregate::all_default_aggregate_functions().into_iter().flat_map(|f| {
            let names: Vec<String> = std::iter::once(f.name().to_string()).chain(f.aliases().iter().cloned()).collect();
            names.into_iter().map(move |n| (n.to_ascii_lowercase(), f.clone()))
        });
        let windows = datafusion_functions_window::all_default_window_functions().into_iter().flat_map(|f| {
            let names: Vec<String> = std::iter::once(f.name().to_string()).chain(f.aliases().iter().cloned()).collect();
            names.into_iter().map(move |n| (n.to_ascii_lowercase(), f.clone()))
        });
        Catalog {
            tables: BTreeMap::new(),
            views: BTreeMap::new(),
            scalars: scalars.collect(),
            aggregates: aggregates.collect(),
            windows: windows.collect(),
            options: ConfigOptions::default(),
            planners: vec![Arc::new(crate::tvf::WindowTvfPlanner)],
        }
    }

    /// Make `f` callable by its name (a user-defined function).
    pub fn add_function(&mut self, f: Arc<ScalarUDF>) {
        self.scalars.insert(f.name().to_ascii_lowercase(), f);
    }

    /// Whether a scalar function (built in or defined) has this name.
    pub fn has_function(&self, name: &str) -> bool {
        self.scalars.contains_key(&name.to_ascii_lowercase())
    }

    /// Whether a table or view has this name.
    pub fn has(&self, name: &str) -> bool {
        let n = name.to_ascii_lowercase();
        self.tables.contains_key(&n) || self.views.contains_key(&n)
    }

    pub fn table(&self, name: &str) -> Option<&Arc<TableDef>> {
        self.tables.get(&name.to_ascii_lowercase())
    }

    fn names(&self) -> String {
        let all: Vec<&str> = self.tables.values().map(|t| t.name.as_str()).chain(self.views.keys().map(String::as_str)).collect();
        if all.is_empty() { "none".into() } else { all.join(", ") }
    }
}

impl ContextProvider for Catalog {
    fn get_table_source(&self, name: TableReference) -> Result<Arc<dyn TableSource>> {
        let n = name.table().to_ascii_lowercase();
        if let Some(t) = self.tables.get(&n) {
            return Ok(Arc::new(Source { schema: t.schema.clone(), view: None, table: Some(t.clone()) }));
        }
        if let Some((plan, _)) = self.views.get(&n) {
            let schema: SchemaRef = Arc::new(plan.schema().as_arrow().clone());
            return Ok(Arc::new(Source { schema, view: Some(plan.clone()), table: None }));
        }
        plan_err!("table '{name}' is not defined (tables and views: {}); define it with CREATE TABLE first", self.names())
    }

    fn get_function_meta(&self, name: &str) -> Option<Arc<ScalarUDF>> {
        self.scalars.get(&name.to_ascii_lowercase()).cloned()
    }

    fn get_higher_order_meta(&self, _name: &str) -> Option<Arc<HigherOrderUDF>> {
        None
    }

    fn get_aggregate_meta(&self, name: &str) -> Option<Arc<AggregateUDF>> {
        self.aggregates.get(&name.to_ascii_lowercase()).cloned()
    }

    fn get_window_meta(&self, name: &str) -> Option<Arc<WindowUDF>> {
        self.windows.get(&name.to_ascii_lowercase()).cloned()
    }

    fn get_variable_type(&self, _variable_names: &[String]) -> Option<DataType> {
        None
    }

    fn options(&self) -> &ConfigOptions {
        &self.options
    }

    fn udf_names(&self) -> Vec<String> {
        self.scalars.keys().cloned().collect()
    }

    fn higher_order_function_names(&self) -> Vec<String> {
        Vec::new()
    }

    fn udaf_names(&self) -> Vec<String> {
        self.aggregates.keys().cloned().collect()
    }

    fn udwf_names(&self) -> Vec<String> {
        self.windows.keys().cloned().collect()
    }

    fn get_relation_planners(&self) -> &[Arc<dyn RelationPlanner>] {
        &self.planners
    }
}
