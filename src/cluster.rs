//! The cluster (cargo feature `cluster`, docs/DISTRIBUTED.md): the same SQL and the StarFlow catalogue on an Apache
//! DataFusion Ballista cluster. Three sides share one session recipe (`engine::session_state` plus the StarFlow
//! functions over the same models):
//!
//! - the client (`starflow --cluster df://HOST:PORT ...`) plans locally and sends the logical plan to the scheduler,
//!   with its settings, among them `starflow.model_sha256` (the bytes of every model it planned with);
//! - the scheduler (`starflow scheduler`) turns it into stages of tasks with a session built from the client's
//!   settings, knowing the StarFlow functions (their result types come from the models);
//! - each executor (`starflow executor`) runs tasks with the StarFlow functions of its own models, its object stores
//!   configured as the command line's, and refuses a task whose models differ from the client's.
//!
//! Ballista's `upgrade_for_ballista` replaces a session's scalar functions with its own list: the StarFlow functions
//! are registered after it (`Engine::new`), and tests check them on all three sides.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use ballista_core::extension::{SessionConfigExt, SessionStateExt};
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_core::{ConfigProducer, RuntimeProducer};
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::start_server;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::{SessionState, SessionStateBuilder};
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::prelude::{SessionConfig, SessionContext};
use starflow_udfs::{ModelRegistry, StarflowConfig};

use crate::engine::{EngineOptions, load_models, runtime_env, session_config, session_state};
use crate::error::{CliError, data_error};
use crate::object_stores::StoreRegistry;

/// Seconds between an executor's heartbeats, and after which the scheduler counts a silent executor as lost (and runs
/// its tasks elsewhere). Ballista's defaults (60 s, 180 s) would leave a killed executor's tasks waiting 3 minutes.
const HEARTBEAT_SECONDS: u64 = 5;
const EXECUTOR_TIMEOUT_SECONDS: u64 = 20;
const EXPIRE_CHECK_SECONDS: u64 = 5;

/// `df://HOST:PORT` (or `HOST:PORT`): the scheduler's host and port.
pub fn parse_address(url: &str) -> Result<(String, u16), String> {
    let rest = url.strip_prefix("df://").unwrap_or(url).trim_end_matches('/');
    let (host, port) = rest.rsplit_once(':').ok_or_else(|| format!("'{url}': expected df://HOST:PORT"))?;
    let port = port.parse::<u16>().map_err(|_| format!("'{url}': the port must be a number from 0 to 65535"))?;
    if host.is_empty() || host.contains(['/', '@', '?', '#']) {
        return Err(format!("'{url}': expected df://HOST:PORT"));
    }
    Ok((host.to_string(), port))
}

/// The client's session: `state` sending its plans to the scheduler at `url`, with the bytes of `models` in its
/// settings. The scheduler must answer now: otherwise a data error (exit 4) in one line.
pub fn client_state(state: SessionState, url: &str, models: &ModelRegistry) -> Result<SessionState> {
    let (host, port) = parse_address(url).map_err(DataFusionError::Configuration)?;
    if let Err(why) = connect(&host, port) {
        return Err(data_error(format!("cannot reach the cluster's scheduler at df://{host}:{port}: {why}")));
    }
    let mut state = state.upgrade_for_ballista(format!("http://{host}:{port}"))?;
    let planned = StarflowConfig::model_sha256_of(models.models().map(|m| m.as_ref()));
    state.config_mut().options_mut().set("starflow.model_sha256", &planned)?;
    // The last logical rule: appended to the session's rules.
    Ok(SessionStateBuilder::new_from_existing(state).with_optimizer_rule(Arc::new(crate::formats::PlainFormats)).build())
}

/// Whether something listens at `host:port` (within 5 s per address), or why not.
fn connect(host: &str, port: u16) -> Result<(), String> {
    let mut why = format!("no address for '{host}'");
    for address in (host, port).to_socket_addrs().map_err(|e| e.to_string())? {
        match TcpStream::connect_timeout(&address, Duration::from_secs(5)) {
            Ok(_) => return Ok(()),
            Err(e) => why = e.to_string(),
        }
    }
    Err(why)
}

/// The settings a scheduler or an executor starts a session from (the client's own then replace them).
fn base_config(options: &EngineOptions) -> SessionConfig {
    session_config(options, starflow_udfs::configure(SessionConfig::new_with_ballista()))
}

/// A starflow session state with the StarFlow functions of `models`, registered after the state is built (a
/// builder's function list would replace DataFusion's built-ins).
fn state_with_functions(config: SessionConfig, runtime: Arc<RuntimeEnv>, models: &Arc<ModelRegistry>) -> Result<SessionState> {
    let ctx = SessionContext::new_with_state(session_state(config, runtime)?);
    starflow_udfs::register(&ctx, models);
    Ok(ctx.state())
}

/// What the scheduler and the executors share: the models and the runtime (object stores configured as the command
/// line's).
struct Side {
    models: Arc<ModelRegistry>,
    runtime: Arc<RuntimeEnv>,
}

impl Side {
    fn open(options: &EngineOptions) -> Result<Self, CliError> {
        let models = Arc::new(load_models(options)?);
        let stores = Arc::new(StoreRegistry::new(options.stores.clone(), tokio::runtime::Handle::current()));
        Ok(Self { models, runtime: runtime_env(options, &stores)? })
    }

    fn config_producer(options: &EngineOptions) -> ConfigProducer {
        let options = options.clone();
        Arc::new(move || base_config(&options))
    }
}

