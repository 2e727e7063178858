//! `starflow._starflow`, the native half of the `starflow` Python package: the CLI's engine (`starflow` lib) called
//! from Python. The Python half (`python/starflow/__init__.py`) finds the models and ONNX Runtime, and wraps results
//! in pyarrow objects.
//!
//! `errors`: exception classes; `runtime`: the IO runtime and waiting for it without the GIL (Ctrl-C); `options`: the
//! keyword arguments as engine options; `query`: SQL; `udf`: the functions for datafusion-python.

mod errors;
mod options;
mod query;
mod runtime;
mod udf;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyDict;
use starflow::catalog::CatalogMethod;
use starflow::session::SurveyInput;
use starflow::survey::Release;
use starflow::engine::{EngineOptions, load_models};
use starflow::error::CliError;
use starflow::output::target::DirTarget;
use starflow::session::{Session, substitute};
use starflow_udfs::ModelRegistry;

use crate::errors::UsageError;
use crate::options::{engine_options, s3_settings, session_settings};
use crate::runtime::wait;

/// Run `sql` (one or more `;`-separated statements, `${name}` replaced from `defines` as by `--define`) and return
/// the last one's result batches.
#[pyfunction]
#[pyo3(signature = (sql, tables=None, defines=None, models=None, threads=None, s3=None))]
#[allow(clippy::too_many_arguments)]
fn sql(
    py: Python<'_>,
    sql: String,
    tables: Option<HashMap<String, String>>,
    defines: Option<HashMap<String, String>>,
    models: Option<PathBuf>,
    threads: Option<usize>,
    s3: Option<&Bound<'_, PyAny>>,
) -> PyResult<query::Batches> {
    let options = engine_options(models, threads, s3_settings(s3)?)?;
    let settings = session_settings(tables);
    let sql = substitute(&sql, &defines.unwrap_or_default()).map_err(errors::to_py)?;
    wait(py, move || async move { query::start(Session::open(&options, settings).await?, &sql).await })
}

fn release(name: &str) -> PyResult<Release> {
    match name.to_ascii_lowercase().as_str() {
        "auto" => Ok(Release::Auto),
        "dr19" => Ok(Release::Dr19),
        "dr17" => Ok(Release::Dr17),
        _ => Err(UsageError::new_err(format!("usage error: release '{name}': auto, dr19 or dr17"))),
    }
}

fn method(name: &str) -> PyResult<CatalogMethod> {
    match name.to_ascii_lowercase().as_str() {
        "v2" => Ok(CatalogMethod::V2),
        "paper" => Ok(CatalogMethod::Paper),
        _ => Err(UsageError::new_err(format!("usage error: method '{name}': v2 or paper"))),
    }
}

/// The StarFlow catalogue of `input` into `output_dir` (three Parquet files, moved in together or not at all).
/// Returns `{"rows": N, "files": [...]}`.
#[pyfunction]
#[pyo3(signature = (input, output_dir, release="dr19", method="v2", cn_flag=true, models=None, threads=None, s3=None))]
#[allow(clippy::too_many_arguments)]
fn catalog<'py>(
    py: Python<'py>,
    input: String,
    output_dir: String,
    release: &str,
    method: &str,
    cn_flag: bool,
    models: Option<PathBuf>,
    threads: Option<usize>,
    s3: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let (release, method) = (self::release(release)?, self::method(method)?);
    let target = DirTarget::parse(&output_dir).map_err(errors::to_py)?;
    let options = engine_options(models, threads, s3_settings(s3)?)?;
    let written = wait(py, move || async move {
        let mut settings = session_settings(None);
        settings.input = Some(SurveyInput { location: input.clone(), release, keep: Vec::new() });
        let session = Session::open(&options, settings).await?;
        if !cn_flag {
            session.run_script("SET starflow.cn_flag = false").await?;
        }
        starflow::catalog::run(&session, (&input, &[]), (&target, &output_dir), method).await
    })?;
    let result = PyDict::new(py);
    result.set_item("rows", written.rows)?;
    result.set_item("files", written.files)?;
    Ok(result)
}

/// The models of `options`, loaded (and checked) as an engine loads them.
fn registry(py: Python<'_>, options: EngineOptions) -> PyResult<Arc<ModelRegistry>> {
    wait(py, move || async move { load_models(&options).map(Arc::new).map_err(CliError::from) })
}

/// The text of `starflow models`.
#[pyfunction]
#[pyo3(signature = (models=None))]
fn models(py: Python<'_>, models: Option<PathBuf>) -> PyResult<String> {
    let registry = registry(py, engine_options(models, None, Default::default())?)?;
    Ok(py.detach(|| starflow::catalog_info::describe_models(&registry)))
}

/// The text of `starflow functions`.
#[pyfunction]
#[pyo3(signature = (models=None))]
fn functions(py: Python<'_>, models: Option<PathBuf>) -> PyResult<String> {
    let registry = registry(py, engine_options(models, None, Default::default())?)?;
    Ok(starflow::catalog_info::describe_functions(&registry))
}

/// Every StarFlow function, for `datafusion.SessionContext.register_udf(datafusion.udf(f))`.
#[pyfunction]
#[pyo3(signature = (models=None, threads=None))]
fn udfs(py: Python<'_>, models: Option<PathBuf>, threads: Option<usize>) -> PyResult<Vec<udf::StarflowUdf>> {
    Ok(udf::all(&registry(py, engine_options(models, threads, Default::default())?)?))
}

#[pymodule]
fn _starflow(module: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::add_to(module)?;
    module.add_class::<query::Batches>()?;
    module.add_class::<udf::StarflowUdf>()?;
    module.add_function(wrap_pyfunction!(sql, module)?)?;
    module.add_function(wrap_pyfunction!(catalog, module)?)?;
    module.add_function(wrap_pyfunction!(models, module)?)?;
    module.add_function(wrap_pyfunction!(functions, module)?)?;
    module.add_function(wrap_pyfunction!(udfs, module)?)?;
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
