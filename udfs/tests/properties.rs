//! Property tests of the StarFlow math and its input handling, on random stars that hold what catalogues hold: NaN,
//! +-inf, nulls in any position, zero, negative, huge and subnormal errors, labels far outside the training data,
//! empty batches. Whatever the input, `estimate_batch` never fails or panics, and every star gets exactly one of:
//! - unusable input (a null, NaN or infinite label or error, or an error <= 0): null numbers and bitmask 4, nothing else;
//! - usable input: a value on the grid with finite e_p >= 0 >= e_n inside the grid, a posterior of non-negative values
//!   summing to 1 whose maximum is the value, and exactly the flags its numbers call for; or, when no draw has a usable
//!   density (far from the training data), null numbers flagged LOW_DENSITY.
//!
//! Run on the closed-form models (tests/data/gaussian, the paper's method, and tests/data/gaussian_v2, method v2 under
//! any of its releases; linear age grid) and the bundled mass models of both methods (trained flows on a log10 grid),
//! with few draws to keep the cases cheap. `summarize` is also run directly on random flow densities, with either
//! weighting. Cases and seed: tests/common/properties.rs.

#[path = "../../tests/common/properties.rs"]
mod properties;

use std::path::Path;
use std::sync::{Arc, LazyLock};

use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};
use starflow_udfs::inference::{Options, StarInput, estimate_batch};
use starflow_udfs::model::Model;
use starflow_udfs::posterior::{Estimate, GridWeights, Weighting, bits, summarize};
use starflow_udfs::registry::InferencePool;
use starflow_udfs::{Device, ModelRegistry};

fn load(dir: &str, name: &str) -> Arc<Model> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    ModelRegistry::load(&dir, Device::Cpu).unwrap().require(name).unwrap()
}

static GAUSSIAN: LazyLock<Arc<Model>> = LazyLock::new(|| load("../tests/data", "age"));
static GAUSSIAN_V2: LazyLock<Arc<Model>> = LazyLock::new(|| load("../tests/data", "age_v2"));
static MASS: LazyLock<Arc<Model>> = LazyLock::new(|| load("../models", "mass"));
static MASS_PAPER: LazyLock<Arc<Model>> = LazyLock::new(|| load("../models", "mass_paper"));
static POOL: LazyLock<InferencePool> = LazyLock::new(|| InferencePool::new(2));

fn run<S: Strategy>(cases: u32, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>) {
    if let Err(e) = TestRunner::new(properties::config(cases)).run(&strategy, test) {
        panic!("{e}");
    }
}

/// Values at the edges of what a float column holds.
fn special() -> impl Strategy<Value = f64> {
    prop::sample::select(vec![
        f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.0, -0.0, -1.0, 1e300, -1e300, f64::MAX, f64::MIN, 1e30, -1e30,
        1e-300, 5e-324, -5e-324,
    ])
}

/// A label: near the training data, far outside it, or a special value.
fn label(mean: f64, std: f64) -> impl Strategy<Value = f64> {
    prop_oneof![
        6 => (-4.0..4.0f64).prop_map(move |z| mean + z * std),
        1 => (-60.0..60.0f64).prop_map(move |z| mean + z * std),
        1 => special(),
    ]
}

/// A 1-sigma error: from tiny to large relative to the training spread, or a special value.
fn error(std: f64) -> impl Strategy<Value = f64> {
    prop_oneof![6 => (1e-4..3.0f64).prop_map(move |f| f * std), 1 => special()]
}

/// A star for `model`: null (some input missing), or ten values of which any may be special.
fn star(model: &Model) -> impl Strategy<Value = StarInput> + use<> {
    let labels: Vec<_> = model.manifest.labels.iter().map(|d| label(d.mean, d.std)).collect();
    let errors: Vec<_> = model.manifest.labels.iter().map(|d| error(d.std)).collect();
    let values = (labels, errors).prop_map(|(x, e)| Some((to5(x), to5(e))));
    prop_oneof![1 => Just(None), 8 => values]
}

fn to5(v: Vec<f64>) -> [f64; 5] {
    v.try_into().expect("five values")
}

