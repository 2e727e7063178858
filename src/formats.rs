//! Input formats that check every file of a table before any row is read, wrapped around DataFusion's Parquet and
//! CSV formats and starflow-fits' FITS format (for URL tables, `--table`, `CREATE EXTERNAL TABLE` and the catalogue alike):
//!
//! - every file must have the same columns: DataFusion would merge the schemas and give a file's missing column as
//!   nulls (Parquet), or read its fields by position under the wrong names (CSV);
//! - a file whose metadata cannot be read (a corrupt footer, a reader's panic on one) is a data error naming it.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::{DataFusionError, GetExt, Result, Statistics};
use datafusion::datasource::file_format::file_compression_type::FileCompressionType;
use datafusion::datasource::file_format::{FileFormat, FileFormatFactory, FileMeta};
use datafusion::datasource::physical_plan::{FileScanConfig, FileSinkConfig, FileSource};
use datafusion::datasource::table_schema::TableSchema;
use datafusion::execution::SessionState;
use datafusion::physical_expr::LexRequirement;
use datafusion::physical_plan::ExecutionPlan;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};
use object_store::{ObjectMeta, ObjectStore};

use crate::error::{catch_panic, data_error};

/// Wrap the session's Parquet, CSV and FITS formats (the ones URL tables and `CREATE EXTERNAL TABLE` find by
/// extension); the FITS ones must be registered first.
pub fn register(state: &mut SessionState) -> Result<()> {
    for ext in ["parquet", "csv", "fits", "fit", "fts"] {
        if let Some(inner) = state.get_file_format_factory(ext) {
            state.register_file_format(Arc::new(CheckedFactory(inner)), true)?;
        }
    }
    Ok(())
}

#[derive(Debug)]
struct CheckedFactory(Arc<dyn FileFormatFactory>);

impl GetExt for CheckedFactory {
    fn get_ext(&self) -> String {
        self.0.get_ext()
    }
}

impl FileFormatFactory for CheckedFactory {
    fn create(&self, state: &dyn Session, options: &HashMap<String, String>) -> Result<Arc<dyn FileFormat>> {
        Ok(checked(self.0.create(state, options)?))
    }

    fn default(&self) -> Arc<dyn FileFormat> {
        checked(self.0.default())
    }
}

/// `inner`, checking the files of a table against each other when their schema is inferred.
pub fn checked(inner: Arc<dyn FileFormat>) -> Arc<dyn FileFormat> {
    // CSV fields are read by position: the same names in another order are other columns.
    let ordered = inner.get_ext() == "csv";
    Arc::new(CheckedFormat { inner, ordered })
}

#[derive(Debug)]
struct CheckedFormat {
    inner: Arc<dyn FileFormat>,
    ordered: bool,
}

/// Why `other`'s columns cannot stand beside `first`'s in one table, if they cannot.
fn mismatch(first: (&ObjectMeta, &Schema), other: (&ObjectMeta, &Schema), ordered: bool) -> Option<String> {
    let names = |s: &Schema| s.fields().iter().map(|f| f.name().clone()).collect::<Vec<_>>();
    let (a, b) = (names(first.1), names(other.1));
    let (fa, fb) = (&first.0.location, &other.0.location);
    if let Some(missing) = a.iter().find(|n| !b.contains(n)) {
        return Some(format!("{fb} lacks column '{missing}' that {fa} has"));
    }
    if let Some(extra) = b.iter().find(|n| !a.contains(n)) {
        return Some(format!("{fb} has column '{extra}' that {fa} lacks"));
    }
    (ordered && a != b).then(|| format!("{fb} has the columns of {fa} in another order"))
}

