//! The CPU runtime: query plans run here, on their own threads, so that StarFlow inference (seconds of CPU per batch)
//! never occupies the runtime that drives network IO, progress and output. After InfluxDB 3's `DedicatedExecutor`.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use datafusion::common::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{ExecutionPlan, execute_stream};
use futures::{FutureExt, StreamExt};
use tokio::runtime::{Builder, Runtime};

use crate::error::panic_message;

pub struct CpuExecutor {
    /// `Some` until drop; shut down in the background because a runtime cannot be dropped inside another one.
    runtime: Option<Runtime>,
}

impl CpuExecutor {
    pub fn new(threads: usize) -> Result<Self> {
        let runtime = Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("starflow-cpu")
            .enable_all()
            .build()
            .map_err(|e| DataFusionError::Execution(format!("cannot start the query runtime: {e}")))?;
        Ok(Self { runtime: Some(runtime) })
    }

    fn runtime(&self) -> &Runtime {
        self.runtime.as_ref().expect("runtime lives until drop")
    }

    /// Execute `plan` on the CPU runtime; the returned stream can be polled from any runtime. Dropping it cancels the
    /// query (the producer task stops at its next send). A panic while executing ends the stream with an error: a
    /// silently closed channel would look like a complete result with fewer rows.
    pub fn execute(&self, plan: Arc<dyn ExecutionPlan>, task: Arc<TaskContext>) -> SendableRecordBatchStream {
        let schema = plan.schema();
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        self.runtime().spawn(async move {
            let produce = async {
                let mut stream = match execute_stream(plan, task) {
                    Ok(stream) => stream,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                while let Some(batch) = stream.next().await {
                    if tx.send(batch).await.is_err() {
                        break;
                    }
                }
            };
            if let Err(panic) = AssertUnwindSafe(produce).catch_unwind().await {
                let message = format!("internal error (please report): {}", panic_message(panic.as_ref()));
                let _ = tx.send(Err(DataFusionError::Execution(message))).await;
            }
        });
        let batches = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
        Box::pin(RecordBatchStreamAdapter::new(schema, batches))
    }
}

impl Drop for CpuExecutor {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
