//! FITS as a DataFusion file format: `FitsFormatFactory` (for `STORED AS FITS`, `'x.fits'` URL tables and listing
//! tables), `FitsFormat` (schema and row-count inference), `FitsSource` and its opener (scans split by byte range,
//! projection pushed into the decoder).

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{FieldRef, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, GetExt, Result, Statistics, plan_err};
use datafusion::datasource::file_format::file_compression_type::FileCompressionType;
use datafusion::datasource::file_format::{FileFormat, FileFormatFactory};
use datafusion::datasource::listing::{FileRange, PartitionedFile};
use datafusion::datasource::physical_plan::{
    FileGroupPartitioner, FileOpenFuture, FileOpener, FileScanConfig, FileScanConfigBuilder, FileSource,
};
use datafusion::datasource::projection::{ProjectionOpener, SplitProjection};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::physical_expr::projection::ProjectionExprs;
use datafusion::physical_expr::{LexOrdering, PhysicalExpr};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::apply_expression_roots;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use futures::StreamExt;
use object_store::{ObjectMeta, ObjectStore};

use crate::{HduSelector, fits_error};
use crate::input::Input;
use crate::scan::Scan;
use crate::table::Table;

/// Table options (`OPTIONS ('hdu' '2')` or `'compression' 'gzip'`; DataFusion prefixes them with `format.`).
#[derive(Debug, Clone)]
pub struct FitsOptions {
    pub hdu: HduSelector,
    /// Compression named by the table or the file name; gzip is also recognised by its magic bytes.
    pub compression: FileCompressionType,
}

impl Default for FitsOptions {
    fn default() -> Self {
        Self { hdu: HduSelector::FirstTable, compression: FileCompressionType::UNCOMPRESSED }
    }
}

impl FitsOptions {
    pub fn from_map(options: &HashMap<String, String>) -> Result<Self> {
        let mut parsed = Self::default();
        for (key, value) in options {
            match key.strip_prefix("format.") {
                Some("hdu") => parsed.hdu = HduSelector::parse(value),
                Some("compression") => parsed.compression = FileCompressionType::from_str(value)?,
                Some(other) => return plan_err!("unknown FITS table option '{other}' (options: hdu, compression)"),
                None => {}
            }
        }
        Ok(parsed)
    }
}

/// Creates [`FitsFormat`]s; registered once per file extension (`fits`, `fit`, `fts`).
#[derive(Debug)]
pub struct FitsFormatFactory {
    extension: &'static str,
}

impl FitsFormatFactory {
    pub fn with_extension(extension: &'static str) -> Self {
        Self { extension }
    }
}

impl FileFormatFactory for FitsFormatFactory {
    fn create(&self, _state: &dyn Session, options: &HashMap<String, String>) -> Result<Arc<dyn FileFormat>> {
        Ok(Arc::new(FitsFormat::new(FitsOptions::from_map(options)?)))
    }

    fn default(&self) -> Arc<dyn FileFormat> {
        Arc::new(FitsFormat::default())
    }
}

impl GetExt for FitsFormatFactory {
    fn get_ext(&self) -> String {
        self.extension.to_string()
    }
}

#[derive(Debug, Clone, Default)]
pub struct FitsFormat {
    options: FitsOptions,
}

impl FitsFormat {
    pub fn new(options: FitsOptions) -> Self {
        Self { options }
    }

    /// Open `object` and find its table.
    async fn table(&self, store: &Arc<dyn ObjectStore>, object: &ObjectMeta) -> Result<(Input, Table)> {
        let name = object_name(store, object);
        let mut input = Input::open(Arc::clone(store), object, self.options.compression, name).await?;
        let table = input.locate(&self.options.hdu).await?;
        Ok((input, table))
    }
}

/// A file's name for messages when only its store is known: local paths absolute, others as their object key. The
/// local store may be wrapped (starflow's `Visible(LocalFileSystem(..))`), whose name shows the one inside.
fn object_name(store: &Arc<dyn ObjectStore>, object: &ObjectMeta) -> String {
    if store.to_string().contains("LocalFileSystem(") {
        format!("/{}", object.location)
    } else {
        object.location.to_string()
    }
}

#[async_trait]
impl FileFormat for FitsFormat {
    fn get_ext(&self) -> String {
        "fits".to_string()
    }

