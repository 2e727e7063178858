//! Session settings of the StarFlow functions: `SET starflow.draws = 50`, `SET starflow.label_release = 'dr17'`, ...

use datafusion::common::config::ConfigExtension;
use datafusion::common::extensions_options;

use crate::inference::Options;
use crate::limits::rows_per_star;
use crate::model::Model;

extensions_options! {
    /// StarFlow settings (`starflow.*`).
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
    }
}

impl ConfigExtension for StarflowConfig {
    const PREFIX: &'static str = "starflow";
}

impl StarflowConfig {
    /// The options of a call to `model`, or why a setting cannot be used with it.
    pub fn options_for(&self, model: &Model) -> Result<Options, String> {
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
        Ok(Options { draws, seed: self.seed, chunk_rows: self.chunk_rows.max(1), label_release })
    }
}
