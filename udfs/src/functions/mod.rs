//! The StarFlow SQL functions, one per file (after DataFusion's `datafusion/functions`). The model-backed ones share
//! the argument handling below; each file holds its struct, its `#[user_doc]` and its unit tests.

pub mod starflow_age;
pub mod starflow_age_posterior;
pub mod starflow_cn_grid;
pub mod starflow_cn_posterior;
pub mod starflow_density;
pub mod starflow_estimate;
pub mod starflow_flag_names;
pub mod starflow_flags;
pub mod starflow_good;
pub mod starflow_grid;
pub mod starflow_mass;
pub mod starflow_mass_posterior;
mod star_function;

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::common::{DataFusionError, Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{ColumnarValue, ScalarUDF};

use crate::inference::StarInput;
use crate::model::Model;
use crate::registry::ModelRegistry;

pub(crate) use star_function::{StarFunction, StarOutput, list_of_f64, lists, star_udf};

/// The ten star arguments, in order.
pub const STAR_ARGS: [&str; 10] = ["teff", "e_teff", "logg", "e_logg", "fe_h", "e_fe_h", "c_fe", "e_c_fe", "n_fe", "e_n_fe"];

/// Functions that evaluate a flow per row (thousands of evaluations per star): optimizer rules must not move them to
/// where they would see more rows.
pub const FLOW_FUNCTIONS: [&str; 8] = [
    "starflow_age",
    "starflow_estimate",
    "starflow_mass",
    "starflow_age_posterior",
    "starflow_mass_posterior",
    "starflow_density",
    "starflow_flags",
    "starflow_cn_posterior",
];

pub fn evaluates_flow(name: &str) -> bool {
    FLOW_FUNCTIONS.contains(&name)
}

/// The models a function is bound to. Functions are equal (DataFusion's `ScalarUDFImpl` needs `PartialEq + Eq + Hash`)
/// when bound to the same registry.
#[derive(Debug, Clone)]
pub(crate) struct Registry(pub Arc<ModelRegistry>);

impl PartialEq for Registry {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Registry {}

impl std::hash::Hash for Registry {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        Arc::as_ptr(&self.0).hash(state);
    }
}

/// Every StarFlow function, bound to the models of `registry`.
pub fn all_functions(registry: &Arc<ModelRegistry>) -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::new_from_impl(starflow_age::StarflowAge::new(registry)),
        ScalarUDF::new_from_impl(starflow_mass::StarflowMass::new(registry)),
        ScalarUDF::new_from_impl(starflow_age_posterior::StarflowAgePosterior::new(registry)),
        ScalarUDF::new_from_impl(starflow_mass_posterior::StarflowMassPosterior::new(registry)),
        ScalarUDF::new_from_impl(starflow_estimate::StarflowEstimate::new(registry)),
        ScalarUDF::new_from_impl(starflow_density::StarflowDensity::new(registry)),
        ScalarUDF::new_from_impl(starflow_flags::StarflowFlags::new(registry)),
        ScalarUDF::new_from_impl(starflow_grid::StarflowGrid::new(registry)),
        ScalarUDF::new_from_impl(starflow_cn_posterior::StarflowCnPosterior::new(registry)),
        ScalarUDF::new_from_impl(starflow_cn_grid::StarflowCnGrid::new(registry)),
        ScalarUDF::new_from_impl(starflow_flag_names::StarflowFlagNames::new()),
        ScalarUDF::new_from_impl(starflow_good::StarflowGood::new()),
    ]
}

