//! The IO runtime every call runs on, and waiting for it from Python: the GIL is released meanwhile, and Ctrl-C
//! (Python's SIGINT handler, checked every 100 ms) stops the statements running as a SIGINT stops the CLI's: writers
//! remove their staged files (`starflow::interrupt`), then the call raises `KeyboardInterrupt`.

use std::sync::OnceLock;
use std::time::Duration;

use pyo3::prelude::*;
use starflow::error::CliError;
use tokio::runtime::Runtime;

use crate::errors::{EngineError, to_py};

/// How often a waiting call looks for Ctrl-C.
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

/// The runtime that carries network IO and output (queries run on each session's CPU runtime), as in the CLI.
fn io_runtime() -> PyResult<&'static Runtime> {
    static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("starflow-io")
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the runtime: {e}"))
        })
        .as_ref()
        .map_err(|e| EngineError::new_err(e.clone()))
}

/// Run the future `work` makes to its end on the IO runtime without the GIL (made there: it need not be `Send`). On
/// Ctrl-C the running statements are told to stop (again every check, for a statement that had not started yet), the
/// future still runs to its end (its writers clean up), and the interrupt is raised instead of its result.
pub fn wait<T: Send, F: Future<Output = Result<T, CliError>>>(py: Python<'_>, work: impl FnOnce() -> F + Send) -> PyResult<T> {
    let runtime = io_runtime()?;
    let mut signal: Option<PyErr> = None;
    let result = py.detach(|| {
        runtime.block_on(async {
            let mut future = std::pin::pin!(work());
            let mut ticks = tokio::time::interval(SIGNAL_CHECK);
            loop {
                tokio::select! {
                    result = &mut future => break result,
                    _ = ticks.tick() => {
                        if signal.is_none() {
                            signal = Python::attach(|py| py.check_signals().err());
                        }
                        if signal.is_some() {
                            starflow::interrupt::interrupt_statements();
                        }
                    }
                }
            }
        })
    });
    match signal {
        Some(interrupt) => Err(interrupt),
        None => result.map_err(to_py),
    }
}
