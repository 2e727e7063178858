//! The DataFusion glue: one place that builds the session (stores, memory, threads, options) and runs statements.

use crate::error::{data_error, naming_files};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::TryStreamExt;
use std::collections::VecDeque;
use std::sync::Arc;

use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::listing::{ListingTable, ListingTableConfig, ListingTableConfigExt, ListingTableUrl};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::datasource::listing::ListingOptions;
use datafusion::logical_expr::{LogicalPlan, Statement as PlanStatement};
use datafusion::sql::parser::{CopyToSource, DFParser, Statement};
use datafusion::sql::sqlparser::ast::{
    Expr, ObjectName, ObjectNamePart, Query as SqlQuery, SetExpr, Visit, Visitor, visit_relations_mut,
};
use std::ops::ControlFlow;

use starflow_udfs::locate::Context;
use starflow_udfs::{Device, ModelRegistry, StarflowConfig};

use crate::error::CliError;
use crate::executor::CpuExecutor;
use crate::object_stores::{StoreOptions, StoreRegistry, literal_location};
use crate::output::copy::StagedCopy;

/// Rows per batch unless told otherwise. Smaller than DataFusion's 8192: a StarFlow row costs ~10 ms of CPU, and
/// batches are the unit of parallelism (a 6,600-star file in 8192-row batches would run on one thread).
pub const DEFAULT_BATCH_SIZE: usize = 1024;
/// The most rows per batch (`--batch-size`, `datafusion.execution.batch_size`): operators size buffers by it, and
/// 2^32 aborted the process on an allocation.
pub const MAX_BATCH_SIZE: usize = 65_536;
/// The most query threads and partitions (`--threads`, `datafusion.execution.target_partitions`); 20,000 threads
/// aborted the process.
pub const MAX_THREADS: usize = 256;

/// DataFusion settings that size buffers, channels, tasks or thread pools, and their largest values: beyond them a
/// query aborted on an allocation, or panicked (a channel of 2^62 permits). `SET` beyond one is an invalid setting.
const SETTING_BOUNDS: [(&str, usize); 9] = [
    ("datafusion.execution.batch_size", MAX_BATCH_SIZE),
    ("datafusion.execution.target_partitions", MAX_THREADS),
    ("datafusion.execution.planning_concurrency", MAX_THREADS),
    ("datafusion.execution.meta_fetch_concurrency", MAX_THREADS),
    ("datafusion.execution.minimum_parallel_output_files", MAX_THREADS),
    ("datafusion.execution.parquet.maximum_parallel_row_group_writers", MAX_THREADS),
    ("datafusion.execution.max_buffered_batches_per_output_file", 1024),
    ("datafusion.execution.parquet.maximum_buffered_record_batches_per_stream", 1024),
    ("datafusion.execution.hash_join_buffering_capacity", 1024),
];

/// How deeply a statement's expressions may nest (a chain of `+`, `OR` or `::` operators nests one level per
/// operator), how many set operations (`UNION`, ...) a query may chain, and how many tables one `SELECT` may join:
/// DataFusion walks and clones these trees recursively, and a few thousand levels overflowed the stack (an abort);
/// planning time grows with the square of the depth long before.
pub const MAX_EXPRESSION_DEPTH: usize = 1000;

#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Threads that run queries (and partitions per scan), and threads that evaluate flows.
    pub threads: usize,
    /// Memory the query operators may hold; sorts and joins spill to disk beyond it.
    pub memory_limit: Option<usize>,
    /// Rows per record batch.
    pub batch_size: Option<usize>,
    pub stores: StoreOptions,
    /// Where models are loaded from (`None`: `STARFLOW_MODELS`, else the places of `starflow_udfs::locate`).
    pub models_dir: Option<std::path::PathBuf>,
    pub device: Device,
    /// Print which model runs on which device when it is first used.
    pub announce_models: bool,
    /// Run queries on this Ballista cluster (`df://HOST:PORT`, the scheduler): planned here, executed there.
    pub cluster: Option<String>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            memory_limit: None,
            batch_size: None,
            stores: StoreOptions::default(),
            models_dir: None,
            device: Device::Cpu,
            announce_models: false,
            cluster: None,
        }
    }
}

