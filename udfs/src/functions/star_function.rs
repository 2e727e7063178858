//! What the model-backed functions share: argument coercion, model lookup, evaluation, output arrays. Each public
//! function is a thin documented struct over a [`StarFunction`] (see the `star_udf!` macro).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array, Float64Builder, Int64Array, ListBuilder, StructArray};
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::{DataFusionError, Result, ScalarValue, internal_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, Signature, TypeSignature, Volatility,
};

use super::{Registry, coerce_star_args, model_from_arg, star_inputs};
use crate::config::StarflowConfig;
use crate::inference::{estimate_batch, plane_batch};
use crate::joint::Plane;
use crate::model::Model;
use crate::posterior::Estimate;
use crate::registry::ModelRegistry;

/// What a function returns per star.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum StarOutput {
    /// Struct {value, e_p_value, e_n_value, value_median, value_p16, value_p84, training_density,
    /// training_density_percentile, bitmask}, the value field named e.g. `age`.
    Summary(&'static str),
    /// Struct {value, e_p, e_n, median, p16, p84, training_density, training_density_percentile, bitmask, posterior,
    /// cn_level}: everything of one
    /// evaluation, for any model.
    Estimate,
    /// The posterior on the model's grid, a list of Float64.
    Posterior,
    Density,
    Flags,
    /// Struct {level, posterior}: the star's C-N plane (models with one).
    CnPlane,
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct StarFunction {
    name: &'static str,
    /// The model a function is bound to (`starflow_age`); `None` when the first argument names it.
    model: Option<&'static str>,
    output: StarOutput,
    registry: Registry,
    signature: Signature,
}

/// The summary struct's fields: the six numbers (value, e_p, e_n, median, p16, p84 under the given names), the
/// density and its percentile among the training stars', the bitmask, and the posterior if asked for.
fn summary_fields(numbers: [String; 6], posterior: bool) -> Fields {
    let mut fields: Vec<Field> = numbers.iter().map(|name| Field::new(name, DataType::Float64, true)).collect();
    fields.push(Field::new("training_density", DataType::Float64, true));
    fields.push(Field::new("training_density_percentile", DataType::Float64, true));
    fields.push(Field::new("bitmask", DataType::Int64, false));
    if posterior {
        fields.push(Field::new("posterior", list_of_f64(), true));
        fields.push(Field::new("cn_level", DataType::Float64, true));
    }
    Fields::from(fields)
}

fn plane_fields() -> Fields {
    Fields::from(vec![Field::new("level", DataType::Float64, true), Field::new("posterior", list_of_f64(), true)])
}

impl StarOutput {
    fn fields(self) -> Option<Fields> {
        match self {
            Self::Summary(v) => {
                let names = [v.to_string(), format!("e_p_{v}"), format!("e_n_{v}"), format!("{v}_median"), format!("{v}_p16"), format!("{v}_p84")];
                Some(summary_fields(names, false))
            }
            Self::Estimate => Some(summary_fields(["value", "e_p", "e_n", "median", "p16", "p84"].map(String::from), true)),
            Self::CnPlane => Some(plane_fields()),
            Self::Posterior | Self::Density | Self::Flags => None,
        }
    }
}

pub(crate) fn list_of_f64() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true)))
}

impl StarFunction {
    pub fn new(name: &'static str, model: Option<&'static str>, output: StarOutput, registry: &Arc<ModelRegistry>) -> Self {
        Self {
            name,
            model,
            output,
            registry: Registry(Arc::clone(registry)),
            // Immutable: the same inputs give the same outputs, which lets the optimizer evaluate a call once.
            signature: Signature::new(TypeSignature::UserDefined, Volatility::Immutable),
        }
    }

    pub fn name(&self) -> &str {
        self.name
    }

    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    fn leading_args(&self) -> usize {
        usize::from(self.model.is_none())
    }

