use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datafusion_macros::user_doc;

use super::{Registry, list_of_f64, lists, of_model_names};
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
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct StarflowGrid {
    registry: Registry,
    signature: Signature,
}

impl StarflowGrid {
    pub fn new(registry: &Arc<ModelRegistry>) -> Self {
        Self { registry: Registry(Arc::clone(registry)), signature: Signature::string(1, Volatility::Immutable) }
    }

    fn grid(&self, name: &str) -> Result<Vec<f64>> {
        let model = self.registry.0.require(name).map_err(DataFusionError::Execution)?;
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
        of_model_names(&args.args[0], |names| {
            let grids = names.map(|name| name.map(|name| self.grid(name)).transpose()).collect::<Result<Vec<_>>>()?;
            Ok(lists(grids.iter().map(Option::as_deref)))
        })
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