    fn get_ext_with_compression(&self, compression: &FileCompressionType) -> Result<String> {
        Ok(format!("fits{}", compression.get_ext()))
    }

    fn compression_type(&self) -> Option<FileCompressionType> {
        Some(self.options.compression)
    }

    /// The fields of every file, in order of first appearance (a field's type and metadata from its first file).
    async fn infer_schema(&self, _state: &dyn Session, store: &Arc<dyn ObjectStore>, objects: &[ObjectMeta]) -> Result<SchemaRef> {
        if objects.is_empty() {
            // DataFusion leaves out empty files (and refuses a location without files): every file was empty. Without
            // this, an empty file would read as a table without columns or rows.
            return Err(fits_error("the table's location", "not a FITS file: every file there is empty (0 bytes)"));
        }
        let mut fields: Vec<FieldRef> = Vec::new();
        for object in objects {
            let (_, table) = self.table(store, object).await?;
            for field in table.schema().fields() {
                if !fields.iter().any(|f| f.name() == field.name()) {
                    fields.push(Arc::clone(field));
                }
            }
        }
        Ok(Arc::new(Schema::new(fields)))
    }

    /// Rows from NAXIS2: exact for a plain file whose data is all there (so `count(*)` needs no scan), an estimate
    /// for a compressed one (its scan checks them).
    async fn infer_stats(&self, _state: &dyn Session, store: &Arc<dyn ObjectStore>, table_schema: SchemaRef, object: &ObjectMeta) -> Result<Statistics> {
        let (input, table) = self.table(store, object).await?;
        input.check_complete(&table)?;
        let mut stats = Statistics::new_unknown(&table_schema);
        let bytes = table.rows.saturating_mul(table.row_len as u64) as usize;
        (stats.num_rows, stats.total_byte_size) = match input.is_ranged() {
            true => (Precision::Exact(table.rows as usize), Precision::Exact(bytes)),
            false => (Precision::Inexact(table.rows as usize), Precision::Inexact(bytes)),
        };
        Ok(stats)
    }

    async fn create_physical_plan(&self, _state: &dyn Session, conf: FileScanConfig) -> Result<Arc<dyn ExecutionPlan>> {
        let mut source = match conf.file_source.downcast_ref::<FitsSource>() {
            Some(source) => source.clone(),
            None => FitsSource::new(conf.file_source.table_schema().clone(), self.options.clone()),
        };
        source.options = self.options.clone();
        let config = FileScanConfigBuilder::from(conf)
            .with_file_compression_type(self.options.compression)
            .with_source(Arc::new(source))
            .build();
        Ok(DataSourceExec::from_data_source(config))
    }

    fn file_source(&self, table_schema: TableSchema) -> Arc<dyn FileSource> {
        Arc::new(FitsSource::new(table_schema, self.options.clone()))
    }
}

/// The scan of FITS files: which fields to decode, in batches of which size.
#[derive(Clone)]
pub struct FitsSource {
    table_schema: TableSchema,
    options: FitsOptions,
    projection: SplitProjection,
    metrics: ExecutionPlanMetricsSet,
    batch_size: Option<usize>,
}

impl FitsSource {
    pub fn new(table_schema: TableSchema, options: FitsOptions) -> Self {
        Self {
            projection: SplitProjection::unprojected(&table_schema),
            table_schema,
            options,
            metrics: ExecutionPlanMetricsSet::new(),
            batch_size: None,
        }
    }
}

impl FileSource for FitsSource {
    fn create_file_opener(&self, store: Arc<dyn ObjectStore>, config: &FileScanConfig, _partition: usize) -> Result<Arc<dyn FileOpener>> {
        let file_schema = self.table_schema.file_schema();
        let opener = Arc::new(FitsOpener {
            store,
            url: config.object_store_url.clone(),
            options: self.options.clone(),
            compression: config.file_compression_type,
            schema: Arc::new(file_schema.project(&self.projection.file_indices)?),
            batch_size: self.batch_size.unwrap_or(8192),
        });
        ProjectionOpener::try_new(self.projection.clone(), opener, file_schema)
    }

    fn table_schema(&self) -> &TableSchema {
        &self.table_schema
    }