    pub fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_star_args(self.name, arg_types, self.leading_args())
    }

    fn data_type(&self) -> DataType {
        match self.output {
            StarOutput::Summary(_) | StarOutput::Estimate | StarOutput::CnPlane => {
                DataType::Struct(self.output.fields().expect("a struct"))
            }
            StarOutput::Posterior => list_of_f64(),
            StarOutput::Density => DataType::Float64,
            StarOutput::Flags => DataType::Int64,
        }
    }

    pub fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        internal_err!("{}: return_field_from_args is used instead", self.name)
    }

    /// Checks at plan time that the model exists, so a typo fails before any data is read.
    pub fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<Arc<Field>> {
        let model = match (self.model, args.scalar_arguments.first()) {
            (Some(model), _) => model.to_string(),
            (None, Some(Some(ScalarValue::Utf8(Some(name))))) => name.clone(),
            (None, _) => return plan_err!("{}: the model name must be a string literal such as 'age'", self.name),
        };
        let model = self.registry.0.require(&model).map_err(DataFusionError::Plan)?;
        if self.output == StarOutput::CnPlane {
            check_plane(self.name, &model).map_err(DataFusionError::Plan)?;
        }
        let nullable = !matches!(self.output, StarOutput::Summary(_) | StarOutput::Estimate | StarOutput::Flags | StarOutput::CnPlane);
        Ok(Arc::new(Field::new(self.name, self.data_type(), nullable)))
    }

    pub fn invoke(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (model, star_args) = match self.model {
            Some(name) => (self.registry.0.require(name).map_err(DataFusionError::Execution)?, &args.args[..]),
            None => (model_from_arg(self.name, &self.registry.0, &args.args[0])?, &args.args[1..]),
        };
        let config = args.config_options.extensions.get::<StarflowConfig>().cloned().unwrap_or_default();
        let mut options = config.options_for(&model).map_err(DataFusionError::Configuration)?;
        let stars = star_inputs(star_args, args.number_rows)?;
        if self.output == StarOutput::CnPlane {
            check_plane(self.name, &model).map_err(DataFusionError::Execution)?;
            let planes = plane_batch(&model, &stars, &options, self.registry.0.pool()).map_err(DataFusionError::Execution)?;
            return Ok(ColumnarValue::Array(plane_array(&planes)));
        }
        let keep_posterior = matches!(self.output, StarOutput::Posterior | StarOutput::Estimate);
        // Only the bitmask and the level need the C-N plane: the posterior and the density alone do not evaluate it.
        options.cn_flag &= matches!(self.output, StarOutput::Summary(_) | StarOutput::Estimate | StarOutput::Flags);
        let estimates = estimate_batch(&model, &stars, &options, keep_posterior, self.registry.0.pool())
            .map_err(DataFusionError::Execution)?;
        Ok(ColumnarValue::Array(self.output_array(&model, &estimates)))
    }

    fn output_array(&self, model: &Model, estimates: &[Estimate]) -> ArrayRef {
        let column = |f: fn(&Estimate) -> Option<f64>| Arc::new(estimates.iter().map(f).collect::<Float64Array>()) as ArrayRef;
        let bitmask = || Arc::new(estimates.iter().map(|e| e.bitmask).collect::<Int64Array>()) as ArrayRef;
        let posterior = || lists(estimates.iter().map(|e| e.posterior.as_deref()));
        match self.output {
            StarOutput::Summary(_) | StarOutput::Estimate => {
                let mut columns = vec![
                    column(|e| e.value),
                    column(|e| e.e_p),
                    column(|e| e.e_n),
                    column(|e| e.median),
                    column(|e| e.p16),
                    column(|e| e.p84),
                    column(|e| e.training_density),
                    Arc::new(
                        estimates
                            .iter()
                            .map(|e| e.training_density.and_then(|d| model.manifest.density.percentile_of(d)))
                            .collect::<Float64Array>(),
                    ),
                    bitmask(),
                ];
                if self.output == StarOutput::Estimate {
                    columns.push(posterior());
                    columns.push(column(|e| e.cn_level));
                }
                Arc::new(StructArray::new(self.output.fields().expect("a struct"), columns, None))
            }
            StarOutput::Posterior => posterior(),
            StarOutput::Density => column(|e| e.training_density),
            StarOutput::Flags => bitmask(),
            StarOutput::CnPlane => unreachable!("planes are made by plane_array"),
        }
    }
}