/// A running query: its physical plan (for progress) and its result stream.
pub struct Query {
    pub plan: Arc<dyn ExecutionPlan>,
    pub stream: SendableRecordBatchStream,
    /// A `COPY`'s files, written into a staging area: [`StagedCopy::settle`] them once the stream is consumed.
    pub copy: Option<StagedCopy>,
}

pub struct Engine {
    ctx: SessionContext,
    cpu: CpuExecutor,
    models: Arc<ModelRegistry>,
    stores: Arc<StoreRegistry>,
    /// Statements run on a cluster.
    cluster: bool,
}

impl Engine {
    /// Must be called inside the tokio runtime that is to carry network IO.
    pub fn new(options: &EngineOptions) -> Result<Self> {
        let stores = Arc::new(StoreRegistry::new(options.stores.clone(), tokio::runtime::Handle::current()));
        let config = session_config(options, starflow_udfs::configure(SessionConfig::new()));
        let mut state = session_state(config, runtime_env(options, &stores)?)?;
        let models = Arc::new(load_models(options)?);
        if let Some(url) = &options.cluster {
            state = cluster_state(state, url, &models)?;
        }
        // After the cluster's state: Ballista's replaces the scalar functions with its own list.
        let ctx = SessionContext::new_with_state(state).enable_url_table();
        starflow_udfs::register(&ctx, &models);
        Ok(Self { ctx, cpu: CpuExecutor::new(options.threads)?, models, stores, cluster: options.cluster.is_some() })
    }

    pub fn models(&self) -> &Arc<ModelRegistry> {
        &self.models
    }

    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Split SQL text into statements (syntax errors are reported here, with their position).
    pub fn parse(&self, sql: &str) -> Result<VecDeque<Statement>> {
        let statements = DFParser::parse_sql(sql)?;
        if statements.iter().any(too_deep) {
            // Dropping a tree that deep would recurse as deep: the memory is left to the process.
            std::mem::forget(statements);
            return Err(DataFusionError::Plan(format!(
                "a statement nested more than {MAX_EXPRESSION_DEPTH} levels deep (a chain of that many operators, \
                 UNIONs or joined tables): split it, or use IN (...) for long lists"
            )));
        }
        Ok(statements)
    }

    /// Plan and start one statement. DDL and `SET` take effect here and return `None`; statements with result columns
    /// return the running query, executing on the CPU runtime.
    pub async fn execute(&self, mut statement: Statement) -> Result<Option<Query>> {
        self.prepare_locations(&mut statement)?;
        let state = self.ctx.state();
        let plan = match state.statement_to_plan(statement).await {
            Ok(plan) => plan,
            Err(e) => return Err(self.explain_missing_location(e).await),
        };
        if let LogicalPlan::Statement(PlanStatement::SetVariable(set)) = &plan {
            return self.set(set.variable.clone(), set.value.clone(), plan).await.map(|()| None);
        }
        let (plan, copy) = crate::output::copy::stage(plan, &self.ctx.runtime_env()).map_err(external)?;
        let df = self.ctx.execute_logical_plan(plan).await?;
        if df.schema().fields().is_empty() {
            return Ok(None);
        }
        let task = Arc::new(df.task_ctx());
        let plan = df.create_physical_plan().await?;
        let files = files_read(&plan);
        let stream = self.cpu.execute(Arc::clone(&plan), task);
        let stream = Box::pin(RecordBatchStreamAdapter::new(stream.schema(), stream.map_err(move |e| naming_files(e, &files))));
        Ok(Some(Query { plan, stream, copy }))
    }

    /// Run set-up statements (`SET`, `CREATE VIEW`, ...) one after another; rows a statement returns are not read.
    pub async fn run_setup(&self, sql: &str) -> Result<()> {
        for statement in self.parse(sql)? {
            self.execute(statement).await?;
        }
        Ok(())
    }

