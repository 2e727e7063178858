//! Session settings of the StarFlow functions: `SET starflow.draws = 50`, `SET starflow.label_release = 'dr17'`, ...

use std::any::Any;

use datafusion::common::config::{ConfigEntry, ConfigExtension, ExtensionOptions};
use datafusion::common::{Result as DfResult, extensions_options};

use crate::inference::Options;
use crate::limits::rows_per_star;
use crate::model::Model;

/// The settings' fields (`extensions_options!` gives them parsing, defaults and documentation).
pub mod fields {
    use super::extensions_options;

    extensions_options! {
        /// StarFlow settings (`starflow.*`): the fields of [`super::StarflowConfig`] (the same name: DataFusion's
        /// messages about a setting name it).
        pub struct StarflowConfig {
            /// Monte-Carlo draws of a star that is drawn (every star under the paper's method, a star whose errors exceed
            /// the training labels' noise under v2), at least 1; not set: the model's default (50 for the StarFlow models).
            pub draws: Option<usize>, default = None
            /// Seed of the per-star draws: together with a star's inputs it fixes its numbers.
            pub seed: u64, default = 20251123
            /// Flow rows per task of the inference pool (whole stars: at least one; 12,500 rows for a star drawn 50 times,
            /// 250 for a star of one row); each star is its own ONNX Runtime call, so that its numbers never depend on
            /// the stars beside it (inference.rs).
            pub chunk_rows: usize, default = 25000
            /// The data release of the input labels (method v2 models move them onto their training release with its
            /// offsets and systematics): e.g. 'dr19', 'dr17', 'dr14'; empty uses the model's default. Set by the input
            /// views (queries/dr19_inputs.sql, dr17_inputs.sql); ignored by paper-method models.
            pub label_release: String, default = String::new()
            /// Evaluate each star's [C/Fe]-[N/Fe] plane (4,010 flow rows per star and model) for its level and the
            /// CN_ATYPICAL bit (32), under models that have a plane (method v2). false: bit 32 is never set and the level
            /// is null, which saves most of the time of stars evaluated once (docs/PERFORMANCE.md).
            pub cn_flag: bool, default = true
            /// The models a query was planned with, as `name=sha256` pairs (the hex sha256 of each ONNX file) separated
            /// by commas. A cluster client (`--cluster`) sets it to its own models; a function whose model has other
            /// bytes (an executor serving a different model) refuses to run. Empty: no check.
            pub model_sha256: String, default = String::new()
        }
    }
}

/// The StarFlow settings as a session's configuration extension. DataFusion's `extensions_options!` lists an
/// extension's entries without its prefix (`seed`, not `starflow.seed`): a Ballista client sends a session's settings
/// by those names, and the scheduler and executors could not tell them from DataFusion's (they were dropped, so a
/// cluster ran with the default seed and release). This wrapper lists them under their full names.
#[derive(Debug, Clone, Default)]
pub struct StarflowConfig(fields::StarflowConfig);

impl std::ops::Deref for StarflowConfig {
    type Target = fields::StarflowConfig;
    fn deref(&self) -> &fields::StarflowConfig {
        &self.0
    }
}

impl ConfigExtension for StarflowConfig {
    const PREFIX: &'static str = "starflow";
}

impl ExtensionOptions for StarflowConfig {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn cloned(&self) -> Box<dyn ExtensionOptions> {
        Box::new(self.clone())
    }

    fn set(&mut self, key: &str, value: &str) -> DfResult<()> {
        self.0.set(key, value)
    }

    fn entries(&self) -> Vec<ConfigEntry> {
        let prefixed = |entry: ConfigEntry| ConfigEntry { key: format!("{}.{}", Self::PREFIX, entry.key), ..entry };
        self.0.entries().into_iter().map(prefixed).collect()
    }
}

impl StarflowConfig {
    /// The options of a call to `model`, or why a setting cannot be used with it.
    pub fn options_for(&self, model: &Model) -> Result<Options, String> {
        self.check_model_bytes(model)?;
        let draws = match self.draws {
            None => model.manifest.default_draws,
            Some(0) => return Err("starflow.draws = 0: at least 1 draw per star".to_string()),
            Some(draws) => draws,
        };
        rows_per_star(draws, model.eval_points.len()).map_err(|e| format!("starflow.draws = {draws}: {e}"))?;
        // Release names are lower-case; 'DR17' means the same release. An unknown one is refused here, as a setting.
        let label_release = self.label_release.trim().to_ascii_lowercase();
        let _planner = model
            .draw_planner(&label_release, draws)
            .map_err(|e| format!("starflow.label_release = '{}': {e}", self.label_release))?;
        Ok(Options { draws, seed: self.seed, chunk_rows: self.chunk_rows.max(1), label_release, cn_flag: self.cn_flag })
    }

    /// `starflow.model_sha256` for `models`: the value a cluster client sends.
    pub fn model_sha256_of<'a>(models: impl Iterator<Item = &'a Model>) -> String {
        models.map(|m| format!("{}={}", m.name(), m.onnx_sha256)).collect::<Vec<_>>().join(",")
    }

    /// Whether `model` has the bytes the query was planned with (`starflow.model_sha256`), if it names the model.
    fn check_model_bytes(&self, model: &Model) -> Result<(), String> {
        let planned = self.model_sha256.split(',').filter_map(|pair| pair.trim().split_once('='));
        let Some((_, expected)) = planned.into_iter().find(|(name, _)| *name == model.name()) else { return Ok(()) };
        if expected.eq_ignore_ascii_case(&model.onnx_sha256) {
            return Ok(());
        }
        Err(format!(
            "model '{}' here ({}, sha256 {}) is not the one the query was planned with (sha256 {expected}): \
             serve the same models directory on the client, the scheduler and every executor",
            model.name(),
            model.onnx_path.display(),
            model.onnx_sha256
        ))
    }
}
