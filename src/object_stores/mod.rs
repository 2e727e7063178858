//! Object stores: local files, `s3://` (AWS and any S3-compatible endpoint), `gs://`, `az://` and read-only `http(s)://`.
//!
//! Stores are created lazily, the first time a URL of their bucket is seen (in a table location, a URL table, a COPY
//! target or `--output`), so SQL can name any bucket without registering it first. Remote stores are wrapped in
//! [`IoStore`] so their network traffic runs on the IO runtime.

mod aws_profile;
mod io_store;
mod presigned;
mod visible;

use crate::error::data_error;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use datafusion::common::Result;
use datafusion::execution::object_store::ObjectStoreRegistry;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::http::HttpBuilder;
use object_store::local::LocalFileSystem;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};
use tokio::runtime::Handle;
use url::Url;

pub use io_store::IoStore;
use presigned::Presigned;
use visible::Visible;

/// How remote stores are reached. Everything not given here comes from the standard environment variables
/// (`AWS_ACCESS_KEY_ID`, `AWS_REGION`, `AWS_ENDPOINT`, `GOOGLE_SERVICE_ACCOUNT`, `AZURE_STORAGE_ACCOUNT_NAME`, ...) and, for
/// S3, from the AWS shared config files of `AWS_PROFILE`.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub s3_endpoint: Option<String>,
    pub s3_region: Option<String>,
    /// Send unsigned requests (public buckets).
    pub s3_unsigned: bool,
    /// Allow the EC2/ECS instance-metadata credential service when no other credentials are configured.
    pub s3_instance_metadata: bool,
    /// Retries of a failed request (with exponential back-off), 0 to fail at once.
    pub retries: usize,
    /// Time limit of one request (connect to last byte).
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            s3_endpoint: None,
            s3_region: None,
            s3_unsigned: false,
            s3_instance_metadata: false,
            retries: 3,
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

impl StoreOptions {
    fn client_options(&self, allow_http: bool) -> ClientOptions {
        ClientOptions::new()
            .with_allow_http(allow_http)
            .with_timeout(self.request_timeout)
            .with_connect_timeout(self.connect_timeout)
    }

    fn retry_config(&self) -> RetryConfig {
        RetryConfig {
            backoff: BackoffConfig { init_backoff: Duration::from_millis(100), max_backoff: Duration::from_secs(5), base: 2.0 },
            max_retries: self.retries,
            // Bounds the whole retry sequence, not only the count.
            retry_timeout: self.request_timeout * (self.retries as u32 + 1),
        }
    }

    fn build_s3(&self, bucket: &str) -> Result<Arc<dyn ObjectStore>> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let profile = aws_profile::load_profile();
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);

        let endpoint = self.s3_endpoint.clone().or_else(|| env("AWS_ENDPOINT_URL")).or_else(|| env("AWS_ENDPOINT"));
        let endpoint = endpoint.or(profile.endpoint_url.clone());
        // Plain http only when the endpoint itself says so.
        let allow_http = endpoint.as_deref().is_some_and(|e| e.starts_with("http://"));
        if let Some(endpoint) = endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        let region = self.s3_region.clone().or_else(|| env("AWS_REGION")).or_else(|| env("AWS_DEFAULT_REGION"));
        builder = builder.with_region(region.or(profile.region.clone()).unwrap_or_else(|| "us-east-1".to_string()));

        if self.s3_unsigned {
            builder = builder.with_skip_signature(true);
        } else if env("AWS_ACCESS_KEY_ID").is_some() {
            // from_env has read the key, secret and session token.
        } else if let (Some(key), Some(secret)) = (profile.access_key_id, profile.secret_access_key) {
            builder = builder.with_access_key_id(key).with_secret_access_key(secret);
            if let Some(token) = profile.session_token {
                builder = builder.with_token(token);
            }
        } else if env("AWS_WEB_IDENTITY_TOKEN_FILE").is_some()
            || env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").is_some()
            || env("AWS_CONTAINER_CREDENTIALS_FULL_URI").is_some()
            || self.s3_instance_metadata
        {
            // object_store's own providers take these.
        } else {
            // Without this check object_store would quietly ask the instance-metadata address for credentials.
            return Err(data_error(format!(
                "no S3 credentials for bucket '{bucket}': set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), \
                 pass --s3-unsigned for a public bucket, or --s3-instance-metadata on a cloud instance"
            )));
        }
        let store = builder
            .with_client_options(self.client_options(allow_http))
            .with_retry(self.retry_config())
            .build()
            .map_err(|e| data_error(format!("S3 bucket '{bucket}': {e}")))?;
        Ok(Arc::new(store))
    }

    /// A store for `url`, one of [`OBJECT_SCHEMES`] or http(s).
    fn build_remote(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        let bucket = url.host_str().unwrap_or_default();
        let configuration = |e: object_store::Error| data_error(format!("{}: {e}", store_key(url)));
        match url.scheme() {
            "s3" | "s3a" => self.build_s3(bucket),
            "gs" => Ok(Arc::new(
                GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(bucket)
                    .with_client_options(self.client_options(false))
                    .with_retry(self.retry_config())
                    .build()
                    .map_err(configuration)?,
            )),
            "az" | "abfs" | "abfss" => Ok(Arc::new(
                MicrosoftAzureBuilder::from_env()
                    .with_url(url.as_str())
                    .with_client_options(self.client_options(false))
                    .with_retry(self.retry_config())
                    .build()
                    .map_err(configuration)?,
            )),
            "http" | "https" => self.build_http(&store_key(url)),
            other => Err(data_error(format!(
                "unsupported storage scheme '{other}://' (supported: file paths, s3://, gs://, az://, http(s)://)"
            ))),
        }
    }
}