/// Types the star arguments are coerced to: every numeric type (and NULL) becomes Float64; anything else is a plan
/// error naming the argument. `leading` arguments before the ten (a model name) must be strings.
pub(crate) fn coerce_star_args(function: &str, arg_types: &[DataType], leading: usize) -> Result<Vec<DataType>> {
    if arg_types.len() != leading + STAR_ARGS.len() {
        let model = if leading > 0 { "model, " } else { "" };
        return plan_err!(
            "{function} takes {} arguments ({model}{}), got {}",
            leading + STAR_ARGS.len(),
            STAR_ARGS.join(", "),
            arg_types.len()
        );
    }
    let mut out = Vec::with_capacity(arg_types.len());
    for (i, t) in arg_types.iter().enumerate() {
        let base = match t {
            DataType::Dictionary(_, value) => value.as_ref(),
            other => other,
        };
        let text = matches!(base, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
        if i < leading {
            if !text {
                return plan_err!("{function}: the model name must be a string literal such as 'age', got {t}");
            }
            out.push(DataType::Utf8);
        } else if base.is_numeric() || base.is_null() {
            out.push(DataType::Float64);
        } else {
            let name = STAR_ARGS[i - leading];
            let hint = if text {
                format!(" (numbers stored as text: TRY_CAST({name} AS DOUBLE), null and so BAD_INPUT where not a number)")
            } else {
                String::new()
            };
            return plan_err!("{function}: argument {} ({name}) must be numeric, got {t}{hint}", i + 1);
        }
    }
    Ok(out)
}

/// The stars of one batch from the ten Float64 arguments (scalars are broadcast), NaN where a value is null.
pub(crate) fn star_inputs(args: &[ColumnarValue], rows: usize) -> Result<Vec<StarInput>> {
    let arrays = args
        .iter()
        .map(|a| a.to_array(rows))
        .collect::<Result<Vec<_>>>()?;
    let columns: Vec<_> = arrays
        .iter()
        .map(|a| a.as_primitive_opt::<Float64Type>().ok_or_else(|| DataFusionError::Internal(format!("expected Float64, got {}", a.data_type()))))
        .collect::<Result<_>>()?;
    Ok((0..rows)
        .map(|r| {
            let v = |k: usize| if columns[k].is_null(r) { f64::NAN } else { columns[k].value(r) };
            ([v(0), v(2), v(4), v(6), v(8)], [v(1), v(3), v(5), v(7), v(9)])
        })
        .collect())
}

/// A function of a model name alone (`starflow_grid`, `starflow_cn_grid`): `f` maps the names (None where null) to an
/// array of a row each; a scalar name gives a scalar.
pub(crate) fn of_model_names(
    arg: &ColumnarValue,
    f: impl FnOnce(&mut dyn Iterator<Item = Option<&str>>) -> Result<ArrayRef>,
) -> Result<ColumnarValue> {
    match arg {
        ColumnarValue::Scalar(name) => {
            let row = f(&mut std::iter::once(name.try_as_str().flatten()))?;
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&row, 0)?))
        }
        ColumnarValue::Array(names) => {
            let names = datafusion::arrow::compute::cast(names, &DataType::Utf8)?;
            Ok(ColumnarValue::Array(f(&mut names.as_string::<i32>().iter())?))
        }
    }
}

/// A model named by a literal string argument (`starflow_density('age', ...)`).
pub(crate) fn model_from_arg(function: &str, registry: &ModelRegistry, arg: &ColumnarValue) -> Result<Arc<Model>> {
    let name = match arg {
        ColumnarValue::Scalar(ScalarValue::Utf8(Some(name))) => Some(name.clone()),
        // DataFusion's FFI (the functions in datafusion-python) hands a literal over as an array repeating it.
        ColumnarValue::Array(array) => repeated_string(array),
        _ => None,
    };
    let Some(name) = name else {
        return exec_err!("{function}: the model name must be a non-null string literal such as 'age'");
    };
    registry.require(&name).map_err(DataFusionError::Execution)
}

/// The one string every row of `array` holds, if it is a string array of at least one row, none null, all equal.
fn repeated_string(array: &ArrayRef) -> Option<String> {
    let strings = datafusion::arrow::compute::cast(array, &DataType::Utf8).ok()?;
    let strings = strings.as_string_opt::<i32>()?;
    if strings.is_empty() || strings.null_count() > 0 {
        return None;
    }
    let first = strings.value(0);
    strings.iter().all(|s| s == Some(first)).then(|| first.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::StringViewArray;

    #[test]
    fn a_literal_repeated_in_an_array_names_one_model() {
        let array = |values: Vec<Option<&str>>| Arc::new(StringViewArray::from(values)) as ArrayRef;
        assert_eq!(repeated_string(&array(vec![Some("age"), Some("age")])), Some("age".to_string()));
        assert_eq!(repeated_string(&array(vec![Some("age"), Some("mass")])), None);
        assert_eq!(repeated_string(&array(vec![Some("age"), None])), None);
        assert_eq!(repeated_string(&array(vec![])), None);
    }
}
