//! Session settings of the StarFlow functions: `SET starflow.draws = 50`, `SET starflow.seed = 7`, ...

use datafusion::common::config::ConfigExtension;
use datafusion::common::extensions_options;

use crate::inference::{Options, rows_per_star};
use crate::model::Model;

extensions_options! {
    /// StarFlow settings (`starflow.*`).
    pub struct StarflowConfig {
        /// Monte-Carlo draws per star, at least 1; not set: the model's default (50 for the StarFlow models).
        pub draws: Option<usize>, default = None
        /// Seed of the per-star draws: together with a star's inputs it fixes its numbers.
        pub seed: u64, default = 20251123
        /// Flow rows per task of the inference pool (whole stars: at least one, 12,500 rows at 50 draws); each star
        /// is its own ONNX Runtime call, so that its numbers never depend on the stars beside it (inference.rs).
        pub chunk_rows: usize, default = 25000
    }
}

impl ConfigExtension for StarflowConfig {
    const PREFIX: &'static str = "starflow";
}

impl StarflowConfig {
    /// The options of a call to `model`, or why `starflow.draws` cannot be used with it.
    pub fn options_for(&self, model: &Model) -> Result<Options, String> {
        let draws = match self.draws {
            None => model.manifest.default_draws,
            Some(0) => return Err("starflow.draws = 0: at least 1 draw per star".to_string()),
            Some(draws) => draws,
        };
        rows_per_star(draws, model.eval_points.len()).map_err(|e| format!("starflow.draws = {draws}: {e}"))?;
        Ok(Options { draws, seed: self.seed, chunk_rows: self.chunk_rows.max(1) })
    }
}