impl StoreOptions {
    /// An HTTP store under `base` (`scheme://host`, with a presigned object's query string if it has one).
    fn build_http(&self, base: &str) -> Result<Arc<dyn ObjectStore>> {
        let store = HttpBuilder::new()
            .with_url(base)
            .with_client_options(self.client_options(base.starts_with("http://")))
            .with_retry(self.retry_config())
            .build()
            .map_err(|e| data_error(format!("{base}: {e}")))?;
        Ok(Arc::new(store))
    }
}

/// An object-store URL whose key is taken literally, as DataFusion's URL parsing expects it: each key segment
/// percent-encoded, so that `#`, `?`, `%` and spaces in a key reach the store as typed (`s3://b/run#3/x.parquet`
/// names the key `run#3/x.parquet`, as in the AWS CLI; DataFusion has no globs in URLs, so `*` is literal too). Local
/// paths (globs when they have `*`, `?` or `[`) and http(s) URLs are returned unchanged.
pub fn literal_location(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else { return text.to_string() };
    if matches!(scheme, "http" | "https" | "file") || scheme.contains('/') {
        return text.to_string();
    }
    let (authority, key) = rest.split_once('/').unwrap_or((rest, ""));
    let Ok(mut url) = Url::parse(&format!("{scheme}://{authority}/")) else { return text.to_string() };
    match url.path_segments_mut() {
        Ok(mut segments) => {
            segments.clear().extend(key.split('/'));
        }
        Err(()) => return text.to_string(),
    }
    url.to_string()
}

/// The text `literal_location` was made from: what the user typed, for messages.
pub fn typed_location(location: &str) -> String {
    let Ok(url) = Url::parse(location) else { return location.to_string() };
    if !OBJECT_SCHEMES.contains(&url.scheme()) {
        return location.to_string();
    }
    match object_store::path::Path::from_url_path(url.path()) {
        Ok(key) => format!("{}/{key}{}", store_key(&url), if url.path().ends_with('/') && url.path() != "/" { "/" } else { "" }),
        Err(_) => location.to_string(),
    }
}

/// The schemes of object stores (`build_remote`): their URLs name an object by a key taken literally
/// ([`literal_location`]).
pub const OBJECT_SCHEMES: [&str; 6] = ["s3", "s3a", "gs", "az", "abfs", "abfss"];

/// `scheme://authority`: one store serves a whole bucket (or host).
fn store_key(url: &Url) -> String {
    format!("{}://{}", url.scheme(), &url[url::Position::BeforeHost..url::Position::AfterPort])
}

/// The session's [`ObjectStoreRegistry`]: creates stores on first use and caches them per bucket. Every store lists
/// only visible files ([`Visible`]); remote ones run on the IO runtime ([`IoStore`]); http(s) hosts serve presigned
/// URLs ([`Presigned`]).
#[derive(Debug)]
pub struct StoreRegistry {
    options: StoreOptions,
    io: Handle,
    stores: Mutex<HashMap<String, Arc<dyn ObjectStore>>>,
    hosts: Mutex<HashMap<String, Arc<Presigned>>>,
}

impl StoreRegistry {
    pub fn new(options: StoreOptions, io: Handle) -> Self {
        let local: Arc<dyn ObjectStore> = Arc::new(Visible::new(Arc::new(LocalFileSystem::new())));
        let stores = HashMap::from([("file://".to_string(), local)]);
        Self { options, io, stores: Mutex::new(stores), hosts: Mutex::default() }
    }