    /// Register a table over `location` (a file, directory or glob), read as `format`.
    pub async fn register_listing_table(&self, name: &str, location: &str, options: ListingOptions) -> Result<()> {
        self.stores.note_location(location)?;
        self.ctx.register_listing_table(name, literal_location(location), options, None, None).await
    }

    /// Whether statements run on a cluster (`--cluster`).
    pub fn on_cluster(&self) -> bool {
        self.cluster
    }

    /// The files of the listing table `name`, in path order, as locations [`Self::register_listing_table`] takes.
    pub async fn table_files(&self, name: &str) -> Result<Vec<String>> {
        let provider = self.ctx.table_provider(name).await?;
        let Some(table) = provider.downcast_ref::<ListingTable>() else {
            return Err(DataFusionError::Internal(format!("'{name}' is not a table of files")));
        };
        let state = self.ctx.state();
        let mut files = Vec::new();
        for path in table.table_paths() {
            let store = state.runtime_env().object_store(path)?;
            let listing = path.list_all_files(&state, store.as_ref(), &table.options().file_extension).await?;
            let root = path.object_store();
            let root = root.as_str();
            let keys: Vec<_> = listing.map_ok(|meta| meta.location.to_string()).try_collect().await?;
            files.extend(keys.into_iter().map(|key| if root == "file:///" { format!("/{key}") } else { format!("{root}{key}") }));
        }
        files.sort();
        files.dedup();
        Ok(files)
    }

    /// A `SET`: an unreadable value, or a `starflow.*` value no model can run with, is an invalid setting (and the
    /// previous value stays).
    async fn set(&self, variable: String, value: String, plan: LogicalPlan) -> Result<()> {
        let bound = SETTING_BOUNDS.iter().find(|(name, _)| variable.eq_ignore_ascii_case(name));
        if let (Some((_, max)), Ok(number)) = (bound, value.trim().parse::<u128>()) {
            if number > *max as u128 {
                return Err(DataFusionError::Configuration(format!("{variable} = {value}: at most {max}")));
            }
        }
        let settings = || self.ctx.state().config_options().extensions.get::<StarflowConfig>().cloned().unwrap_or_default();
        let before = settings();
        self.ctx.execute_logical_plan(plan).await.map_err(|e| {
            let cause = match e.find_root() {
                DataFusionError::Configuration(m) => m.clone(),
                DataFusionError::External(parse) => format!("not a valid value ({parse})"),
                root => root.strip_backtrace(),
            };
            DataFusionError::Configuration(format!("{variable} = {value}: {cause}"))
        })?;
        let after = settings();
        if let Some(Err(e)) = self.models.models().map(|m| after.options_for(m)).find(Result::is_err) {
            self.ctx.state_ref().write().config_mut().options_mut().extensions.insert(before);
            return Err(DataFusionError::Configuration(e));
        }
        Ok(())
    }

    /// Object-store URLs in `statement` (tables named by URL, external table locations) get their keys taken
    /// literally ([`literal_location`]); presigned http(s) URLs are noted with their stores.
    fn prepare_locations(&self, statement: &mut Statement) -> Result<()> {
        let mut failure = None;
        let mut prepare = |location: &mut String| {
            if let Err(e) = self.stores.note_location(location) {
                failure.get_or_insert(e);
            }
            *location = literal_location(location);
        };
        for_each_location(statement, &mut prepare);
        failure.map_or(Ok(()), Err)
    }
}