/// A model without a C-N plane cannot answer a plane function: say which models can.
fn check_plane(function: &str, model: &Model) -> Result<(), String> {
    match model.cn {
        Some(_) => Ok(()),
        None => Err(format!(
            "{function}: model '{}' (method {}) has no C-N plane: only method v2 models with a `cn` manifest section \
             (e.g. 'age', 'mass') have one",
            model.name(),
            model.manifest.method.as_str()
        )),
    }
}

/// A list column of Float64 lists, null where `None`.
pub(crate) fn lists<'a>(values: impl Iterator<Item = Option<&'a [f64]>>) -> ArrayRef {
    let mut list = ListBuilder::new(Float64Builder::new());
    for v in values {
        match v {
            Some(v) => {
                list.values().append_slice(v);
                list.append(true);
            }
            None => list.append(false),
        }
    }
    Arc::new(list.finish())
}

/// The struct column of `starflow_cn_posterior`: level and posterior, null for a star without a plane.
fn plane_array(planes: &[Option<Plane>]) -> ArrayRef {
    let level = planes.iter().map(|p| p.as_ref().and_then(|p| p.level)).collect::<Float64Array>();
    let posterior = lists(planes.iter().map(|p| p.as_ref().and_then(|p| p.posterior.as_deref())));
    Arc::new(StructArray::new(plane_fields(), vec![Arc::new(level), posterior], None))
}

/// Declares a documented SQL function backed by a [`StarFunction`]: the struct (with the attributes given, e.g.
/// `#[user_doc]`), its constructor from the model registry, and its `ScalarUDFImpl`.
macro_rules! star_udf {
    ($(#[$meta:meta])* $ty:ident = ($name:literal, $model:expr, $output:expr)) => {
        $(#[$meta])*
        #[derive(Debug, PartialEq, Eq, Hash)]
        pub struct $ty {
            inner: $crate::functions::StarFunction,
        }

        impl $ty {
            pub fn new(registry: &std::sync::Arc<$crate::registry::ModelRegistry>) -> Self {
                Self { inner: $crate::functions::StarFunction::new($name, $model, $output, registry) }
            }
        }

        impl datafusion::logical_expr::ScalarUDFImpl for $ty {
            fn name(&self) -> &str {
                self.inner.name()
            }
            fn signature(&self) -> &datafusion::logical_expr::Signature {
                self.inner.signature()
            }
            fn coerce_types(&self, t: &[datafusion::arrow::datatypes::DataType]) -> datafusion::common::Result<Vec<datafusion::arrow::datatypes::DataType>> {
                self.inner.coerce_types(t)
            }
            fn return_type(&self, t: &[datafusion::arrow::datatypes::DataType]) -> datafusion::common::Result<datafusion::arrow::datatypes::DataType> {
                self.inner.return_type(t)
            }
            fn return_field_from_args(&self, args: datafusion::logical_expr::ReturnFieldArgs) -> datafusion::common::Result<datafusion::arrow::datatypes::FieldRef> {
                self.inner.return_field_from_args(args)
            }
            fn invoke_with_args(&self, args: datafusion::logical_expr::ScalarFunctionArgs) -> datafusion::common::Result<datafusion::logical_expr::ColumnarValue> {
                self.inner.invoke(args)
            }
            fn documentation(&self) -> Option<&datafusion::logical_expr::Documentation> {
                self.doc()
            }
        }
    };
}
pub(crate) use star_udf;