fn is_fits_error(e: &DataFusionError) -> bool {
    let root = e.find_root();
    std::iter::successors(Some(root as &(dyn std::error::Error + 'static)), |e| e.source())
        .any(|e| e.is::<starflow_fits::FitsError>())
}

/// What reading `object`'s metadata gave, with a reader's error or panic (a damaged file) as a data error naming it.
async fn of_file<T>(object: &ObjectMeta, read: impl Future<Output = Result<T>>) -> Result<T> {
    match catch_panic(read).await {
        Ok(Ok(value)) => Ok(value),
        // A store's errors name the object already, and say what went wrong with the request.
        Ok(Err(e)) if matches!(e.find_root(), DataFusionError::ObjectStore(_)) => Err(e),
        // So do the FITS reader's (with the file as typed: a local path absolute).
        Ok(Err(e)) if is_fits_error(&e) => Err(e),
        Ok(Err(e)) => Err(data_error(format!("{}: {}", object.location, e.strip_backtrace()))),
        Err(panic) => Err(data_error(format!("{}: unreadable ({panic})", object.location))),
    }
}

#[async_trait]
impl FileFormat for CheckedFormat {
    fn get_ext(&self) -> String {
        self.inner.get_ext()
    }

    fn get_ext_with_compression(&self, compression: &FileCompressionType) -> Result<String> {
        self.inner.get_ext_with_compression(compression)
    }

    fn compression_type(&self) -> Option<FileCompressionType> {
        self.inner.compression_type()
    }

    async fn infer_schema(
        &self,
        state: &dyn Session,
        store: &Arc<dyn ObjectStore>,
        objects: &[ObjectMeta],
    ) -> Result<SchemaRef> {
        let concurrency = state.config_options().execution.meta_fetch_concurrency.get();
        // Boxed: the futures' lifetimes must not hang on the closure's (async_trait needs them Send for any lifetime).
        let reads: Vec<BoxFuture<'_, Result<SchemaRef>>> = objects
            .iter()
            .map(|o| of_file(o, self.inner.infer_schema(state, store, std::slice::from_ref(o))).boxed())
            .collect();
        let schemas: Vec<SchemaRef> = futures::stream::iter(reads).buffered(concurrency).try_collect().await?;
        let mut files: Vec<(&ObjectMeta, &SchemaRef)> = objects.iter().zip(&schemas).collect();
        // Compared with the first by name: listings come in any order.
        files.sort_by(|a, b| a.0.location.cmp(&b.0.location));
        if let Some((first, rest)) = files.split_first() {
            for other in rest {
                if let Some(why) = mismatch((first.0, first.1), (other.0, other.1), self.ordered) {
                    return Err(data_error(format!("{why}: every file of a table must have the same columns")));
                }
            }
        }
        // The merge (types widened, metadata) as DataFusion does it; Parquet footers come from its metadata cache.
        self.inner.infer_schema(state, store, objects).await
    }

    async fn infer_stats(
        &self,
        state: &dyn Session,
        store: &Arc<dyn ObjectStore>,
        table_schema: SchemaRef,
        object: &ObjectMeta,
    ) -> Result<Statistics> {
        of_file(object, self.inner.infer_stats(state, store, table_schema, object)).await
    }

    async fn infer_ordering(
        &self,
        state: &dyn Session,
        store: &Arc<dyn ObjectStore>,
        table_schema: SchemaRef,
        object: &ObjectMeta,
    ) -> Result<Option<datafusion::physical_expr::LexOrdering>> {
        self.inner.infer_ordering(state, store, table_schema, object).await
    }

    async fn infer_stats_and_ordering(
        &self,
        state: &dyn Session,
        store: &Arc<dyn ObjectStore>,
        table_schema: SchemaRef,
        object: &ObjectMeta,
    ) -> Result<FileMeta> {
        of_file(object, self.inner.infer_stats_and_ordering(state, store, table_schema, object)).await
    }

    async fn create_physical_plan(&self, state: &dyn Session, conf: FileScanConfig) -> Result<Arc<dyn ExecutionPlan>> {
        self.inner.create_physical_plan(state, conf).await
    }

    async fn create_writer_physical_plan(
        &self,
        input: Arc<dyn ExecutionPlan>,
        state: &dyn Session,
        conf: FileSinkConfig,
        order_requirements: Option<LexRequirement>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.inner.create_writer_physical_plan(input, state, conf, order_requirements).await
    }

    fn file_source(&self, table_schema: TableSchema) -> Arc<dyn FileSource> {
        self.inner.file_source(table_schema)
    }
}

/// On a cluster, plans travel to the scheduler as protobuf, which knows DataFusion's own formats only: this rule (the
/// client's last) gives every checked table its inner format back. The checks have run by then: a table's files are
/// compared when its schema is inferred, here, when the table is registered or a URL table is planned.
#[cfg(feature = "cluster")]
#[derive(Debug)]
pub struct PlainFormats;

#[cfg(feature = "cluster")]
impl datafusion::optimizer::OptimizerRule for PlainFormats {
    fn name(&self) -> &str {
        "starflow_plain_formats"
    }

    fn rewrite(
        &self,
        plan: datafusion::logical_expr::LogicalPlan,
        _config: &dyn datafusion::optimizer::OptimizerConfig,
    ) -> Result<datafusion::common::tree_node::Transformed<datafusion::logical_expr::LogicalPlan>> {
        use datafusion::common::tree_node::Transformed;
        use datafusion::datasource::listing::{ListingTable, ListingTableConfig};
        use datafusion::datasource::{provider_as_source, source_as_provider};
        use datafusion::logical_expr::{LogicalPlan, TableScan};

        plan.transform_up_with_subqueries(|node| {
            let LogicalPlan::TableScan(scan) = node else { return Ok(Transformed::no(node)) };
            let provider = source_as_provider(&scan.source)?;
            let Some(table) = provider.downcast_ref::<ListingTable>() else {
                return Ok(Transformed::no(LogicalPlan::TableScan(scan)));
            };
            let Some(checked) = table.options().format.downcast_ref::<CheckedFormat>() else {
                return Ok(Transformed::no(LogicalPlan::TableScan(scan)));
            };
            let mut options = table.options().clone();
            options.format = Arc::clone(&checked.inner);
            // The table's columns less its partition columns: the files' schema.
            let schema = provider.schema();
            let fields: Vec<_> = schema
                .fields()
                .iter()
                .filter(|f| !options.table_partition_cols.iter().any(|(name, _)| name == f.name()))
                .cloned()
                .collect();
            let file_schema = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
            let config = ListingTableConfig::new_with_multi_paths(table.table_paths().clone())
                .with_listing_options(options)
                .with_schema(file_schema);
            let plain = ListingTable::try_new(config)?.with_constraints(provider.constraints().cloned().unwrap_or_default());
            Ok(Transformed::yes(LogicalPlan::TableScan(TableScan { source: provider_as_source(Arc::new(plain)), ..scan })))
        })
    }
}
