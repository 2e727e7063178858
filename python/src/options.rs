//! The keyword arguments of `starflow.sql`, `catalog`, `register` as the CLI's engine options and session settings.

use std::collections::HashMap;
use std::path::PathBuf;

use pyo3::prelude::*;
use starflow::engine::{EngineOptions, MAX_THREADS};
use starflow::session::SessionSettings;

use crate::errors::UsageError;

/// S3 settings: `endpoint`, `region` (strings), `unsigned`, `instance_metadata` (booleans), as the CLI's `--s3-*`.
#[derive(Default)]
pub struct S3 {
    endpoint: Option<String>,
    region: Option<String>,
    unsigned: bool,
    instance_metadata: bool,
}

/// `s3=` as S3 settings; a key that is not one of them is a usage error (a typo must not go unnoticed).
pub fn s3_settings(s3: Option<&Bound<'_, PyAny>>) -> PyResult<S3> {
    let mut settings = S3::default();
    let Some(s3) = s3.filter(|s| !s.is_none()) else { return Ok(settings) };
    let items: HashMap<String, Bound<'_, PyAny>> =
        s3.extract().map_err(|_| UsageError::new_err("usage error: s3 must be a dict of settings"))?;
    for (key, value) in items {
        let bad = |e: PyErr| UsageError::new_err(format!("usage error: s3 setting '{key}': {e}"));
        match key.as_str() {
            "endpoint" => settings.endpoint = value.extract().map_err(bad)?,
            "region" => settings.region = value.extract().map_err(bad)?,
            "unsigned" => settings.unsigned = value.extract().map_err(bad)?,
            "instance_metadata" => settings.instance_metadata = value.extract().map_err(bad)?,
            _ => {
                return Err(UsageError::new_err(format!(
                    "usage error: unknown s3 setting '{key}' (known: endpoint, region, unsigned, instance_metadata)"
                )));
            }
        }
    }
    Ok(settings)
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
