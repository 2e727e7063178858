//! Where query results go: stdout, a stream (FIFO, character device), or a file in any object store, batch by batch.
//!
//! Files are written atomically and aborted on any error or signal, so no partial file ever stands under the final
//! name: a local file is staged beside its target under a hidden name and renamed over it; an object is a single PUT or
//! a multipart upload completed only at the end. Target names are interpreted in [`target`].

pub mod copy;
mod fits;
mod format;
pub mod staging;
pub mod target;
mod votable;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::runtime_env::RuntimeEnv;
use futures::StreamExt;
use object_store::path::Path as StorePath;
use object_store::{MultipartUpload, ObjectStore, ObjectStoreExt};

pub use format::{Encoder, OutputFormat};
use target::{ObjectUrl, Target};

use crate::error::{CliError, ErrorClass};
use crate::interrupt::Staged;

/// Where one result goes.
pub enum Destination {
    Stdout,
    Stderr,
    /// An existing FIFO or character device, written as it comes.
    Stream(PathBuf),
    File(OutputFile),
}

impl Destination {
    pub fn resolve(output: &str, runtime: &RuntimeEnv) -> Result<Self, CliError> {
        Ok(match Target::parse(output)? {
            Target::Stdout => Self::Stdout,
            Target::Stderr => Self::Stderr,
            Target::Stream(path) => Self::Stream(path),
            Target::File(path) => Self::File(OutputFile::local(path, output)),
            Target::Object(url) => Self::File(OutputFile::object(&url, runtime, output)?),
        })
    }
}

/// The store of an object URL, for writing.
pub(crate) fn store_of(url: &ObjectUrl, runtime: &RuntimeEnv) -> Result<Arc<dyn ObjectStore>, CliError> {
    runtime.object_store_registry.get_store(&url.store).map_err(|e| CliError::from(e).reclass(ErrorClass::Output))
}

/// A file to write: a local path or an object.
pub struct OutputFile {
    place: Place,
    pub display: String,
}

enum Place {
    Local(PathBuf),
    Store(Arc<dyn ObjectStore>, StorePath),
}

impl OutputFile {
    pub fn local(path: PathBuf, display: &str) -> Self {
        Self { place: Place::Local(path), display: display.to_string() }
    }

    pub fn object(url: &ObjectUrl, runtime: &RuntimeEnv, display: &str) -> Result<Self, CliError> {
        Ok(Self::in_store(store_of(url, runtime)?, url.key.clone(), display))
    }

    pub(crate) fn in_store(store: Arc<dyn ObjectStore>, path: StorePath, display: &str) -> Self {
        Self { place: Place::Store(store, path), display: display.to_string() }
    }

    /// Start writing: the bytes go to a staged upload (a hidden local file, or an S3 multipart upload) that only
    /// appears under the final name when [`StagedFile::finish`] completes it.
    pub fn stage(&self, format: OutputFormat, schema: SchemaRef) -> Result<StagedFile, CliError> {
        // Counted before the staged file exists: a stopping signal that arrives meanwhile waits for its removal.
        let staged = Staged::new();
        let upload = match &self.place {
            Place::Local(path) => {
                Upload::Local(LocalUpload::create(path).map_err(|e| CliError::output(format!("{}: {e}", self.display)))?)
            }
            Place::Store(store, path) => Upload::Store(StoreUpload {
                store: Arc::clone(store),
                path: path.clone(),
                buffer: Vec::new(),
                multipart: None,
            }),
        };
        Ok(StagedFile {
            encoder: Encoder::new(format, schema).map_err(|e| CliError::runtime(e.to_string()))?,
            upload,
            display: self.display.clone(),
            _staged: staged,
        })
    }
}

/// Create a new hidden entry in `dir` (`.starflow-PID-N.SUFFIX`) with `make`, which fails if it exists.
pub(crate) fn create_hidden<T>(
    dir: &Path,
    suffix: &str,
    make: impl Fn(&Path) -> std::io::Result<T>,
) -> std::io::Result<(T, PathBuf)> {
    for n in 0u32.. {
        let path = dir.join(format!(".starflow-{}-{n}.{suffix}", std::process::id()));
        match make(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            made => return made.map(|t| (t, path)),
        }
    }
    unreachable!("u32 names run out")
}

/// The directories made for an output (deepest first): removed again, those still empty, if the output is not
/// completed.
#[derive(Debug, Default)]
pub(crate) struct MadeDirs(Vec<PathBuf>);

impl MadeDirs {
    /// Create `dir` and its missing parents.
    pub(crate) fn create(dir: &Path) -> std::io::Result<Self> {
        let made = dir.ancestors().take_while(|d| !d.exists()).map(Path::to_path_buf).collect();
        std::fs::create_dir_all(dir)?;
        Ok(Self(made))
    }