fn bind_address(bind: &str) -> Result<SocketAddr, CliError> {
    let mut addrs = bind.to_socket_addrs().map_err(|e| CliError::usage(format!("--bind '{bind}': {e}")))?;
    addrs.next().ok_or_else(|| CliError::usage(format!("--bind '{bind}': no address")))
}

/// `starflow scheduler --bind HOST:PORT`: a Ballista scheduler whose sessions know the StarFlow functions. Runs until
/// the process is stopped.
pub async fn scheduler(bind: &str, options: &EngineOptions) -> Result<(), CliError> {
    let address = bind_address(bind)?;
    let Side { models, runtime } = Side::open(options)?;
    let config = SchedulerConfig {
        bind_host: address.ip().to_string(),
        bind_port: address.port(),
        executor_timeout_seconds: EXECUTOR_TIMEOUT_SECONDS,
        expire_dead_executor_interval_seconds: EXPIRE_CHECK_SECONDS,
        no_executors_grace_period_seconds: EXECUTOR_TIMEOUT_SECONDS,
        ..SchedulerConfig::default()
    }
    .with_override_config_producer(Side::config_producer(options))
    .with_override_session_builder(Arc::new(move |config| state_with_functions(config, Arc::clone(&runtime), &models)));
    let cluster = BallistaCluster::new_from_config(&config).await.map_err(|e| CliError::runtime(e.to_string()))?;
    eprintln!("starflow scheduler listening on {address}");
    start_server(cluster, address, Arc::new(config)).await.map_err(|e| CliError::runtime(format!("scheduler: {e}")))
}

/// `starflow executor --scheduler HOST:PORT`: a Ballista executor whose function registry holds the StarFlow functions
/// over the models of `--models`, reading data through the same object stores as the command line. Runs until the
/// process is stopped.
pub async fn executor(scheduler: &str, bind: &str, options: &EngineOptions) -> Result<(), CliError> {
    let (scheduler_host, scheduler_port) = parse_address(scheduler).map_err(CliError::usage)?;
    let address = bind_address(bind)?;
    let side = Side::open(options)?;
    let producer = Side::config_producer(options);
    let state = state_with_functions(producer(), Arc::clone(&side.runtime), &side.models)?;
    let runtime = Arc::clone(&side.runtime);
    let runtime_producer: RuntimeProducer = Arc::new(move |_| Ok(Arc::clone(&runtime)));
    let config = ExecutorProcessConfig {
        bind_host: address.ip().to_string(),
        external_host: Some(address.ip().to_string()).filter(|ip| ip != "0.0.0.0"),
        port: address.port(),
        grpc_port: address.port().wrapping_add(1),
        scheduler_host,
        scheduler_port,
        vcores: options.threads,
        executor_heartbeat_interval_seconds: HEARTBEAT_SECONDS,
        override_function_registry: Some(Arc::new(BallistaFunctionRegistry::from(&state))),
        override_runtime_producer: Some(runtime_producer),
        override_config_producer: Some(producer),
        ..ExecutorProcessConfig::default()
    };
    eprintln!("starflow executor on {address}, scheduler {scheduler}, {} models", side.models.models().count());
    start_executor_process(Arc::new(config)).await.map_err(|e| {
        let text = e.to_string();
        if text.to_lowercase().contains("connect") {
            CliError::new(crate::error::ErrorClass::Data, format!("cannot reach the cluster's scheduler at {scheduler}: {text}"))
        } else {
            CliError::runtime(format!("executor: {text}"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scheduler's sessions and the executors' function registry hold the StarFlow functions beside DataFusion's
    /// built-ins, and the StarFlow settings the client sends.
    #[tokio::test]
    async fn scheduler_and_executor_sessions_know_the_starflow_functions() {
        let options = EngineOptions::default();
        let stores = Arc::new(StoreRegistry::new(options.stores.clone(), tokio::runtime::Handle::current()));
        let models = Arc::new(ModelRegistry::default());
        let state = state_with_functions(base_config(&options), runtime_env(&options, &stores).unwrap(), &models).unwrap();
        let registry = BallistaFunctionRegistry::from(&state);
        for name in ["starflow_age", "starflow_mass", "starflow_estimate", "starflow_cn_grid", "abs", "array_length"] {
            assert!(state.scalar_functions().contains_key(name), "{name} missing on the scheduler");
            assert!(registry.scalar_functions.contains_key(name), "{name} missing on the executor");
        }
        let mut config = base_config(&options);
        config.options_mut().set("starflow.model_sha256", "age=00").unwrap();
        assert_eq!(config.options().extensions.get::<StarflowConfig>().unwrap().model_sha256, "age=00");
        // Ballista sends a session's settings by the names of `entries`: the StarFlow ones under their full names.
        let sent = config.options().entries().into_iter().find(|e| e.key == "starflow.model_sha256");
        assert_eq!(sent.and_then(|e| e.value).as_deref(), Some("age=00"));
        let mut received = base_config(&options);
        received.options_mut().set("starflow.seed", "7").unwrap();
        assert_eq!(received.options().extensions.get::<StarflowConfig>().unwrap().seed, 7);
    }

    #[test]
    fn addresses() {
        assert_eq!(parse_address("df://127.0.0.1:50050").unwrap(), ("127.0.0.1".to_string(), 50050));
        assert_eq!(parse_address("sched.local:1").unwrap(), ("sched.local".to_string(), 1));
        for bad in ["df://host", "df://:5", "df://h:99999", "df://u@h:5"] {
            assert!(parse_address(bad).is_err(), "{bad}");
        }
    }
}
