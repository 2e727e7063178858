//! The DataFusion glue: one place that builds the session (stores, memory, threads, options) and runs statements.

use crate::error::data_error;
use std::collections::VecDeque;
use std::sync::Arc;

use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::listing::{ListingTableConfig, ListingTableConfigExt, ListingTableUrl};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::{DFParser, Statement};

use starflow_udfs::locate::Context;
use starflow_udfs::{Device, ModelRegistry};

use crate::executor::CpuExecutor;
use crate::object_stores::{StoreOptions, StoreRegistry};

/// Rows per batch unless told otherwise. Smaller than DataFusion's 8192: a StarFlow row costs ~10 ms of CPU, and
/// batches are the unit of parallelism (a 6,600-star file in 8192-row batches would run on one thread).
pub const DEFAULT_BATCH_SIZE: usize = 1024;

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
        }
    }
}

/// A running query: its physical plan (for progress) and its result stream.
pub struct Query {
    pub plan: Arc<dyn ExecutionPlan>,
    pub stream: SendableRecordBatchStream,
}

pub struct Engine {
    ctx: SessionContext,
    cpu: CpuExecutor,
    models: Arc<ModelRegistry>,
}

impl Engine {
    /// Must be called inside the tokio runtime that is to carry network IO.
    pub fn new(options: &EngineOptions) -> Result<Self> {
        let config = SessionConfig::new().with_target_partitions(options.threads.max(1)).with_information_schema(true);
        let mut config = starflow_udfs::configure(config);
        config = config.with_batch_size(options.batch_size.unwrap_or(DEFAULT_BATCH_SIZE));
        let registry = StoreRegistry::new(options.stores.clone(), tokio::runtime::Handle::current());
        let mut runtime = RuntimeEnvBuilder::new().with_object_store_registry(Arc::new(registry));
        if let Some(limit) = options.memory_limit {
            // Spilling operators share the pool fairly; each sort keeps a merge reservation that must fit beside the
            // others (DataFusion's 10 MB default per partition would exhaust a small limit before anything spills).
            runtime = runtime.with_memory_pool(Arc::new(FairSpillPool::new(limit)));
            let per_sort = (limit / (4 * options.threads.max(1))).min(10 << 20);
            config.options_mut().execution.sort_spill_reservation_bytes = per_sort;
        }
        let mut state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime.build_arc()?)
            .with_default_features()
            .with_physical_optimizer_rules(crate::plan_rules::physical_rules())
            .build();
        starflow_fits::register(&mut state)?;
        let ctx = SessionContext::new_with_state(state).enable_url_table();
        let models = Arc::new(load_models(options)?);
        starflow_udfs::register(&ctx, &models);
        Ok(Self { ctx, cpu: CpuExecutor::new(options.threads)?, models })
    }

    pub fn models(&self) -> &Arc<ModelRegistry> {
        &self.models
    }

    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Split SQL text into statements (syntax errors are reported here, with their position).
    pub fn parse(&self, sql: &str) -> Result<VecDeque<Statement>> {
        DFParser::parse_sql(sql)
    }

    /// Plan and start one statement. DDL and `SET` take effect here and return `None`; statements with result columns
    /// return the running query, executing on the CPU runtime.
    pub async fn execute(&self, statement: Statement) -> Result<Option<Query>> {
        let state = self.ctx.state();
        let plan = match state.statement_to_plan(statement).await {
            Ok(plan) => plan,
            Err(e) => return Err(self.explain_missing_location(e).await),
        };
        let df = self.ctx.execute_logical_plan(plan).await?;
        if df.schema().fields().is_empty() {
            return Ok(None);
        }
        let task = Arc::new(df.task_ctx());
        let plan = df.create_physical_plan().await?;
        let stream = self.cpu.execute(Arc::clone(&plan), task);
        Ok(Some(Query { plan, stream }))
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
                cause.context(format!("cannot read '{location}'"))
            }
            _ => error,
        }
    }
}

/// The models of `--models`/`STARFLOW_MODELS` must load; the installed ones may be absent (plain SQL still works,
/// and the StarFlow functions then say which model is missing). Every model is opened and probed on the device now
/// (`ModelRegistry::load`): a broken model or a CUDA request that cannot be honoured stops the engine before any data
/// is read.
fn load_models(options: &EngineOptions) -> Result<ModelRegistry> {
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
