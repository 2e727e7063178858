//! Session settings of the StarFlow functions: `SET starflow.draws = 50`, `SET starflow.seed = 7`, ...

use datafusion::common::config::ConfigExtension;
use datafusion::common::extensions_options;

use crate::inference::Options;
use crate::model::Model;

extensions_options! {
    /// StarFlow settings (`starflow.*`).
    pub struct StarflowConfig {
        /// Monte-Carlo draws per star; 0 uses the model's default (50 for the StarFlow models).
        pub draws: usize, default = 0
        /// Seed of the per-star draws: together with a star's inputs it fixes its numbers.
        pub seed: u64, default = 20251123
        /// Flow rows per ONNX Runtime call (whole stars: at least one, 12,500 rows at 50 draws). ONNX Runtime keeps a
        /// few [rows, 16] float32 intermediates per layer: 25,000 rows keep them near the 1-2 MiB L2 cache; 262,144
        /// ran ~25% slower here with 3x the memory (docs/PERFORMANCE.md).
        pub chunk_rows: usize, default = 25000
    }
}

impl ConfigExtension for StarflowConfig {
    const PREFIX: &'static str = "starflow";
}

impl StarflowConfig {
    pub fn options_for(&self, model: &Model) -> Options {
        Options {
            draws: if self.draws == 0 { model.manifest.default_draws } else { self.draws },
            seed: self.seed,
            chunk_rows: self.chunk_rows.max(1),
        }
    }
}