/// The files `plan` scans, as the user would name them (a local path, or the store's URL and the key).
fn files_read(plan: &Arc<dyn ExecutionPlan>) -> Vec<String> {
    let mut files = std::collections::BTreeSet::new();
    let _ = plan.apply(|node| {
        let scan = node.downcast_ref::<DataSourceExec>().and_then(|s| s.data_source().downcast_ref::<FileScanConfig>());
        if let Some(scan) = scan {
            let store = scan.object_store_url.as_str().trim_end_matches('/');
            let store = if store == "file:" { "" } else { store };
            files.extend(scan.file_groups.iter().flat_map(|g| g.files()).map(|f| format!("{store}/{}", f.object_meta.location)));
        }
        Ok(TreeNodeRecursion::Continue)
    });
    files.into_iter().collect()
}

/// Whether an expression of `statement` nests deeper than [`MAX_EXPRESSION_DEPTH`], or a query chains more set
/// operations. The walk stops there, so its own recursion stays that shallow; a query's chain is measured before the
/// walk descends into it.
fn too_deep(statement: &Statement) -> bool {
    struct Depth(usize);
    impl Visitor for Depth {
        type Break = ();
        fn pre_visit_query(&mut self, query: &SqlQuery) -> ControlFlow<()> {
            let mut stack = vec![(query.body.as_ref(), 1)];
            while let Some((body, depth)) = stack.pop() {
                if depth > MAX_EXPRESSION_DEPTH {
                    return ControlFlow::Break(());
                }
                match body {
                    SetExpr::SetOperation { left, right, .. } => {
                        stack.extend([(left.as_ref(), depth + 1), (right.as_ref(), depth + 1)]);
                    }
                    SetExpr::Select(select) if depth + select.from.iter().map(|t| t.joins.len() + 1).sum::<usize>() > MAX_EXPRESSION_DEPTH => {
                        return ControlFlow::Break(());
                    }
                    _ => {}
                }
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, _: &Expr) -> ControlFlow<()> {
            self.0 += 1;
            if self.0 > MAX_EXPRESSION_DEPTH { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
        }
        fn post_visit_expr(&mut self, _: &Expr) -> ControlFlow<()> {
            self.0 -= 1;
            ControlFlow::Continue(())
        }
    }
    let mut depth = Depth(0);
    match statement {
        Statement::Statement(inner) => inner.visit(&mut depth).is_break(),
        Statement::CopyTo(copy) => match &copy.source {
            CopyToSource::Query(query) => query.visit(&mut depth).is_break(),
            CopyToSource::Relation(_) => false,
        },
        Statement::Explain(explain) => too_deep(&explain.statement),
        Statement::CreateExternalTable(_) | Statement::Reset(_) => false,
    }
}

fn external(e: CliError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// Call `f` on every location a statement reads: a table named by a single (quoted) name, an external table's paths.
fn for_each_location(statement: &mut Statement, f: &mut impl FnMut(&mut String)) {
    let mut relation = |name: &mut ObjectName| {
        if let [ObjectNamePart::Identifier(ident)] = name.0.as_mut_slice() {
            f(&mut ident.value);
        }
        ControlFlow::<()>::Continue(())
    };
    match statement {
        Statement::Statement(inner) => drop(visit_relations_mut(inner.as_mut(), &mut relation)),
        Statement::CopyTo(copy) => match &mut copy.source {
            CopyToSource::Relation(name) => drop(relation(name)),
            CopyToSource::Query(query) => drop(visit_relations_mut(query.as_mut(), &mut relation)),
        },
        Statement::CreateExternalTable(table) => table.locations.iter_mut().for_each(|l| f(l)),
        Statement::Explain(explain) => for_each_location(&mut explain.statement, f),
        Statement::Reset(_) => {}
    }
}

impl Engine {
    /// DataFusion reports any failure to open a URL table (`FROM 's3://...'`) as an unknown table, hiding the cause
    /// (missing object, access denied, no credentials, unreachable endpoint). Open it again to surface that cause.
    async fn explain_missing_location(&self, error: DataFusionError) -> DataFusionError {
        let DataFusionError::Plan(message) = error.find_root() else { return error };
        let Some(location) = crate::error::missing_location(message) else { return error };
        let Ok(url) = ListingTableUrl::parse(&location) else { return error };
        match ListingTableConfig::new(url).infer_options(&self.ctx.state()).await {
            // "No files for table" is an internal error there; the original "not found" says it better.
            Err(cause) if !matches!(cause.find_root(), DataFusionError::Internal(_)) => {
                cause.context(format!("cannot read '{}'", crate::object_stores::typed_location(&location)))
            }
            _ => error,
        }
    }
}

/// The settings of a starflow session on top of `base` (the StarFlow options; Ballista's too on a cluster): partitions,
/// batch size, information schema, the sort reservation that fits a memory limit.
pub fn session_config(options: &EngineOptions, base: SessionConfig) -> SessionConfig {
    let mut config = base
        .with_target_partitions(options.threads.max(1))
        .with_information_schema(true)
        .with_batch_size(options.batch_size.unwrap_or(DEFAULT_BATCH_SIZE));
    if let Some(limit) = options.memory_limit {
        // Spilling operators share the pool fairly; each sort keeps a merge reservation that must fit beside the
        // others (DataFusion's 10 MB default per partition would exhaust a small limit before anything spills).
        let per_sort = (limit / (4 * options.threads.max(1))).min(10 << 20);
        config.options_mut().execution.sort_spill_reservation_bytes = per_sort;
    }
    config
}

/// The runtime of a starflow session: its object stores (`stores`) and memory limit.
pub fn runtime_env(options: &EngineOptions, stores: &Arc<StoreRegistry>) -> Result<Arc<RuntimeEnv>> {
    let mut runtime = RuntimeEnvBuilder::new().with_object_store_registry(Arc::clone(stores) as _);
    if let Some(limit) = options.memory_limit {
        runtime = runtime.with_memory_pool(Arc::new(FairSpillPool::new(limit)));
    }
    runtime.build_arc()
}

/// A starflow session state without the StarFlow functions: DataFusion's defaults, the physical rules of
/// `plan_rules`, the FITS format and the checked formats. The same for the command line, the cluster's scheduler and
/// its executors.
pub fn session_state(config: SessionConfig, runtime: Arc<RuntimeEnv>) -> Result<SessionState> {
    let mut state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features()
        .with_physical_optimizer_rules(crate::plan_rules::physical_rules())
        .build();
    starflow_fits::register(&mut state)?;
    // After the FITS formats: formats.rs wraps them with the Parquet and CSV ones (the same checks of every file).
    crate::formats::register(&mut state)?;
    Ok(state)
}

#[cfg(feature = "cluster")]
fn cluster_state(state: SessionState, url: &str, models: &ModelRegistry) -> Result<SessionState> {
    crate::cluster::client_state(state, url, models)
}

#[cfg(not(feature = "cluster"))]
fn cluster_state(_: SessionState, _: &str, _: &ModelRegistry) -> Result<SessionState> {
    Err(DataFusionError::Configuration("this starflow was built without the `cluster` feature".into()))
}

/// The models of `--models`/`STARFLOW_MODELS` must load; the installed ones may be absent (plain SQL still works,
/// and the StarFlow functions then say which model is missing). Every model is opened and probed on the device now
/// (`ModelRegistry::load`): a broken model or a CUDA request that cannot be honoured stops the engine before any data
/// is read.
pub fn load_models(options: &EngineOptions) -> Result<ModelRegistry> {
    let Some(found) = Context::of_process().models_dir(options.models_dir.as_deref()) else {
        return Ok(ModelRegistry::default().with_threads(options.threads));
    };
    let dir = &found.path;
    let registry = ModelRegistry::load(dir, options.device).map_err(|e| {
        match starflow_udfs::onnx::check_device(options.device) {
            // The machine's problem (ONNX Runtime missing, the device unusable) rather than the files': exit 1, not 4.
            Err(machine) => DataFusionError::Execution(format!("{machine} (needed for the models in {})", dir.display())),
            Ok(()) => data_error(e),
        }
    })?;
    Ok(registry.found_by(found.rule).announcing(options.announce_models).with_threads(options.threads))
}