    fn with_batch_size(&self, batch_size: usize) -> Arc<dyn FileSource> {
        Arc::new(Self { batch_size: Some(batch_size), ..self.clone() })
    }

    fn metrics(&self) -> &ExecutionPlanMetricsSet {
        &self.metrics
    }

    fn file_type(&self) -> &str {
        "fits"
    }

    /// Plain files split into byte ranges read in parallel (each range reads the rows that start in it); a compressed
    /// file is one stream.
    fn repartitioned(
        &self,
        target_partitions: usize,
        repartition_file_min_size: usize,
        output_ordering: Option<LexOrdering>,
        config: &FileScanConfig,
    ) -> Result<Option<FileScanConfig>> {
        let gzip_named = config.file_groups.iter().flat_map(|g| g.files()).any(|f| is_gzip_name(f.object_meta.location.as_ref()));
        if config.file_compression_type.is_compressed() || gzip_named {
            return Ok(None);
        }
        let groups = FileGroupPartitioner::new()
            .with_target_partitions(target_partitions)
            .with_repartition_file_min_size(repartition_file_min_size)
            .with_preserve_order_within_groups(output_ordering.is_some())
            .repartition_file_groups(&config.file_groups);
        Ok(groups.map(|file_groups| {
            let mut config = config.clone();
            config.file_groups = file_groups;
            config
        }))
    }

    fn try_pushdown_projection(&self, projection: &ProjectionExprs) -> Result<Option<Arc<dyn FileSource>>> {
        let mut source = self.clone();
        source.projection = SplitProjection::new(self.table_schema.file_schema(), &self.projection.source.try_merge(projection)?);
        Ok(Some(Arc::new(source)))
    }

    fn projection(&self) -> Option<&ProjectionExprs> {
        Some(&self.projection.source)
    }

    fn apply_expressions(&self, f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>) -> Result<TreeNodeRecursion> {
        apply_expression_roots(self.projection.source.iter(), f)
    }
}

fn is_gzip_name(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    lower.ends_with(".gz") || lower.ends_with(".gzip")
}

struct FitsOpener {
    store: Arc<dyn ObjectStore>,
    url: ObjectStoreUrl,
    options: FitsOptions,
    compression: FileCompressionType,
    /// The fields to produce (the projected table schema without partition columns).
    schema: SchemaRef,
    batch_size: usize,
}

impl FileOpener for FitsOpener {
    fn open(&self, file: PartitionedFile) -> Result<FileOpenFuture> {
        let store = Arc::clone(&self.store);
        let (options, compression, schema, batch_size) = (self.options.clone(), self.compression, Arc::clone(&self.schema), self.batch_size);
        let name = match self.url.as_str() {
            "file:///" => format!("/{}", file.object_meta.location),
            url => format!("{url}{}", file.object_meta.location),
        };
        Ok(Box::pin(async move {
            let mut input = Input::open(store, &file.object_meta, compression, name).await?;
            let table = input.locate(&options.hdu).await?;
            let rows = match (&file.range, input.is_ranged()) {
                (None, _) => 0..table.rows,
                (Some(range), true) => rows_starting_in(range, &table),
                // A compressed file cannot be split: the range at its start reads it whole.
                (Some(range), false) => 0..if range.start == 0 { table.rows } else { 0 },
            };
            let scan = Scan::new(input, table, schema, rows, batch_size)?;
            let batches = futures::stream::try_unfold(scan, |mut scan| async move {
                Ok::<_, DataFusionError>(scan.next_batch().await?.map(|batch| (batch, scan)))
            });
            Ok(batches.boxed())
        }))
    }
}

/// The rows whose first byte lies in `range`: byte ranges that tile a file give every row to exactly one of them.
fn rows_starting_in(range: &FileRange, table: &Table) -> Range<u64> {
    if table.row_len == 0 {
        // Rows without bytes: all of them go to the range at the start of the file.
        return 0..if range.start == 0 { table.rows } else { 0 };
    }
    let (data, row_len) = (table.hdu.data_offset, table.row_len as u64);
    let row_at = |byte: i64| u64::try_from(byte).map_or(0, |b| b.saturating_sub(data).div_ceil(row_len).min(table.rows));
    row_at(range.start)..row_at(range.end)
}

impl fmt::Debug for FitsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FitsSource").field("options", &self.options).finish()
    }
}
