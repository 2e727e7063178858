//! Where query results go: stdout or a file in any object store, streamed batch by batch.
//!
//! Files are written atomically: through object_store's upload (local files are staged under a temporary name and
//! renamed; S3 objects are a single PUT or a multipart upload completed only at the end), and aborted on any error or
//! Ctrl-C, so no partial file ever stands under the final name.

mod format;

use std::io::Write;
use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::runtime_env::RuntimeEnv;
use futures::StreamExt;
use object_store::ObjectStore;
use object_store::buffered::BufWriter;
use object_store::path::Path as StorePath;
use tokio::io::AsyncWriteExt;

pub use format::{Encoder, OutputFormat};

use crate::error::{CliError, ErrorClass};

/// Where one result goes.
pub enum Destination {
    Stdout,
    File { store: Arc<dyn ObjectStore>, path: StorePath, display: String },
}

impl Destination {
    /// Resolve `-o` (a local path or an object-store URL) through the session's stores.
    pub fn resolve(output: &str, runtime: &RuntimeEnv) -> Result<Self, CliError> {
        let (url, path) = if output.contains("://") {
            let url = url::Url::parse(output).map_err(|e| CliError::usage(format!("invalid output URL '{output}': {e}")))?;
            let path = StorePath::from_url_path(url.path())
                .map_err(|e| CliError::usage(format!("invalid output path '{output}': {e}")))?;
            (url, path)
        } else {
            let abs = std::path::absolute(output).map_err(|e| CliError::output(format!("{output}: {e}")))?;
            let path = StorePath::from_absolute_path(&abs).map_err(|e| CliError::output(format!("{output}: {e}")))?;
            (url::Url::parse("file:///").expect("static URL"), path)
        };
        if path.as_ref().is_empty() || output.ends_with('/') {
            return Err(CliError::usage(format!("--output '{output}' names a directory; give a file name")));
        }
        let store = runtime.object_store_registry.get_store(&url).map_err(|e| CliError::from(e).reclass(ErrorClass::Output))?;
        Ok(Self::File { store, path, display: output.to_string() })
    }
}

pub struct Sink {
    pub format: OutputFormat,
    pub destination: Destination,
    /// Rows shown by the table format.
    pub max_rows: usize,
}

impl Sink {
    /// Stream `batches` to the destination; returns the number of rows. A file appears only if every batch arrived and
    /// the upload completed; if `cancel` resolves first, the write is aborted and `Interrupted` returned.
    pub async fn write(
        &self,
        batches: SendableRecordBatchStream,
        cancel: impl Future<Output = ()>,
    ) -> Result<u64, CliError> {
        tokio::pin!(cancel);
        match &self.destination {
            Destination::Stdout if self.format == OutputFormat::Table => self.print_table(batches, cancel).await,
            Destination::Stdout => {
                if self.format == OutputFormat::Parquet && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                    return Err(CliError::usage("Parquet is binary: write it with -o FILE or pipe stdout"));
                }
                let mut stdout = std::io::stdout().lock();
                encode(self.format, batches, cancel, async |bytes: Vec<u8>| {
                    stdout.write_all(&bytes).and_then(|_| stdout.flush()).map_err(|e| CliError::output(format!("stdout: {e}")))
                })
                .await
            }
            Destination::File { .. } if self.format == OutputFormat::Table => Err(CliError::usage(
                "the table format is for terminals: choose --format-out csv, json, ndjson or parquet for a file",
            )),
            Destination::File { store, path, display } => {
                let mut writer = BufWriter::with_capacity(Arc::clone(store), path.clone(), 8 << 20);
                let encoded = encode(self.format, batches, cancel, async |bytes: Vec<u8>| {
                    if bytes.is_empty() {
                        return Ok(());
                    }
                    writer.put(bytes.into()).await.map_err(|e| CliError::output(format!("{display}: {e}")))
                })
                .await;
                match encoded {
                    Ok(rows) => {
                        writer.shutdown().await.map_err(|e| CliError::output(format!("{display}: {e}")))?;
                        Ok(rows)
                    }
                    Err(e) => {
                        // Nothing may stand under the final name: drop the staged file / multipart upload.
                        let _ = writer.abort().await;
                        Err(e)
                    }
                }
            }
        }
    }

    async fn print_table(
        &self,
        mut batches: SendableRecordBatchStream,
        mut cancel: std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> Result<u64, CliError> {
        let mut shown: Vec<RecordBatch> = Vec::new();
        let (mut shown_rows, mut rows) = (0usize, 0u64);
        while let Some(batch) = next_batch(&mut batches, &mut cancel).await? {
            rows += batch.num_rows() as u64;
            if shown_rows < self.max_rows {
                let take = (self.max_rows - shown_rows).min(batch.num_rows());
                shown.push(batch.slice(0, take));
                shown_rows += take;
            }
        }
        let schema = batches.schema();
        let table = arrow::util::pretty::pretty_format_batches_with_schema(schema, &shown)
            .map_err(|e| CliError::runtime(e.to_string()))?;
        let mut stdout = std::io::stdout().lock();
        let footer = if rows as usize > shown_rows {
            format!("{rows} rows (first {shown_rows} shown; --max-rows, or --format-out csv / -o FILE for all)")
        } else {
            format!("{rows} row{}", if rows == 1 { "" } else { "s" })
        };
        writeln!(stdout, "{table}\n{footer}").map_err(|e| CliError::output(format!("stdout: {e}")))?;
        Ok(rows)
    }
}

/// The next batch, or `Interrupted` as soon as `cancel` resolves.
async fn next_batch(
    batches: &mut SendableRecordBatchStream,
    cancel: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
) -> Result<Option<RecordBatch>, CliError> {
    tokio::select! {
        biased;
        _ = cancel => Err(CliError::interrupted()),
        b = batches.next() => Ok(b.transpose()?),
    }
}

async fn encode(
    format: OutputFormat,
    mut batches: SendableRecordBatchStream,
    mut cancel: std::pin::Pin<&mut impl Future<Output = ()>>,
    mut emit: impl AsyncFnMut(Vec<u8>) -> Result<(), CliError>,
) -> Result<u64, CliError> {
    let mut encoder = Encoder::new(format, batches.schema()).map_err(|e| CliError::runtime(e.to_string()))?;
    let mut rows = 0u64;
    while let Some(batch) = next_batch(&mut batches, &mut cancel).await? {
        rows += batch.num_rows() as u64;
        emit(encoder.write(&batch).map_err(|e| CliError::runtime(e.to_string()))?).await?;
    }
    emit(encoder.finish().map_err(|e| CliError::runtime(e.to_string()))?).await?;
    Ok(rows)
}
