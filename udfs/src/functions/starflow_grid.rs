use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Builder, ListBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datafusion_macros::user_doc;

use super::list_of_f64;
use crate::registry::ModelRegistry;

#[user_doc(
    doc_section(label = "StarFlow Functions"),
    description = "The grid a model's posteriors are given on, in the target's units (age: 250 points from 0 to \
14 Gyr; mass: 250 points from 0 to 3 Msun), so that element i of starflow_age_posterior(...) is the probability at \
element i of starflow_grid('age').",
    syntax_example = "starflow_grid(model)",
    sql_example = r#"```sql
> SELECT starflow_grid('age')[1] AS first, starflow_grid('age')[250] AS last;
+-------+------+
| first | last |
+-------+------+
| 0.0   | 14.0 |
+-------+------+
```"#,
    argument(name = "model", description = "Model name: 'age', 'mass', 'age_paper' or 'mass_paper' (see `starflow models`)."),
    related_udf(name = "starflow_age_posterior"),
    related_udf(name = "starflow_mass_posterior")
)]
#[derive(Debug)]
pub struct StarflowGrid {
    registry: Arc<ModelRegistry>,
    signature: Signature,
}

impl PartialEq for StarflowGrid {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.registry, &other.registry)
    }
}
impl Eq for StarflowGrid {}
impl std::hash::Hash for StarflowGrid {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        "starflow_grid".hash(state);
    }
}

impl StarflowGrid {
    pub fn new(registry: &Arc<ModelRegistry>) -> Self {
        Self { registry: Arc::clone(registry), signature: Signature::string(1, Volatility::Immutable) }
    }

    fn grid(&self, name: &str) -> Result<Vec<f64>> {
        let model = self.registry.require(name).map_err(DataFusionError::Execution)?;
        Ok(model.weights.grid.clone())
    }
}

impl ScalarUDFImpl for StarflowGrid {
    fn name(&self) -> &str {
        "starflow_grid"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(list_of_f64())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        match &args.args[0] {
            ColumnarValue::Scalar(s) => {
                let Some(name) = s.try_as_str().flatten() else {
                    return Ok(ColumnarValue::Scalar(ScalarValue::try_from(list_of_f64())?));
                };
                let grid = self.grid(name)?;
                Ok(ColumnarValue::Scalar(ScalarValue::List(ScalarValue::new_list_nullable(
                    &grid.into_iter().map(|v| ScalarValue::Float64(Some(v))).collect::<Vec<_>>(),
                    &DataType::Float64,
                ))))
            }
            ColumnarValue::Array(names) => {
                let names = datafusion::arrow::compute::cast(names, &DataType::Utf8)?;
                let names = names.as_string::<i32>();
                let mut list = ListBuilder::new(Float64Builder::new());
                for i in 0..names.len() {
                    if names.is_null(i) {
                        list.append(false);
                    } else {
                        list.values().append_slice(&self.grid(names.value(i))?);
                        list.append(true);
                    }
                }
                Ok(ColumnarValue::Array(Arc::new(list.finish()) as ArrayRef))
            }
        }
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn unknown_model_is_an_error() {
        let registry = std::sync::Arc::new(crate::registry::ModelRegistry::default());
        let err = super::StarflowGrid::new(&registry).grid("age").unwrap_err().to_string();
        assert!(err.contains("no model named 'age'"), "{err}");
    }
}
