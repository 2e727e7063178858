//! What a table's listing sees: hidden entries are skipped and an empty Parquet file is an error naming it.
//!
//! Below a listed directory, a file or directory whose name starts with `.` or `_` is not data: `_SUCCESS`, `.crc`
//! checksums, `.DS_Store`, and starflow's own staging (`.starflow-*`). Spark and Hadoop skip them the same way.
//! DataFusion silently drops 0-byte files, so a 0-byte `*.parquet` (an upload that never completed) would vanish
//! from a table or leave a table without columns; it is reported instead.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions,
    PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

#[derive(Debug)]
pub struct Visible {
    inner: Arc<dyn ObjectStore>,
}

impl Visible {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self { inner }
    }
}

/// Whether `path`, listed under `prefix`, has a hidden part below the prefix.
fn hidden(prefix: Option<&Path>, path: &Path) -> bool {
    let below: Vec<_> = match prefix.and_then(|p| path.prefix_match(p)) {
        Some(parts) => parts.collect(),
        None => path.parts().collect(),
    };
    below.iter().any(|part| part.as_ref().starts_with(['.', '_']))
}

fn empty_parquet(meta: &ObjectMeta) -> bool {
    let name = meta.location.filename().unwrap_or_default().to_ascii_lowercase();
    meta.size == 0 && (name.ends_with(".parquet") || name.ends_with(".parq"))
}

/// `meta`, or the error an empty Parquet file is.
fn checked(meta: ObjectMeta) -> Result<ObjectMeta> {
    if !empty_parquet(&meta) {
        return Ok(meta);
    }
    Err(object_store::Error::Generic {
        store: "starflow",
        source: Box::new(crate::error::DataError(format!("{}: an empty file (0 bytes) is not Parquet", meta.location))),
    })
}

impl fmt::Display for Visible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Visible({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for Visible {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let head = options.head;
        let result = self.inner.get_opts(location, options).await?;
        // A head is how DataFusion opens a single file.
        if head {
            checked(result.meta.clone())?;
        }
        Ok(result)
    }

    async fn get_ranges(&self, location: &Path, ranges: &[std::ops::Range<u64>]) -> Result<Vec<bytes::Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let owned = prefix.cloned();
        self.inner
            .list(prefix)
            .filter_map(move |item| {
                let item = match item {
                    Ok(meta) if hidden(owned.as_ref(), &meta.location) => None,
                    Ok(meta) => Some(checked(meta)),
                    Err(e) => Some(Err(e)),
                };
                futures::future::ready(item)
            })
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let mut result = self.inner.list_with_delimiter(prefix).await?;
        result.common_prefixes.retain(|p| !hidden(prefix, p));
        result.objects.retain(|m| !hidden(prefix, &m.location));
        result.objects = result.objects.into_iter().map(checked).collect::<Result<_>>()?;
        Ok(result)
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_below_the_prefix_only() {
        let prefix = Path::from("_jobs/.run/in");
        assert!(!hidden(Some(&prefix), &Path::from("_jobs/.run/in/part-0.parquet")));
        assert!(hidden(Some(&prefix), &Path::from("_jobs/.run/in/_SUCCESS")));
        assert!(hidden(Some(&prefix), &Path::from("_jobs/.run/in/.part-0.parquet.crc")));
        assert!(hidden(Some(&prefix), &Path::from("_jobs/.run/in/.starflow-staging-1/x.parquet")));
        assert!(!hidden(Some(&prefix), &Path::from("_jobs/.run/in/year=2024/part-0.parquet")));
        assert!(hidden(None, &Path::from("a/_temporary/x.parquet")));
    }
}
