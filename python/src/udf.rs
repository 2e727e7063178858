//! The StarFlow functions for datafusion-python: each `ScalarUDF` handed over as a datafusion-ffi `FFI_ScalarUDF` in a
//! PyCapsule named `datafusion_scalar_udf` (what `datafusion.udf(obj)` reads from `obj.__datafusion_scalar_udf__()`).

use std::sync::Arc;

use datafusion::logical_expr::ScalarUDF;
use datafusion_ffi::udf::FFI_ScalarUDF;
use pyo3::prelude::*;
use pyo3::types::PyCapsule;
use starflow_udfs::ModelRegistry;

/// One StarFlow function, bound to the models it was made with.
#[pyclass(frozen, module = "starflow._starflow")]
pub struct StarflowUdf {
    inner: Arc<ScalarUDF>,
}

#[pymethods]
impl StarflowUdf {
    /// The function's SQL name.
    #[getter]
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn __datafusion_scalar_udf__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyCapsule>> {
        PyCapsule::new_with_value(py, FFI_ScalarUDF::from(Arc::clone(&self.inner)), c"datafusion_scalar_udf")
    }

    fn __repr__(&self) -> String {
        format!("<StarFlow function {}>", self.inner.name())
    }
}

/// Every StarFlow function over `registry`.
pub fn all(registry: &Arc<ModelRegistry>) -> Vec<StarflowUdf> {
    starflow_udfs::functions::all_functions(registry)
        .into_iter()
        .map(|udf| StarflowUdf { inner: Arc::new(udf) })
        .collect()
}
