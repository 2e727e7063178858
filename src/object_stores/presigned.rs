//! Presigned `http(s)` URLs: the query string is the signature, and it differs per object.
//!
//! DataFusion asks the store of a URL's host for the URL's path, without its query string. So the host's store
//! keeps, per path, a store whose base URL carries that object's query ([`Presigned::sign`], called for every URL
//! starflow sees before planning). A presigned URL signs one method, GET: the header-only request that opens a file
//! is sent as a GET of its first byte.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetRange, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

/// The stores of one host: plain, and one per presigned object.
#[derive(Debug)]
pub struct Presigned {
    plain: Arc<dyn ObjectStore>,
    signed: Mutex<HashMap<Path, Arc<dyn ObjectStore>>>,
}

impl Presigned {
    pub fn new(plain: Arc<dyn ObjectStore>) -> Self {
        Self { plain, signed: Mutex::default() }
    }

    /// From now on `path` is read through `store` (an HTTP store whose base URL carries the object's query).
    pub fn sign(&self, path: Path, store: Arc<dyn ObjectStore>) {
        self.signed.lock().unwrap_or_else(|p| p.into_inner()).insert(path, store);
    }

    fn store_for(&self, location: &Path) -> Option<Arc<dyn ObjectStore>> {
        self.signed.lock().unwrap_or_else(|p| p.into_inner()).get(location).cloned()
    }
}

impl fmt::Display for Presigned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Presigned({})", self.plain)
    }
}

#[async_trait]
impl ObjectStore for Presigned {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        self.plain.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        self.plain.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let Some(signed) = self.store_for(location) else { return self.plain.get_opts(location, options).await };
        if !options.head {
            return signed.get_opts(location, options).await;
        }
        let first_byte = GetOptions { head: false, range: Some(GetRange::Bounded(0..1)), ..options };
        let result = signed.get_opts(location, first_byte).await?;
        Ok(GetResult { payload: GetResultPayload::Stream(Box::pin(futures::stream::empty())), range: 0..0, ..result })
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<bytes::Bytes>> {
        match self.store_for(location) {
            Some(signed) => signed.get_ranges(location, ranges).await,
            None => self.plain.get_ranges(location, ranges).await,
        }
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        self.plain.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.plain.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.plain.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.plain.copy_opts(from, to, options).await
    }
}
