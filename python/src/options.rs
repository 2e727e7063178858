//! The keyword arguments of `starflow.sql`, `catalog`, `register` as the CLI's engine options and session settings.

use std::collections::HashMap;
use std::path::PathBuf;

use pyo3::prelude::*;
use starflow::engine::{EngineOptions, MAX_THREADS};
use starflow::session::SessionSettings;

use crate::errors::UsageError;

/// S3 settings: `endpoint`, `region` (strings), `unsigned`, `instance_metadata` (booleans), as the CLI's `--s3-*`.
#[derive(Default, FromPyObject)]
#[pyo3(from_item_all)]
pub struct S3 {
    #[pyo3(default)]
    endpoint: Option<String>,
    #[pyo3(default)]
    region: Option<String>,
    #[pyo3(default)]
    unsigned: bool,
    #[pyo3(default)]
    instance_metadata: bool,
}

const S3_KEYS: [&str; 4] = ["endpoint", "region", "unsigned", "instance_metadata"];

/// `s3=` as S3 settings; a key that is not one of them is a usage error (a typo must not go unnoticed).
pub fn s3_settings(s3: Option<&Bound<'_, PyAny>>) -> PyResult<S3> {
    let Some(s3) = s3.filter(|s| !s.is_none()) else { return Ok(S3::default()) };
    let keys: HashMap<String, Bound<'_, PyAny>> = s3.extract().map_err(|_| UsageError::new_err("usage error: s3 must be a dict"))?;
    if let Some(unknown) = keys.keys().find(|k| !S3_KEYS.contains(&k.as_str())) {
        return Err(UsageError::new_err(format!("usage error: unknown s3 setting '{unknown}' (known: {})", S3_KEYS.join(", "))));
    }
    s3.extract().map_err(|e| UsageError::new_err(format!("usage error: s3: {e}")))
}

/// The engine options of a call: threads (1 to 256, default the cores), the models directory, S3 settings.
pub fn engine_options(models: Option<PathBuf>, threads: Option<usize>, s3: S3) -> PyResult<EngineOptions> {
    let defaults = EngineOptions::default();
    if let Some(n) = threads.filter(|n| !(1..=MAX_THREADS).contains(n)) {
        return Err(UsageError::new_err(format!("usage error: threads = {n}: from 1 to {MAX_THREADS}")));
    }
    let mut stores = defaults.stores.clone();
    stores.s3_endpoint = s3.endpoint;
    stores.s3_region = s3.region;
    stores.s3_unsigned = s3.unsigned;
    stores.s3_instance_metadata = s3.instance_metadata;
    Ok(EngineOptions { threads: threads.unwrap_or(defaults.threads), stores, models_dir: models, ..defaults })
}

/// Session settings with the tables `{name: url}` registered when the session opens; nothing is printed.
pub fn session_settings(tables: Option<HashMap<String, String>>) -> SessionSettings {
    let mut tables: Vec<(String, String)> = tables.unwrap_or_default().into_iter().collect();
    // Registered in name order: the same errors for the same tables, whatever the dict's order.
    tables.sort();
    SessionSettings { tables, quiet: true, ..SessionSettings::default() }
}
