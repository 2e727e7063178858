//! Settings of the workspace's property tests (`udfs/tests/properties.rs`, `tests/sql_properties.rs`): a fixed seed
//! and a modest number of cases, so that a run is reproducible and CI stays fast. `PROPTEST_CASES=N` and
//! `PROPTEST_RNG_SEED=S` override them (e.g. a long run with many cases and a new seed).

use proptest::test_runner::{Config, RngSeed};

/// The seed of every property test unless PROPTEST_RNG_SEED is set.
pub const SEED: u64 = 20251123;

/// `cases` cases unless PROPTEST_CASES says otherwise.
pub fn config(cases: u32) -> Config {
    let env = Config::default(); // reads PROPTEST_CASES and PROPTEST_RNG_SEED
    Config {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() { env.cases } else { cases },
        rng_seed: match env.rng_seed {
            RngSeed::Random => RngSeed::Fixed(SEED),
            seed => seed,
        },
        // The seed reproduces a failure: no regression files written into the source tree.
        failure_persistence: None,
        ..env
    }
}