/// Options with any draws, seed and chunking, and any of the model's releases (or its default).
fn options(model: &Model) -> impl Strategy<Value = Options> + use<> {
    let mut releases = vec![String::new()];
    releases.extend(model.manifest.inference.iter().flat_map(|i| i.releases.keys().cloned()));
    (1..12usize, any::<u64>(), 1..40_000usize, prop::sample::select(releases))
        .prop_map(|(draws, seed, chunk_rows, label_release)| Options { draws, seed, chunk_rows, label_release })
}

fn usable(star: &StarInput) -> Option<[f64; 5]> {
    let (x, e) = star.as_ref()?;
    (x.iter().chain(e).all(|v| v.is_finite()) && e.iter().all(|v| *v > 0.0)).then_some(*x)
}

/// The numbers of one estimate, as the module docs state them.
fn check_numbers(w: &GridWeights, e: &Estimate, keep_posterior: bool) -> Result<(), TestCaseError> {
    let grid = &w.grid;
    let last = grid.len() - 1;
    prop_assert_eq!(e.bitmask & !(bits::LOW_DENSITY | bits::GRID_EDGE | bits::OUT_OF_RANGE | bits::MULTIMODAL), 0);
    if let Some(d) = e.training_density {
        // +inf only if the flow's density itself overflows a double (no float32 flow near its data does).
        prop_assert!(d >= 0.0, "density {}", d);
    }
    let low = e.training_density.is_none_or(|d| d < w.threshold);
    prop_assert_eq!(e.bitmask & bits::LOW_DENSITY != 0, low, "LOW_DENSITY iff the density is below the threshold");
    let Some(value) = e.value else {
        prop_assert!(e.e_p.is_none() && e.e_n.is_none() && e.posterior.is_none(), "{:?}", e);
        prop_assert!(e.median.is_none() && e.p16.is_none() && e.p84.is_none(), "{:?}", e);
        prop_assert!(low, "no estimate without LOW_DENSITY");
        return Ok(());
    };
    let i = grid.iter().position(|g| *g == value);
    prop_assert!(i.is_some(), "value {} on the grid", value);
    let i = i.unwrap_or_default();
    let (ep, en) = (e.e_p.unwrap_or(f64::NAN), e.e_n.unwrap_or(f64::NAN));
    prop_assert!(ep >= 0.0 && en <= 0.0, "e_p {} >= 0 >= e_n {}", ep, en);
    let slack = 1e-9 * (grid[last] - grid[0]);
    prop_assert!(value + en >= grid[0] - slack && value + ep <= grid[last] + slack, "bounds inside the grid");
    let (p16, median, p84) = (e.p16.unwrap_or(f64::NAN), e.median.unwrap_or(f64::NAN), e.p84.unwrap_or(f64::NAN));
    prop_assert!(grid[0] <= p16 && p16 <= median && median <= p84 && p84 <= grid[last] + slack, "{} <= {} <= {} in the grid", p16, median, p84);
    prop_assert_eq!(e.bitmask & bits::GRID_EDGE != 0, i == 0 || i == last);
    match (&e.posterior, keep_posterior) {
        (Some(p), true) => {
            prop_assert_eq!(p.len(), grid.len());
            prop_assert!(p.iter().all(|v| v.is_finite() && *v >= 0.0), "{:?}", p);
            prop_assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9, "sums to {}", p.iter().sum::<f64>());
            prop_assert!(p.iter().all(|v| *v <= p[i]), "the value is the posterior's maximum");
        }
        (None, false) => {}
        (p, keep) => prop_assert!(false, "posterior {:?} with keep_posterior {}", p, keep),
    }
    Ok(())
}

