//! `starflow.sql`: the statements run in order through a CLI session, the last one's rows handed to Python batch by
//! batch (`Batches`, which `starflow.sql_stream` wraps in a `pyarrow.RecordBatchReader`).

use std::sync::{Arc, Mutex};

use arrow_pyarrow::ToPyArrow;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use pyo3::prelude::*;
use starflow::engine::Query;
use starflow::error::CliError;
use starflow::interrupt::interrupted;
use starflow::output::next_batch;
use starflow::session::Session;

use crate::runtime::wait;

/// Every batch of a query (a `COPY`'s files are moved into place once all its rows are written, or dropped).
async fn drain(mut query: Query) -> Result<Vec<RecordBatch>, CliError> {
    let cancel = interrupted();
    tokio::pin!(cancel);
    let mut batches = Vec::new();
    let result = async {
        while let Some(batch) = next_batch(&mut query.stream, &mut cancel).await? {
            batches.push(batch);
        }
        Ok(())
    }
    .await;
    match query.copy {
        Some(copy) => copy.settle(result).await?,
        None => result?,
    }
    Ok(batches)
}

/// Open a session and run `sql`: every statement but the last to its end, then the last one's stream (`None` when it
/// has no rows: DDL, `SET`). A `COPY` is run to its end at once, so that its file is in place when the call returns.
pub async fn start(session: Session, sql: &str) -> Result<Batches, CliError> {
    let mut statements = session.engine.parse(sql)?;
    let last = statements.pop_back();
    for statement in statements {
        if let Some(query) = session.engine.execute(statement).await? {
            drain(query).await?;
        }
    }
    let query = match last {
        Some(statement) => session.engine.execute(statement).await?,
        None => None,
    };
    let stream: Option<SendableRecordBatchStream> = match query {
        Some(query) if query.copy.is_some() => {
            let schema = query.stream.schema();
            let batches = drain(query).await?;
            Some(Box::pin(RecordBatchStreamAdapter::new(schema, futures::stream::iter(batches.into_iter().map(Ok)))))
        }
        Some(query) => Some(query.stream),
        None => None,
    };
    Ok(Batches { inner: Mutex::new(Some(Running { stream, _session: session })) })
}

/// A query's stream and the session it runs in (dropped together: dropping the stream stops the query).
struct Running {
    stream: Option<SendableRecordBatchStream>,
    _session: Session,
}

/// The result batches of `starflow.sql`, as pyarrow `RecordBatch`es; iterating waits for each without the GIL.
#[pyclass(frozen, module = "starflow._starflow")]
pub struct Batches {
    inner: Mutex<Option<Running>>,
}

impl Batches {
    fn take_stream(&self) -> Option<SendableRecordBatchStream> {
        self.inner.lock().ok()?.as_mut()?.stream.take()
    }

    fn put_back(&self, stream: SendableRecordBatchStream) {
        if let Ok(mut inner) = self.inner.lock() {
            if let Some(running) = inner.as_mut() {
                running.stream = Some(stream);
            }
        }
    }

    /// End the query and free its session.
    fn close_inner(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.take();
        }
    }
}

#[pymethods]
impl Batches {
    /// The result's schema (an empty schema when the last statement has no rows).
    #[getter]
    fn schema<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let guard = self.inner.lock().map_err(|_| crate::errors::EngineError::new_err("error: a query panicked"))?;
        let schema: SchemaRef = guard
            .as_ref()
            .and_then(|r| r.stream.as_ref())
            .map(|s| s.schema())
            .unwrap_or_else(|| Arc::new(datafusion::arrow::datatypes::Schema::empty()));
        schema.to_pyarrow(py)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        // Taken out while waiting: the GIL is released, and another thread iterating meanwhile sees the end.
        let Some(mut stream) = self.take_stream() else { return Ok(None) };
        let batches = &mut stream;
        let next = wait(py, move || async move {
            let cancel = interrupted();
            tokio::pin!(cancel);
            next_batch(batches, &mut cancel).await
        });
        match next {
            Ok(Some(batch)) => {
                self.put_back(stream);
                batch.to_pyarrow(py).map(Some)
            }
            Ok(None) => {
                self.close_inner();
                Ok(None)
            }
            Err(e) => {
                drop(stream);
                self.close_inner();
                Err(e)
            }
        }
    }

    /// Stop the query (if it still runs) and free its session.
    fn close(&self) {
        self.close_inner();
    }
}
