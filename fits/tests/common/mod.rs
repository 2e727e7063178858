//! What the reader's test binaries share: the repository, astropy-written files, a session that knows FITS.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::process::Command;

use datafusion::arrow::array::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// `tests/data/fits/make_fits.py DIR ARGS` in the scripts' venv: the files it writes, in a new temporary directory.
pub fn make_fits(args: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let env = Command::new(repo().join("scripts/python-env.sh")).output().unwrap();
    assert!(env.status.success(), "python-env.sh: {}", String::from_utf8_lossy(&env.stderr));
    let python = String::from_utf8(env.stdout).unwrap().trim().to_string();
    let made = Command::new(python).arg(repo().join("tests/data/fits/make_fits.py")).arg(dir.path()).args(args).output().unwrap();
    assert!(made.status.success(), "make_fits.py: {}", String::from_utf8_lossy(&made.stderr));
    dir
}

/// A session with FITS registered, `partitions` wide, in batches of `batch_size` rows.
pub fn context(partitions: usize, batch_size: usize) -> SessionContext {
    let mut config = SessionConfig::new().with_target_partitions(partitions).with_batch_size(batch_size);
    // Small files are split into byte ranges too, so the partitioned read is exercised.
    config.options_mut().optimizer.repartition_file_min_size = 1;
    let mut state = SessionStateBuilder::new().with_config(config).with_default_features().build();
    starflow_fits::register(&mut state).unwrap();
    SessionContext::new_with_state(state).enable_url_table()
}

pub async fn query(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>, DataFusionError> {
    ctx.sql(sql).await?.collect().await
}