fn check_star(model: &Model, opts: &Options, star: &StarInput, e: &Estimate, keep_posterior: bool) -> Result<(), TestCaseError> {
    let Some(x) = usable(star) else {
        prop_assert_eq!(e, &Estimate::bad_input());
        return Ok(());
    };
    // Method v2 moves the labels by the release's offsets first; the paper's method takes them as they are.
    let offset = match &model.manifest.inference {
        Some(inference) => inference.release(&opts.label_release).map(|(_, r)| r.offset).unwrap_or_default(),
        None => [0.0; 5],
    };
    let outside = (0..5).any(|i| {
        let (v, d) = (x[i] - offset[i], &model.manifest.labels[i]);
        v < d.train_min || v > d.train_max
    });
    prop_assert_eq!(e.bitmask & bits::OUT_OF_RANGE != 0, outside, "OUT_OF_RANGE iff a label is outside training");
    check_numbers(&model.weights, e, keep_posterior)
}

/// Every star of a random batch gets its outcome, in order, and the same one in the reversed batch.
fn batches_hold_the_properties(model: &'static Model, cases: u32, max_stars: usize) {
    let strategy = (prop::collection::vec(star(model), 0..max_stars), options(model), any::<bool>());
    run(cases, strategy, |(stars, opts, keep_posterior)| {
        let estimates = estimate_batch(model, &stars, &opts, keep_posterior, &POOL);
        prop_assert!(estimates.is_ok(), "{:?}", estimates);
        let estimates = estimates.unwrap_or_default();
        prop_assert_eq!(estimates.len(), stars.len());
        for (star, e) in stars.iter().zip(&estimates) {
            check_star(model, &opts, star, e, keep_posterior)?;
        }
        let reversed: Vec<StarInput> = stars.iter().rev().cloned().collect();
        let mut again = estimate_batch(model, &reversed, &opts, keep_posterior, &POOL).unwrap_or_default();
        again.reverse();
        prop_assert_eq!(again, estimates, "a star's numbers do not depend on its batch");
        Ok(())
    });
}

#[test]
fn closed_form_model_batches_hold_the_properties() {
    batches_hold_the_properties(&GAUSSIAN, 256, 24);
}

#[test]
fn closed_form_v2_model_batches_hold_the_properties() {
    batches_hold_the_properties(&GAUSSIAN_V2, 256, 24);
}

#[test]
fn bundled_mass_model_batches_hold_the_properties() {
    batches_hold_the_properties(&MASS, 128, 12);
}

#[test]
fn bundled_paper_mass_model_batches_hold_the_properties() {
    batches_hold_the_properties(&MASS_PAPER, 128, 12);
}

/// One flow density per (draw, grid point): mostly ordinary, sometimes zero, subnormal, huge, infinite or NaN.
fn density() -> impl Strategy<Value = f64> {
    prop_oneof![
        6 => 0.0..10.0f64,
        1 => prop::sample::select(vec![0.0, 5e-324, 1e-300, 1e300, f64::MAX, f64::INFINITY, f64::NAN]),
    ]
}

#[test]
fn summarize_holds_the_properties_on_any_flow_densities() {
    // Any grid (it may start below zero), any number of draws, any densities.
    let weighting = prop::sample::select(vec![Weighting::Conditional, Weighting::Joint]);
    let weights = (-10.0..10.0f64, 1e-3..10.0f64, 2..40usize, 0.0..5.0f64, weighting).prop_map(|(start, step, n, threshold, weighting)| {
        let grid: Vec<f64> = (0..n).map(|i| start + i as f64 * step).collect();
        GridWeights { jacobian: vec![1.0; n], dstd: step, grid, scale: 1.0, threshold, weighting }
    });
    let case = (weights, 1..6usize, any::<bool>()).prop_flat_map(|(w, draws, keep)| {
        let n = w.grid.len() * draws;
        (Just(w), prop::collection::vec(density(), n), Just(keep))
    });
    run(256, case, |(w, p, keep_posterior)| {
        let e = summarize(&w, &p, keep_posterior);
        let finite_draws = p.chunks_exact(w.grid.len()).filter(|row| row.iter().sum::<f64>().is_finite()).count();
        prop_assert_eq!(e.training_density.is_some(), finite_draws > 0, "a density iff some draw's sum is finite");
        prop_assert_eq!(e.bitmask & (bits::BAD_INPUT | bits::OUT_OF_RANGE), 0, "input bits are not summarize's");
        check_numbers(&w, &e, keep_posterior)
    });
}
