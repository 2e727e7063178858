//! The StarFlow user-defined functions for DataFusion: stellar ages, masses, training-space densities and quality
//! flags from normalizing flows (ONNX) evaluated per star, as SQL columns.
//!
//! `manifest` + `registry` + `model`: the models; `locate`: where the models and ONNX Runtime are found at run time;
//! `onnx`: ONNX Runtime; `draws`, `inference`, `posterior`: the computation of docs/METHOD.md (both methods, paper and
//! v2); `limits`: the bound on a star's flow rows; `functions`: the SQL functions; `config`: `SET starflow.*`.

pub mod config;
pub mod draws;
pub mod functions;
pub mod inference;
pub mod limits;
pub mod locate;
pub mod manifest;
pub mod model;
pub mod onnx;
pub mod posterior;
pub mod registry;

use std::sync::Arc;

use datafusion::prelude::{SessionConfig, SessionContext};

pub use config::StarflowConfig;
pub use onnx::Device;
pub use registry::ModelRegistry;

/// Session settings the StarFlow functions need: the `starflow.*` options, and no copying of a struct-returning call
/// into every field access (DataFusion's leaf-projection pushdown would otherwise run the flow once per field read).
pub fn configure(config: SessionConfig) -> SessionConfig {
    let mut config = config.with_option_extension(StarflowConfig::default());
    config.options_mut().optimizer.enable_leaf_expression_pushdown = false;
    config
}

/// Register every StarFlow function with `ctx`.
pub fn register(ctx: &SessionContext, registry: &Arc<ModelRegistry>) {
    for udf in functions::all_functions(registry) {
        ctx.register_udf(udf);
    }
}
