//! Shared test fixtures: the starflow binary, a real S3-compatible server (s3s-fs) on 127.0.0.1, Parquet files.
#![allow(dead_code)] // each test binary uses a different subset

pub mod fault_proxy;
pub mod http_files;
pub mod properties;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::parquet::arrow::ArrowWriter;

pub const ACCESS_KEY: &str = "starflow-test-key";
pub const SECRET_KEY: &str = "starflow-test-secret-0123456789";
pub const BUCKET: &str = "catalogues";

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn bundled_catalogue() -> PathBuf {
    repo_root().join("examples/data/astraAllStarASPCAP_apokasc3.parquet")
}

/// The starflow binary with a clean environment: no AWS settings leak in from the machine, and credentials are
/// always explicit (so object_store never falls back to the cloud instance-metadata address).
pub fn starflow() -> assert_cmd::Command {
    assert_cmd::Command::from_std(starflow_std())
}

/// [`starflow`] as a `std::process::Command`, for tests that spawn it and act while it runs.
pub fn starflow_std() -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("starflow"));
    for var in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION", "STARFLOW_MODELS", "STARFLOW_DEVICE", "STARFLOW_THREADS"] {
        cmd.env_remove(var);
    }
    cmd.env("AWS_CONFIG_FILE", "/nonexistent").env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent");
    cmd.env("STARFLOW_HISTORY", std::env::temp_dir().join("starflow-test-history"));
    cmd
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running s3s-fs server over a temporary directory; killed on drop.
pub struct S3Server {
    child: Child,
    pub dir: tempfile::TempDir,
    pub endpoint: String,
}

fn s3s_fs_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("S3S_FS") {
        return p.into();
    }
    let home_bin = std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo/bin/s3s-fs"));
    match home_bin.filter(|p| p.is_file()) {
        Some(p) => p,
        None => PathBuf::from("s3s-fs"),
    }
}

impl S3Server {
    /// Start the server with one bucket, [`BUCKET`]. Fails (never skips) when s3s-fs is not installed.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(BUCKET)).unwrap();
        let port = free_port();
        let binary = s3s_fs_binary();
        let child = Command::new(&binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} ({e}): run scripts/install-test-tools.sh", binary.display()));
        let server = Self { child, dir, endpoint: format!("http://127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs did not start listening on port {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// Put a local file at `key` of the bucket (s3s-fs stores objects as files: the server serves what we place).
    pub fn put_file(&self, key: &str, source: &Path) {
        let target = self.dir.path().join(BUCKET).join(key);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(source, target).unwrap();
    }

    pub fn object_path(&self, key: &str) -> PathBuf {
        self.dir.path().join(BUCKET).join(key)
    }

    /// starflow with this server's endpoint and credentials.
    pub fn starflow(&self) -> assert_cmd::Command {
        self.starflow_via(&self.endpoint)
    }

    /// starflow with this server's credentials and another endpoint (a proxy in front of it).
    pub fn starflow_via(&self, endpoint: &str) -> assert_cmd::Command {
        assert_cmd::Command::from_std(self.starflow_std_via(endpoint))
    }

    /// [`Self::starflow_via`] as a `std::process::Command`.
    pub fn starflow_std_via(&self, endpoint: &str) -> Command {
        let mut cmd = starflow_std();
        cmd.env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("AWS_REGION", "us-east-1")
            .args(["--s3-endpoint", endpoint]);
        cmd
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A Parquet file of `rows` rows: id (0..rows), x = id * 0.5, name = "star<id>", in batches of 10,000.
pub fn write_parquet(path: &Path, rows: usize) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("x", DataType::Float64, false),
        Field::new("name", DataType::Utf8, false),
    ]));
    let file = std::fs::File::create(path).unwrap();
    let mut writer = ArrowWriter::try_new(file, schema.clone(), None).unwrap();
    for start in (0..rows).step_by(10_000) {
        let end = (start + 10_000).min(rows);
        let ids: Vec<i64> = (start as i64..end as i64).collect();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(ids.clone())),
            Arc::new(Float64Array::from(ids.iter().map(|i| *i as f64 * 0.5).collect::<Vec<_>>())),
            Arc::new(StringArray::from(ids.iter().map(|i| format!("star{i}")).collect::<Vec<_>>())),
        ];
        writer.write(&RecordBatch::try_new(schema.clone(), columns).unwrap()).unwrap();
    }
    writer.close().unwrap();
}

/// Rows of a Parquet file, read back.
pub fn read_parquet(path: &Path) -> Vec<RecordBatch> {
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let file = std::fs::File::open(path).unwrap();
    ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap().collect::<Result<_, _>>().unwrap()
}

pub fn stdout_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The secret key appears nowhere in what starflow printed.
pub fn assert_no_secret(output: &std::process::Output) {
    for (name, text) in [("stdout", &output.stdout), ("stderr", &output.stderr)] {
        assert!(!String::from_utf8_lossy(text).contains(SECRET_KEY), "the secret key is in {name}");
    }
}

/// Rows `start..start + n` of the bundled catalogue as a Parquet file, without the columns in `drop`.
pub fn write_bundled_rows(path: &Path, start: usize, n: usize, drop: &[&str]) {
    use datafusion::arrow::compute::concat_batches;
    let batches = read_parquet(&bundled_catalogue());
    let all = concat_batches(&batches[0].schema(), &batches).unwrap().slice(start, n);
    let keep: Vec<usize> = (0..all.num_columns()).filter(|&i| !drop.contains(&all.schema().field(i).name().as_str())).collect();
    let rows = all.project(&keep).unwrap();
    let mut writer = ArrowWriter::try_new(std::fs::File::create(path).unwrap(), rows.schema(), None).unwrap();
    writer.write(&rows).unwrap();
    writer.close().unwrap();
}

/// Exit code, stdout and stderr of a finished starflow.
pub fn outcome(output: &std::process::Output) -> (Option<i32>, String, String) {
    (output.status.code(), stdout_of(output), String::from_utf8_lossy(&output.stderr).into_owned())
}

/// Every entry under `dir`, recursively, as sorted paths relative to it (hidden ones included).
pub fn tree(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            out.push(path.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            if path.is_dir() && !path.is_symlink() {
                walk(root, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The files under `dir` (as [`tree`], without directories: s3s-fs leaves a key's directories behind when it deletes
/// the object), or none if `dir` does not exist.
pub fn files(dir: &Path) -> Vec<String> {
    if !dir.exists() {
        return Vec::new();
    }
    tree(dir).into_iter().filter(|e| !dir.join(e).is_dir()).collect()
}