    /// The output is in place: the directories stay.
    pub(crate) fn keep(&mut self) {
        self.0.clear();
    }

    /// Remove them, deepest first, while they are empty (`remove_dir` refuses the others).
    pub(crate) fn remove(&mut self) {
        for dir in self.0.drain(..) {
            if std::fs::remove_dir(dir).is_err() {
                break;
            }
        }
    }
}

/// A local file staged under a hidden name in its target's directory (so the rename is atomic), with the target's
/// permissions if it exists; removed, with the directories made for it, unless renamed over the target.
struct LocalUpload {
    file: std::fs::File,
    staging: PathBuf,
    target: PathBuf,
    made: MadeDirs,
    renamed: bool,
}

impl LocalUpload {
    fn create(target: &Path) -> std::io::Result<Self> {
        let dir = target.parent().unwrap_or(Path::new("/"));
        let made = MadeDirs::create(dir)?;
        let (file, staging) = create_hidden(dir, "tmp", |p| std::fs::File::create_new(p))?;
        let upload = Self { file, staging, target: target.to_path_buf(), made, renamed: false };
        // A replaced file keeps its mode (a private 0600 file stays private).
        if let Ok(existing) = std::fs::metadata(target) {
            upload.file.set_permissions(existing.permissions())?;
        }
        Ok(upload)
    }

    fn finish(mut self) -> std::io::Result<()> {
        // On disk before it has the final name: a crash leaves the old file or the new one, never a torn one.
        self.file.sync_all()?;
        std::fs::rename(&self.staging, &self.target)?;
        self.renamed = true;
        self.made.keep();
        Ok(())
    }
}

impl Drop for LocalUpload {
    fn drop(&mut self) {
        if !self.renamed {
            let _ = std::fs::remove_file(&self.staging);
            self.made.remove();
        }
    }
}

/// Bytes above this go out as a multipart upload in parts of this size (S3 parts are 5 MiB to 5 GiB, at most 10,000).
const PART_BYTES: usize = 8 << 20;

/// The bytes of one object: one PUT at the end when they fit in a part, else a multipart upload completed at the
/// end. Any failure (of a part, the last one included, or of the completion) aborts the multipart upload, so neither
/// an object nor orphan parts remain; object_store's `BufWriter` leaves the upload open when a part fails during its
/// shutdown. Parts are sent one at a time: the query waits meanwhile, and memory stays at one part.
struct StoreUpload {
    store: Arc<dyn ObjectStore>,
    path: StorePath,
    buffer: Vec<u8>,
    multipart: Option<Box<dyn MultipartUpload>>,
}

impl StoreUpload {
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

enum Upload {
    Local(LocalUpload),
    Store(StoreUpload),
}

impl Upload {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        match self {
            Self::Local(local) => local.file.write_all(bytes).map_err(|e| e.to_string()),
            Self::Store(store) => store.write(bytes).await.map_err(|e| e.to_string()),
        }
    }

    async fn finish(self) -> Result<(), String> {
        match self {
            Self::Local(local) => local.finish().map_err(|e| e.to_string()),
            Self::Store(store) => store.finish().await.map_err(|e| e.to_string()),
        }
    }

    async fn abort(self) {
        match self {
            Self::Local(local) => drop(local),
            Self::Store(store) => store.abort().await,
        }
    }
}

