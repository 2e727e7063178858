//! Where query results go: stdout or a file in any object store, streamed batch by batch.
//!
//! Files are written atomically: through object_store's upload (local files are staged under a temporary name and
//! renamed; S3 objects are a single PUT or a multipart upload completed only at the end), and aborted on any error or
//! Ctrl-C, so no partial file ever stands under the final name.

mod fits;
mod format;
mod votable;

use std::io::Write;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::runtime_env::RuntimeEnv;
use futures::StreamExt;
use object_store::{MultipartUpload, ObjectStore, ObjectStoreExt};
use object_store::path::Path as StorePath;

pub use format::{Encoder, OutputFormat};

use crate::error::{CliError, ErrorClass};

/// Where one result goes.
pub enum Destination {
    Stdout,
    File(OutputFile),
}

/// A file to write in any object store (a local path or a URL), resolved through the session's stores.
pub struct OutputFile {
    store: Arc<dyn ObjectStore>,
    path: StorePath,
    pub display: String,
}

impl OutputFile {
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
        Ok(Self { store, path, display: output.to_string() })
    }

    /// Start writing: the bytes go to a staged upload (a temporary local file, or an S3 multipart upload) that only
    /// appears under the final name when [`StagedFile::finish`] completes it.
    pub fn stage(&self, format: OutputFormat, schema: SchemaRef) -> Result<StagedFile, CliError> {
        Ok(StagedFile {
            encoder: Encoder::new(format, schema).map_err(|e| CliError::runtime(e.to_string()))?,
            upload: Upload { store: Arc::clone(&self.store), path: self.path.clone(), buffer: Vec::new(), multipart: None },
            display: self.display.clone(),
        })
    }

    /// Remove a completed file (rolling back a set of files of which a later one failed).
    pub async fn delete(&self) -> Result<(), CliError> {
        self.store.delete(&self.path).await.map_err(|e| CliError::output(format!("{}: {e}", self.display)))
    }
}

/// Bytes above this go out as a multipart upload in parts of this size (S3 parts are 5 MiB to 5 GiB, at most 10,000).
const PART_BYTES: usize = 8 << 20;

/// The bytes of one output file: one PUT at the end when they fit in a part, else a multipart upload completed at the
/// end. Any failure (of a part, the last one included, or of the completion) aborts the multipart upload, so neither
/// an object nor orphan parts remain; object_store's `BufWriter` leaves the upload open when a part fails during its
/// shutdown. Parts are sent one at a time: the query waits meanwhile, and memory stays at one part.
struct Upload {
    store: Arc<dyn ObjectStore>,
    path: StorePath,
    buffer: Vec<u8>,
    multipart: Option<Box<dyn MultipartUpload>>,
}

impl Upload {
    async fn write(&mut self, bytes: &[u8]) -> object_store::Result<()> {
        self.buffer.extend_from_slice(bytes);
        while self.buffer.len() >= PART_BYTES {
            let rest = self.buffer.split_off(PART_BYTES);
            let part = std::mem::replace(&mut self.buffer, rest);
            let upload = match &mut self.multipart {
                Some(upload) => upload,
                None => self.multipart.insert(self.store.put_multipart(&self.path).await?),
            };
            upload.put_part(part.into()).await?;
        }
        Ok(())
    }

    async fn finish(mut self) -> object_store::Result<()> {
        let Some(mut upload) = self.multipart.take() else {
            // A single PUT: the object appears whole or not at all.
            return self.store.put(&self.path, self.buffer.into()).await.map(drop);
        };
        let tail = std::mem::take(&mut self.buffer);
        let result = async {
            if !tail.is_empty() {
                upload.put_part(tail.into()).await?;
            }
            upload.complete().await
        }
        .await;
        if result.is_err() {
            let _ = upload.abort().await;
        }
        result.map(drop)
    }

    async fn abort(mut self) {
        if let Some(mut upload) = self.multipart.take() {
            let _ = upload.abort().await;
        }
    }
}

/// An output file being written, batch by batch.
pub struct StagedFile {
    encoder: Encoder,
    upload: Upload,
    display: String,
}

impl StagedFile {
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<(), CliError> {
        let bytes = self.encoder.write(batch).map_err(|e| CliError::runtime(e.to_string()))?;
        self.upload.write(&bytes).await.map_err(|e| CliError::output(format!("{}: {e}", self.display)))
    }

    /// Finish the format and complete the upload: only now does the file stand under its final name.
    pub async fn finish(mut self) -> Result<(), CliError> {
        let tail = match self.encoder.finish() {
            Ok(tail) => tail,
            Err(e) => {
                self.upload.abort().await;
                return Err(CliError::runtime(e.to_string()));
            }
        };
        let display = self.display;
        let failed = |e: object_store::Error| CliError::output(format!("{display}: {e}"));
        for piece in tail {
            let written = match piece {
                Ok(bytes) => self.upload.write(&bytes).await.map_err(failed),
                Err(e) => Err(CliError::runtime(e.to_string())),
            };
            if let Err(e) = written {
                self.upload.abort().await;
                return Err(e);
            }
        }
        self.upload.finish().await.map_err(failed)
    }

    /// Drop the staged bytes: nothing appears under the final name.
    pub async fn abort(self) {
        self.upload.abort().await;
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
                if matches!(self.format, OutputFormat::Parquet | OutputFormat::Fits) && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                    return Err(CliError::usage(format!("{:?} is binary: write it with -o FILE or pipe stdout", self.format)));
                }
                let mut stdout = std::io::stdout().lock();
                encode(self.format, batches, cancel, async |bytes: Vec<u8>| {
                    stdout.write_all(&bytes).and_then(|_| stdout.flush()).map_err(|e| CliError::output(format!("stdout: {e}")))
                })
                .await
            }
            Destination::File(_) if self.format == OutputFormat::Table => Err(CliError::usage(
                "the table format is for terminals: choose --format-out csv, json, ndjson, parquet or fits for a file",
            )),
            Destination::File(file) => {
                let mut staged = file.stage(self.format, batches.schema())?;
                let mut batches = batches;
                let mut rows = 0u64;
                let streamed = async {
                    while let Some(batch) = next_batch(&mut batches, &mut cancel).await? {
                        rows += batch.num_rows() as u64;
                        staged.write(&batch).await?;
                    }
                    Ok(())
                }
                .await;
                match streamed {
                    Ok(()) => staged.finish().await.map(|()| rows),
                    Err(e) => {
                        staged.abort().await;
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
pub(crate) async fn next_batch(
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
    for piece in encoder.finish().map_err(|e| CliError::runtime(e.to_string()))? {
        emit(piece.map_err(|e| CliError::runtime(e.to_string()))?).await?;
    }
    Ok(rows)
}
