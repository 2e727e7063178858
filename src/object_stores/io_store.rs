//! An [`ObjectStore`] wrapper that performs every request on the IO runtime.
//!
//! Queries run on the CPU runtime (see `executor.rs`), where StarFlow inference keeps worker threads busy for seconds at
//! a time. HTTP clients spawn their connection tasks on whichever runtime polls them first; if that were the CPU runtime, an
//! in-flight S3 response could sit unpolled behind a flow evaluation until it times out. So each call, and each byte
//! stream it returns, is driven by a task on the IO runtime and only the results cross over.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::{BoxStream, StreamExt};
use futures::FutureExt;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result, UploadPart,
};
use tokio::runtime::Handle;

#[derive(Debug)]
pub struct IoStore {
    inner: Arc<dyn ObjectStore>,
    io: Handle,
}

impl IoStore {
    pub fn new(inner: Arc<dyn ObjectStore>, io: Handle) -> Self {
        Self { inner, io }
    }

    async fn on_io<T, F>(&self, f: impl FnOnce(Arc<dyn ObjectStore>) -> F) -> Result<T>
    where
        F: Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        spawn_on(&self.io, f(Arc::clone(&self.inner))).await
    }
}

async fn spawn_on<T: Send + 'static>(io: &Handle, fut: impl Future<Output = Result<T>> + Send + 'static) -> Result<T> {
    io.spawn(fut).await.map_err(|e| object_store::Error::JoinError { source: e })?
}

/// Drive `stream` on the IO runtime, handing its items over through a small channel (bounded, so a slow consumer
/// back-pressures the download instead of buffering it).
fn stream_on<T: Send + 'static>(io: &Handle, mut stream: BoxStream<'static, T>) -> BoxStream<'static, T> {
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    io.spawn(async move {
        while let Some(item) = stream.next().await {
            if tx.send(item).await.is_err() {
                break;
            }
        }
    });
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }).boxed()
}

impl fmt::Display for IoStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IoStore({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for IoStore {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        let location = location.clone();
        self.on_io(|s| async move { s.put_opts(&location, payload, opts).await }).await
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        let location = location.clone();
        let upload = self.on_io(|s| async move { s.put_multipart_opts(&location, opts).await }).await?;
        Ok(Box::new(IoUpload { inner: Some(upload), io: self.io.clone() }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let location = location.clone();
        let mut result = self.on_io(|s| async move { s.get_opts(&location, options).await }).await?;
        if let GetResultPayload::Stream(stream) = result.payload {
            result.payload = GetResultPayload::Stream(stream_on(&self.io, stream));
        }
        Ok(result)
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<bytes::Bytes>> {
        let (location, ranges) = (location.clone(), ranges.to_vec());
        self.on_io(|s| async move { s.get_ranges(&location, &ranges).await }).await
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        stream_on(&self.io, self.inner.delete_stream(locations))
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        stream_on(&self.io, self.inner.list(prefix))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let prefix = prefix.cloned();
        self.on_io(|s| async move { s.list_with_delimiter(prefix.as_ref()).await }).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        let (from, to) = (from.clone(), to.clone());
        self.on_io(|s| async move { s.copy_opts(&from, &to, options).await }).await
    }
}

/// A multipart upload whose part uploads, completion and abort all run on the IO runtime.
#[derive(Debug)]
struct IoUpload {
    /// Taken while `complete`/`abort` run on the IO runtime, then put back.
    inner: Option<Box<dyn MultipartUpload>>,
    io: Handle,
}

impl IoUpload {
    async fn finish<T: Send + 'static>(
        &mut self,
        op: fn(Box<dyn MultipartUpload>) -> futures::future::BoxFuture<'static, (Box<dyn MultipartUpload>, Result<T>)>,
    ) -> Result<T> {
        let upload = self.inner.take().ok_or_else(|| object_store::Error::Generic {
            store: "IoStore",
            source: "multipart upload already finished".into(),
        })?;
        let (upload, result) = self.io.spawn(op(upload)).await.map_err(|e| object_store::Error::JoinError { source: e })?;
        self.inner = Some(upload);
        result
    }
}

#[async_trait]
impl MultipartUpload for IoUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let Some(upload) = self.inner.as_mut() else {
            return futures::future::ready(Err(object_store::Error::Generic {
                store: "IoStore",
                source: "multipart upload already finished".into(),
            }))
            .boxed();
        };
        let part = upload.put_part(data);
        let io = self.io.clone();
        async move { spawn_on(&io, part).await }.boxed()
    }

    async fn complete(&mut self) -> Result<PutResult> {
        self.finish(|mut u| {
            async move {
                let r = u.complete().await;
                (u, r)
            }
            .boxed()
        })
        .await
    }

    async fn abort(&mut self) -> Result<()> {
        self.finish(|mut u| {
            async move {
                let r = u.abort().await;
                (u, r)
            }
            .boxed()
        })
        .await
    }
}