/// An output file being written, batch by batch.
pub struct StagedFile {
    encoder: Encoder,
    upload: Upload,
    display: String,
    /// Held until the file is completed or aborted (a signal waits for that).
    _staged: Staged,
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
        let failed = |e: String| CliError::output(format!("{display}: {e}"));
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
    /// File-level metadata added to a Parquet or FITS file's own (what the result depends on: seed, draws, ...).
    pub metadata: HashMap<String, String>,
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
        let (mut out, name): (Box<dyn Write>, String) = match &self.destination {
            Destination::File(file) => return self.write_file(file, batches, cancel).await,
            Destination::Stdout => {
                if matches!(self.format, OutputFormat::Parquet | OutputFormat::Fits) && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                    return Err(CliError::usage(format!("{:?} is binary: write it with -o FILE or pipe stdout", self.format)));
                }
                (Box::new(std::io::stdout().lock()), "stdout".to_string())
            }
            Destination::Stderr => (Box::new(std::io::stderr().lock()), "stderr".to_string()),
            Destination::Stream(path) => {
                // Opening a FIFO waits for its reader.
                let opened = tokio::task::block_in_place(|| std::fs::OpenOptions::new().write(true).open(path));
                let file = opened.map_err(|e| CliError::output(format!("{}: {e}", path.display())))?;
                (Box::new(file), path.display().to_string())
            }
        };
        let mut emit = async |bytes: Vec<u8>| {
            out.write_all(&bytes).and_then(|_| out.flush()).map_err(|e| CliError::output(format!("{name}: {e}")))
        };
        match self.format {
            OutputFormat::Table => self.print_table(batches, cancel, emit).await,
            format => encode(format, batches, cancel, &mut emit).await,
        }
    }

    async fn write_file(
        &self,
        file: &OutputFile,
        mut batches: SendableRecordBatchStream,
        mut cancel: std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> Result<u64, CliError> {
        if self.format == OutputFormat::Table {
            return Err(CliError::usage(
                "the table format is for terminals: choose --format-out csv, json, ndjson, parquet or fits for a file",
            ));
        }
        let schema = batches.schema();
        let mut metadata = schema.metadata().clone();
        metadata.extend(self.metadata.clone());
        let schema = Arc::new(schema.as_ref().clone().with_metadata(metadata));
        let mut staged = file.stage(self.format, Arc::clone(&schema))?;
        let mut rows = 0u64;
        let streamed = async {
            while let Some(batch) = next_batch(&mut batches, &mut cancel).await? {
                rows += batch.num_rows() as u64;
                staged.write(&batch.with_schema(Arc::clone(&schema))?).await?;
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

    async fn print_table(
        &self,
        mut batches: SendableRecordBatchStream,
        mut cancel: std::pin::Pin<&mut impl Future<Output = ()>>,
        mut emit: impl AsyncFnMut(Vec<u8>) -> Result<(), CliError>,
    ) -> Result<u64, CliError> {
        let mut shown: Vec<RecordBatch> = Vec::new();
        let (mut shown_rows, mut rows) = (0usize, 0u64);
        while let Some(batch) = next_batch(&mut batches, &mut cancel).await? {
            rows += batch.num_rows() as u64;
            if shown_rows < self.max_rows {
                let take = (self.max_rows - shown_rows).min(batch.num_rows());
                shown.push(cells(&batch.slice(0, take)).map_err(|e| CliError::runtime(e.to_string()))?);
                shown_rows += take;
            }
        }
        let names = batches.schema().fields().iter().map(|f| Field::new(f.name(), DataType::Utf8, true)).collect::<Vec<_>>();
        let table = arrow::util::pretty::pretty_format_batches_with_schema(Arc::new(Schema::new(names)), &shown)
            .map_err(|e| CliError::runtime(e.to_string()))?;
        let footer = if rows as usize > shown_rows {
            format!("{rows} rows (first {shown_rows} shown; --max-rows, or --format-out csv / -o FILE for all)")
        } else {
            format!("{rows} row{}", if rows == 1 { "" } else { "s" })
        };
        emit(format!("{table}\n{footer}\n").into_bytes()).await?;
        Ok(rows)
    }
}

/// Characters shown of one table cell. Laying out a table measures every character of every cell: three 20 MB
/// strings took a minute. Cells are cut before the layout, and their formatting stops at the cut.
const CELL_CHARS: usize = 200;

/// `batch` as the text of its cells, each cut at [`CELL_CHARS`] (with `…`); nulls stay null (shown empty).
fn cells(batch: &RecordBatch) -> Result<RecordBatch, arrow::error::ArrowError> {
    let options = FormatOptions::default().with_display_error(true);
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    for column in batch.columns() {
        let formatter = ArrayFormatter::try_new(column.as_ref(), &options)?;
        let text: StringArray = (0..column.len()).map(|i| column.is_valid(i).then(|| cut(formatter.value(i)))).collect();
        columns.push(Arc::new(text));
    }
    let names = batch.schema().fields().iter().map(|f| Field::new(f.name(), DataType::Utf8, true)).collect::<Vec<_>>();
    RecordBatch::try_new(Arc::new(Schema::new(names)), columns)
}

/// The first [`CELL_CHARS`] characters of `value`'s text, and `…` if it has more.
fn cut(value: impl std::fmt::Display) -> String {
    struct Bounded(String, usize);
    impl std::fmt::Write for Bounded {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            for c in s.chars() {
                if self.1 == CELL_CHARS {
                    return Err(std::fmt::Error);
                }
                self.0.push(c);
                self.1 += 1;
            }
            Ok(())
        }
    }
    let mut cell = Bounded(String::new(), 0);
    if std::fmt::write(&mut cell, format_args!("{value}")).is_err() {
        cell.0.push('…');
    }
    cell.0
}

/// The next batch, or `Interrupted` as soon as `cancel` resolves.
/// The next batch of `batches`, or an interrupted error as soon as `cancel` resolves.
pub async fn next_batch(
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
    emit: &mut impl AsyncFnMut(Vec<u8>) -> Result<(), CliError>,
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