    fn on_io(&self, store: Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore> {
        Arc::new(IoStore::new(store, self.io.clone()))
    }

    fn build(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        let remote = self.on_io(self.options.build_remote(url)?);
        if !matches!(url.scheme(), "http" | "https") {
            return Ok(Arc::new(Visible::new(remote)));
        }
        let host = Arc::new(Presigned::new(remote));
        self.hosts.lock().unwrap_or_else(|p| p.into_inner()).insert(store_key(url), Arc::clone(&host));
        Ok(Arc::new(Visible::new(host)))
    }

    /// Before `location` is read: a presigned http(s) URL (one with a query string) is read with its query.
    pub fn note_location(&self, location: &str) -> Result<()> {
        let Ok(url) = Url::parse(location) else { return Ok(()) };
        if !matches!(url.scheme(), "http" | "https") || url.query().is_none() {
            return Ok(());
        }
        self.get_store(&url)?;
        let Some(host) = self.hosts.lock().unwrap_or_else(|p| p.into_inner()).get(&store_key(&url)).cloned() else {
            return Ok(()); // a store registered by hand for this host: read as it is
        };
        let path = object_store::path::Path::from_url_path(url.path()).map_err(|e| data_error(e.to_string()))?;
        let mut base = url.clone();
        base.set_path("/");
        base.set_fragment(None);
        host.sign(path, self.on_io(self.options.build_http(base.as_str())?));
        Ok(())
    }
}

impl ObjectStoreRegistry for StoreRegistry {
    fn register_store(&self, url: &Url, store: Arc<dyn ObjectStore>) -> Option<Arc<dyn ObjectStore>> {
        self.stores.lock().unwrap_or_else(|p| p.into_inner()).insert(store_key(url), store)
    }

    fn get_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        let key = store_key(url);
        let mut stores = self.stores.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(store) = stores.get(&key) {
            return Ok(Arc::clone(store));
        }
        let store = self.build(url)?;
        stores.insert(key, Arc::clone(&store));
        Ok(store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_store_per_bucket_and_clear_errors_for_unknown_schemes() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let options = StoreOptions { s3_unsigned: true, s3_endpoint: Some("http://127.0.0.1:1".into()), ..Default::default() };
        let registry = StoreRegistry::new(options, rt.handle().clone());
        let a = registry.get_store(&Url::parse("s3://bucket-a/x/y.parquet").unwrap()).unwrap();
        let a2 = registry.get_store(&Url::parse("s3://bucket-a/other.parquet").unwrap()).unwrap();
        let b = registry.get_store(&Url::parse("s3://bucket-b/x.parquet").unwrap()).unwrap();
        assert!(Arc::ptr_eq(&a, &a2));
        assert!(!Arc::ptr_eq(&a, &b));
        let err = registry.get_store(&Url::parse("ftp://host/x").unwrap()).unwrap_err().to_string();
        assert!(err.contains("unsupported storage scheme 'ftp://'"), "{err}");
    }

    #[test]
    fn object_keys_are_literal_for_datafusion() {
        use datafusion::datasource::listing::ListingTableUrl;
        for (text, key) in [
            ("s3://b/run#3/x.parquet", "run#3/x.parquet"),
            ("s3://b/a?x=1.csv", "a?x=1.csv"),
            ("s3://b/a%20b.csv", "a%20b.csv"),
            ("gs://b/dir/", "dir"),
            ("s3://b", ""),
        ] {
            let url = ListingTableUrl::parse(literal_location(text)).unwrap();
            assert_eq!(url.prefix().as_ref(), key, "{text}");
        }
        assert!(literal_location("s3://b/dir/").ends_with("/dir/"));
        assert_eq!(literal_location("https://h/k.parquet?sig=1"), "https://h/k.parquet?sig=1");
        assert_eq!(literal_location("/tmp/a#b.parquet"), "/tmp/a#b.parquet");
        for typed in ["s3://b/run#3/x.parquet", "s3://b/a?x=1.csv", "gs://b/a%20b c.csv", "s3://b/dir#1/", "/tmp/a#b", "https://h/k?s=1"] {
            assert_eq!(typed_location(&literal_location(typed)), typed);
        }
    }

    #[test]
    fn store_key_keeps_port_and_drops_path() {
        assert_eq!(store_key(&Url::parse("http://127.0.0.1:9000/a/b").unwrap()), "http://127.0.0.1:9000");
        assert_eq!(store_key(&Url::parse("s3://bucket/key.parquet").unwrap()), "s3://bucket");
        assert_eq!(store_key(&Url::parse("file:///tmp/x.parquet").unwrap()), "file://");
    }
}
