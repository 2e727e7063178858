use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array, StructArray};
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datafusion_macros::user_doc;

use super::{Registry, list_of_f64, lists, of_model_names};
use crate::joint::CnPlane;
use crate::registry::ModelRegistry;

#[user_doc(
    doc_section(label = "StarFlow Functions"),
    description = "The grid of a model's C-N planes (starflow_cn_posterior): the [C/Fe] and [N/Fe] values of the cells \
(dex; the training stars' range widened by a tenth on each side), the target values the plane is summed over (in the \
flow's units: Gyr for 'age', log10(M/Msun) for 'mass'), and the CN_ATYPICAL threshold on the level (the 97.5th \
percentile of the training stars' levels). Null for a null model name; a model without a C-N plane (the paper's \
method) is an error.",
    syntax_example = "starflow_cn_grid(model)",
    sql_example = r#"```sql
> SELECT array_length(g['c_fe']) AS c_fe, array_length(g['n_fe']) AS n_fe, array_length(g['target']) AS target,
         g['threshold'] > 0.9 AS high
  FROM (SELECT starflow_cn_grid('age') AS g);
+------+------+--------+------+
| c_fe | n_fe | target | high |
+------+------+--------+------+
| 20   | 20   | 10     | true |
+------+------+--------+------+
```
Returns Struct {c_fe: List(Float64), n_fe: List(Float64), target: List(Float64), threshold: Float64}."#,
    argument(name = "model", description = "Model name: 'age' or 'mass' (method v2 models with a C-N plane; see `starflow models`)."),
    related_udf(name = "starflow_cn_posterior")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct StarflowCnGrid {
    registry: Registry,
    signature: Signature,
}

fn fields() -> Fields {
    Fields::from(vec![
        Field::new("c_fe", list_of_f64(), true),
        Field::new("n_fe", list_of_f64(), true),
        Field::new("target", list_of_f64(), true),
        Field::new("threshold", DataType::Float64, true),
    ])
}

impl StarflowCnGrid {
    pub fn new(registry: &Arc<ModelRegistry>) -> Self {
        Self { registry: Registry(Arc::clone(registry)), signature: Signature::string(1, Volatility::Immutable) }
    }

    /// The grids of the models named in `names` (null where null), as the function's struct column.
    fn grids<'a>(&self, names: impl Iterator<Item = Option<&'a str>>) -> Result<ArrayRef> {
        let models = names
            .map(|name| name.map(|name| self.registry.0.require(name).map_err(DataFusionError::Execution)).transpose())
            .collect::<Result<Vec<_>>>()?;
        let planes = models
            .iter()
            .map(|model| {
                let Some(model) = model else { return Ok(None) };
                model.cn.as_ref().map(Some).ok_or_else(|| {
                    DataFusionError::Execution(format!(
                        "starflow_cn_grid: model '{}' (method {}) has no C-N plane: only method v2 models with a `cn` \
                         manifest section (e.g. 'age', 'mass') have one",
                        model.name(),
                        model.manifest.method.as_str()
                    ))
                })
            })
            .collect::<Result<Vec<Option<&CnPlane>>>>()?;
        let axis = |f: fn(&CnPlane) -> &[f64]| lists(planes.iter().map(|p| p.map(f)));
        let nulls = planes.iter().map(Option::is_some).collect::<Vec<_>>();
        let columns = vec![
            axis(|p| &p.c),
            axis(|p| &p.n),
            axis(|p| &p.target),
            Arc::new(planes.iter().map(|p| p.map(|p| p.threshold)).collect::<Float64Array>()) as ArrayRef,
        ];
        Ok(Arc::new(StructArray::new(fields(), columns, Some(nulls.into()))))
    }
}

impl ScalarUDFImpl for StarflowCnGrid {
    fn name(&self) -> &str {
        "starflow_cn_grid"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(fields()))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        of_model_names(&args.args[0], |names| self.grids(names))
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
        let err = super::StarflowCnGrid::new(&registry).grids(std::iter::once(Some("age"))).unwrap_err().to_string();
        assert!(err.contains("no model named 'age'"), "{err}");
    }
}
